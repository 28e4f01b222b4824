/* libhasp: a blocking client of haspd. One request is in flight at a time;
 * replies are matched to it by id, and unsolicited events are noted (a
 * revoke, an expiry) and skipped. Checkouts and TTLs are built on this in
 * acquire.c, checkin.c and renew.c. */
#include "hasp.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "buildconf.h"
#include "libhasp-internal.h"
#include "sockpath.h"
#include "trust.h"

/* Replies (a list of every lock) can be far longer than requests. */
#define REPLY_LINE_MAX (256u << 20)     /* said in messages as 256 MiB */

HASP_EXPORT const char *hasp_version(void)
{
	return HASP_VERSION_STRING;
}

int libhasp_error(hasp_client *c, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
	va_end(ap);
	return err;
}

HASP_EXPORT int hasp_client_new(hasp_client **ret_client)
{
	hasp_client *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	if (frame_buf_init(&c->rb, REPLY_LINE_MAX) < 0) {
		free(c);
		return -ENOMEM;
	}
	c->fd = -1;
	*ret_client = c;
	return 0;
}

int libhasp_connected(hasp_client *c, int fd, const char *path)
{
	c->socket_path = strdup(path);
	if (!c->socket_path) {
		close(fd);
		return libhasp_error(c, -ENOMEM, "out of memory");
	}
	c->fd = fd;
	return 0;
}

HASP_EXPORT hasp_client *hasp_close(hasp_client *c)
{
	if (!c)
		return NULL;
	if (c->fd >= 0)
		close(c->fd);
	frame_buf_done(&c->rb);
	free(c->lost_leases);
	free(c->socket_path);
	free(c);
	return NULL;
}

HASP_EXPORT int hasp_client_fd(const hasp_client *c)
{
	return c->fd;
}

HASP_EXPORT const char *hasp_client_errmsg(const hasp_client *c)
{
	return c->errmsg;
}

/* The connection ended (the daemon stopped, crashed or restarted), and
 * every lease of c with it: this and every later call say so. */
static int connection_lost(hasp_client *c)
{
	c->lost = true;
	return libhasp_error(c, -ECONNRESET, "the connection to haspd was lost, and every lease taken "
			 "through it; connect again");
}

/* Reads once into the reply buffer: bytes read, or a negative error. */
static ssize_t fill(hasp_client *c)
{
	ssize_t n = frame_buf_fill(&c->rb, c->fd);

	if (n == 0 || n == -ECONNRESET)
		return connection_lost(c);
	if (n < 0)
		return libhasp_error(c, (int)n, "cannot read from haspd: %s", strerror((int)-n));
	return n;
}

static int connection_ended(hasp_client *c);

/* The client cannot follow the daemon any more (a reply it could not read,
 * an event it could not keep): it drops the connection, so that the
 * daemon ends the session and releases every lease of it, including any
 * whose grant the client missed. */
static void drop(hasp_client *c)
{
	shutdown(c->fd, SHUT_RDWR);
	c->lost = true;
}

static int connection_dropped(hasp_client *c, int code, const char *what)
{
	drop(c);
	return libhasp_error(c, code, "%s; the connection to haspd is dropped, and every lease taken "
			 "through it", what);
}

/* Sends a request line; fd (if >= 0) travels with its first byte. */
static int send_all(hasp_client *c, const char *buf, size_t len, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl = { { 0 } }; /* the padding too: the kernel reads it */

	while (len > 0) {
		struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (fd >= 0) {
			struct cmsghdr *cm;

			mh.msg_control = ctl.buf;
			mh.msg_controllen = sizeof(ctl.buf);
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &fd, sizeof(int));
		}
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EPIPE || errno == ECONNRESET)
				return connection_ended(c);
			return libhasp_error(c, -errno, "cannot send to haspd: %s", strerror(errno));
		}
		buf += n;
		len -= (size_t)n;
		fd = -1;
	}
	return 0;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is readable when a waiting callback is pending: it is
 * called once, when the wait passes its threshold, and then cleared.
 * Otherwise the blocking read(2) that follows does the waiting. */
static int wait_readable(hasp_client *c, const struct libhasp_acquire **w, int64_t start)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };

	while (*w && (*w)->waiting) {
		int64_t left = start + (*w)->waiting_after_ms - mono_ms();
		int r = poll(&p, 1, left <= 0 ? 0 : left < 1000000 ? (int)left : 1000000);

		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r == 0 && left <= 0) {
			(*w)->waiting((*w)->userdata);
			*w = NULL;
		}
	}
	return 0;
}

