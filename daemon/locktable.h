/* The lock manager: resources, holders, FIFO wait queues, timeouts, fences.
 *
 * Pure data structures: no sockets, no event loop, no JSON, no clock. The
 * caller sets the time with locktable_set_now() before each batch of calls
 * (monotonic microseconds: timeouts are requested in ms but kept exactly).
 * What a call changed beyond its own result (grants of waiting requests,
 * expiries, revoked leases, files to unlock or close) is reported as change
 * records, which the caller drains with locktable_next_change() after each
 * call, before the next, as dbus-broker's name registry returns a
 * NameChange. The table calls out only to ask a question (cb.admit), never
 * to report.
 *
 * Fences: every grant takes the next fence, above the last and not below
 * the wall clock, and only below the ceiling the caller has made durable
 * (locktable_set_fence_ceiling). A grant that finds no fence below it
 * waits, keeping its place (fences_starved says so), until the caller
 * raises the ceiling and calls locktable_kick_all(): no fence is ever given
 * that a later run could repeat. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "heap.h"
#include "htable.h"
#include "list.h"
#include "spares.h"

#define LT_KEY_MAX 1024
#define LT_OWNER_MAX 256
#define LT_MESSAGE_MAX 1024
/* A session's label (the client's name, from hello), NUL included. */
#define LT_LABEL_MAX 64
/* Longer timeouts (over 31 years) are cut to this, so deadlines cannot overflow. */
#define LT_TIMEOUT_MAX_MS 1000000000000LL
/* How many steps (an edge of the wait-for graph followed, or a waiter
 * passed on the way to the one a request waits for) a deadlock search may
 * take before it gives up and lets the request wait (counted in
 * stats.deadlock_searches_cut): a bound on the daemon's time per request. */
#define LT_DEADLOCK_STEPS 10000
/* The waits of a deadlock reported in full; a longer cycle is cut. */
#define LT_CYCLE_MAX 16
/* How long a request that tries once (timeout 0) waits for a fence to give
 * before it expires (and is answered busy): a store takes one disk sync. */
#define LT_FENCE_WAIT_MS 1000
/* A semaphore admits at most this many holders. */
#define LT_LIMIT_MAX 10000
/* A multi-key request names 2 .. LT_MULTI_MAX keys. */
#define LT_MULTI_MAX 64

enum lt_mode { LT_EXCLUSIVE, LT_SHARED };

enum lt_result {
	LT_OK,
	LT_GRANTED,
	LT_HANDED_OVER,         /* granted, and the os attachment holds it for the
				 * requester: reported as a GRANTED record, not held */
	LT_QUEUED,
	LT_BUSY,
	LT_ALREADY_HELD,
	LT_UNKNOWN_LEASE,
	LT_UNKNOWN_REQUEST,
	LT_DEADLOCK,            /* its wait would close a cycle: locktable.cycle says which */
	LT_BAD_LIMIT,           /* the request's limit is not the key's (either may be
				 * none): nothing was made; the key's is r->limit */
	LT_NOMEM,
};

/* The process that sent a request: its pid, uid and gid as the kernel told
 * them (SCM_CREDENTIALS), which may differ from the session's. */
struct lt_cred {
	pid_t pid;
	uid_t uid;
	gid_t gid;
};

/* Owners may share a group (the caller's: e.g. one per uid), whose leases
 * and waiting requests the table counts too. */
struct lt_group {
	size_t entries;
};

/* One per session, embedded in the caller's session object. */
struct lt_owner {
	struct list held;       /* lt_entry.onode, granted */
	struct list waiting;    /* lt_entry.onode, queued */
	struct list upgrading;  /* lt_upgrade.onode, pending upgrades of its leases */
	size_t nheld, nwaiting;
	struct lt_group *group; /* or NULL */
	uint64_t session;       /* the caller's session id, for display */
	char label[LT_LABEL_MAX]; /* the caller's name for it (UTF-8), or "" */
	pid_t pid;
	uid_t uid;
	gid_t gid;
	/* A deadlock search's marks (deadlock.c): found in search number
	 * dl_search, reached through its entry dl_via, which the parent
	 * owner's request dl_from waits for (NULL: the new request's), and
	 * queued after dl_next. */
	uint64_t dl_search;
	const struct lt_entry *dl_via, *dl_from;
	struct lt_owner *dl_next;
};

