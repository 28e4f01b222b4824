/* Cluster mode's face to the driver: which keys are the cluster's, and the
 * requests on them, handed to their lock (cluster-lock.c). */
#include "cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "cluster-int.h"
#include "files.h"
#include "haspd.h"
#include "log.h"
#include "proto-daemon.h"
#include "reply.h"
#include "session.h"

int cluster_start(struct haspd *d)
{
	struct endpoint eps[ENDPOINTS_MAX];
	const struct config *cfg = &d->cfg;
	struct timeval tick = { 0, CL_TICK_MS * 1000 };
	struct cluster *c;
	int n;

	if (!cfg->cluster_endpoints[0])
		return 0;
	n = endpoints_parse(cfg->cluster_endpoints, eps, ENDPOINTS_MAX);
	c = n > 0 ? calloc(1, sizeof(*c)) : NULL;
	if (!c) {
		errno = n > 0 ? ENOMEM : EINVAL;
		return -1;
	}
	d->cluster = c;
	c->d = d;
	c->ttl_s = cfg->cluster_ttl;
	c->prefix_len = strlen(cfg->cluster_prefix);
	memcpy(c->prefix, cfg->cluster_prefix, c->prefix_len + 1);
	if (cfg->cluster_host[0])
		snprintf(c->host, sizeof(c->host), "%s", cfg->cluster_host);
	else if (gethostname(c->host, sizeof(c->host) - 1) < 0)
		snprintf(c->host, sizeof(c->host), "unknown");
	list_init(&c->locks);
	list_init(&c->parked);
	c->etcd = etcd_new(&d->loop, eps, (size_t)n, c->ttl_s);
	c->tick = c->etcd ? loop_event_new(&d->loop, -1, EV_PERSIST, cl_lease_tick, c) : NULL;
	if (!c->tick || loop_event_add(c->tick, &tick) < 0) {
		errno = ENOMEM;
		return -1;
	}
	cl_lease_want(c);
	return 0;
}

static void on_stop_revoked(void *arg, json_t *reply, const char *error)
{
	struct cluster *c = arg;

	(void)reply;
	if (error)
		log_warn("cluster: could not revoke haspd's etcd lease (%s): its locks last until "
			 "its TTL", error);
	event_base_loopbreak(c->d->base);
}

void cluster_stop(struct haspd *d)
{
	struct cluster *c = d->cluster;
	struct timeval second = { 1, 0 };
	json_t *body;

	if (!c)
		return;
	body = c->lease ? json_pack("{s:o}", "ID", etcd_int(c->lease)) : NULL;
	if (body && etcd_post_urgent(c->etcd, "/v3/lease/revoke", body, 1000, on_stop_revoked, c)) {
		event_base_loopexit(d->base, &second);
		event_base_dispatch(d->base);
	}
	while (!list_empty(&c->locks))
		cl_lock_drop(container_of(c->locks.next, struct cl_lock, clink));
	while (!list_empty(&c->parked))
		cl_lock_drop(container_of(c->parked.next, struct cl_lock, clink));
	loop_event_free(c->tick);
	etcd_free(c->etcd);
	free(c);
	d->cluster = NULL;
}

bool cluster_key(const struct haspd *d, const char *key, size_t len)
{
	const struct cluster *c = d->cluster;

	return c && len >= c->prefix_len && memcmp(key, c->prefix, c->prefix_len) == 0;
}

/* ---- acquire ---- */

static const char *unsupported(const struct proto_request *req)
{
	if (req->acquire.limit)
		return "a cluster key cannot be a semaphore (\"limit\") in this version";
	if (req->acquire.detach && !req->acquire.ttl_ms)
		return "a checkout of a cluster key needs a \"ttl_ms\": etcd must be able to end it "
		       "when nobody checks it in";
	if (req->acquire.ttl_ms && !req->acquire.detach)
		return "a session's lease on a cluster key cannot have a \"ttl_ms\" in this version: "
		       "it lasts while its session does";
	if (memchr(req->acquire.key, '\0', req->acquire.key_len))
		return "a cluster key cannot hold a NUL character";
	return NULL;
}

