#include "session.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "changes.h"
#include "dispatch.h"
#include "frame.h"
#include "haspd.h"
#include "log.h"
#include "proto.h"
#include "server.h"
#include "users.h"

/* Stop reading from a session with this much output queued (a client that
 * does not read its replies), and read again below half of it. */
#define SESSION_OUT_SOFT (1u << 20)
/* A session whose unread output passes this is ended: its client does not
 * read, and the daemon must not grow without bound for it. */
#define SESSION_OUT_HARD (16u << 20)
/* Bytes read per wake-up: bounds the work one session does before others. */
#define SESSION_READ_CHUNK 65536

static void session_read_cb(evutil_socket_t fd, short what, void *arg);
static void session_write_cb(evutil_socket_t fd, short what, void *arg);

struct session *session_new(struct haspd *d, int fd)
{
	struct session *s = calloc(1, sizeof(*s));
	struct ucred cred = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	socklen_t cl = sizeof(cred);

	if (!s)
		goto fail;
	s->d = d;
	s->fd = fd;
	s->in = evbuffer_new();
	s->out = evbuffer_new();
	s->rev = event_new(d->base, fd, EV_READ | EV_PERSIST, session_read_cb, s);
	s->wev = event_new(d->base, fd, EV_WRITE | EV_PERSIST, session_write_cb, s);
	if (!s->in || !s->out || !s->rev || !s->wev || event_add(s->rev, NULL) < 0)
		goto fail;
	getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl);
	/* Each request's authority is its sender's, told with every read. */
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &(int){ 1 }, sizeof(int)) < 0)
		goto fail;
	haspd_refresh_fd_limit(d);
	s->user = users_get(&d->users, cred.uid);
	if (!s->user)
		goto fail;
	s->id = ++d->sessions_total;
	lt_owner_init(&s->owner, s->id, cred.pid, cred.uid, cred.gid);
	s->owner.group = &s->user->group;
	list_init(&s->flush_link);
	list_add_tail(&d->sessions, &s->link);
	d->nsessions++;
	log_debug("session %" PRIu64 " connected: pid %d uid %u", s->id, (int)cred.pid,
		  (unsigned)cred.uid);
	return s;
fail:
	if (s) {
		s->fd = -1;
		session_free(s);
	}
	close(fd);
	return NULL;
}

/* Closes the pending descriptors that arrived with input before offset. */
static void session_close_fds_before(struct session *s, uint64_t offset)
{
	size_t n = 0;

	while (n < s->nfds && s->fds[n].end <= offset)
		close(s->fds[n++].fd);
	s->nfds -= n;
	users_drop_fds(&s->d->users, s->user, n);
	memmove(s->fds, s->fds + n, s->nfds * sizeof(s->fds[0]));
}

static void session_close_fds(struct session *s)
{
	session_close_fds_before(s, UINT64_MAX);
}

int session_take_fd(struct session *s)
{
	int fd;

	if (s->nfds == 0 || s->fds[0].end <= s->line_start || s->fds[0].end > s->line_end)
		return -1;
	fd = s->fds[0].fd;
	memmove(s->fds, s->fds + 1, --s->nfds * sizeof(s->fds[0]));
	users_drop_fds(&s->d->users, s->user, 1);
	return fd;
}

bool session_fds_refused(const struct session *s)
{
	return s->fds_refused_end > s->line_start && s->fds_refused_end <= s->line_end;
}

void session_free(struct session *s)
{
	if (s->user) {
		session_close_fds(s);
		users_put(&s->d->users, s->user);
	}
	if (s->rev)
		event_free(s->rev);
	if (s->wev)
		event_free(s->wev);
	if (s->in)
		evbuffer_free(s->in);
	if (s->out)
		evbuffer_free(s->out);
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}

void session_log(struct session *s, enum log_level level, const char *fmt, ...)
{
	char line[1024];
	uint64_t suppressed = 0;
	va_list ap;

	if (level > log_threshold ||
	    !ratelimit_take(&s->d->log_budget, s->owner.uid, haspd_now_ms(), &suppressed))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (suppressed)
		log_msg(level, "%s (and %" PRIu64 " lines about uid %u's sessions before it, "
			"unlogged: too many)", line, suppressed, (unsigned)s->owner.uid);
	else
		log_msg(level, "%s", line);
}