struct lt_resource {
	struct hnode node;      /* in locktable.resources, by key */
	struct list holders;    /* lt_entry.qnode, unordered */
	struct list waiters;    /* lt_entry.qnode, FIFO */
	void *os;               /* the caller's, e.g. a file: grants go through cb.admit;
				 * then a link to the next resource to unlock
				 * follows the key (locktable.c) */
	uint32_t nholders, nwaiters;
	uint16_t key_len;       /* at most LT_KEY_MAX */
	uint8_t held_mode;      /* enum lt_mode, meaningful while nholders > 0 */
	uint8_t change;         /* LT_CHANGE_UNLOCKED or _FREED while reported, else 0 */
	uint16_t limit;         /* a semaphore's (1 .. LT_LIMIT_MAX), the first request's,
				 * kept while it has holders or waiters; 0: none */
	bool upgrading;         /* the first holder's upgrade is pending (lt_resource_upgrade()):
				 * it goes ahead of every waiter. In the padding: the
				 * struct stays 64 bytes */
	char key[];             /* NUL-terminated */
};

/* A shared lease waiting to become exclusive (locktable_convert()): the
 * lease stays a holder meanwhile, and the upgrade goes ahead of every
 * waiter of its resource, which is granted nothing until it is done. */
struct lt_upgrade {
	struct heapnode deadline;  /* in locktable.upgrade_deadlines, while timed */
	struct list onode;         /* in lt_owner.upgrading */
	struct lt_entry *lease;    /* NULL once it ended (its record) */
	struct lt_owner *owner;
	struct lt_resource *res;
	struct lt_upgrade *next;   /* in locktable.upgrades, while reported */
	uint64_t lease_id;         /* the lease's, for its record */
	uint64_t fence;            /* the new fence, once granted */
	uint64_t since_us;         /* when it began to wait */
	int64_t timeout_ms;        /* as requested: -1 forever, 0 try once (a fence wait) */
	int64_t tag;               /* the caller's: the convert's request id */
	uint8_t change;            /* its enum lt_change_kind while reported, else 0 */
	bool timed;
};

struct lt_multi;

/* A lease, or a request waiting to become one. Kept small (128 bytes): a
 * million of them should cost well under 256 bytes each, resource and
 * buckets included. */
struct lt_entry {
	struct list qnode;      /* in res->holders or res->waiters */
	struct list onode;      /* in owner->held or owner->waiting */
	union {
		struct heapnode deadline; /* in locktable.deadlines (key: µs), while
					   * waiting with a timeout */
		struct {
			struct hnode by_id; /* in locktable.leases, while held */
			uint64_t waited_us; /* once granted: how long it waited */
		};
	};
	struct hnode by_pair;   /* in locktable.pairs: (owner, resource) */
	struct lt_resource *res;
	struct lt_owner *owner;
	uint64_t id;            /* lease id, unique for the table's life */
	uint64_t fence;         /* 0 while waiting */
	uint64_t since_us;      /* when queued; once held, when granted */
	union {
		int64_t timeout_ms;       /* as requested: -1 forever; meaningless
					   * once granted */
		struct lt_entry *granted_next; /* in locktable.granted, while reported */
	};
	int64_t tag;            /* the caller's, e.g. the acquire's request id */
	struct lt_multi *multi; /* a multi-key request's part, or NULL */
	uint8_t mode;           /* enum lt_mode */
	uint8_t change;         /* enum lt_change_kind while reported, else 0 */
	bool held;
	bool timed;
	bool has_life;          /* what follows the entry: its lt_life if it has a TTL or
				 * detaches, then */
	bool has_sender;        /* its sender's lt_cred if it is not the owner's (always
				 * for one that detaches), then the owner name, then */
	bool has_owner_name;    /* the message */
	bool has_message;
};

