/* A client of etcd's v3 JSON gateway over HTTP/1.1 (libevent's evhttp):
 * unary calls (POST /v3/..., one reply) and watches (a POST whose reply
 * streams). A call that fails on one endpoint (refused, reset, timed out,
 * a 5xx) is tried on the next until its deadline; the endpoint that last
 * answered is used first. Every callback runs inside the daemon's bracket
 * (loop.h). Knows nothing of locks. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "endpoints.h"

struct loop;
struct etcd;
struct etcd_call;
struct etcd_watch;

/* reply: the decoded reply on success, owned by the caller of cb for the
 * call only; error: NULL on success, else why it failed ("unavailable: ..."
 * when no endpoint answered, else etcd's own message). */
typedef void (*etcd_done_fn)(void *arg, json_t *reply, const char *error);

/* ttl_s bounds each call: it fails after max(1, ttl_s / 2) s. NULL on
 * ENOMEM. */
struct etcd *etcd_new(struct loop *loop, const struct endpoint *eps, size_t n, unsigned ttl_s);
void etcd_free(struct etcd *e);

/* POSTs body (consumed) to path ("/v3/kv/txn"). cb is called once, later
 * (never from inside this call), unless the call is forgotten. At most
 * BUSY_MAX calls are made at once, each on a connection of its own; the
 * rest wait their turn. NULL on ENOMEM (cb is never called). */
struct etcd_call *etcd_post(struct etcd *e, const char *path, json_t *body, etcd_done_fn cb,
			    void *arg);
/* The same for haspd's lease (grant, keepalive, revoke): ahead of every
 * queued call, with a few places of its own, failing after timeout_ms. */
struct etcd_call *etcd_post_urgent(struct etcd *e, const char *path, json_t *body,
				   unsigned timeout_ms, etcd_done_fn cb, void *arg);
/* cb will not be called; the call goes on, unanswered. */
void etcd_call_forget(struct etcd_call *c);

/* A watch on one key from a revision, told of its deletion. */
struct etcd_watch_ops {
	/* The key was deleted, at revision rev. */
	void (*deleted)(void *arg, int64_t rev);
	/* The watch ended without seeing a deletion: compacted (etcd no longer
	 * has the revisions from start: read the key's state again), a member
	 * without a leader, a broken connection. */
	void (*ended)(void *arg, const char *why);
};

/* Watches key (len bytes), which existed at revision since, for its
 * deletion after since. The watch starts from the current revision (etcd
 * serves a watch from an older one by a 100 ms loop, which would cost a
 * hand-off up to 100 ms whenever anything was written meanwhile); once it
 * is made, if the revision has moved past since, the key is read once: gone
 * already, it is reported deleted. NULL on ENOMEM. The watch ends by
 * etcd_watch_cancel() only; after ended() it must still be cancelled. */
struct etcd_watch *etcd_watch(struct etcd *e, const void *key, size_t len, int64_t since,
			      const struct etcd_watch_ops *ops, void *arg);
/* Accepts NULL; no callback comes after it. Returns NULL. */
struct etcd_watch *etcd_watch_cancel(struct etcd_watch *w);

/* The endpoint in use, as "http://HOST:PORT", into buf. */
void etcd_endpoint(const struct etcd *e, char *buf, size_t size);
/* Calls made and calls failed, since the start. */
void etcd_counts(const struct etcd *e, uint64_t *calls, uint64_t *errors);

/* JSON helpers for the gateway's encoding: bytes as base64 strings, int64s
 * as decimal strings. NULL on ENOMEM. */
json_t *etcd_bytes(const void *p, size_t len);
json_t *etcd_int(int64_t v);
/* A member's int64 (a string or a number), or def when absent. */
int64_t etcd_get_int(const json_t *obj, const char *name, int64_t def);
/* A member's bytes decoded into a malloc'ed buffer with a NUL after them,
 * *len set; NULL when absent or not base64 (or ENOMEM). */
char *etcd_get_bytes(const json_t *obj, const char *name, size_t *len);
