/* Acquires on the core: hasp_lock_async() and its file forms, the
 * blocking acquires built on them, and cancel. An acquire is one call on
 * the wire, or, for a file that was replaced (renamed over) while the
 * request waited, a chain: the grant, an adopt of the new file, or a
 * release and the acquire again within what is left of the timeout. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libhasp-internal.h"

struct hasp_request {
	hasp_client *c;
	struct hasp_request *prev, *next;       /* c->requests */
	hasp_lock_callback cb;
	void *userdata;
	struct libhasp_acquire a;               /* owner and message: NULL (sent once) */
	enum libhasp_target target;
	struct proto_members args;              /* the acquire's but its timeout */
	int64_t timeout_ms;                     /* the one to send: what is left of it */
	int fd;                                 /* the file's, while the request lasts */
	hasp_lease *lease;                      /* allocated up front, filled at the grant */
	struct libhasp_call *call;              /* on the wire now */
	int64_t timeout_end_ms;                 /* LIBHASP_NEVER: forever */
	int64_t notice_ms;                      /* the waiting notice; LIBHASP_NEVER: none */
	bool finishing;                         /* its callback runs */
	/* Being sent by libhasp_start(): an end now (the send found the
	 * connection gone) is returned by it, not called back. */
	bool busy;                              /* its call's end is being handled */
	bool cancelled;                         /* while busy: end it telling no one */
};

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

/* The acquire's members but its timeout: what is "key" or "path", name
 * its value (a path as shown: U+FFFD for what is not UTF-8; the
 * descriptor is its identity). */
static void lock_args(struct proto_members *m, const char *what, const char *name,
		      enum libhasp_target t, const struct libhasp_acquire *o)
{
	proto_members_init(m);
	if (t == LIBHASP_KEYS)
		proto_members_add(m, o->keys_json, strlen(o->keys_json));
	else if (t == LIBHASP_KEY)
		proto_members_str(m, what, name);
	else
		proto_members_shown(m, what, name, strlen(name));
	proto_members_str(m, "mode", o->mode == HASP_SHARED ? "shared" : "exclusive");
	if (o->owner)
		proto_members_str(m, "owner", o->owner);
	if (o->message)
		proto_members_str(m, "message", o->message);
	if (t == LIBHASP_FILE || t == LIBHASP_FD)
		proto_members_true(m, "fd");
	if (t == LIBHASP_FD)
		proto_members_true(m, "lock_fd");
	if (o->ttl_ms > 0)
		proto_members_int(m, "ttl_ms", o->ttl_ms);
	if (o->limit)
		proto_members_int(m, "limit", o->limit);
	if (o->detach)
		proto_members_true(m, "detach");
}

/* ---- the request's life ---- */

/* Releases q's granted lease (with its token, a checkout's), answered to
 * nobody. Without memory for it, the lease would stay: the session goes,
 * as libhasp_release_granted() does it. */
static void release_lease(hasp_request *q)
{
	const char *token = *q->lease->token ? q->lease->token : NULL;
	struct proto_members m;
	struct libhasp_call *k;
	int r;

	if (q->target == LIBHASP_FD) {
		flock(q->fd, LOCK_UN); /* the caller's own flock: haspd keeps no lease */
		return;
	}
	libhasp_members_release(&m, q->lease->id, token);
	r = libhasp_send_members(q->c, OP_RELEASE, &m, -1, LIBHASP_NEVER, NULL, NULL, &k);
	proto_members_free(&m);
	if (r == -ENOMEM)
		libhasp_drop(q->c, -ENOMEM, "out of memory to release a lease");
	else if (r == 0)
		k->matters = token != NULL;
}

static void request_link(hasp_client *c, hasp_request *q)
{
	q->prev = NULL;
	q->next = c->requests;
	if (c->requests)
		c->requests->prev = q;
	c->requests = q;
}

static void request_unlink(hasp_request *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		q->c->requests = q->next;
	if (q->next)
		q->next->prev = q->prev;
}

static void request_free(hasp_request *q)
{
	if (q->fd >= 0 && q->target != LIBHASP_FD)
		close(q->fd);
	proto_members_free(&q->args);
	free(q->lease);
	free(q);
}

/* The end: r and the lease (r == 0) to the callback, c's error message
 * and conflict already set for r < 0. */
static void finish(hasp_request *q, int r)
{
	hasp_lease *l = r == 0 ? q->lease : NULL;

	request_unlink(q);
	q->call = NULL;
	if (q->cancelled) {
		if (l)
			release_lease(q);
		request_free(q);
		return;
	}
	if (l)
		q->lease = NULL;
	q->finishing = true;
	q->call = NULL;
	q->cb(q->c, q, r, l, q->userdata);
	request_free(q);
}

/* hasp_close(): q goes, its callback not called. */
static void ended_unseen(hasp_request *q)
{
	request_unlink(q);
	request_free(q);
}

