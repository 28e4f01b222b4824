/* convert (issue 17) against a real haspd, in raw protocol lines: the
 * upgrade race, an upgrade ahead of a queued writer, a downgrade that lets
 * readers in, timeouts, errors, list and stats, and a file's flock
 * converted with a process outside hasp holding it. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "harness.h"

static struct daemon_proc daemon_;

static void setup(void)
{
	daemon_start(&daemon_);
}

static void teardown(void)
{
	daemon_stop(&daemon_);
}

static void sendf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sendf(int fd, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	raw_send(fd, line);
}

/* The reply to request id on fd. */
static json_t *reply(int fd, int64_t id)
{
	json_t *r = raw_recv_id(fd, id, test_ms(5000));

	ck_assert_ptr_nonnull(r);
	return r;
}

static json_int_t member_int(json_t *r, const char *name)
{
	return json_integer_value(json_object_get(r, name));
}

/* The lease of a granted acquire of key in mode. */
static json_int_t take(int fd, int id, const char *key, const char *mode)
{
	json_t *r;
	json_int_t lease;

	sendf(fd, "{\"id\":%d,\"op\":\"acquire\",\"key\":\"%s\",\"mode\":\"%s\"}\n", id, key, mode);
	r = reply(fd, id);
	ck_assert_ptr_null(reply_error(r));
	lease = member_int(r, "lease");
	json_decref(r);
	return lease;
}

/* A request sent, and seen by haspd (a ping after it answered), which
 * must not be answered yet. */
static void pending(int fd, int id, const char *line)
{
	json_t *r;

	raw_send(fd, line);
	sendf(fd, "{\"id\":%d,\"op\":\"ping\"}\n", id + 1000);
	r = raw_recv(fd, test_ms(5000));
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(member_int(r, "id"), id + 1000);
	json_decref(r);
}

static void convert_pending(int fd, int id, json_int_t lease, int64_t timeout_ms)
{
	char line[160];

	if (timeout_ms < 0)
		snprintf(line, sizeof(line), "{\"id\":%d,\"op\":\"convert\",\"lease\":%lld,"
			 "\"mode\":\"exclusive\"}\n", id, (long long)lease);
	else
		snprintf(line, sizeof(line), "{\"id\":%d,\"op\":\"convert\",\"lease\":%lld,"
			 "\"mode\":\"exclusive\",\"timeout_ms\":%lld}\n", id, (long long)lease,
			 (long long)timeout_ms);
	pending(fd, id, line);
}

/* The reply to a convert of lease to mode, sent now. */
static json_t *convert(int fd, int id, json_int_t lease, const char *mode)
{
	sendf(fd, "{\"id\":%d,\"op\":\"convert\",\"lease\":%lld,\"mode\":\"%s\"}\n", id,
	      (long long)lease, mode);
	return reply(fd, id);
}

static void check_granted(json_t *r, json_int_t lease, const char *mode)
{
	ck_assert_msg(!reply_error(r), "%s", reply_message(r));
	ck_assert_int_eq(member_int(r, "lease"), lease);
	ck_assert_str_eq(json_string_value(json_object_get(r, "mode")), mode);
}

static json_int_t fence_of(json_t *r)
{
	return member_int(r, "fence");
}

/* The holder with this lease in a list of key, or NULL (r keeps it). */
static json_t *listed_holder(json_t *r, json_int_t lease)
{
	json_t *res = json_array_get(json_object_get(r, "resources"), 0);
	json_t *h;
	size_t i;

	json_array_foreach(json_object_get(res, "holders"), i, h)
		if (member_int(h, "lease") == lease)
			return h;
	return NULL;
}

static void release(int fd, int id, json_int_t lease)
{
	json_t *r;

	sendf(fd, "{\"id\":%d,\"op\":\"release\",\"lease\":%lld}\n", id, (long long)lease);
	r = reply(fd, id);
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
}

/* Two readers both upgrade: the second gets deadlock, naming both waits;
 * the first is granted, with a new fence, once the second lets go. */
