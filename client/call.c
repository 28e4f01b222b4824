/* Blocking calls on the core: a request sent, then the client run until
 * its reply, its deadline (the call timeout), or a signal when the caller
 * asked for that. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "libhasp-internal.h"

int libhasp_wait(hasp_client *c, const bool *finished)
{
	for (;;) {
		struct pollfd p = { .fd = c->fd };
		int r = libhasp_flush(c);

		if (*finished)
			return 0;
		if (r < 0)
			return r;
		p.events = (short)hasp_client_get_events(c);
		r = poll(&p, 1, hasp_client_get_timeout(c));

		if (r < 0 && errno == EINTR && c->interruptible)
			return libhasp_error(c, -EINTR, "interrupted by a signal");
		if (r < 0 && errno != EINTR)
			return libhasp_error(c, -errno, "cannot wait for haspd: %s", strerror(errno));
		r = hasp_client_process(c);
		if (r < 0 && !*finished)
			return r;
	}
}

int libhasp_written(hasp_client *c)
{
	struct proto_reply rep;
	int r = libhasp_flush(c);

	if (r < 0 || !c->out)
		return r;
	/* The socket is full (haspd is slow to read): a ping's answer says
	 * that everything before it arrived, within the call timeout. */
	r = libhasp_call(c, OP_PING, NULL, -1, &rep);
	if (r >= 0)
		proto_reply_done(&rep);
	return r;
}

/* Where a blocking call's reply goes. */
struct pending {
	bool finished;
	int err;
	struct proto_reply rep;
};

static void keep_reply(hasp_client *c, struct libhasp_call *k, int err, struct proto_reply *rep)
{
	struct pending *p = k->ctx;

	(void)c;
	p->finished = true;
	p->err = err;
	if (err < 0)
		return;
	if (!proto_reply_root(rep)) { /* kept as jansson's: it may be copied */
		p->err = -ENOMEM;
		return;
	}
	p->rep = *rep;
	json_incref(p->rep.root); /* the core lets go of its own */
}

/* The call waited for no more (interrupted): a request that waits in the
 * daemon is cancelled there, its answer going to nobody. */
static void call_left(hasp_client *c, struct libhasp_call *k, bool cancel)
{
	struct proto_members m;
	int64_t id = k->id;

	libhasp_call_forget(c, k, false, -1, false);
	if (!cancel)
		return;
	proto_members_init(&m);
	proto_members_int(&m, "request", id);
	libhasp_send_members(c, OP_CANCEL, &m, -1, LIBHASP_NEVER, NULL, NULL, NULL);
	proto_members_free(&m);
}

int libhasp_call(hasp_client *c, enum proto_op op, json_t *args, int fd, struct proto_reply *rep)
{
	int64_t deadline = c->call_timeout_ms > 0 ? libhasp_after(libhasp_now_ms(),
								  c->call_timeout_ms)
						  : LIBHASP_NEVER;

	return libhasp_call_until(c, op, args, fd, deadline, false, rep);
}

int libhasp_call_until(hasp_client *c, enum proto_op op, json_t *args, int fd, int64_t deadline,
		       bool waits, struct proto_reply *rep)
{
	struct pending p = { .finished = false };
	struct libhasp_call *k;
	int r;

	c->errmsg[0] = '\0';
	libhasp_conflict_clear(c);
	r = libhasp_send(c, op, args, fd, deadline, keep_reply, &p, &k);
	if (r < 0)
		return r;
	r = libhasp_wait(c, &p.finished);
	if (!p.finished) {
		call_left(c, k, waits); /* its reply goes to nobody */
		return r;
	}
	if (p.err == -ETIMEDOUT && waits)
		return libhasp_error(c, -ETIMEDOUT, "haspd did not answer within the timeout");
	if (p.err == -ETIMEDOUT)
		return libhasp_error(c, -ETIMEDOUT, "haspd did not answer within %lld ms",
				     (long long)c->call_timeout_ms);
	if (p.err == -ENOMEM)
		return libhasp_error(c, -ENOMEM, "out of memory for haspd's reply");
	if (p.err < 0)
		return libhasp_lost_error(c); /* the connection's end */
	if (!p.rep.ok) {
		r = libhasp_reply_error(c, &p.rep);
		proto_reply_done(&p.rep);
		return r;
	}
	*rep = p.rep;
	return 0;
}

const char *libhasp_absolute_path(hasp_client *c, const char *path, char *abs, int *ret_err)
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

	path = libhasp_absolute_path(c, path, abs, &r);
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

HASP_EXPORT int hasp_client_set_call_timeout(hasp_client *c, int64_t ms)
{
	if (ms < 0)
		return libhasp_error(c, -EINVAL, "a call timeout is 0 (none) or more ms");
	c->call_timeout_ms = ms;
	return 0;
}

HASP_EXPORT void hasp_client_set_interruptible(hasp_client *c, bool on)
{
	c->interruptible = on;
}
