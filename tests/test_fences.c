/* The fence file: a daemon state (haspd_init) with its fences kept in a
 * real file, driven through the lock table with the wall clock set by hand. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fencefile.h"
#include "changes.h"
#include "haspd.h"
#include "log.h"
#include "suite.h"

static char dir[64], path[96];
static struct haspd d;
static struct lt_owner owner;

static void setup(void)
{
	log_threshold = LOG_ERR;
	snprintf(dir, sizeof(dir), "/tmp/hasp-fences-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/fence", dir);
	ck_assert_int_eq(haspd_init(&d), 0);
	lt_owner_init(&owner, 1, getpid(), geteuid(), getegid());
}

static void teardown(void)
{
	haspd_done(&d);
	unlink(path);
	rmdir(dir);
}

static void write_file(const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

static uint64_t stored(void)
{
	char text[64] = "";
	FILE *f = fopen(path, "r");

	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(text, sizeof(text), f));
	fclose(f);
	return strtoull(text, NULL, 10);
}

/* A lease granted at once with the wall clock at wall_us; its fence. */
static uint64_t grant_at(uint64_t wall_us)
{
	const struct lt_request req = { .key = "k", .key_len = 1, .mode = LT_EXCLUSIVE,
					.timeout_ms = -1 };
	struct lt_entry *e;
	uint64_t fence;

	locktable_set_now(&d.lt, d.lt.now_us + 1, wall_us);
	ck_assert_int_eq(locktable_acquire(&d.lt, &owner, &req, &e), LT_GRANTED);
	fence = e->fence;
	ck_assert_int_eq(locktable_release(&d.lt, &owner, e->id), LT_OK);
	changes_apply(&d, NULL);
	return fence;
}

START_TEST(ceiling_is_stored_before_a_fence_reaches_it)
{
	uint64_t ceiling, f;

	ck_assert_int_eq(haspd_keep_fences(&d, path, NULL), 0);
	ceiling = stored();
	ck_assert_uint_gt(ceiling, d.lt.wall_us);
	ck_assert_uint_lt(grant_at(d.lt.wall_us), ceiling); /* within the reservation */
	ck_assert_uint_eq(stored(), ceiling);
	f = grant_at(ceiling); /* the clock reaches the ceiling */
	ck_assert_uint_ge(f, ceiling);
	ck_assert_uint_gt(stored(), f);
	ck_assert_uint_eq(d.lt.fence_ceiling, stored());
}
END_TEST

START_TEST(a_new_daemon_starts_above_the_stored_ceiling)
{
	uint64_t ahead = d.lt.wall_us + 3600000000u;
	char text[32];

	snprintf(text, sizeof(text), "%020llu\n", (unsigned long long)ahead);
	write_file(text, 0600);
	ck_assert_int_eq(haspd_keep_fences(&d, path, NULL), 0);
	/* A quick restart does not push the ceiling ever further ahead. */
	ck_assert_uint_eq(stored(), ahead);
	ck_assert_uint_gt(grant_at(d.lt.wall_us), ahead); /* the clock an hour behind */
}
END_TEST

START_TEST(a_failed_store_is_tried_again_at_the_next_grant)
{
	uint64_t ceiling, f;
	int fd;

	ck_assert_int_eq(haspd_keep_fences(&d, path, NULL), 0);
	ceiling = stored();
	fd = d.fences.fd;
	d.fences.fd = -1; /* every write fails now */
	f = grant_at(ceiling + 5);
	ck_assert(d.fences_failing);
	ck_assert_uint_eq(d.lt.fence_ceiling, f + 1); /* not past what is on disk */
	ck_assert_uint_eq(stored(), ceiling);
	d.fences.fd = fd;
	/* Within the second, no new try; a second later, one that works. */
	f = grant_at(d.lt.wall_us);
	ck_assert(d.fences_failing);
	ck_assert_uint_eq(d.lt.fence_ceiling, f + 1);
	d.lt.now_us += 1000000;
	f = grant_at(d.lt.wall_us);
	ck_assert(!d.fences_failing);
	ck_assert_uint_gt(stored(), f);
}
END_TEST

START_TEST(bad_files_are_refused)
{
	struct fencefile other = { -1 };
	uint64_t c;
	char text[32];

	write_file("12\n", 0600);
	ck_assert_int_eq(haspd_keep_fences(&d, path, NULL), -1);
	ck_assert_uint_eq(d.lt.fence_ceiling, FENCEFILE_MAX);
	snprintf(text, sizeof(text), "%020llu\n", (unsigned long long)FENCEFILE_MAX);
	write_file(text, 0600);
	ck_assert_int_eq(fencefile_open(&other, path, false, &c), -EBADMSG);
	write_file(text, 0666);
	ck_assert_int_eq(fencefile_open(&other, path, false, &c), -EPERM);
	write_file("00000000000000000000\n", 0600);
	/* One daemon per file; the other is told who has it. */
	ck_assert_int_eq(haspd_keep_fences(&d, path, NULL), 0);
	ck_assert_int_eq(fencefile_open(&other, path, false, &c), -EBUSY);
	ck_assert_int_eq(fencefile_holder(path), getpid());
}
END_TEST

/* haspd writes a ceiling into every file it creates: an empty one is one
 * whose ceiling was lost, and taking it as new could give lower fences. */
START_TEST(an_empty_file_stops_the_daemon)
{
	struct fencefile other = { -1 };
	struct stat st;
	uint64_t c;

	write_file("", 0600);
	ck_assert_int_eq(fencefile_open(&other, path, true, &c), -ENODATA);
	ck_assert_int_eq(haspd_keep_fences(&d, path, NULL), -1);
	ck_assert_int_eq(d.fences.fd, -1);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, 0); /* left as it was, for the administrator */
}
END_TEST

