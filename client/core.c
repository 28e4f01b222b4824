/* libhasp's non-blocking core: requests queued and written as the socket
 * takes them, replies matched to their calls by id, events noted and
 * handed on, deadlines kept, and the end of the connection told to every
 * call still waiting. Nothing here blocks; call.c waits on it, request.c
 * builds acquires on it. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "libhasp-internal.h"

/* Lines written in one sendmsg(2) when they carry no descriptor. */
#define BATCH_LINES 64

int64_t libhasp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t libhasp_after(int64_t now, int64_t ms)
{
	return ms >= 0 && ms < 1000000000000 ? now + ms : LIBHASP_NEVER;
}

/* ---- calls ---- */

static void call_link(hasp_client *c, struct libhasp_call *k)
{
	k->prev = c->calls_tail;
	k->next = NULL;
	if (c->calls_tail)
		c->calls_tail->next = k;
	else
		c->calls = k;
	c->calls_tail = k;
}

static void call_unlink(hasp_client *c, struct libhasp_call *k)
{
	if (k->prev)
		k->prev->next = k->next;
	else
		c->calls = k->next;
	if (k->next)
		k->next->prev = k->prev;
	else
		c->calls_tail = k->prev;
}

static void call_free(struct libhasp_call *k)
{
	if (k->unlock_fd >= 0)
		close(k->unlock_fd);
	free(k);
}

/* Ends k with its reply or err. It is off the list while done runs,
 * which may end the connection (and every call on the list). */
static void call_end(hasp_client *c, struct libhasp_call *k, int err, struct proto_reply *rep)
{
	call_unlink(c, k);
	if (k->done)
		k->done(c, k, err, rep);
	call_free(k);
}

/* A release of what rep granted, answered to nobody; a checkout's (with
 * its token) matters at hasp_close(). */
void libhasp_release_granted(hasp_client *c, const struct proto_reply *rep)
{
	struct proto_grant g;
	struct proto_members m;
	struct libhasp_call *k;
	int r;

	if (proto_decode_grant(rep, &g) < 0)
		return;
	libhasp_members_release(&m, g.lease, g.token);
	r = libhasp_send_members(c, OP_RELEASE, &m, -1, LIBHASP_NEVER, NULL, NULL, &k);
	proto_members_free(&m);
	/* Without memory for it, the lease would stay: drop the session. */
	if (r == -ENOMEM)
		libhasp_drop(c, -ENOMEM, "out of memory to release an unwanted lease");
	else if (r == 0)
		k->matters = g.token != NULL;
}

/* An unwanted acquire's answer: a grant is given back. A grant on the
 * caller's own descriptor (flock(1)'s fd form) is the caller's flock,
 * which the daemon does not keep: it is unlocked here. */
static void release_if_granted(hasp_client *c, struct libhasp_call *k, int err,
			       struct proto_reply *rep)
{
	if (err < 0 || !rep->ok)
		return;
	if (k->unlock_fd >= 0)
		flock(k->unlock_fd, LOCK_UN);
	else
		libhasp_release_granted(c, rep);
}

/* k's answer is unwanted from now on; an acquire's grant (grant true) is
 * given back. */
