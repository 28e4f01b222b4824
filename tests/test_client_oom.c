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
 * never taken for held. Nothing leaks (the ASan build). The same for the
 * non-blocking core: hasp_lock_async, process and a cancel that crosses
 * its grant; and for hasp_watch: an event libhasp cannot hand on is said
 * lost, never dropped unsaid. */
#include <check.h>
#include <fcntl.h>
#include <poll.h>
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

/* An unlock that fails leaves no lease behind either: the handle is freed
 * whatever the result, so nothing could release the lease later. It ends
 * (with the connection, if it must) while c is still open. */
static void unlock_leaves_nothing(hasp_client *c, const char *name)
{
	hasp_lease *l = lock_or_nothing(c, name, false);

	if (!l)
		return;
	arm();
	disarm(hasp_unlock(c, l));
	no_lease_left(name, false);
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
		unlock_leaves_nothing(c, "client-oom-unlocked");
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

/* run once with none failing (more than min allocations), then with
 * each of them failing, the last first. */
static void fail_each(unsigned long (*run)(unsigned long), unsigned long min)
{
	unsigned long total = run(0);

	ck_assert_uint_gt(total, min);
	for (unsigned long n = total; n >= 1; n--)
		run(n);
}

START_TEST(every_allocation_fails_once)
{
	/* libhasp's own allocations: the client, its reply buffer, the
	 * request lines, the leases, the revoke notices (10 here). */
	fail_each(run_failing, 5);
}
END_TEST

/* ---- the non-blocking core: hasp_lock_async, process, cancel ---- */

struct async_outcome {
	int calls;
	int r;
	hasp_lease *lease;
};

/* Runs armed: no ck_assert. */
static void async_record(hasp_client *c, hasp_request *req, int r, hasp_lease *lease, void *u)
{
	struct async_outcome *o = u;

	(void)c, (void)req;
	o->calls++;
	o->r = r;
	o->lease = lease;
}

/* Armed: runs c's loop until o has its callback or c's connection is
 * gone, within a bound. */
static void async_pump(hasp_client *c, const struct async_outcome *o)
{
	int64_t end = now_ms() + test_ms(5000);

	while (!o->calls && hasp_client_get_events(c) && now_ms() < end) {
		struct pollfd p = { .fd = hasp_client_get_fd(c),
				    .events = (short)hasp_client_get_events(c) };

		poll(&p, 1, 100);
		hasp_client_process(c);
	}
}

/* One run of the async script with allocation n failing (0: none):
 * a request granted at once, one that waits and is cancelled as its grant
 * crosses the cancel. Each callback runs at most once (never for a
 * request refused at the start or cancelled), and no lease is left
 * behind while c is still open. */
static unsigned long run_async_failing(unsigned long n)
{
	struct async_outcome now = { 0 }, waits = { 0 };
	hasp_lease *held = client_lock(observer, "async-held", HASP_EXCLUSIVE);
	hasp_request *req = NULL;
	hasp_client *c = NULL;
	int r_now = -1, r_waits = -1;
	bool cancelled = false;

	fail_at = n;
	oom_fail(n, false);
	oom_allocations = 0;
	arm();
	if (hasp_connect(daemon_.socket, &c) < 0) {
		disarm(0);
		oom_fail(0, false);
		ck_assert_int_eq(hasp_unlock(observer, held), 0);
		return oom_allocations;
	}
	r_now = hasp_lock_async(c, "async-now", NULL, async_record, &now, NULL);
	r_waits = hasp_lock_async(c, "async-held", NULL, async_record, &waits, &req);
	if (r_now == 0)
		async_pump(c, &now);
	disarm(0);
	ck_assert_int_le(now.calls, 1);
	if (r_now < 0)
		ck_assert_int_eq(now.calls, 0);
	if (now.calls && now.r < 0)
		no_lease_left("async-now", false); /* while c is open */
	/* c has read all there was (the hello's answer too; its allocations
	 * are not counted now), so that readable next means the grant. */
	if (hasp_client_get_events(c))
		hasp_ping(c);
	ck_assert_int_eq(hasp_unlock(observer, held), 0);
	/* The grant is on its way to c (or c's connection is gone). */
	if (r_waits == 0 && !waits.calls && hasp_client_get_events(c))
		ck_assert(wait_readable(hasp_client_fd(c), 5000));
	arm();
	if (r_waits == 0 && !waits.calls) {
		hasp_request_cancel(req);
		cancelled = true;
	}
	hasp_client_process(c); /* reads the crossed grant, releases it */
	disarm(0);
	ck_assert_int_eq(waits.calls, cancelled || r_waits < 0 ? 0 : 1);
	if (cancelled || waits.r < 0)
		no_lease_left("async-held", false); /* c is still open */
	arm();
	if (now.lease)
		hasp_unlock(c, now.lease);
	if (waits.lease)
		hasp_unlock(c, waits.lease);
	hasp_close(c);
	disarm(0);
	oom_fail(0, false);
	wait_gauge(observer, "sessions", 1, 5000);
	ck_assert_int_eq(stats_gauge(observer, "leases"), 0);
	return oom_allocations;
}

START_TEST(every_async_allocation_fails_once)
{
	fail_each(run_async_failing, 5);
}
END_TEST

/* ---- watching: hasp_watch and its events ---- */

/* What a watch callback was handed: events, and events said lost. Runs
 * armed: no ck_assert, no allocation. */
struct watch_seen {
	unsigned long events, lost;
};

static void watch_count(hasp_client *c, const char *text, size_t len, void *u)
{
	struct watch_seen *w = u;
	const char *lost = strstr(text, "\"lost\":");

	(void)c, (void)len;
	if (strstr(text, "\"event\":\"overflow\"") && lost)
		w->lost += strtoul(lost + 7, NULL, 10);
	else
		w->events++;
}

/* The observer takes and releases key: two events for a watcher. */
static void lock_and_unlock(const char *key)
{
	ck_assert_int_eq(hasp_unlock(observer, client_lock(observer, key, HASP_EXCLUSIVE)), 0);
}

/* One run with allocation n failing (0: none): a watch, and two events
 * read armed. A watch works or fails; an event libhasp had no memory to
 * hand on is said lost (an overflow line before the next one), never
 * dropped unsaid: once two more come unarmed, the events seen and the
 * events said lost are four. */
static unsigned long run_watch_failing(unsigned long n)
{
	struct watch_seen w = { 0, 0 };
	hasp_client *c = NULL;
	int64_t end;
	int r;

	fail_at = n;
	oom_fail(n, false);
	oom_allocations = 0;
	arm();
	if (hasp_connect(daemon_.socket, &c) < 0) {
		disarm(0);
		oom_fail(0, false);
		return oom_allocations;
	}
	r = disarm(hasp_watch(c, "oom-watch/", watch_count, &w));
	if (r == 0) {
		lock_and_unlock("oom-watch/k");
		ck_assert(wait_readable(hasp_client_fd(c), 5000)); /* the two events */
		arm();
		hasp_client_process(c);
		disarm(0);
		oom_fail(0, false);
		lock_and_unlock("oom-watch/k");
		end = now_ms() + test_ms(5000);
		while (w.events + w.lost < 4 && hasp_client_get_events(c) && now_ms() < end) {
			struct pollfd p = { .fd = hasp_client_get_fd(c), .events = POLLIN };

			poll(&p, 1, 100);
			hasp_client_process(c);
		}
		ck_assert_msg(!hasp_client_get_events(c) || w.events + w.lost == 4,
			      "allocation %lu failed: %lu events and %lu lost, not 4", n, w.events,
			      w.lost);
	}
	arm();
	hasp_close(c);
	disarm(0);
	oom_fail(0, false);
	wait_gauge(observer, "sessions", 1, 5000);
	return oom_allocations;
}

START_TEST(every_watch_allocation_fails_once)
{
	fail_each(run_watch_failing, 3);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("client-oom");
	TCase *tc = tcase_create("client-oom");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, every_allocation_fails_once);
	tcase_add_test(tc, every_async_allocation_fails_once);
	tcase_add_test(tc, every_watch_allocation_fails_once);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