/* Remembers a revoked or expired lease, for hasp_lease_revoked(). Returns
 * 0, or a negative error when it cannot, having dropped the connection: a
 * holder must never go on unaware. */
static int note_event(hasp_client *c, const struct proto_reply *rep)
{
	json_t *lease = json_object_get(rep->root, "lease");
	enum libhasp_loss how;

	if (strcmp(rep->event, "revoked") == 0)
		how = LIBHASP_REVOKED;
	else if (strcmp(rep->event, "expired") == 0)
		how = LIBHASP_EXPIRED;
	else
		return 0;
	if (!json_is_integer(lease))
		return 0;
	if (c->nlost == c->lost_cap) {
		size_t cap = c->lost_cap ? c->lost_cap * 2 : 8;
		struct libhasp_lost *v = realloc(c->lost_leases, cap * sizeof(*v));

		if (!v)
			return connection_dropped(c, -ENOMEM, "out of memory for a revoke notice");
		c->lost_leases = v;
		c->lost_cap = cap;
	}
	c->lost_leases[c->nlost++] = (struct libhasp_lost){ (uint64_t)json_integer_value(lease),
							     how };
	return 0;
}

/* An event, or a reply for no one waiting: noted, then let go. */
static int note_other(hasp_client *c, struct proto_reply *rep)
{
	int r = rep->is_event ? note_event(c, rep) : 0;

	proto_reply_done(rep);
	return r;
}

/* An error addressed to no request: the daemon refused the session (over a
 * limit, out of descriptors, a line too long) and closes it. */
static bool is_refusal(const struct proto_reply *rep)
{
	return !rep->is_event && !rep->has_id && !rep->ok;
}

static int session_refused(hasp_client *c, struct proto_reply *rep)
{
	int r = libhasp_error(c, -rep->code, "%s", rep->message);

	proto_reply_done(rep);
	c->lost = true;
	return r;
}

/* Reads replies until the one for id; events and others are skipped; an
 * error for no request ends the session. */
static int read_reply(hasp_client *c, int64_t id, struct proto_reply *rep,
		      const struct libhasp_acquire *w)
{
	int64_t start = w && w->waiting ? mono_ms() : 0;
	const char *line;
	size_t len;

	for (;;) {
		enum frame_status st = frame_buf_next(&c->rb, &line, &len);
		ssize_t n;
		int r;

		if (st == FRAME_LINE) {
			if (proto_decode_reply(line, len, rep) < 0)
				return connection_dropped(c, -HASP_E_PROTOCOL, "a reply from haspd "
							  "could not be read (not a JSON object, or "
							  "out of memory)");
			if (!rep->is_event && rep->has_id && rep->id == id)
				return 0;
			if (is_refusal(rep))
				return session_refused(c, rep);
			r = note_other(c, rep);
			if (r < 0)
				return r;
			continue;
		}
		if (st == FRAME_TOO_LARGE)
			return connection_dropped(c, -HASP_E_PROTOCOL,
						  "haspd sent a reply over 256 MiB");
		r = wait_readable(c, &w, start);
		if (r < 0)
			return libhasp_error(c, r, "cannot read from haspd: %s", strerror(-r));
		n = fill(c);
		if (n < 0)
			return (int)n;
	}
}

/* One request, one reply (libhasp_call()), with w's waiting callback, if
 * any, called while it waits. */
static int call_waiting(hasp_client *c, enum proto_op op, json_t *args, int fd,
			struct proto_reply *rep, const struct libhasp_acquire *w)
{
	int64_t id = ++c->last_id;
	size_t len = 0;
	/* These carry arguments: none means they could not be built. */
	bool needs_args = op == OP_ACQUIRE || op == OP_RELEASE || op == OP_CANCEL ||
			  op == OP_REVOKE || op == OP_LIST || op == OP_ADOPT || op == OP_RENEW;
	char *line = args || !needs_args ? proto_encode_request(id, op, args, &len) : NULL;
	int r;

