/* Inside cluster mode: its state, a lock request's, and what the files of
 * cluster/ share. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "etcd.h"
#include "kv.h"
#include "list.h"
#include "locktable.h"
#include "proto-daemon.h"

struct haspd;
struct session;
struct loop_event;

enum cl_state {
	CL_PARKED,              /* waits for haspd's etcd lease */
	CL_CREATING,            /* its key being put */
	CL_WAITING,             /* watching the request ahead (or reading again) */
	CL_HELD,
	CL_DETACHING,           /* held, and being checked out (checkout.c) */
	CL_ENDING,              /* ended here; its key being deleted */
};

/* One request on a cluster key, from its acquire until its key is gone
 * from etcd. */
struct cl_lock {
	struct cluster *c;
	struct session *s;      /* NULL once its session ended */
	struct user *payer;     /* its uid's, charged one file (its watch) */
	struct list slink;      /* in s->cluster_locks */
	struct list clink;      /* in cluster.locks or cluster.parked */
	enum cl_state state;
	uint64_t lease;         /* its lease id, from the lock table's ids */
	int64_t tag;            /* the acquire's request id */
	int64_t release_id;     /* a release waiting for the delete, or 0 */
	bool release_by_key;    /* which named the key: its reply names the lease */
	bool shared;
	int64_t timeout_ms;     /* -1: forever */
	uint64_t deadline_us;   /* then, on the monotonic clock read at the request */
	int64_t ttl_ms;         /* a checkout's TTL, or 0 */
	bool detach;            /* to be checked out once held */
	int64_t co_lease;       /* then: the etcd lease of its own */
	bool abandoned;         /* cancelled, or its session or haspd's lease ended,
				 * while being checked out: given up */
	char token[33];         /* and its token, hex */
	int64_t etcd_lease;     /* the etcd lease its key is bound to */
	char *key;              /* the lock's key (NUL-terminated) */
	size_t key_len;
	char *ekey;             /* its etcd key (kv.h) */
	size_t ekey_len;
	json_t *value;          /* who asked, as etcd holds it */
	int64_t rev;            /* its key's create revision: the fence */
	size_t blockers;        /* waiting: the requests ahead it waits for, as last
				 * read (kv_blockers()), less the deletions seen */
	json_t *holders;        /* as last read, for a timeout's error */
	struct lt_cred sender;
	uint64_t since_wall_us;
	uint64_t asked_us;      /* monotonic: when it was asked for */
	uint64_t held_since_us; /* monotonic: when it was granted, or 0 */
	struct loop_event *timer; /* its timeout, or a retry of its delete */
	struct loop_event *reread; /* a read again, a while after a watch ended */
	struct etcd_call *call; /* in flight */
	struct etcd_watch *watch; /* on the request ahead, or on its own key once held */
	struct cl_query *revoker; /* a revoke by lease id, answered at the delete */
};

struct cluster {
	struct haspd *d;
	struct etcd *etcd;
	char prefix[256];
	size_t prefix_len;
	char host[256];
	unsigned ttl_s;
	int64_t lease;          /* haspd's etcd lease; 0 while it has none */
	struct etcd_call *granting;  /* asking for one */
	struct etcd_call *keeping;   /* a keepalive in flight */
	uint64_t lease_ok_us;   /* when etcd last said it lives (monotonic) */
	uint64_t grant_tried_us; /* when one was last asked for */
	uint64_t keep_sent_us;  /* when the keepalive in flight was sent */
	bool grant_failing;     /* the last ask failed (logged once) */
	struct loop_event *tick;    /* cl_lease_tick() */
	struct list locks;      /* cl_lock.clink, not parked */
	struct list parked;     /* cl_lock.clink */
	size_t nheld, nwaiting;
	uint64_t lost_total, revoked_total;
};

/* cluster.c: l's etcd key, bound to etcd_lease. Returns 0, or -1 on ENOMEM. */
int cl_lock_name(struct cl_lock *l, int64_t etcd_lease);

/* query.c: the list and revoke requests of s still in flight end. */
void cluster_queries_end(struct session *s);

/* cluster-lock.c: one request's life. */
void cl_lock_send(struct cl_lock *l);
/* Ends l here: its key is deleted from etcd (now, or after its put). */
void cl_lock_end(struct cl_lock *l);
/* Ends l without a delete: its key is gone already, or goes with haspd's
 * etcd lease. */
void cl_lock_drop(struct cl_lock *l);
/* Tells l's session that l is gone (event: "revoked" or "lost"). */
void cl_lock_tell(struct cl_lock *l, const char *event, const char *why);
/* Answers l's acquire with an error (code HASP_E_*). */
void cl_lock_fail(struct cl_lock *l, int code, const char *msg);

/* Arms l's timer for its deadline_us. */
void cl_lock_arm_deadline(struct cl_lock *l);
/* Its reread's callback. */
void cl_lock_reread(void *arg);
/* Its timer's callback. */
void cl_lock_timer(void *arg);

/* checkout.c: l, now held, leaves its session for an etcd lease of its
 * own (l is freed once answered). */
void cl_lock_detach(struct cl_lock *l);

/* Answers the revoke by lease id of l, if any (its delete is answered, or
 * l goes otherwise). */
void cl_lock_answer_revoker(struct cl_lock *l);

/* query.c: a request of s's answered when etcd's reply comes. */
struct cl_query {
	struct session *s;
	struct list link;       /* in s->cluster_queries */
	struct etcd_call *call;
	int64_t id;
	struct proto_list_args args; /* a list's, pointing into text */
	char *text;             /* a list's prefix then after; a checkout's token */
	const char *key;        /* a release's key, in text, or NULL */
	size_t key_len;
	int64_t ttl_ms;         /* a renew's */
	int64_t etcd_lease;     /* a checkout's */
	json_t *reply;          /* what to answer, built along the way */
	struct cl_lock *lock;   /* a revoke by lease id's, until its delete is answered */
};
/* Queries a session may have in flight. */
#define CL_QUERIES_MAX 8
/* And a uid over its sessions (root and haspd's uid: no limit). */
#define CL_USER_QUERIES_MAX 64
/* A query of s's owning a copy of a and b (text: a, NUL, b, NUL); NULL,
 * with the error answered (limit, or out of memory), when it cannot be. */
struct cl_query *cl_query_new(struct session *s, int64_t id, const char *a, size_t alen,
			      const char *b, size_t blen);
/* Posts body to path with cb(q); answers internal and frees q when it
 * cannot. */
void cl_query_post(struct cl_query *q, const char *path, json_t *body, etcd_done_fn cb);
void cl_query_free(struct cl_query *q);

/* cluster-events.c: l's events, to the watchers and the histograms. */
void cl_event_queued(struct cl_lock *l);
void cl_event_granted(struct cl_lock *l);
/* l ends here, held or waiting, for reason ("release", "cancel",
 * "disconnect", "timeout", "revoke", "lost"). */
void cl_event_ended(struct cl_lock *l, const char *reason);

/* cluster-lease.c: haspd's etcd lease. */
void cl_lease_want(struct cluster *c);
void cl_lease_revoke(struct cluster *c);
/* The lease's timer, every CL_TICK_MS. */
void cl_lease_tick(void *arg);
#define CL_TICK_MS 250