/* A multi-key request or lease: one ordinary entry per key (its parts, on
 * their resources' queues or holders like any other), all with one id,
 * tag, owner and (once held) fence. It is granted all at once, when every
 * part is compatible with its resource's holders and no request that it
 * conflicts with is queued ahead of it there, and it ends as one (release,
 * cancel, expiry, revoke, its owner's end, through any part). Its change
 * records name parts[0] alone; a gone record's other parts are freed with
 * it, once the record is drained (their keys can be named until then). In
 * the stats it counts once (a lease, a waiter, a grant); its owner and
 * group count each part. */
struct lt_multi {
	size_t n;               /* parts, 2 .. LT_MULTI_MAX */
	size_t refs;            /* parts not yet freed */
	struct lt_entry *parts[]; /* in the request's order */
};

/* One key of a multi-key request. */
struct lt_part {
	const char *key;
	size_t key_len;         /* 1 .. LT_KEY_MAX */
	enum lt_mode mode;
};

#define LT_TOKEN_LEN 16

/* What a lease that has a time-to-live or detaches carries besides. */
struct lt_life {
	struct heapnode expiry;   /* in locktable.expiries (key: monotonic µs), from the
				   * request on, at UINT64_MAX until it is held with a
				   * TTL, so that no grant or renew needs memory */
	struct hnode by_token;    /* in locktable.tokens, once detached */
	uint64_t ttl_ms;          /* 0: none */
	uint64_t granted_wall_us; /* the wall clock at the grant (or as restored) */
	uint8_t token[LT_TOKEN_LEN];
	bool detach;              /* asked to detach at its grant */
	bool detached;            /* belongs to a detached owner now, not a session */
};

/* The entry's lt_life, or NULL. */
struct lt_life *lt_entry_life(const struct lt_entry *e);
/* Whether e is a detached lease (a checkout). */
bool lt_entry_detached(const struct lt_entry *e);

/* The process that asked for the entry: the request's sender, or its owner. */
struct lt_cred lt_entry_sender(const struct lt_entry *e);

/* The entry's owner name and message, or NULL. */
const char *lt_entry_owner_name(const struct lt_entry *e);
const char *lt_entry_message(const struct lt_entry *e);

/* What changed, in the order it happened: entries' changes first, then
 * upgrades', then resources'. */
enum lt_change_kind {
	LT_CHANGE_GRANTED = 1,  /* a waiting request became a lease */
	LT_CHANGE_EXPIRED,      /* a waiting request timed out and is gone */
	LT_CHANGE_REVOKED,      /* a lease was revoked and is gone */
	LT_CHANGE_LAPSED,       /* a lease's time-to-live ran out, and it is gone */
	LT_CHANGE_UNLOCKED,     /* an os resource has no holders any more */
	LT_CHANGE_FREED,        /* a resource is gone (its os, if any, is the caller's to free) */
	/* A pending upgrade (lt_change.upgrade) ended: */
	LT_CHANGE_UPGRADED,     /* granted: its lease is exclusive, with a new fence */
	LT_CHANGE_UPGRADE_EXPIRED, /* timed out (or tried once): its lease stays shared */
	LT_CHANGE_UPGRADE_ENDED,   /* its lease ended first (released, revoked, lapsed) */
};

/* A change record. The entry or resource it names stays valid (and still
 * names its resource, whose holders can be reported) until the next
 * locktable_next_change() or the next call that changes the table. */
struct lt_change {
	enum lt_change_kind kind;
	struct lt_entry *entry;         /* granted, expired, revoked */
	struct lt_resource *res;        /* the entry's, or the one unlocked or freed */
	const struct lt_upgrade *upgrade; /* an upgrade's record: its lease_id, fence, tag,
					   * owner, res (entry is NULL) */
};