	c->errmsg[0] = '\0';
	if (c->fd < 0) {
		free(line);
		return libhasp_error(c, -ENOTCONN, "not connected to haspd");
	}
	if (c->lost) {
		free(line);
		return connection_lost(c);
	}
	if (!line)
		return libhasp_error(c, -ENOMEM, "out of memory");
	r = send_all(c, line, len, fd);
	free(line);
	if (r >= 0)
		r = read_reply(c, id, rep, w);
	if (r < 0) {
		/* The request went, in part or whole, and its answer was not
		 * read: what the daemon made of it is unknown, so the
		 * connection goes, and with it whatever was granted. */
		drop(c);
		return r;
	}
	if (!rep->ok) {
		r = libhasp_error(c, -rep->code, "%s", rep->message);
		proto_reply_done(rep);
	}
	return r;
}

int libhasp_call(hasp_client *c, enum proto_op op, json_t *args, int fd, struct proto_reply *rep)
{
	return call_waiting(c, op, args, fd, rep, NULL);
}

/* The acquire's arguments; what is "key" or "path", name its value
 * (consumed). All or nothing: an acquire that lost its timeout would wait
 * for ever, one that lost its TTL or detach would never end. */
static json_t *lock_args(const char *what, json_t *name, bool with_fd,
			 const struct libhasp_acquire *o)
{
	json_t *a = json_pack("{s:o,s:s,s:s*,s:s*,s:o*}", what, name,
			      "mode", o->mode == HASP_SHARED ? "shared" : "exclusive",
			      "owner", o->owner, "message", o->message,
			      "fd", with_fd ? json_true() : NULL);

	if (a && ((o->timeout_ms >= 0 &&
		   json_object_set_new(a, "timeout_ms", json_integer(o->timeout_ms)) < 0) ||
		  (o->ttl_ms > 0 && json_object_set_new(a, "ttl_ms", json_integer(o->ttl_ms)) < 0) ||
		  (o->detach && json_object_set_new(a, "detach", json_true()) < 0))) {
		json_decref(a);
		return NULL;
	}
	return a;
}

/* What lock_args() can put in JSON: otherwise json_pack() fails as for
 * want of memory. */
static bool strings_valid(const struct libhasp_acquire *o)
{
	return (!o->owner || proto_utf8_valid(o->owner)) &&
	       (!o->message || proto_utf8_valid(o->message));
}

/* The lease of a granted acquire's reply, into l. A reply that does not
 * say what was granted is the daemon's error: the connection goes (and with
 * it a session-bound lease; a checkout stays, for its uid to check in). */
static int read_grant(hasp_client *c, const struct proto_reply *rep,
		      const struct libhasp_acquire *o, hasp_lease *l)
{
	struct proto_grant g;

	if (proto_decode_grant(rep, &g) < 0 || (o->detach && !g.token))
		return connection_dropped(c, -HASP_E_PROTOCOL, "haspd's grant could not be read "
					  "(no lease id, or a bad or missing token)");
	l->id = g.lease;
	l->fence = g.fence;
	l->mode = o->mode;
	l->ttl_ms = o->ttl_ms > 0 ? (g.expires_ms >= 0 ? g.expires_ms : o->ttl_ms) : 0;
	snprintf(l->token, sizeof(l->token), "%s", g.token ? g.token : "");
	return 0;
}

/* Sends an acquire (with fd, if >= 0) and makes the lease of its grant. */
static int lock_common(hasp_client *c, const char *name, json_t *args, int fd,
		       const struct libhasp_acquire *opts, hasp_lease **ret_lease)
{
	size_t len = strlen(name);
	/* Before the request: no grant can find the client without memory. */
	hasp_lease *l = malloc(sizeof(*l) + len + 1);
	struct proto_reply rep;
	int r;

	if (!l) {
		json_decref(args);
		return libhasp_error(c, -ENOMEM, "out of memory");
	}
	r = call_waiting(c, OP_ACQUIRE, args, fd, &rep, opts);
	if (r < 0) {
		free(l);
		return r;
	}
	r = read_grant(c, &rep, opts, l);
	proto_reply_done(&rep);
	if (r < 0) {
		free(l);
		return r;
	}
	memcpy(l->key, name, len + 1);
	*ret_lease = l;
	return 0;
}

/* hasp_lock_options as an acquire; NULL for the defaults. */
static struct libhasp_acquire lock_acquire(const struct hasp_lock_options *o)
{
	static const struct hasp_lock_options defaults = HASP_LOCK_OPTIONS_INIT;