/* s's request on key that is not ending, or NULL. */
static struct cl_lock *session_lock_on(struct session *s, const char *key, size_t len)
{
	struct list *pos;

	list_foreach(pos, &s->cluster_locks) {
		struct cl_lock *l = container_of(pos, struct cl_lock, slink);

		if (l->state != CL_ENDING && l->key_len == len && memcmp(l->key, key, len) == 0)
			return l;
	}
	return NULL;
}

static json_t *request_value(const struct cl_lock *l, const struct session *s,
			     const struct proto_request *req)
{
	return json_pack("{s:s,s:I,s:I,s:I,s:i,s:I,s:I,s:s,s:s,s:s*,s:s*,s:I}",
			 "host", l->c->host, "session", (json_int_t)s->id, "lease",
			 (json_int_t)l->lease, "request", (json_int_t)req->id, "pid",
			 (int)s->sender.pid, "uid", (json_int_t)s->sender.uid, "gid",
			 (json_int_t)s->sender.gid, "mode", l->shared ? "shared" : "exclusive",
			 "client", s->owner.label, "owner", req->acquire.owner, "message",
			 req->acquire.message, "since_us", (json_int_t)l->since_wall_us);
}

/* The etcd key: the lock's prefix, then this haspd's lease and the
 * request's lease id, unique over the cluster. */
static char *request_ekey(const struct cl_lock *l, int64_t etcd_lease, size_t *len)
{
	char tail[48], *p;
	size_t plen, tlen = (size_t)snprintf(tail, sizeof(tail), "%016" PRIx64 "-%" PRIu64,
					     (uint64_t)etcd_lease, l->lease);

	p = kv_lock_prefix(l->key, l->key_len, true, &plen);
	if (!p || !(p = realloc(p, plen + tlen + 1)))
		return NULL;
	memcpy(p + plen, tail, tlen + 1);
	*len = plen + tlen;
	return p;
}

static struct cl_lock *cl_lock_new(struct session *s, const struct proto_request *req)
{
	struct cluster *c = s->d->cluster;
	struct cl_lock *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->c = c;
	l->lease = ++s->d->lt.last_id;
	l->tag = req->id;
	l->shared = req->acquire.shared;
	l->timeout_ms = req->acquire.timeout_ms;
	l->detach = req->acquire.detach;
	l->ttl_ms = req->acquire.ttl_ms;
	l->sender = s->sender;
	l->since_wall_us = s->d->lt.wall_us;
	l->asked_us = clock_us(CLOCK_MONOTONIC);
	l->key_len = req->acquire.key_len;
	l->key = strndup(req->acquire.key, l->key_len);
	l->value = request_value(l, s, req);
	l->timer = loop_event_new(&s->d->loop, -1, 0, cl_lock_timer, l);
	l->reread = loop_event_new(&s->d->loop, -1, 0, cl_lock_reread, l);
	list_init(&l->clink);
	list_init(&l->slink);
	if (!l->key || !l->value || !l->timer || !l->reread) {
		cl_lock_drop(l);
		return NULL;
	}
	return l;
}

