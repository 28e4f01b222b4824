/* Per-uid accounting and the limits that use it, so that one local user
 * cannot take every session, descriptor or all the daemon's memory: how
 * many sessions each uid has, descriptors it has in flight, files it has
 * the daemon hold open, and (as a lock table group) its leases and waiting
 * requests over all its sessions. Root and the daemon's own uid are not
 * limited per uid, and have a reserve of sessions and descriptors that no
 * other uid can use up: administrators must always get in, to list and
 * revoke. Pure: the shell measures the descriptor table and tells. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"
#include "htable.h"
#include "locktable.h"

/* Sessions past max_sessions that only root and the daemon's uid may open. */
#define USERS_ADMIN_SESSIONS 64
/* Descriptors that only root and the daemon's uid may make the daemon use. */
#define USERS_ADMIN_FDS 64
/* Descriptors one limited uid may have in flight (sent, not yet claimed by
 * a request) over all its sessions. */
#define USERS_FDS_IN_FLIGHT_MAX 64

struct user {
	struct hnode node;          /* in users.table, by uid */
	struct lt_group group;      /* leases + waiting requests of its sessions */
	uid_t uid;
	bool limited;               /* the per-uid limits apply */
	size_t sessions;
	size_t fds_in_flight;       /* received with its lines, not yet claimed */
	size_t files;               /* file descriptors the daemon holds for it */
	size_t watchers;            /* its sessions that watch (watch.h) */
	size_t cluster_locks;       /* its requests on cluster keys, until deleted */
	unsigned cluster_queries;   /* its lists, revokes, ... reading etcd, in flight */
	struct lt_owner checkouts;  /* its detached leases (checkouts.h), in group */
	unsigned holds;             /* users_hold() and users_defer() */
	bool deferred;              /* in users.deferred */
	struct list defer_link;
};

struct users {
	struct htable table;
	size_t fds_limit;           /* the descriptors haspd may open; 0: unknown */
	size_t fds_base;            /* open before any session: loop, listener, logs */
	size_t sessions, fds_in_flight, files; /* over every uid */
	struct list deferred;       /* user.defer_link: to settle (users_defer()) */
};

int users_init(struct users *u);
/* Every user must have been put back. */
void users_done(struct users *u);
/* The descriptor table: its size (RLIMIT_NOFILE) and what the daemon itself
 * keeps open besides sessions, files and descriptors in flight. */
void users_set_fd_budget(struct users *u, size_t limit, size_t base);
/* The descriptor table's size again (prlimit(1) may have changed it). */
void users_set_fd_limit(struct users *u, size_t limit);
/* The user of uid, with one more session counted. NULL on ENOMEM. */
struct user *users_get(struct users *u, uid_t uid);
/* One session of usr has ended (its entries must be gone); the last frees
 * it once no file or checkout is charged to it either. */
void users_put(struct users *u, struct user *usr);
/* Calls fn for every user. */
void users_foreach(const struct users *u, void (*fn)(const struct user *usr, void *arg),
		   void *arg);
/* The user of uid, if it has one. */
struct user *users_find(const struct users *u, uid_t uid);
/* The user of uid, counting nothing yet (for a checkout): the caller gives
 * it one, or lets it go with users_unused(). NULL on ENOMEM. */
struct user *users_of(struct users *u, uid_t uid);
/* Frees usr if it has no session, file, checkout or hold left. */
void users_unused(struct users *u, struct user *usr);
/* Keeps usr while the caller uses it; users_drop() lets it go (and frees
 * it if unused). */
void users_hold(struct user *usr);
void users_drop(struct users *u, struct user *usr);
/* Keeps usr until users_settle(): for the change records of one lock
 * table call, several of which may name usr's checkouts after its last
 * one ended. */
void users_defer(struct users *u, struct user *usr);
void users_settle(struct users *u);
/* The user whose checkouts o is. */
static inline struct user *users_of_checkouts(struct lt_owner *o)
{
	return container_of(o, struct user, checkouts);
}

/* Whether a new session of usr (already counted) may be served, with
 * nsessions open before it; if not, why names the limit. */
bool users_admit_session(const struct users *u, const struct user *usr,
			 const struct config *cfg, size_t nsessions, char *why, size_t n);
/* Whether usr may have one more descriptor in flight. */
bool users_may_hold_fd(const struct users *u, const struct user *usr);
/* A descriptor of usr's arrived and is kept; n of them were claimed or closed. */
void users_hold_fd(struct users *u, struct user *usr);
void users_drop_fds(struct users *u, struct user *usr, size_t n);
/* Whether usr may make the daemon open one more file; if not, why names
 * the limit. */
bool users_may_open_file(const struct users *u, const struct user *usr,
			 const struct config *cfg, char *why, size_t n);
/* A file opened for usr, or closed: the charge keeps usr (and its uid's
 * count) alive until the file is closed, whoever holds it by then. */
void users_charge_file(struct users *u, struct user *usr);
void users_refund_file(struct users *u, struct user *usr);