	if (!o)
		o = &defaults;
	return (struct libhasp_acquire){
		.mode = o->mode, .timeout_ms = o->timeout_ms, .owner = o->owner,
		.message = o->message, .waiting = o->waiting,
		.waiting_after_ms = o->waiting_after_ms, .userdata = o->userdata,
	};
}

int libhasp_check_key(hasp_client *c, const char *key)
{
	if (!key || !*key || strlen(key) > PROTO_KEY_MAX)
		return libhasp_error(c, -EINVAL, "a key is 1 to %d bytes", PROTO_KEY_MAX);
	if (!proto_utf8_valid(key))
		return libhasp_error(c, -EINVAL, "a key must be UTF-8");
	return 0;
}

int libhasp_check_token(hasp_client *c, const char *token)
{
	if (!proto_token_valid(token))
		return libhasp_error(c, -EINVAL, "a checkout's token is %d lowercase hex digits",
				     PROTO_TOKEN_HEX);
	return 0;
}

int libhasp_acquire_key(hasp_client *c, const char *key, const struct libhasp_acquire *a,
			hasp_lease **ret_lease)
{
	int r = libhasp_check_key(c, key);

	if (r < 0)
		return r;
	if (!strings_valid(a))
		return libhasp_error(c, -EINVAL, "the owner and message must be UTF-8");
	return lock_common(c, key, lock_args("key", json_string(key), false, a), -1, a,
			   ret_lease);
}

HASP_EXPORT int hasp_lock(hasp_client *c, const char *key, const struct hasp_lock_options *opts,
			  hasp_lease **ret_lease)
{
	struct libhasp_acquire a = lock_acquire(opts);

	return libhasp_acquire_key(c, key, &a, ret_lease);
}

/* Opens path as rapfiles does: created if missing (0666 minus umask; create
 * is O_CREAT or 0), with read access where allowed, else write access;
 * never blocking. A directory, which O_CREAT refuses, is opened for
 * reading, as flock(1) does. */