/* The os attachment's answer to a request the table would grant. */
enum lt_admit {
	LT_ADMIT_NO,            /* not now: the request keeps its place, and the
				 * caller calls locktable_kick() when it may have
				 * changed */
	LT_ADMIT_HOLD,          /* granted: the table holds it */
	LT_ADMIT_HANDED_OVER,   /* granted, and the lock is the requester's own
				 * now, outside the table (a flock on the client's
				 * descriptor): it gets a fence and is reported
				 * granted, then is gone, as if released at once */
};

struct lt_callbacks {
	/* For resources with an os attachment only: may e (a request on r,
	 * compatible with its holders) be granted now? */
	enum lt_admit (*admit)(struct lt_resource *r, const struct lt_entry *e, void *arg);
	/* For resources with an os attachment only: may lease e, held on r,
	 * change to mode now (the os lock converted, never let go of)? A
	 * downgrade must always be allowed. NULL: yes. */
	bool (*convert)(struct lt_resource *r, const struct lt_entry *e, enum lt_mode mode,
			void *arg);
	void *arg;
};

/* Every lease granted (at once, or after a wait) or restored ends by a
 * release, a revoke, its time-to-live (expired) or its owner's end
 * (disconnects), is handed over to its requester (handed_over: the fd
 * form), or is held still (leases): granted_at_once + granted_after_wait +
 * restored == releases + revokes + expired + disconnects + handed_over +
 * leases. A waiting request that its owner's end removes is abandoned.
 * detached: leases held now by detached owners (checkouts). */
struct lt_stats {
	uint64_t acquires, granted_at_once, granted_after_wait, busy, timeouts,
		 cancels, releases, already_held, owners_ended, revokes,
		 disconnects, abandoned, handed_over, expired, restored;
	/* searches of the wait-for graph (one per request about to wait),
	 * requests failed with a deadlock, searches cut at their bound */
	uint64_t deadlock_searches, deadlocks, deadlock_searches_cut;
	/* converts of a lease to the other mode (a downgrade, or an upgrade
	 * asked for: its busy, timeout, cancel or deadlock counts there too),
	 * downgrades, upgrades granted at once or after a wait */
	uint64_t converts, downgrades, upgrades_at_once, upgrades_after_wait;
	size_t resources, leases, waiters, detached;
	size_t upgrading;       /* pending upgrades now */
};

/* One wait of a deadlock: owner's request waiter (NULL: the request
 * refused) asked for mode on res, and waits for blocker, a lease or a
 * request queued ahead, of the next wait's owner (the last's blocker is
 * the first's owner's). */
struct lt_wait {
	const struct lt_owner *owner;
	const struct lt_entry *waiter;
	const struct lt_resource *res;
	enum lt_mode mode;
	const struct lt_entry *blocker;
};

/* The cycle a request would have closed, its own wait first. */
struct lt_cycle {
	struct lt_wait waits[LT_CYCLE_MAX];
	size_t len;             /* waits shown, at most LT_CYCLE_MAX */
	size_t total;           /* waits in the cycle: one per session in it */
};

