/* How cluster locks lie in etcd. A request on key K is the etcd key
 *   hasp/locks/K \0 <haspd's etcd lease, hex>-<its lease id>
 * bound to its haspd's etcd lease, whose value is a JSON object naming the
 * holder (host, session, lease, request, pid, uid, gid, mode, client,
 * owner, message, since_us). K never holds a NUL, so the requests on K are
 * exactly the keys from "hasp/locks/K\0" to "hasp/locks/K\1". */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>


#define KV_ROOT "hasp/locks/"
#define KV_ROOT_LEN (sizeof(KV_ROOT) - 1)

/* A malloc'ed buffer: KV_ROOT, then key, then (with sep) a NUL; *len set. */
char *kv_lock_prefix(const char *key, size_t key_len, bool sep, size_t *len);
/* The end of the range of keys that start with p: p with its last byte
 * increased (malloc'ed, *len set). */
char *kv_range_end(const char *p, size_t n, size_t *len);

/* One request on a lock, as etcd holds it. */
struct kv_req {
	char *ekey;             /* its etcd key */
	size_t ekey_len;
	const char *key;        /* the lock's key, inside ekey */
	size_t key_len;
	json_t *value;          /* who asked (an object, perhaps empty) */
	int64_t rev;            /* its create revision: its place, and its fence */
	bool shared;
};

/* The kvs of a range reply as requests, by lock then create revision. Returns
 * how many (0 for none), or -1 on ENOMEM or a reply that is not etcd's. */
long kv_parse(const json_t *range, struct kv_req **out);
void kv_free(struct kv_req *v, size_t n);
/* The index of the request whose etcd key is ekey, or -1. */
long kv_find(const struct kv_req *v, size_t n, const char *ekey, size_t len);
/* The index of the request that v[i] waits for, among its lock's requests
 * v[from..] in revision order, or -1 when it holds the lock: etcd's
 * RWMutex order, in which a reader waits for the last writer ahead of it
 * and a writer for whoever is last ahead of it. */
long kv_waits_for(const struct kv_req *v, size_t from, size_t i);
/* How many of the requests ahead of v[i] it waits for: all of them for a
 * writer, the writers for a reader. None of them can join later (create
 * revisions only grow), so when as many deletions were seen, v[i] holds. */
size_t kv_blockers(const struct kv_req *v, size_t from, size_t i);
/* Sets o's age member (held_ms or waiting_ms) since since_us, and its
 * "since_ms" and "since" (RFC 3339, UTC) as list shows them, on the wall
 * clock. Returns 0, or -1 on ENOMEM. */
int kv_set_times(json_t *o, uint64_t since_us, uint64_t now_us, const char *age);
/* The holders among v[from..to) (one lock's requests), as list and error
 * replies show them, each with its host; now_wall_us for held_ms. */
json_t *kv_holders(const struct kv_req *v, size_t from, size_t to, uint64_t now_wall_us);
/* The waiters, likewise. */
json_t *kv_waiters(const struct kv_req *v, size_t from, size_t to, uint64_t now_wall_us);
