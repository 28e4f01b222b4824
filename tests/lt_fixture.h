/* A lock table with fake owners and a fake clock, for the unit tests. */
#pragma once

#include <check.h>
#include <string.h>

#include "locktable.h"

#define MAX_EVENTS 256

struct lt_fixture {
	struct locktable lt;
	struct lt_entry *granted[MAX_EVENTS];
	int64_t granted_tags[MAX_EVENTS];
	size_t ngranted;
	int64_t expired_tags[MAX_EVENTS];
	size_t nexpired;
	uint64_t revoked_ids[MAX_EVENTS];
	size_t nrevoked;
	uint64_t lapsed_ids[MAX_EVENTS];  /* leases whose TTL ran out */
	int64_t lapsed_tags[MAX_EVENTS];
	size_t nlapsed;
	size_t nunlocked, nfreed;         /* of resources with an os attachment */
	size_t nhanded;                   /* grants handed over (granted, not held) */
	/* Upgrades ended, by the convert's tag: granted (with the new fence),
	 * expired (the lease stays shared), ended with their lease. */
	int64_t upgraded_tags[MAX_EVENTS];
	uint64_t upgraded_fences[MAX_EVENTS];
	size_t nupgraded;
	int64_t upgrade_expired_tags[MAX_EVENTS];
	size_t nupgrade_expired;
	int64_t upgrade_ended_tags[MAX_EVENTS];
	size_t nupgrade_ended;
};

/* An upgrade's record. */
static inline void fx_upgrade_record(struct lt_fixture *fx, const struct lt_change *c)
{
	const struct lt_upgrade *up = c->upgrade;

	ck_assert(up && !c->entry && c->res == up->res && !up->lease);
	switch (c->kind) {
	case LT_CHANGE_UPGRADED:
		ck_assert_uint_lt(fx->nupgraded, MAX_EVENTS);
		fx->upgraded_fences[fx->nupgraded] = up->fence;
		fx->upgraded_tags[fx->nupgraded++] = up->tag;
		break;
	case LT_CHANGE_UPGRADE_EXPIRED:
		ck_assert_uint_lt(fx->nupgrade_expired, MAX_EVENTS);
		fx->upgrade_expired_tags[fx->nupgrade_expired++] = up->tag;
		break;
	default:
		ck_assert_uint_lt(fx->nupgrade_ended, MAX_EVENTS);
		fx->upgrade_ended_tags[fx->nupgrade_ended++] = up->tag;
		break;
	}
}

/* Takes the change records of the last call, as the daemon does after each. */
static inline void fx_drain(struct lt_fixture *fx)
{
	struct lt_change c;

	while (locktable_next_change(&fx->lt, &c)) {
		switch (c.kind) {
		case LT_CHANGE_GRANTED:
			ck_assert(c.entry->held || c.entry->fence);
			ck_assert_uint_lt(fx->ngranted, MAX_EVENTS);
			/* A handed-over entry is freed at the next record. */
			fx->nhanded += !c.entry->held;
			fx->granted[fx->ngranted] = c.entry->held ? c.entry : NULL;
			fx->granted_tags[fx->ngranted++] = c.entry->tag;
			break;
		case LT_CHANGE_EXPIRED:
			ck_assert(!c.entry->held && c.entry->res == c.res);
			ck_assert_uint_lt(fx->nexpired, MAX_EVENTS);
			fx->expired_tags[fx->nexpired++] = c.entry->tag;
			break;
		case LT_CHANGE_REVOKED:
			ck_assert_uint_lt(fx->nrevoked, MAX_EVENTS);
			fx->revoked_ids[fx->nrevoked++] = c.entry->id;
			break;
		case LT_CHANGE_LAPSED:
			ck_assert(c.entry->held && lt_entry_life(c.entry));
			ck_assert_uint_lt(fx->nlapsed, MAX_EVENTS);
			fx->lapsed_tags[fx->nlapsed] = c.entry->tag;
			fx->lapsed_ids[fx->nlapsed++] = c.entry->id;
			break;
		case LT_CHANGE_UNLOCKED:
			ck_assert(c.res->os && c.res->nholders == 0);
			fx->nunlocked++;
			break;
		case LT_CHANGE_FREED:
			fx->nfreed += c.res->os != NULL;
			break;
		case LT_CHANGE_UPGRADED:
		case LT_CHANGE_UPGRADE_EXPIRED:
		case LT_CHANGE_UPGRADE_ENDED:
			fx_upgrade_record(fx, &c);
			break;
		}
	}
}

