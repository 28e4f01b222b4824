/* Fuzzes the daemon's handling of whole sessions: a real struct haspd
 * (haspd_init, no listening server) with up to four sessions on socket
 * pairs, driven by a little script that the input is.
 *
 * Byte 0 sets the daemon up: bit 0 the line limit (1024 or 65536 bytes),
 * bits 1-2 max_session_locks (1, 2, 8 or the default; max_user_locks one
 * more, so that two sessions of a uid reach it together), bits 3-4 how many
 * sessions there are at the start (1 to 4). Then each command is a control
 * byte: bits 0-1 pick a session, bits 2-5 an action (see enum action),
 * which may take more bytes. After each action the event loop runs until
 * quiet. Every reply line a client reads must be a JSON object with "id"
 * or "event"; the lock table's counts must match the sessions'; at the end
 * every client goes away, every session must be freed and the lock table
 * must be empty.
 *
 * With $HASP_FUZZ_OOM set, one action runs the daemon out of memory: an
 * allocation a few ahead fails (malloc, calloc, realloc and strdup are
 * wrapped at link time for the daemon's code; jansson's and libevent's
 * allocators lead to them). The same checks hold, except that a session
 * may then be ended. Off by default, and so in CI's bounded run: see
 * RESULTS.md for what such a run met. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "config.h"
#include "fuzz.h"
#include "haspd.h"
#include "log.h"
#include "oom.h"
#include "sendfds.h"
#include "session.h"

#define CHECK(cond) do { if (!(cond)) fuzz_fail(#cond, __LINE__); } while (0)

#define NSLOTS 4
/* Loop iterations after an action, and at the end to see every session go. */
#define LOOP_AFTER_ACTION 4
#define LOOP_AT_END 1000

/* The sessions' uids. Requests that name a file path without a descriptor
 * are served only to a peer with the daemon's own uid, and the daemon then
 * creates the file: a fuzzer must never create files on the machine, so
 * every session gets an unprivileged uid that is not this process's, and
 * such requests are refused with permission_denied. Two different uids, so
 * that revoke's permission checks both allow (same uid) and refuse. */
#define UID_A 65534
#define UID_B 65533

enum action {
	A_LINE,         /* write the bytes up to and including the next newline */
	A_LINE2,
	A_LINE3,
	A_LINE4,
	A_BYTES,        /* next byte N: write the N+1 bytes after it */
	A_BYTES2,
	A_LINE_FD,      /* next byte picks descriptors: a line sent with them */
	A_READ,         /* read and check the replies queued for the client */
	A_READ2,
	A_SHUT,         /* the client half-closes (shutdown SHUT_WR) */
	A_CLOSE,        /* the client closes its end */
	A_TIMER,        /* the daemon's deadline timer fires */
	A_OUTSIDER,     /* next byte: a process outside hasp flocks or unlocks a file */
	A_CONNECT,      /* a new client in this slot, if it is free */
	A_PING,         /* a valid request, to keep a script going */
	A_OOM,          /* next byte N: the daemon's N+1th allocation from now fails
			 * ($HASP_FUZZ_OOM; else nothing) */
};

struct client {
	int fd;                 /* the client's end, or -1 */
	struct session *s;      /* the daemon's end while the client is connected */
	char *in;               /* reply bytes read and not yet a whole line */
	size_t len, cap;
};

/* Descriptors that clients may send with a request, made once: two files
 * that live only in memory (memfd: regular, lockable, nowhere on disk) and
 * a pipe (not a regular file: refused). A file's own descriptor here is a
 * description of its own, so flock on it plays a process outside hasp. */
static int pool[3];

static struct haspd d;
static struct client clients[NSLOTS];
/* $HASP_FUZZ_VERBOSE: print every reply line, to see what a seed does. */
static bool verbose;
/* $HASP_FUZZ_OOM: A_OOM makes allocations fail. */
static bool oom;

static void fuzz_fail(const char *what, int line)
{
	fprintf(stderr, "fuzz_session.c:%d: check failed: %s\n", line, what);
	abort();
}

static void fuzz_setup(void)
{
	int p[2];

	signal(SIGPIPE, SIG_IGN);
	log_threshold = LOG_ERR;
	event_set_mem_functions(__wrap_malloc, __wrap_realloc, free);
	verbose = getenv("HASP_FUZZ_VERBOSE") != NULL;
	oom = getenv("HASP_FUZZ_OOM") != NULL;
	CHECK(geteuid() != UID_A && geteuid() != UID_B);
	pool[0] = memfd_create("hasp-fuzz-a", MFD_CLOEXEC);
	pool[1] = memfd_create("hasp-fuzz-b", MFD_CLOEXEC);
	CHECK(pool[0] >= 0 && pool[1] >= 0 && pipe2(p, O_CLOEXEC) == 0);
	pool[2] = p[0];
	/* p[1] stays open, unused, so the pipe never reads as closed. */
}