static int send_acquire(hasp_request *q);
static void acquire_done(hasp_client *c, struct libhasp_call *k, int err,
			 struct proto_reply *rep);

/* The file at the lease's path was replaced and the new one is a lock of
 * its own: the lease goes, and the request starts again, on the new file,
 * within what is left of its timeout. */
static void start_again(hasp_request *q)
{
	hasp_client *c = q->c;
	int64_t left = 0;
	int r;

	release_lease(q);
	if (q->timeout_end_ms != LIBHASP_NEVER) {
		left = q->timeout_end_ms - libhasp_now_ms();
		q->timeout_ms = left > 0 ? left : 0;
	}
	close(q->fd);
	q->fd = open_lock_file(q->lease->key, O_CREAT);
	r = q->fd < 0 ? libhasp_error(c, q->fd, "cannot open %s: %s", q->lease->key,
				      strerror(-q->fd))
		      : send_acquire(q);
	if (r < 0)
		finish(q, r);
	else
		q->busy = false; /* waiting again */
}

static void request_adopted(hasp_client *c, struct libhasp_call *k, int err, struct proto_reply *rep)
{
	hasp_request *q = k->ctx;
	int r;

	if (err == -ECANCELED) {
		ended_unseen(q);
		return;
	}
	q->busy = true; /* what follows can end the connection, and run callbacks */
	r = err < 0 ? libhasp_lost_error(c) : rep->ok ? 0 : libhasp_reply_error(c, rep);
	if (r == 0) {
		finish(q, 0);
		return;
	}
	if (r == -HASP_E_BUSY && !c->lost) {
		start_again(q);
		return;
	}
	if (!c->lost)
		release_lease(q);
	finish(q, r);
}

/* Whether the lease, granted on q's descriptor, holds the file its path
 * names now; if another file was renamed over it meanwhile, that file is
 * adopted into the lease (or the request starts again). */
static void settle(hasp_request *q)
{
	hasp_client *c = q->c;
	struct stat was, now;
	char path[PATH_MAX];
	int nfd, r;

	if (q->target != LIBHASP_FILE || fstat(q->fd, &was) < 0 || stat(q->lease->key, &now) < 0 ||
	    (was.st_dev == now.st_dev && was.st_ino == now.st_ino)) {
		finish(q, 0); /* the same file, or none at the path: flock's answer */
		return;
	}
	nfd = open_lock_file(q->lease->key, 0);
	if (nfd == -ENOENT) {
		finish(q, 0); /* gone since: the lease stands, as flock's would */
		return;
	}
	if (nfd < 0) {
		r = libhasp_error(c, nfd, "cannot open %s again: %s", q->lease->key, strerror(-nfd));
	} else {
		snprintf(path, sizeof(path), "%s", q->lease->key);
		r = libhasp_send(c, OP_ADOPT, json_pack("{s:I,s:o,s:b}", "lease",
							(json_int_t)q->lease->id, "path",
							proto_string_shown(path, strlen(path)), "fd", 1),
				 nfd, LIBHASP_NEVER, request_adopted, q, &q->call);
		close(nfd);
		q->busy = r < 0; /* waiting again, unless it failed */
	}
	if (r < 0) {
		release_lease(q);
		finish(q, r);
	}
}

/* The lease of a granted acquire's reply, into q's. A reply that does not
 * say what was granted is the daemon's error: the connection goes (and
 * with it a session-bound lease; a checkout stays, for its uid to check
 * in). */
static int read_grant(hasp_request *q, const struct proto_reply *rep)
{
	struct proto_grant g;
	hasp_lease *l = q->lease;

	if (proto_decode_grant(rep, &g) < 0 || (q->a.detach && !g.token))
		return libhasp_drop(q->c, -HASP_E_PROTOCOL, "haspd's grant could not be read (no "
				    "lease id, or a bad or missing token)");
	l->id = g.lease;
	l->fence = g.fence;
	l->mode = q->a.mode;
	l->on_key = q->target == LIBHASP_KEY || q->target == LIBHASP_KEYS;
	l->client = q->c;
	l->ttl_ms = q->a.ttl_ms > 0 ? (g.expires_ms >= 0 ? g.expires_ms : q->a.ttl_ms) : 0;
	snprintf(l->token, sizeof(l->token), "%s", g.token ? g.token : "");
	return 0;
}

static void acquire_done(hasp_client *c, struct libhasp_call *k, int err,
			 struct proto_reply *rep)
{
	hasp_request *q = k->ctx;
	int r;

