/* The requests that read every host's cluster locks from etcd: list, and
 * revoke by key. Each is answered when etcd's reply comes, unless its
 * session ended first. */
#include "cluster.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster-int.h"
#include "haspd.h"
#include "proto-daemon.h"
#include "reply.h"
#include "report.h"
#include "session.h"

/* A revoke's deletes go in transactions of this many (etcd's limit: 128). */
#define REVOKE_BATCH 64
/* etcd returns at most this many requests for one list page. */
#define LIST_KVS_MAX 10000


void cl_query_free(struct cl_query *q)
{
	if (q->lock)
		q->lock->revoker = NULL;
	q->s->ncluster_queries--;
	q->s->user->cluster_queries--;
	list_del(&q->link);
	if (q->call)
		etcd_call_forget(q->call);
	free(q->text);
	json_decref(q->reply);
	free(q);
}

void cluster_queries_end(struct session *s)
{
	while (!list_empty(&s->cluster_queries))
		cl_query_free(container_of(s->cluster_queries.next, struct cl_query, link));
}

struct cl_query *cl_query_new(struct session *s, int64_t id, const char *a, size_t alen,
				  const char *b, size_t blen)
{
	struct cl_query *q;
	char msg[160];

	if (s->ncluster_queries >= CL_QUERIES_MAX ||
	    (s->user->limited && s->user->cluster_queries >= CL_USER_QUERIES_MAX)) {
		snprintf(msg, sizeof(msg), "this %s has %u requests to etcd in flight (list, revoke, "
			 "checkin or renew of cluster keys), the limit",
			 s->ncluster_queries >= CL_QUERIES_MAX ? "session" : "uid",
			 s->ncluster_queries >= CL_QUERIES_MAX ? CL_QUERIES_MAX : CL_USER_QUERIES_MAX);
		reply_error(s, true, id, HASP_E_LIMIT, msg, NULL);
		return NULL;
	}
	q = calloc(1, sizeof(*q));
	if (q)
		q->text = malloc(alen + blen + 2);
	if (!q || !q->text) {
		free(q);
		reply_error(s, true, id, HASP_E_INTERNAL, "out of memory", NULL);
		return NULL;
	}
	s->ncluster_queries++;
	s->user->cluster_queries++;
	memcpy(q->text, a, alen);
	q->text[alen] = '\0';
	memcpy(q->text + alen + 1, b, blen);
	q->text[alen + 1 + blen] = '\0';
	q->s = s;
	q->id = id;
	list_add_tail(&s->cluster_queries, &q->link);
	return q;
}

void cl_query_post(struct cl_query *q, const char *path, json_t *body, etcd_done_fn cb)
{
	q->call = body ? etcd_post(q->s->d->cluster->etcd, path, body, cb, q) : NULL;
	if (!q->call) {
		reply_error(q->s, true, q->id, HASP_E_INTERNAL, "out of memory", NULL);
		cl_query_free(q);
	}
}

/* A range body over [from, end of prefix). */
static json_t *range_body(const char *from, size_t flen, const char *prefix, size_t plen,
			  int64_t limit)
{
	size_t elen;
	char *end = kv_range_end(prefix, plen, &elen);
	json_t *body = end ? json_pack("{s:o,s:o,s:o}", "key", etcd_bytes(from, flen), "range_end",
				       etcd_bytes(end, elen), "limit", etcd_int(limit)) : NULL;

	free(end);
	return body;
}

/* ---- list ---- */

static const char *resource_name(const json_t *r)
{
	const char *k = json_string_value(json_object_get(r, "key"));
	const char *p = json_string_value(json_object_get(r, "path"));

	return k ? k : p ? p : "";
}

