/* Out of memory: a daemon state (haspd_init, no listening server) serves a
 * scripted pair of sessions on socket pairs while one allocation fails,
 * the first in one run, the second in the next, and so on through every
 * allocation the script makes. malloc, calloc, realloc and strdup are
 * wrapped at link time (-Wl,--wrap) for the daemon's own code, jansson's
 * allocations go through the daemon's hook (proto_track_memory()), which
 * calls malloc, and libevent is given the wrapped allocator.
 *
 * A second test lets memory run out for good from each allocation on.
 *
 * Whichever allocation fails, the promise is STYLE.md's: it fails the one
 * request or session, not the daemon. Every request is answered or its
 * session ended (no client is left hanging); a reply is whole or not sent
 * (a list leaves nothing out); a revoked holder hears of it; no deadline is
 * left without the timer; the lock table and the sessions are empty once
 * the clients are gone, and the same daemon then serves a new client in
 * full. Leaks show under the ASan build. HASP_OOM_AT=N starts at
 * allocation N, to look into one. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "config.h"
#include "files.h"
#include "haspd.h"
#include "log.h"
#include "oom.h"
#include "sendfds.h"
#include "session.h"
#include "suite.h"

/* The allocation that fails in this run (1 is the first), 0: none. */
static unsigned long fail_at;

/* libevent's allocations come through these, counted apart, so that the
 * daemon's direct calls can be told to reach the wrappers too. */
static unsigned long nevent;

static void *event_malloc(size_t size)
{
	nevent += oom_armed;
	return __wrap_malloc(size);
}

static void *event_realloc(void *p, size_t size)
{
	nevent += oom_armed;
	return __wrap_realloc(p, size);
}

/* ---- clients on socket pairs ---- */

#define MAX_ID 16

struct client {
	int fd;                         /* the client's end, -1 when refused or gone */
	bool ended;                     /* the daemon ended the session */
	unsigned sent, answered, ok;    /* bit per request id */
	const char *want[MAX_ID];       /* what an ok reply to request id must hold */
	uint64_t lease[MAX_ID];         /* from a granted acquire, 0 if none */
	uint64_t revoked;               /* the lease of the last revoked event */
	long listed;                    /* resources and entries in a list reply, or -1 */
	char buf[1 << 18];
	size_t len;
};

static struct haspd d;
static int memfd;

/* The daemon's turn: its allocations count, and one may fail. No
 * ck_assert in here: Check's own allocations would be counted. */
static void pump(void)
{
	oom_armed = true;
	for (int i = 0; i < 4; i++)
		event_base_loop(d.base, EVLOOP_NONBLOCK);
	oom_armed = false;
	/* A deadline, or a file to try again, is never left without the timer. */
	ck_assert_msg((locktable_next_deadline(&d.lt) < 0 && files_next_retry(&d) < 0) ||
		      loop_event_pending(d.timer),
		      "a deadline without its timer (allocation %lu failed)", fail_at);
}

static void client_connect(struct client *c)
{
	int sv[2];

	memset(c, 0, sizeof(*c));
	c->listed = -1;
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	c->fd = sv[1];
	oom_armed = true;
	c->ended = !session_new(&d, sv[0]);
	oom_armed = false;
	if (c->ended) {
		close(c->fd); /* refused: session_new closed its end */
		c->fd = -1;
	}
}

static long count(const char *s, const char *what)
{
	long n = 0;

	for (; (s = strstr(s, what)); s++)
		n++;
	return n;
}

static void client_event(struct client *c, const char *line)
{
	const char *lease = strstr(line, "\"lease\":");

	if (strstr(line, "\"event\":\"revoked\"") && lease)
		c->revoked = strtoull(lease + 8, NULL, 10);
}

static void client_line(struct client *c, const char *line)
{
	const char *id = strstr(line, "\"id\":"), *lease = strstr(line, "\"lease\":");
	bool ok = strstr(line, "\"ok\":true");
	long n;

	ck_assert_msg(id, "a reply without an id: %s", line);
	if (strncmp(id + 5, "null", 4) == 0)
		return; /* to a line with no id to answer */
	n = strtol(id + 5, NULL, 10);
	ck_assert_msg(n > 0 && n < MAX_ID && (c->sent & 1u << n), "a reply to no request: %s", line);
	c->answered |= 1u << n;
	c->ok |= (unsigned)ok << n;
	ck_assert_msg(!ok || !c->want[n] || strstr(line, c->want[n]),
		      "a reply without %s (allocation %lu failed): %.200s", c->want[n], fail_at, line);
	if (ok && lease)
		c->lease[n] = strtoull(lease + 8, NULL, 10);
	if (ok && strstr(line, "\"resources\":["))
		c->listed = count(line, "{\"key\":") + count(line, "{\"path\":") +
			    count(line, "\"lease\":") + count(line, "\"request\":");
}