/* Missing: new at a first start, lost when a socket says an earlier haspd
 * ran (the caller tells). */
START_TEST(a_missing_file_is_new_unless_an_earlier_run_left_a_socket)
{
	ck_assert_int_eq(haspd_keep_fences(&d, path, "/run/earlier/haspd.sock"), -1);
	ck_assert_int_eq(access(path, F_OK), -1); /* nothing was made */
	ck_assert_int_eq(haspd_keep_fences(&d, path, NULL), 0);
	ck_assert_uint_gt(stored(), d.lt.wall_us);
	ck_assert_uint_eq(fencefile_holder(path), getpid()); /* taken */
}
END_TEST

static void store_ceiling(uint64_t c)
{
	char text[32];

	snprintf(text, sizeof(text), "%020llu\n", (unsigned long long)c);
	write_file(text, 0600);
}

/* A ceiling near the most the file holds: the daemon starts, grants, and
 * every ceiling it stores is one the next run accepts, above its fences. */
START_TEST(a_ceiling_near_the_maximum_is_kept_within_it)
{
	struct fencefile next = { -1 };
	uint64_t f, g, c;

	store_ceiling(FENCEFILE_MAX - 1000);
	ck_assert_int_eq(haspd_keep_fences(&d, path, NULL), 0);
	f = grant_at(d.lt.wall_us);
	ck_assert_uint_gt(f, FENCEFILE_MAX - 1000);
	ck_assert_uint_ge(stored(), f);
	ck_assert_uint_lt(stored(), FENCEFILE_MAX);
	for (int i = 0; i < 100; i++) {
		g = grant_at(d.lt.wall_us);
		ck_assert_uint_gt(g, f);
		ck_assert_uint_ge(stored(), g);
		ck_assert_uint_lt(stored(), FENCEFILE_MAX);
		f = g;
	}
	fencefile_close(&d.fences);
	ck_assert_int_eq(fencefile_open(&next, path, false, &c), 0);
	ck_assert_uint_ge(c, f);
	fencefile_close(&next);
}
END_TEST

/* With no fence left, a start is refused. */
START_TEST(exhausted_fences_stop_the_start)
{
	store_ceiling(FENCEFILE_MAX - 1);
	ck_assert_int_eq(haspd_keep_fences(&d, path, NULL), -1);
}
END_TEST

/* Runs steps in a child whose stderr comes back here: steps end with the
 * grant that must stop the daemon, and say "last fence given" just before.
 * The child must exit with status 1 after saying that fences are exhausted
 * (an assertion that fails in it exits with 1 too, but says neither). */
static void expect_exhaustion(void (*steps)(void))
{
	char out[8192] = "";
	size_t len = 0;
	ssize_t n;
	int p[2], st;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[0]);
		dup2(p[1], 2);
		steps();
		_exit(99);
	}
	close(p[1]);
	while (len < sizeof(out) - 1 && (n = read(p[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)n;
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(strstr(out, "last fence given"), "stderr: %s", out);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %#x, stderr: %s", st, out);
	ck_assert_msg(strstr(out, "fences are exhausted"), "stderr: %s", out);
}

static void the_last_fences(void)
{
	store_ceiling(FENCEFILE_MAX - 3);
	ck_assert_int_eq(haspd_keep_fences(&d, path, NULL), 0);
	ck_assert_uint_eq(grant_at(d.lt.wall_us), FENCEFILE_MAX - 2);
	ck_assert_uint_eq(grant_at(d.lt.wall_us), FENCEFILE_MAX - 1);
	ck_assert_uint_eq(stored(), FENCEFILE_MAX - 1);
	fprintf(stderr, "last fence given\n");
	grant_at(d.lt.wall_us);
}

/* The last fences are given; the grant after them stops the daemon (exit
 * status 1) before its fence exists, and what is stored is the last. */
START_TEST(the_grant_after_the_last_fence_stops_the_daemon)
{
	expect_exhaustion(the_last_fences);
}
END_TEST

static void the_last_fence_by_the_clock(void)
{
	ck_assert_uint_eq(grant_at(FENCEFILE_MAX - 1), FENCEFILE_MAX - 1);
	fprintf(stderr, "last fence given\n");
	grant_at(FENCEFILE_MAX - 1);
}

/* Without a fence file the same: fences follow the clock, which would need
 * to read the year 2255 to get there. */
START_TEST(no_fence_passes_the_last_without_a_file_either)
{
	expect_exhaustion(the_last_fence_by_the_clock);
}
END_TEST

static Suite *fences_suite(void)
{
	Suite *s = suite_create("fences");
	TCase *tc = tcase_create("fencefile");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, ceiling_is_stored_before_a_fence_reaches_it);
	tcase_add_test(tc, a_new_daemon_starts_above_the_stored_ceiling);
	tcase_add_test(tc, a_failed_store_is_tried_again_at_the_next_grant);
	tcase_add_test(tc, bad_files_are_refused);
	tcase_add_test(tc, an_empty_file_stops_the_daemon);
	tcase_add_test(tc, a_missing_file_is_new_unless_an_earlier_run_left_a_socket);
	tcase_add_test(tc, a_ceiling_near_the_maximum_is_kept_within_it);
	tcase_add_test(tc, exhausted_fences_stop_the_start);
	tcase_add_test(tc, the_grant_after_the_last_fence_stops_the_daemon);
	tcase_add_test(tc, no_fence_passes_the_last_without_a_file_either);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(fences_suite());
}
