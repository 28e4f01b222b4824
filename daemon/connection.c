#include "connection.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "frame.h"
#include "loop.h"

/* Bytes read per wake-up: bounds the work one connection does before others. */
#define CONNECTION_READ_CHUNK 65536

static void connection_read_cb(void *arg);
static void connection_write_cb(void *arg);

int connection_init(struct connection *c, struct loop *l, int fd, const size_t *max_line,
		    struct list *flushing, const struct connection_ops *ops, void *ctx)
{
	memset(c, 0, sizeof(*c));
	c->ops = ops;
	c->ctx = ctx;
	c->max_line = max_line;
	c->flushing = flushing;
	list_init(&c->flush_link);
	c->fd = fd;
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	c->rev = loop_event_new(l, fd, EV_READ | EV_PERSIST, connection_read_cb, c);
	c->wev = loop_event_new(l, fd, EV_WRITE | EV_PERSIST, connection_write_cb, c);
	/* Each line's authority is its sender's, told with every read. */
	if (!c->in || !c->out || !c->rev || !c->wev || loop_event_add(c->rev, NULL) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &(int){ 1 }, sizeof(int)) < 0) {
		connection_done(c);
		return -ENOMEM;
	}
	return 0;
}

/* Closes the pending descriptors that arrived with input before offset. */
static void connection_close_fds_before(struct connection *c, uint64_t offset)
{
	size_t n = 0;

	while (n < c->nfds && c->fds[n].end <= offset)
		close(c->fds[n++].fd);
	if (n == 0)
		return;
	c->nfds -= n;
	memmove(c->fds, c->fds + n, c->nfds * sizeof(c->fds[0]));
	c->ops->fds_gone(c->ctx, n);
}

static void connection_close_fds(struct connection *c)
{
	connection_close_fds_before(c, UINT64_MAX);
}