static void unwanted(struct libhasp_call *k, bool grant, int fd, bool checkout)
{
	k->done = grant ? release_if_granted : NULL;
	k->ctx = NULL;
	k->deadline_ms = LIBHASP_NEVER;
	k->matters = checkout;
	if (grant && fd >= 0)
		k->unlock_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

int libhasp_expect_grant(hasp_client *c, int64_t id, int fd, bool checkout)
{
	struct libhasp_call *k = malloc(sizeof(*k));

	if (!k)
		return libhasp_drop(c, -ENOMEM, "out of memory to release a late grant");
	*k = (struct libhasp_call){ .id = id, .unlock_fd = -1 };
	unwanted(k, true, fd, checkout);
	call_link(c, k);
	return 0;
}

void libhasp_call_forget(hasp_client *c, struct libhasp_call *k, bool grant, int fd,
			 bool checkout)
{
	(void)c;
	unwanted(k, grant, fd, checkout);
}

bool libhasp_awaits_checkouts(const hasp_client *c)
{
	for (const struct libhasp_call *k = c->calls; k; k = k->next)
		if (k->matters)
			return true;
	return false;
}

void libhasp_calls_cancel(hasp_client *c)
{
	for (struct libhasp_call *k = c->calls; k; k = k->next)
		if (k->done && k->done != release_if_granted) {
			k->done(c, k, -ECANCELED, NULL);
			k->done = NULL;
		}
}

void libhasp_calls_free(hasp_client *c)
{
	while (c->calls) {
		struct libhasp_call *k = c->calls;

		call_unlink(c, k);
		call_free(k);
	}
}

/* ---- writing ---- */

/* An entry for a line of at most size bytes (len still 0), with a
 * duplicate of fd (if >= 0) to send with it. */
static struct libhasp_out *out_alloc(size_t size, int fd)
{
	struct libhasp_out *o = malloc(sizeof(*o) + size);

	if (!o)
		return NULL;
	o->next = NULL;
	o->len = 0;
	o->off = 0;
	o->fd = -1;
	if (fd >= 0) {
		o->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		if (o->fd < 0) {
			free(o);
			return NULL;
		}
	}
	return o;
}

static void out_free(struct libhasp_out *o)
{
	if (o->fd >= 0)
		close(o->fd);
	free(o);
}

static void out_clear(hasp_client *c)
{
	while (c->out) {
		struct libhasp_out *o = c->out;

		c->out = o->next;
		out_free(o);
	}
	c->out_tail = &c->out;
}

/* The descriptor goes with the line's first byte, and nothing after the
 * line in that sendmsg(2) (the protocol's rule): a line with one is sent
 * alone; lines without are sent many at a time. */
static ssize_t out_send(hasp_client *c)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl = { { 0 } }; /* the padding too: the kernel reads it */
	struct iovec iov[BATCH_LINES];
	struct msghdr mh = { .msg_iov = iov };
	struct libhasp_out *o = c->out;
	ssize_t n;

	if (o->fd >= 0 && o->off == 0) {
		struct cmsghdr *cm;

		iov[0] = (struct iovec){ o->line, o->len };
		mh.msg_iovlen = 1;
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &o->fd, sizeof(int));
	} else {
		for (; o && mh.msg_iovlen < BATCH_LINES && (o->fd < 0 || o == c->out); o = o->next)
			iov[mh.msg_iovlen++] = (struct iovec){ o->line + o->off, o->len - o->off };
	}
	do
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/* Takes n written bytes off the queue. */
static void out_advance(hasp_client *c, size_t n)
{
	while (n > 0) {
		struct libhasp_out *o = c->out;
		size_t left = o->len - o->off;

		if (n < left) {
			o->off += n;
			if (o->fd >= 0) {
				close(o->fd); /* it went with the first byte */
				o->fd = -1;
			}
			return;
		}
		n -= left;
		c->out = o->next;
		if (!c->out)
			c->out_tail = &c->out;
		out_free(o);
	}
}

static int connection_end(hasp_client *c, int err, const char *msg);

/* Writes what the socket takes now: 0, or the error that stopped it. */
static int write_out(hasp_client *c)
{
	while (c->out && !c->lost) {
		ssize_t n = out_send(c);

		if (n == -EAGAIN)
			return 0;
		if (n < 0)
			return (int)n;
		out_advance(c, (size_t)n);
	}
	return 0;
}

int libhasp_flush(hasp_client *c)
{
	/* Whatever the daemon said before it went (a refusal) says more
	 * than the end. */
	if (write_out(c) < 0 && !c->lost) {
		libhasp_drain(c);
		if (!c->lost)
			connection_end(c, -ECONNRESET, NULL);
	}
	return c->lost ? c->lost_err : 0;
}

void libhasp_write(hasp_client *c)
{
	write_out(c);
}

/* Whether a request can be sent now: 0, or why not (c's message set for
 * a caller's request, done not NULL). */
static int can_send(hasp_client *c, bool for_caller)
{
	if (c->fd < 0)
		return libhasp_error(c, -ENOTCONN, "not connected to haspd");
	if (c->lost) /* the refusal is for a caller's request to report, not this */
		return for_caller ? libhasp_lost_error(c) : c->lost_err;
	return 0;
}