struct locktable {
	struct htable resources;
	struct htable leases;
	struct htable pairs;
	struct heap deadlines;
	struct heap expiries;   /* lt_life.expiry */
	struct heap upgrade_deadlines; /* lt_upgrade.deadline */
	struct htable tokens;   /* lt_life.by_token */
	struct lt_callbacks cb;
	uint64_t now_us;        /* monotonic, for timeouts and ages */
	uint64_t wall_us;       /* wall clock, the floor of the next fence */
	uint64_t last_fence;
	uint64_t fence_ceiling; /* no fence is given at or above it */
	bool fences_starved;    /* a grant waits for a higher ceiling */
	uint64_t last_id;
	struct lt_stats stats;
	/* Change records not yet drained: entries gone (expired, revoked;
	 * by qnode), entries granted (by granted_next), os resources to
	 * unlock (by the link after the key), resources gone (by node). */
	struct list gone;
	struct lt_entry *granted, **granted_tail;
	struct lt_resource *unlock, **unlock_tail;
	struct lt_resource *dead, **dead_tail;
	struct lt_upgrade *upgrades, **upgrades_tail; /* upgrades ended, by next */
	struct lt_upgrade *drained_upgrade;
	struct lt_entry *drained_entry;       /* the last record's, if it is to be freed */
	struct lt_resource *drained_res;
	struct spares spares;   /* freed entries and resources, for the next */
	/* After LT_DEADLOCK, the cycle: valid until the next call that
	 * changes the table. */
	struct lt_cycle cycle;
	uint64_t dl_searches;   /* the number of the last deadlock search */
	size_t dl_steps_max;    /* a search's bound: LT_DEADLOCK_STEPS */
};

struct lt_request {
	const char *key;
	size_t key_len;         /* 1 .. LT_KEY_MAX */
	enum lt_mode mode;
	int64_t timeout_ms;     /* -1 forever, 0 try once, N > 0 wait N ms */
	int64_t tag;
	const char *owner_name; /* optional, <= LT_OWNER_MAX bytes */
	const char *message;    /* optional, <= LT_MESSAGE_MAX bytes */
	const struct lt_cred *sender; /* optional: the owner's pid, uid and gid if NULL */
	int64_t ttl_ms;         /* 0: none; else the lease expires that long after its
				 * grant or its last renew */
	bool detach;            /* at its grant, the lease is to be detached
				 * (locktable_detach(): the caller's decision) */
	bool ahead;             /* the requester holds the lock already, outside the
				 * table (its own flock, re-taken or converted, as
				 * flock(2) does): granted at once if admitted,
				 * ahead of any waiters */
	uint32_t limit;         /* 0: an ordinary key; else 1 .. LT_LIMIT_MAX, a
				 * semaphore of that many exclusive holders (a named
				 * key's, in exclusive mode: the caller checks) */
};

int locktable_init(struct locktable *lt, const struct lt_callbacks *cb);
/* Frees every resource and entry; owners must not be used afterwards. */
void locktable_done(struct locktable *lt);

/* mono_us: a monotonic clock in microseconds; wall_us: the wall clock in
 * microseconds since the epoch, the floor of the next fence. */
void locktable_set_now(struct locktable *lt, uint64_t mono_us, uint64_t wall_us);
/* Fences issued from now on are above floor (e.g. the last fence of a
 * previous run). */
void locktable_set_fence_floor(struct locktable *lt, uint64_t floor);
/* Fences below ceiling may be given (UINT64_MAX, the default: any). A
 * higher one ends fences_starved: call locktable_kick_all() then. */
void locktable_set_fence_ceiling(struct locktable *lt, uint64_t ceiling);
/* How many fences may be given before the ceiling, at the clock set now. */
uint64_t locktable_fences_left(const struct locktable *lt);

void lt_owner_init(struct lt_owner *o, uint64_t session, pid_t pid, uid_t uid, gid_t gid);

/* Creates the resource of key with os attached (the table then owns os, and
 * reports it freed when the resource goes), or finds it if it has this os.
 * An unused new resource lives until the next call that could free it:
 * follow this with locktable_acquire(). NULL when out of memory or when key
 * names a resource with another os or none (os is left to the caller). */
struct lt_resource *locktable_attach(struct locktable *lt, const char *key, size_t key_len,
				     void *os);
/* LT_GRANTED (*ret is the lease; no record), LT_HANDED_OVER (granted and
 * handed over, LT_ADMIT_HANDED_OVER: reported by a GRANTED record, which
 * answers it), LT_QUEUED (*ret is the waiter), LT_BUSY (timeout 0 and not
 * grantable), LT_ALREADY_HELD (the owner holds or waits for this
 * resource), LT_DEADLOCK (its wait would close a cycle of the wait-for
 * graph, in lt->cycle; nothing was queued), LT_BAD_LIMIT (req->limit is
 * not the key's: locktable_find() tells the key's), LT_NOMEM. */
