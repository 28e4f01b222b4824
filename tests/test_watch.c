/* Watching haspd (issue 18) against a real daemon in raw protocol lines:
 * a watcher sees a whole contention story in order, only on its prefix; a
 * watcher that never reads loses events (counted, then told) while lock
 * traffic goes on and its session lives; the audit trail's journal entries
 * (a datagram socket standing in for journald, as sd_journal_send(3)
 * writes to it) and plain lines, within the rate limit; and the
 * histograms, busiest keys and users of stats. */
#include <check.h>
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
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

static json_int_t member_int(json_t *o, const char *name)
{
	return json_integer_value(json_object_get(o, name));
}

static const char *member_str(json_t *o, const char *name)
{
	const char *s = json_string_value(json_object_get(o, name));

	return s ? s : "";
}

/* A request answered ok; its reply. */
static json_t *ok(int fd, int64_t id)
{
	json_t *r = raw_reply(fd, id);

	ck_assert_msg(!reply_error(r), "request %lld: %s", (long long)id, reply_message(r));
	return r;
}

/* The lease an acquire line (with this id) was granted. */
static json_int_t granted(int fd, int64_t id)
{
	json_t *r = ok(fd, id);
	json_int_t lease = member_int(r, "lease");

	json_decref(r);
	return lease;
}

/* A request sent and seen to wait: a ping after it is answered first. */
static void waits(int fd, int64_t ping_id)
{
	raw_sendf(fd, "{\"id\":%lld,\"op\":\"ping\"}\n", (long long)ping_id);
	json_decref(ok(fd, ping_id));
	ck_assert(!wait_readable(fd, 0));
}

static int watcher(const char *socket, const char *prefix)
{
	int w = raw_connect(socket);

	raw_sendf(w, "{\"id\":1,\"op\":\"watch\",\"prefix\":\"%s\"}\n", prefix);
	json_decref(ok(w, 1));
	return w;
}

/* The watcher's next event, which must be this one (reason: its reason,
 * or "" for none) on this key. */
static json_t *expect(int w, const char *event, const char *reason, const char *key)
{
	json_t *e = raw_recv(w, test_ms(5000));

	ck_assert_msg(e, "no %s event", event);
	ck_assert_str_eq(member_str(e, "event"), event);
	ck_assert_str_eq(member_str(e, "reason"), reason);
	ck_assert_str_eq(member_str(e, "key"), key);
	ck_assert_msg(strlen(member_str(e, "time")) == 27, "time %s", member_str(e, "time"));
	ck_assert_int_gt(member_int(e, "pid"), 0);
	return e;
}

static void expect_only(int w, const char *event, const char *reason, const char *key)
{
	json_decref(expect(w, event, reason, key));
}

/* ---- watch ---- */