START_TEST(two_upgraders_one_deadlock)
{
	int a = raw_connect(daemon_.socket), b = raw_connect(daemon_.socket);
	json_int_t la = take(a, 1, "k", "shared"), lb = take(b, 1, "k", "shared");
	json_t *r, *cycle, *h;

	convert_pending(a, 2, la, -1);
	sendf(b, "{\"id\":9,\"op\":\"list\",\"prefix\":\"k\"}\n");
	r = reply(b, 9);
	h = listed_holder(r, la);
	ck_assert_ptr_nonnull(h);
	ck_assert(json_is_true(json_object_get(h, "upgrading")));
	ck_assert_int_eq(member_int(json_object_get(h, "upgrade"), "request"), 2);
	ck_assert_ptr_null(json_object_get(listed_holder(r, lb), "upgrading"));
	json_decref(r);

	r = convert(b, 2, lb, "exclusive");
	ck_assert_str_eq(reply_error(r), "deadlock");
	cycle = json_object_get(json_object_get(r, "error"), "cycle");
	ck_assert_uint_eq(json_array_size(cycle), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(cycle, 0), "mode")),
			 "exclusive");
	ck_assert_int_eq(member_int(json_object_get(json_array_get(cycle, 0), "waits_for"),
				    "lease"), la);
	ck_assert(json_is_true(json_object_get(json_array_get(cycle, 1), "upgrading")));
	ck_assert_msg(strstr(reply_message(r), "waits for exclusive on 'k', held by"), "%s",
		      reply_message(r));
	json_decref(r);

	release(b, 3, lb);
	r = reply(a, 2);
	check_granted(r, la, "exclusive");
	json_decref(r);
	close(a);
	close(b);
}
END_TEST

/* The upgrade goes ahead of the writer queued before it; then the writer. */
START_TEST(an_upgrade_goes_ahead_of_a_queued_writer)
{
	int a = raw_connect(daemon_.socket), b = raw_connect(daemon_.socket);
	int c = raw_connect(daemon_.socket);
	json_int_t la = take(a, 1, "k", "shared"), lb = take(b, 1, "k", "shared");
	json_int_t old_fence;
	json_t *r;

	pending(c, 1, "{\"id\":1,\"op\":\"acquire\",\"key\":\"k\"}\n");
	convert_pending(a, 2, la, -1);
	sendf(b, "{\"id\":8,\"op\":\"list\",\"prefix\":\"k\"}\n");
	r = reply(b, 8);
	old_fence = member_int(listed_holder(r, la), "fence");
	json_decref(r);
	release(b, 2, lb);
	r = reply(a, 2);
	check_granted(r, la, "exclusive");
	ck_assert_int_gt(fence_of(r), old_fence);
	json_decref(r);
	ck_assert_ptr_null(raw_recv(c, test_ms(100))); /* still waits */
	release(a, 3, la);
	r = reply(c, 1);
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
	close(a);
	close(b);
	close(c);
}
END_TEST

/* A downgrade answers at once, keeps the fence, and lets the readers
 * queued behind it in, not the writer after them. */
START_TEST(a_downgrade_lets_queued_readers_in)
{
	int a = raw_connect(daemon_.socket), b = raw_connect(daemon_.socket);
	int c = raw_connect(daemon_.socket), w = raw_connect(daemon_.socket);
	json_int_t la;
	json_t *r, *first;

	sendf(a, "{\"id\":1,\"op\":\"acquire\",\"key\":\"k\"}\n");
	first = reply(a, 1);
	la = member_int(first, "lease");
	pending(b, 1, "{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"mode\":\"shared\"}\n");
	pending(c, 1, "{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"mode\":\"shared\"}\n");
	pending(w, 1, "{\"id\":1,\"op\":\"acquire\",\"key\":\"k\"}\n");
	r = convert(a, 2, la, "shared");
	check_granted(r, la, "shared");
	ck_assert_int_eq(fence_of(r), fence_of(first));
	json_decref(r);
	json_decref(first);
	r = reply(b, 1);
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
	r = reply(c, 1);
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
	ck_assert_ptr_null(raw_recv(w, test_ms(100)));
	close(a);
	close(b);
	close(c);
	close(w);
}
END_TEST

/* An upgrade that times out (or tries once) leaves the lease shared, and
 * a reader that waited behind it goes in. */
