/* libhasp's hasp_watch() against a real haspd (issue 18): a contention
 * story's events handed to the callback in order as NUL-terminated JSON;
 * a revoke of the watcher's own lease still goes to the event handler
 * (the watch sees it as released); a second watch replaces the prefix and
 * the callback; refused prefixes; the end of the connection ends the
 * events. Every wait is on an event, with a bound. */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "hasp.h"

static struct daemon_proc daemon_;

static void setup(void)
{
	daemon_start(&daemon_);
}

static void teardown(void)
{
	daemon_stop(&daemon_);
}

#define MAX_SEEN 64

/* What a watch callback was handed. */
struct seen {
	json_t *ev[MAX_SEEN];
	size_t n;
};

static void collect(hasp_client *c, const char *text, size_t len, void *u)
{
	struct seen *s = u;
	json_t *ev;

	(void)c;
	ck_assert_uint_eq(strlen(text), len);
	ck_assert_msg(len > 0 && text[len - 1] == '}', "not one object without newline: '%s'",
		      text);
	ev = json_loads(text, 0, NULL);
	ck_assert_msg(ev && json_is_object(ev), "not JSON: '%s'", text);
	ck_assert_uint_lt(s->n, MAX_SEEN);
	s->ev[s->n++] = ev;
}

static void seen_done(struct seen *s)
{
	for (size_t i = 0; i < s->n; i++)
		json_decref(s->ev[i]);
	s->n = 0;
}

/* Drives c until *count (a callback's) reaches want (bounded). */
static void drive(hasp_client *c, const size_t *count, size_t want)
{
	int64_t end = now_ms() + test_ms(5000);

	while (*count < want) {
		struct pollfd p = { .fd = hasp_client_get_fd(c), .events = POLLIN };

		ck_assert_msg(now_ms() < end, "%zu of %zu after 5 s", *count, want);
		poll(&p, 1, 100);
		ck_assert_int_eq(hasp_client_process(c), 0);
	}
}

/* Drives c until s holds n events. */
static void await_events(hasp_client *c, struct seen *s, size_t n)
{
	drive(c, &s->n, n);
}

static const char *str_of(json_t *ev, const char *name)
{
	const char *v = json_string_value(json_object_get(ev, name));

	return v ? v : "";
}

static long long int_of(json_t *ev, const char *name)
{
	return (long long)json_integer_value(json_object_get(ev, name));
}

/* Event i is name, on key. */
static void assert_event(struct seen *s, size_t i, const char *name, const char *key)
{
	char *text = json_dumps(s->ev[i], JSON_COMPACT);

	ck_assert_msg(strcmp(str_of(s->ev[i], "event"), name) == 0 &&
		      strcmp(str_of(s->ev[i], "key"), key) == 0,
		      "event %zu is %s, not %s on %s", i, text, name, key);
	free(text);
}

/* What an async acquire's callback got. */
struct got {
	size_t done;
	int r;
	hasp_lease *lease;
};

static void keep(hasp_client *c, hasp_request *q, int r, hasp_lease *l, void *u)
{
	struct got *g = u;

	(void)c, (void)q;
	g->done++;
	g->r = r;
	g->lease = l;
}

