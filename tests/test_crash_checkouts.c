/* The crash test of checkouts (issue 14): haspd is SIGKILLed at random
 * moments while several pipelined connections check out, check in and
 * renew, and restarted on the same socket and state directory; a checker
 * then compares what was acknowledged with what the restarted haspd lists.
 *
 * One process plays every client, over raw non-blocking connections, so
 * that it knows exactly what was sent and what was answered. After the
 * kill it reads every connection to its end: a reply the daemon wrote
 * before it died is an acknowledgement like any other. What is left
 * unanswered was in flight at the kill, and may go either way.
 *
 * Each acquire carries a message of its own ("crash-N"), so a listed
 * holder names the request that made it, even one whose grant was never
 * read. The rules (a violation fails the test at once, with the seed):
 *  - a checkout whose grant was read and whose release was not sent is
 *    listed, with its lease id, fence, mode, resource, owner, message,
 *    grant time (since_ms) and TTL, and its expiry within the window its
 *    last acknowledged grant or renew allows; later a release by its
 *    token succeeds;
 *  - a checkout whose release was acknowledged is never listed again;
 *  - an acquire refused (busy, timeout, already_held, deadlock) or session-bound is
 *    never listed after a restart;
 *  - an acquire or release in flight at the kill may go either way; an
 *    acquire that comes back must be whole (its resource and mode, a fence
 *    above every fence of the lives before it), and is then adopted:
 *    released later by its lease id, as its uid may;
 *  - fences are unique in the run and every grant of a life is above every
 *    fence seen before that life began;
 *  - two leases alive in one life never share a lease id, and a
 *    checkout's id is never given to another lease, even after a restart
 *    (a stale check-in by id of its uid would end somebody else's).
 * After the last cycle every checkout is checked in (by its token, or an
 * adopted one by its lease), and haspd must list nothing, before and after
 * one more SIGKILL and restart.
 *
 * HASP_CRASH_CYCLES (default 30) kill/restart cycles; HASP_CRASH_SEED
 * replays a run's choices (not its timing). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "sendfds.h"

#define NCONN 4                 /* client connections */
#define DEPTH 6                 /* requests in flight per connection, at most */
#define NKEYS 4
#define NFILES 2
#define NRES (NKEYS + NFILES)
#define MAX_HELD 24             /* no new acquire while this many are held or asked */
#define KILL_MAX_MS 60          /* a kill lands 1 to this many ms into a life, */
#define LONG_LIFE_MS 320        /* or a long one, up to 400 ms */
#define SLACK_MS 5              /* rounding of the daemon's ms figures */
#define TTL_BASE_MS 3600000     /* TTLs of an hour or two: none runs out */

enum state {
	ACQ_SENT,       /* acquire sent, no answer yet */
	HELD,           /* granted (or found restored) and not released */
	REL_SENT,       /* release sent, no answer yet */
	RELEASED,       /* release acknowledged, or found gone after a release in flight */
	REFUSED,        /* an error answer, or lost in flight, or a session-bound lease ended */
};

struct checkout {
	int res;                /* 0..NKEYS-1 a key, then the files */
	bool shared, detach;
	enum state state;
	bool busy;              /* a renew or release of it in flight */
	bool has_token;         /* false for one adopted after a restart */
	bool adopted;
	char token[33];
	uint64_t lease, fence;
	int life;               /* the daemon life it was sent in */
	int end_life;           /* the life it ended in; INT_MAX while held */
	int listed;             /* the last life whose list showed it */
	uint64_t floor;         /* every fence seen before its life */
	int conn;               /* session-bound: its connection */
	int64_t sent_ms, acked_ms;      /* the acquire's, on the wall clock */
	int64_t ttl_ms;                 /* 0: none */
	int64_t exp_lo, exp_hi;         /* its expiry lies within, wall ms */
	int64_t renew_ttl, renew_sent;  /* a renew in flight (ttl 0: none) */
};

enum kind { K_ACQUIRE, K_RELEASE, K_RENEW };

struct pending {
	int64_t id;
	enum kind kind;
	size_t co;
};

struct conn {
	int fd;
	char in[1 << 16];
	size_t len;
	struct pending p[DEPTH];
	size_t np;
};

struct figures {
	unsigned cycles, startup_kills;
	unsigned long sent, acked, granted, refused, released, renewed, session_bound;
	unsigned long inflight, inflight_max, cycles_inflight;
	unsigned long inflight_acquire_restored, inflight_acquire_gone;
	unsigned long inflight_release_took, inflight_release_undone;
	unsigned long holders_checked, expiries_checked, gone_checked;
	unsigned long torn_tails, rewrite_inflight, rewrites_in_life, replies_after_kill;
};

struct run {
	struct daemon_proc d;
	char files_dir[64];
	char file[NFILES][128];
	char shown[NFILES][PATH_MAX];   /* as list shows them */
	unsigned seed, seed0;
	int life;
	uint64_t floor_fence;           /* every fence seen before this life */
	uint64_t max_fence;             /* every fence seen so far */
	struct checkout *co;
	size_t nco, capco;
	size_t live[MAX_HELD + NCONN * DEPTH + 8];      /* ACQ_SENT, HELD, REL_SENT */
	size_t nlive;
	struct conn c[NCONN];
	int64_t next_id;
	int64_t killed_ms;
	int killed_life;
	int64_t t0;
	struct figures f;
};

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned rnd(struct run *r, unsigned n)
{
	return (unsigned)rand_r(&r->seed) % n;
}

