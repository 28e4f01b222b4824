/* One request on a cluster key, from its put to its delete: etcd's
 * RWMutex recipe. The request's key is put with a compare on its create
 * revision (a retried put finds the first); the same transaction reads the
 * lock's requests, whose create revisions order them. A request that must
 * wait watches only the one it waits for (for its delete after the
 * revision read: etcd.h), and reads again when that one goes, unless it was
 * the last it waited for: then it holds. Once held, it watches its own key:
 * a delete it did not make is a revoke. */
#include "cluster-int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "haspd.h"
#include "log.h"
#include "proto-daemon.h"
#include "reply.h"
#include "session.h"
#include "users.h"

#define DELETE_RETRY_MS 1000
#define REREAD_PAUSE_MS 100

static void cl_lock_read(struct cl_lock *l);
static void cl_lock_delete(struct cl_lock *l);

static uint64_t wall_us(const struct cl_lock *l)
{
	return l->c->d->lt.wall_us;
}

/* l's timer, us from now. */
static void arm_timer_us(struct cl_lock *l, uint64_t us)
{
	struct timeval tv = clock_timeval(us);

	if (loop_event_add(l->timer, &tv) < 0)
		log_warn("cluster: no memory to arm a timer for '%s'", l->key);
}

static void arm_timer(struct cl_lock *l, int64_t ms)
{
	arm_timer_us(l, (uint64_t)ms * 1000);
}

void cl_lock_arm_deadline(struct cl_lock *l)
{
	uint64_t now = clock_us(CLOCK_MONOTONIC);

	arm_timer_us(l, l->deadline_us > now ? l->deadline_us - now : 0);
}

/* Out of its session: no reply goes to it any more. */
static void cl_lock_unlink(struct cl_lock *l)
{
	if (!l->s)
		return;
	/* A release waiting for its delete is done: the key is deleted, or
	 * goes with the etcd lease it was bound to. */
	if (l->release_id && l->release_by_key)
		reply_ok(l->s, l->release_id, json_pack("{s:I}", "lease", (json_int_t)l->lease));
	else if (l->release_id)
		reply_ok_empty(l->s, l->release_id);
	l->release_id = 0;
	list_del(&l->slink);
	l->s->ncluster--;
	l->s = NULL;
}

void cl_lock_answer_revoker(struct cl_lock *l)
{
	struct cl_query *q = l->revoker;

	if (!q)
		return;
	reply_ok(q->s, q->id, json_pack("{s:[I]}", "revoked", (json_int_t)l->lease));
	cl_query_free(q); /* and l->revoker with it */
}

static void cl_lock_free(struct cl_lock *l)
{
	cl_lock_answer_revoker(l);
	cl_lock_unlink(l);
	/* Counted until its last call to etcd is answered (or forgotten). */
	if (l->payer) {
		l->payer->cluster_locks--;
		users_refund_file(&l->c->d->users, l->payer);
	}
	list_del(&l->clink);
	if (l->call)
		etcd_call_forget(l->call);
	etcd_watch_cancel(l->watch);
	loop_event_free(l->timer);
	loop_event_free(l->reread);
	json_decref(l->value);
	json_decref(l->holders);
	free(l->key);
	free(l->ekey);
	free(l);
}

void cl_lock_drop(struct cl_lock *l)
{
	cl_lock_free(l);
}

/* ---- replies ---- */

/* "held by pid 412 (uid 1000) on hostB, and 2 more", from l->holders. */
static void held_by(const struct cl_lock *l, char *buf, size_t n)
{
	const json_t *h = json_array_get(l->holders, 0);
	const char *host = json_string_value(json_object_get(h, "host"));
	size_t more = json_array_size(l->holders);

	if (!h) {
		snprintf(buf, n, "held or waited for on another host");
		return;
	}
	snprintf(buf, n, "held by pid %" JSON_INTEGER_FORMAT " (uid %" JSON_INTEGER_FORMAT ") on "
		 "%.255s%s", json_integer_value(json_object_get(h, "pid")),
		 json_integer_value(json_object_get(h, "uid")),
		 host ? host : "another host",
		 more > 1 ? ", and more" : "");
}

void cl_lock_fail(struct cl_lock *l, int code, const char *msg)
{
	if (l->s && l->state != CL_HELD)
		reply_error(l->s, true, l->tag, code, msg, NULL);
}