START_TEST(a_contention_story_in_order)
{
	const char *s = daemon_.socket;
	int w = watcher(s, "story/"), a = raw_connect(s), b = raw_connect(s), c = raw_connect(s);
	json_int_t la, lb, lt, lr, lm;
	json_t *e, *r;

	raw_send(a, "{\"id\":1,\"op\":\"acquire\",\"key\":\"other/k\"}\n");
	json_decref(ok(a, 1)); /* not on the prefix: no event */
	raw_send(a, "{\"id\":2,\"op\":\"acquire\",\"key\":\"story/db\",\"owner\":\"alice\"}\n");
	la = granted(a, 2);
	e = expect(w, "granted", "", "story/db");
	ck_assert_int_eq(member_int(e, "lease"), la);
	ck_assert_int_eq(member_int(e, "waited_ms"), 0);
	ck_assert_str_eq(member_str(e, "owner"), "alice");
	ck_assert_str_eq(member_str(e, "mode"), "exclusive");
	json_decref(e);

	raw_send(b, "{\"id\":7,\"op\":\"acquire\",\"key\":\"story/db\",\"timeout_ms\":20000}\n");
	waits(b, 8);
	e = expect(w, "queued", "", "story/db");
	ck_assert_int_eq(member_int(e, "request"), 7);
	json_decref(e);
	raw_send(c, "{\"id\":3,\"op\":\"acquire\",\"key\":\"story/db\",\"timeout_ms\":30}\n");
	r = raw_reply(c, 3);
	ck_assert_str_eq(reply_error(r), "timeout");
	json_decref(r);
	/* Without a journal, at log level warning: its audit line is not
	 * logged, so not counted either. */
	raw_send(c, "{\"id\":30,\"op\":\"stats\"}\n");
	r = ok(c, 30);
	ck_assert_int_eq(member_int(json_object_get(json_object_get(r, "stats"), "counters"),
				    "audit_lines"), 0);
	json_decref(r);
	expect_only(w, "queued", "", "story/db");
	e = expect(w, "timeout", "", "story/db");
	ck_assert_int_eq(member_int(e, "request"), 3);
	ck_assert_int_ge(member_int(e, "waited_ms"), 30);
	json_decref(e);

	raw_sendf(a, "{\"id\":4,\"op\":\"release\",\"lease\":%lld}\n", (long long)la);
	json_decref(ok(a, 4));
	lb = granted(b, 7);
	e = expect(w, "released", "release", "story/db");
	ck_assert_int_eq(member_int(e, "lease"), la);
	json_decref(e);
	e = expect(w, "granted", "", "story/db");
	ck_assert_int_eq(member_int(e, "lease"), lb);
	ck_assert_int_eq(member_int(e, "request"), 7);
	ck_assert_int_ge(member_int(e, "waited_ms"), 30);
	json_decref(e);

	raw_sendf(b, "{\"id\":9,\"op\":\"convert\",\"lease\":%lld,\"mode\":\"shared\"}\n", (long long)lb);
	json_decref(ok(b, 9));
	e = expect(w, "converted", "", "story/db");
	ck_assert_str_eq(member_str(e, "mode"), "shared");
	json_decref(e);

	raw_send(c, "{\"id\":5,\"op\":\"acquire\",\"key\":\"story/db\"}\n");
	waits(c, 6);
	raw_send(c, "{\"id\":7,\"op\":\"cancel\",\"request\":5}\n");
	json_decref(ok(c, 7));
	expect_only(w, "queued", "", "story/db");
	expect_only(w, "cancelled", "cancel", "story/db");

	close(b);
	expect_only(w, "released", "disconnect", "story/db");

	raw_send(a, "{\"id\":10,\"op\":\"acquire\",\"key\":\"story/ttl\",\"ttl_ms\":30}\n");
	lt = granted(a, 10);
	expect_only(w, "granted", "", "story/ttl");
	e = expect(w, "released", "expiry", "story/ttl");
	ck_assert_int_eq(member_int(e, "lease"), lt);
	json_decref(e);

	raw_send(a, "{\"id\":11,\"op\":\"acquire\",\"key\":\"story/rv\"}\n");
	lr = granted(a, 11);
	expect_only(w, "granted", "", "story/rv");
	raw_sendf(c, "{\"id\":12,\"op\":\"revoke\",\"lease\":%lld}\n", (long long)lr);
	json_decref(ok(c, 12));
	expect_only(w, "released", "revoke", "story/rv");

	raw_send(a, "{\"id\":13,\"op\":\"acquire\",\"key\":\"story/co\",\"detach\":true}\n");
	r = ok(a, 13);
	e = expect(w, "granted", "", "story/co");
	ck_assert(json_is_true(json_object_get(e, "checkout")));
	json_decref(e);
	raw_sendf(c, "{\"id\":14,\"op\":\"release\",\"lease\":%lld,\"token\":\"%s\"}\n",
		  (long long)member_int(r, "lease"), member_str(r, "token"));
	json_decref(r);
	json_decref(ok(c, 14));
	expect_only(w, "released", "checkin", "story/co");

	raw_send(a, "{\"id\":15,\"op\":\"acquire\",\"keys\":[\"story/m1\",\"story/m2\"]}\n");
	lm = granted(a, 15);
	e = expect(w, "granted", "", "story/m1");
	ck_assert_int_eq(member_int(e, "lease"), lm);
	ck_assert_int_eq(json_array_size(json_object_get(e, "keys")), 2);
	json_decref(e);

	/* a holds story/m1, c story/x; a waits for story/x, c asks for story/m1. */
	raw_send(c, "{\"id\":16,\"op\":\"acquire\",\"key\":\"story/x\"}\n");
	json_decref(ok(c, 16));
	expect_only(w, "granted", "", "story/x");
	raw_send(a, "{\"id\":17,\"op\":\"acquire\",\"key\":\"story/x\"}\n");
	waits(a, 18);
	expect_only(w, "queued", "", "story/x");
	raw_send(c, "{\"id\":19,\"op\":\"acquire\",\"key\":\"story/m1\"}\n");
	r = raw_reply(c, 19);
	ck_assert_str_eq(reply_error(r), "deadlock");
	json_decref(r);
	e = expect(w, "deadlock", "", "story/m1");
	ck_assert_int_eq(member_int(e, "request"), 19);
	ck_assert_int_eq(member_int(e, "cycle"), 2);
	json_decref(e);

	/* c's end: its lease goes, and a's wait is granted. */
	close(c);
	expect_only(w, "released", "disconnect", "story/x");
	expect_only(w, "granted", "", "story/x");
	/* a's end: its multi-key lease ends once, naming both keys, then
	 * story/x; nothing more (other/k is not on the prefix). */
	close(a);
	e = expect(w, "released", "disconnect", "story/m1");
	ck_assert_int_eq(member_int(e, "lease"), lm);
	ck_assert_int_eq(json_array_size(json_object_get(e, "keys")), 2);
	json_decref(e);
	expect_only(w, "released", "disconnect", "story/x");
	ck_assert(!wait_readable(w, 100));
	close(w);
}
END_TEST