	if (err == -ECANCELED) {
		ended_unseen(q);
		return;
	}
	q->call = NULL;
	q->busy = true; /* what follows can end the connection, and run callbacks */
	if (err == -ETIMEDOUT) {
		/* Linked before any callback runs: a grant that comes after
		 * all, read in whatever call the callback makes, is given
		 * back. */
		if (libhasp_expect_grant(c, k->id, q->target == LIBHASP_FD ? q->fd : -1,
					 q->a.detach) == 0)
			libhasp_error(c, -HASP_E_TIMEOUT, "haspd did not answer within the timeout");
		finish(q, -HASP_E_TIMEOUT);
		return;
	}
	r = err < 0 ? libhasp_lost_error(c) : rep->ok ? read_grant(q, rep)
						      : libhasp_reply_error(c, rep);
	if (r < 0)
		finish(q, r);
	else
		settle(q);
}

/* The client gives up on the daemon a little after the timeout. */
static int64_t acquire_deadline(const hasp_request *q)
{
	return q->timeout_end_ms == LIBHASP_NEVER ? LIBHASP_NEVER
						  : q->timeout_end_ms + q->c->grace_ms;
}

static int send_acquire(hasp_request *q)
{
	struct proto_members m;
	int r;

	proto_members_init(&m);
	proto_members_add(&m, q->args.text, q->args.len);
	if (q->timeout_ms >= 0)
		proto_members_int(&m, "timeout_ms", q->timeout_ms);
	r = libhasp_send_members(q->c, OP_ACQUIRE, &m, q->target == LIBHASP_KEY ? -1 : q->fd,
				 acquire_deadline(q), acquire_done, q, &q->call);
	proto_members_free(&m);
	return r;
}

/* ---- starting ---- */

/* What the owner and message must be to go in JSON. */
static bool strings_valid(const struct libhasp_acquire *o)
{
	return (!o->owner || proto_utf8_valid(o->owner)) &&
	       (!o->message || proto_utf8_valid(o->message));
}

/* q's name and descriptor: the key; the absolute path and the file opened
 * (created) here; or the caller's descriptor and the path /proc says it
 * has. name is what the lease will show. */
static int target_open(hasp_client *c, hasp_request *q, const char *name, int fd,
		       char path[PATH_MAX], const char **ret_name)
{
	struct stat st;
	int r;

	switch (q->target) {
	case LIBHASP_KEY:
		*ret_name = name;
		return libhasp_check_key(c, name);
	case LIBHASP_KEYS: /* each checked by hasp_lock_keys() */
		*ret_name = name;
		return 0;
	case LIBHASP_FILE:
		*ret_name = libhasp_absolute_path(c, name, path, &r);
		if (!*ret_name)
			return r;
		q->fd = open_lock_file(*ret_name, O_CREAT);
		return q->fd < 0 ? libhasp_error(c, q->fd, "cannot open %s: %s", *ret_name,
						 strerror(-q->fd))
				 : 0;
	case LIBHASP_FD:
		if (fstat(fd, &st) < 0)
			return libhasp_error(c, -errno, "descriptor %d: %s", fd, strerror(errno));
		q->fd = fd;
		if (libhasp_fd_path(fd, path, PATH_MAX) < 0)
			snprintf(path, PATH_MAX, "/proc/%d/fd/%d", (int)getpid(), fd);
		*ret_name = path;
		return 0;
	}
	return -EINVAL;
}

/* A request set up to be sent, or NULL with c's error in *ret_err. */
static hasp_request *request_new(hasp_client *c, enum libhasp_target t, const char *name,
				 int fd, const struct libhasp_acquire *a, int *ret_err)
{
	hasp_request *q = calloc(1, sizeof(*q));
	char path[PATH_MAX];
	size_t len;
	int r;

	if (!q) {
		*ret_err = libhasp_error(c, -ENOMEM, "out of memory");
		return NULL;
	}
	*q = (struct hasp_request){ .c = c, .a = *a, .target = t, .fd = -1,
				    .timeout_ms = a->timeout_ms };
	proto_members_init(&q->args);
	r = strings_valid(a) ? target_open(c, q, name, fd, path, &name)
			     : libhasp_error(c, -EINVAL, "the owner and message must be UTF-8");
	if (r >= 0) {
		len = strlen(name);
		/* Before the request: no grant can find the client without
		 * memory for its lease. */
		q->lease = malloc(sizeof(*q->lease) + len + 1);
		if (q->lease)
			lock_args(&q->args, q->target == LIBHASP_KEY ? "key" : "path", name,
				  q->target, a);
		r = q->lease && !q->args.nomem ? 0 : libhasp_error(c, -ENOMEM, "out of memory");
	}
	if (r < 0) {
		request_free(q);
		*ret_err = r;
		return NULL;
	}
	memcpy(q->lease->key, name, len + 1);
	q->a.owner = q->a.message = q->a.keys_json = NULL;
	return q;
}