enum lt_result locktable_acquire(struct locktable *lt, struct lt_owner *o,
				 const struct lt_request *req, struct lt_entry **ret);
/* A multi-key request for the n (2 .. LT_MULTI_MAX) distinct named keys
 * of parts, each in its mode (req gives the rest: its key and mode are
 * ignored; no limit, TTL, detach or ahead). Queued on every key at once at
 * the tail, holding nothing while it waits; granted all-or-nothing. The
 * results are locktable_acquire()'s, *ret being parts[0] of its lt_multi;
 * LT_BAD_LIMIT when a key is a semaphore in use; LT_ALREADY_HELD when the
 * owner holds or waits for any of the keys. Nothing is queued unless
 * LT_QUEUED. */
enum lt_result locktable_acquire_multi(struct locktable *lt, struct lt_owner *o,
				       const struct lt_request *req, const struct lt_part *parts,
				       size_t n, struct lt_entry **ret);
/* Lets r go if nothing holds or waits on it: a resource found or attached
 * for a request that failed before locktable_acquire(). */
void locktable_put_unused(struct locktable *lt, struct lt_resource *r);
/* LT_OK or LT_UNKNOWN_LEASE (no such lease, or not this owner's). */
enum lt_result locktable_release(struct locktable *lt, struct lt_owner *o, uint64_t lease_id);
/* Converts o's lease to mode (issue 17). LT_OK: it has that mode already
 * (nothing changes, no new fence). A downgrade: LT_GRANTED at once, the
 * same fence, and the queue moves. An upgrade: LT_GRANTED when the lease
 * is the only holder (a new fence), else it waits (LT_QUEUED: the lease
 * stays a shared holder, and nothing else on the resource is granted
 * before the upgrade ends, reported by an LT_CHANGE_UPGRADED, _EXPIRED or
 * _ENDED record), LT_BUSY (timeout_ms 0), LT_DEADLOCK (lt->cycle, as for
 * an acquire). LT_UNKNOWN_LEASE: not o's; LT_BAD_LIMIT: a semaphore's;
 * LT_ALREADY_HELD: its upgrade waits already; LT_NOMEM. *ret: the lease
 * (LT_GRANTED, LT_OK). */
enum lt_result locktable_convert(struct locktable *lt, struct lt_owner *o, uint64_t lease_id,
				 enum lt_mode mode, int64_t timeout_ms, int64_t tag,
				 struct lt_entry **ret);
/* The pending upgrade of lease e, or NULL. */
const struct lt_upgrade *locktable_upgrade_of(const struct lt_entry *e);
/* Removes the owner's waiting request, or pending upgrade, with this tag:
 * LT_OK or LT_UNKNOWN_REQUEST. */
enum lt_result locktable_cancel(struct locktable *lt, struct lt_owner *o, int64_t tag);
/* Ends a lease whoever holds it: a release whose right the caller checked
 * (a checkout's, by its token or uid). */
void locktable_end(struct locktable *lt, struct lt_entry *lease);
/* Moves a lease that asked to (lt_life.detach) to another owner, detached
 * from the session that asked for it, with its token. */
void locktable_detach(struct locktable *lt, struct lt_entry *lease, struct lt_owner *to,
		      const uint8_t token[LT_TOKEN_LEN]);
/* The detached lease with this token, or NULL. */
struct lt_entry *locktable_by_token(const struct locktable *lt, const uint8_t token[LT_TOKEN_LEN]);
/* How long until a lease with a TTL expires (µs, at the table's clock;
 * 0 when due). */