static int open_lock_file(const char *path, int create)
{
	int flags = create | O_NOCTTY | O_NONBLOCK | O_CLOEXEC;
	int fd = open(path, O_RDONLY | flags, 0666);

	if (fd < 0 && errno == EACCES)
		fd = open(path, O_WRONLY | flags, 0666);
	if (fd < 0 && errno == EISDIR)
		fd = open(path, O_RDONLY | O_DIRECTORY | O_NOCTTY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* path as the protocol wants it, absolute: path itself, or abs (PATH_MAX
 * bytes) filled from the working directory. NULL with the error set. */
static const char *absolute_path(hasp_client *c, const char *path, char *abs, int *ret_err)
{
	char cwd[PATH_MAX];
	int r;

	if (!path || !*path) {
		*ret_err = libhasp_error(c, -EINVAL, "no path");
		return NULL;
	}
	if (path[0] == '/')
		return path;
	if (!getcwd(cwd, sizeof(cwd))) {
		*ret_err = libhasp_error(c, -errno, "cannot resolve %s: %s", path, strerror(errno));
		return NULL;
	}
	r = snprintf(abs, PATH_MAX, "%s/%s", strcmp(cwd, "/") ? cwd : "", path);
	if (r < 0 || r >= PATH_MAX) {
		*ret_err = libhasp_error(c, -ENAMETOOLONG, "path too long: %s", path);
		return NULL;
	}
	return abs;
}

/* Releases l after the error r, which stays c's error (with its message);
 * returns r. */
static int unlock_keeping_error(hasp_client *c, hasp_lease *l, int r)
{
	char msg[sizeof(c->errmsg)];

	memcpy(msg, c->errmsg, sizeof(msg));
	hasp_unlock(c, l);
	return libhasp_error(c, r, "%s", msg);
}

/* Whether l, granted on fd's file, holds the file path names now: 1 yes,
 * 0 no (the file was replaced meanwhile, by a rename over it, and the new
 * one is a lock of its own: l was released), or an error (l released). A
 * new file that is nobody's lock joins l (adopt). */
static int settle(hasp_client *c, hasp_lease *l, const char *path, int fd)
{
	struct stat was, now;
	int nfd, r;

	if (fstat(fd, &was) < 0 || stat(path, &now) < 0 ||
	    (was.st_dev == now.st_dev && was.st_ino == now.st_ino))
		return 1; /* the same file, or none at the path: flock's answer */
	nfd = open_lock_file(path, 0);
	if (nfd == -ENOENT)
		return 1; /* gone since: the lease stands, as flock's would */
	r = nfd < 0 ? libhasp_error(c, nfd, "cannot open %s again: %s", path, strerror(-nfd))
		    : hasp_lease_adopt(c, l, nfd);
	if (nfd >= 0)
		close(nfd);
	if (r == 0)
		return 1;
	return unlock_keeping_error(c, l, r) == -HASP_E_BUSY ? 0 : r;
}

/* One try of hasp_lock_file(): 1 and the lease, 0 to try again (the file
 * was replaced under the request), or an error. */
static int lock_file_once(hasp_client *c, const char *path, const struct libhasp_acquire *opts,
			  hasp_lease **ret_lease)
{
	hasp_lease *l;
	json_t *args;
	int fd = open_lock_file(path, O_CREAT), r;

	if (fd < 0)
		return libhasp_error(c, fd, "cannot open %s: %s", path, strerror(-fd));
	/* The descriptor is the file's identity; the path, display text, goes
	 * as shown (U+FFFD for what is not UTF-8): any file name works. */
	args = lock_args("path", proto_string_shown(path, strlen(path)), true, opts);
	r = lock_common(c, path, args, fd, opts, &l);
	if (r >= 0 && (r = settle(c, l, path, fd)) > 0)
		*ret_lease = l;
	close(fd);
	return r;
}

int libhasp_acquire_file(hasp_client *c, const char *path, const struct libhasp_acquire *opts,
			 hasp_lease **ret_lease)
{
	struct libhasp_acquire o;
	int64_t start = mono_ms();
	char abs[PATH_MAX];
	int r;

	path = absolute_path(c, path, abs, &r);
	if (!path)
		return r;
	if (!strings_valid(opts))
		return libhasp_error(c, -EINVAL, "the owner and message must be UTF-8");
	o = *opts;
	while ((r = lock_file_once(c, path, &o, ret_lease)) == 0) {
		if (opts->timeout_ms > 0) {
			int64_t left = opts->timeout_ms - (mono_ms() - start);

			o.timeout_ms = left > 0 ? left : 0;
		}
	}
	return r < 0 ? r : 0;
}

HASP_EXPORT int hasp_lock_file(hasp_client *c, const char *path,
			       const struct hasp_lock_options *opts, hasp_lease **ret_lease)
{
	struct libhasp_acquire a = lock_acquire(opts);

	return libhasp_acquire_file(c, path, &a, ret_lease);
}

/* The path fd was opened by, for display: what /proc says of it. */
static int fd_path(int fd, char *buf, size_t size)
{
	char proc[64];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, buf, size - 1);
	if (n <= 0 || buf[0] != '/')
		return -1;
	buf[n] = '\0';
	return 0;
}

HASP_EXPORT int hasp_lock_fd(hasp_client *c, int fd, const struct hasp_lock_options *opts,
			     hasp_lease **ret_lease)
{
	struct libhasp_acquire a = lock_acquire(opts);
	char path[PATH_MAX];
	struct stat st;
	json_t *args;

	if (fstat(fd, &st) < 0)
		return libhasp_error(c, -errno, "descriptor %d: %s", fd, strerror(errno));
	if (!strings_valid(&a))
		return libhasp_error(c, -EINVAL, "the owner and message must be UTF-8");
	if (fd_path(fd, path, sizeof(path)) < 0)
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)getpid(), fd);
	args = lock_args("path", proto_string_shown(path, strlen(path)), true, &a);
	if (args && json_object_set_new(args, "lock_fd", json_true()) < 0) {
		json_decref(args);
		args = NULL;
	}
	return lock_common(c, path, args, fd, &a, ret_lease);
}

HASP_EXPORT int hasp_lease_adopt(hasp_client *c, const hasp_lease *l, int fd)
{
	char path[PATH_MAX];
	struct proto_reply rep;
	json_t *args;
	int r;

	if (fd_path(fd, path, sizeof(path)) < 0)
		return libhasp_error(c, -EBADF, "descriptor %d names no file", fd);
	args = json_pack("{s:I,s:o,s:b}", "lease", (json_int_t)l->id, "path",
			 proto_string_shown(path, strlen(path)), "fd", 1);
	r = libhasp_call(c, OP_ADOPT, args, fd, &rep);
	if (r >= 0)
		proto_reply_done(&rep);
	return r;
}

