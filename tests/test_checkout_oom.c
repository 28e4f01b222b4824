/* libhasp's checkouts and TTLs out of memory, against a real haspd, as
 * test_client_oom does for locks: every allocation a client makes in a
 * scripted set of calls (checkout, renew, checkin, a file checkout, an
 * expiry) fails, the first in one run, the second in the next, and so on.
 *
 * What must hold: a call that reports success did what it says (a checkin:
 * the key is free; a renew: the checkout is still there); a checkout that
 * reports failure leaves none behind that its uid cannot check in by key or
 * file (a detached lease outlives the dropped connection by design); an
 * expired lease is known as expired, or the connection known lost, never
 * taken for held; nothing leaks (the ASan build). */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
	daemon_start(&daemon_);
	observer = client_connect(daemon_.socket);
	snprintf(file, sizeof(file), "%s/checked-out-file", daemon_.dir);
}

/* The harness removes the socket, the fence file and the journal, and the
 * directory once the suite's file is gone too. */
static void teardown(void)
{
	hasp_close(observer);
	daemon_stop(&daemon_);
	unlink(file);
	rmdir(daemon_.dir);
}

/* No ck_assert while armed: Check's own allocations would count. */
static void arm(void)
{
	oom_armed = true;
}

static int disarm(int r)
{
	oom_armed = false;
	return r;
}

/* Whether the observer could take key (or the file) at once. */
static bool is_free(const char *name, bool is_file)
{
	struct hasp_lock_options o = HASP_LOCK_OPTIONS_INIT;
	hasp_lease *l = NULL;
	int r;

	o.timeout_ms = 0;
	r = is_file ? hasp_lock_file(observer, name, &o, &l) : hasp_lock(observer, name, &o, &l);
	ck_assert_msg(r == 0 || r == -HASP_E_BUSY, "%d: %s", r, hasp_client_errmsg(observer));
	if (r == 0)
		ck_assert_int_eq(hasp_unlock(observer, l), 0);
	return r == 0;
}

/* After a failed checkout: nothing held, or a checkout its uid (the
 * observer's) checks in by name. Nothing may be held that way. */
static void no_checkout_stranded(const char *name, bool is_file)
{
	int r;

	if (is_free(name, is_file))
		return;
	r = is_file ? hasp_checkin_file(observer, name) : hasp_checkin_key(observer, name);
	ck_assert_msg(r == 0, "%s is held after a failed checkout (allocation %lu failed), "
		      "and not as a checkout of this uid: %s", name, fail_at,
		      hasp_client_errmsg(observer));
	ck_assert(is_free(name, is_file));
}

/* A checkout the call reports, or none that cannot be checked in. */
static hasp_lease *checkout_or_nothing(hasp_client *c, const char *name, bool is_file)
{
	struct hasp_acquire_options o = HASP_ACQUIRE_OPTIONS_INIT;
	hasp_lease *l = NULL;
	int r;

	o.timeout_ms = 0;
	o.ttl_ms = 600000;
	o.owner = "checkout-oom";
	arm();
	r = disarm(is_file ? hasp_checkout_file(c, name, &o, &l) : hasp_checkout(c, name, &o, &l));
	if (r == 0) {
		ck_assert_ptr_nonnull(l);
		ck_assert_ptr_nonnull(hasp_lease_token(l));
		return l;
	}
	ck_assert_ptr_null(l);
	no_checkout_stranded(name, is_file);
	return NULL;
}

/* A renew that works leaves the checkout there, with the time it says;
 * one that fails leaves it there too (a renew never ends one). */
static void renew_keeps(hasp_client *c, hasp_lease *l)
{
	int64_t expires = -1;
	int r;

	arm();
	r = disarm(hasp_renew(c, l, 0, &expires));
	if (r == 0)
		ck_assert(expires > 0 && expires <= 600000);
	else
		ck_assert_int_eq(expires, -1);
	ck_assert(!is_free(hasp_lease_key(l), false));
}

/* A checkin that works frees the key; one that fails may have, or not:
 * the observer then checks it in by token. */
static void checkin_frees(hasp_client *c, hasp_lease *l, bool is_file)
{
	const char *name = hasp_lease_key(l);
	int r;

	arm();
	r = disarm(is_file ? hasp_checkin_file(c, name) : hasp_checkin(c, hasp_lease_token(l)));
	if (r == 0)
		ck_assert_msg(is_free(name, is_file), "checked in, and still held");
	else if (!is_free(name, is_file))
		ck_assert_int_eq(hasp_checkin(observer, hasp_lease_token(l)), 0);
}

/* A session lease with a 1 ms TTL: once the daemon has said so, c knows
 * it expired, or knows itself lost. */
static void expiry_is_known(hasp_client *c)
{
	struct hasp_acquire_options o = HASP_ACQUIRE_OPTIONS_INIT;
	hasp_lease *l = NULL;
	int64_t end;
	int r;

	o.ttl_ms = 1;
	arm();
	r = disarm(hasp_acquire(c, "checkout-oom-ttl", &o, &l));
	if (r < 0)
		return;
	/* The event may have come with the grant, into libhasp's buffer. */
	end = now_ms() + test_ms(5000);
	for (;;) {
		arm();
		r = disarm(hasp_lease_revoked(c, l));
		if (r != 0 || now_ms() > end)
			break;
		wait_readable(hasp_client_fd(c), 100);
	}
	ck_assert_msg(r == 2 || r < 0, "an expired lease reads as %d (allocation %lu failed)", r,
		      fail_at);
	hasp_lease_free(l);
}

/* One run with allocation n failing (0: none); returns how many the
 * client made. */
static unsigned long run_failing(unsigned long n)
{
	hasp_client *c = NULL;
	hasp_lease *key, *f;

	fail_at = n;
	oom_fail(n, false);
	oom_allocations = 0;
	arm();
	if (disarm(hasp_connect(daemon_.socket, &c)) == 0) {
		key = checkout_or_nothing(c, "checkout-oom", false);
		if (key)
			renew_keeps(c, key);
		if (key)
			checkin_frees(c, key, false);
		f = checkout_or_nothing(c, file, true);
		if (f)
			checkin_frees(c, f, true);
		expiry_is_known(c);
		arm();
		hasp_close(c);
		hasp_lease_free(key);
		hasp_lease_free(f);
		disarm(0);
	}
	oom_fail(0, false);
	/* Whatever failed, the daemon is left with the observer alone. */
	wait_gauge(observer, "sessions", 1, 5000);
	ck_assert_int_eq(stats_gauge(observer, "leases"), 0);
	ck_assert_int_eq(stats_gauge(observer, "checkouts"), 0);
	return oom_allocations;
}

START_TEST(every_allocation_fails_once)
{
	unsigned long total = run_failing(0);

	ck_assert_uint_gt(total, 5);
	for (unsigned long n = total; n >= 1; n--)
		run_failing(n);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("checkout-oom");
	TCase *tc = tcase_create("checkout-oom");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, every_allocation_fails_once);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