uint64_t lt_life_left_us(const struct locktable *lt, const struct lt_life *life);
/* A detached lease, any, or NULL when none is left. */
struct lt_entry *locktable_any_detached(const struct locktable *lt);
/* Its time-to-live starts again, as ttl_ms (> 0) or (0) as it was: LT_OK,
 * or LT_UNKNOWN_LEASE when it has no lt_life or (with 0) no TTL. It needs
 * no memory. */
enum lt_result locktable_renew(struct locktable *lt, struct lt_entry *lease, int64_t ttl_ms);
/* A detached lease that a previous run granted, held again by o (a
 * detached owner) as it was: its id, fence, token, grant time, and
 * expires_us from now (<= 0: at the next locktable_expire(); ignored
 * without a TTL). Granted at once if compatible with the holders and
 * admitted (no fence taken): LT_GRANTED and *ret, else LT_BUSY (and
 * nothing held), or LT_NOMEM. */
struct lt_restore {
	uint64_t id, fence, granted_wall_us;
	int64_t expires_in_us;
	const uint8_t *token;
};
enum lt_result locktable_restore(struct locktable *lt, struct lt_owner *o,
				 const struct lt_request *req, const struct lt_restore *how,
				 struct lt_entry **ret);
/* Ends a lease whoever holds it (the administrative path), then grants
 * whoever can go; the lease is reported (LT_CHANGE_REVOKED). */
void locktable_revoke(struct locktable *lt, struct lt_entry *lease);
/* Ends every lease on r that may() allows, collected before any is ended
 * (so that the waiters they let in are not hit), then grants whoever can go.
 * Each is reported (LT_CHANGE_REVOKED). Returns how many were ended, and in
 * *ret_refused how many may() kept. */
size_t locktable_revoke_all(struct locktable *lt, struct lt_resource *r,
			    bool (*may)(const struct lt_entry *lease, const void *arg),
			    const void *arg, size_t *ret_refused);
/* Ends every lease and waiter of the owner, then grants whoever can go. */
void locktable_owner_done(struct locktable *lt, struct lt_owner *o);
/* Grants from the head of r's queue what can be granted now. */
void locktable_kick(struct locktable *lt, struct lt_resource *r);
/* The same for every resource (after the fence ceiling was raised). */
void locktable_kick_all(struct locktable *lt);
/* Expires every waiter whose deadline is <= now, and every lease whose
 * time-to-live ran out (LT_CHANGE_LAPSED). */
void locktable_expire(struct locktable *lt);
/* The next change record of the calls so far, oldest first: true and *ret,
 * or false when none is left (the records' dead entries and resources are
 * then freed). Drain them all after each call that changes the table. */
bool locktable_next_change(struct locktable *lt, struct lt_change *ret);
/* The earliest waiter deadline or lease expiry (monotonic µs), or -1 when none. */
int64_t locktable_next_deadline(const struct locktable *lt);

struct lt_resource *locktable_find(const struct locktable *lt, const char *key, size_t key_len);
/* Whether a request in mode (with limit, 0: none) on key would have to
 * wait now: the key has holders it conflicts with, or waiters (whom it may
 * not pass). Not when its limit is not the key's: it is refused at once.
 * Changes nothing. */
bool locktable_would_wait(const struct locktable *lt, const char *key, size_t key_len,
			  enum lt_mode mode, uint32_t limit);
/* r's pending upgrade (its first holder's, found in its owner's list), or NULL. */
const struct lt_upgrade *lt_resource_upgrade(const struct lt_resource *r);
/* Whether a request in mode may join r's holders now, queue order aside:
 * the one rule (a semaphore admits up to its limit). */
bool lt_resource_compatible(const struct lt_resource *r, enum lt_mode mode);
/* The lease with this id (a multi-key lease's parts[0]), or NULL. */
struct lt_entry *locktable_lease(const struct locktable *lt, uint64_t lease_id);
void locktable_foreach(const struct locktable *lt,
		       void (*fn)(struct lt_resource *r, void *arg), void *arg);

const char *lt_mode_name(enum lt_mode m);
