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
#include "fences.h"
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

/* An acquire of "k" with the wall clock at wall_us: its result, the lease
 * or waiter in *ret. */
static enum lt_result acquire_at(uint64_t wall_us, struct lt_entry **ret)
{
	const struct lt_request req = { .key = "k", .key_len = 1, .mode = LT_EXCLUSIVE,
					.timeout_ms = -1 };

	locktable_set_now(&d.lt, d.lt.now_us + 1, wall_us);
	return locktable_acquire(&d.lt, &owner, &req, ret);
}

static void release(struct lt_entry *e)
{
	ck_assert_int_eq(locktable_release(&d.lt, &owner, e->id), LT_OK);
	changes_apply(&d, NULL); /* the resource gone, nothing else */
}

/* The store the fence timer does, and the kick after it: e is granted. */
static void store_and_grant(struct lt_entry *e)
{
	struct lt_change c;

	fences_plan(&d);
	ck_assert(loop_event_pending(d.fence_timer));
	loop_event_del(d.fence_timer); /* as if it fired */
	ck_assert_int_eq(fences_store(&d), 0);
	locktable_kick_all(&d.lt);
	ck_assert(locktable_next_change(&d.lt, &c));
	ck_assert_int_eq(c.kind, LT_CHANGE_GRANTED);
	ck_assert_ptr_eq(c.entry, e);
	ck_assert(!locktable_next_change(&d.lt, &c));
}

/* A lease with the wall clock at wall_us, waiting for a store if it must;
 * its fence. */
static uint64_t grant_at(uint64_t wall_us)
{
	struct lt_entry *e;
	uint64_t fence;

	if (acquire_at(wall_us, &e) == LT_QUEUED)
		store_and_grant(e);
	ck_assert(e->held);
	fence = e->fence;
	release(e);
	return fence;
}

/* The ceiling is stored ahead, from the timer, once half the reserve is
 * used; never in a grant. */
START_TEST(ceiling_is_stored_ahead_not_in_a_grant)
{
	uint64_t ceiling, f;
	struct lt_entry *e;

	ck_assert_int_eq(fences_keep(&d, path, NULL), 0);
	ceiling = stored();
	ck_assert_uint_gt(ceiling, d.lt.wall_us);
	f = grant_at(d.lt.wall_us);
	ck_assert_uint_lt(f, ceiling);
	fences_plan(&d);
	ck_assert(!loop_event_pending(d.fence_timer)); /* half is left */
	ck_assert_int_eq(acquire_at(ceiling - FENCES_RESERVE_US / 2 + 1, &e), LT_GRANTED);
	ck_assert_uint_eq(stored(), ceiling); /* not in the grant */
	fences_plan(&d);
	ck_assert(loop_event_pending(d.fence_timer));
	ck_assert_int_eq(fences_store(&d), 0);
	ck_assert_uint_gt(stored(), ceiling);
	ck_assert_uint_eq(d.lt.fence_ceiling, stored() + 1); /* fences up to the stored */
	release(e);
}
END_TEST

/* A grant that finds no fence below the stored ceiling waits for the store:
 * no fence is ever given that a restart could repeat. */
START_TEST(a_grant_past_the_ceiling_waits_for_the_store)
{
	uint64_t ceiling;
	struct lt_entry *e;

	ck_assert_int_eq(fences_keep(&d, path, NULL), 0);
	ceiling = stored();
	ck_assert_int_eq(acquire_at(ceiling + 1, &e), LT_QUEUED); /* the clock passed it */
	ck_assert(d.lt.fences_starved && !e->held);
	ck_assert_uint_eq(stored(), ceiling);
	fences_plan(&d);
	ck_assert(loop_event_pending(d.fence_timer));
	store_and_grant(e);
	ck_assert_uint_gt(e->fence, ceiling);
	ck_assert_uint_ge(stored(), e->fence);
	release(e);
}
END_TEST

START_TEST(a_new_daemon_starts_above_the_stored_ceiling)
{
	uint64_t ahead = d.lt.wall_us + 3600000000u;
	char text[32];

	snprintf(text, sizeof(text), "%020llu\n", (unsigned long long)ahead);
	write_file(text, 0600);
	ck_assert_int_eq(fences_keep(&d, path, NULL), 0);
	/* A quick restart does not push the ceiling ever further ahead. */
	ck_assert_uint_eq(stored(), ahead);
	ck_assert_uint_gt(grant_at(d.lt.wall_us), ahead); /* the clock an hour behind */
}
END_TEST

/* A failing store grants nothing that needs a fence, and is tried again a
 * second later. */