/* Takes in what the daemon sent: replies, events, or the end. */
static void client_read(struct client *c)
{
	ssize_t n = -1;
	char *nl;

	while (c->fd >= 0 && (n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len)) > 0)
		c->len += (size_t)n;
	if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE)))
		c->ended = true;
	c->buf[c->len] = '\0';
	while ((nl = memchr(c->buf, '\n', c->len))) {
		*nl = '\0';
		ck_assert_msg(strlen(c->buf) == (size_t)(nl - c->buf),
			      "a reply line with a NUL byte in it (allocation %lu failed)", fail_at);
		if (strstr(c->buf, "\"event\":"))
			client_event(c, c->buf);
		else
			client_line(c, c->buf);
		c->len -= (size_t)(nl + 1 - c->buf);
		memmove(c->buf, nl + 1, c->len + 1);
	}
}

/* Writes len bytes holding the requests in ids (a bit each), with the
 * memfd if pass_fd; a full socket lets the daemon read, a few times. */
static void client_write(struct client *c, unsigned ids, const char *p, size_t len, bool pass_fd)
{
	if (c->fd < 0 || c->ended)
		return;
	c->sent |= ids;
	for (int tries = 0; !c->ended && len > 0 && tries < 16; tries++) {
		ssize_t n = sendfds(c->fd, p, len, &memfd, pass_fd ? 1 : 0);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			pass_fd = false;
		}
		pump();
		client_read(c);
	}
	ck_assert_msg(c->ended || len == 0, "%zu bytes not sent: the daemon stopped reading", len);
}

/* Sends request id (its "id" field is id; 0 for a line whose answer is not
 * tracked), with the memfd if pass_fd. */
static void client_send(struct client *c, unsigned id, const char *line, bool pass_fd)
{
	client_write(c, id ? 1u << id : 0, line, strlen(line), pass_fd);
}

/* Sends request id: op (release or revoke) of lease. */
static void client_send_lease(struct client *c, unsigned id, const char *op, uint64_t lease)
{
	char line[128];

	snprintf(line, sizeof(line), "{\"id\":%u,\"op\":\"%s\",\"lease\":%" PRIu64 "}\n", id, op,
		 lease);
	client_send(c, id, line, false);
}

/* Pings 11, 12 and 13 of about 60, 15 and 60 KB in one write: the lines
 * span libevent's buffer chains, and jansson parses them. */
static void client_send_long_pings(struct client *c)
{
	static const size_t pads[] = { 60000, 15000, 60000 };
	static char text[140000];
	size_t len = 0;

	for (unsigned i = 0; i < 3; i++) {
		len += (size_t)sprintf(text + len, "{\"id\":%u,\"op\":\"ping\",\"pad\":\"", 11 + i);
		memset(text + len, 'x', pads[i]);
		len += pads[i];
		len += (size_t)sprintf(text + len, "\"}\n");
	}
	client_write(c, 7u << 11, text, len, false);
}

static void client_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* Every request sent was answered, or the daemon ended the session. */
static void client_check_answered(const struct client *c, const char *who)
{
	ck_assert_msg(c->ended || c->answered == c->sent,
		      "%s: requests %#x sent, %#x answered, session not ended (allocation %lu failed)",
		      who, c->sent, c->answered, fail_at);
}

/* ---- the script ---- */

/* Conversions: a downgrades k1 (answered at once); a and b share k3, and
 * b's upgrade of it waits until a is gone. */
static void script_convert(struct client *a, struct client *b)
{
	char line[128];

	if (a->lease[2]) {
		snprintf(line, sizeof(line), "{\"id\":8,\"op\":\"convert\",\"lease\":%" PRIu64
			 ",\"mode\":\"shared\"}\n", a->lease[2]);
		client_send(a, 8, line, false);
	}
	client_send(b, 10, "{\"id\":10,\"op\":\"acquire\",\"key\":\"k3\",\"mode\":\"shared\"}\n",
		    false);
	client_send(a, 9, "{\"id\":9,\"op\":\"acquire\",\"key\":\"k3\",\"mode\":\"shared\"}\n",
		    false);
	if (b->lease[10]) {
		snprintf(line, sizeof(line), "{\"id\":11,\"op\":\"convert\",\"lease\":%" PRIu64
			 ",\"mode\":\"exclusive\"}\n", b->lease[10]);
		client_send(b, 11, line, false);
	}
}

/* Two sessions: a holds a key, a file and a second key; b is refused a
 * try, waits for the key, asks for the list and the stats, waits for the
 * second key and cancels, revokes it; a sends an unknown op, a malformed
 * line, a bad request, a request only jansson reads and long lines, and
 * releases. */