static void session_queue_flush(struct session *s)
{
	if (list_empty(&s->flush_link))
		list_add_tail(&s->d->flushing, &s->flush_link);
}

void session_break(struct session *s)
{
	if (s->dead)
		return;
	s->overflow = true;
	evbuffer_drain(s->out, evbuffer_get_length(s->out));
	session_queue_flush(s);
}

void session_write(struct session *s, const char *line, size_t len)
{
	if (s->dead || s->overflow)
		return;
	if (evbuffer_add(s->out, line, len) < 0 || evbuffer_get_length(s->out) > SESSION_OUT_HARD) {
		session_break(s);
		return;
	}
	session_queue_flush(s);
}

static void session_end_leases(struct session *s)
{
	if (s->closing)
		return;
	s->closing = true;
	locktable_owner_done(&s->d->lt, &s->owner);
	changes_apply(s->d, NULL);
}

void session_close_after_flush(struct session *s)
{
	event_del(s->rev);
	session_end_leases(s);
	session_queue_flush(s);
}

void session_lost(struct session *s, const char *why)
{
	struct haspd *d = s->d;

	if (s->dead)
		return;
	log_debug("session %" PRIu64 " (pid %d) ended: %s", s->id, (int)s->owner.pid, why);
	session_end_leases(s);
	s->dead = true;
	event_del(s->rev);
	event_del(s->wev);
	close(s->fd);
	s->fd = -1;
	session_close_fds(s);
	list_del(&s->flush_link);
	list_del(&s->link);
	list_add_tail(&d->graveyard, &s->link);
	d->nsessions--;
	server_resume(d->server);
}

static void session_throttle(struct session *s, bool on)
{
	if (s->throttled == on || s->closing)
		return;
	s->throttled = on;
	if (on)
		event_del(s->rev);
	else if (event_add(s->rev, NULL) < 0)
		session_break(s); /* never to read again: end it */
}

void session_flush(struct session *s)
{
	size_t left;

	if (s->dead)
		return;
	if (s->overflow) {
		session_log(s, LOG_WARN, "session %" PRIu64 " (pid %d): over %u bytes of replies "
			    "unread, or no memory for them; ending it", s->id, (int)s->owner.pid,
			    SESSION_OUT_HARD);
		session_lost(s, "output over the hard limit");
		return;
	}
	while ((left = evbuffer_get_length(s->out)) > 0) {
		if (evbuffer_write(s->out, s->fd) >= 0)
			continue;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
		session_lost(s, strerror(errno));
		return;
	}
	if (left) {
		if (event_add(s->wev, NULL) < 0) {
			session_lost(s, "out of memory to wait for the socket");
			return;
		}
	} else {
		event_del(s->wev);
		if (s->closing) {
			session_lost(s, "closed");
			return;
		}
	}
	if (s->throttled && left < SESSION_OUT_SOFT / 2)
		session_throttle(s, false);
}

/* Dispatches every whole line in the input buffer. */
static void session_process(struct session *s)
{
	size_t len = evbuffer_get_length(s->in), off = 0, line_len;
	const char *buf;

	if (len == 0)
		return;
	buf = (const char *)evbuffer_pullup(s->in, -1);
	if (!buf) {
		session_break(s); /* out of memory to see its lines whole */
		return;
	}
	while (!s->closing && !s->overflow) {
		enum frame_status st = frame_next(buf + off, len - off, s->d->cfg.max_line_bytes,
						       &line_len);

		if (st == FRAME_PARTIAL)
			break;
		if (st == FRAME_TOO_LARGE) {
			dispatch_too_large(s);
			break;
		}
		s->line_start = s->in_offset + off;
		s->line_end = s->line_start + line_len + 1;
		session_close_fds_before(s, s->line_start);  /* strays */
		s->line_mixed = s->part_mixed;
		s->part_mixed = false;
		dispatch_line(s, buf + off, line_len);
		session_close_fds_before(s, s->line_end);    /* unclaimed */
		off += line_len + 1;
	}
	evbuffer_drain(s->in, s->closing ? len : off);
	s->in_offset += s->closing ? len : off;
	if (s->closing)
		session_close_fds(s);
	if (evbuffer_get_length(s->out) > SESSION_OUT_SOFT)
		session_throttle(s, true);
}