void connection_done(struct connection *c)
{
	connection_close_fds(c);
	list_del(&c->flush_link);
	c->rev = loop_event_free(c->rev);
	c->wev = loop_event_free(c->wev);
	if (c->in)
		evbuffer_free(c->in);
	if (c->out)
		evbuffer_free(c->out);
	c->in = c->out = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

int connection_take_fd(struct connection *c)
{
	int fd;

	if (c->nfds == 0 || c->fds[0].end <= c->line_start || c->fds[0].end > c->line_end)
		return -1;
	fd = c->fds[0].fd;
	memmove(c->fds, c->fds + 1, --c->nfds * sizeof(c->fds[0]));
	c->ops->fds_gone(c->ctx, 1);
	return fd;
}

bool connection_peer_gone(const struct connection *c)
{
	struct pollfd p = { .fd = c->fd, .events = POLLRDHUP };

	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

bool connection_fds_refused(const struct connection *c)
{
	return c->fds_refused_end > c->line_start && c->fds_refused_end <= c->line_end;
}

/* The last to get output is the last written: what a request made the
 * daemon tell other sessions (a revoke's notice, a hand-off's grant) is on
 * their sockets before its own reply is on the requester's. */
static void connection_queue_flush(struct connection *c)
{
	list_del(&c->flush_link);
	list_add_tail(c->flushing, &c->flush_link);
}

void connection_break(struct connection *c)
{
	if (c->dead)
		return;
	c->overflow = true;
	evbuffer_drain(c->out, evbuffer_get_length(c->out));
	connection_queue_flush(c);
}

size_t connection_unsent(const struct connection *c)
{
	return c->out ? evbuffer_get_length(c->out) : 0;
}

void connection_write(struct connection *c, const char *buf, size_t len)
{
	if (c->dead || c->overflow)
		return;
	if (evbuffer_add(c->out, buf, len) < 0 ||
	    evbuffer_get_length(c->out) > CONNECTION_OUT_HARD) {
		connection_break(c);
		return;
	}
	connection_queue_flush(c);
}

void connection_close_after_flush(struct connection *c)
{
	if (c->dead)
		return;
	loop_event_del(c->rev);
	connection_queue_flush(c);
	if (c->closing)
		return;
	c->closing = true;
	c->ops->closing(c->ctx);
}

void connection_lose(struct connection *c, enum connection_end why, const char *detail)
{
	if (c->dead)
		return;
	c->dead = true;
	loop_event_del(c->rev);
	loop_event_del(c->wev);
	close(c->fd);
	c->fd = -1;
	connection_close_fds(c);
	list_del(&c->flush_link);
	c->ops->lost(c->ctx, why, detail);
}

static void connection_throttle(struct connection *c, bool on)
{
	if (c->throttled == on || c->closing)
		return;
	c->throttled = on;
	if (on)
		loop_event_del(c->rev);
	else if (!c->paused && loop_event_add(c->rev, NULL) < 0)
		connection_break(c); /* never to read again: end it */
}

/* Writes what is queued. */
static void connection_flush(struct connection *c)
{
	size_t left;

	if (c->dead)
		return;
	if (c->overflow) {
		connection_lose(c, CONNECTION_OVERFLOW, "output over the hard limit");
		return;
	}
	while ((left = evbuffer_get_length(c->out)) > 0) {
		if (evbuffer_write(c->out, c->fd) >= 0)
			continue;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
		connection_lose(c, CONNECTION_FAILED, strerror(errno));
		return;
	}
	if (left) {
		if (loop_event_add(c->wev, NULL) < 0) {
			connection_lose(c, CONNECTION_FAILED, "out of memory to wait for the socket");
			return;
		}
	} else {
		loop_event_del(c->wev);
		if (c->closing) {
			connection_lose(c, CONNECTION_CLOSED, "closed");
			return;
		}
	}
	if (c->throttled && left < CONNECTION_OUT_SOFT / 2)
		connection_throttle(c, false);
}

void connection_flush_all(struct list *flushing)
{
	while (!list_empty(flushing)) {
		struct connection *c = list_entry(flushing->next, struct connection, flush_link);

		list_del(&c->flush_link);
		connection_flush(c);
	}
}

/* Where every connection reads (the daemon reads one at a time): whole
 * lines are handed up from here, and only what is left is kept, in c->in
 * (an unfinished line, or the lines from one put off by connection_pause()
 * on). Reading into c->in itself cost an allocation of 64 KiB and its free
 * at every read. */
static char read_buf[CONNECTION_READ_CHUNK];

/* Hands up every whole line of buf, whose first byte is at input offset
 * c->in_offset. Returns the bytes used: those lines, or all when closing. */
static size_t connection_lines(struct connection *c, const char *buf, size_t len)
{
	size_t off = 0, line_len;

	while (!c->closing && !c->overflow && !c->paused) {
		enum frame_status st = frame_next(buf + off, len - off, *c->max_line, &line_len);

		if (st == FRAME_PARTIAL)
			break;
		if (st == FRAME_TOO_LARGE) {
			c->ops->too_large(c->ctx);
			connection_close_after_flush(c);
			break;
		}
		c->line_start = c->in_offset + off;
		c->line_end = c->line_start + line_len + 1;
		connection_close_fds_before(c, c->line_start);  /* strays */
		c->line_mixed = c->part_mixed;
		c->part_mixed = false;
		c->ops->line(c->ctx, buf + off, line_len);
		if (c->paused)
			break; /* the line stays, with what came with it */
		connection_close_fds_before(c, c->line_end);    /* unclaimed */
		off += line_len + 1;
	}
	return c->closing ? len : off;
}

/* Hands up the whole lines of what c->in kept and the n bytes just read
 * after it, and keeps what is left. */
static void connection_process(struct connection *c, size_t n)
{
	size_t kept = evbuffer_get_length(c->in), len = kept + n, used;
	const char *buf = read_buf;

	if (len == 0)
		return;
	if (kept > 0) {
		/* What was kept comes first: the bytes read join it there. */
		if (evbuffer_add(c->in, read_buf, n) < 0 ||
		    !(buf = (const char *)evbuffer_pullup(c->in, -1))) {
			connection_break(c); /* out of memory to see its lines whole */
			return;
		}
	}
	used = connection_lines(c, buf, len);
	c->in_offset += used;
	if (kept > 0)
		evbuffer_drain(c->in, used);
	else if (used < len && evbuffer_add(c->in, buf + used, len - used) < 0)
		connection_break(c); /* out of memory to keep the rest */
	if (c->closing)
		connection_close_fds(c);
	if (evbuffer_get_length(c->out) > CONNECTION_OUT_SOFT)
		connection_throttle(c, true);
}

void connection_pause(struct connection *c)
{
	c->paused = true;
	loop_event_del(c->rev);
}

void connection_resume(struct connection *c)
{
	if (!c->paused || c->dead)
		return;
	c->paused = false;
	if (!c->throttled && !c->closing && loop_event_add(c->rev, NULL) < 0) {
		connection_break(c); /* never to read again: end it */
		return;
	}
	connection_process(c, 0); /* what c->in kept: the line put off, and on */
}

/* Keeps the descriptors that came with the data (which ends at input
 * offset end), closing what does not fit in the connection or what
 * ops->hold_fd refuses. */
static void connection_keep_fds(struct connection *c, const struct cmsghdr *cm, uint64_t end)
{
	size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

	for (size_t i = 0; i < n; i++) {
		int fd;

		memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
		if (c->nfds < CONNECTION_FDS_MAX && c->ops->hold_fd(c->ctx)) {
			c->fds[c->nfds++] = (struct connection_fd){ fd, end };
		} else {
			close(fd);
			c->fds_refused_end = end;
		}
	}
}

/* Whether a and b are one sender. */
static bool cred_same(const struct lt_cred *a, const struct lt_cred *b)
{
	return a->pid == b->pid && a->uid == b->uid && a->gid == b->gid;
}

/* The sender of the bytes just read (the kernel never joins two senders'
 * data in one read); a line whose bytes came from two is marked. */
static void connection_note_sender(struct connection *c, const struct lt_cred *cred,
				   bool had_partial)
{
	if (had_partial && !cred_same(&c->sender, cred))
		c->part_mixed = true;
	else if (!had_partial)
		c->part_mixed = false;
	c->sender = *cred;
}

/* What came with the data that ends at input offset end: descriptors
 * (SCM_RIGHTS) and the sender (SCM_CREDENTIALS; without it, nobody's
 * rights). */
static void connection_take_control(struct connection *c, struct msghdr *mh, uint64_t end,
				    bool had_partial)
{
	struct lt_cred sender = { .pid = 0, .uid = CONNECTION_NOBODY, .gid = CONNECTION_NOBODY };
	struct cmsghdr *cm;

	for (cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET)
			continue;
		if (cm->cmsg_type == SCM_RIGHTS) {
			connection_keep_fds(c, cm, end);
		} else if (cm->cmsg_type == SCM_CREDENTIALS &&
			   cm->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
			struct ucred u;

			memcpy(&u, CMSG_DATA(cm), sizeof(u));
			sender = (struct lt_cred){ .pid = u.pid, .uid = u.uid, .gid = u.gid };
		}
	}
	connection_note_sender(c, &sender, had_partial);
}

/* Reads into read_buf with one recvmsg(2), taking what comes along.
 * Returns bytes read, 0 at EOF, -errno. */
static ssize_t connection_read_some(struct connection *c)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred)) +
			 CMSG_SPACE(CONNECTION_FDS_MAX * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	size_t kept = evbuffer_get_length(c->in);
	struct iovec iov = { read_buf, sizeof(read_buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	do {
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n > 0 || mh.msg_controllen > 0)
		connection_take_control(c, &mh, c->in_offset + kept + (size_t)n, kept > 0);
	return n;
}

static void connection_read_cb(void *arg)
{
	struct connection *c = arg;
	ssize_t n = connection_read_some(c);

	if (n == -EAGAIN || n == -EWOULDBLOCK)
		return;
	if (n < 0) {
		connection_lose(c, CONNECTION_FAILED, strerror((int)-n));
		return;
	}
	/* More of a line that goes on: kept, and nothing to look at again
	 * until it ends or grows too long (a long line sent in small pieces
	 * costs a scan of each piece, not of the whole line each time). */
	if (n > 0 && !memchr(read_buf, '\n', (size_t)n) &&
	    evbuffer_get_length(c->in) + (size_t)n < *c->max_line) {
		if (evbuffer_add(c->in, read_buf, (size_t)n) < 0)
			connection_break(c); /* out of memory to keep it */
		return;
	}
	connection_process(c, (size_t)n);
	if (n == 0) /* the peer is gone or half-closed: answer what it sent, then end */
		connection_close_after_flush(c);
}

static void connection_write_cb(void *arg)
{
	connection_flush(arg);
}