static void script(struct client *a, struct client *b)
{
	client_connect(a);
	client_connect(b);
	a->want[1] = "\"session\":";
	client_send(a, 1, "{\"id\":1,\"op\":\"hello\",\"client\":\"oom\",\"version\":1}\n", false);
	client_send(a, 2, "{\"id\":2,\"op\":\"acquire\",\"key\":\"k1\",\"owner\":\"alice\","
			  "\"message\":\"schema v42\"}\n", false);
	client_send(a, 3, "{\"id\":3,\"op\":\"acquire\",\"path\":\"/oom/file\",\"fd\":true,"
			  "\"mode\":\"shared\"}\n", true);
	client_send(a, 4, "{\"id\":4,\"op\":\"acquire\",\"key\":\"k2\"}\n", false);
	client_send(b, 1, "{\"id\":1,\"op\":\"acquire\",\"key\":\"k1\",\"mode\":\"shared\","
			  "\"timeout_ms\":0}\n", false);
	client_send(b, 2, "{\"id\":2,\"op\":\"acquire\",\"key\":\"k1\",\"timeout_ms\":600000}\n",
		    false);
	client_send(b, 3, "{\"id\":3,\"op\":\"list\"}\n", false);
	/* A list leaves nothing out: it is whole or not sent. */
	ck_assert_msg(b->listed < 0 || b->listed == (long)(d.lt.stats.resources + d.lt.stats.leases +
							    d.lt.stats.waiters),
		      "list shows %ld of %u resources, %u leases and %u waiters (allocation %lu failed)",
		      b->listed, (unsigned)d.lt.stats.resources, (unsigned)d.lt.stats.leases,
		      (unsigned)d.lt.stats.waiters, fail_at);
	b->want[4] = "\"gauges\":";
	client_send(b, 4, "{\"id\":4,\"op\":\"stats\"}\n", false);
	client_send(b, 8, "{\"id\":8,\"op\":\"acquire\",\"key\":\"k2\",\"mode\":\"shared\"}\n", false);
	client_send(b, 9, "{\"id\":9,\"op\":\"cancel\",\"request\":8}\n", false);
	client_send_lease(b, 5, "revoke", a->lease[4] + 1000);
	if (a->lease[4]) {
		b->want[6] = "\"revoked\":[";
		client_send_lease(b, 6, "revoke", a->lease[4]);
		client_read(a);
		/* The holder hears of it, or has no session left to hear in. */
		ck_assert_msg(!(b->ok & 1u << 6) || a->ended || a->revoked == a->lease[4],
			      "lease %" PRIu64 " revoked without telling its holder (allocation %lu "
			      "failed)", a->lease[4], fail_at);
	}
	/* Multi-key: one granted over two keys, one that waits for it. */
	client_send(a, 15, "{\"id\":15,\"op\":\"acquire\",\"keys\":[\"k6\",{\"key\":\"k7\","
			   "\"mode\":\"shared\"}]}\n", false);
	client_send(b, 12, "{\"id\":12,\"op\":\"acquire\",\"keys\":[\"k8\",\"k7\"]}\n", false);
	client_send(a, 5, "{\"id\":5,\"op\":\"nope\"}\n", false);
	client_send(a, 0, "{\"id\":6,\"op\":\"acquire\",\"key\":\"k1\"\n", false); /* malformed */
	client_send(a, 6, "{\"id\":6,\"op\":\"acquire\",\"key\":\"\"}\n", false);
	client_send(a, 10, "{\"id\":10,\"op\":\"ping\",\"pad\":\"\\u00e9\"}\n", false);
	/* Only jansson reads this one (an escape), and the key outgrows its
	 * first buffer: the lease is on that key, or there is none. */
	client_send(a, 14, "{\"id\":14,\"op\":\"acquire\",\"key\":\"a key of more than "
			   "sixteen bytes, \\u00e9\"}\n", false);
	if (a->lease[14]) {
		struct lt_entry *e = locktable_lease(&d.lt, a->lease[14]);

		ck_assert_msg(e && strcmp(e->res->key, "a key of more than sixteen bytes, \u00e9") == 0,
			      "lease %" PRIu64 " on another key (allocation %lu failed): %s",
			      a->lease[14], fail_at, e ? e->res->key : "(none)");
	}
	client_send_long_pings(a);
	script_convert(a, b);
	if (a->lease[2])
		client_send_lease(a, 7, "release", a->lease[2]);
	client_send(b, 7, "{\"id\":7,\"op\":\"ping\"}\n", false);
}

