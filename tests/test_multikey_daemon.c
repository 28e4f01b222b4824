/* Multi-key acquires against a real haspd, over the raw protocol: one
 * lease over several keys, granted all-or-nothing, FIFO on each key (no
 * starvation either way), shown under each key by list, released as one. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_run.h"
#include "harness.h"

static struct daemon_proc daemon_;

static void setup(void)
{
	daemon_start(&daemon_);
	setenv("HASP_SOCKET", daemon_.socket, 1);
}

static void teardown(void)
{
	daemon_stop(&daemon_);
}

/* Sends line (its id is id) and returns the reply, which must come. */
static json_t *ask(int fd, int64_t id, const char *line)
{
	json_t *r;

	raw_send(fd, line);
	r = raw_recv_id(fd, id, 5000);
	ck_assert_msg(r != NULL, "no reply to %s", line);
	return r;
}

/* The lease of an ok reply (the reply is dropped). */
static json_int_t lease_of(json_t *r)
{
	json_int_t id;

	ck_assert_msg(reply_error(r) == NULL, "error: %s", reply_message(r));
	id = json_integer_value(json_object_get(r, "lease"));
	json_decref(r);
	return id;
}

static json_int_t hold(int fd, const char *key, const char *mode)
{
	char line[256];

	snprintf(line, sizeof(line), "{\"id\":1,\"op\":\"acquire\",\"key\":\"%s\",\"mode\":\"%s\"}\n",
		 key, mode);
	return lease_of(ask(fd, 1, line));
}

static void release(int fd, json_int_t lease)
{
	char line[128];

	snprintf(line, sizeof(line), "{\"id\":2,\"op\":\"release\",\"lease\":%lld}\n", (long long)lease);
	json_decref(ask(fd, 2, line));
}

/* A try of key in mode: its error code, or NULL when granted (released). */
static const char *try_key(int fd, const char *key, const char *mode)
{
	char line[256];
	json_t *r;
	const char *code;

	snprintf(line, sizeof(line), "{\"id\":3,\"op\":\"acquire\",\"key\":\"%s\",\"mode\":\"%s\","
		 "\"timeout_ms\":0}\n", key, mode);
	r = ask(fd, 3, line);
	code = reply_error(r);
	if (!code) {
		release(fd, json_integer_value(json_object_get(r, "lease")));
		json_decref(r);
		return NULL;
	}
	code = strcmp(code, "busy") == 0 ? "busy" : "other";
	json_decref(r);
	return code;
}

/* line (its id is id) is refused with code. */
static void expect_error(int fd, int64_t id, const char *line, const char *code)
{
	json_t *r = ask(fd, id, line);

	ck_assert_msg(reply_error(r) && strcmp(reply_error(r), code) == 0, "%s: %s, not %s", line,
		      reply_error(r) ? reply_error(r) : "ok", code);
	json_decref(r);
}

/* Nothing comes on fd for a while: a request still waits. */
static void still_waiting(int fd)
{
	json_t *r = raw_recv(fd, 200);

	ck_assert_msg(r == NULL, "unexpected: %s", json_dumps(r, 0));
}

/* key's entry in a list reply: "holders" or "waiters", the i-th. */
static json_t *listed(json_t *list, const char *key, const char *which, size_t i)
{
	json_t *res = json_object_get(list, "resources"), *x;
	size_t k;

	json_array_foreach(res, k, x)
		if (strcmp(json_string_value(json_object_get(x, "key")), key) == 0)
			return json_array_get(json_object_get(x, which), i);
	return NULL;
}

START_TEST(all_or_nothing_listed_under_each_key_released_as_one)
{
	int a = raw_connect(daemon_.socket), b = raw_connect(daemon_.socket);
	int c = raw_connect(daemon_.socket);
	json_int_t hb = hold(a, "mk-b", "exclusive"), lease;
	json_t *r, *list;

	raw_send(b, "{\"id\":4,\"op\":\"acquire\",\"keys\":[\"mk-a\",{\"key\":\"mk-b\","
		 "\"mode\":\"shared\"}],\"owner\":\"both\"}\n");
	still_waiting(b);
	/* It holds nothing meanwhile: mk-a is free, but a writer waits there. */
	list = ask(c, 9, "{\"id\":9,\"op\":\"list\"}\n");
	ck_assert_ptr_null(listed(list, "mk-a", "holders", 0));
	r = listed(list, "mk-a", "waiters", 0);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "keys")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "request")), 4);
	ck_assert_str_eq(json_string_value(json_object_get(r, "waiting_for")), "keys");
	json_decref(list);
	ck_assert_str_eq(try_key(c, "mk-a", "exclusive"), "busy");
	release(a, hb);
	r = raw_recv_id(b, 4, 5000);
	ck_assert_ptr_nonnull(r);
	ck_assert_ptr_null(reply_error(r));
	ck_assert_int_eq(json_array_size(json_object_get(r, "keys")), 2);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(r, "keys"), 1)), "mk-b");
	ck_assert(json_integer_value(json_object_get(r, "fence")) > 0);
	lease = lease_of(r);
	list = ask(c, 9, "{\"id\":9,\"op\":\"list\"}\n");
	ck_assert_int_eq(json_integer_value(json_object_get(listed(list, "mk-a", "holders", 0),
							    "lease")), lease);
	r = listed(list, "mk-b", "holders", 0);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "lease")), lease);
	ck_assert_str_eq(json_string_value(json_object_get(r, "mode")), "shared");
	ck_assert_int_eq(json_integer_value(json_object_get(r, "keys")), 2);
	json_decref(list);
	ck_assert_str_eq(try_key(c, "mk-a", "shared"), "busy");
	ck_assert_ptr_null(try_key(c, "mk-b", "shared"));
	release(b, lease);
	ck_assert_ptr_null(try_key(c, "mk-a", "exclusive"));
	ck_assert_ptr_null(try_key(c, "mk-b", "exclusive"));
	close(a);
	close(b);
	close(c);
}
END_TEST