START_TEST(a_timed_out_upgrade_stays_shared)
{
	int a = raw_connect(daemon_.socket), b = raw_connect(daemon_.socket);
	int c = raw_connect(daemon_.socket);
	json_int_t la = take(a, 1, "k", "shared");
	int64_t start;
	json_t *r;

	take(b, 1, "k", "shared");
	sendf(a, "{\"id\":2,\"op\":\"convert\",\"lease\":%lld,\"mode\":\"exclusive\","
	      "\"timeout_ms\":0}\n", (long long)la);
	r = reply(a, 2);
	ck_assert_str_eq(reply_error(r), "busy");
	ck_assert_ptr_nonnull(json_object_get(json_object_get(r, "error"), "holders"));
	json_decref(r);
	start = now_ms();
	convert_pending(a, 3, la, 200);
	pending(c, 1, "{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"mode\":\"shared\"}\n");
	r = reply(a, 3);
	ck_assert_str_eq(reply_error(r), "timeout");
	ck_assert_int_ge(now_ms() - start, 200);
	json_decref(r);
	r = reply(c, 1);
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
	/* Still a shared lease: it converts again. */
	r = convert(a, 4, la, "shared");
	check_granted(r, la, "shared");
	json_decref(r);
	close(a);
	close(b);
	close(c);
}
END_TEST

/* The errors, a convert to the mode it has, a cancel, and the counters. */
START_TEST(errors_and_counters)
{
	hasp_client *cl = client_connect(daemon_.socket);
	int a = raw_connect(daemon_.socket), b = raw_connect(daemon_.socket);
	json_int_t la = take(a, 1, "k", "shared"), lb = take(b, 1, "k", "shared"), ls;
	json_t *r;

	r = convert(b, 2, la, "exclusive");
	ck_assert_str_eq(reply_error(r), "unknown_lease");
	json_decref(r);
	sendf(a, "{\"id\":3,\"op\":\"convert\",\"lease\":%lld}\n", (long long)la);
	r = reply(a, 3);
	ck_assert_str_eq(reply_error(r), "bad_request");
	json_decref(r);
	r = convert(a, 4, la, "shared");
	check_granted(r, la, "shared");
	json_decref(r);
	sendf(a, "{\"id\":5,\"op\":\"acquire\",\"key\":\"sem\",\"limit\":2}\n");
	r = reply(a, 5);
	ls = member_int(r, "lease");
	json_decref(r);
	r = convert(a, 6, ls, "shared");
	ck_assert_str_eq(reply_error(r), "bad_request");
	json_decref(r);
	/* A waiting upgrade is cancelled as an acquire is. */
	convert_pending(a, 7, la, -1);
	r = convert(a, 8, la, "shared");
	ck_assert_str_eq(reply_error(r), "already_held");
	json_decref(r);
	sendf(a, "{\"id\":9,\"op\":\"cancel\",\"request\":7}\n");
	r = reply(a, 7);
	ck_assert_str_eq(reply_error(r), "cancelled");
	json_decref(r);
	r = reply(a, 9);
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
	ck_assert_int_eq(stats_counter(cl, "converts"), 1);
	ck_assert_int_eq(stats_counter(cl, "cancels"), 1);
	ck_assert_int_eq(stats_gauge(cl, "upgrading"), 0);
	/* The session's end takes its pending upgrade with it. */
	convert_pending(a, 10, la, -1);
	ck_assert_int_eq(stats_gauge(cl, "upgrading"), 1);
	close(a);
	wait_gauge(cl, "upgrading", 0, test_ms(5000));
	r = convert(b, 2, lb, "exclusive");
	check_granted(r, lb, "exclusive");
	json_decref(r);
	ck_assert_int_eq(stats_counter(cl, "upgrades_at_once"), 1);
	close(b);
	hasp_close(cl);
}
END_TEST

/* A file lease's upgrade waits while a process outside hasp holds the
 * flock shared, the file staying locked all along, and is granted when
 * the outsider lets go: the daemon's flock is exclusive then; a downgrade
 * makes it shared again. */