void cluster_acquire(struct session *s, const struct proto_request *req)
{
	struct cluster *c = s->d->cluster;
	const char *why = unsupported(req);
	struct cl_lock *l;
	char msg[200];

	if (why) {
		reply_error(s, true, req->id, HASP_E_BAD_REQUEST, why, NULL);
		return;
	}
	/* Its watch is a connection to etcd: one more descriptor of haspd's,
	 * counted as a file is (max_user_files), and among its uid's cluster
	 * requests (max_user_cluster_locks). */
	if (s->user->limited && s->user->cluster_locks >= s->d->cfg.max_user_cluster_locks) {
		snprintf(msg, sizeof(msg), "uid %u has %zu requests on cluster keys, the limit "
			 "(max_user_cluster_locks)", (unsigned)s->user->uid, s->user->cluster_locks);
		reply_error(s, true, req->id, HASP_E_LIMIT, msg, NULL);
		return;
	}
	if (!files_may_open(s, msg, sizeof(msg))) {
		reply_error(s, true, req->id, HASP_E_LIMIT, msg, NULL);
		return;
	}
	if (session_lock_on(s, req->acquire.key, req->acquire.key_len)) {
		reply_error(s, true, req->id, HASP_E_ALREADY_HELD,
			    "this session already holds or waits for this lock", NULL);
		return;
	}
	l = cl_lock_new(s, req);
	if (!l) {
		reply_error(s, true, req->id, HASP_E_INTERNAL, "out of memory", NULL);
		return;
	}
	l->s = s;
	list_add_tail(&s->cluster_locks, &l->slink);
	s->ncluster++;
	l->payer = s->user;
	users_charge_file(&s->d->users, s->user);
	s->user->cluster_locks++;
	if (l->timeout_ms > 0) {
		l->deadline_us = clock_us(CLOCK_MONOTONIC) + (uint64_t)l->timeout_ms * 1000;
		cl_lock_arm_deadline(l);
	}
	list_add_tail(&c->parked, &l->clink);
	if (c->lease)
		cl_lock_send(l);
	else
		cl_lease_want(c);
}

/* Called by cl_lock_send(): the key needs the etcd lease it is bound to. */
int cl_lock_name(struct cl_lock *l, int64_t etcd_lease)
{
	free(l->ekey);
	l->ekey = request_ekey(l, etcd_lease, &l->ekey_len);
	return l->ekey ? 0 : -1;
}

/* ---- release, cancel, revoke by lease ---- */

static struct cl_lock *session_lock_where(struct session *s, bool (*match)(const struct cl_lock *,
									 const void *),
					  const void *arg)
{
	struct list *pos;

	list_foreach(pos, &s->cluster_locks) {
		struct cl_lock *l = container_of(pos, struct cl_lock, slink);

		if (l->state != CL_ENDING && match(l, arg))
			return l;
	}
	return NULL;
}

static bool held_as(const struct cl_lock *l, const void *arg)
{
	const struct proto_target *t = arg;

	if (l->state != CL_HELD)
		return false;
	if (t->lease)
		return l->lease == t->lease;
	return t->key && l->key_len == t->key_len && memcmp(l->key, t->key, t->key_len) == 0;
}

bool cluster_release(struct session *s, const struct proto_request *req)
{
	struct cl_lock *l;

	if (!s->d->cluster || req->release.has_token || req->release.path)
		return false;
	l = session_lock_where(s, held_as, &req->release);
	if (!l)
		return false;
	l->release_id = req->id;
	l->release_by_key = !req->release.lease;
	cl_event_ended(l, "release");
	cl_lock_end(l);
	return true;
}

static bool waiting_as(const struct cl_lock *l, const void *arg)
{
	return l->state != CL_HELD && l->tag == *(const int64_t *)arg;
}

static bool lease_is(const struct cl_lock *l, const void *arg)
{
	return l->lease == *(const uint64_t *)arg;
}

bool cluster_session_lease(struct session *s, uint64_t lease)
{
	return s->d->cluster && session_lock_where(s, lease_is, &lease);
}

bool cluster_cancel(struct session *s, const struct proto_request *req)
{
	struct cl_lock *l;
	char msg[96];

	if (!s->d->cluster)
		return false;
	l = session_lock_where(s, waiting_as, &req->cancel.request);
	if (!l)
		return false;
	snprintf(msg, sizeof(msg), "cancelled by request %" PRId64, req->id);
	reply_error(s, true, l->tag, HASP_E_CANCELLED, msg, NULL);
	reply_ok_empty(s, req->id);
	cl_event_ended(l, "cancel");
	cl_lock_end(l);
	return true;
}