/* Queues o, the line of request number ++c->last_id, and its call. */
static int queue(hasp_client *c, struct libhasp_out *o, int fd, int64_t deadline_ms,
		 libhasp_done_fn *done, void *ctx, struct libhasp_call **ret)
{
	struct libhasp_call *k = o ? malloc(sizeof(*k)) : NULL;

	if (!k) {
		if (o)
			out_free(o);
		return libhasp_error(c, fd >= 0 && errno == EMFILE ? -EMFILE : -ENOMEM,
				     "out of memory");
	}
	*k = (struct libhasp_call){ .id = ++c->last_id, .deadline_ms = deadline_ms, .done = done,
				    .ctx = ctx, .unlock_fd = -1 };
	call_link(c, k);
	*c->out_tail = o;
	c->out_tail = &o->next;
	if (ret)
		*ret = k;
	/* Written by the next libhasp_flush(): hasp_client_process(), or a
	 * blocking call's wait, so that requests started together go out
	 * together. */
	return 0;
}

int libhasp_send(hasp_client *c, enum proto_op op, json_t *args, int fd, int64_t deadline_ms,
		 libhasp_done_fn *done, void *ctx, struct libhasp_call **ret)
{
	/* These carry arguments: none means they could not be built. */
	bool needs_args = op == OP_ACQUIRE || op == OP_RELEASE || op == OP_CANCEL ||
			  op == OP_REVOKE || op == OP_LIST || op == OP_ADOPT || op == OP_RENEW ||
			  op == OP_CONVERT ||
			  op == OP_HELLO;
	int r = can_send(c, done != NULL);
	struct libhasp_out *o = NULL;
	char *line;
	size_t len = 0;

	if (r < 0) {
		json_decref(args);
		return r;
	}
	line = args || !needs_args ? proto_encode_request(c->last_id + 1, op, args, &len) : NULL;
	if (line)
		o = out_alloc(len, fd);
	if (o) {
		memcpy(o->line, line, len);
		o->len = len;
	}
	free(line);
	return queue(c, o, fd, deadline_ms, done, ctx, ret);
}

int libhasp_send_members(hasp_client *c, enum proto_op op, const struct proto_members *m,
			 int fd, int64_t deadline_ms, libhasp_done_fn *done, void *ctx,
			 struct libhasp_call **ret)
{
	int r = can_send(c, done != NULL);
	struct libhasp_out *o;

	if (r < 0)
		return r;
	o = m->nomem ? NULL : out_alloc(proto_line_size(op, m), fd);
	if (o)
		o->len = proto_line_write(o->line, c->last_id + 1, op, m);
	return queue(c, o, fd, deadline_ms, done, ctx, ret);
}

void libhasp_members_release(struct proto_members *m, uint64_t lease, const char *token)
{
	proto_members_init(m);
	proto_members_int(m, "lease", (int64_t)lease);
	if (token && *token)
		proto_members_str(m, "token", token);
}

/* ---- reading ---- */

static void tell(hasp_client *c, enum hasp_event ev, uint64_t lease)
{
	if (c->on_event)
		c->on_event(c, ev, lease, c->event_userdata);
}

/* Every call in flight fails with err, the handler hears of it once;
 * msg (NULL: that the connection was lost) is what every call says from
 * now on. */
static int connection_end(hasp_client *c, int err, const char *msg)
{
	if (!c->lost) {
		c->lost = true;
		c->lost_err = err;
		shutdown(c->fd, SHUT_RDWR);
		out_clear(c);
		snprintf(c->lost_msg, sizeof(c->lost_msg), "%s",
			 msg ? msg : "the connection to haspd was lost, and every lease taken "
				     "through it; connect again");
	}
	libhasp_error(c, c->lost_err, "%s", c->lost_msg);
	while (c->calls) {
		struct libhasp_call *k = c->calls;

		call_unlink(c, k);
		if (k->done)
			k->done(c, k, c->lost_err, NULL);
		call_free(k);
	}
	if (!c->told_lost) {
		c->told_lost = true;
		tell(c, HASP_EVENT_DISCONNECTED, 0);
	}
	return c->lost_err;
}

int libhasp_lost_error(hasp_client *c)
{
	int r = libhasp_error(c, c->lost_err, "%s", c->lost_msg);

	c->lost_err = -ECONNRESET;
	snprintf(c->lost_msg, sizeof(c->lost_msg), "the connection to haspd was lost, and every "
		 "lease taken through it; connect again");
	return r;
}