START_TEST(a_file_upgrade_waits_for_an_outside_flock)
{
	char path[192], line[384];
	int a = raw_connect(daemon_.socket), f, outsider, probe;
	json_int_t la;
	json_t *r;

	snprintf(path, sizeof(path), "%s/data", daemon_.dir);
	f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_ge(f, 0);
	snprintf(line, sizeof(line), "{\"id\":1,\"op\":\"acquire\",\"path\":\"%s\",\"fd\":true,"
		 "\"mode\":\"shared\"}\n", path);
	raw_send_fd(a, line, f);
	r = reply(a, 1);
	ck_assert_msg(!reply_error(r), "%s", reply_message(r));
	la = member_int(r, "lease");
	json_decref(r);
	outsider = open(path, O_RDONLY | O_CLOEXEC);
	probe = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(flock(outsider, LOCK_SH | LOCK_NB), 0);

	sendf(a, "{\"id\":2,\"op\":\"convert\",\"lease\":%lld,\"mode\":\"exclusive\","
	      "\"timeout_ms\":0}\n", (long long)la);
	r = reply(a, 2);
	ck_assert_str_eq(reply_error(r), "busy");
	json_decref(r);
	/* The daemon's own shared flock is still there when the outsider's goes. */
	ck_assert_int_eq(flock(outsider, LOCK_UN), 0);
	ck_assert_int_ne(flock(probe, LOCK_EX | LOCK_NB), 0);
	ck_assert_int_eq(flock(outsider, LOCK_SH | LOCK_NB), 0);

	convert_pending(a, 3, la, -1);
	for (int i = 0; i < 20; i++) { /* retried meanwhile: never let go of */
		ck_assert_int_ne(flock(probe, LOCK_EX | LOCK_NB), 0);
		usleep(1000);
	}
	ck_assert_int_eq(flock(outsider, LOCK_UN), 0);
	r = reply(a, 3);
	check_granted(r, la, "exclusive");
	json_decref(r);
	ck_assert_int_ne(flock(probe, LOCK_SH | LOCK_NB), 0); /* the daemon's is exclusive */

	r = convert(a, 4, la, "shared");
	check_granted(r, la, "shared");
	json_decref(r);
	ck_assert_int_eq(flock(probe, LOCK_SH | LOCK_NB), 0);
	ck_assert_int_ne(flock(outsider, LOCK_EX | LOCK_NB), 0);
	close(probe);
	close(outsider);
	close(f);
	close(a);
}
END_TEST

/* A lease revoked while its upgrade waits: the holder hears of the revoke,
 * and its convert is answered unknown_lease; the other reader upgrades. */
START_TEST(an_upgrade_ends_with_its_revoked_lease)
{
	int a = raw_connect(daemon_.socket), b = raw_connect(daemon_.socket);
	int admin = raw_connect(daemon_.socket);
	json_int_t la = take(a, 1, "k", "shared"), lb = take(b, 1, "k", "shared");
	json_t *r;

	convert_pending(a, 2, la, -1);
	sendf(admin, "{\"id\":1,\"op\":\"revoke\",\"lease\":%lld}\n", (long long)la);
	r = reply(admin, 1);
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
	r = raw_recv(a, test_ms(5000)); /* the event first: written before the reply */
	ck_assert_str_eq(json_string_value(json_object_get(r, "event")), "revoked");
	json_decref(r);
	r = reply(a, 2);
	ck_assert_str_eq(reply_error(r), "unknown_lease");
	json_decref(r);
	r = convert(b, 2, lb, "exclusive");
	check_granted(r, lb, "exclusive");
	json_decref(r);
	close(a);
	close(b);
	close(admin);
}
END_TEST

/* libhasp's hasp_convert(): busy and timeout leave the lease shared and
 * name the holders; an upgrade alone is granted with a new fence; a
 * downgrade keeps it; a second upgrader gets the deadlock's cycle. */
START_TEST(libhasp_converts)
{
	hasp_client *a = client_connect(daemon_.socket), *b = client_connect(daemon_.socket);
	hasp_lease *la = client_lock(a, "k", HASP_SHARED), *lb = client_lock(b, "k", HASP_SHARED);
	int raw = raw_connect(daemon_.socket);
	json_int_t lr;
	uint64_t fence;

	ck_assert_int_eq(hasp_convert(a, la, HASP_EXCLUSIVE, 0), -HASP_E_BUSY);
	ck_assert_uint_ge(hasp_client_conflict_count(a), 1);
	ck_assert_int_eq(hasp_convert(a, la, HASP_EXCLUSIVE, 50), -HASP_E_TIMEOUT);
	ck_assert_int_eq(hasp_lease_mode(la), HASP_SHARED);
	ck_assert_int_eq(hasp_convert(a, la, 7, 0), -EINVAL);
	ck_assert_int_eq(hasp_unlock(b, lb), 0);
	fence = hasp_lease_fence(la);
	ck_assert_int_eq(hasp_convert(a, la, HASP_EXCLUSIVE, HASP_WAIT_FOREVER), 0);
	ck_assert_int_eq(hasp_lease_mode(la), HASP_EXCLUSIVE);
	ck_assert_uint_gt(hasp_lease_fence(la), fence);
	fence = hasp_lease_fence(la);
	ck_assert_int_eq(hasp_convert(a, la, HASP_SHARED, 0), 0);
	ck_assert_int_eq(hasp_lease_mode(la), HASP_SHARED);
	ck_assert_uint_eq(hasp_lease_fence(la), fence);

	lr = take(raw, 1, "k", "shared");
	convert_pending(raw, 2, lr, -1);
	ck_assert_int_eq(hasp_convert(a, la, HASP_EXCLUSIVE, HASP_WAIT_FOREVER), -HASP_E_DEADLOCK);
	ck_assert_uint_eq(hasp_client_cycle_count(a), 2);
	ck_assert_int_eq(hasp_unlock(a, la), 0);
	json_decref(reply(raw, 2));
	close(raw);
	hasp_close(a);
	hasp_close(b);
}
END_TEST

