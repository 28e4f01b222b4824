/* Per-uid accounting, so that one local user cannot take every session or
 * all the daemon's memory: how many sessions each uid has, and (as a lock
 * table group) how many leases and waiting requests over all of them. Root
 * and the daemon's own uid are not limited: administrators must always get
 * in, and a per-user daemon has no other clients. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "htable.h"
#include "locktable.h"

struct user {
	struct hnode node;          /* in users.table, by uid */
	struct lt_group group;      /* leases + waiting requests of its sessions */
	uid_t uid;
	bool limited;               /* the per-uid limits apply */
	size_t sessions;
};

struct users {
	struct htable table;
};

int users_init(struct users *u);
/* Every user must have been put back. */
void users_done(struct users *u);
/* The user of uid, with one more session counted. NULL on ENOMEM. */
struct user *users_get(struct users *u, uid_t uid);
/* One session of usr has ended (its entries must be gone); the last frees it. */
void users_put(struct users *u, struct user *usr);