int libhasp_drop(hasp_client *c, int code, const char *what)
{
	char msg[sizeof(c->lost_msg)];

	snprintf(msg, sizeof(msg), "%s; the connection to haspd is dropped, and every lease "
		 "taken through it", what);
	return connection_end(c, code, msg);
}

/* The loss an event tells, or 0 for another event. */
static enum libhasp_loss loss_of(const char *event)
{
	if (strcmp(event, "revoked") == 0)
		return LIBHASP_REVOKED;
	if (strcmp(event, "expired") == 0)
		return LIBHASP_EXPIRED;
	if (strcmp(event, "lost") == 0)
		return LIBHASP_LOST;
	return 0;
}

/* What the handler is told of a loss: a lost lease (cluster mode) as a
 * revoked one, which every handler written before it already acts on. */
static enum hasp_event event_of(enum libhasp_loss how)
{
	return how == LIBHASP_EXPIRED ? HASP_EVENT_EXPIRED : HASP_EVENT_REVOKED;
}

/* Remembers a revoked, expired or lost lease, for hasp_lease_revoked(),
 * and tells the handler. A holder must never go on unaware: without
 * memory to remember it, the connection goes. */
static int note_event(hasp_client *c, const struct proto_reply *rep)
{
	enum libhasp_loss how = loss_of(rep->event);
	int64_t lease;

	if (!how || !proto_reply_int(rep, "lease", &lease))
		return 0;
	if (c->nlost == c->lost_cap) {
		size_t cap = c->lost_cap ? c->lost_cap * 2 : 8;
		struct libhasp_lost *v = realloc(c->lost_leases, cap * sizeof(*v));

		if (!v)
			return libhasp_drop(c, -ENOMEM, "out of memory for a revoke notice");
		c->lost_leases = v;
		c->lost_cap = cap;
	}
	c->lost_leases[c->nlost++] = (struct libhasp_lost){ (uint64_t)lease, how };
	tell(c, event_of(how), (uint64_t)lease);
	return 0;
}

static struct libhasp_call *call_find(hasp_client *c, int64_t id)
{
	for (struct libhasp_call *k = c->calls; k; k = k->next)
		if (k->id == id)
			return k;
	return NULL;
}

/* One line from the daemon: a reply to its call, an event, or an error
 * addressed to no request, which is the daemon refusing the session (over
 * a limit, out of descriptors, a line too long) before it closes it. */
static int dispatch(hasp_client *c, const char *line, size_t len)
{
	struct proto_reply rep;
	struct libhasp_call *k;
	int r = 0;

	if (proto_decode_reply(line, len, &rep) < 0)
		return libhasp_drop(c, -HASP_E_PROTOCOL, "a line from haspd could not be read (not a "
				    "JSON object, or out of memory)");
	if (rep.is_event) {
		if (!libhasp_watch_event(c, &rep, line, len))
			r = note_event(c, &rep);
	} else if (!rep.has_id && !rep.ok) {
		r = connection_end(c, -rep.code, rep.message);
	} else if (rep.has_id && (k = call_find(c, rep.id))) {
		call_end(c, k, 0, &rep);
	}
	proto_reply_done(&rep);
	return r;
}

/* Reads once (a process() reads once: level-triggered), and dispatches
 * every whole line. Returns 1 if it read, 0 if nothing was there, or the
 * end of the connection. */
static int read_once(hasp_client *c)
{
	ssize_t n = frame_buf_fill(&c->rb, c->fd);
	enum frame_status st;
	const char *line;
	size_t len;

	if (n == -EAGAIN)
		return 0;
	if (n == -EMSGSIZE)
		return libhasp_drop(c, -HASP_E_PROTOCOL, "haspd sent a line over 256 MiB");
	if (n == -ENOMEM)
		return libhasp_drop(c, -ENOMEM, "out of memory for haspd's reply");
	while (!c->lost && (st = frame_buf_next(&c->rb, &line, &len)) == FRAME_LINE)
		dispatch(c, line, len);
	if (c->lost)
		return c->lost_err;
	if (st == FRAME_TOO_LARGE)
		return libhasp_drop(c, -HASP_E_PROTOCOL, "haspd sent a line over 256 MiB");
	if (n == 0 || n == -ECONNRESET)
		return connection_end(c, -ECONNRESET, NULL);
	if (n < 0)
		return connection_end(c, (int)n, NULL);
	return 1;
}

