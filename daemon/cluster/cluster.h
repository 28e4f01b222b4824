/* Cluster mode: named keys under cluster_prefix are arbitrated through
 * etcd, so that haspd instances on many machines share them (kv.h: how
 * they lie in etcd). The driver hands such requests here; files and other
 * keys never come. Off (d->cluster NULL) unless cluster_endpoints is set. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct haspd;
struct session;
struct proto_request;

/* Starts cluster mode when d->cfg asks for it: asks etcd for haspd's lease
 * (without waiting for the answer). Returns 0, or -1 with errno set. */
int cluster_start(struct haspd *d);
/* Revokes haspd's etcd lease (its locks go at once, not after its TTL),
 * waiting a second at most, and frees everything. */
void cluster_stop(struct haspd *d);

/* Whether key is in the cluster namespace. */
bool cluster_key(const struct haspd *d, const char *key, size_t len);
/* An acquire of a cluster key: answered now or later. */
void cluster_acquire(struct session *s, const struct proto_request *req);
/* A release, cancel or revoke of s's by lease or request id: false when it
 * is not a cluster one (the caller goes on). */
bool cluster_release(struct session *s, const struct proto_request *req);
bool cluster_cancel(struct session *s, const struct proto_request *req);
/* A release or renew of a cluster checkout by its token (checkout.c). */
bool cluster_checkin(struct session *s, const struct proto_request *req);
bool cluster_renew(struct session *s, const struct proto_request *req);
bool cluster_revoke_lease(struct session *s, const struct proto_request *req);
/* A revoke by key of a cluster key: every holder's, on any host. */
void cluster_revoke_key(struct session *s, const struct proto_request *req);
/* A list whose names may include cluster keys: local and cluster
 * resources in one page, answered later. false: it cannot include any. */
bool cluster_list(struct session *s, const struct proto_request *req);
/* Whether lease is one of s's cluster leases. */
bool cluster_session_lease(struct session *s, uint64_t lease);
/* The session's cluster requests end (their keys are deleted). */
void cluster_session_ends(struct session *s);
/* The stats' "cluster" member. */
json_t *cluster_stats(const struct haspd *d);