static inline void fx_init(struct lt_fixture *fx)
{
	memset(fx, 0, sizeof(*fx));
	ck_assert_int_eq(locktable_init(&fx->lt, NULL), 0);
	locktable_set_now(&fx->lt, 1000000, 1000000);
}

/* n owners: owner i is session i, pid 100 + i, uid and gid 1000. */
static inline void fx_owners_init(struct lt_owner *o, int n)
{
	for (int i = 0; i < n; i++)
		lt_owner_init(&o[i], (uint64_t)i, 100 + i, 1000, 1000);
}

static inline enum lt_result fx_acquire(struct lt_fixture *fx, struct lt_owner *o, const char *key,
					enum lt_mode mode, int64_t timeout_ms, int64_t tag,
					struct lt_entry **ret)
{
	const struct lt_request req = {
		.key = key, .key_len = strlen(key), .mode = mode,
		.timeout_ms = timeout_ms, .tag = tag,
	};
	struct lt_entry *dummy;
	enum lt_result r = locktable_acquire(&fx->lt, o, &req, ret ? ret : &dummy);

	fx_drain(fx);
	return r;
}

/* o's lease on key, which must be granted at once. */
static inline struct lt_entry *fx_hold(struct lt_fixture *fx, struct lt_owner *o, const char *key,
				       enum lt_mode mode)
{
	struct lt_entry *e = NULL;

	ck_assert_int_eq(fx_acquire(fx, o, key, mode, -1, 0, &e), LT_GRANTED);
	return e;
}

/* o's request on key (tag), which must wait. */
static inline struct lt_entry *fx_wait(struct lt_fixture *fx, struct lt_owner *o, const char *key,
				       enum lt_mode mode, int64_t tag)
{
	struct lt_entry *e = NULL;

	ck_assert_int_eq(fx_acquire(fx, o, key, mode, -1, tag, &e), LT_QUEUED);
	return e;
}

/* The lock table's calls, each followed by fx_drain(). */
static inline enum lt_result fx_release(struct lt_fixture *fx, struct lt_owner *o, uint64_t id)
{
	enum lt_result r = locktable_release(&fx->lt, o, id);

	fx_drain(fx);
	return r;
}

static inline enum lt_result fx_cancel(struct lt_fixture *fx, struct lt_owner *o, int64_t tag)
{
	enum lt_result r = locktable_cancel(&fx->lt, o, tag);

	fx_drain(fx);
	return r;
}

static inline void fx_revoke(struct lt_fixture *fx, struct lt_entry *lease)
{
	locktable_revoke(&fx->lt, lease);
	fx_drain(fx);
}

static inline void fx_owner_done(struct lt_fixture *fx, struct lt_owner *o)
{
	locktable_owner_done(&fx->lt, o);
	fx_drain(fx);
}

static inline void fx_expire(struct lt_fixture *fx)
{
	locktable_expire(&fx->lt);
	fx_drain(fx);
}

static inline enum lt_result fx_convert(struct lt_fixture *fx, struct lt_owner *o, uint64_t id,
					enum lt_mode mode, int64_t timeout_ms, int64_t tag)
{
	struct lt_entry *dummy;
	enum lt_result r = locktable_convert(&fx->lt, o, id, mode, timeout_ms, tag, &dummy);

	fx_drain(fx);
	return r;
}

static inline void fx_kick(struct lt_fixture *fx, struct lt_resource *r)
{
	locktable_kick(&fx->lt, r);
	fx_drain(fx);
}

static inline void fx_kick_all(struct lt_fixture *fx)
{
	locktable_kick_all(&fx->lt);
	fx_drain(fx);
}
