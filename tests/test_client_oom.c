/* libhasp out of memory: against a real haspd, every allocation a client
 * makes in a scripted set of calls fails, the first in one run, the second
 * in the next, and so on. libhasp (and proto, which it builds requests
 * with) is built into this test with its malloc family wrapped at link
 * time (tests/oom.h). jansson's own allocations are left alone: out of
 * memory, its lexer can return a document that is not the line (see
 * tests/README.md), which a library cannot detect without taking over
 * jansson's allocator for the whole process.
 *
 * A call works or fails, never half. A lock that reports failure leaves no
 * lease behind in the daemon: another client gets the resource at once, or
 * as soon as the daemon has seen the failing client drop its connection.
 * A revoked lease is known to be revoked, or the connection known lost:
 * never taken for held. Nothing leaks (the ASan build). */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "hasp.h"
#include "oom.h"
#include "suite.h"

static struct daemon_proc daemon_;
static hasp_client *observer;          /* sees what the daemon holds; never fails */
static char file[128];
static unsigned long fail_at;           /* in this run; 0: none */

static void setup(void)
{
	int fd;

	daemon_start(&daemon_);
	observer = client_connect(daemon_.socket);
	snprintf(file, sizeof(file), "%s/locked-file", daemon_.dir);
	fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	close(fd);
}

static void teardown(void)
{
	hasp_close(observer);
	unlink(file);
	daemon_stop(&daemon_);
}

/* The client under test runs armed: its allocations count, and may fail.
 * No ck_assert while armed: Check's own allocations would count. */
static void arm(void)
{
	oom_armed = true;
}

static int disarm(int r)
{
	oom_armed = false;
	return r;
}

/* Nobody holds name (a key, or the file if is_file) once the daemon has
 * dealt with the client: the observer gets it within the bound. */
static void no_lease_left(const char *name, bool is_file)
{
	struct hasp_lock_options o = HASP_LOCK_OPTIONS_INIT;
	hasp_lease *l = NULL;
	int r;

	o.timeout_ms = test_ms(5000);
	r = is_file ? hasp_lock_file(observer, name, &o, &l) : hasp_lock(observer, name, &o, &l);
	ck_assert_msg(r == 0, "%s is still held after a failed lock (allocation %lu failed): %s",
		      name, fail_at, hasp_client_errmsg(observer));
	ck_assert_int_eq(hasp_unlock(observer, l), 0);
}

/* A lease the call reports, or none left behind. */
static hasp_lease *lock_or_nothing(hasp_client *c, const char *name, bool is_file)
{
	struct hasp_lock_options o = HASP_LOCK_OPTIONS_INIT;
	hasp_lease *l = NULL;
	int r;

	o.timeout_ms = 0;
	o.owner = "client-oom";
	o.message = "every allocation fails once";
	arm();
	r = disarm(is_file ? hasp_lock_file(c, name, &o, &l) : hasp_lock(c, name, &o, &l));
	if (r == 0) {
		ck_assert_ptr_nonnull(l);
		return l;
	}
	ck_assert_ptr_null(l);
	no_lease_left(name, is_file);
	return NULL;
}

/* The output of a listing call: JSON, or an error and nothing. (A list
 * whole or not at all is the daemon's part: test_oom.) */
static void listing(hasp_client *c, int (*call)(hasp_client *, char **))
{
	char *text = NULL;
	json_t *j;
	int r;

	arm();
	r = disarm(call(c, &text));
	if (r < 0) {
		ck_assert_ptr_null(text);
		return;
	}
	j = json_loads(text, 0, NULL);
	ck_assert_msg(json_is_object(j) || json_is_array(j), "not JSON: %s", text);
	json_decref(j);
	free(text);
}

/* The observer revokes l; c must then know, or know itself lost. */
static void revoked_is_known(hasp_client *c, hasp_lease *l)
{
	int r;

	ck_assert_int_eq(hasp_revoke(observer, hasp_lease_id(l)), 0);
	ck_assert(wait_readable(hasp_client_fd(c), 5000)); /* the event is there */
	arm();
	r = disarm(hasp_lease_revoked(c, l));
	ck_assert_msg(r == 1 || r < 0, "a revoked lease reads as held (allocation %lu failed)",
		      fail_at);
}

/* One run with allocation n failing (0: none); returns how many the
 * client made. */
static unsigned long run_failing(unsigned long n)
{
	hasp_client *c = NULL;
	hasp_lease *key, *locked;

	fail_at = n;
	oom_fail(n, false);
	oom_allocations = 0;
	arm();
	if (disarm(hasp_connect(daemon_.socket, &c)) == 0) {
		ck_assert_ptr_nonnull(c);
		key = lock_or_nothing(c, "client-oom", false);
		locked = lock_or_nothing(c, file, true);
		listing(c, hasp_list_json);
		listing(c, hasp_stats_json);
		if (key)
			revoked_is_known(c, key);
		arm();
		if (locked)
			hasp_unlock(c, locked);
		hasp_close(c);
		disarm(0);
		hasp_lease_free(key);
	}
	oom_fail(0, false);
	/* Whatever failed, the daemon is left with the observer alone. */
	wait_gauge(observer, "sessions", 1, 5000);
	ck_assert_int_eq(stats_gauge(observer, "leases"), 0);
	return oom_allocations;
}

START_TEST(every_allocation_fails_once)
{
	unsigned long total = run_failing(0);

	/* libhasp's own allocations: the client, its reply buffer, the
	 * request lines, the leases, the revoke notices (10 here). */
	ck_assert_uint_gt(total, 5);
	for (unsigned long n = total; n >= 1; n--)
		run_failing(n);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("client-oom");
	TCase *tc = tcase_create("client-oom");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, every_allocation_fails_once);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