HASP_EXPORT int hasp_hello(hasp_client *c, const char *name)
{
	struct proto_reply rep;
	int r;

	if (!name || strlen(name) > PROTO_CLIENT_MAX || !proto_utf8_valid(name))
		return libhasp_error(c, -EINVAL, "a client name is UTF-8, at most %d bytes",
				 PROTO_CLIENT_MAX);
	r = libhasp_call(c, OP_HELLO, json_pack("{s:s,s:i}", "client", name, "version",
						PROTO_VERSION), -1, &rep);
	if (r >= 0)
		proto_reply_done(&rep);
	return r;
}

HASP_EXPORT int hasp_unlock(hasp_client *c, hasp_lease *l)
{
	struct proto_reply rep;
	int r = libhasp_call(c, OP_RELEASE, json_pack("{s:I,s:s*}", "lease", (json_int_t)l->id,
						      "token", *l->token ? l->token : NULL),
			     -1, &rep);

	if (r >= 0)
		proto_reply_done(&rep);
	hasp_lease_free(l);
	return r;
}

HASP_EXPORT hasp_lease *hasp_lease_free(hasp_lease *l)
{
	free(l);
	return NULL;
}

HASP_EXPORT uint64_t hasp_lease_id(const hasp_lease *l)
{
	return l->id;
}

HASP_EXPORT uint64_t hasp_lease_fence(const hasp_lease *l)
{
	return l->fence;
}

HASP_EXPORT enum hasp_mode hasp_lease_mode(const hasp_lease *l)
{
	return l->mode;
}

HASP_EXPORT const char *hasp_lease_key(const hasp_lease *l)
{
	return l->key;
}

HASP_EXPORT const char *hasp_lease_token(const hasp_lease *l)
{
	return *l->token ? l->token : NULL;
}

HASP_EXPORT int64_t hasp_lease_ttl_ms(const hasp_lease *l)
{
	return l->ttl_ms;
}

/* The JSON text of o; -ENOMEM without memory for it. */
static int dump_json(hasp_client *c, json_t *o, char **ret)
{
	char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);

	if (!text)
		return libhasp_error(c, -ENOMEM, "out of memory");
	*ret = text;
	return 0;
}

HASP_EXPORT int hasp_stats_json(hasp_client *c, char **ret_json)
{
	struct proto_reply rep;
	json_t *stats;
	int r = libhasp_call(c, OP_STATS, NULL, -1, &rep);

	if (r < 0)
		return r;
	stats = json_object_get(rep.root, "stats");
	r = stats ? dump_json(c, stats, ret_json)
		  : libhasp_error(c, -HASP_E_PROTOCOL, "haspd's reply has no \"stats\"");
	proto_reply_done(&rep);
	return r;
}

/* The arguments of a list request; NULL for want of memory. */
static json_t *list_args(const char *prefix, const char *after, unsigned limit)
{
	json_t *a = json_object();

	if (a && ((prefix && json_object_set_new(a, "prefix", json_string(prefix)) < 0) ||
		  (after && json_object_set_new(a, "after", json_string(after)) < 0) ||
		  (limit && json_object_set_new(a, "limit", json_integer(limit)) < 0))) {
		json_decref(a);
		return NULL;
	}
	return a;
}

/* A page's cursor: the next page's "after" (malloc'ed), or NULL after the
 * last page. A next that does not move past after would page for ever. */
static int list_next(hasp_client *c, json_t *reply, const char *after, char **ret_next)
{
	json_t *next = json_object_get(reply, "next");
	const char *n = json_string_value(next);
	char *copy;

	if (!next || json_is_null(next)) {
		*ret_next = NULL;
		return 0;
	}
	if (!n || (after && strcmp(n, after) <= 0))
		return libhasp_error(c, -HASP_E_PROTOCOL, "haspd's list reply has a \"next\" that does "
				 "not move on");
	copy = strdup(n);
	if (!copy)
		return libhasp_error(c, -ENOMEM, "out of memory");
	*ret_next = copy;
	return 0;
}