/* Ends both clients and waits until the daemon has nothing left. */
static void end_clients(struct client *a, struct client *b)
{
	client_read(a);
	/* None of a's requests waits: each is answered, or a was ended. */
	client_check_answered(a, "a");
	client_close(a);
	pump();
	/* b's wait for k1 is granted once a is gone, if not before. */
	client_read(b);
	client_check_answered(b, "b");
	client_close(b);
	for (int i = 0; i < 1000 && (d.nsessions > 0 || !list_empty(&d.graveyard)); i++)
		pump();
	ck_assert_uint_eq(d.nsessions, 0);
	ck_assert(list_empty(&d.graveyard));
	ck_assert_uint_eq(d.lt.stats.leases, 0);
	ck_assert_uint_eq(d.lt.stats.waiters, 0);
	ck_assert_uint_eq(d.lt.stats.resources, 0);
}

/* With memory back, the daemon serves a new client in full. */
static void serves_in_full(void)
{
	static struct client c;

	client_connect(&c);
	client_send(&c, 1, "{\"id\":1,\"op\":\"acquire\",\"key\":\"k1\"}\n", false);
	ck_assert_msg(c.lease[1], "no lease after allocation %lu failed", fail_at);
	client_send_lease(&c, 2, "release", c.lease[1]);
	client_send(&c, 3, "{\"id\":3,\"op\":\"acquire\",\"path\":\"/oom/file\",\"fd\":true}\n",
		    true);
	ck_assert_msg(c.lease[3], "no file lease after allocation %lu failed", fail_at);
	client_send(&c, 4, "{\"id\":4,\"op\":\"list\"}\n", false);
	ck_assert_uint_eq(c.answered, c.sent);
	ck_assert_uint_eq(c.sent, 0x1e);
	ck_assert_int_eq(c.listed, 2); /* the file and its lease */
	ck_assert(!c.ended);
	client_close(&c);
	for (int i = 0; i < 1000 && (d.nsessions > 0 || !list_empty(&d.graveyard)); i++)
		pump();
	ck_assert_uint_eq(d.lt.stats.resources, 0);
}

/* One run with allocation n failing (0: none), and with on every one
 * after it; returns how many allocations the script made. */
static unsigned long run_failing(unsigned long n, bool on)
{
	static struct client a, b;
	unsigned long made;

	ck_assert_int_eq(haspd_init(&d), 0);
	config_defaults(&d.cfg);
	fail_at = n;
	oom_fail(n, on);
	oom_allocations = 0;
	nevent = 0;
	script(&a, &b);
	if (n == 0) { /* the script does what it says */
		ck_assert(a.lease[2] && a.lease[3] && a.lease[4] && b.lease[2]);
		ck_assert_uint_eq(a.answered, 0xfffe); /* 15: the multi-key grant */
		ck_assert(a.lease[14] && a.lease[8] && a.lease[9] && b.lease[10] && a.lease[15]);
		/* b's upgrade (11) waits for a, and its multi-key request (12) for a's */
		ck_assert_uint_eq(b.answered, 0x7fe);
	}
	end_clients(&a, &b);
	made = oom_allocations;
	fail_at = 0;
	oom_fail(0, false);
	serves_in_full();
	haspd_done(&d);
	return made;
}

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	log_threshold = LOG_ERR;
	/* jansson's allocations go through the daemon's own hook (see
	 * proto_track_memory()), which calls malloc: wrapped. */
	event_set_mem_functions(event_malloc, event_realloc, free);
	memfd = memfd_create("hasp-oom", MFD_CLOEXEC);
	ck_assert_int_ge(memfd, 0);
}

/* The allocations the script makes, counted in a run where none fails. */
static unsigned long script_allocations(void)
{
	unsigned long total = run_failing(0, false);

	/* The script reaches the daemon's allocations (sessions, buffers,
	 * resources, entries, replies, the file), libevent's and jansson's:
	 * 675 with libevent 2.1 and jansson 2.14. The daemon's own calls
	 * reach the wrappers (-Wl,--wrap applied), and libevent's. */
	ck_assert_uint_gt(total, 200);
	ck_assert_uint_gt(total - nevent, 0);
	ck_assert_uint_gt(nevent, 0);
	if (getenv("HASP_OOM_AT")) /* from there down, to look into one */
		total = strtoul(getenv("HASP_OOM_AT"), NULL, 10);
	return total;
}

START_TEST(every_allocation_fails_once)
{
	for (unsigned long n = script_allocations(); n >= 1; n--)
		run_failing(n, false);
}
END_TEST

/* Memory runs out for good from allocation n on, until the clients are
 * gone: the error paths must not need what they cannot get. */
START_TEST(memory_runs_out_from_every_allocation_on)
{
	for (unsigned long n = script_allocations(); n >= 1; n--)
		run_failing(n, true);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("oom");
	TCase *tc = tcase_create("oom");

	tcase_add_unchecked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, every_allocation_fails_once);
	tcase_add_test(tc, memory_runs_out_from_every_allocation_on);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