int libhasp_drain(hasp_client *c)
{
	int r;

	if (c->fd < 0)
		return libhasp_error(c, -ENOTCONN, "not connected to haspd");
	while ((r = read_once(c)) > 0)
		;
	return c->lost ? c->lost_err : r;
}

/* ---- deadlines ---- */

int64_t libhasp_next_wakeup(const hasp_client *c)
{
	int64_t next = libhasp_requests_next_notice(c);

	for (const struct libhasp_call *k = c->calls; k; k = k->next)
		if (k->deadline_ms < next)
			next = k->deadline_ms;
	return next;
}

/* Calls past their deadline end with -ETIMEDOUT. One at a time from the
 * head: a done may start or end other calls. */
static void expire_calls(hasp_client *c, int64_t now)
{
	struct libhasp_call *k;

	do {
		for (k = c->calls; k && k->deadline_ms > now; k = k->next)
			;
		if (k)
			call_end(c, k, -ETIMEDOUT, NULL);
	} while (k && !c->lost);
}

/* ---- the public face ---- */

HASP_EXPORT int hasp_client_get_fd(const hasp_client *c)
{
	return c->lost ? -1 : c->fd; /* an ended one would poll as ready for ever */
}

HASP_EXPORT int hasp_client_get_events(const hasp_client *c)
{
	if (c->fd < 0 || c->lost)
		return 0;
	return POLLIN | (c->out ? POLLOUT : 0);
}

HASP_EXPORT int hasp_client_get_timeout(const hasp_client *c)
{
	int64_t next = libhasp_next_wakeup(c), left;

	if (next == LIBHASP_NEVER || c->lost)
		return -1;
	left = next - libhasp_now_ms();
	return left <= 0 ? 0 : left > 3600000 ? 3600000 : (int)left;
}

HASP_EXPORT int hasp_client_process(hasp_client *c)
{
	int64_t now;
	int r;

	if (c->fd < 0)
		return libhasp_error(c, -ENOTCONN, "not connected to haspd");
	r = libhasp_flush(c);
	if (r >= 0)
		r = read_once(c);
	if (r >= 0)
		r = libhasp_flush(c); /* what the callbacks asked for */
	if (c->lost)
		return connection_end(c, c->lost_err, NULL);
	now = libhasp_now_ms();
	expire_calls(c, now);
	libhasp_requests_notify(c, now);
	return c->lost ? c->lost_err : 0;
}

HASP_EXPORT void hasp_client_set_event_handler(hasp_client *c, hasp_event_handler handler,
					       void *userdata)
{
	c->on_event = handler;
	c->event_userdata = userdata;
}

/* The hello's answer: the daemon's name and version. */
static void hello_done(hasp_client *c, struct libhasp_call *k, int err, struct proto_reply *rep)
{
	const char *server;

	(void)k;
	if (err < 0 || !rep->ok)
		return;
	server = proto_reply_str(rep, "server");
	if (server && !c->server)
		c->server = strdup(server);
}

int libhasp_connected(hasp_client *c, int fd, const char *path)
{
	const char *name = c->name ? c->name : program_invocation_short_name;
	char shown[PROTO_CLIENT_MAX + 1];
	int flags = fcntl(fd, F_GETFL);

	c->socket_path = strdup(path);
	if (!c->socket_path || flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		free(c->socket_path);
		c->socket_path = NULL;
		close(fd);
		return libhasp_error(c, -ENOMEM, "out of memory");
	}
	c->fd = fd;
	/* Sent, never waited for: the first call's reply comes after it. */
	snprintf(shown, sizeof(shown), "%s",
		 name && strlen(name) <= PROTO_CLIENT_MAX && proto_utf8_valid(name) ? name
										   : "libhasp");
	return libhasp_send(c, OP_HELLO, json_pack("{s:s,s:i}", "client", shown, "version",
						   PROTO_VERSION),
			    -1, LIBHASP_NEVER, hello_done, NULL, NULL);
}