static unsigned env_uint(const char *name, unsigned dflt)
{
	const char *v = getenv(name);

	return v && *v ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

/* Cycles: 30, or 6 under a wrapper such as valgrind, where a restart
 * takes seconds and what counts is what it finds in the restore. */
static unsigned cycles(void)
{
	const char *w = getenv("HASP_TEST_WRAPPER");

	return env_uint("HASP_CRASH_CYCLES", w && *w ? 6 : 30);
}

static __attribute__((format(printf, 1, 2))) const char *fmt_msg(const char *fmt, ...);

#define FAIL(r, ...)                                                                     \
	ck_abort_msg("crash test (HASP_CRASH_SEED=%u, life %d): %s", (r)->seed0,        \
		     (r)->life, fmt_msg(__VA_ARGS__))

/* ---- the model ---- */

static const char *res_name(const struct run *r, int res)
{
	static const char *const keys[NKEYS] = { "crash/k0", "crash/k1", "crash/k2", "crash/k3" };

	return res < NKEYS ? keys[res] : r->file[res - NKEYS];
}

static const char *state_name(enum state s)
{
	static const char *const names[] = { "acquire in flight", "held", "release in flight",
					     "released", "refused" };

	return names[s];
}

static const char *describe(const struct run *r, size_t i)
{
	static char buf[400];
	const struct checkout *co = &r->co[i];

	snprintf(buf, sizeof(buf), "request crash-%zu (%s %s of '%s', %s, sent in life %d%s): "
		 "lease %" PRIu64 ", fence %" PRIu64 ", ttl %" PRId64 " ms%s", i,
		 co->detach ? "checkout" : "session-bound lease", co->shared ? "shared" : "exclusive",
		 res_name(r, co->res), state_name(co->state), co->life, co->adopted ?
		 ", adopted after a restart" : "", co->lease, co->fence, co->ttl_ms,
		 co->renew_ttl ? ", a renew in flight" : "");
	return buf;
}

static size_t co_new(struct run *r)
{
	if (r->nco == r->capco) {
		r->capco = r->capco ? 2 * r->capco : 1024;
		r->co = realloc(r->co, r->capco * sizeof(*r->co));
		ck_assert_ptr_nonnull(r->co);
	}
	memset(&r->co[r->nco], 0, sizeof(r->co[0]));
	return r->nco++;
}

static void live_add(struct run *r, size_t i)
{
	ck_assert_uint_lt(r->nlive, sizeof(r->live) / sizeof(r->live[0]));
	r->live[r->nlive++] = i;
}

/* i leaves the live set as st (released or refused). */
static void live_end(struct run *r, size_t i, enum state st)
{
	for (size_t k = 0; k < r->nlive; k++) {
		if (r->live[k] == i) {
			r->live[k] = r->live[--r->nlive];
			break;
		}
	}
	r->co[i].state = st;
	r->co[i].busy = false;
	r->co[i].renew_ttl = 0;
	r->co[i].end_life = r->life;
}

/* ---- connections ---- */

static void send_line(struct run *r, int ci, const char *text, int passfd)
{
	struct conn *c = &r->c[ci];
	size_t len = strlen(text), off = 0;
	int64_t end = now_ms() + test_ms(5000);

	while (off < len) {
		ssize_t n = passfd >= 0 && off == 0 ? sendfds(c->fd, text, len, &passfd, 1) :
			send(c->fd, text + off, len - off, MSG_NOSIGNAL);
		struct pollfd p = { .fd = c->fd, .events = POLLOUT };

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			FAIL(r, "sending on connection %d: %s (did haspd die by itself?)", ci,
			     strerror(errno));
		if (now_ms() > end)
			FAIL(r, "connection %d: haspd read nothing for 5 s", ci);
		poll(&p, 1, 10);
	}
	r->f.sent++;
}

static void pend(struct run *r, int ci, int64_t id, enum kind k, size_t co)
{
	struct conn *c = &r->c[ci];

	ck_assert_uint_lt(c->np, DEPTH);
	c->p[c->np++] = (struct pending){ id, k, co };
}

/* A new acquire on connection ci. */
static void send_acquire(struct run *r, int ci)
{
	size_t i = co_new(r);
	struct checkout *co = &r->co[i];
	int64_t id = ++r->next_id;
	char line[1024], ttl[40] = "", timeout[24];
	bool file, with_fd;
	int fd = -1;

	co->res = (int)rnd(r, NRES);
	co->shared = rnd(r, 2);
	co->detach = rnd(r, 10) != 0;
	co->life = r->life;
	co->end_life = INT_MAX;
	co->floor = r->floor_fence;
	co->conn = ci;
	co->state = ACQ_SENT;
	if (co->detach && rnd(r, 2)) {
		co->ttl_ms = TTL_BASE_MS + 1000 * (int64_t)rnd(r, 3600);
		snprintf(ttl, sizeof(ttl), ",\"ttl_ms\":%" PRId64, co->ttl_ms);
	}
	/* Mostly at once; some wait, to be granted by a release from elsewhere. */
	snprintf(timeout, sizeof(timeout), "%u", rnd(r, 5) ? 0 : 5 + rnd(r, 40));
	file = co->res >= NKEYS;
	with_fd = file && rnd(r, 2);
	snprintf(line, sizeof(line), "{\"id\":%" PRId64 ",\"op\":\"acquire\",\"%s\":\"%s\"%s,"
		 "\"mode\":\"%s\",\"timeout_ms\":%s%s%s,\"owner\":\"crash\",\"message\":\"crash-%zu\"}\n",
		 id, file ? "path" : "key", res_name(r, co->res), with_fd ? ",\"fd\":true" : "",
		 co->shared ? "shared" : "exclusive", timeout, co->detach ? ",\"detach\":true" : "",
		 ttl, i);
	if (with_fd) {
		fd = open(res_name(r, co->res), O_RDWR | O_CLOEXEC);
		ck_assert_int_ge(fd, 0);
	}
	co->sent_ms = wall_ms();
	send_line(r, ci, line, fd);
	if (fd >= 0)
		close(fd);
	pend(r, ci, id, K_ACQUIRE, i);
	live_add(r, i);
}

static void send_release(struct run *r, int ci, size_t i)
{
	struct checkout *co = &r->co[i];
	int64_t id = ++r->next_id;
	char line[1024];
	unsigned how = co->detach && co->has_token ? rnd(r, 4) : 1;

	switch (how) {
	case 0:
		snprintf(line, sizeof(line), "{\"id\":%" PRId64 ",\"op\":\"release\",\"token\":\"%s\"}\n",
			 id, co->token);
		break;
	case 1: /* by lease: the session's own, or a checkout of this uid */
		snprintf(line, sizeof(line), "{\"id\":%" PRId64 ",\"op\":\"release\",\"lease\":%" PRIu64
			 "}\n", id, co->lease);
		break;
	case 2:
		snprintf(line, sizeof(line), "{\"id\":%" PRId64 ",\"op\":\"release\",\"lease\":%" PRIu64
			 ",\"token\":\"%s\"}\n", id, co->lease, co->token);
		break;
	default:
		snprintf(line, sizeof(line), "{\"id\":%" PRId64 ",\"op\":\"release\",\"%s\":\"%s\","
			 "\"token\":\"%s\"}\n", id, co->res < NKEYS ? "key" : "path",
			 res_name(r, co->res), co->token);
		break;
	}
	co->state = REL_SENT;
	co->busy = true;
	send_line(r, ci, line, -1);
	pend(r, ci, id, K_RELEASE, i);
}

static void send_renew(struct run *r, int ci, size_t i)
{
	struct checkout *co = &r->co[i];
	int64_t id = ++r->next_id;
	char line[512];

	co->renew_ttl = TTL_BASE_MS + 1000 * (int64_t)rnd(r, 3600);
	if (co->has_token && rnd(r, 2))
		snprintf(line, sizeof(line), "{\"id\":%" PRId64 ",\"op\":\"renew\",\"token\":\"%s\","
			 "\"ttl_ms\":%" PRId64 "}\n", id, co->token, co->renew_ttl);
	else if (co->has_token)
		snprintf(line, sizeof(line), "{\"id\":%" PRId64 ",\"op\":\"renew\",\"lease\":%" PRIu64
			 ",\"token\":\"%s\",\"ttl_ms\":%" PRId64 "}\n", id, co->lease, co->token,
			 co->renew_ttl);
	else
		snprintf(line, sizeof(line), "{\"id\":%" PRId64 ",\"op\":\"renew\",\"lease\":%" PRIu64
			 ",\"ttl_ms\":%" PRId64 "}\n", id, co->lease, co->renew_ttl);
	co->busy = true;
	co->renew_sent = wall_ms();
	send_line(r, ci, line, -1);
	pend(r, ci, id, K_RENEW, i);
}

/* One more request on ci, if there is one to make. */
static bool issue(struct run *r, int ci)
{
	size_t cand[sizeof(r->live) / sizeof(r->live[0])], n = 0;

	for (size_t k = 0; k < r->nlive; k++) {
		const struct checkout *co = &r->co[r->live[k]];

		if (co->state == HELD && !co->busy && (co->detach || co->conn == ci))
			cand[n++] = r->live[k];
	}
	if (r->nlive < MAX_HELD && (n == 0 || rnd(r, 100) < 45)) {
		send_acquire(r, ci);
		return true;
	}
	if (n == 0)
		return false;
	size_t i = cand[rnd(r, (unsigned)n)];

	if (r->co[i].detach && rnd(r, 100) < 30)
		send_renew(r, ci, i);
	else
		send_release(r, ci, i);
	return true;
}

static void top_up(struct run *r, int ci)
{
	unsigned want = 1 + rnd(r, DEPTH);

	while (r->c[ci].np < want && issue(r, ci)) {
	}
}

/* ---- answers ---- */

static int64_t int_of(json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

/* s, or "" for NULL. */
static const char *str(const char *s)
{
	return s ? s : "";
}

static bool is_token(const char *t)
{
	if (!t || strlen(t) != 32)
		return false;
	for (; *t; t++)
		if (!((*t >= '0' && *t <= '9') || (*t >= 'a' && *t <= 'f')))
			return false;
	return true;
}

static void on_acquire(struct run *r, size_t i, json_t *j)
{
	struct checkout *co = &r->co[i];
	const char *err = reply_error(j);
	const char *token = json_string_value(json_object_get(j, "token"));
	int64_t lease = int_of(j, "lease"), fence = int_of(j, "fence");

	if (err) {
		if (strcmp(err, "busy") && strcmp(err, "timeout") && strcmp(err, "already_held") &&
		    strcmp(err, "deadlock"))
			FAIL(r, "%s: answered %s: %s", describe(r, i), err, reply_message(j));
		r->f.refused++;
		live_end(r, i, REFUSED);
		return;
	}
	if (lease < 1 || fence < 1)
		FAIL(r, "%s: a grant without a lease or fence", describe(r, i));
	if ((uint64_t)fence <= r->floor_fence)
		FAIL(r, "%s: granted with fence %" PRId64 ", not above %" PRIu64 ", a fence seen "
		     "before this life", describe(r, i), fence, r->floor_fence);
	if (strcmp(str(json_string_value(json_object_get(j, "mode"))), co->shared ? "shared" :
		   "exclusive"))
		FAIL(r, "%s: granted in another mode", describe(r, i));
	if (co->detach != is_token(token))
		FAIL(r, "%s: a grant %s token", describe(r, i), token ? "with a bad or extra" :
		     "without its");
	if (co->ttl_ms && int_of(j, "expires_ms") != co->ttl_ms)
		FAIL(r, "%s: expires_ms is %" PRId64, describe(r, i), int_of(j, "expires_ms"));
	co->lease = (uint64_t)lease;
	co->fence = (uint64_t)fence;
	if (co->fence > r->max_fence)
		r->max_fence = co->fence;
	co->acked_ms = wall_ms();
	co->exp_lo = co->sent_ms + co->ttl_ms;
	co->exp_hi = co->acked_ms + co->ttl_ms;
	if (token) {
		snprintf(co->token, sizeof(co->token), "%s", token);
		co->has_token = true;
	} else {
		r->f.session_bound++;
	}
	co->state = HELD;
	r->f.granted++;
}

static void on_release(struct run *r, size_t i, json_t *j)
{
	struct checkout *co = &r->co[i];
	const char *err = reply_error(j);

	if (err)
		FAIL(r, "%s: its release was answered %s: %s", describe(r, i), err, reply_message(j));
	if (json_object_get(j, "lease") && int_of(j, "lease") != (int64_t)co->lease)
		FAIL(r, "%s: the release ended lease %" PRId64, describe(r, i), int_of(j, "lease"));
	r->f.released++;
	live_end(r, i, RELEASED);
}

static void on_renew(struct run *r, size_t i, json_t *j)
{
	struct checkout *co = &r->co[i];
	const char *err = reply_error(j);

	if (err)
		FAIL(r, "%s: its renew was answered %s: %s", describe(r, i), err, reply_message(j));
	if (int_of(j, "expires_ms") != co->renew_ttl)
		FAIL(r, "%s: renewed for %" PRId64 " ms, expires_ms %" PRId64, describe(r, i),
		     co->renew_ttl, int_of(j, "expires_ms"));
	co->ttl_ms = co->renew_ttl;
	co->exp_lo = co->renew_sent + co->ttl_ms;
	co->exp_hi = wall_ms() + co->ttl_ms;
	co->renew_ttl = 0;
	co->busy = false;
	r->f.renewed++;
}

static void on_line(struct run *r, int ci, const char *line, size_t len)
{
	struct conn *c = &r->c[ci];
	json_t *j = json_loadb(line, len, 0, NULL);
	int64_t id = int_of(j, "id");
	size_t k;

	if (!j)
		FAIL(r, "connection %d: not JSON: %.*s", ci, (int)len, line);
	if (json_object_get(j, "event"))
		FAIL(r, "connection %d: an event nobody caused: %.*s", ci, (int)len, line);
	for (k = 0; k < c->np && c->p[k].id != id; k++) {
	}
	if (k == c->np)
		FAIL(r, "connection %d: an answer to no request: %.*s", ci, (int)len, line);
	struct pending p = c->p[k];

	c->p[k] = c->p[--c->np];
	r->f.acked++;
	if (p.kind == K_ACQUIRE)
		on_acquire(r, p.co, j);
	else if (p.kind == K_RELEASE)
		on_release(r, p.co, j);
	else
		on_renew(r, p.co, j);
	json_decref(j);
}

/* Reads what ci has; false at its end. */
static bool read_conn(struct run *r, int ci)
{
	struct conn *c = &r->c[ci];
	ssize_t n = read(c->fd, c->in + c->len, sizeof(c->in) - c->len);
	char *nl;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return true;
	if (n <= 0)
		return false;
	c->len += (size_t)n;
	while ((nl = memchr(c->in, '\n', c->len))) {
		size_t len = (size_t)(nl - c->in);

		on_line(r, ci, c->in, len);
		memmove(c->in, nl + 1, c->len - len - 1);
		c->len -= len + 1;
	}
	ck_assert_uint_lt(c->len, sizeof(c->in));
	return true;
}

/* ---- the daemon's lives ---- */

static ino_t journal_ino(const struct run *r)
{
	struct stat st;

	return stat(r->d.journal, &st) == 0 ? st.st_ino : 0;
}

/* Starts haspd on the run's socket and state; sometimes kills it first
 * while it starts (restoring, rewriting its journal). */
static void start(struct run *r)
{
	if (r->life > 0 && rnd(r, 6) == 0) {
		pid_t pid = daemon_spawn(r->d.socket, -1);

		r->life++;
		usleep(rnd(r, 4000)); /* not a wait for anything: when the kill lands */
		kill(pid, SIGKILL);
		wait_child(pid, DAEMON_START_MS);
		r->f.startup_kills++;
	}
	r->life++;
	r->d.pid = daemon_spawn(r->d.socket, -1);
	if (!wait_socket(r->d.socket, DAEMON_START_MS))
		FAIL(r, "haspd did not start on %s", r->d.socket);
}

static void connect_all(struct run *r)
{
	for (int ci = 0; ci < NCONN; ci++) {
		struct conn *c = &r->c[ci];

		c->fd = raw_connect(r->d.socket);
		c->len = 0;
		c->np = 0;
		ck_assert_int_eq(fcntl(c->fd, F_SETFL, O_NONBLOCK), 0);
	}
}

/* The journal as the kill left it: a torn last line, a rewrite under way. */
static void look_at_journal(struct run *r)
{
	char aside[sizeof(r->d.journal) + 8], last = '\n';
	int fd = open(r->d.journal, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0 &&
	    pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n')
		r->f.torn_tails++;
	if (fd >= 0)
		close(fd);
	snprintf(aside, sizeof(aside), "%s.new", r->d.journal);
	if (access(aside, F_OK) == 0)
		r->f.rewrite_inflight++;
}

/* SIGKILL, then every answer the daemon wrote before it died; what stays
 * unanswered was in flight. Session-bound leases end with the daemon. */
static void kill_daemon(struct run *r)
{
	unsigned long inflight = 0;

	kill(r->d.pid, SIGKILL);
	wait_child(r->d.pid, DAEMON_START_MS);
	r->killed_ms = wall_ms();
	r->killed_life = r->life;
	look_at_journal(r);
	for (int ci = 0; ci < NCONN; ci++) {
		struct conn *c = &r->c[ci];
		int64_t end = now_ms() + test_ms(5000);
		unsigned long before = r->f.acked;

		for (;;) {
			struct pollfd p = { .fd = c->fd, .events = POLLIN };

			if (now_ms() > end)
				FAIL(r, "connection %d: no end 5 s after haspd was killed", ci);
			if (poll(&p, 1, 100) > 0 && !read_conn(r, ci))
				break;
		}
		r->f.replies_after_kill += r->f.acked - before;
		inflight += c->np;
		close(c->fd);
		c->fd = -1;
		c->np = 0;
	}
	for (size_t k = 0; k < r->nlive;) {
		size_t i = r->live[k];

		if (!r->co[i].detach) {
			live_end(r, i, REFUSED);
			continue;
		}
		k++;
	}
	r->f.inflight += inflight;
	r->f.cycles_inflight += inflight > 0;
	if (inflight > r->f.inflight_max)
		r->f.inflight_max = inflight;
}

/* One life under load, ended by SIGKILL at a random moment. */
static void run_life(struct run *r)
{
	/* Mostly short lives; one in five long enough for haspd to rewrite
	 * its journal (past 256 records more than twice its checkouts).
	 * Stretched under a slow wrapper (test_ms()), so that haspd answers. */
	int64_t kill_at = now_ms() + test_ms(1 + (int)(rnd(r, 5) ? rnd(r, KILL_MAX_MS) :
						    LONG_LIFE_MS / 4 + rnd(r, LONG_LIFE_MS)));
	ino_t ino = journal_ino(r);

	connect_all(r);
	for (;;) {
		struct pollfd p[NCONN];
		int64_t left;

		for (int ci = 0; ci < NCONN; ci++) {
			top_up(r, ci);
			p[ci] = (struct pollfd){ .fd = r->c[ci].fd, .events = POLLIN };
		}
		left = kill_at - now_ms();
		if (left <= 0)
			break;
		if (poll(p, NCONN, (int)left) < 0 && errno != EINTR)
			FAIL(r, "poll: %s", strerror(errno));
		for (int ci = 0; ci < NCONN; ci++)
			if ((p[ci].revents & (POLLIN | POLLHUP | POLLERR)) && !read_conn(r, ci))
				FAIL(r, "haspd ended connection %d before it was killed", ci);
	}
	r->f.rewrites_in_life += journal_ino(r) != ino;
	kill_daemon(r);
	r->f.cycles++;
}

/* ---- the checker ---- */

/* Every holder of every resource, as one array (list, page by page). */
static json_t *list_holders(struct run *r, int fd, int64_t *ret_l0, int64_t *ret_l1)
{
	json_t *all = json_array(), *after = NULL;

	*ret_l0 = wall_ms();
	for (int64_t id = 1000;; id++) {
		char line[2048];
		json_t *rep, *res;
		size_t k;

		if (after)
			snprintf(line, sizeof(line), "{\"id\":%" PRId64 ",\"op\":\"list\",\"limit\":2,"
				 "\"after\":\"%s\"}\n", id, json_string_value(after));
		else
			snprintf(line, sizeof(line), "{\"id\":%" PRId64 ",\"op\":\"list\",\"limit\":2}\n", id);
		raw_send(fd, line);
		rep = raw_recv_id(fd, id, 10000);
		if (!rep || reply_error(rep))
			FAIL(r, "list: %s", rep ? reply_message(rep) : "no answer in 10 s");
		json_array_foreach(json_object_get(rep, "resources"), k, res) {
			json_t *h;
			size_t m;

			if (json_array_size(json_object_get(res, "waiters")))
				FAIL(r, "a waiter after a restart, on %s",
				     str(json_dumps(res, JSON_COMPACT)));
			json_array_foreach(json_object_get(res, "holders"), m, h) {
				json_t *name = json_object_get(res, json_object_get(res, "key") ? "key" :
							       "path");

				json_object_set(h, "name", name);
				json_array_append(all, h);
			}
		}
		json_decref(after);
		after = json_incref(json_object_get(rep, "next"));
		json_decref(rep);
		if (!after)
			break;
	}
	*ret_l1 = wall_ms();
	return all;
}

/* A listed TTL and expiry against one the model allows: ttl and an expiry
 * within [lo, hi] on the wall clock, for a list sent at l0 and answered
 * at l1. */
static bool ttl_fits(json_t *h, int64_t ttl, int64_t lo, int64_t hi, int64_t l0, int64_t l1)
{
	int64_t listed = int_of(h, "ttl_ms"), left = int_of(h, "expires_in_ms");

	if (!ttl)
		return listed < 0 && left < 0;
	return listed == ttl && left >= lo - l1 - SLACK_MS && left <= hi - l0 + SLACK_MS;
}

/* One listed holder against the request that made it. */
static void check_holder(struct run *r, json_t *h, int64_t l0, int64_t l1)
{
	const char *msg = json_string_value(json_object_get(h, "message"));
	const char *name = json_string_value(json_object_get(h, "name"));
	const char *mode = json_string_value(json_object_get(h, "mode"));
	int64_t lease = int_of(h, "lease"), fence = int_of(h, "fence");
	int64_t since = int_of(h, "since_ms");
	char *text = json_dumps(h, JSON_COMPACT);
	struct checkout *co;
	size_t i;
	char end;

	if (!msg || sscanf(msg, "crash-%zu%c", &i, &end) != 1 || i >= r->nco)
		FAIL(r, "a holder no request of the test made: %s", text);
	co = &r->co[i];
	if (co->listed == r->life)
		FAIL(r, "%s: listed twice: %s", describe(r, i), text);
	co->listed = r->life;
	if (!co->detach)
		FAIL(r, "%s: a session-bound lease came back after a restart: %s", describe(r, i), text);
	if (co->state == RELEASED)
		FAIL(r, "%s: its release was acknowledged, yet it came back: %s", describe(r, i), text);
	if (co->state == REFUSED)
		FAIL(r, "%s: refused (or found gone after an earlier restart), yet listed: %s",
		     describe(r, i), text);
	if (!json_is_true(json_object_get(h, "detached")) || int_of(h, "session") != 0 ||
	    strcmp(str(json_string_value(json_object_get(h, "owner"))), "crash") ||
	    strcmp(str(name), co->res < NKEYS ? res_name(r, co->res) : r->shown[co->res - NKEYS]) ||
	    strcmp(str(mode), co->shared ? "shared" : "exclusive"))
		FAIL(r, "%s: restored with another resource, mode, owner or without detached: %s",
		     describe(r, i), text);
	if (co->state == ACQ_SENT) {
		/* Granted and journaled, its answer lost: whole, of its life. */
		if (lease < 1 || fence < 1 || (uint64_t)fence <= co->floor)
			FAIL(r, "%s: restored with fence %" PRId64 ", not above %" PRIu64 ", every "
			     "fence before the life it was sent in: %s", describe(r, i), fence,
			     co->floor, text);
		if (since < co->sent_ms - SLACK_MS || since > r->killed_ms + SLACK_MS)
			FAIL(r, "%s: restored with a grant time (since_ms %" PRId64 ") outside [%"
			     PRId64 ", %" PRId64 "]: %s", describe(r, i), since, co->sent_ms,
			     r->killed_ms, text);
		if (!ttl_fits(h, co->ttl_ms, co->sent_ms + co->ttl_ms, r->killed_ms + co->ttl_ms,
			      l0, l1))
			FAIL(r, "%s: restored with another TTL or expiry: %s", describe(r, i), text);
		co->lease = (uint64_t)lease;
		co->fence = (uint64_t)fence;
		co->acked_ms = r->killed_ms;
		co->exp_lo = co->sent_ms + co->ttl_ms;
		co->exp_hi = r->killed_ms + co->ttl_ms;
		co->adopted = true;
		co->state = HELD;
		if (co->fence > r->max_fence)
			r->max_fence = co->fence;
		r->f.inflight_acquire_restored++;
		free(text);
		return;
	}
	/* Held, or its release in flight: exactly as granted. */
	if ((uint64_t)lease != co->lease || (uint64_t)fence != co->fence)
		FAIL(r, "%s: restored as lease %" PRId64 " fence %" PRId64 ": %s", describe(r, i),
		     lease, fence, text);
	if (!co->adopted && (since < co->sent_ms - SLACK_MS || since > co->acked_ms + SLACK_MS))
		FAIL(r, "%s: restored with a grant time (since_ms %" PRId64 ") outside [%" PRId64
		     ", %" PRId64 "]: %s", describe(r, i), since, co->sent_ms, co->acked_ms, text);
	if (co->renew_ttl && ttl_fits(h, co->renew_ttl, co->renew_sent + co->renew_ttl,
				      r->killed_ms + co->renew_ttl, l0, l1)) {
		/* The renew in flight took. */
		co->ttl_ms = co->renew_ttl;
		co->exp_lo = co->renew_sent + co->ttl_ms;
		co->exp_hi = r->killed_ms + co->ttl_ms;
	} else if (!ttl_fits(h, co->ttl_ms, co->exp_lo, co->exp_hi, l0, l1)) {
		FAIL(r, "%s: restored with another TTL or expiry (the model allows %" PRId64
		     " ms expiring in [%" PRId64 ", %" PRId64 "] ms%s): %s", describe(r, i),
		     co->ttl_ms, co->exp_lo - l1, co->exp_hi - l0,
		     co->renew_ttl ? ", or the renew in flight" : "", text);
	}
	r->f.expiries_checked += co->ttl_ms > 0;
	if (co->state == REL_SENT)
		r->f.inflight_release_undone++;
	co->state = HELD;
	co->busy = false;
	co->renew_ttl = 0;
	r->f.holders_checked++;
	free(text);
}

/* After a restart: what haspd lists against what was acknowledged. */
static void check_restart(struct run *r)
{
	int fd = raw_connect_served(r->d.socket);
	int64_t l0, l1;
	json_t *all, *h;
	size_t k;

	if (fd < 0)
		FAIL(r, "the restarted haspd does not serve");
	all = list_holders(r, fd, &l0, &l1);
	close(fd);
	json_array_foreach(all, k, h)
		check_holder(r, h, l0, l1);
	json_decref(all);
	for (k = 0; k < r->nlive;) {
		size_t i = r->live[k];
		struct checkout *co = &r->co[i];

		if (co->listed == r->life) {
			k++;
			continue;
		}
		if (co->state == HELD)
			FAIL(r, "%s: acknowledged, never released, and not listed after the restart",
			     describe(r, i));
		if (co->state == REL_SENT)
			r->f.inflight_release_took++;
		else
			r->f.inflight_acquire_gone++;
		live_end(r, i, co->state == REL_SENT ? RELEASED : REFUSED);
		co->end_life = r->killed_life; /* before the kill, if at all */
	}
	r->f.gone_checked = r->nco - r->nlive; /* by now */
	r->floor_fence = r->max_fence;
}

/* Lease ids and fences over the whole run. */
struct grant {
	uint64_t lease, fence;
	size_t i;
};

static int by_fence(const void *a, const void *b)
{
	const struct grant *x = a, *y = b;

	return x->fence < y->fence ? -1 : x->fence > y->fence;
}

static int by_lease(const void *a, const void *b)
{
	const struct grant *x = a, *y = b;

	if (x->lease != y->lease)
		return x->lease < y->lease ? -1 : 1;
	return by_fence(a, b);
}

static void check_ids(struct run *r)
{
	struct grant *g = calloc(r->nco + 1, sizeof(*g));
	size_t n = 0;

	ck_assert_ptr_nonnull(g);
	for (size_t i = 0; i < r->nco; i++)
		if (r->co[i].fence)
			g[n++] = (struct grant){ r->co[i].lease, r->co[i].fence, i };
	qsort(g, n, sizeof(*g), by_fence);
	for (size_t k = 1; k < n; k++)
		if (g[k].fence == g[k - 1].fence)
			FAIL(r, "fence %" PRIu64 " given twice: %s", g[k].fence, describe(r, g[k].i));
	qsort(g, n, sizeof(*g), by_lease);
	for (size_t k = 1; k < n; k++) {
		const struct checkout *a = &r->co[g[k - 1].i], *b = &r->co[g[k].i];
		char first[400];

		if (g[k].lease != g[k - 1].lease)
			continue;
		snprintf(first, sizeof(first), "%s", describe(r, g[k - 1].i));
		/* Two leases with one id alive in one life. */
		if (a->end_life >= b->life)
			FAIL(r, "lease id %" PRIu64 " names two leases at once: %s; and %s",
			     g[k].lease, first, describe(r, g[k].i));
		/* A checkout's id given again after a restart. (A session-bound
		 * lease's may be: unique within the daemon's life is all
		 * DESIGN.md promises for those.) */
		if (a->detach)
			FAIL(r, "lease id %" PRIu64 " of a checkout given again after a restart: %s, "
			     "ended in life %d; then %s", g[k].lease, first, a->end_life,
			     describe(r, g[k].i));
	}
	free(g);
}

/* ---- the end: everything checked in, for good ---- */

static void release_all(struct run *r)
{
	int fd = raw_connect_served(r->d.socket);

	if (fd < 0)
		FAIL(r, "haspd does not serve");
	while (r->nlive > 0) {
		size_t i = r->live[0];
		struct checkout *co = &r->co[i];
		char line[256];
		json_t *rep;

		ck_assert(co->state == HELD && co->detach);
		/* By its token, which must work whatever happened since; an
		 * adopted one by its lease, as its uid may. */
		if (co->has_token)
			snprintf(line, sizeof(line), "{\"id\":7,\"op\":\"release\",\"token\":\"%s\"}\n",
				 co->token);
		else
			snprintf(line, sizeof(line), "{\"id\":7,\"op\":\"release\",\"lease\":%" PRIu64
				 "}\n", co->lease);
		raw_send(fd, line);
		rep = raw_recv_id(fd, 7, 10000);
		if (!rep || reply_error(rep) || int_of(rep, "lease") != (int64_t)co->lease)
			FAIL(r, "%s: the final check-in failed: %s", describe(r, i),
			     rep ? reply_message(rep) : "no answer in 10 s");
		json_decref(rep);
		r->f.released++;
		live_end(r, i, RELEASED);
	}
	close(fd);
}

static void expect_empty(struct run *r, const char *when)
{
	int fd = raw_connect_served(r->d.socket);
	int64_t l0, l1;
	json_t *all;

	if (fd < 0)
		FAIL(r, "haspd does not serve");
	all = list_holders(r, fd, &l0, &l1);
	close(fd);
	if (json_array_size(all))
		FAIL(r, "%s, haspd still lists %s", when, str(json_dumps(all, JSON_COMPACT)));
	json_decref(all);
}

static void print_figures(const struct run *r, int64_t ms)
{
	const struct figures *f = &r->f;

	printf("crash test: HASP_CRASH_SEED=%u, %u cycles (%u more kills while haspd started), "
	       "%.1f s\n", r->seed0, f->cycles, f->startup_kills, (double)ms / 1000);
	printf("  requests sent %lu, answered %lu (%lu of them read after the kill): checkouts "
	       "and leases granted %lu (%lu session-bound), refused %lu, released %lu, renewed %lu\n",
	       f->sent, f->acked, f->replies_after_kill, f->granted, f->session_bound, f->refused,
	       f->released, f->renewed);
	printf("  in flight at a kill: %lu in all, at most %lu at once, in %lu of %u cycles; "
	       "acquires in flight restored %lu, gone %lu; releases in flight that took %lu, "
	       "that did not %lu\n", f->inflight, f->inflight_max, f->cycles_inflight, f->cycles,
	       f->inflight_acquire_restored, f->inflight_acquire_gone, f->inflight_release_took,
	       f->inflight_release_undone);
	printf("  checked after restarts: %lu acknowledged checkouts found whole (%lu with their "
	       "TTL's expiry); absent: every request ended (%lu at the last restart)\n",
	       f->holders_checked, f->expiries_checked, f->gone_checked);
	printf("  the journal at the kills: %lu torn last lines, %lu rewrites under way, %lu "
	       "lives that rewrote it\n", f->torn_tails, f->rewrite_inflight, f->rewrites_in_life);
	fflush(stdout);
}

static void make_files(struct run *r)
{
	snprintf(r->files_dir, sizeof(r->files_dir), "/tmp/hasp-crash-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(r->files_dir));
	for (int k = 0; k < NFILES; k++) {
		int fd;

		snprintf(r->file[k], sizeof(r->file[k]), "%s/f%d", r->files_dir, k);
		fd = open(r->file[k], O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		ck_assert_int_ge(fd, 0);
		close(fd);
		ck_assert_ptr_nonnull(realpath(r->file[k], r->shown[k]));
	}
}

static void remove_files(const struct run *r)
{
	for (int k = 0; k < NFILES; k++)
		unlink(r->file[k]);
	rmdir(r->files_dir);
}

static struct run *the_run;

static const char *fmt_msg(const char *fmt, ...)
{
	static char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* The daemon goes before Check ends the test; its state stays. */
	if (the_run && the_run->d.pid > 0) {
		kill(the_run->d.pid, SIGKILL);
		waitpid(the_run->d.pid, NULL, 0);
		print_figures(the_run, now_ms() - the_run->t0);
		fprintf(stderr, "crash test: haspd's socket, journal and fence file are kept in %s\n",
			the_run->d.dir);
	}
	return buf;
}

START_TEST(crash_cycles)
{
	struct run *r = calloc(1, sizeof(*r));
	unsigned ncycles = cycles();

	ck_assert_ptr_nonnull(r);
	r->t0 = now_ms();
	the_run = r;
	r->seed0 = env_uint("HASP_CRASH_SEED", (unsigned)(now_us() ^ getpid()));
	r->seed = r->seed0;
	printf("crash test: HASP_CRASH_SEED=%u HASP_CRASH_CYCLES=%u\n", r->seed0, ncycles);
	fflush(stdout);
	daemon_dir(&r->d);
	make_files(r);
	start(r);
	for (unsigned k = 0; k < ncycles; k++) {
		run_life(r);
		start(r);
		check_restart(r);
	}
	check_ids(r);
	release_all(r);
	expect_empty(r, "with every checkout checked in");
	kill(r->d.pid, SIGKILL);
	wait_child(r->d.pid, DAEMON_START_MS);
	start(r);
	expect_empty(r, "after a restart that followed the last check-in");
	print_figures(r, now_ms() - r->t0);
	the_run = NULL;
	daemon_stop(&r->d);
	remove_files(r);
	free(r->co);
	free(r);
}
END_TEST

static Suite *crash_suite(void)
{
	Suite *s = suite_create("crash-checkouts");
	TCase *tc = tcase_create("crash");

	tcase_add_test(tc, crash_cycles);
	tcase_set_timeout(tc, 60 + 2 * (double)cycles());
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(crash_suite());
}
