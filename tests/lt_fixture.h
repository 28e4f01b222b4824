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
	uint64_t reserved_at[MAX_EVENTS]; /* the fence each reservation was asked for */
	size_t nreserved;
};

static void fx_granted(struct lt_entry *e, void *arg)
{
	struct lt_fixture *fx = arg;

	ck_assert(e->held);
	ck_assert_uint_lt(fx->ngranted, MAX_EVENTS);
	fx->granted[fx->ngranted] = e;
	fx->granted_tags[fx->ngranted++] = e->tag;
}

static void fx_expired(struct lt_entry *e, void *arg)
{
	struct lt_fixture *fx = arg;

	ck_assert(!e->held);
	ck_assert_uint_lt(fx->nexpired, MAX_EVENTS);
	fx->expired_tags[fx->nexpired++] = e->tag;
}

/* Reserves 1000 fences at a time. */
static uint64_t fx_reserve_fences(uint64_t fence, void *arg)
{
	struct lt_fixture *fx = arg;

	ck_assert_uint_lt(fx->nreserved, MAX_EVENTS);
	fx->reserved_at[fx->nreserved++] = fence;
	return fence + 1000;
}

static inline void fx_init(struct lt_fixture *fx)
{
	const struct lt_callbacks cb = { .granted = fx_granted, .expired = fx_expired,
					 .reserve_fences = fx_reserve_fences, .arg = fx };

	memset(fx, 0, sizeof(*fx));
	ck_assert_int_eq(locktable_init(&fx->lt, &cb), 0);
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

	return locktable_acquire(&fx->lt, o, &req, ret ? ret : &dummy);
}