bool cluster_revoke_lease(struct session *s, const struct proto_request *req)
{
	struct cluster *c = s->d->cluster;
	uid_t uid = s->sender.uid;
	struct cl_query *q;
	struct list *pos;
	char msg[160];

	if (!c)
		return false;
	list_foreach(pos, &c->locks) {
		struct cl_lock *l = container_of(pos, struct cl_lock, clink);

		if (l->lease != req->revoke.lease || l->state != CL_HELD)
			continue;
		if (uid != 0 && uid != geteuid() && uid != l->sender.uid) {
			snprintf(msg, sizeof(msg), "lease %" PRIu64 " is held by uid %u: only root, "
				 "uid %u and the holder's uid may revoke it", l->lease,
				 (unsigned)l->sender.uid, (unsigned)geteuid());
			reply_error(s, true, req->id, HASP_E_PERMISSION_DENIED, msg, NULL);
			return true;
		}
		/* Answered once its key is deleted (or that failed), as a
		 * revoke by key is: then no host lists it any more. */
		q = cl_query_new(s, req->id, "", 0, "", 0);
		if (!q)
			return true; /* answered */
		snprintf(msg, sizeof(msg), "revoked by pid %d uid %u", (int)s->sender.pid,
			 (unsigned)uid);
		cl_lock_tell(l, "revoked", msg);
		cl_event_ended(l, "revoke");
		c->revoked_total++;
		q->lock = l;
		l->revoker = q;
		cl_lock_end(l);
		return true;
	}
	return false;
}

void cluster_session_ends(struct session *s)
{
	while (!list_empty(&s->cluster_locks)) {
		struct cl_lock *l = container_of(s->cluster_locks.next, struct cl_lock, slink);

		cl_event_ended(l, "disconnect");
		cl_lock_end(l);
	}
	cluster_queries_end(s);
}

/* ---- stats ---- */

static json_t *endpoints_json(const char *list)
{
	json_t *a = json_array();

	while (a && *list) {
		size_t n = strcspn(list, ",");

		if (json_array_append_new(a, json_stringn(list, n)) < 0) {
			json_decref(a);
			return NULL;
		}
		list += n + (list[n] == ',');
	}
	return a;
}

json_t *cluster_stats(const struct haspd *d)
{
	const struct cluster *c = d->cluster;
	size_t held = 0, waiting = 0;
	uint64_t calls, errors;
	const struct list *pos;
	char endpoint[300], lease[24];
	json_t *eps;

	if (!c)
		return json_null();
	list_foreach(pos, &c->locks) {
		const struct cl_lock *l = container_of(pos, struct cl_lock, clink);

		held += l->state == CL_HELD;
		waiting += l->state == CL_CREATING || l->state == CL_WAITING;
	}
	list_foreach(pos, &c->parked)
		waiting++;
	etcd_endpoint(c->etcd, endpoint, sizeof(endpoint));
	etcd_counts(c->etcd, &calls, &errors);
	snprintf(lease, sizeof(lease), "%" PRIx64, (uint64_t)c->lease);
	eps = endpoints_json(d->cfg.cluster_endpoints);
	return json_pack("{s:o,s:s,s:s,s:s,s:s*,s:b,s:I,s:I,s:{s:I,s:I,s:I,s:I}}",
			 "endpoints", eps, "endpoint", endpoint, "prefix", c->prefix, "host", c->host,
			 "lease", c->lease ? lease : NULL, "available", c->lease != 0,
			 "locks", (json_int_t)held, "waiting", (json_int_t)waiting,
			 "counters", "requests", (json_int_t)calls, "errors", (json_int_t)errors,
			 "lost", (json_int_t)c->lost_total, "revoked", (json_int_t)c->revoked_total);
}