/* One page: its resources (a reference of the caller's) and its cursor. */
static int list_page(hasp_client *c, const struct hasp_list_options *o, json_t **ret_resources,
		     char **ret_next)
{
	struct proto_reply rep;
	json_t *resources;
	int r;

	if ((o->prefix && !proto_utf8_valid(o->prefix)) || (o->after && !proto_utf8_valid(o->after)))
		return libhasp_error(c, -EINVAL, "a list's prefix and after must be UTF-8");
	r = libhasp_call(c, OP_LIST, list_args(o->prefix, o->after, o->limit), -1, &rep);
	if (r < 0)
		return r;
	resources = json_object_get(rep.root, "resources");
	if (!json_is_array(resources))
		r = libhasp_error(c, -HASP_E_PROTOCOL, "haspd's list reply has no \"resources\" array");
	else
		r = list_next(c, rep.root, o->after, ret_next);
	if (r >= 0)
		*ret_resources = json_incref(resources);
	proto_reply_done(&rep);
	return r;
}

/* The caller's options, those it does not know (an older caller's
 * smaller struct) left at their defaults. */
static int list_options(hasp_client *c, const struct hasp_list_options *o,
			struct hasp_list_options *ret)
{
	*ret = (struct hasp_list_options)HASP_LIST_OPTIONS_INIT;
	if (!o)
		return 0;
	if (o->size < sizeof(o->size))
		return libhasp_error(c, -EINVAL, "struct hasp_list_options: size not set");
	memcpy(ret, o, o->size < sizeof(*ret) ? o->size : sizeof(*ret));
	ret->size = sizeof(*ret);
	return 0;
}

HASP_EXPORT int hasp_list_page_json(hasp_client *c, const struct hasp_list_options *opts,
				    char **ret_json, char **ret_next)
{
	struct hasp_list_options o;
	json_t *resources;
	char *next = NULL, *text = NULL;
	int r = list_options(c, opts, &o);

	if (r >= 0)
		r = list_page(c, &o, &resources, &next);
	if (r < 0)
		return r;
	r = dump_json(c, resources, &text);
	json_decref(resources);
	if (r < 0) {
		free(next);
		return r;
	}
	*ret_json = text;
	*ret_next = next;
	return 0;
}

HASP_EXPORT int hasp_list_json(hasp_client *c, char **ret_json)
{
	struct hasp_list_options o = HASP_LIST_OPTIONS_INIT;
	json_t *all = json_array(), *page;
	char *after = NULL;
	int r = all ? 0 : libhasp_error(c, -ENOMEM, "out of memory");

	while (r >= 0) {
		char *next = NULL;

		o.after = after;
		r = list_page(c, &o, &page, &next);
		if (r < 0)
			break;
		if (json_array_extend(all, page) < 0)
			r = libhasp_error(c, -ENOMEM, "out of memory");
		json_decref(page);
		free(after);
		after = next;
		if (!after)
			break;
	}
	if (r >= 0)
		r = dump_json(c, all, ret_json);
	free(after);
	json_decref(all);
	return r;
}

/* Reads and notes the events already waiting on the socket, without
 * blocking. Returns 0 or a negative error (-ECONNRESET: the daemon is gone;
 * -HASP_E_LIMIT and the like: it refused the session). */
static int drain_events(hasp_client *c)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	struct proto_reply rep;
	const char *line;
	size_t len;

	if (c->fd < 0)
		return libhasp_error(c, -ENOTCONN, "not connected to haspd");
	if (c->lost)
		return connection_lost(c);
	for (;;) {
		ssize_t n;

		enum frame_status st;
		int r;

		while ((st = frame_buf_next(&c->rb, &line, &len)) == FRAME_LINE) {
			/* It could be a revoke notice: never skipped. */
			if (proto_decode_reply(line, len, &rep) < 0)
				return connection_dropped(c, -HASP_E_PROTOCOL, "a line from haspd "
							  "could not be read (not a JSON object, "
							  "or out of memory)");
			if (is_refusal(&rep))
				return session_refused(c, &rep);
			r = note_other(c, &rep);
			if (r < 0)
				return r;
		}
		if (st == FRAME_TOO_LARGE)
			return connection_dropped(c, -HASP_E_PROTOCOL,
						  "haspd sent a line over 256 MiB");
		if (poll(&p, 1, 0) <= 0)
			return 0;
		n = fill(c);
		if (n < 0)
			return (int)n;
	}
}

/* The daemon closed the connection under a request: what it sent before,
 * a refusal (over a limit) or events, says more than the end. */
static int connection_ended(hasp_client *c)
{
	int r = drain_events(c);

	return r < 0 ? r : connection_lost(c);
}