/* The first ERROR_HOLDERS_MAX of holders (none read yet: none). */
static json_t *error_holders(const json_t *holders)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < json_array_size(holders) && i < ERROR_HOLDERS_MAX; i++)
		json_array_append(a, json_array_get(holders, i));
	return a;
}

/* busy or timeout: the message and holders name who is in the way. */
static void cl_lock_conflict(struct cl_lock *l, int code)
{
	char held[400], msg[1600];

	held_by(l, held, sizeof(held));
	if (code == HASP_E_BUSY)
		snprintf(msg, sizeof(msg), "busy: '%.1024s' is %s", l->key, held);
	else
		snprintf(msg, sizeof(msg), "timed out after %" PRId64 " ms: '%.1024s' is %s",
			 l->timeout_ms, l->key, held);
	if (l->s)
		reply_error(l->s, true, l->tag, code, msg, error_holders(l->holders));
}

void cl_lock_tell(struct cl_lock *l, const char *event, const char *why)
{
	json_t *body;
	char *line;
	size_t len = 0;

	if (!l->s)
		return;
	body = json_pack("{s:I,s:s%,s:s}", "lease", (json_int_t)l->lease, "key", l->key,
			 l->key_len, "message", why);
	line = body ? proto_event(event, body, &len) : NULL;
	if (line)
		session_write(l->s, line, len);
	else
		session_break(l->s);
	free(line);
}

static void cl_lock_watch(struct cl_lock *l, const char *ekey, size_t len, int64_t since);

/* Held: answered and watched, or checked out. */
static void cl_lock_grant(struct cl_lock *l)
{
	char buf[PROTO_SMALL_REPLY];

	loop_event_del(l->timer);
	l->since_wall_us = wall_us(l);
	if (l->detach) {
		l->state = CL_DETACHING;
		cl_lock_detach(l);
		return;
	}
	l->state = CL_HELD;
	if (l->s)
		session_write(l->s, buf, proto_fmt_grant(buf, l->tag, l->lease, (uint64_t)l->rev,
							 l->shared));
	cl_event_granted(l);
	/* From its creation: a delete of it before the grant (perhaps made
	 * without a read) is seen too. */
	cl_lock_watch(l, l->ekey, l->ekey_len, l->rev);
}

/* ---- watching ---- */

static void on_watched_delete(void *arg, int64_t rev)
{
	struct cl_lock *l = arg;

	l->watch = etcd_watch_cancel(l->watch);
	if (l->state == CL_WAITING && l->blockers == 1) {
		/* The last one it waited for: held, with no read (a hand-off
		 * costs the delete's watch event alone). */
		cl_lock_grant(l);
		return;
	}
	if (l->state == CL_HELD) {
		cl_event_ended(l, "revoke");
		l->c->revoked_total++;
		haspd_log_for(l->c->d, l->sender.uid, LOG_INFO, "cluster: lease %" PRIu64 " on '%s' "
			      "revoked: its key was deleted from etcd", l->lease, l->key);
		cl_lock_tell(l, "revoked", "its key was deleted from etcd: revoked from this or "
			     "another host, or by hand");
		cl_lock_drop(l);
		return;
	}
	cl_lock_read(l);
}

static void on_watch_ended(void *arg, const char *why)
{
	struct cl_lock *l = arg;

	log_debug("cluster: the watch of '%s' (lease %" PRIu64 ") ended: %s; reading again",
		  l->key, l->lease, why);
	l->watch = etcd_watch_cancel(l->watch);
	/* Not at once: a member that refuses every watch (no leader) must
	 * not be asked again and again as fast as it answers. */
	if (loop_event_add(l->reread, &(struct timeval){ 0, REREAD_PAUSE_MS * 1000 }) < 0)
		cl_lock_read(l);
}

/* The read again after a watch ended (on_watch_ended()). */
void cl_lock_reread(void *arg)
{
	struct cl_lock *l = arg;

	if ((l->state == CL_WAITING || l->state == CL_HELD) && !l->call && !l->watch)
		cl_lock_read(l);
}

static const struct etcd_watch_ops watch_ops = { on_watched_delete, on_watch_ended };

static void cl_lock_watch(struct cl_lock *l, const char *ekey, size_t len, int64_t since)
{
	l->watch = etcd_watch(l->c->etcd, ekey, len, since, &watch_ops, l);
	if (l->watch)
		return;
	if (l->state == CL_HELD) {
		arm_timer(l, DELETE_RETRY_MS); /* read and watched again then */
		return;
	}
	cl_lock_fail(l, HASP_E_INTERNAL, "out of memory");
	cl_lock_end(l);
}