/* A multi-key request that times out, and a multi-key lease revoked: the
 * events name every key (the parts other than the first were once freed
 * before the events were built). The message makes each part too big to
 * be kept as a spare. */
START_TEST(a_multi_key_timeout_and_revoke_name_every_key)
{
	const char *s = daemon_.socket;
	int w = watcher(s, "mk/"), a = raw_connect(s), b = raw_connect(s);
	json_t *e, *keys;
	json_int_t lm;

	raw_send(a, "{\"id\":1,\"op\":\"acquire\",\"key\":\"mk/b\"}\n");
	json_decref(ok(a, 1));
	expect_only(w, "granted", "", "mk/b");
	raw_send(b, "{\"id\":2,\"op\":\"acquire\",\"keys\":[\"mk/a\",\"mk/b\",\"mk/c\"],"
		 "\"timeout_ms\":30,\"message\":\"long enough to make each part a big entry\"}\n");
	json_decref(raw_reply(b, 2));
	expect_only(w, "queued", "", "mk/a");
	e = expect(w, "timeout", "", "mk/a");
	keys = json_object_get(e, "keys");
	ck_assert_int_eq(json_array_size(keys), 3);
	ck_assert_str_eq(json_string_value(json_array_get(keys, 2)), "mk/c");
	json_decref(e);

	raw_send(b, "{\"id\":3,\"op\":\"acquire\",\"keys\":[\"mk/x\",\"mk/y\"],"
		 "\"message\":\"long enough to make each part a big entry\"}\n");
	lm = granted(b, 3);
	expect_only(w, "granted", "", "mk/x");
	raw_sendf(a, "{\"id\":4,\"op\":\"revoke\",\"lease\":%lld}\n", (long long)lm);
	json_decref(ok(a, 4));
	e = expect(w, "released", "revoke", "mk/x");
	keys = json_object_get(e, "keys");
	ck_assert_int_eq(json_array_size(keys), 2);
	ck_assert_str_eq(json_string_value(json_array_get(keys, 1)), "mk/y");
	json_decref(e);
	close(a);
	close(b);
	close(w);
}
END_TEST

