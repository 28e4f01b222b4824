/* The daemon's flock on a file and its aliases (oslock.c), on real files:
 * taken, converted and dropped on all of them, or on none. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "oslock.h"
#include "suite.h"

static char dir[] = "/tmp/hasp-oslock-XXXXXX";

static int make(const char *name)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	return fd;
}

/* Another description of fd's file: an outsider's. */
static int outsider(int fd)
{
	char proc[64];
	int o;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	o = open(proc, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(o, 0);
	return o;
}

static void setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
	strcpy(dir, "/tmp/hasp-oslock-XXXXXX");
}

/* A conversion to exclusive that an outsider's shared flock on one alias
 * refuses leaves nothing held anywhere: not the other aliases' shared
 * flocks (Linux drops only the failed description's old lock). */
START_TEST(a_failed_conversion_lets_go_of_every_file)
{
	int m = make("m"), x1 = make("x1"), x2 = make("x2"), out1 = outsider(x1);
	char key[OSLOCK_KEY_LEN] = { 0 };
	struct oslock *o = oslock_new(m, O_RDONLY, NULL);
	int probe;

	ck_assert_ptr_nonnull(o);
	ck_assert_ptr_nonnull(oslock_alias_new(o, x1, O_RDONLY, key));
	key[1] = 1;
	ck_assert_ptr_nonnull(oslock_alias_new(o, x2, O_RDONLY, key));
	ck_assert(oslock_try(o, true));
	ck_assert_int_eq(flock(out1, LOCK_SH | LOCK_NB), 0);
	ck_assert(!oslock_try(o, false));
	/* Nothing of the daemon's is left: an outsider may take each file. */
	probe = outsider(x2);
	ck_assert_int_eq(flock(probe, LOCK_EX | LOCK_NB), 0);
	close(probe);
	probe = outsider(m);
	ck_assert_int_eq(flock(probe, LOCK_EX | LOCK_NB), 0);
	close(probe);
	/* Once the outsider lets go, the conversion goes through everywhere. */
	flock(out1, LOCK_UN);
	ck_assert(oslock_try(o, false));
	probe = outsider(x1);
	ck_assert_int_ne(flock(probe, LOCK_SH | LOCK_NB), 0);
	close(probe);
	oslock_unlock(o);
	probe = outsider(x2);
	ck_assert_int_eq(flock(probe, LOCK_EX | LOCK_NB), 0);
	close(probe);
	oslock_free(o);
	close(out1);
	close(m);
	close(x1);
	close(x2);
}
END_TEST

/* oslock_convert() never lets go: an upgrade an outsider's shared flock
 * on an alias stands in the way of leaves every file locked shared (the
 * daemon's own flock stays when the outsider's goes); once it is gone the
 * upgrade takes exclusive on all; a downgrade makes all shared again. */
START_TEST(a_conversion_never_lets_go)
{
	int m = make("m"), x = make("x"), out = outsider(x), pm = outsider(m), px = outsider(x);
	char key[OSLOCK_KEY_LEN] = { 0 };
	struct oslock *o = oslock_new(m, O_RDONLY, NULL);

	ck_assert_ptr_nonnull(o);
	ck_assert(oslock_try(o, true));
	ck_assert_ptr_nonnull(oslock_alias_new(o, x, O_RDONLY, key));
	ck_assert_int_eq(flock(out, LOCK_SH | LOCK_NB), 0);
	ck_assert(!oslock_convert(o, false));
	ck_assert_int_eq(flock(out, LOCK_UN), 0);
	ck_assert_int_ne(flock(pm, LOCK_EX | LOCK_NB), 0); /* still shared, both */
	ck_assert_int_ne(flock(px, LOCK_EX | LOCK_NB), 0);
	ck_assert(oslock_convert(o, false));
	ck_assert_int_ne(flock(pm, LOCK_SH | LOCK_NB), 0); /* exclusive, both */
	ck_assert_int_ne(flock(px, LOCK_SH | LOCK_NB), 0);
	ck_assert(oslock_convert(o, true));
	ck_assert_int_eq(flock(pm, LOCK_SH | LOCK_NB), 0); /* shared again */
	ck_assert_int_eq(flock(px, LOCK_SH | LOCK_NB), 0);
	ck_assert_int_ne(flock(out, LOCK_EX | LOCK_NB), 0);
	oslock_free(o);
	close(out);
	close(pm);
	close(px);
	close(m);
	close(x);
}
END_TEST

static Suite *oslock_suite(void)
{
	Suite *s = suite_create("oslock");
	TCase *tc = tcase_create("aliases");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, a_failed_conversion_lets_go_of_every_file);
	tcase_add_test(tc, a_conversion_never_lets_go);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(oslock_suite());
}