START_TEST(a_contention_story_in_order)
{
	struct hasp_acquire_options o = HASP_ACQUIRE_OPTIONS_INIT;
	struct hasp_lock_options t = HASP_LOCK_OPTIONS_INIT;
	hasp_client *w = client_connect(daemon_.socket), *a = client_connect(daemon_.socket);
	hasp_client *b = client_connect(daemon_.socket), *c = client_connect(daemon_.socket);
	struct seen s = { .n = 0 };
	struct got gb = { 0, 0, NULL };
	hasp_lease *la, *lc = NULL, *lo;
	uint64_t la_id;

	ck_assert_int_eq(hasp_watch(w, "story/", collect, &s), 0);
	la = client_lock(a, "story/db", HASP_EXCLUSIVE);
	la_id = hasp_lease_id(la);
	lo = client_lock(a, "other/db", HASP_EXCLUSIVE); /* not on the prefix: never seen */
	await_events(w, &s, 1);
	o.owner = "bob";
	ck_assert_int_eq(hasp_lock_async(b, "story/db", &o, keep, &gb, NULL), 0);
	ck_assert_int_eq(hasp_client_process(b), 0);
	await_events(w, &s, 2); /* queued: b waits */
	ck_assert_int_eq(hasp_unlock(a, la), 0);
	await_events(w, &s, 4); /* released, granted */
	drive(b, &gb.done, 1);
	ck_assert_int_eq(gb.r, 0);
	t.timeout_ms = 50;
	ck_assert_int_eq(hasp_lock(c, "story/db", &t, &lc), -HASP_E_TIMEOUT);
	await_events(w, &s, 6); /* queued, timeout */

	assert_event(&s, 0, "granted", "story/db");
	ck_assert_int_eq(int_of(s.ev[0], "waited_ms"), 0);
	ck_assert_int_eq(int_of(s.ev[0], "lease"), (long long)la_id);
	assert_event(&s, 1, "queued", "story/db");
	ck_assert_str_eq(str_of(s.ev[1], "owner"), "bob");
	assert_event(&s, 2, "released", "story/db");
	ck_assert_str_eq(str_of(s.ev[2], "reason"), "release");
	assert_event(&s, 3, "granted", "story/db");
	ck_assert_int_eq(int_of(s.ev[3], "lease"), (long long)hasp_lease_id(gb.lease));
	ck_assert_int_eq(int_of(s.ev[3], "fence"), (long long)hasp_lease_fence(gb.lease));
	ck_assert_int_eq(int_of(s.ev[3], "request"), int_of(s.ev[1], "request"));
	assert_event(&s, 4, "queued", "story/db");
	assert_event(&s, 5, "timeout", "story/db");
	ck_assert_int_ge(int_of(s.ev[5], "waited_ms"), 50);
	ck_assert_uint_eq(s.n, 6);
	seen_done(&s);
	hasp_lease_free(gb.lease);
	hasp_lease_free(lo);
	hasp_close(c);
	hasp_close(b);
	hasp_close(a);
	hasp_close(w);
}
END_TEST

/* What the event handler was told. */
struct told {
	size_t revoked, disconnected;
	uint64_t lease;
};

static void on_event(hasp_client *c, enum hasp_event ev, uint64_t lease, void *u)
{
	struct told *t = u;

	(void)c;
	if (ev == HASP_EVENT_REVOKED)
		t->revoked++;
	if (ev == HASP_EVENT_DISCONNECTED)
		t->disconnected++;
	t->lease = lease;
}

START_TEST(a_revoke_still_goes_to_the_event_handler)
{
	hasp_client *w = client_connect(daemon_.socket), *admin = client_connect(daemon_.socket);
	struct seen s = { .n = 0 };
	struct told t = { 0, 0, 0 };
	hasp_lease *l;

	hasp_client_set_event_handler(w, on_event, &t);
	ck_assert_int_eq(hasp_watch(w, NULL, collect, &s), 0);
	l = client_lock(w, "mine", HASP_EXCLUSIVE);
	await_events(w, &s, 1);
	ck_assert_int_eq(hasp_revoke(admin, hasp_lease_id(l)), 0);
	await_events(w, &s, 2);
	assert_event(&s, 1, "released", "mine");
	ck_assert_str_eq(str_of(s.ev[1], "reason"), "revoke");
	/* The revoke notice came too, to the handler, not to the watch. */
	drive(w, &t.revoked, 1);
	ck_assert_uint_eq(t.lease, hasp_lease_id(l));
	ck_assert_int_eq(hasp_lease_revoked(w, l), 1);
	for (size_t i = 0; i < s.n; i++)
		ck_assert_str_ne(str_of(s.ev[i], "event"), "revoked");
	hasp_lease_free(l);
	seen_done(&s);
	hasp_close(admin);
	hasp_close(w);
}
END_TEST