/* A session that watches and locks: the event of its grant is written
 * before the grant's reply (PROTOCOL.md, watch). */
START_TEST(its_own_event_comes_before_its_reply)
{
	int w = watcher(daemon_.socket, "own/");
	json_t *e;

	raw_send(w, "{\"id\":2,\"op\":\"acquire\",\"key\":\"own/k\"}\n");
	e = expect(w, "granted", "", "own/k");
	ck_assert_int_eq(member_int(e, "request"), 2);
	json_decref(e);
	json_decref(ok(w, 2));
	close(w);
}
END_TEST

START_TEST(a_bad_watch_is_refused)
{
	int w = raw_connect(daemon_.socket);
	json_t *r;

	raw_send(w, "{\"id\":1,\"op\":\"watch\",\"prefix\":5}\n");
	r = raw_reply(w, 1);
	ck_assert_str_eq(reply_error(r), "bad_request");
	json_decref(r);
	/* Not a watcher: a lock is no event for it. */
	raw_send(w, "{\"id\":2,\"op\":\"acquire\",\"key\":\"bw\"}\n");
	json_decref(ok(w, 2));
	ck_assert(!wait_readable(w, 50));
	close(w);
}
END_TEST

/* Reads the watcher's lines until one of kind event; NULL at the bound. */
static json_t *skip_to(int w, const char *event)
{
	for (;;) {
		json_t *e = raw_recv(w, test_ms(5000));

		if (!e || strcmp(member_str(e, "event"), event) == 0)
			return e;
		json_decref(e);
	}
}

START_TEST(a_watcher_that_does_not_read_loses_events_not_its_session)
{
	hasp_client *c = client_connect(daemon_.socket);
	int w = watcher(daemon_.socket, "");
	json_int_t lost;
	json_t *e;
	int i;

	/* Until the watcher's unread output passes its bound: the kernel's
	 * buffers, then 256 KiB of the daemon's. Every lock goes through. */
	for (i = 0; i < 2000 && stats_counter(c, "watch_events_lost") == 0; i++)
		for (int j = 0; j < 50; j++)
			ck_assert_int_eq(hasp_unlock(c, client_lock(c, "spam", HASP_EXCLUSIVE)), 0);
	lost = stats_counter(c, "watch_events_lost");
	ck_assert_int_gt(lost, 0);
	ck_assert_int_eq(stats_gauge(c, "watchers"), 1);
	/* Read what it has, then one more event: the overflow line first. */
	for (;;) {
		e = raw_recv(w, 200);
		if (!e)
			break;
		ck_assert_str_ne(member_str(e, "event"), "overflow");
		json_decref(e);
	}
	ck_assert_int_eq(hasp_unlock(c, client_lock(c, "spam", HASP_EXCLUSIVE)), 0);
	e = skip_to(w, "overflow");
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(member_int(e, "lost"), stats_counter(c, "watch_events_lost"));
	json_decref(e);
	expect_only(w, "granted", "", "spam");
	expect_only(w, "released", "release", "spam");
	raw_send(w, "{\"id\":2,\"op\":\"ping\"}\n");
	json_decref(ok(w, 2));
	close(w);
	hasp_close(c);
}
END_TEST

/* ---- stats ---- */

static json_t *stats(int fd, int64_t id)
{
	json_t *r, *s;

	raw_sendf(fd, "{\"id\":%lld,\"op\":\"stats\"}\n", (long long)id);
	r = ok(fd, id);
	s = json_incref(json_object_get(r, "stats"));
	json_decref(r);
	return s;
}

static json_int_t bucket_sum(json_t *hist)
{
	json_t *b = json_object_get(hist, "buckets");
	json_int_t sum = 0;

	ck_assert_int_eq(json_array_size(b), 15);
	for (size_t i = 0; i < json_array_size(b); i++)
		sum += json_integer_value(json_array_get(b, i));
	return sum;
}

