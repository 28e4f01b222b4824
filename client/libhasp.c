/* libhasp's blocking calls, on the core (core.c, call.c, request.c), and
 * the client's and leases' accessors. Checkouts and TTLs are in
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
	libhasp_conflict_clear(c); /* holders are a conflict's, set after this */
	return err;
}

/* $HASP_GRACE_MS when it is a count of ms up to an hour, else the
 * default. */
static int64_t grace_ms(void)
{
	const char *env = getenv("HASP_GRACE_MS");
	char *end;
	long v;

	if (!env || !*env)
		return LIBHASP_GRACE_MS;
	errno = 0;
	v = strtol(env, &end, 10);
	return *end || errno || v < 0 || v > 3600000 ? LIBHASP_GRACE_MS : v;
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
	c->grace_ms = grace_ms();
	c->out_tail = &c->out;
	*ret_client = c;
	return 0;
}

/* How long hasp_close() gives haspd to take the end of checkouts. */
#define CLOSE_WAIT_MS 1000

/* Before the connection goes: requests are withdrawn (grants that cross
 * the cancel given back), no callback runs again, and what ends a
 * checkout (its release, an unwanted checkout's grant to give back) is
 * given a while to go through: a session-bound lease ends with the
 * session, a checkout does not. */
static void settle_checkouts(hasp_client *c)
{
	int64_t end = libhasp_now_ms() + CLOSE_WAIT_MS;

	while (c->requests)
		hasp_request_cancel(c->requests);
	libhasp_calls_cancel(c);
	c->on_event = NULL;
	c->on_watch = NULL; /* no watch event either while it closes */
	libhasp_flush(c);
	while (!c->lost && libhasp_awaits_checkouts(c)) {
		struct pollfd p = { .fd = c->fd, .events = (short)hasp_client_get_events(c) };
		int64_t left = end - libhasp_now_ms();

		if (left <= 0 || (poll(&p, 1, (int)left) < 0 && errno != EINTR))
			break;
		hasp_client_process(c);
	}
}