static void count_done(hasp_client *c, int r, void *userdata)
{
	int *done = userdata;

	(void)c;
	done[0]++;
	done[1] = r;
}

/* Runs c's loop until done[0] is set or ms pass. */
static bool run_until_done(hasp_client *c, const int *done, int ms)
{
	int64_t end = now_ms() + test_ms(ms);

	while (!done[0] && now_ms() < end) {
		struct pollfd p = { .fd = hasp_client_get_fd(c),
				    .events = (short)hasp_client_get_events(c) };

		poll(&p, 1, 10);
		hasp_client_process(c);
	}
	return done[0];
}

/* hasp_convert_async(): the upgrade waits while the loop runs, and its
 * callback comes, the lease exclusive, once the other reader is gone. */
START_TEST(libhasp_converts_without_waiting)
{
	hasp_client *a = client_connect(daemon_.socket), *b = client_connect(daemon_.socket);
	hasp_lease *la = client_lock(a, "k", HASP_SHARED), *lb = client_lock(b, "k", HASP_SHARED);
	int done[2] = { 0, 1 };
	uint64_t fence = hasp_lease_fence(la);

	ck_assert_int_eq(hasp_convert_async(a, la, HASP_EXCLUSIVE, HASP_WAIT_FOREVER, NULL, NULL),
			 -EINVAL);
	ck_assert_int_eq(hasp_convert_async(a, la, HASP_EXCLUSIVE, HASP_WAIT_FOREVER, count_done,
					    done), 0);
	ck_assert(!run_until_done(a, done, 100));
	ck_assert_int_eq(hasp_lease_mode(la), HASP_SHARED);
	ck_assert_int_eq(hasp_unlock(b, lb), 0);
	ck_assert(run_until_done(a, done, 5000));
	ck_assert_int_eq(done[1], 0);
	ck_assert_int_eq(hasp_lease_mode(la), HASP_EXCLUSIVE);
	ck_assert_uint_gt(hasp_lease_fence(la), fence);
	done[0] = 0;
	ck_assert_int_eq(hasp_convert_async(a, la, HASP_SHARED, 0, count_done, done), 0);
	ck_assert(run_until_done(a, done, 5000));
	ck_assert_int_eq(done[1], 0);
	ck_assert_int_eq(hasp_lease_mode(la), HASP_SHARED);
	ck_assert_int_eq(hasp_unlock(a, la), 0);
	hasp_close(a);
	hasp_close(b);
}
END_TEST

static Suite *convert_daemon_suite(void)
{
	Suite *s = suite_create("convert-daemon");
	TCase *tc = tcase_create("haspd");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, two_upgraders_one_deadlock);
	tcase_add_test(tc, an_upgrade_goes_ahead_of_a_queued_writer);
	tcase_add_test(tc, a_downgrade_lets_queued_readers_in);
	tcase_add_test(tc, a_timed_out_upgrade_stays_shared);
	tcase_add_test(tc, errors_and_counters);
	tcase_add_test(tc, a_file_upgrade_waits_for_an_outside_flock);
	tcase_add_test(tc, libhasp_converts);
	tcase_add_test(tc, an_upgrade_ends_with_its_revoked_lease);
	tcase_add_test(tc, libhasp_converts_without_waiting);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(convert_daemon_suite());
}