START_TEST(stats_have_histograms_busiest_keys_and_users)
{
	int a = raw_connect(daemon_.socket), b = raw_connect(daemon_.socket);
	json_t *st, *h, *keys, *users;
	json_int_t la;

	for (int i = 0; i < 5; i++) {
		raw_sendf(a, "{\"id\":%d,\"op\":\"acquire\",\"key\":\"hot\"}\n", 10 + i);
		raw_sendf(a, "{\"id\":%d,\"op\":\"release\",\"lease\":%lld}\n", 20 + i,
			  (long long)granted(a, 10 + i));
		json_decref(ok(a, 20 + i));
	}
	raw_send(a, "{\"id\":1,\"op\":\"acquire\",\"key\":\"cold\"}\n");
	la = granted(a, 1);
	raw_send(b, "{\"id\":1,\"op\":\"acquire\",\"key\":\"cold\"}\n");
	waits(b, 2);
	st = stats(a, 2);
	ck_assert_int_ge(member_int(json_object_get(st, "gauges"), "oldest_waiter_ms"), 0);
	ck_assert_int_eq(member_int(json_object_get(st, "gauges"), "waiters"), 1);
	json_decref(st);
	raw_sendf(a, "{\"id\":3,\"op\":\"release\",\"lease\":%lld}\n", (long long)la);
	json_decref(ok(a, 3));
	json_decref(ok(b, 1));

	st = stats(a, 4);
	h = json_object_get(st, "histograms");
	ck_assert_int_eq(json_array_size(json_object_get(h, "bounds_us")), 14);
	/* 7 grants, one after a wait; 6 leases ended. */
	ck_assert_int_eq(member_int(json_object_get(h, "wait"), "count"), 7);
	ck_assert_int_eq(bucket_sum(json_object_get(h, "wait")), 7);
	ck_assert_int_eq(member_int(json_object_get(h, "hold"), "count"), 6);
	ck_assert_int_eq(bucket_sum(json_object_get(h, "hold")), 6);
	ck_assert_int_gt(member_int(json_object_get(h, "wait"), "sum_us"), 0);
	keys = json_object_get(st, "keys");
	ck_assert_int_eq(json_array_size(keys), 2);
	ck_assert_str_eq(member_str(json_array_get(keys, 0), "key"), "hot");
	ck_assert_int_eq(member_int(json_array_get(keys, 0), "grants"), 5);
	ck_assert_str_eq(member_str(json_array_get(keys, 1), "key"), "cold");
	ck_assert_int_eq(member_int(json_object_get(json_array_get(keys, 1), "wait"), "count"), 2);
	users = json_object_get(st, "users");
	ck_assert_int_eq(json_array_size(users), 1);
	ck_assert_int_eq(member_int(json_array_get(users, 0), "uid"), (json_int_t)getuid());
	/* a, b, and perhaps the harness's probe, not yet seen to end */
	ck_assert_int_ge(member_int(json_array_get(users, 0), "sessions"), 2);
	ck_assert_int_eq(member_int(json_array_get(users, 0), "locks"), 1);
	json_decref(st);
	close(a);
	close(b);
}
END_TEST

/* ---- the audit trail ---- */

/* A daemon whose journal is a datagram socket of the test's. */
struct journal_daemon {
	struct daemon_proc d;
	char conf[192], sock[192];
	int fd;
};