HASP_EXPORT int hasp_lease_revoked(hasp_client *c, const hasp_lease *l)
{
	int r = drain_events(c);

	/* A revoke that came before the end is the more precise answer. */
	for (size_t i = 0; i < c->nlost; i++)
		if (c->lost_leases[i].lease == l->id)
			return (int)c->lost_leases[i].how;
	return r < 0 ? r : 0;
}

HASP_EXPORT int hasp_revoke(hasp_client *c, uint64_t lease_id)
{
	struct proto_reply rep;
	int r = libhasp_call(c, OP_REVOKE, json_pack("{s:I}", "lease", (json_int_t)lease_id), -1,
			     &rep);

	if (r >= 0)
		proto_reply_done(&rep);
	return r;
}

/* How many leases a revoke ended (the reply is done with), or r. */
static int revoked_count(int r, struct proto_reply *rep)
{
	if (r < 0)
		return r;
	r = (int)json_array_size(json_object_get(rep->root, "revoked"));
	proto_reply_done(rep);
	return r;
}

HASP_EXPORT int hasp_revoke_key(hasp_client *c, const char *key)
{
	struct proto_reply rep;

	if (!key || !proto_utf8_valid(key))
		return libhasp_error(c, -EINVAL, "a key must be UTF-8");
	return revoked_count(libhasp_call(c, OP_REVOKE, json_pack("{s:s}", "key", key), -1, &rep),
			     &rep);
}

/* A descriptor that names path's file, to act on by its inode: for
 * reading where allowed, else for writing, else O_PATH (which proves no
 * access, and needs not: the authority of a revoke, release or renew is
 * the sender's uid or a token). Never created, never blocking. */
static int open_named_file(const char *path)
{
	int flags = O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
	int fd = open(path, O_RDONLY | flags);

	if (fd < 0 && errno == EACCES)
		fd = open(path, O_WRONLY | flags);
	if (fd < 0 && errno == EACCES)
		fd = open(path, O_PATH | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int libhasp_call_file(hasp_client *c, enum proto_op op, json_t *args, const char *path,
		      struct proto_reply *rep)
{
	char abs[PATH_MAX];
	int fd, r;

	path = absolute_path(c, path, abs, &r);
	if (!path) {
		json_decref(args);
		return r;
	}
	fd = open_named_file(path);
	if (fd < 0) {
		json_decref(args);
		return libhasp_error(c, fd, "cannot open %s: %s", path, strerror(-fd));
	}
	if (args && (json_object_set_new(args, "path", proto_string_shown(path, strlen(path))) < 0 ||
		     json_object_set_new(args, "fd", json_true()) < 0)) {
		json_decref(args);
		args = NULL;
	}
	r = libhasp_call(c, op, args, fd, rep);
	close(fd);
	return r;
}

HASP_EXPORT int hasp_revoke_file(hasp_client *c, const char *path)
{
	struct proto_reply rep;

	return revoked_count(libhasp_call_file(c, OP_REVOKE, json_object(), path, &rep), &rep);
}

HASP_EXPORT int hasp_ping(hasp_client *c)
{
	struct proto_reply rep;
	int r = libhasp_call(c, OP_PING, NULL, -1, &rep);

	if (r >= 0)
		proto_reply_done(&rep);
	return r;
}

HASP_EXPORT const char *hasp_errcode_name(int err)
{
	if (-err < HASP_E_BASE || -err > HASP_E_UNAVAILABLE || -err == HASP_E_PROTOCOL ||
	    -err == HASP_E_UNTRUSTED)
		return NULL;
	return proto_errcode_name(-err);
}

HASP_EXPORT const char *hasp_strerror(int err)
{
	static const char *const text[] = {
		"malformed or invalid request",
		"unknown operation",
		"held by another session",
		"timed out waiting",
		"cancelled",
		"already held or awaited by this session",
		"no such lease",
		"no such waiting request",
		"deadlock",
		"permission denied",
		"a daemon limit was reached",
		"request too large",
		"not supported",
		"internal daemon error",
		"haspd's reply could not be understood",
		"the socket is not to be trusted",
		"not available in this haspd (checkouts need a journal)",
	};

	if (-err >= HASP_E_BASE && -err <= HASP_E_UNAVAILABLE)
		return text[-err - HASP_E_BASE];
	return strerror(-err);
}