START_TEST(a_failed_store_grants_nothing_and_is_tried_again)
{
	uint64_t ceiling;
	struct lt_entry *e;
	int fd;

	ck_assert_int_eq(fences_keep(&d, path, NULL), 0);
	ceiling = stored();
	fd = d.fences.fd;
	d.fences.fd = -1; /* every write fails now */
	ck_assert_int_eq(acquire_at(ceiling + 5, &e), LT_QUEUED);
	ck_assert_int_lt(fences_store(&d), 0);
	ck_assert(d.fences_failing && d.lt.fences_starved);
	ck_assert_uint_eq(d.lt.fence_ceiling, ceiling + 1); /* not past what is on disk */
	locktable_kick_all(&d.lt);
	ck_assert(!e->held);
	fences_plan(&d);
	ck_assert(loop_event_pending(d.fence_timer)); /* a second later */
	d.fences.fd = fd;
	store_and_grant(e);
	ck_assert(!d.fences_failing);
	ck_assert_uint_ge(stored(), e->fence);
	release(e);
}
END_TEST

START_TEST(bad_files_are_refused)
{
	struct fencefile other = { -1 };
	uint64_t c;
	char text[32];

	write_file("12\n", 0600);
	ck_assert_int_eq(fences_keep(&d, path, NULL), -1);
	ck_assert_uint_eq(d.lt.fence_ceiling, FENCEFILE_MAX);
	snprintf(text, sizeof(text), "%020llu\n", (unsigned long long)FENCEFILE_MAX);
	write_file(text, 0600);
	ck_assert_int_eq(fencefile_open(&other, path, false, &c), -EBADMSG);
	write_file(text, 0666);
	ck_assert_int_eq(fencefile_open(&other, path, false, &c), -EPERM);
	write_file("00000000000000000000\n", 0600);
	/* One daemon per file; the other is told who has it. */
	ck_assert_int_eq(fences_keep(&d, path, NULL), 0);
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
	ck_assert_int_eq(fences_keep(&d, path, NULL), -1);
	ck_assert_int_eq(d.fences.fd, -1);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, 0); /* left as it was, for the administrator */
}
END_TEST

/* Missing: new at a first start, lost when a socket says an earlier haspd
 * ran (the caller tells). */
START_TEST(a_missing_file_is_new_unless_an_earlier_run_left_a_socket)
{
	ck_assert_int_eq(fences_keep(&d, path, "/run/earlier/haspd.sock"), -1);
	ck_assert_int_eq(access(path, F_OK), -1); /* nothing was made */
	ck_assert_int_eq(fences_keep(&d, path, NULL), 0);
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
	ck_assert_int_eq(fences_keep(&d, path, NULL), 0);
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
	ck_assert_int_eq(fences_keep(&d, path, NULL), -1);
}
END_TEST

/* The last fences are given; the grant after them waits for good (and says
 * so in the log), and what is stored is the last: no fence past it exists. */
START_TEST(after_the_last_fence_nothing_is_granted)
{
	struct lt_entry *e;

	store_ceiling(FENCEFILE_MAX - 3);
	ck_assert_int_eq(fences_keep(&d, path, NULL), 0);
	ck_assert_uint_eq(grant_at(d.lt.wall_us), FENCEFILE_MAX - 2);
	ck_assert_uint_eq(grant_at(d.lt.wall_us), FENCEFILE_MAX - 1);
	ck_assert_uint_eq(stored(), FENCEFILE_MAX - 1);
	ck_assert_int_eq(acquire_at(d.lt.wall_us, &e), LT_QUEUED);
	ck_assert_int_eq(fences_store(&d), -ERANGE);
	ck_assert(d.fences_exhausted && !e->held);
	fences_plan(&d);
	ck_assert(!loop_event_pending(d.fence_timer)); /* no store to try */
	ck_assert_uint_eq(stored(), FENCEFILE_MAX - 1);
}
END_TEST

/* Without a fence file the same: fences follow the clock, which would need
 * to read the year 2255 to get there. */
START_TEST(no_fence_passes_the_last_without_a_file_either)
{
	struct lt_entry *e;

	ck_assert_uint_eq(grant_at(FENCEFILE_MAX - 1), FENCEFILE_MAX - 1);
	ck_assert_int_eq(acquire_at(FENCEFILE_MAX - 1, &e), LT_QUEUED);
	ck_assert(d.lt.fences_starved && !e->held);
}
END_TEST

static Suite *fences_suite(void)
{
	Suite *s = suite_create("fences");
	TCase *tc = tcase_create("fencefile");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, ceiling_is_stored_ahead_not_in_a_grant);
	tcase_add_test(tc, a_grant_past_the_ceiling_waits_for_the_store);
	tcase_add_test(tc, a_new_daemon_starts_above_the_stored_ceiling);
	tcase_add_test(tc, a_failed_store_grants_nothing_and_is_tried_again);
	tcase_add_test(tc, bad_files_are_refused);
	tcase_add_test(tc, an_empty_file_stops_the_daemon);
	tcase_add_test(tc, a_missing_file_is_new_unless_an_earlier_run_left_a_socket);
	tcase_add_test(tc, a_ceiling_near_the_maximum_is_kept_within_it);
	tcase_add_test(tc, exhausted_fences_stop_the_start);
	tcase_add_test(tc, after_the_last_fence_nothing_is_granted);
	tcase_add_test(tc, no_fence_passes_the_last_without_a_file_either);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(fences_suite());
}