static void pump(int times)
{
	oom_armed = true;
	for (int i = 0; i < times; i++)
		event_base_loop(d.base, EVLOOP_NONBLOCK);
	oom_armed = false;
}

static void check_reply_line(const char *line, size_t len)
{
	json_t *o = json_loadb(line, len, 0, NULL);
	json_t *id = json_object_get(o, "id");

	if (!json_is_object(o) || (!id && !json_is_string(json_object_get(o, "event"))) ||
	    (id && (!(json_is_integer(id) || json_is_null(id)) ||
		    !json_is_boolean(json_object_get(o, "ok"))))) {
		fprintf(stderr, "bad reply line: %.*s\n", (int)len, line);
		fuzz_fail("a reply is a JSON object with \"id\" and \"ok\", or \"event\"", __LINE__);
	}
	json_decref(o);
}

/* Reads what the daemon has sent the client and checks every whole line. */
static void client_read(struct client *c)
{
	char *nl;
	ssize_t n;

	if (c->fd < 0)
		return;
	for (;;) {
		if (c->cap - c->len < 4096) {
			char *in = realloc(c->in, c->cap = c->cap * 2 + 4096);

			CHECK(in != NULL);
			c->in = in;
		}
		n = read(c->fd, c->in + c->len, c->cap - c->len);
		if (n <= 0)
			break;
		c->len += (size_t)n;
	}
	CHECK(n == 0 || errno == EAGAIN || errno == ECONNRESET);
	while ((nl = memchr(c->in, '\n', c->len))) {
		size_t line = (size_t)(nl - c->in);

		if (verbose)
			fprintf(stderr, "client %d: %.*s\n", (int)(c - clients), (int)line, c->in);
		check_reply_line(c->in, line);
		memmove(c->in, nl + 1, c->len - line - 1);
		c->len -= line + 1;
	}
}

static void client_close(struct client *c)
{
	if (c->fd < 0)
		return;
	client_read(c);
	close(c->fd);
	c->fd = -1;
	c->s = NULL;
	c->len = 0;
}

static void client_connect(struct client *c, int slot)
{
	int sv[2];

	if (c->fd >= 0)
		return;
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
	oom_armed = true;
	c->s = session_new(&d, sv[0]);
	oom_armed = false;
	if (!c->s) {
		close(sv[1]);
		return;
	}
	/* Not this process's uid: see UID_A. */
	c->s->owner.uid = slot < 2 ? UID_A : UID_B;
	c->fd = sv[1];
}

/* Sends len bytes, with descriptors if nfds > 0; a full socket gets the
 * daemon a chance to read, a few times, and then the rest is dropped. */
static void client_send(struct client *c, const uint8_t *p, size_t len, const int *fds,
			size_t nfds)
{
	for (int tries = 0; c->fd >= 0 && len > 0 && tries < 4; tries++) {
		ssize_t n = sendfds(c->fd, p, len, fds, nfds);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			nfds = 0;
		} else if (n < 0 && errno != EAGAIN) {
			return; /* the daemon ended the session, or we shut it down */
		}
		pump(1);
	}
}

/* The bytes up to and including the next newline, or to the end. */
static size_t line_length(const uint8_t *p, size_t left)
{
	const uint8_t *nl = memchr(p, '\n', left);

	return nl ? (size_t)(nl - p) + 1 : left;
}

static void outsider(uint8_t arg)
{
	static const int ops[] = { LOCK_EX, LOCK_SH, LOCK_UN, LOCK_UN };

	flock(pool[arg & 1], ops[(arg >> 1) & 3] | LOCK_NB);
}

/* The leases and waits the per-uid groups count, over every user. */
static size_t users_entries(void)
{
	size_t n = 0;

	for (size_t b = 0; b <= d.users.table.mask; b++)
		for (struct hnode *h = d.users.table.buckets[b]; h; h = h->next)
			n += list_entry(h, struct user, node)->group.entries;
	return n;
}

/* The lock table counts what the live sessions hold and wait for, as do
 * the per-uid groups, and no session was ended for a reply that could not
 * be sent. */
/* The leases or requests of an owner's list (by onode): a multi-key one,
 * an entry per key, counts once, as the table's stats count it. */
static size_t requests_of(const struct list *l)
{
	const struct list *pos;
	size_t n = 0;

	list_foreach(pos, l) {
		const struct lt_entry *e = list_entry(pos, struct lt_entry, onode);

		n += !e->multi || e->multi->parts[0] == e;
	}
	return n;
}