/* A later single-key reader does not pass a waiting multi-key writer, and
 * a multi-key request does not pass an earlier single-key writer. */
START_TEST(no_starvation_either_way)
{
	int a = raw_connect(daemon_.socket), m = raw_connect(daemon_.socket);
	int r1 = raw_connect(daemon_.socket), w = raw_connect(daemon_.socket);
	json_int_t ha = hold(a, "ns-a", "shared"), lease;
	json_t *r;

	raw_send(m, "{\"id\":5,\"op\":\"acquire\",\"keys\":[\"ns-a\",\"ns-b\"]}\n");
	still_waiting(m);
	raw_send(r1, "{\"id\":6,\"op\":\"acquire\",\"key\":\"ns-a\",\"mode\":\"shared\"}\n");
	still_waiting(r1);
	release(a, ha);
	lease = lease_of(raw_recv_id(m, 5, 5000));
	still_waiting(r1);
	/* A writer queued on ns-b now, then a multi-key request: the writer first. */
	raw_send(w, "{\"id\":7,\"op\":\"acquire\",\"key\":\"ns-b\"}\n");
	still_waiting(w);
	raw_send(a, "{\"id\":8,\"op\":\"acquire\",\"keys\":[\"ns-b\",\"ns-c\"]}\n");
	still_waiting(a);
	release(m, lease);
	r = raw_recv_id(r1, 6, 5000);
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
	release(w, lease_of(raw_recv_id(w, 7, 5000)));
	lease_of(raw_recv_id(a, 8, 5000));
	close(a);
	close(m);
	close(r1);
	close(w);
}
END_TEST

START_TEST(timeout_deadlock_session_end_and_bad_requests)
{
	int a = raw_connect(daemon_.socket), b = raw_connect(daemon_.socket), c;

	hold(a, "dl-a", "exclusive");
	hold(b, "dl-b", "exclusive");
	expect_error(b, 4, "{\"id\":4,\"op\":\"acquire\",\"keys\":[\"dl-c\",\"dl-a\"],\"timeout_ms\":50}\n", "timeout");
	ck_assert_ptr_null(try_key(a, "dl-c", "exclusive"));
	raw_send(a, "{\"id\":5,\"op\":\"acquire\",\"key\":\"dl-b\"}\n");
	still_waiting(a);
	expect_error(b, 6, "{\"id\":6,\"op\":\"acquire\",\"keys\":[\"dl-c\",\"dl-a\"]}\n", "deadlock");
	expect_error(b, 7, "{\"id\":7,\"op\":\"acquire\",\"keys\":[\"dl-c\",\"dl-b\"]}\n", "already_held");
	expect_error(b, 8, "{\"id\":8,\"op\":\"acquire\",\"keys\":[\"dl-c\"]}\n", "bad_request");
	expect_error(b, 8, "{\"id\":8,\"op\":\"acquire\",\"keys\":[\"dl-c\",\"dl-d\"],\"detach\":true}\n", "bad_request");
	/* A waiting multi-key request goes with its session. */
	c = raw_connect(daemon_.socket);
	hold(c, "dl-e", "exclusive");
	raw_send(b, "{\"id\":9,\"op\":\"acquire\",\"keys\":[\"dl-c\",\"dl-e\"]}\n");
	still_waiting(b);
	close(b); /* and b's lease on dl-b: a's request is granted */
	lease_of(raw_recv_id(a, 5, 5000));
	ck_assert_ptr_null(try_key(c, "dl-c", "exclusive"));
	close(a);
	close(c);
}
END_TEST

/* A release by key of one of its keys, and a revoke by key of another
 * lease's, end the whole multi-key lease. */
