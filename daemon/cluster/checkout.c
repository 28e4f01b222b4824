/* Checkouts of cluster keys. Once granted, the request's key is put again
 * (its create revision, so its place and fence, stay) bound to an etcd
 * lease of its own with the checkout's TTL, beside a token key
 *   hasp/tokens/<token>  ->  the request's etcd key
 * on the same lease. etcd then holds the checkout: it outlives its session
 * and its haspd, any haspd of the cluster ends it by its token, and etcd
 * ends it at its TTL. */
#include "cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cluster-int.h"
#include "haspd.h"
#include "log.h"
#include "reply.h"
#include "session.h"

#define TOKENS_ROOT "hasp/tokens/"
#define TOKEN_HEX 32

/* etcd's TTLs are whole seconds: a checkout lasts at least its ttl_ms. */
static int64_t ttl_s(int64_t ms)
{
	return (ms + 999) / 1000;
}

static json_t *token_key(const char *hex)
{
	char key[sizeof(TOKENS_ROOT) + TOKEN_HEX];

	snprintf(key, sizeof(key), TOKENS_ROOT "%s", hex);
	return etcd_bytes(key, strlen(key));
}

static void hex_of(const unsigned char *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

/* ---- the checkout, at the grant ---- */

static void on_unwanted_lease(void *arg, json_t *reply, const char *error)
{
	(void)arg;
	(void)reply;
	(void)error;
}

/* The checkout could not be made, or is given up: answered so (if anyone
 * still asks), its keys deleted (its own lease's revoke takes both). */
static void detach_failed(struct cl_lock *l, const char *why)
{
	json_t *body = l->co_lease ? json_pack("{s:o}", "ID", etcd_int(l->co_lease)) : NULL;

	if (body)
		etcd_post(l->c->etcd, "/v3/lease/revoke", body, on_unwanted_lease, NULL);
	cl_lock_fail(l, HASP_E_UNAVAILABLE, why);
	l->state = CL_HELD;
	cl_lock_end(l);
}

static void on_detached(void *arg, json_t *reply, const char *error)
{
	struct cl_lock *l = arg;
	json_t *body;

	l->call = NULL;
	if (l->abandoned) {
		detach_failed(l, NULL);
		return;
	}
	if (error || !json_is_true(json_object_get(reply, "succeeded"))) {
		detach_failed(l, error ? error : "unavailable: the request's key was deleted (revoked) "
			      "before it could be checked out");
		return;
	}
	body = json_pack("{s:I,s:I,s:s,s:s,s:I}", "lease", (json_int_t)l->lease, "fence",
			 (json_int_t)l->rev, "mode", l->shared ? "shared" : "exclusive", "token",
			 l->token, "expires_ms", (json_int_t)l->ttl_ms);
	if (l->s)
		reply_ok(l->s, l->tag, body);
	else
		json_decref(body);
	cl_event_granted(l);
	haspd_log_for(l->c->d, l->sender.uid, LOG_INFO, "cluster: lease %" PRIu64 " on '%s' checked "
		      "out by pid %d uid %u for %" PRId64 " ms", l->lease, l->key, (int)l->sender.pid,
		      (unsigned)l->sender.uid, l->ttl_ms);
	cl_lock_drop(l);
}

/* The request's key and the token's, on the checkout's own lease, if the
 * key is still the one granted. */
static json_t *detach_body(const struct cl_lock *l)
{
	char *value;
	json_t *v = json_deep_copy(l->value), *body = NULL;

	if (!v || json_object_set_new(v, "checkout", json_true()) < 0 ||
	    json_object_set_new(v, "ttl_ms", json_integer(l->ttl_ms)) < 0) {
		json_decref(v);
		return NULL;
	}
	value = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	if (value)
		body = json_pack("{s:[{s:o,s:s,s:o}],s:[{s:{s:o,s:o,s:o}},{s:{s:o,s:o,s:o}}]}",
				 "compare", "key", etcd_bytes(l->ekey, l->ekey_len), "target", "CREATE",
				 "create_revision", etcd_int(l->rev),
				 "success", "request_put", "key", etcd_bytes(l->ekey, l->ekey_len),
				 "value", etcd_bytes(value, strlen(value)), "lease", etcd_int(l->co_lease),
				 "request_put", "key", token_key(l->token), "value",
				 etcd_bytes(l->ekey, l->ekey_len), "lease", etcd_int(l->co_lease));
	free(value);
	return body;
}

static void on_co_lease(void *arg, json_t *reply, const char *error)
{
	struct cl_lock *l = arg;
	unsigned char token[TOKEN_HEX / 2];
	json_t *body;

	l->call = NULL;
	l->co_lease = error ? 0 : etcd_get_int(reply, "ID", 0);
	if (l->abandoned) {
		detach_failed(l, NULL);
		return;
	}
	if (!l->co_lease) {
		detach_failed(l, error ? error : "unavailable: etcd granted no lease");
		return;
	}
	if (getrandom(token, sizeof(token), GRND_NONBLOCK) != (ssize_t)sizeof(token)) {
		detach_failed(l, "unavailable: no random bytes for a token");
		return;
	}
	hex_of(token, sizeof(token), l->token);
	body = detach_body(l);
	l->call = body ? etcd_post(l->c->etcd, "/v3/kv/txn", body, on_detached, l) : NULL;
	if (!l->call)
		detach_failed(l, "out of memory");
}

void cl_lock_detach(struct cl_lock *l)
{
	json_t *body = json_pack("{s:o}", "TTL", etcd_int(ttl_s(l->ttl_ms)));

	l->call = body ? etcd_post(l->c->etcd, "/v3/lease/grant", body, on_co_lease, l) : NULL;
	if (!l->call)
		detach_failed(l, "out of memory");
}

/* ---- checkin and renew, by token ---- */

/* Whether t names a cluster checkout by its token: a token alone that no
 * local checkout has, or a token with a cluster key. */
static bool by_cluster_token(struct session *s, const struct proto_target *t)
{
	if (!s->d->cluster || !t->has_token || t->lease || t->path)
		return false;
	if (t->key)
		return cluster_key(s->d, t->key, t->key_len);
	return !locktable_by_token(&s->d->lt, t->token);
}

/* The request's etcd key that a token key's range reply names (malloc'ed),
 * or NULL with the error sent and q freed. */
static char *token_target(struct cl_query *q, json_t *reply, const char *error, size_t *len)
{
	json_t *kv = json_array_get(json_object_get(reply, "kvs"), 0);
	char *ekey = kv ? etcd_get_bytes(kv, "value", len) : NULL;
	char msg[1200];

	if (error) {
		reply_error(q->s, true, q->id, HASP_E_UNAVAILABLE, error, NULL);
	} else if (!ekey) {
		reply_error(q->s, true, q->id, HASP_E_UNKNOWN_LEASE, "no checkout has this token",
			    NULL);
	} else if (q->key && (*len < KV_ROOT_LEN + q->key_len + 1 ||
			      memcmp(ekey + KV_ROOT_LEN, q->key, q->key_len) ||
			      ekey[KV_ROOT_LEN + q->key_len] != '\0')) {
		snprintf(msg, sizeof(msg), "wrong token for the checkout on '%.1024s'", q->key);
		reply_error(q->s, true, q->id, HASP_E_PERMISSION_DENIED, msg, NULL);
	} else {
		return ekey;
	}
	free(ekey);
	cl_query_free(q);
	return NULL;
}

static void on_checked_in(void *arg, json_t *reply, const char *error)
{
	struct cl_query *q = arg;
	json_t *del = json_object_get(json_array_get(json_object_get(reply, "responses"), 0),
				      "response_delete_range");
	json_t *prev = json_array_get(json_object_get(del, "prev_kvs"), 0);
	char *value;
	size_t len;
	json_t *v;

	q->call = NULL;
	if (error) {
		reply_error(q->s, true, q->id, HASP_E_UNAVAILABLE, error, NULL);
	} else if (!prev) {
		reply_error(q->s, true, q->id, HASP_E_UNKNOWN_LEASE, "the checkout with this token "
			    "has ended (revoked, or its TTL ran out)", NULL);
	} else {
		value = etcd_get_bytes(prev, "value", &len);
		v = value ? json_loadb(value, len, 0, NULL) : NULL;
		reply_ok(q->s, q->id, json_pack("{s:I}", "lease",
			 json_integer_value(json_object_get(v, "lease"))));
		json_decref(v);
		free(value);
	}
	cl_query_free(q);
}

static void on_checkin_token(void *arg, json_t *reply, const char *error)
{
	struct cl_query *q = arg;
	size_t len;
	char *ekey;

	q->call = NULL;
	ekey = token_target(q, reply, error, &len);
	if (!ekey)
		return;
	cl_query_post(q, "/v3/kv/txn", json_pack("{s:[{s:{s:o,s:b}},{s:{s:o}}]}", "success",
						 "request_delete_range", "key", etcd_bytes(ekey, len),
						 "prev_kv", 1, "request_delete_range", "key",
						 token_key(q->text)), on_checked_in);
	free(ekey);
}

/* A query about the checkout with t's token: its token key read first. */
static bool token_query(struct session *s, const struct proto_request *req,
			const struct proto_target *t, etcd_done_fn cb, int64_t ttl_ms)
{
	char hex[TOKEN_HEX + 1];
	struct cl_query *q;

	if (!by_cluster_token(s, t))
		return false;
	hex_of(t->token, PROTO_TOKEN_LEN, hex);
	q = cl_query_new(s, req->id, hex, TOKEN_HEX, t->key ? t->key : "", t->key ? t->key_len : 0);
	if (!q)
		return true; /* answered */
	if (t->key) {
		q->key = q->text + TOKEN_HEX + 1;
		q->key_len = t->key_len;
	}
	q->ttl_ms = ttl_ms;
	cl_query_post(q, "/v3/kv/range", json_pack("{s:o}", "key", token_key(hex)), cb);
	return true;
}

bool cluster_checkin(struct session *s, const struct proto_request *req)
{
	return token_query(s, req, &req->release, on_checkin_token, 0);
}

static void on_renewed(void *arg, json_t *reply, const char *error)
{
	struct cl_query *q = arg;
	int64_t ttl = etcd_get_int(json_object_get(reply, "result"), "TTL", 0);

	q->call = NULL;
	if (error || ttl <= 0) {
		reply_error(q->s, true, q->id, error ? HASP_E_UNAVAILABLE : HASP_E_UNKNOWN_LEASE,
			    error ? error : "the checkout with this token has ended", NULL);
	} else {
		json_object_set_new(q->reply, "expires_ms", json_integer(ttl * 1000));
		reply_ok(q->s, q->id, json_incref(q->reply));
	}
	cl_query_free(q);
}

/* The checkout's key read: its own etcd lease kept alive. */
static void on_renew_key(void *arg, json_t *reply, const char *error)
{
	struct cl_query *q = arg;
	json_t *kv = json_array_get(json_object_get(reply, "kvs"), 0), *v = NULL;
	char *value = NULL, msg[200];
	size_t len;

	q->call = NULL;
	if (!error && kv && (value = etcd_get_bytes(kv, "value", &len)))
		v = json_loadb(value, len, 0, NULL);
	free(value);
	if (error || !v) {
		reply_error(q->s, true, q->id, error ? HASP_E_UNAVAILABLE : HASP_E_UNKNOWN_LEASE,
			    error ? error : "the checkout with this token has ended (revoked, or its "
			    "TTL ran out)", NULL);
	} else if (q->ttl_ms && q->ttl_ms != json_integer_value(json_object_get(v, "ttl_ms"))) {
		snprintf(msg, sizeof(msg), "the TTL of a checkout of a cluster key stays the one it "
			 "was checked out with (%" JSON_INTEGER_FORMAT " ms) in this version",
			 json_integer_value(json_object_get(v, "ttl_ms")));
		reply_error(q->s, true, q->id, HASP_E_BAD_REQUEST, msg, NULL);
	} else {
		q->reply = json_pack("{s:O}", "lease", json_object_get(v, "lease"));
		json_decref(v);
		cl_query_post(q, "/v3/lease/keepalive", json_pack("{s:o}", "ID",
				etcd_int(etcd_get_int(kv, "lease", 0))), on_renewed);
		return;
	}
	json_decref(v);
	cl_query_free(q);
}

static void on_renew_token(void *arg, json_t *reply, const char *error)
{
	struct cl_query *q = arg;
	size_t len;
	char *ekey;

	q->call = NULL;
	ekey = token_target(q, reply, error, &len);
	if (!ekey)
		return;
	cl_query_post(q, "/v3/kv/range", json_pack("{s:o}", "key", etcd_bytes(ekey, len)),
		      on_renew_key);
	free(ekey);
}

bool cluster_renew(struct session *s, const struct proto_request *req)
{
	return token_query(s, req, &req->renew.target, on_renew_token, req->renew.ttl_ms);
}