/* ---- reading the lock's requests ---- */

/* The lock's requests as read at revision seen: granted, still waiting (on
 * whom), refused (a try), or gone. */
static void cl_lock_place(struct cl_lock *l, struct kv_req *v, size_t n, int64_t seen)
{
	long me = kv_find(v, n, l->ekey, l->ekey_len), ahead;

	if (me < 0) {
		if (l->state == CL_HELD) {
			on_watched_delete(l, seen);
		} else {
			cl_lock_fail(l, HASP_E_UNAVAILABLE, "unavailable: the request's key vanished "
				     "from etcd (haspd's etcd lease ended?)");
			cl_lock_drop(l);
		}
		return;
	}
	l->rev = v[me].rev;
	json_decref(l->holders);
	l->holders = kv_holders(v, 0, n, wall_us(l));
	ahead = kv_waits_for(v, 0, (size_t)me);
	if (l->state == CL_HELD) {
		cl_lock_watch(l, l->ekey, l->ekey_len, seen);
	} else if (ahead < 0) {
		cl_lock_grant(l);
	} else if (l->timeout_ms == 0) {
		cl_lock_conflict(l, HASP_E_BUSY);
		cl_lock_end(l);
	} else {
		if (l->state == CL_CREATING)
			cl_event_queued(l);
		l->state = CL_WAITING;
		l->blockers = kv_blockers(v, 0, (size_t)me);
		cl_lock_watch(l, v[ahead].ekey, v[ahead].ekey_len, seen);
	}
}

/* A reply with a lock's requests (a range's, or a txn's last response). */
static void cl_lock_read_reply(struct cl_lock *l, const json_t *range, int64_t seen)
{
	struct kv_req *v;
	long n = kv_parse(range, &v);

	if (n < 0) {
		cl_lock_fail(l, HASP_E_INTERNAL, "etcd's reply could not be read (or no memory)");
		cl_lock_end(l);
		return;
	}
	cl_lock_place(l, v, (size_t)n, seen);
	kv_free(v, (size_t)n);
}

static int64_t header_rev(const json_t *reply)
{
	return etcd_get_int(json_object_get(reply, "header"), "revision", 0);
}

static void on_read(void *arg, json_t *reply, const char *error)
{
	struct cl_lock *l = arg;

	l->call = NULL;
	if (error) {
		if (l->state == CL_HELD) {
			/* Held still, as far as anyone knows: the lease
			 * keepalive says when it is not. Read again later. */
			arm_timer(l, DELETE_RETRY_MS);
			return;
		}
		cl_lock_fail(l, HASP_E_UNAVAILABLE, error);
		cl_lock_end(l);
		return;
	}
	cl_lock_read_reply(l, reply, header_rev(reply));
}

/* The range of l's lock, as a request body member set. */
static json_t *lock_range(const struct cl_lock *l)
{
	size_t plen, elen;
	char *p = kv_lock_prefix(l->key, l->key_len, true, &plen);
	char *end = p ? kv_range_end(p, plen, &elen) : NULL;
	json_t *o = end ? json_pack("{s:o,s:o}", "key", etcd_bytes(p, plen), "range_end",
				    etcd_bytes(end, elen)) : NULL;

	free(p);
	free(end);
	return o;
}

static void cl_lock_read(struct cl_lock *l)
{
	json_t *body = lock_range(l);

	l->call = body ? etcd_post(l->c->etcd, "/v3/kv/range", body, on_read, l) : NULL;
	if (!l->call && l->state != CL_HELD) {
		cl_lock_fail(l, HASP_E_INTERNAL, "out of memory");
		cl_lock_end(l);
	}
}

/* ---- the put ---- */

static void on_put(void *arg, json_t *reply, const char *error)
{
	struct cl_lock *l = arg;
	json_t *responses = json_object_get(reply, "responses");
	json_t *last = json_array_get(responses, json_array_size(responses) - 1);

	l->call = NULL;
	if (l->state == CL_ENDING) { /* ended meanwhile: the key may be there */
		cl_lock_delete(l);
		return;
	}
	if (error) {
		cl_lock_fail(l, HASP_E_UNAVAILABLE, error);
		cl_lock_end(l); /* the put may have been made */
		return;
	}
	cl_lock_read_reply(l, json_object_get(last, "response_range"), header_rev(reply));
}