START_TEST(release_and_revoke_by_key_end_it_whole)
{
	int a = raw_connect(daemon_.socket), b = raw_connect(daemon_.socket);
	json_t *r;
	json_int_t lease;

	raw_send(a, "{\"id\":4,\"op\":\"acquire\",\"keys\":[\"rk-a\",\"rk-b\"]}\n");
	lease = lease_of(raw_recv_id(a, 4, 5000));
	r = ask(a, 5, "{\"id\":5,\"op\":\"release\",\"key\":\"rk-b\"}\n");
	ck_assert_int_eq(lease_of(r), lease);
	ck_assert_ptr_null(try_key(b, "rk-a", "exclusive"));
	ck_assert_ptr_null(try_key(b, "rk-b", "exclusive"));
	raw_send(a, "{\"id\":6,\"op\":\"acquire\",\"keys\":[\"rk-a\",\"rk-b\"]}\n");
	lease = lease_of(raw_recv_id(a, 6, 5000));
	r = ask(b, 7, "{\"id\":7,\"op\":\"revoke\",\"key\":\"rk-a\"}\n");
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
	r = raw_recv(a, 5000); /* the revoked event, one for the lease */
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(json_string_value(json_object_get(r, "event")), "revoked");
	ck_assert_int_eq(json_integer_value(json_object_get(r, "lease")), lease);
	json_decref(r);
	still_waiting(a); /* no second event */
	ck_assert_ptr_null(try_key(b, "rk-b", "exclusive"));
	close(a);
	close(b);
}
END_TEST

/* libhasp's hasp_lock_keys(): one lease, released as one. */
START_TEST(libhasp_locks_several_keys)
{
	hasp_client *a = client_connect(daemon_.socket), *b = client_connect(daemon_.socket);
	const struct hasp_key keys[] = { { "lk-a", HASP_EXCLUSIVE }, { "lk-b", HASP_SHARED } };
	struct hasp_lock_options now = HASP_LOCK_OPTIONS_INIT;
	hasp_lease *l, *shared, *other;

	now.timeout_ms = 0;
	ck_assert_int_eq(hasp_lock_keys(a, keys, 1, NULL, &l), -EINVAL);
	ck_assert_int_eq(hasp_lock_keys(a, keys, 2, NULL, &l), 0);
	ck_assert_str_eq(hasp_lease_key(l), "lk-a\nlk-b");
	ck_assert(hasp_lease_fence(l) > 0);
	ck_assert_int_eq(hasp_lock(b, "lk-a", &now, &other), -HASP_E_BUSY);
	ck_assert_int_eq(hasp_lock(b, "lk-b", &(struct hasp_lock_options){ HASP_SHARED, 0, NULL,
			 NULL, NULL, 0, NULL }, &shared), 0);
	ck_assert_int_eq(hasp_lock_keys(b, keys, 2, &now, &other), -HASP_E_ALREADY_HELD);
	ck_assert_int_eq(hasp_unlock(b, shared), 0);
	ck_assert_int_eq(hasp_lock_keys(b, keys, 2, &now, &other), -HASP_E_BUSY);
	ck_assert_int_eq(hasp_unlock(a, l), 0);
	ck_assert_int_eq(hasp_lock_keys(b, keys, 2, &now, &other), 0);
	ck_assert_int_eq(hasp_unlock(b, other), 0);
	hasp_close(a);
	hasp_close(b);
}
END_TEST

/* hasp lock -k A -k B: one lease over both, its keys in HASP_KEY, one a
 * line; busy leaves nothing held. */
START_TEST(cli_locks_several_keys)
{
	struct hasp_lock_options now = HASP_LOCK_OPTIONS_INIT;
	hasp_client *c = client_connect(daemon_.socket);
	hasp_lease *l;
	char out[8192];
	int w;

	ck_assert_int_eq(RUN(out, "lock", "-k", "cli-a", "-k", "cli-b", "-s", "-c",
			     "printf '%s|' \"$HASP_KEY\"; \"$HASP_CLI\" ls --json"), 0);
	ck_assert_msg(strstr(out, "cli-a\ncli-b|"), "%s", out);
	ck_assert_msg(strstr(out, "\"keys\":2"), "%s", out);
	l = client_lock(c, "cli-b", HASP_EXCLUSIVE);
	/* hasp ls says why a waiting multi-key request waits on a free key. */
	w = raw_connect(daemon_.socket);
	raw_send(w, "{\"id\":1,\"op\":\"acquire\",\"keys\":[\"cli-a\",\"cli-b\"]}\n");
	still_waiting(w);
	ck_assert_int_eq(RUN(out, "ls", "cli-a"), 0);
	ck_assert_msg(strstr(out, "its other keys"), "%s", out);
	close(w);
	ck_assert_int_eq(RUN(out, "lock", "-n", "-k", "cli-a", "-k", "cli-b", "-c", "true"), 1);
	hasp_unlock(c, l);
	now.timeout_ms = 0;
	ck_assert_int_eq(hasp_lock(c, "cli-a", &now, &l), 0); /* nothing was kept */
	hasp_unlock(c, l);
	ck_assert_int_eq(RUN(out, "lock", "-k", "cli-a", "-k", "cli-b", "--ttl", "5", "-c", "true"), 64);
	hasp_close(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("multikey-daemon");
	TCase *tc = tcase_create("daemon");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, all_or_nothing_listed_under_each_key_released_as_one);
	tcase_add_test(tc, no_starvation_either_way);
	tcase_add_test(tc, timeout_deadlock_session_end_and_bad_requests);
	tcase_add_test(tc, release_and_revoke_by_key_end_it_whole);
	tcase_add_test(tc, libhasp_locks_several_keys);
	tcase_add_test(tc, cli_locks_several_keys);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