/* Keeps the descriptors that came with the data, closing what does not
 * fit in the session or in its uid's share (users.h). */
static void session_keep_fds(struct session *s, const struct cmsghdr *c)
{
	uint64_t end = s->in_offset + evbuffer_get_length(s->in);
	size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

	for (size_t i = 0; i < n; i++) {
		int fd;

		memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
		if (s->nfds < SESSION_FDS_MAX && users_may_hold_fd(&s->d->users, s->user)) {
			s->fds[s->nfds++] = (struct session_fd){ fd, end };
			users_hold_fd(&s->d->users, s->user);
		} else {
			close(fd);
			s->fds_refused_end = end;
		}
	}
}

/* Whether a and b are one sender. */
static bool cred_same(const struct lt_cred *a, const struct lt_cred *b)
{
	return a->pid == b->pid && a->uid == b->uid && a->gid == b->gid;
}

/* The sender of the bytes just read (the kernel never joins two senders'
 * data in one read); a line whose bytes came from two is not served. */
static void session_note_sender(struct session *s, const struct lt_cred *c, bool had_partial)
{
	if (had_partial && !cred_same(&s->sender, c))
		s->part_mixed = true;
	else if (!had_partial)
		s->part_mixed = false;
	s->sender = *c;
}

/* What came with the data: descriptors (SCM_RIGHTS) and the sender
 * (SCM_CREDENTIALS; without it, nobody's rights). */
static void session_take_control(struct session *s, struct msghdr *mh, bool had_partial)
{
	struct lt_cred sender = { .pid = 0, .uid = SESSION_NOBODY, .gid = SESSION_NOBODY };
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET)
			continue;
		if (c->cmsg_type == SCM_RIGHTS) {
			session_keep_fds(s, c);
		} else if (c->cmsg_type == SCM_CREDENTIALS &&
			   c->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
			struct ucred u;

			memcpy(&u, CMSG_DATA(c), sizeof(u));
			sender = (struct lt_cred){ .pid = u.pid, .uid = u.uid, .gid = u.gid };
		}
	}
	session_note_sender(s, &sender, had_partial);
}

/* Reads straight into the input buffer's free space with one recvmsg(2),
 * taking any descriptors that come along. Returns bytes read, 0 at EOF,
 * -errno. */
static ssize_t session_read_some(struct session *s, bool *ret_newline)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred)) +
			 CMSG_SPACE(SESSION_FDS_MAX * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	bool had_partial = evbuffer_get_length(s->in) > 0;
	struct evbuffer_iovec v;
	struct iovec iov;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (evbuffer_reserve_space(s->in, SESSION_READ_CHUNK, &v, 1) < 1)
		return -ENOMEM;
	iov.iov_base = v.iov_base;
	iov.iov_len = v.iov_len < SESSION_READ_CHUNK ? v.iov_len : SESSION_READ_CHUNK;
	do {
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		n = recvmsg(s->fd, &mh, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	*ret_newline = memchr(v.iov_base, '\n', (size_t)n) != NULL;
	v.iov_len = (size_t)n;
	evbuffer_commit_space(s->in, &v, 1);
	if (n > 0 || mh.msg_controllen > 0)
		session_take_control(s, &mh, had_partial);
	return n;
}

static void session_read(struct session *s)
{
	bool newline = false;
	ssize_t n = session_read_some(s, &newline);

	if (n == -EAGAIN || n == -EWOULDBLOCK)
		return;
	if (n < 0) {
		session_lost(s, strerror((int)-n));
		return;
	}
	/* More of a line that goes on: nothing to look at again until it ends
	 * or grows too long (a long line sent in small pieces costs a scan of
	 * each piece, not of the whole line each time). */
	if (n > 0 && !newline && evbuffer_get_length(s->in) < s->d->cfg.max_line_bytes)
		return;
	session_process(s);
	if (n == 0) /* the peer is gone or half-closed: answer what it sent, then end */
		session_close_after_flush(s);
}

static void session_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	struct haspd *d = s->d;

	haspd_tick(d);
	session_read(s);
	haspd_sync(d);
}

static void session_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	struct haspd *d = s->d;

	haspd_tick(d);
	session_flush(s);
	haspd_sync(d);
}