int libhasp_start(hasp_client *c, enum libhasp_target t, const char *name, int fd,
		  const struct libhasp_acquire *a, hasp_lock_callback cb, void *userdata,
		  hasp_request **ret_req)
{
	int64_t now = libhasp_now_ms();
	hasp_request *q;
	int r;

	c->errmsg[0] = '\0';
	libhasp_conflict_clear(c);
	q = request_new(c, t, name, fd, a, &r);
	if (!q)
		return r;
	q->cb = cb;
	q->userdata = userdata;
	q->timeout_end_ms = libhasp_after(now, a->timeout_ms);
	if (a->waiting)
		q->notice_ms = libhasp_after(now, a->waiting_after_ms > 0 ? a->waiting_after_ms : 0);
	else
		q->notice_ms = LIBHASP_NEVER;
	request_link(c, q);
	r = send_acquire(q); /* queued: nothing can end q meanwhile */
	if (r < 0) {
		request_unlink(q);
		request_free(q);
		return r;
	}
	if (ret_req)
		*ret_req = q;
	return 0;
}

HASP_EXPORT int hasp_request_cancel(hasp_request *q)
{
	hasp_client *c = q->c;

	if (q->finishing)
		return 0; /* from its own callback: it ends as it returns */
	if (q->busy) {
		q->cancelled = true; /* its end is on the way: nobody is told */
		return 0;
	}
	if (q->call && q->call->done == acquire_done) {
		struct proto_members m;

		proto_members_init(&m);
		proto_members_int(&m, "request", q->call->id);
		/* A grant that crossed the cancel is given back. */
		libhasp_call_forget(c, q->call, true, q->target == LIBHASP_FD ? q->fd : -1,
				    q->a.detach);
		libhasp_send_members(c, OP_CANCEL, &m, -1, LIBHASP_NEVER, NULL, NULL, NULL);
		proto_members_free(&m);
	} else if (q->call) {
		/* An adopt: the lease is granted already. */
		libhasp_call_forget(c, q->call, false, -1, false);
		release_lease(q);
	}
	request_unlink(q);
	request_free(q);
	/* Out now if the socket takes it: a waiter left in the daemon's
	 * queue could be granted, and hold the lock, until the client next
	 * runs. */
	libhasp_write(c);
	return 0;
}

/* ---- waiting notices ---- */

int64_t libhasp_requests_next_notice(const hasp_client *c)
{
	int64_t next = LIBHASP_NEVER;

	for (const hasp_request *q = c->requests; q; q = q->next)
		if (q->notice_ms < next)
			next = q->notice_ms;
	return next;
}

void libhasp_requests_notify(hasp_client *c, int64_t now)
{
	hasp_request *q;

	do {
		for (q = c->requests; q && q->notice_ms > now; q = q->next)
			;
		if (q) {
			q->notice_ms = LIBHASP_NEVER;
			q->a.waiting(q->a.userdata);
		}
	} while (q);
}

void libhasp_requests_free(hasp_client *c)
{
	while (c->requests) {
		hasp_request *q = c->requests;

		request_unlink(q);
		request_free(q);
	}
}

/* ---- blocking ---- */

struct outcome {
	bool finished;
	int r;
	hasp_lease *lease;
};

static void keep_outcome(hasp_client *c, hasp_request *q, int r, hasp_lease *lease, void *u)
{
	struct outcome *o = u;

	(void)c, (void)q;
	o->finished = true;
	o->r = r;
	o->lease = lease;
}

int libhasp_acquire(hasp_client *c, enum libhasp_target t, const char *name, int fd,
		    const struct libhasp_acquire *a, hasp_lease **ret_lease)
{
	struct outcome o = { .finished = false };
	hasp_request *q;
	int r = libhasp_start(c, t, name, fd, a, keep_outcome, &o, &q);

	if (r < 0)
		return r;
	r = libhasp_wait(c, &o.finished);
	if (!o.finished) {
		hasp_request_cancel(q);
		return r;
	}
	if (o.r < 0)
		return o.r;
	*ret_lease = o.lease;
	return 0;
}

HASP_EXPORT int hasp_lock_async(hasp_client *c, const char *key,
				const struct hasp_acquire_options *opts, hasp_lock_callback cb,
				void *userdata, hasp_request **ret_req)
{
	struct libhasp_acquire a;
	int r = libhasp_acquire_options(c, opts, false, &a);

	return r < 0 ? r : libhasp_start(c, LIBHASP_KEY, key ? key : "", -1, &a, cb, userdata,
					 ret_req);
}

HASP_EXPORT int hasp_lock_file_async(hasp_client *c, const char *path,
				     const struct hasp_acquire_options *opts,
				     hasp_lock_callback cb, void *userdata, hasp_request **ret_req)
{
	struct libhasp_acquire a;
	int r = libhasp_acquire_options(c, opts, false, &a);

	return r < 0 ? r : libhasp_start(c, LIBHASP_FILE, path, -1, &a, cb, userdata, ret_req);
}