START_TEST(a_second_watch_replaces_the_first)
{
	hasp_client *w = client_connect(daemon_.socket), *a = client_connect(daemon_.socket);
	struct seen first = { .n = 0 }, second = { .n = 0 };

	ck_assert_int_eq(hasp_watch(w, "one/", collect, &first), 0);
	ck_assert_int_eq(hasp_unlock(a, client_lock(a, "one/k", HASP_EXCLUSIVE)), 0);
	await_events(w, &first, 2);
	ck_assert_int_eq(hasp_watch(w, "two/", collect, &second), 0);
	ck_assert_int_eq(hasp_unlock(a, client_lock(a, "one/k", HASP_EXCLUSIVE)), 0);
	ck_assert_int_eq(hasp_unlock(a, client_lock(a, "two/k", HASP_EXCLUSIVE)), 0);
	await_events(w, &second, 2);
	assert_event(&second, 0, "granted", "two/k");
	assert_event(&second, 1, "released", "two/k");
	ck_assert_uint_eq(first.n, 2); /* nothing more of one/ */
	seen_done(&first);
	seen_done(&second);
	hasp_close(a);
	hasp_close(w);
}
END_TEST

START_TEST(refused_prefixes)
{
	hasp_client *w = client_connect(daemon_.socket);
	struct seen s = { .n = 0 };
	int fd = raw_connect(daemon_.socket);
	json_t *r;

	ck_assert_int_eq(hasp_watch(w, "bad\xff", collect, &s), -EINVAL);
	ck_assert_int_eq(hasp_watch(w, "x", NULL, &s), -EINVAL);
	/* A prefix that is not a string, in the raw protocol (libhasp cannot
	 * send one). */
	raw_send(fd, "{\"id\":1,\"op\":\"watch\",\"prefix\":5}\n");
	r = raw_reply(fd, 1);
	ck_assert_str_eq(reply_error(r) ? reply_error(r) : "ok", "bad_request");
	json_decref(r);
	raw_send(fd, "{\"id\":2,\"op\":\"watch\",\"prefix\":[\"a\"]}\n");
	r = raw_reply(fd, 2);
	ck_assert_str_eq(reply_error(r) ? reply_error(r) : "ok", "bad_request");
	json_decref(r);
	close(fd);
	/* The client is still good for a watch. */
	ck_assert_int_eq(hasp_watch(w, "", collect, &s), 0);
	hasp_close(w);
}
END_TEST

START_TEST(the_end_of_the_connection_ends_the_events)
{
	hasp_client *w = client_connect(daemon_.socket);
	struct seen s = { .n = 0 };
	struct told t = { 0, 0, 0 };
	int64_t end;
	int r = 0;

	hasp_client_set_event_handler(w, on_event, &t);
	ck_assert_int_eq(hasp_watch(w, NULL, collect, &s), 0);
	daemon_stop(&daemon_);
	end = now_ms() + test_ms(5000);
	while (r == 0) {
		struct pollfd p = { .fd = hasp_client_get_fd(w), .events = POLLIN };

		ck_assert_msg(now_ms() < end, "the end of the connection was not seen");
		poll(&p, 1, 100);
		r = hasp_client_process(w);
	}
	ck_assert_int_eq(r, -ECONNRESET);
	ck_assert_uint_eq(t.disconnected, 1);
	ck_assert_uint_eq(s.n, 0);
	hasp_close(w);
	daemon_start(&daemon_); /* for the teardown */
}
END_TEST

/* hasp_close() waits for a checkout's release to reach haspd, reading
 * what comes meanwhile: the watch's events are not handed on then. */
START_TEST(no_event_while_closing)
{
	hasp_client *w = client_connect(daemon_.socket);
	struct seen s = { .n = 0 };
	hasp_lease *l;

	ck_assert_int_eq(hasp_watch(w, NULL, collect, &s), 0);
	ck_assert_int_eq(hasp_checkout(w, "co", NULL, &l), 0);
	await_events(w, &s, 1);
	assert_event(&s, 0, "granted", "co");
	ck_assert_int_eq(hasp_unlock_async(w, l, NULL, NULL), 0);
	hasp_close(w); /* reads the release's answer, and its released event */
	ck_assert_uint_eq(s.n, 1);
	seen_done(&s);
}
END_TEST

static Suite *watch_api_suite(void)
{
	Suite *s = suite_create("watch-api");
	TCase *tc = tcase_create("watch");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, a_contention_story_in_order);
	tcase_add_test(tc, a_revoke_still_goes_to_the_event_handler);
	tcase_add_test(tc, a_second_watch_replaces_the_first);
	tcase_add_test(tc, refused_prefixes);
	tcase_add_test(tc, the_end_of_the_connection_ends_the_events);
	tcase_add_test(tc, no_event_while_closing);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(watch_api_suite());
}