HASP_EXPORT hasp_client *hasp_close(hasp_client *c)
{
	if (!c)
		return NULL;
	if (c->fd >= 0) {
		settle_checkouts(c);
		close(c->fd);
	}
	libhasp_requests_free(c);
	libhasp_conflict_clear(c);
	libhasp_calls_free(c);
	while (c->out) {
		struct libhasp_out *o = c->out;

		c->out = o->next;
		if (o->fd >= 0)
			close(o->fd);
		free(o);
	}
	frame_buf_done(&c->rb);
	free(c->lost_leases);
	free(c->name);
	free(c->server);
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

/* hasp_lock_options as an acquire; NULL for the defaults. */
struct libhasp_acquire libhasp_lock_acquire(const struct hasp_lock_options *o)
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

HASP_EXPORT int hasp_lock(hasp_client *c, const char *key, const struct hasp_lock_options *opts,
			  hasp_lease **ret_lease)
{
	struct libhasp_acquire a = libhasp_lock_acquire(opts);

	return libhasp_acquire(c, LIBHASP_KEY, key ? key : "", -1, &a, ret_lease);
}

HASP_EXPORT int hasp_lock_file(hasp_client *c, const char *path,
			       const struct hasp_lock_options *opts, hasp_lease **ret_lease)
{
	struct libhasp_acquire a = libhasp_lock_acquire(opts);

	return libhasp_acquire(c, LIBHASP_FILE, path, -1, &a, ret_lease);
}

HASP_EXPORT int hasp_lock_fd(hasp_client *c, int fd, const struct hasp_lock_options *opts,
			     hasp_lease **ret_lease)
{
	struct libhasp_acquire a = libhasp_lock_acquire(opts);

	return libhasp_acquire(c, LIBHASP_FD, NULL, fd, &a, ret_lease);
}

int libhasp_fd_path(int fd, char *buf, size_t size)
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

HASP_EXPORT int hasp_lease_adopt(hasp_client *c, const hasp_lease *l, int fd)
{
	char path[PATH_MAX];
	struct proto_reply rep;
	json_t *args;
	int r;

	if (libhasp_fd_path(fd, path, sizeof(path)) < 0)
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

/* A release whose answer is awaited: a checkout's, which outlives the
 * process, so that the caller must know that it ended; a file's, whose
 * flock(2) programs outside hasp see, so that it is unlocked when the call
 * returns, as flock(2)'s LOCK_UN is. */
static int unlock_awaited(hasp_client *c, hasp_lease *l)
{
	struct proto_reply rep;
	int r = libhasp_call(c, OP_RELEASE, json_pack("{s:I,s:s*}", "lease", (json_int_t)l->id,
						      "token", *l->token ? l->token : NULL),
			     -1, &rep);

	if (r >= 0)
		proto_reply_done(&rep);
	return r;
}

/* How haspd said a lease ended, for a message. */
static const char *loss_name(enum libhasp_loss how)
{
	switch (how) {
	case LIBHASP_REVOKED: return "revoked by haspd";
	case LIBHASP_EXPIRED: return "expired by haspd";
	case LIBHASP_LOST: return "lost by haspd (it could not keep its cluster lease in etcd)";
	}
	return "ended by haspd";
}

/* A session-bound key's release is written and not waited for: its
 * answer can only be ok, or that the lease had ended already (revoked,
 * expired: told by an event), and haspd ends it before it reads anything
 * else from this connection. The answer is read, and dropped, with the
 * next. An end that haspd had told already (read first, as
 * hasp_lease_revoked() reads it) is the caller's error, and so is the
 * connection's end. */
static int unlock_session(hasp_client *c, hasp_lease *l)
{
	struct proto_members m;
	int r;

	c->errmsg[0] = '\0';
	if (c->fd >= 0)
		libhasp_drain(c);
	for (size_t i = 0; i < c->nlost; i++)
		if (c->lost_leases[i].lease == l->id)
			return libhasp_error(c, -HASP_E_UNKNOWN_LEASE, "lease %llu was %s",
					     (unsigned long long)l->id,
					     loss_name(c->lost_leases[i].how));
	if (c->lost)
		return libhasp_lost_error(c);
	libhasp_members_release(&m, l->id, NULL);
	r = libhasp_send_members(c, OP_RELEASE, &m, -1, LIBHASP_NEVER, NULL, NULL, NULL);
	proto_members_free(&m);
	/* Without memory for it, the lease would stay with its handle gone,
	 * never to be released: the session goes, and the lease with it. */
	if (r == -ENOMEM)
		return libhasp_drop(c, -ENOMEM, "out of memory to release a lease");
	return r < 0 ? r : libhasp_written(c);
}

HASP_EXPORT int hasp_unlock(hasp_client *c, hasp_lease *l)
{
	/* Through another client, haspd's answer (unknown_lease) is the
	 * caller's: it is awaited. */
	int r = *l->token || !l->on_key || l->client != c ? unlock_awaited(c, l)
							   : unlock_session(c, l);

	hasp_lease_free(l);
	return r;
}

/* Where an unlock's answer goes. */
struct unlock_cb {
	hasp_done_callback cb;
	void *userdata;
};

static void unlock_done(hasp_client *c, struct libhasp_call *k, int err, struct proto_reply *rep)
{
	struct unlock_cb *u = k->ctx;
	int r;

	if (err != -ECANCELED) {
		r = err < 0 ? libhasp_lost_error(c) : rep->ok ? 0 : libhasp_reply_error(c, rep);
		u->cb(c, r, u->userdata);
	}
	free(u);
}

HASP_EXPORT int hasp_unlock_async(hasp_client *c, hasp_lease *l, hasp_done_callback cb,
				  void *userdata)
{
	struct unlock_cb *u = cb ? malloc(sizeof(*u)) : NULL;
	struct proto_members m;
	struct libhasp_call *k;
	int r;

	if (cb && !u) {
		hasp_lease_free(l);
		return libhasp_error(c, -ENOMEM, "out of memory");
	}
	if (u)
		*u = (struct unlock_cb){ cb, userdata };
	libhasp_members_release(&m, l->id, l->token);
	r = libhasp_send_members(c, OP_RELEASE, &m, -1, LIBHASP_NEVER, u ? unlock_done : NULL, u,
				 &k);
	proto_members_free(&m);
	if (r < 0)
		free(u);
	else
		k->matters = *l->token; /* a checkout's end: awaited at hasp_close() */
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

HASP_EXPORT int hasp_lease_revoked(hasp_client *c, const hasp_lease *l)
{
	int r = libhasp_drain(c);

	/* A revoke, expiry or loss that came before the end is the more
	 * precise answer. */
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
		"waiting would close a deadlock",
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