static json_t *put_body(const struct cl_lock *l)
{
	char *value = json_dumps(l->value, JSON_COMPACT);
	json_t *range = lock_range(l), *body = NULL;

	if (value && range)
		body = json_pack("{s:[{s:o,s:s,s:o}],s:[{s:{s:o,s:o,s:o}},{s:O}],s:[{s:O}]}",
				 "compare", "key", etcd_bytes(l->ekey, l->ekey_len),
				 "target", "CREATE", "create_revision", etcd_int(0),
				 "success", "request_put", "key", etcd_bytes(l->ekey, l->ekey_len),
				 "value", etcd_bytes(value, strlen(value)),
				 "lease", etcd_int(l->etcd_lease), "request_range", range,
				 "failure", "request_range", range);
	free(value);
	json_decref(range);
	return body;
}

void cl_lock_send(struct cl_lock *l)
{
	struct cluster *c = l->c;
	json_t *body;

	list_del(&l->clink);
	list_add_tail(&c->locks, &l->clink);
	l->state = CL_CREATING;
	l->etcd_lease = c->lease;
	body = cl_lock_name(l, c->lease) == 0 ? put_body(l) : NULL;
	l->call = body ? etcd_post(c->etcd, "/v3/kv/txn", body, on_put, l) : NULL;
	if (!l->call) {
		cl_lock_fail(l, HASP_E_INTERNAL, "out of memory");
		cl_lock_drop(l);
	}
}

/* ---- the delete ---- */

static void on_deleted(void *arg, json_t *reply, const char *error)
{
	struct cl_lock *l = arg;

	(void)reply;
	l->call = NULL;
	log_debug("cluster: the delete of lease %" PRIu64 "'s key on '%s': %s", l->lease, l->key,
		  error ? error : "done");
	cl_lock_answer_revoker(l);
	cl_lock_unlink(l);
	/* A key bound to an etcd lease that is no longer haspd's goes with it. */
	if (error && l->etcd_lease == l->c->lease) {
		log_warn("cluster: could not delete the key of lease %" PRIu64 " on '%s' (%s); "
			 "trying again", l->lease, l->key, error);
		arm_timer(l, DELETE_RETRY_MS);
		return;
	}
	cl_lock_free(l);
}

static void cl_lock_delete(struct cl_lock *l)
{
	json_t *body = json_pack("{s:o}", "key", etcd_bytes(l->ekey, l->ekey_len));

	l->call = body ? etcd_post(l->c->etcd, "/v3/kv/deleterange", body, on_deleted, l) : NULL;
	if (!l->call)
		arm_timer(l, DELETE_RETRY_MS);
}

void cl_lock_end(struct cl_lock *l)
{
	enum cl_state was = l->state;

	if (was == CL_ENDING || was == CL_DETACHING) {
		/* Its session ends before its delete; or it is being checked
		 * out for a session that will never hear its token: the
		 * checkout is given up when etcd answers (checkout.c). */
		l->abandoned = was == CL_DETACHING;
		cl_lock_unlink(l);
		return;
	}
	l->state = CL_ENDING;
	l->watch = etcd_watch_cancel(l->watch);
	loop_event_del(l->timer);
	loop_event_del(l->reread);
	if (was == CL_PARKED) {
		cl_lock_free(l);
		return;
	}
	if (!l->release_id)
		cl_lock_unlink(l);
	if (was == CL_CREATING && l->call)
		return; /* on_put() deletes it */
	if (l->call) {
		etcd_call_forget(l->call);
		l->call = NULL;
	}
	cl_lock_delete(l);
}

/* The timer: a wait's timeout, a held lock's read again, or an ended
 * one's delete again. */
void cl_lock_timer(void *arg)
{
	struct cl_lock *l = arg;

	switch (l->state) {
	case CL_ENDING:
		if (!l->call)
			cl_lock_delete(l);
		break;
	case CL_HELD:
		if (!l->call && !l->watch)
			cl_lock_read(l);
		break;
	case CL_DETACHING:
		break;
	default:
		/* Never early: libevent counts from the time its loop cached. */
		if (clock_us(CLOCK_MONOTONIC) < l->deadline_us) {
			cl_lock_arm_deadline(l);
			break;
		}
		cl_event_ended(l, "timeout");
		cl_lock_conflict(l, HASP_E_TIMEOUT);
		cl_lock_end(l);
		break;
	}
}
