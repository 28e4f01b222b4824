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
};

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
		}
	}
}

static inline void fx_init(struct lt_fixture *fx)
{
	memset(fx, 0, sizeof(*fx));
	ck_assert_int_eq(locktable_init(&fx->lt, NULL), 0);
	locktable_set_now(&fx->lt, 1000000, 1000000);
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