static void journal_daemon_start(struct journal_daemon *j, const char *extra)
{
	char *opts[] = { "--config", j->conf, NULL };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	FILE *f;

	daemon_dir(&j->d);
	snprintf(j->conf, sizeof(j->conf), "%s/haspd.conf", j->d.dir);
	snprintf(j->sock, sizeof(j->sock), "%s/journal", j->d.dir);
	j->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(j->fd, 0);
	strcpy(sa.sun_path, j->sock);
	ck_assert_int_eq(bind(j->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	f = fopen(j->conf, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "journal_socket = %s\nlog_level = warning\n%s", j->sock, extra);
	fclose(f);
	j->d.pid = daemon_spawn_with(j->d.socket, opts, -1);
	ck_assert(wait_socket(j->d.socket, DAEMON_START_MS));
}

static void journal_daemon_stop(struct journal_daemon *j)
{
	daemon_stop(&j->d);
	close(j->fd);
	unlink(j->sock);
	unlink(j->conf);
	daemon_dir_remove(&j->d);
}

/* A field's name, n bytes at p, as a string in name (json_object_set_new()
 * copies it). */
static const char *field_name(char name[64], const char *p, size_t n)
{
	ck_assert_uint_lt(n, 64);
	memcpy(name, p, n);
	name[n] = '\0';
	return name;
}

/* The next journal entry's fields as a JSON object of strings (a value
 * with a newline comes in the binary form); NULL after the bound. */
static json_t *journal_entry(int fd)
{
	static char buf[65536];
	json_t *o = json_object();
	char name[64];
	ssize_t n;
	char *p, *end;

	if (!wait_readable(fd, test_ms(5000)))
		return NULL;
	n = recv(fd, buf, sizeof(buf), 0);
	ck_assert_int_gt(n, 0);
	for (p = buf, end = buf + n; p < end;) {
		char *eol = memchr(p, '\n', (size_t)(end - p)), *eq;
		uint64_t len;

		ck_assert_ptr_nonnull(eol);
		eq = memchr(p, '=', (size_t)(eol - p));
		if (eq) {
			json_object_set_new(o, field_name(name, p, (size_t)(eq - p)),
					    json_stringn(eq + 1, (size_t)(eol - eq - 1)));
			p = eol + 1;
			continue;
		}
		memcpy(&len, eol + 1, sizeof(len));
		len = le64toh(len);
		ck_assert(eol + 1 + 8 + len < end && eol[1 + 8 + len] == '\n');
		json_object_set_new(o, field_name(name, p, (size_t)(eol - p)),
				    json_stringn(eol + 1 + 8, (size_t)len));
		p = eol + 1 + 8 + len + 1;
	}
	return o;
}

static json_t *expect_entry(int fd, const char *event)
{
	json_t *o = journal_entry(fd);

	ck_assert_msg(o, "no journal entry for %s", event);
	ck_assert_str_eq(member_str(o, "HASP_EVENT"), event);
	ck_assert_str_eq(member_str(o, "PRIORITY"), "6");
	ck_assert_str_eq(member_str(o, "SYSLOG_IDENTIFIER"), "haspd");
	ck_assert_str_eq(member_str(o, "HASP_UID"), "0");
	return o;
}

START_TEST(the_journal_gets_structured_audit_entries)
{
	struct journal_daemon j;
	int a, b;
	json_int_t la;
	json_t *o, *r;
	char lease[32];

	journal_daemon_start(&j, "log_lock_waits_ms = 40\n");
	a = raw_connect(j.d.socket);
	b = raw_connect(j.d.socket);
	/* A key with a newline: the binary form of a field. */
	raw_send(a, "{\"id\":1,\"op\":\"acquire\",\"key\":\"au\\ndit\",\"owner\":\"alice\"}\n");
	la = granted(a, 1);
	raw_send(b, "{\"id\":2,\"op\":\"acquire\",\"key\":\"au\\ndit\",\"timeout_ms\":20}\n");
	json_decref(raw_reply(b, 2));
	o = expect_entry(j.fd, "timeout");
	ck_assert_str_eq(member_str(o, "HASP_KEY"), "au\ndit");
	ck_assert_str_eq(member_str(o, "HASP_REQUEST"), "2");
	ck_assert_int_ge(atoi(member_str(o, "HASP_WAITED_MS")), 20);
	ck_assert_msg(strstr(member_str(o, "MESSAGE"), "timed out after") &&
		      strstr(member_str(o, "MESSAGE"), "au\\ndit"), "%s", member_str(o, "MESSAGE"));
	json_decref(o);

	/* A grant that waited past log_lock_waits_ms; a short one is not logged. */
	raw_send(b, "{\"id\":3,\"op\":\"acquire\",\"key\":\"au\\ndit\"}\n");
	waits(b, 4);
	ck_assert(wait_readable(j.fd, 60) == false);
	raw_sendf(a, "{\"id\":5,\"op\":\"release\",\"lease\":%lld}\n", (long long)la);
	json_decref(ok(a, 5));
	json_decref(ok(b, 3));
	o = expect_entry(j.fd, "granted");
	ck_assert_int_ge(atoi(member_str(o, "HASP_WAITED_MS")), 40);
	ck_assert_str_eq(member_str(o, "HASP_MODE"), "exclusive");
	ck_assert(strlen(member_str(o, "HASP_FENCE")) > 10);
	json_decref(o);
	raw_send(a, "{\"id\":6,\"op\":\"acquire\",\"key\":\"quick\"}\n");
	json_decref(ok(a, 6));

	/* A revoke names who did it; an expiry; a checkout and its checkin. */
	raw_send(a, "{\"id\":7,\"op\":\"acquire\",\"key\":\"rv\"}\n");
	raw_sendf(b, "{\"id\":8,\"op\":\"revoke\",\"lease\":%lld}\n", (long long)granted(a, 7));
	json_decref(ok(b, 8));
	o = expect_entry(j.fd, "released");
	ck_assert_str_eq(member_str(o, "HASP_REASON"), "revoke");
	ck_assert_str_eq(member_str(o, "HASP_KEY"), "rv");
	ck_assert_str_eq(member_str(o, "HASP_BY_UID"), "0");
	ck_assert_int_gt(atoi(member_str(o, "HASP_BY_PID")), 0);
	json_decref(o);
	raw_send(a, "{\"id\":9,\"op\":\"acquire\",\"key\":\"ttl\",\"ttl_ms\":20}\n");
	json_decref(ok(a, 9));
	o = expect_entry(j.fd, "released");
	ck_assert_str_eq(member_str(o, "HASP_REASON"), "expiry");
	json_decref(o);
	raw_send(a, "{\"id\":10,\"op\":\"acquire\",\"key\":\"co\",\"detach\":true,\"owner\":\"bob\"}\n");
	r = ok(a, 10);
	o = expect_entry(j.fd, "granted");
	ck_assert_str_eq(member_str(o, "HASP_OWNER"), "bob");
	snprintf(lease, sizeof(lease), "%lld", (long long)member_int(r, "lease"));
	ck_assert_str_eq(member_str(o, "HASP_LEASE"), lease);
	json_decref(o);
	raw_sendf(b, "{\"id\":11,\"op\":\"release\",\"lease\":%s,\"token\":\"%s\"}\n", lease,
		  member_str(r, "token"));
	json_decref(r);
	json_decref(ok(b, 11));
	o = expect_entry(j.fd, "released");
	ck_assert_str_eq(member_str(o, "HASP_REASON"), "checkin");
	json_decref(o);

	/* A deadlock: a holds quick, b holds au\ndit. */
	raw_send(a, "{\"id\":12,\"op\":\"acquire\",\"key\":\"au\\ndit\"}\n");
	waits(a, 13);
	raw_send(b, "{\"id\":14,\"op\":\"acquire\",\"key\":\"quick\"}\n");
	r = raw_reply(b, 14);
	ck_assert_str_eq(reply_error(r), "deadlock");
	json_decref(r);
	o = expect_entry(j.fd, "deadlock");
	ck_assert_str_eq(member_str(o, "HASP_CYCLE"), "2");
	ck_assert_str_eq(member_str(o, "HASP_KEY"), "quick");
	json_decref(o);
	close(a);
	close(b);
	journal_daemon_stop(&j);
}
END_TEST

START_TEST(no_client_floods_the_audit_trail)
{
	struct journal_daemon j;
	int a, b, entries = 0;
	int64_t began;
	hasp_client *c;
	json_t *o;

	journal_daemon_start(&j, "");
	a = raw_connect(j.d.socket);
	b = raw_connect(j.d.socket);
	raw_send(a, "{\"id\":1,\"op\":\"acquire\",\"key\":\"flood\"}\n");
	json_decref(ok(a, 1));
	began = now_ms();
	for (int i = 0; i < 40; i++) {
		raw_sendf(b, "{\"id\":%d,\"op\":\"acquire\",\"key\":\"flood\",\"timeout_ms\":1}\n",
			  10 + i);
		json_decref(raw_reply(b, 10 + i));
	}
	while ((o = wait_readable(j.fd, 100) ? journal_entry(j.fd) : NULL)) {
		entries++;
		json_decref(o);
	}
	/* A burst of 10, then one a second (valgrind may take seconds). */
	ck_assert_int_ge(entries, 10);
	ck_assert_int_le(entries, 10 + 1 + (now_ms() - began) / 1000);
	ck_assert_int_lt(entries, 40);
	c = client_connect(j.d.socket);
	ck_assert_int_eq(stats_counter(c, "audit_lines"), entries);
	ck_assert_int_eq(stats_counter(c, "audit_lines_dropped"), 40 - entries);
	/* A second later, the next entry says how many were not logged. */
	usleep(1100 * 1000);
	raw_send(b, "{\"id\":99,\"op\":\"acquire\",\"key\":\"flood\",\"timeout_ms\":1}\n");
	json_decref(raw_reply(b, 99));
	o = expect_entry(j.fd, "timeout");
	ck_assert_msg(strstr(member_str(o, "MESSAGE"), " lines about uid 0's sessions before it, "
			     "unlogged: too many)"), "%s", member_str(o, "MESSAGE"));
	json_decref(o);
	hasp_close(c);
	close(a);
	close(b);
	journal_daemon_stop(&j);
}
END_TEST

START_TEST(without_a_journal_the_audit_trail_is_plain_lines)
{
	char *opts[] = { "--log-level", "info", NULL };
	struct daemon_proc d;
	char out[8192] = "";
	int p[2], a, b;

	daemon_dir(&d);
	ck_assert_int_eq(pipe(p), 0);
	d.pid = daemon_spawn_with(d.socket, opts, p[1]);
	close(p[1]);
	ck_assert(wait_socket(d.socket, DAEMON_START_MS));
	a = raw_connect(d.socket);
	b = raw_connect(d.socket);
	raw_send(a, "{\"id\":1,\"op\":\"acquire\",\"key\":\"pl\\u001b[2J\"}\n");
	json_decref(ok(a, 1));
	raw_send(b, "{\"id\":2,\"op\":\"acquire\",\"key\":\"pl\\u001b[2J\",\"timeout_ms\":10}\n");
	json_decref(raw_reply(b, 2));
	ck_assert_msg(wait_output(p[0], "timed out after", 5000, out, sizeof(out)), "%s", out);
	/* Escaped: no escape character reaches the log. */
	ck_assert_msg(strstr(out, "request 2 of pid") && strstr(out, "'pl\\e[2J' (exclusive)") &&
		      !strchr(out, '\033'), "%s", out);
	close(a);
	close(b);
	close(p[0]);
	daemon_stop(&d);
	daemon_dir_remove(&d);
}
END_TEST

static Suite *watch_suite(void)
{
	Suite *s = suite_create("watch");
	TCase *tc = tcase_create("haspd");
	TCase *audit = tcase_create("audit");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, a_contention_story_in_order);
	tcase_add_test(tc, a_multi_key_timeout_and_revoke_name_every_key);
	tcase_add_test(tc, its_own_event_comes_before_its_reply);
	tcase_add_test(tc, a_bad_watch_is_refused);
	tcase_add_test(tc, a_watcher_that_does_not_read_loses_events_not_its_session);
	tcase_add_test(tc, stats_have_histograms_busiest_keys_and_users);
	suite_add_tcase(s, tc);
	tcase_set_timeout(audit, 120);
	tcase_add_test(audit, the_journal_gets_structured_audit_entries);
	tcase_add_test(audit, no_client_floods_the_audit_trail);
	tcase_add_test(audit, without_a_journal_the_audit_trail_is_plain_lines);
	suite_add_tcase(s, audit);
	return s;
}

int main(void)
{
	return run_suite(watch_suite());
}