/* v's locks (v grouped by lock) as list resources, in key order. */
static json_t *cluster_resources(const struct kv_req *v, size_t n, uint64_t wall_us)
{
	json_t *a = json_array();

	for (size_t i = 0, j; a && i < n; i = j) {
		json_t *holders, *r;

		for (j = i + 1; j < n && v[j].key_len == v[i].key_len &&
				memcmp(v[j].key, v[i].key, v[i].key_len) == 0; j++)
			;
		holders = kv_holders(v, i, j, wall_us);
		r = json_pack("{s:o,s:s,s:o,s:o}", "key", proto_string_shown(v[i].key, v[i].key_len),
			      "mode", v[i].shared ? "shared" : "exclusive", "holders", holders,
			      "waiters", kv_waiters(v, i, j, wall_us));
		if (json_array_append_new(a, r) < 0) {
			json_decref(a);
			a = NULL;
		}
	}
	return a;
}

/* A holder's "since" in etcd is when it asked (a write per grant would
 * cost a raft commit on every hand-off): this haspd's own holders are
 * given their grant time, which it knows. */
static void own_grant_times(const struct cluster *c, json_t *resources, uint64_t wall_us)
{
	const struct list *pos;
	size_t i, j;
	json_t *r, *h;

	json_array_foreach(resources, i, r) {
		json_array_foreach(json_object_get(r, "holders"), j, h) {
			const char *host = json_string_value(json_object_get(h, "host"));
			json_int_t lease = json_integer_value(json_object_get(h, "lease"));

			if (!host || strcmp(host, c->host) != 0)
				continue;
			list_foreach(pos, &c->locks) {
				const struct cl_lock *l = container_of(pos, struct cl_lock, clink);

				if ((json_int_t)l->lease == lease && l->state == CL_HELD)
					kv_set_times(h, l->since_wall_us, wall_us, "held_ms");
			}
		}
	}
}

/* The page: the local resources and the cluster's merged by name, limit at
 * most; "next" when either has more. */
