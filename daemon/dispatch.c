#include "dispatch.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buildconf.h"
#include "adopt.h"
#include "changes.h"
#include "checkouts.h"
#include "cluster/cluster.h"
#include "events.h"
#include "fdlocks.h"
#include "files.h"
#include "haspd.h"
#include "oslock.h"
#include "log.h"
#include "proto-daemon.h"
#include "reply.h"
#include "report.h"
#include "revoke.h"
#include "session.h"
#include "tries.h"

/* Copies the client's name (valid UTF-8) as the session's label, cut to
 * fit at a character's start, so that list can always show it. */
static void set_client_name(struct session *s, const char *name)
{
	char *label = s->owner.label;
	size_t n = strlen(name);

	if (n >= sizeof(s->owner.label)) {
		n = sizeof(s->owner.label) - 1;
		while (n > 0 && ((unsigned char)name[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(label, name, n);
	label[n] = '\0';
}

static void do_hello(struct session *s, const struct proto_request *req)
{
	if (req->hello.client)
		set_client_name(s, req->hello.client);
	reply_ok(s, req->id, json_pack("{s:s,s:i,s:I}", "server", "haspd " HASP_VERSION_STRING,
				       "version", PROTO_VERSION, "session", (json_int_t)s->id));
}

/* The fd form's resource, as files_resource() gives it, and the session
 * keeps a descriptor of the client's description, on which the flock goes
 * at the grant. *ahead: that description holds the flock already (it is
 * re-taken or converted at once, as flock(2) does). */
static struct lt_resource *fd_form_resource(struct session *s, const char *path, int fd,
					    bool *ahead, int *code, char *msg, size_t n)
{
	struct lt_resource *r;
	int keep;

	/* The copy is one more open file: charged before the file's own. */
	if (!files_may_open(s, msg, n)) {
		close(fd);
		*code = HASP_E_LIMIT;
		return NULL;
	}
	keep = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (keep < 0) {
		close(fd);
		*code = HASP_E_LIMIT;
		snprintf(msg, n, "haspd is out of descriptors");
		return NULL;
	}
	users_charge_file(&s->d->users, s->user);
	r = files_resource(s, path, fd, code, msg, n);
	*ahead = r && oslock_fd_holds(keep);
	switch (r ? fdlocks_add(s, r, keep) : -ENOENT) {
	case 0:
		return r;
	case -EEXIST:
		*code = HASP_E_ALREADY_HELD;
		snprintf(msg, n, "this session already holds or waits for this lock");
		break;
	case -ENOMEM:
		locktable_put_unused(&s->d->lt, r);
		*code = HASP_E_INTERNAL;
		snprintf(msg, n, "out of memory");
		break;
	}
	users_refund_file(&s->d->users, s->user);
	if (!r)
		close(keep);
	return NULL;
}

/* Points lr at the file a request names (its key copied to key, which
 * outlives the resource); false when an error was sent. */
static bool acquire_file(struct session *s, const struct proto_request *req,
			 struct lt_request *lr, char *key)
{
	struct lt_resource *r = NULL;
	char msg[1200];
	int code, fd = req->acquire.fd ? files_take_fd(s, &code, msg, sizeof(msg)) : -1;

	if (req->acquire.lock_fd && fd >= 0)
		r = fd_form_resource(s, req->acquire.path, fd, &lr->ahead, &code, msg, sizeof(msg));
	else if (!req->acquire.fd || fd >= 0)
		r = files_resource(s, req->acquire.path, fd, &code, msg, sizeof(msg));
	if (!r) {
		reply_error(s, true, req->id, code, msg, NULL);
		return false;
	}
	memcpy(key, r->key, r->key_len);
	lr->key = key;
	lr->key_len = r->key_len;
	return true;
}

/* A session, and a uid over all its sessions, may hold or wait for so many
 * locks (each key of a multi-key acquire is one); true when an error was
 * sent. */
static bool over_lock_limits(struct session *s, const struct proto_request *req)
{
	const struct config *cfg = &s->d->cfg;
	size_t more = req->acquire.keys ? req->acquire.nkeys : 1;
	char msg[160];

	if (s->owner.nheld + s->owner.nwaiting + s->ncluster + more > cfg->max_session_locks)
		snprintf(msg, sizeof(msg), "this session holds or waits for %zu locks, the limit "
			 "(max_session_locks)", cfg->max_session_locks);
	else if (s->user->limited && s->user->group.entries + more > cfg->max_user_locks)
		snprintf(msg, sizeof(msg), "uid %u holds or waits for %zu locks over its sessions, "
			 "the limit (max_user_locks)", (unsigned)s->user->uid, cfg->max_user_locks);
	else
		return false;
	reply_error(s, true, req->id, HASP_E_LIMIT, msg, NULL);
	return true;
}

_Static_assert(PROTO_SEMAPHORE_MAX <= LT_LIMIT_MAX, "the table takes every limit the wire does");

/* A request whose limit is not its key's: bad_request, naming the key's. */
static void reply_bad_limit(struct session *s, int64_t id, const struct lt_resource *r)
{
	char msg[LT_KEY_MAX + 160];

	if (r->limit)
		snprintf(msg, sizeof(msg), "key '%s' is a semaphore with limit %u: every request on "
			 "it must give \"limit\": %u", r->key, (unsigned)r->limit, (unsigned)r->limit);
	else
		snprintf(msg, sizeof(msg), "key '%s' is not a semaphore: a request on it may not give "
			 "\"limit\" while it is held or waited for", r->key);
	reply_error(s, true, id, HASP_E_BAD_REQUEST, msg, NULL);
}

/* The parts of a multi-key acquire, as the table takes them. */
static void acquire_keys_parts(const struct proto_request *req, struct lt_part *parts)
{
	struct proto_key k;

	for (size_t i = 0; i < req->acquire.nkeys; i++) {
		proto_acquire_key(req, i, &k);
		parts[i] = (struct lt_part){ k.key, k.key_len, k.shared ? LT_SHARED : LT_EXCLUSIVE };
	}
}

/* The first of the parts' resources that a request in its mode would wait
 * for (a semaphore: one with a limit), or NULL. */
static struct lt_resource *acquire_keys_blocked(const struct locktable *lt,
						const struct lt_part *parts, size_t n,
						bool semaphore)
{
	for (size_t i = 0; i < n; i++) {
		struct lt_resource *r = locktable_find(lt, parts[i].key, parts[i].key_len);

		if (r && (semaphore ? r->limit != 0 :
			  locktable_would_wait(lt, parts[i].key, parts[i].key_len, parts[i].mode, 0)))
			return r;
	}
	return NULL;
}

/* A multi-key acquire ("keys"): one lease over all its keys. */
static void do_acquire_keys(struct session *s, const struct proto_request *req)
{
	struct locktable *lt = &s->d->lt;
	struct lt_part parts[LT_MULTI_MAX];
	struct lt_request lr = {
		.timeout_ms = req->acquire.timeout_ms,
		.tag = req->id,
		.owner_name = req->acquire.owner,
		.message = req->acquire.message,
		.sender = &s->sender,
	};
	size_t n = req->acquire.nkeys;
	struct lt_entry *e;

	_Static_assert(PROTO_KEYS_MAX <= LT_MULTI_MAX, "the table takes every multi-key acquire");
	acquire_keys_parts(req, parts);
	for (size_t i = 0; i < n; i++) {
		if (cluster_key(s->d, parts[i].key, parts[i].key_len)) {
			reply_error(s, true, req->id, HASP_E_BAD_REQUEST, "a multi-key acquire cannot "
				    "name a cluster key in this version", NULL);
			return;
		}
	}
	if (req->acquire.timeout_ms == 0 && acquire_keys_blocked(lt, parts, n, false) &&
	    tries_defer(s))
		return; /* handed up again after one turn of the loop */
	switch (locktable_acquire_multi(lt, &s->owner, &lr, parts, n, &e)) {
	case LT_GRANTED:
		events_granted(s->d, e);
		reply_grant(s, e);
		break;
	case LT_QUEUED:
		events_queued(s->d, e);
		break;
	case LT_BUSY:
		reply_conflict(s, req->id, HASP_E_BUSY, "busy",
			       acquire_keys_blocked(lt, parts, n, false), parts[0].key);
		break;
	case LT_ALREADY_HELD:
		reply_error(s, true, req->id, HASP_E_ALREADY_HELD,
			    "this session already holds or waits for one of these locks", NULL);
		break;
	case LT_DEADLOCK:
		events_deadlock(s->d, s, &lr);
		reply_deadlock(s, req->id, &lr);
		break;
	case LT_BAD_LIMIT:
		reply_bad_limit(s, req->id, acquire_keys_blocked(lt, parts, n, true));
		break;
	default:
		reply_error(s, true, req->id, HASP_E_INTERNAL, "out of memory", NULL);
		break;
	}
}

static void do_acquire(struct session *s, const struct proto_request *req)
{
	struct locktable *lt = &s->d->lt;
	struct lt_request lr = {
		.key = req->acquire.key,
		.key_len = req->acquire.key_len,
		.mode = req->acquire.shared ? LT_SHARED : LT_EXCLUSIVE,
		.timeout_ms = req->acquire.timeout_ms,
		.tag = req->id,
		.owner_name = req->acquire.owner,
		.message = req->acquire.message,
		.sender = &s->sender,
		.ttl_ms = req->acquire.ttl_ms,
		.detach = req->acquire.detach,
		.limit = (uint32_t)req->acquire.limit,
	};
	char filekey[OSLOCK_KEY_LEN];
	const struct lt_resource *fdres;
	enum lt_result result;
	struct lt_entry *e;

	if (over_lock_limits(s, req))
		return;
	if (req->acquire.key && cluster_key(s->d, req->acquire.key, req->acquire.key_len)) {
		cluster_acquire(s, req);
		return;
	}
	if (req->acquire.detach && !checkouts_admit(s, req))
		return;
	if (req->acquire.keys) {
		do_acquire_keys(s, req);
		return;
	}
	if (req->acquire.timeout_ms == 0 && !req->acquire.path &&
	    locktable_would_wait(lt, lr.key, lr.key_len, lr.mode, lr.limit) && tries_defer(s))
		return; /* handed up again after one turn of the loop */
	if (req->acquire.path && !acquire_file(s, req, &lr, filekey))
		return;
	/* The fd form's descriptor stays only with a request that waits. */
	fdres = req->acquire.lock_fd ? locktable_find(lt, lr.key, lr.key_len) : NULL;
	result = locktable_acquire(lt, &s->owner, &lr, &e);
	if (fdres && result != LT_QUEUED && result != LT_HANDED_OVER)
		fdlocks_drop(s, fdres);
	switch (result) {
	case LT_GRANTED:
		events_granted(s->d, e);
		if (req->acquire.detach)
			checkouts_granted(s->d, e);
		else
			reply_grant(s, e);
		break;
	case LT_HANDED_OVER: /* answered by its record */
		break;
	case LT_QUEUED:
		events_queued(s->d, e);
		break;
	case LT_BUSY:
		reply_conflict(s, req->id, HASP_E_BUSY, "busy",
			       locktable_find(lt, lr.key, lr.key_len), req->acquire.path);
		break;
	case LT_ALREADY_HELD:
		reply_error(s, true, req->id, HASP_E_ALREADY_HELD,
			    "this session already holds or waits for this lock", NULL);
		break;
	case LT_DEADLOCK:
		events_deadlock(s->d, s, &lr);
		reply_deadlock(s, req->id, &lr);
		break;
	case LT_BAD_LIMIT:
		reply_bad_limit(s, req->id, locktable_find(lt, lr.key, lr.key_len));
		break;
	default:
		reply_error(s, true, req->id, HASP_E_INTERNAL, "out of memory", NULL);
		break;
	}
}

/* A release of the session's own lease by its id is the common case;
 * the others (a checkout, a token, a key or a path) are checkouts.c's. */
static void do_release(struct session *s, const struct proto_request *req)
{
	const struct proto_target *t = &req->release;
	struct lt_entry *e = t->lease && !t->has_token ? locktable_lease(&s->d->lt, t->lease) : NULL;

	if (cluster_release(s, req) || cluster_checkin(s, req))
		return;
	if (e && e->owner == &s->owner) {
		events_ended(s->d, e, EVENT_BY_RELEASE, NULL);
		locktable_end(&s->d->lt, e);
		reply_ok_empty(s, req->id);
	} else {
		checkouts_release(s, req);
	}
}

/* s's waiting request with this tag (the one cancel would end), or NULL. */
static const struct lt_entry *waiting_request(const struct session *s, int64_t tag)
{
	const struct list *pos;

	list_foreach(pos, &s->owner.waiting) {
		const struct lt_entry *e = container_of(pos, struct lt_entry, onode);

		if (e->tag == tag)
			return e;
	}
	return NULL;
}

static void do_cancel(struct session *s, const struct proto_request *req)
{
	int64_t target = req->cancel.request;
	const struct lt_entry *e = waiting_request(s, target);
	char msg[96];

	if (!e && cluster_cancel(s, req))
		return;
	if (e) {
		events_stopped(s->d, e, EVENT_CANCELLED, EVENT_BY_CANCEL);
		fdlocks_drop(s, e->res);
	}
	if (locktable_cancel(&s->d->lt, &s->owner, target) == LT_OK) {
		snprintf(msg, sizeof(msg), "cancelled by request %" PRId64, req->id);
		reply_error(s, true, target, HASP_E_CANCELLED, msg, NULL);
		reply_ok_empty(s, req->id);
		return;
	}
	snprintf(msg, sizeof(msg), "no waiting request %" PRId64 " in this session", target);
	reply_error(s, true, req->id, HASP_E_UNKNOWN_REQUEST, msg, NULL);
}

/* ---- convert (issue 17) ---- */

/* A convert's deadlock: the refused wait is the lease's upgrade. */
static void reply_convert_deadlock(struct session *s, int64_t id, const struct lt_entry *e)
{
	const struct lt_request lr = {
		.key = e->res->key, .key_len = e->res->key_len, .mode = LT_EXCLUSIVE, .tag = id,
		.owner_name = lt_entry_owner_name(e), .message = lt_entry_message(e),
		.sender = &s->sender,
	};

	events_deadlock(s->d, s, &lr);
	reply_deadlock(s, id, &lr);
}

/* Not a lease of this session: a checkout's (bad_request: it has no
 * session to wait in), or none it holds (unknown_lease). */
static void reply_convert_unknown(struct session *s, int64_t id, uint64_t lease)
{
	const struct lt_entry *e = locktable_lease(&s->d->lt, lease);
	char msg[96];

	if (cluster_session_lease(s, lease)) {
		reply_error(s, true, id, HASP_E_BAD_REQUEST, "a lease on a cluster key cannot be "
			    "converted in this version: release it and acquire it again", NULL);
		return;
	}
	if (e && lt_entry_detached(e)) {
		reply_error(s, true, id, HASP_E_BAD_REQUEST, "a checkout (a detached lease) cannot be "
			    "converted: release it and check it out again", NULL);
		return;
	}
	snprintf(msg, sizeof(msg), "no lease %" PRIu64 " in this session", lease);
	reply_error(s, true, id, HASP_E_UNKNOWN_LEASE, msg, NULL);
}

static void reply_converted(struct session *s, int64_t id, const struct lt_entry *e)
{
	char buf[PROTO_SMALL_REPLY];

	session_write(s, buf, proto_fmt_grant(buf, id, e->id, e->fence, e->mode == LT_SHARED));
}

static void do_convert(struct session *s, const struct proto_request *req)
{
	struct locktable *lt = &s->d->lt;
	const struct lt_entry *lease = locktable_lease(lt, req->convert.lease);
	struct lt_entry *e = NULL;
	enum lt_result result;

	result = locktable_convert(lt, &s->owner, req->convert.lease,
				   req->convert.shared ? LT_SHARED : LT_EXCLUSIVE,
				   req->convert.timeout_ms, req->id, &e);
	switch (result) {
	case LT_GRANTED:
		events_converted(s->d, e, 0);
		reply_converted(s, req->id, e);
		break;
	case LT_OK:
		reply_converted(s, req->id, e);
		break;
	case LT_QUEUED: /* answered by its record */
		break;
	case LT_BUSY:
		reply_conflict(s, req->id, HASP_E_BUSY, "busy", lease->res, NULL);
		break;
	case LT_DEADLOCK:
		reply_convert_deadlock(s, req->id, lease);
		break;
	case LT_UNKNOWN_LEASE:
		reply_convert_unknown(s, req->id, req->convert.lease);
		break;
	case LT_BAD_LIMIT:
		reply_error(s, true, req->id, HASP_E_BAD_REQUEST, lease->multi ?
			    "a multi-key lease cannot be converted: its keys have a mode each" :
			    "a semaphore's lease has no shared mode: it cannot be converted", NULL);
		break;
	case LT_ALREADY_HELD:
		reply_error(s, true, req->id, HASP_E_ALREADY_HELD, "an upgrade of this lease waits "
			    "already", NULL);
		break;
	default:
		reply_error(s, true, req->id, HASP_E_INTERNAL, "out of memory", NULL);
		break;
	}
}

static void do_stats(struct session *s, const struct proto_request *req)
{
	json_t *st = report_stats(s->d);

	if (st && s->d->cluster &&
	    json_object_set_new(json_object_get(st, "stats"), "cluster", cluster_stats(s->d)) < 0) {
		json_decref(st);
		st = NULL;
	}
	reply_ok(s, req->id, st);
}

static void dispatch_request(struct session *s, const struct proto_request *req)
{
	switch (req->op) {
	case OP_HELLO:
		do_hello(s, req);
		break;
	case OP_ACQUIRE:
		do_acquire(s, req);
		break;
	case OP_RELEASE:
		do_release(s, req);
		break;
	case OP_CANCEL:
		do_cancel(s, req);
		break;
	case OP_LIST:
		if (!cluster_list(s, req))
			reply_ok(s, req->id, report_list(s->d, &req->list));
		break;
	case OP_STATS:
		do_stats(s, req);
		break;
	case OP_REVOKE:
		revoke_request(s, req);
		break;
	case OP_ADOPT:
		adopt_request(s, req);
		break;
	case OP_RENEW:
		if (!cluster_renew(s, req))
			checkouts_renew(s, req);
		break;
	case OP_CONVERT:
		do_convert(s, req);
		break;
	case OP_WATCH:
		watch_request(s, req);
		break;
	case OP_PING:
	case OP__COUNT:
		reply_ok_empty(s, req->id);
		break;
	}
}

static bool blank(const char *line, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
			return false;
	return true;
}

void dispatch_line(struct session *s, const char *line, size_t len)
{
	struct proto_request req;
	struct proto_error err;
	struct proto_doc doc;
	int r;

	if (blank(line, len))
		return;
	r = proto_decode_request(line, len, &req, &doc, &err);
	if (r == -ENOMEM) {
		/* Perhaps a valid request, but with no id to answer it by. */
		session_break(s);
		return;
	}
	if (r < 0) {
		s->d->protocol_errors++;
		/* The first one of a session is worth knowing; a flood is not. */
		session_log(s, s->protocol_errors ? LOG_DEBUG : LOG_INFO,
			    "session %" PRIu64 " (pid %d uid %u): protocol error: %s%s", s->id,
			    (int)s->owner.pid, (unsigned)s->owner.uid, err.message,
			    s->protocol_errors ? "" : " (later ones are logged at debug level)");
		s->protocol_errors++;
		reply_error(s, req.has_id, req.id, err.code, err.message, NULL);
		return;
	}
	if (session_line_mixed(s))
		reply_error(s, true, req.id, HASP_E_BAD_REQUEST, "the request line came from two "
			    "processes: each must send its own lines whole", NULL);
	else
		dispatch_request(s, &req);
	s->try_final = false;
	changes_apply(s->d, NULL);
	proto_doc_done(&doc);
}

/* A warning a second at most: a client retrying in a loop must not flood
 * the log. */
static void log_refusal(const struct session *s, const char *why)
{
	struct haspd *d = s->d;
	uint64_t now = d->lt.now_us;

	if (d->refusals_logged_us && now - d->refusals_logged_us < 1000000) {
		d->refusals_unlogged++;
		return;
	}
	if (d->refusals_unlogged)
		log_warn("refusing a connection from pid %d: %s (and %" PRIu64 " more, unlogged, "
			 "since the last such warning)", (int)s->owner.pid, why, d->refusals_unlogged);
	else
		log_warn("refusing a connection from pid %d: %s", (int)s->owner.pid, why);
	d->refusals_logged_us = now;
	d->refusals_unlogged = 0;
}

void dispatch_refuse(struct session *s, const char *why)
{
	char msg[256];

	log_refusal(s, why);
	snprintf(msg, sizeof(msg), "haspd cannot serve another session: %s; try later", why);
	reply_error(s, false, 0, HASP_E_LIMIT, msg, NULL);
	session_close_after_flush(s);
}

void dispatch_too_large(struct session *s)
{
	char msg[96];

	s->d->protocol_errors++;
	session_log(s, LOG_INFO, "session %" PRIu64 " (pid %d) sent a line over %zu bytes; "
		    "closing it", s->id, (int)s->owner.pid, s->d->cfg.max_line_bytes);
	snprintf(msg, sizeof(msg), "request line longer than %zu bytes", s->d->cfg.max_line_bytes);
	reply_error(s, false, 0, HASP_E_TOO_LARGE, msg, NULL);
	session_close_after_flush(s);
}
