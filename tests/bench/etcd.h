/* etcd's lock service through its JSON gateway (/v3/): a lease from
 * /v3/lease/grant per connection, then /v3/lock/lock and /v3/lock/unlock.
 * HTTP/1.1 kept alive on a plain blocking socket, one write per request
 * (the leanest client there is). etcd 3.4's gateway: keys in base64,
 * 64-bit integers as strings. Shared by hasp-bench's cluster group and
 * peers/etcd-peer. Every call that can fail says why on stderr. */
#pragma once

#include "peers/peer.h"

struct etcd;

/* A connection to target, HOST:PORT, with a lease of its own; NULL on
 * failure. */
struct etcd *etcd_connect(const char *target);
/* Revokes the lease (unless e watches) and hangs up. */
void etcd_disconnect(struct etcd *e);
/* Takes the lock called name (waiting as long as it takes): 0, or -1. */
int etcd_lock(struct etcd *e, const char *name);
/* Gives back the lock last taken: 0, or -1. */
int etcd_unlock(struct etcd *e);
/* 1 when a second client holds or waits for the lock called name, 0 when
 * not yet, -1 on failure. */
int etcd_waiting(struct etcd *e, const char *name);
/* A key's value set (put) and the key deleted: 0, or -1. */
int etcd_put(struct etcd *e, const char *key, const char *value);
int etcd_delete(struct etcd *e, const char *key);
/* A watch of key from now on, on e's own connection, which then serves
 * nothing else: 0 once etcd says it is created, or -1. */
int etcd_watch(struct etcd *e, const char *key);
/* Waits for the watch's next message (an event): 0, or -1. */
int etcd_watch_next(struct etcd *e);

/* The same as a peer (peers/peer.h), for compare.sh's etcd-peer and
 * pingpong(): a key is the lock's name. */
extern const struct peer etcd_peer;