static json_t *merge_page(json_t *local, json_t *cl, bool cl_more, int64_t limit)
{
	json_t *mine = json_object_get(local, "resources"), *page = json_array(), *o;
	size_t i = 0, j = 0, n = json_array_size(mine), m = json_array_size(cl);
	bool more = cl_more || json_object_get(local, "next");

	while (page && (i < n || j < m) && json_array_size(page) < (size_t)limit) {
		json_t *a = json_array_get(mine, i), *b = json_array_get(cl, j);
		bool take_local = b == NULL || (a && strcmp(resource_name(a), resource_name(b)) < 0);

		if (json_array_append(page, take_local ? a : b) < 0) {
			json_decref(page);
			page = NULL;
		}
		take_local ? i++ : j++;
	}
	more = more || i < n || j < m;
	o = page ? json_pack("{s:o}", "resources", page) : NULL;
	if (o && more && json_array_size(page) &&
	    json_object_set_new(o, "next", json_string(resource_name(
		    json_array_get(page, json_array_size(page) - 1)))) < 0) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

/* How many of v's n requests make whole locks: when etcd had more, the
 * last lock may have more requests than came, and is left for the next
 * page (unless it is the only one). */
static size_t whole_locks(const struct kv_req *v, size_t n, bool more)
{
	size_t last = n - 1;

	if (!more)
		return n;
	while (last > 0 && v[last - 1].key_len == v[n - 1].key_len &&
	       memcmp(v[last - 1].key, v[n - 1].key, v[n - 1].key_len) == 0)
		last--;
	return last > 0 ? last : n;
}

static void on_list(void *arg, json_t *reply, const char *error)
{
	struct cl_query *q = arg;
	struct session *s = q->s;
	json_t *local = report_list(s->d, &q->args), *cl = NULL, *page = NULL;
	struct kv_req *v = NULL;
	long n = error ? 0 : kv_parse(reply, &v);
	bool more = json_is_true(json_object_get(reply, "more"));
	size_t whole = n > 0 ? whole_locks(v, (size_t)n, more) : 0;

	q->call = NULL;
	if (n >= 0 && local)
		cl = cluster_resources(v, whole, s->d->lt.wall_us);
	if (cl)
		own_grant_times(s->d->cluster, cl, s->d->lt.wall_us);
	if (cl)
		page = merge_page(local, cl, more, q->args.limit);
	if (page && (error || n < 0))
		json_object_set_new(page, "unavailable", json_string(error ? error :
			"etcd's reply could not be read"));
	reply_ok(s, q->id, page);
	json_decref(local);
	json_decref(cl);
	kv_free(v, n > 0 ? (size_t)n : 0);
	cl_query_free(q);
}

/* The cluster keys a list asks for start with prefix (into *p): the list's
 * own when it is inside the namespace, else the namespace's. */
static bool list_reaches(const struct cluster *c, const struct proto_list_args *a,
			 const char **p, size_t *plen)
{
	size_t n = a->prefix ? a->prefix_len : 0;

	if (n >= c->prefix_len && memcmp(a->prefix, c->prefix, c->prefix_len) == 0) {
		*p = a->prefix;
		*plen = n;
		return true;
	}
	if (n < c->prefix_len && (n == 0 || memcmp(a->prefix, c->prefix, n) == 0)) {
		*p = c->prefix;
		*plen = c->prefix_len;
		return true;
	}
	return false;
}

bool cluster_list(struct session *s, const struct proto_request *req)
{
	const struct proto_list_args *a = &req->list;
	struct cluster *c = s->d->cluster;
	const char *p;
	size_t plen, flen, elen;
	char *from, *ep;
	struct cl_query *q;

	if (!c || !list_reaches(c, a, &p, &plen))
		return false;
	q = cl_query_new(s, req->id, a->prefix ? a->prefix : "", a->prefix ? a->prefix_len : 0,
			 a->after ? a->after : "", a->after ? a->after_len : 0);
	if (!q)
		return true; /* answered */
	ep = kv_lock_prefix(p, plen, false, &elen);
	/* After the cursor: past its key's requests (they follow its NUL). */
	from = a->after ? kv_lock_prefix(a->after, a->after_len, true, &flen) : NULL;
	if (from && memcmp(from, ep, flen < elen ? flen : elen) >= 0)
		from[flen - 1] = '\1';
	else if (from) {
		free(from);
		from = NULL;
	}
	if (!ep) {
		free(from);
		cl_query_free(q);
		reply_error(s, true, req->id, HASP_E_INTERNAL, "out of memory", NULL);
		return true;
	}
	q->args = (struct proto_list_args){ a->prefix ? q->text : NULL, a->prefix_len,
					    a->after ? q->text + a->prefix_len + 1 : NULL,
					    a->after_len, a->limit };
	cl_query_post(q, "/v3/kv/range", range_body(from ? from : ep, from ? flen : elen, ep, elen,
						 LIST_KVS_MAX), on_list);
	free(ep);
	free(from);
	return true;
}

/* ---- revoke by key ---- */

static void on_revoke_deleted(void *arg, json_t *reply, const char *error);

/* The next batch of q's deletes (q->reply: "ops", "ids", "done"), or the
 * answer once none is left. etcd takes at most 128 operations in one
 * transaction. */
static void revoke_next(struct cl_query *q)
{
	json_t *ops = json_object_get(q->reply, "ops"), *batch;
	size_t done = (size_t)json_integer_value(json_object_get(q->reply, "done"));
	size_t n = json_array_size(ops);

	if (done >= n) {
		reply_ok(q->s, q->id, json_pack("{s:O}", "revoked", json_object_get(q->reply, "ids")));
		cl_query_free(q);
		return;
	}
	batch = json_array();
	for (size_t i = done; batch && i < n && i < done + REVOKE_BATCH; i++)
		json_array_append(batch, json_array_get(ops, i));
	json_object_set_new(q->reply, "done", json_integer((json_int_t)(done + REVOKE_BATCH)));
	cl_query_post(q, "/v3/kv/txn", batch ? json_pack("{s:o}", "success", batch) : NULL,
		      on_revoke_deleted);
}

static void on_revoke_deleted(void *arg, json_t *reply, const char *error)
{
	struct cl_query *q = arg;

	(void)reply;
	q->call = NULL;
	if (error) {
		reply_error(q->s, true, q->id, HASP_E_UNAVAILABLE, error, NULL);
		cl_query_free(q);
		return;
	}
	revoke_next(q);
}

/* Root and haspd's uid may revoke any holder; a uid its own on this host. */
static bool may_revoke(const struct session *s, const struct kv_req *r)
{
	uid_t uid = s->sender.uid;
	const char *host = json_string_value(json_object_get(r->value, "host"));

	return uid == 0 || uid == geteuid() ||
	       (host && strcmp(host, s->d->cluster->host) == 0 &&
		json_integer_value(json_object_get(r->value, "uid")) == (json_int_t)uid);
}

/* The deletes of v's holders that s may revoke, their lease ids in ids. */
static json_t *revoke_deletes(const struct session *s, const struct kv_req *v, size_t n,
			      json_t *ids, size_t *refused)
{
	json_t *ops = json_array();

	for (size_t i = 0; ops && i < n; i++) {
		if (kv_waits_for(v, 0, i) >= 0)
			continue;
		if (!may_revoke(s, &v[i])) {
			++*refused;
			continue;
		}
		json_array_append_new(ops, json_pack("{s:{s:o}}", "request_delete_range", "key",
						     etcd_bytes(v[i].ekey, v[i].ekey_len)));
		json_array_append_new(ids, json_integer(json_integer_value(
			json_object_get(v[i].value, "lease"))));
	}
	return ops;
}

static void on_revoke_read(void *arg, json_t *reply, const char *error)
{
	struct cl_query *q = arg;
	struct session *s = q->s;
	struct kv_req *v = NULL;
	long n = error ? -1 : kv_parse(reply, &v);
	json_t *ids = json_array(), *ops = NULL;
	size_t refused = 0;

	q->call = NULL;
	if (n >= 0 && ids)
		ops = revoke_deletes(s, v, (size_t)n, ids, &refused);
	if (error || !ops) {
		reply_error(s, true, q->id, error ? HASP_E_UNAVAILABLE : HASP_E_INTERNAL,
			    error ? error : "out of memory", NULL);
	} else if (json_array_size(ops) == 0 && refused) {
		reply_error(s, true, q->id, HASP_E_PERMISSION_DENIED, "the key's holders are other "
			    "users' or other hosts': only root and the daemon's uid may revoke",
			    NULL);
	} else if (json_array_size(ops) == 0) {
		reply_ok(s, q->id, json_pack("{s:[]}", "revoked"));
	} else if ((q->reply = json_pack("{s:O,s:O,s:i}", "ops", ops, "ids", ids, "done", 0))) {
		revoke_next(q);
		q = NULL;
	} else {
		reply_error(s, true, q->id, HASP_E_INTERNAL, "out of memory", NULL);
	}
	json_decref(ids);
	json_decref(ops);
	kv_free(v, n > 0 ? (size_t)n : 0);
	if (q)
		cl_query_free(q);
}

void cluster_revoke_key(struct session *s, const struct proto_request *req)
{
	struct cl_query *q = cl_query_new(s, req->id, "", 0, "", 0);
	size_t plen;
	char *p = q ? kv_lock_prefix(req->revoke.key, req->revoke.key_len, true, &plen) : NULL;

	if (!q)
		return; /* answered */
	if (!p) {
		cl_query_free(q);
		reply_error(s, true, req->id, HASP_E_INTERNAL, "out of memory", NULL);
		return;
	}
	cl_query_post(q, "/v3/kv/range", range_body(p, plen, p, plen, 0), on_revoke_read);
	free(p);
}