static void check_counts(void)
{
	size_t held = 0, waiting = 0, leases = 0, waiters = 0;
	struct list *pos;

	list_foreach(pos, &d.sessions) {
		const struct session *s = list_entry(pos, struct session, link);

		/* Broken only for 16 MiB of unread replies or no memory for one:
		 * never here unless an allocation was made to fail, so a reply
		 * the daemon could not build. */
		CHECK(!s->conn.overflow || oom_fired);
		held += s->owner.nheld;
		waiting += s->owner.nwaiting;
		leases += requests_of(&s->owner.held);
		waiters += requests_of(&s->owner.waiting);
	}
	CHECK(leases == d.lt.stats.leases && waiters == d.lt.stats.waiters);
	CHECK(users_entries() == held + waiting);
	CHECK(d.lt.stats.resources <= held + waiting + 1);
}

/* Runs one command; returns the bytes it used. */
static size_t run_command(const uint8_t *p, size_t left)
{
	int slot = p[0] & 3;
	struct client *c = &clients[slot];
	size_t used = 1, n;

	switch ((enum action)((p[0] >> 2) & 15)) {
	case A_LINE: case A_LINE2: case A_LINE3: case A_LINE4:
		n = line_length(p + 1, left - 1);
		client_send(c, p + 1, n, NULL, 0);
		used += n;
		break;
	case A_BYTES: case A_BYTES2:
		if (left < 2)
			return left;
		n = (size_t)p[1] + 1 < left - 2 ? (size_t)p[1] + 1 : left - 2;
		client_send(c, p + 2, n, NULL, 0);
		used += 1 + n;
		break;
	case A_LINE_FD: {
		int fds[3];
		size_t nfds;

		if (left < 2)
			return left;
		nfds = 1 + (p[1] >> 2) % 3;
		for (size_t i = 0; i < nfds; i++)
			fds[i] = pool[(p[1] + i) % 3];
		n = line_length(p + 2, left - 2);
		client_send(c, p + 2, n, fds, nfds);
		used += 1 + n;
		break;
	}
	case A_READ: case A_READ2:
		client_read(c);
		break;
	case A_SHUT:
		if (c->fd >= 0)
			shutdown(c->fd, SHUT_WR);
		break;
	case A_CLOSE:
		client_close(c);
		break;
	case A_TIMER:
		loop_event_fire(d.timer);
		break;
	case A_OUTSIDER:
		if (left < 2)
			return left;
		outsider(p[1]);
		used++;
		break;
	case A_CONNECT:
		client_connect(c, slot);
		break;
	case A_PING:
		client_send(c, (const uint8_t *)"{\"id\":0,\"op\":\"ping\"}\n", 21, NULL, 0);
		break;
	case A_OOM:
		if (left < 2)
			return left;
		if (oom)
			oom_fail((unsigned long)p[1] + 1, false);
		used++;
		break;
	}
	pump(LOOP_AFTER_ACTION);
	check_counts();
	return used;
}

static void daemon_setup(uint8_t how)
{
	static const size_t locks[] = { 1, 2, 8, 0 };
	int nclients = 1 + ((how >> 3) & 3);

	oom_fail(0, false);
	oom_fired = false;
	CHECK(haspd_init(&d) == 0);
	config_defaults(&d.cfg);
	d.cfg.max_line_bytes = how & 1 ? 65536 : 1024;
	if (locks[(how >> 1) & 3]) {
		d.cfg.max_session_locks = locks[(how >> 1) & 3];
		d.cfg.max_user_locks = locks[(how >> 1) & 3] + 1;
	}
	for (int i = 0; i < NSLOTS; i++)
		clients[i].fd = -1;
	for (int i = 0; i < nclients; i++)
		client_connect(&clients[i], i);
}

/* Every client goes; every session must end and be freed, leaving nothing. */
static void daemon_teardown(void)
{
	int i;

	for (i = 0; i < NSLOTS; i++)
		client_close(&clients[i]);
	for (i = 0; i < LOOP_AT_END && (d.nsessions > 0 || !list_empty(&d.graveyard)); i++)
		pump(1);
	CHECK(d.nsessions == 0 && list_empty(&d.sessions) && list_empty(&d.graveyard));
	CHECK(d.lt.stats.leases == 0 && d.lt.stats.waiters == 0 && d.lt.stats.resources == 0);
	CHECK(!files_retrying(&d.retrying));
	haspd_done(&d);
	for (i = 0; i < NSLOTS; i++) {
		free(clients[i].in);
		clients[i] = (struct client){ .fd = -1 };
	}
	flock(pool[0], LOCK_UN);
	flock(pool[1], LOCK_UN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	size_t off = 1;

	if (size == 0)
		return 0;
	if (!ready) {
		fuzz_setup();
		ready = true;
	}
	daemon_setup(data[0]);
	while (off < size)
		off += run_command(data + off, size - off);
	daemon_teardown();
	return 0;
}
