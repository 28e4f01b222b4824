/* The lock table, driven directly: fake owners on the stack, a fake clock. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lt_fixture.h"
#include "suite.h"

static struct lt_fixture fx;
static struct lt_owner a, b, c, d;

static void setup(void)
{
	fx_init(&fx);
	lt_owner_init(&a, 1, 101, 1000, 1000);
	lt_owner_init(&b, 2, 102, 1000, 1000);
	lt_owner_init(&c, 3, 103, 1000, 1000);
	lt_owner_init(&d, 4, 104, 1000, 1000);
}

static void teardown(void)
{
	locktable_done(&fx.lt);
}

#define ACQ(o, key, mode, timeout, tag) fx_acquire(&fx, &(o), key, mode, timeout, tag, NULL)
#define X LT_EXCLUSIVE
#define S LT_SHARED

static void advance_ms(uint64_t ms)
{
	locktable_set_now(&fx.lt, fx.lt.now_us + ms * 1000, fx.lt.wall_us + ms * 1000);
}

START_TEST(exclusive_excludes_everything)
{
	ck_assert_int_eq(ACQ(a, "k", X, 0, 1), LT_GRANTED);
	ck_assert_int_eq(ACQ(b, "k", X, 0, 2), LT_BUSY);
	ck_assert_int_eq(ACQ(c, "k", S, 0, 3), LT_BUSY);
	ck_assert_uint_eq(fx.lt.stats.busy, 2);
}
END_TEST

START_TEST(shared_holders_coexist)
{
	ck_assert_int_eq(ACQ(a, "k", S, 0, 1), LT_GRANTED);
	ck_assert_int_eq(ACQ(b, "k", S, 0, 2), LT_GRANTED);
	ck_assert_int_eq(ACQ(c, "k", S, -1, 3), LT_GRANTED);
	ck_assert_int_eq(ACQ(d, "k", X, 0, 4), LT_BUSY);
	ck_assert_uint_eq(locktable_find(&fx.lt, "k", 1)->nholders, 3);
}
END_TEST

/* The question the daemon asks before it puts a try off (tries.h): yes
 * exactly when a try would be busy. Asking changes nothing. */
START_TEST(would_wait_is_a_trys_busy)
{
	struct lt_entry *held;

	ck_assert(!locktable_would_wait(&fx.lt, "k", 1, X, 0));
	ck_assert(!locktable_would_wait(&fx.lt, "k", 1, S, 0));
	ck_assert_ptr_null(locktable_find(&fx.lt, "k", 1)); /* nothing made */
	ck_assert_int_eq(fx_acquire(&fx, &a, "k", S, -1, 1, &held), LT_GRANTED);
	ck_assert(!locktable_would_wait(&fx.lt, "k", 1, S, 0));
	ck_assert(locktable_would_wait(&fx.lt, "k", 1, X, 0));
	ck_assert_int_eq(ACQ(d, "k", X, 0, 9), LT_BUSY);
	ck_assert_int_eq(ACQ(b, "k", X, -1, 2), LT_QUEUED);
	ck_assert(locktable_would_wait(&fx.lt, "k", 1, S, 0)); /* a writer waits ahead */
	ck_assert_int_eq(ACQ(d, "k", S, 0, 9), LT_BUSY);
	ck_assert_int_eq(fx_release(&fx, &a, held->id), LT_OK);
	ck_assert(locktable_would_wait(&fx.lt, "k", 1, S, 0));
	ck_assert_int_eq(fx_release(&fx, &b, fx.granted[0]->id), LT_OK);
	ck_assert(!locktable_would_wait(&fx.lt, "k", 1, X, 0));
}
END_TEST

START_TEST(grants_in_fifo_order)
{
	struct lt_entry *held;

	ck_assert_int_eq(fx_acquire(&fx, &a, "k", X, -1, 1, &held), LT_GRANTED);
	ck_assert_int_eq(ACQ(b, "k", X, -1, 2), LT_QUEUED);
	ck_assert_int_eq(ACQ(c, "k", X, -1, 3), LT_QUEUED);
	ck_assert_int_eq(ACQ(d, "k", X, -1, 4), LT_QUEUED);
	ck_assert_int_eq(fx_release(&fx, &a, held->id), LT_OK);
	ck_assert_uint_eq(fx.ngranted, 1);
	ck_assert_int_eq(fx.granted_tags[0], 2);
	ck_assert_int_eq(fx_release(&fx, &b, fx.granted[0]->id), LT_OK);
	ck_assert_int_eq(fx_release(&fx, &c, fx.granted[1]->id), LT_OK);
	ck_assert_uint_eq(fx.ngranted, 3);
	ck_assert_int_eq(fx.granted_tags[1], 3);
	ck_assert_int_eq(fx.granted_tags[2], 4);
}
END_TEST

START_TEST(writer_not_overtaken_by_later_readers)
{
	struct lt_entry *r1;

	ck_assert_int_eq(fx_acquire(&fx, &a, "k", S, -1, 1, &r1), LT_GRANTED);
	ck_assert_int_eq(ACQ(b, "k", X, -1, 2), LT_QUEUED);
	/* Compatible with the holders, but a writer waits ahead. */
	ck_assert_int_eq(ACQ(c, "k", S, -1, 3), LT_QUEUED);
	ck_assert_int_eq(ACQ(d, "k", S, 0, 4), LT_BUSY);
	ck_assert_int_eq(fx_release(&fx, &a, r1->id), LT_OK);
	ck_assert_uint_eq(fx.ngranted, 1);
	ck_assert_int_eq(fx.granted_tags[0], 2);
	/* And the reader behind the writer goes next. */
	ck_assert_int_eq(fx_release(&fx, &b, fx.granted[0]->id), LT_OK);
	ck_assert_uint_eq(fx.ngranted, 2);
	ck_assert_int_eq(fx.granted_tags[1], 3);
}
END_TEST

START_TEST(run_of_shared_waiters_granted_together)
{
	struct lt_owner e;
	struct lt_entry *w;

	lt_owner_init(&e, 5, 105, 0, 0);
	ck_assert_int_eq(fx_acquire(&fx, &a, "k", X, -1, 1, &w), LT_GRANTED);
	ck_assert_int_eq(ACQ(b, "k", S, -1, 2), LT_QUEUED);
	ck_assert_int_eq(ACQ(c, "k", S, -1, 3), LT_QUEUED);
	ck_assert_int_eq(ACQ(d, "k", X, -1, 4), LT_QUEUED);
	ck_assert_int_eq(ACQ(e, "k", S, -1, 5), LT_QUEUED);
	ck_assert_int_eq(fx_release(&fx, &a, w->id), LT_OK);
	/* b and c together; d (exclusive) stops the run; e stays behind d. */
	ck_assert_uint_eq(fx.ngranted, 2);
	ck_assert_int_eq(fx.granted_tags[0], 2);
	ck_assert_int_eq(fx.granted_tags[1], 3);
	ck_assert_uint_eq(locktable_find(&fx.lt, "k", 1)->nwaiters, 2);
	fx_owner_done(&fx, &e);
}
END_TEST

START_TEST(timed_out_writer_lets_readers_in)
{
	ck_assert_int_eq(ACQ(a, "k", S, -1, 1), LT_GRANTED);
	ck_assert_int_eq(ACQ(b, "k", X, 300, 2), LT_QUEUED);
	ck_assert_int_eq(ACQ(c, "k", S, -1, 3), LT_QUEUED);
	ck_assert_int_eq(locktable_next_deadline(&fx.lt), (int64_t)(fx.lt.now_us + 300000));
	locktable_set_now(&fx.lt, fx.lt.now_us + 299999, fx.lt.wall_us);
	fx_expire(&fx);
	ck_assert_uint_eq(fx.nexpired, 0); /* not one µs early */
	locktable_set_now(&fx.lt, fx.lt.now_us + 1, fx.lt.wall_us);
	fx_expire(&fx);
	ck_assert_uint_eq(fx.nexpired, 1);
	ck_assert_int_eq(fx.expired_tags[0], 2);
	ck_assert_uint_eq(fx.ngranted, 1);
	ck_assert_int_eq(fx.granted_tags[0], 3);
	ck_assert_int_eq(locktable_next_deadline(&fx.lt), -1);
	ck_assert_uint_eq(fx.lt.stats.timeouts, 1);
}
END_TEST

START_TEST(cancelled_writer_lets_readers_in)
{
	ck_assert_int_eq(ACQ(a, "k", S, -1, 1), LT_GRANTED);
	ck_assert_int_eq(ACQ(b, "k", X, -1, 2), LT_QUEUED);
	ck_assert_int_eq(ACQ(c, "k", S, -1, 3), LT_QUEUED);
	ck_assert_int_eq(fx_cancel(&fx, &c, 2), LT_UNKNOWN_REQUEST); /* b's, not c's */
	ck_assert_uint_eq(fx.ngranted, 0);
	ck_assert_int_eq(fx_cancel(&fx, &b, 2), LT_OK);
	ck_assert_uint_eq(fx.ngranted, 1);
	ck_assert_int_eq(fx.granted_tags[0], 3);
	ck_assert_int_eq(fx_cancel(&fx, &b, 2), LT_UNKNOWN_REQUEST);
	/* A held lease is not a waiting request. */
	ck_assert_int_eq(fx_cancel(&fx, &a, 1), LT_UNKNOWN_REQUEST);
}
END_TEST

START_TEST(busy_leaves_no_resource_behind)
{
	ck_assert_int_eq(ACQ(a, "k", X, -1, 1), LT_GRANTED);
	ck_assert_int_eq(ACQ(b, "k", X, 0, 2), LT_BUSY);
	ck_assert_uint_eq(fx.lt.stats.resources, 1);
	ck_assert_uint_eq(fx.lt.stats.waiters, 0);
	ck_assert_uint_eq(b.nwaiting + b.nheld, 0);
	ck_assert_uint_eq(fx.lt.pairs.count, 1);
	ck_assert_int_eq(ACQ(b, "k", X, -1, 3), LT_QUEUED); /* not already_held */
	fx_owner_done(&fx, &b);
	fx_owner_done(&fx, &a);
	ck_assert_uint_eq(fx.lt.stats.resources, 0);
	ck_assert_ptr_null(locktable_find(&fx.lt, "k", 1));
}
END_TEST

START_TEST(owner_end_frees_all_and_grants_next)
{
	ck_assert_int_eq(ACQ(a, "k1", X, -1, 1), LT_GRANTED);
	ck_assert_int_eq(ACQ(a, "k2", S, -1, 2), LT_GRANTED);
	ck_assert_int_eq(ACQ(b, "k1", X, -1, 3), LT_QUEUED);
	ck_assert_int_eq(ACQ(b, "k2", X, 500, 4), LT_QUEUED);
	ck_assert_int_eq(ACQ(c, "k3", X, -1, 5), LT_GRANTED);
	ck_assert_int_eq(ACQ(a, "k3", X, 500, 6), LT_QUEUED);
	fx_owner_done(&fx, &a);
	ck_assert_uint_eq(fx.ngranted, 2);
	ck_assert(fx.granted[0]->owner == &b && fx.granted[1]->owner == &b);
	ck_assert_uint_eq(a.nheld + a.nwaiting, 0);
	ck_assert_uint_eq(fx.lt.stats.waiters, 0);
	ck_assert_int_eq(locktable_next_deadline(&fx.lt), -1); /* a's timed wait is gone */
}
END_TEST

START_TEST(owner_end_does_not_grant_its_own_waiters)
{
	ck_assert_int_eq(ACQ(a, "k1", X, -1, 1), LT_GRANTED);
	ck_assert_int_eq(ACQ(b, "k2", X, -1, 2), LT_GRANTED);
	ck_assert_int_eq(ACQ(c, "k2", X, -1, 3), LT_QUEUED);
	ck_assert_int_eq(ACQ(b, "k1", X, -1, 4), LT_QUEUED);
	fx_owner_done(&fx, &b);
	/* b's wait on k1 is gone; c gets k2; no grant goes to b. */
	ck_assert_uint_eq(fx.ngranted, 1);
	ck_assert(fx.granted[0]->owner == &c);
	ck_assert_str_eq(fx.granted[0]->res->key, "k2");
}
END_TEST

START_TEST(already_held_held_or_waiting)
{
	ck_assert_int_eq(ACQ(a, "k", X, -1, 1), LT_GRANTED);
	ck_assert_int_eq(ACQ(a, "k", S, -1, 2), LT_ALREADY_HELD);
	ck_assert_int_eq(ACQ(b, "k", X, -1, 3), LT_QUEUED);
	ck_assert_int_eq(ACQ(b, "k", X, -1, 4), LT_ALREADY_HELD);
	ck_assert_uint_eq(fx.lt.stats.already_held, 2);
}
END_TEST

START_TEST(release_only_own_leases)
{
	struct lt_entry *l;

	ck_assert_int_eq(fx_acquire(&fx, &a, "k", X, -1, 1, &l), LT_GRANTED);
	ck_assert_int_eq(fx_release(&fx, &b, l->id), LT_UNKNOWN_LEASE);
	ck_assert_int_eq(fx_release(&fx, &a, l->id + 1000), LT_UNKNOWN_LEASE);
	ck_assert_int_eq(fx_release(&fx, &a, l->id), LT_OK);
	ck_assert_int_eq(fx_release(&fx, &a, 1), LT_UNKNOWN_LEASE);
}
END_TEST

START_TEST(fences_strictly_increase)
{
	uint64_t last = 0;
	struct lt_entry *l;

	locktable_set_fence_floor(&fx.lt, 5000000);
	for (int i = 0; i < 100; i++) {
		/* The wall clock jumps back half the time. */
		locktable_set_now(&fx.lt, fx.lt.now_us + 1, i % 2 ? 10 : 6000000 + (uint64_t)i);
		ck_assert_int_eq(fx_acquire(&fx, &a, "k", X, -1, i, &l), LT_GRANTED);
		ck_assert_uint_gt(l->fence, last);
		ck_assert_uint_gt(l->fence, 5000000);
		ck_assert_uint_ge(l->fence, fx.lt.wall_us);
		last = l->fence;
		ck_assert_int_eq(fx_release(&fx, &a, l->id), LT_OK);
	}
}
END_TEST

/* No fence at or above the ceiling is given: a grant waits for a higher
 * one, in its place, and even a request that tries once waits for it
 * rather than be told the lock is busy. */
START_TEST(no_fence_is_given_past_the_ceiling)
{
	struct lt_entry *l, *w1, *w2;

	ck_assert_uint_eq(fx.lt.fence_ceiling, UINT64_MAX); /* no ceiling: any */
	locktable_set_fence_floor(&fx.lt, 5000000);
	locktable_set_fence_ceiling(&fx.lt, 5000100);
	locktable_set_now(&fx.lt, fx.lt.now_us + 1, 10);
	for (int i = 0; i < 99; i++) {
		ck_assert_int_eq(fx_acquire(&fx, &a, "k", X, -1, i, &l), LT_GRANTED);
		ck_assert_uint_eq(l->fence, 5000001 + (uint64_t)i);
		ck_assert_int_eq(fx_release(&fx, &a, l->id), LT_OK);
	}
	ck_assert_uint_eq(locktable_fences_left(&fx.lt), 0);
	ck_assert(!fx.lt.fences_starved);
	ck_assert_int_eq(fx_acquire(&fx, &a, "k", X, -1, 100, &w1), LT_QUEUED);
	ck_assert(fx.lt.fences_starved);
	ck_assert_int_eq(fx_acquire(&fx, &b, "other", S, 0, 101, &w2), LT_QUEUED);
	ck_assert_int_eq(fx_acquire(&fx, &c, "k", X, 0, 102, NULL), LT_BUSY); /* a's turn */
	fx_kick_all(&fx);
	ck_assert_uint_eq(fx.ngranted, 0);
	/* A ceiling that gives one more fence: the first in line gets it. */
	locktable_set_fence_ceiling(&fx.lt, 5000101);
	ck_assert(!fx.lt.fences_starved);
	fx_kick_all(&fx);
	ck_assert_uint_eq(fx.ngranted, 1);
	ck_assert(fx.lt.fences_starved);
	locktable_set_fence_ceiling(&fx.lt, 5001000);
	fx_kick_all(&fx);
	ck_assert_uint_eq(fx.ngranted, 2);
	ck_assert(w1->held && w2->held);
	ck_assert_uint_ne(w1->fence, w2->fence);
	ck_assert_uint_ge(w1->fence, 5000100);
	ck_assert_uint_ge(w2->fence, 5000100);
	ck_assert_uint_le(w1->fence, 5000101);
	ck_assert_uint_le(w2->fence, 5000101);
	/* The wall clock leaps past the ceiling: the next grant waits. */
	locktable_set_now(&fx.lt, fx.lt.now_us + 1, 5600000);
	ck_assert_int_eq(fx_acquire(&fx, &c, "third", X, -1, 103, &l), LT_QUEUED);
	ck_assert(fx.lt.fences_starved);
	locktable_set_fence_ceiling(&fx.lt, 5601000);
	fx_kick_all(&fx);
	ck_assert(l->held);
	ck_assert_uint_eq(l->fence, 5600000);
}
END_TEST

START_TEST(lease_ids_unique)
{
	struct lt_entry *l1, *l2, *l3;

	ck_assert_int_eq(fx_acquire(&fx, &a, "k1", X, -1, 1, &l1), LT_GRANTED);
	ck_assert_int_eq(fx_acquire(&fx, &b, "k1", S, -1, 2, &l2), LT_QUEUED);
	ck_assert_int_eq(fx_acquire(&fx, &a, "k2", S, -1, 3, &l3), LT_GRANTED);
	ck_assert_uint_ne(l1->id, l2->id);
	ck_assert_uint_ne(l1->id, l3->id);
	ck_assert_uint_ne(l2->id, l3->id);
	ck_assert_ptr_eq(locktable_lease(&fx.lt, l3->id), l3);
	ck_assert_ptr_null(locktable_lease(&fx.lt, l2->id)); /* waiting: not a lease yet */
}
END_TEST

START_TEST(gauges_return_to_zero)
{
	char key[16];

	for (int i = 0; i < 500; i++) {
		snprintf(key, sizeof(key), "key-%d", i % 37);
		ACQ(a, key, i % 3 ? S : X, -1, i);
		ACQ(b, key, X, i % 2 ? -1 : 100, 1000 + i);
		ACQ(c, key, S, 0, 2000 + i);
	}
	advance_ms(50);
	fx_expire(&fx);
	fx_owner_done(&fx, &b);
	fx_owner_done(&fx, &a);
	fx_owner_done(&fx, &c);
	ck_assert_uint_eq(fx.lt.stats.resources, 0);
	ck_assert_uint_eq(fx.lt.stats.leases, 0);
	ck_assert_uint_eq(fx.lt.stats.waiters, 0);
	ck_assert_uint_eq(fx.lt.resources.count, 0);
	ck_assert_uint_eq(fx.lt.leases.count, 0);
	ck_assert_uint_eq(fx.lt.pairs.count, 0);
	ck_assert_uint_eq(fx.lt.deadlines.len, 0);
}
END_TEST

START_TEST(next_deadline_is_the_earliest)
{
	ck_assert_int_eq(locktable_next_deadline(&fx.lt), -1);
	ck_assert_int_eq(ACQ(a, "k", X, -1, 1), LT_GRANTED);
	ck_assert_int_eq(ACQ(b, "k", X, 900, 2), LT_QUEUED);
	ck_assert_int_eq(ACQ(c, "k", X, 200, 3), LT_QUEUED);
	ck_assert_int_eq(ACQ(d, "k", X, 500, 4), LT_QUEUED);
	ck_assert_int_eq(locktable_next_deadline(&fx.lt), (int64_t)(fx.lt.now_us + 200000));
	ck_assert_int_eq(fx_cancel(&fx, &c, 3), LT_OK);
	ck_assert_int_eq(locktable_next_deadline(&fx.lt), (int64_t)(fx.lt.now_us + 500000));
	advance_ms(1000);
	fx_expire(&fx);
	ck_assert_uint_eq(fx.nexpired, 2);
	ck_assert_int_eq(fx.expired_tags[0], 4); /* in deadline order */
	ck_assert_int_eq(fx.expired_tags[1], 2);
}
END_TEST

START_TEST(huge_timeout_does_not_overflow)
{
	ck_assert_int_eq(ACQ(a, "k", X, -1, 1), LT_GRANTED);
	ck_assert_int_eq(ACQ(b, "k", X, INT64_MAX, 2), LT_QUEUED);
	ck_assert_int_gt(locktable_next_deadline(&fx.lt), (int64_t)fx.lt.now_us);
	advance_ms(1000000);
	fx_expire(&fx);
	ck_assert_uint_eq(fx.nexpired, 0);
}
END_TEST

START_TEST(keys_compare_by_length_and_bytes)
{
	const struct lt_request ab = { .key = "ab", .key_len = 2, .mode = X, .timeout_ms = 0 };
	const struct lt_request a_nul = { .key = "a\0", .key_len = 2, .mode = X, .timeout_ms = 0 };
	struct lt_entry *e;

	ck_assert_int_eq(ACQ(a, "a", X, 0, 1), LT_GRANTED);
	ck_assert_int_eq(locktable_acquire(&fx.lt, &b, &ab, &e), LT_GRANTED);
	ck_assert_int_eq(locktable_acquire(&fx.lt, &c, &a_nul, &e), LT_GRANTED);
	ck_assert_uint_eq(fx.lt.stats.resources, 3);
	ck_assert_uint_eq(locktable_find(&fx.lt, "a", 1)->key_len, 1);
	ck_assert_ptr_eq(locktable_find(&fx.lt, "a\0", 2), e->res);
	ck_assert_ptr_ne(locktable_find(&fx.lt, "ab", 2), e->res);
	ck_assert_ptr_null(locktable_find(&fx.lt, "a\0b", 3));
}
END_TEST

START_TEST(owner_strings_are_copied)
{
	char owner[] = "alice", msg[] = "schema v42";
	const struct lt_request req = { .key = "k", .key_len = 1, .mode = X, .timeout_ms = -1,
					.owner_name = owner, .message = msg };
	struct lt_entry *e;

	ck_assert_int_eq(locktable_acquire(&fx.lt, &a, &req, &e), LT_GRANTED);
	memset(owner, 'x', 5);
	memset(msg, 'x', 10);
	ck_assert_str_eq(lt_entry_owner_name(e), "alice");
	ck_assert_str_eq(lt_entry_message(e), "schema v42");
}
END_TEST

/* An os resource whose attachment refuses: busy, and the new resource goes. */
static enum lt_admit refuse(struct lt_resource *r, const struct lt_entry *e, void *arg)
{
	(void)r, (void)e, (void)arg;
	return LT_ADMIT_NO;
}

START_TEST(busy_on_a_new_refused_resource_leaves_nothing)
{
	static int os;
	struct lt_resource *r;

	fx.lt.cb.admit = refuse;
	r = locktable_attach(&fx.lt, "file", 4, &os);
	ck_assert_ptr_nonnull(r);
	ck_assert_ptr_eq(r->os, &os);
	ck_assert_int_eq(ACQ(a, "file", S, 0, 1), LT_BUSY);
	ck_assert_ptr_null(locktable_find(&fx.lt, "file", 4));
	ck_assert_int_eq(fx.nfreed, 1);
	ck_assert_uint_eq(fx.lt.stats.resources, 0);
	ck_assert_uint_eq(fx.lt.pairs.count, 0);
}
END_TEST

static bool admit_open;
static int64_t admit_asked;     /* the tag of the last request admit was asked about */

static enum lt_admit admit_when_open(struct lt_resource *r, const struct lt_entry *e, void *arg)
{
	(void)arg;
	ck_assert_ptr_eq(e->res, r);
	admit_asked = e->tag;
	return admit_open ? LT_ADMIT_HOLD : LT_ADMIT_NO;
}

/* The os attachment keeps the lock for odd tags (the fd form). */
static enum lt_admit hand_over_odd(struct lt_resource *r, const struct lt_entry *e, void *arg)
{
	(void)r, (void)arg;
	return e->tag % 2 ? LT_ADMIT_HANDED_OVER : LT_ADMIT_HOLD;
}

/* A grant handed over is reported with a fence, holds nothing, and leaves
 * nothing behind; in the queue it keeps its FIFO place. */
START_TEST(a_handed_over_grant_is_reported_and_gone)
{
	static int os;
	struct lt_entry *e;
	uint64_t fence;

	fx.lt.cb.admit = hand_over_odd;
	ck_assert_ptr_nonnull(locktable_attach(&fx.lt, "file", 4, &os));
	ck_assert_int_eq(ACQ(a, "file", X, -1, 1), LT_HANDED_OVER);
	ck_assert_uint_eq(fx.ngranted, 1);
	ck_assert_int_eq(fx.granted_tags[0], 1);
	ck_assert_uint_eq(fx.nhanded, 1);
	ck_assert_ptr_null(locktable_find(&fx.lt, "file", 4));
	ck_assert_uint_eq(fx.nfreed, 1);
	ck_assert_uint_eq(fx.lt.stats.leases + fx.lt.pairs.count + fx.lt.stats.resources, 0);
	fence = fx.lt.last_fence;
	ck_assert_uint_gt(fence, 0);
	/* Behind a holder: handed over in turn, and the run of shared goes on. */
	ck_assert_ptr_nonnull(locktable_attach(&fx.lt, "file", 4, &os));
	ck_assert_int_eq(fx_acquire(&fx, &b, "file", X, -1, 2, &e), LT_GRANTED);
	ck_assert_int_eq(ACQ(a, "file", S, -1, 3), LT_QUEUED);
	ck_assert_int_eq(ACQ(c, "file", S, -1, 4), LT_QUEUED);
	ck_assert_int_eq(ACQ(d, "file", X, -1, 5), LT_QUEUED);
	ck_assert_int_eq(fx_release(&fx, &b, e->id), LT_OK);
	ck_assert_uint_eq(fx.ngranted, 3);
	ck_assert_int_eq(fx.granted_tags[1], 3);
	ck_assert_int_eq(fx.granted_tags[2], 4);
	ck_assert_uint_eq(fx.nhanded, 2);
	ck_assert_uint_gt(fx.lt.last_fence, fence);
	ck_assert_uint_eq(locktable_find(&fx.lt, "file", 4)->nholders, 1);
	ck_assert_uint_eq(fx.lt.stats.handed_over, 2);
	ck_assert_uint_eq(fx.lt.stats.granted_at_once + fx.lt.stats.granted_after_wait,
			  fx.lt.stats.releases + fx.lt.stats.handed_over + fx.lt.stats.leases);
}
END_TEST

START_TEST(refused_request_keeps_its_place_until_kicked)
{
	static int os;
	struct lt_resource *r;

	admit_open = false;
	fx.lt.cb.admit = admit_when_open;
	r = locktable_attach(&fx.lt, "file", 4, &os);
	ck_assert_int_eq(ACQ(a, "file", X, -1, 1), LT_QUEUED);
	ck_assert_int_eq(ACQ(b, "file", S, -1, 2), LT_QUEUED);
	fx_kick(&fx, r);
	ck_assert_uint_eq(fx.ngranted, 0);
	/* Asked about the head of the queue, the request itself. */
	ck_assert_int_eq(admit_asked, 1);
	admit_open = true;
	fx_kick(&fx, r);
	ck_assert_uint_eq(fx.ngranted, 1);
	ck_assert_int_eq(fx.granted_tags[0], 1);
	fx_owner_done(&fx, &a);
	ck_assert_uint_eq(fx.ngranted, 2);
	ck_assert_int_eq(fx.granted_tags[1], 2);
}
END_TEST

START_TEST(ended_writer_at_head_lets_readers_in)
{
	ck_assert_int_eq(ACQ(a, "k", S, -1, 1), LT_GRANTED);
	ck_assert_int_eq(ACQ(b, "k", X, -1, 2), LT_QUEUED);
	ck_assert_int_eq(ACQ(c, "k", S, -1, 3), LT_QUEUED);
	ck_assert_int_eq(ACQ(d, "k", S, -1, 4), LT_QUEUED);
	fx_owner_done(&fx, &b);
	ck_assert_uint_eq(fx.ngranted, 2);
	ck_assert_int_eq(fx.granted_tags[0], 3);
	ck_assert_int_eq(fx.granted_tags[1], 4);
	ck_assert_uint_eq(locktable_find(&fx.lt, "k", 1)->nholders, 3);
}
END_TEST

START_TEST(revoke_grants_the_next_waiter)
{
	struct lt_entry *l;

	ck_assert_int_eq(fx_acquire(&fx, &a, "k", X, -1, 1, &l), LT_GRANTED);
	ck_assert_int_eq(ACQ(b, "k", X, -1, 2), LT_QUEUED);
	fx_revoke(&fx, l);
	ck_assert_uint_eq(a.nheld, 0);
	ck_assert_uint_eq(fx.ngranted, 1);
	ck_assert_int_eq(fx.granted_tags[0], 2);
	ck_assert_uint_eq(fx.lt.stats.revokes, 1);
}
END_TEST

/* The deadline shares space with the lease's id node: a timed waiter that is
 * granted must leave the deadline heap and never expire as a lease. */
START_TEST(granted_timed_waiter_no_longer_expires)
{
	struct lt_entry *l, *w;

	ck_assert_int_eq(fx_acquire(&fx, &a, "k", X, -1, 1, &l), LT_GRANTED);
	ck_assert_int_eq(fx_acquire(&fx, &b, "k", X, 100, 2, &w), LT_QUEUED);
	ck_assert_int_eq(ACQ(c, "k2", X, -1, 3), LT_GRANTED);
	ck_assert_int_eq(ACQ(d, "k2", X, 300, 4), LT_QUEUED);
	ck_assert_int_eq(fx_release(&fx, &a, l->id), LT_OK);
	ck_assert_uint_eq(fx.ngranted, 1);
	ck_assert_ptr_eq(fx.granted[0], w);
	ck_assert_ptr_eq(locktable_lease(&fx.lt, w->id), w);
	ck_assert_uint_eq(fx.lt.deadlines.len, 1);
	ck_assert_int_eq(locktable_next_deadline(&fx.lt), (int64_t)(fx.lt.now_us + 300000));
	advance_ms(1000);
	fx_expire(&fx);
	ck_assert_uint_eq(fx.nexpired, 1);
	ck_assert_int_eq(fx.expired_tags[0], 4);
	ck_assert_ptr_eq(locktable_lease(&fx.lt, w->id), w);
	ck_assert_int_eq(fx_release(&fx, &b, w->id), LT_OK);
}
END_TEST

START_TEST(fences_increase_for_grants_after_a_wait)
{
	struct lt_entry *l;
	uint64_t last;

	locktable_set_fence_floor(&fx.lt, 9000000);
	ck_assert_int_eq(fx_acquire(&fx, &a, "k", X, -1, 1, &l), LT_GRANTED);
	ck_assert_uint_gt(l->fence, 9000000);
	last = l->fence;
	for (int i = 0; i < 20; i++) {
		struct lt_owner *next = i % 2 ? &a : &b, *cur = i % 2 ? &b : &a;

		ck_assert_int_eq(ACQ(*next, "k", X, -1, 2 + i), LT_QUEUED);
		/* The wall clock goes back far below the last fence. */
		locktable_set_now(&fx.lt, fx.lt.now_us + 1, 1000 - (uint64_t)i);
		ck_assert_int_eq(fx_release(&fx, cur, l->id), LT_OK);
		ck_assert_uint_eq(fx.ngranted, (size_t)i + 1);
		l = fx.granted[i];
		ck_assert_uint_gt(l->fence, last);
		last = l->fence;
	}
	/* A wall clock ahead of the last fence becomes the fence. */
	locktable_set_now(&fx.lt, fx.lt.now_us + 1, last + 5000);
	ck_assert_int_eq(ACQ(c, "k", X, -1, 100), LT_QUEUED);
	ck_assert_int_eq(fx_release(&fx, l->owner, l->id), LT_OK);
	ck_assert_uint_eq(fx.granted[20]->fence, last + 5000);
}
END_TEST

START_TEST(lease_ids_never_reused)
{
	static uint64_t ids[300];
	struct lt_entry *l;

	for (int i = 0; i < 300; i++) {
		ck_assert_int_eq(fx_acquire(&fx, &a, "k", S, -1, i, &l), LT_GRANTED);
		ids[i] = l->id;
		for (int j = 0; j < i; j++)
			ck_assert_uint_ne(ids[j], ids[i]);
		if (i % 3)
			ck_assert_int_eq(fx_release(&fx, &a, l->id), LT_OK);
		else
			fx_owner_done(&fx, &a);
		ck_assert_ptr_null(locktable_lease(&fx.lt, ids[i]));
	}
}
END_TEST

/* ---- change records, drained by hand: no fixture, no session ---- */

/* The next record, which must be of this kind. */
static struct lt_change next_change(enum lt_change_kind kind)
{
	struct lt_change ch;

	ck_assert_msg(locktable_next_change(&fx.lt, &ch), "no record left, wanted %d", kind);
	ck_assert_int_eq(ch.kind, kind);
	return ch;
}

static void no_change_left(void)
{
	struct lt_change ch;

	ck_assert(!locktable_next_change(&fx.lt, &ch));
}

static bool all_but_b(const struct lt_entry *lease, const void *arg)
{
	(void)arg;
	return lease->owner != &b;
}

START_TEST(revoke_all_reports_every_lease_then_the_grants)
{
	struct lt_resource *r;
	struct lt_entry *wait;
	struct lt_change ch;
	size_t refused = 9;

	ck_assert_int_eq(ACQ(a, "k", S, 0, 1), LT_GRANTED);
	ck_assert_int_eq(ACQ(b, "k", S, 0, 2), LT_GRANTED);
	ck_assert_int_eq(ACQ(c, "k", S, 0, 3), LT_GRANTED);
	ck_assert_int_eq(fx_acquire(&fx, &d, "k", X, -1, 4, &wait), LT_QUEUED);
	r = locktable_find(&fx.lt, "k", 1);
	/* a and c go, b stays: the writer still waits. */
	ck_assert_uint_eq(locktable_revoke_all(&fx.lt, r, all_but_b, NULL, &refused), 2);
	ck_assert_uint_eq(refused, 1);
	ch = next_change(LT_CHANGE_REVOKED);
	ck_assert(ch.entry->owner == &a && ch.res == r);
	ck_assert_int_eq(ch.entry->tag, 1); /* still readable until the next record */
	ch = next_change(LT_CHANGE_REVOKED);
	ck_assert(ch.entry->owner == &c);
	no_change_left();
	ck_assert_uint_eq(r->nholders, 1);
	ck_assert_uint_eq(fx.lt.stats.revokes, 2);
	/* b goes too: the writer is granted, after the revoke is reported. */
	ck_assert_uint_eq(locktable_revoke_all(&fx.lt, r, all_but_b, NULL, &refused), 0);
	ck_assert_uint_eq(refused, 1);
	no_change_left();
	locktable_revoke(&fx.lt, container_of(r->holders.next, struct lt_entry, qnode));
	ch = next_change(LT_CHANGE_REVOKED);
	ck_assert(ch.entry->owner == &b);
	ch = next_change(LT_CHANGE_GRANTED);
	ck_assert_ptr_eq(ch.entry, wait);
	ck_assert(wait->held);
	no_change_left();
}
END_TEST

START_TEST(an_expired_request_names_its_resource_until_drained)
{
	struct lt_change ch;

	ck_assert_int_eq(ACQ(a, "k", X, 0, 1), LT_GRANTED);
	ck_assert_int_eq(ACQ(b, "k", X, 10, 2), LT_QUEUED);
	advance_ms(10);
	locktable_expire(&fx.lt);
	ch = next_change(LT_CHANGE_EXPIRED);
	ck_assert_int_eq(ch.entry->tag, 2);
	ck_assert_ptr_eq(ch.entry->res, ch.res);
	ck_assert_uint_eq(ch.res->nholders, 1); /* its holders can be reported */
	ck_assert_uint_eq(ch.res->nwaiters, 0);
	ck_assert_uint_eq(b.nwaiting, 0);
	no_change_left();
}
END_TEST

/* A named key that nobody holds any more is reported gone; its last waiter
 * that timed out still names it while its record is read. */
START_TEST(a_resource_is_reported_gone_after_its_entries)
{
	struct lt_change ch;

	ck_assert_int_eq(ACQ(a, "k", X, 10, 1), LT_GRANTED);
	ck_assert_int_eq(ACQ(b, "k", X, 10, 2), LT_QUEUED);
	ck_assert_int_eq(locktable_release(&fx.lt, &a, fx.lt.last_id - 1), LT_OK);
	ch = next_change(LT_CHANGE_GRANTED);
	ck_assert_int_eq(ch.entry->tag, 2);
	no_change_left();
	locktable_owner_done(&fx.lt, &b);
	ch = next_change(LT_CHANGE_FREED);
	ck_assert_str_eq(ch.res->key, "k");
	ck_assert_ptr_null(locktable_find(&fx.lt, "k", 1));
	no_change_left();
	ck_assert_uint_eq(fx.lt.stats.resources, 0);
}
END_TEST

START_TEST(an_os_resource_is_unlocked_unless_held_again)
{
	static int os;
	struct lt_resource *r;
	struct lt_entry *held;
	struct lt_change ch;

	r = locktable_attach(&fx.lt, "file", 4, &os);
	ck_assert_int_eq(fx_acquire(&fx, &a, "file", X, -1, 1, &held), LT_GRANTED);
	ck_assert_int_eq(ACQ(b, "file", S, -1, 2), LT_QUEUED);
	ck_assert_int_eq(ACQ(c, "file", S, -1, 3), LT_QUEUED);
	/* a goes and b, c come in the same call: nothing to unlock. */
	ck_assert_int_eq(locktable_release(&fx.lt, &a, held->id), LT_OK);
	ck_assert_int_eq(next_change(LT_CHANGE_GRANTED).entry->tag, 2);
	ck_assert_int_eq(next_change(LT_CHANGE_GRANTED).entry->tag, 3);
	no_change_left();
	locktable_owner_done(&fx.lt, &b);
	no_change_left();
	/* The last holder goes: unlock; then, with nobody left, gone. */
	ck_assert_int_eq(ACQ(d, "file", X, -1, 4), LT_QUEUED);
	locktable_owner_done(&fx.lt, &c);
	ck_assert_int_eq(next_change(LT_CHANGE_GRANTED).entry->tag, 4);
	no_change_left();
	locktable_owner_done(&fx.lt, &d);
	ch = next_change(LT_CHANGE_FREED); /* FREED wins over UNLOCKED */
	ck_assert_ptr_eq(ch.res, r);
	ck_assert_ptr_eq(ch.res->os, &os);
	no_change_left();
}
END_TEST

START_TEST(a_lease_whose_last_holder_leaves_a_waiter_is_unlocked)
{
	static int os;
	struct lt_entry *held;

	locktable_attach(&fx.lt, "file", 4, &os);
	ck_assert_int_eq(fx_acquire(&fx, &a, "file", X, -1, 1, &held), LT_GRANTED);
	ck_assert_int_eq(ACQ(b, "file", X, -1, 2), LT_QUEUED);
	admit_open = false;
	fx.lt.cb.admit = admit_when_open;
	ck_assert_int_eq(locktable_release(&fx.lt, &a, held->id), LT_OK);
	ck_assert_ptr_eq(next_change(LT_CHANGE_UNLOCKED).res->os, &os);
	no_change_left();
}
END_TEST

/* A request that tries once waits for a fence, but only a second: then it
 * expires (and is answered busy), never waits for good. */
START_TEST(a_try_once_request_waits_a_second_for_a_fence)
{
	locktable_set_fence_ceiling(&fx.lt, 1); /* no fence to give */
	ck_assert_int_eq(ACQ(a, "k", X, 0, 1), LT_QUEUED);
	ck_assert(fx.lt.fences_starved);
	advance_ms(LT_FENCE_WAIT_MS - 1);
	fx_expire(&fx);
	ck_assert_uint_eq(fx.nexpired, 0);
	advance_ms(1);
	fx_expire(&fx);
	ck_assert_uint_eq(fx.nexpired, 1);
	ck_assert_int_eq(fx.expired_tags[0], 1);
}
END_TEST

/* A file whose last holder left while a waiter came in (no unlock then) is
 * unlocked when its holders are gone later, with a waiter still refused. */
START_TEST(an_os_resource_held_again_is_unlocked_later)
{
	static int os;
	struct lt_entry *ha, *hb;

	admit_open = true;
	fx.lt.cb.admit = admit_when_open;
	locktable_attach(&fx.lt, "file", 4, &os);
	ck_assert_int_eq(fx_acquire(&fx, &a, "file", S, -1, 1, &ha), LT_GRANTED);
	ck_assert_int_eq(fx_acquire(&fx, &b, "file", X, -1, 2, &hb), LT_QUEUED);
	ck_assert_int_eq(ACQ(c, "file", S, -1, 3), LT_QUEUED);
	ck_assert_int_eq(fx_release(&fx, &a, ha->id), LT_OK); /* b in: no unlock */
	ck_assert(hb->held);
	ck_assert_uint_eq(fx.nunlocked, 0);
	ck_assert_int_eq(fx_release(&fx, &b, hb->id), LT_OK); /* c in */
	ck_assert_uint_eq(fx.nunlocked, 0);
	admit_open = false; /* an outsider takes the flock */
	ck_assert_int_eq(ACQ(d, "file", X, -1, 4), LT_QUEUED);
	fx_owner_done(&fx, &c);
	ck_assert_uint_eq(fx.nunlocked, 1);
}
END_TEST

/* ---- lease lifetimes ---- */

static enum lt_result acquire_life(struct lt_owner *o, const char *key, enum lt_mode mode,
				   int64_t ttl_ms, bool detach, int64_t tag, struct lt_entry **ret)
{
	const struct lt_request req = {
		.key = key, .key_len = strlen(key), .mode = mode, .timeout_ms = -1, .tag = tag,
		.ttl_ms = ttl_ms, .detach = detach,
	};
	struct lt_entry *dummy;
	enum lt_result r = locktable_acquire(&fx.lt, o, &req, ret ? ret : &dummy);

	fx_drain(&fx);
	return r;
}

/* A TTL starts at the grant, not while waiting; it lapses exactly then,
 * and the waiter behind goes in; lapsed leases go in expiry order. */
START_TEST(a_ttl_starts_at_the_grant_and_lapses_then)
{
	struct lt_entry *ha, *hb;
	uint64_t id;

	ck_assert_int_eq(acquire_life(&a, "k", X, 0, false, 1, &ha), LT_GRANTED);
	ck_assert_int_eq(acquire_life(&b, "k", X, 100, false, 2, &hb), LT_QUEUED);
	ck_assert_int_eq(ACQ(c, "k", X, -1, 3), LT_QUEUED);
	ck_assert_int_eq(locktable_next_deadline(&fx.lt), -1); /* a waiting TTL is never due */
	advance_ms(500);
	ck_assert_int_eq(fx_release(&fx, &a, ha->id), LT_OK);
	ck_assert(hb->held);
	ck_assert_int_eq(locktable_next_deadline(&fx.lt), (int64_t)(fx.lt.now_us + 100000));
	ck_assert_uint_eq(lt_entry_life(hb)->granted_wall_us, fx.lt.wall_us);
	id = hb->id; /* hb is freed once its lapse is drained */
	advance_ms(99);
	fx_expire(&fx);
	ck_assert_uint_eq(fx.nlapsed, 0);
	advance_ms(1);
	fx_expire(&fx);
	ck_assert_uint_eq(fx.nlapsed, 1);
	ck_assert_uint_eq(fx.lapsed_ids[0], id);
	ck_assert_int_eq(fx.granted_tags[fx.ngranted - 1], 3);
	ck_assert_uint_eq(fx.lt.stats.expired, 1);
	ck_assert_int_eq(locktable_next_deadline(&fx.lt), -1);
}
END_TEST

/* A renew moves the expiry (a new TTL if given, else the same again); a
 * lease with no lifetime has none to renew. */
START_TEST(renew_moves_the_expiry)
{
	struct lt_entry *ha, *hb;

	ck_assert_int_eq(acquire_life(&a, "r", X, 100, false, 1, &ha), LT_GRANTED);
	ck_assert_int_eq(acquire_life(&b, "plain", X, 0, false, 2, &hb), LT_GRANTED);
	advance_ms(80);
	ck_assert_int_eq(locktable_renew(&fx.lt, ha, 0), LT_OK);
	ck_assert_int_eq(locktable_next_deadline(&fx.lt), (int64_t)(fx.lt.now_us + 100000));
	ck_assert_int_eq(locktable_renew(&fx.lt, ha, 5000), LT_OK);
	ck_assert_uint_eq(lt_entry_life(ha)->ttl_ms, 5000);
	advance_ms(4999);
	fx_expire(&fx);
	ck_assert_uint_eq(fx.nlapsed, 0);
	ck_assert_int_eq(locktable_renew(&fx.lt, hb, 100), LT_UNKNOWN_LEASE);
	ck_assert_int_eq(fx_release(&fx, &a, ha->id), LT_OK);
	ck_assert_int_eq(locktable_next_deadline(&fx.lt), -1); /* out of the expiries */
}
END_TEST

/* A detached lease leaves its session's counts for its new owner's, and
 * outlives the session; its token finds it; it ends by locktable_end. */
START_TEST(a_detached_lease_outlives_its_session)
{
	struct lt_group ga = { 0 }, gu = { 0 };
	struct lt_owner user;
	const uint8_t token[LT_TOKEN_LEN] = { 1, 2, 3 };
	uint8_t other[LT_TOKEN_LEN] = { 1, 2, 4 };
	struct lt_entry *h;

	lt_owner_init(&user, 0, 0, 1000, 0);
	a.group = &ga;
	user.group = &gu;
	ck_assert_int_eq(acquire_life(&a, "co", X, 0, true, 1, &h), LT_GRANTED);
	ck_assert_int_eq(lt_entry_sender(h).pid, 101);
	locktable_detach(&fx.lt, h, &user, token);
	ck_assert_uint_eq(a.nheld, 0);
	ck_assert_uint_eq(ga.entries, 0);
	ck_assert_uint_eq(user.nheld, 1);
	ck_assert_uint_eq(gu.entries, 1);
	ck_assert_int_eq(lt_entry_sender(h).pid, 101); /* who asked, not its new owner */
	ck_assert_uint_eq(fx.lt.stats.detached, 1);
	fx_owner_done(&fx, &a);
	ck_assert(h->held);
	ck_assert_ptr_eq(locktable_by_token(&fx.lt, token), h);
	ck_assert_ptr_null(locktable_by_token(&fx.lt, other));
	ck_assert_int_eq(ACQ(a, "co", X, 0, 2), LT_BUSY);
	ck_assert_ptr_eq(locktable_any_detached(&fx.lt), h);
	locktable_end(&fx.lt, h);
	fx_drain(&fx);
	ck_assert_ptr_null(locktable_by_token(&fx.lt, token));
	ck_assert_ptr_null(locktable_any_detached(&fx.lt));
	ck_assert_uint_eq(fx.lt.stats.detached, 0);
	ck_assert_uint_eq(gu.entries, 0);
	ck_assert_int_eq(ACQ(a, "co", X, 0, 3), LT_GRANTED);
}
END_TEST

/* A restored lease keeps its id and fence, holds the lease-id and fence
 * floors above them, expires on time, and conflicts as any lease. */
START_TEST(restore_keeps_ids_and_fences)
{
	struct lt_owner user;
	const uint8_t token[LT_TOKEN_LEN] = { 9 };
	const struct lt_request req = {
		.key = "rs", .key_len = 2, .mode = S, .ttl_ms = 1000, .detach = true,
	};
	struct lt_restore how = { 57, 1234567, 42000000, 300000, token };
	struct lt_entry *h, *n;

	lt_owner_init(&user, 0, 0, 1000, 0);
	ck_assert_int_eq(locktable_restore(&fx.lt, &user, &req, &how, &h), LT_GRANTED);
	fx_drain(&fx);
	ck_assert_uint_eq(h->id, 57);
	ck_assert_uint_eq(h->fence, 1234567);
	ck_assert_uint_eq(lt_entry_life(h)->granted_wall_us, 42000000);
	ck_assert_ptr_eq(locktable_by_token(&fx.lt, token), h);
	ck_assert_int_eq(locktable_next_deadline(&fx.lt), (int64_t)(fx.lt.now_us + 300000));
	ck_assert_int_eq(ACQ(a, "rs", X, 0, 1), LT_BUSY);
	ck_assert_int_eq(fx_acquire(&fx, &b, "rs", S, 0, 2, &n), LT_GRANTED);
	ck_assert_uint_gt(n->id, 57);
	ck_assert_uint_gt(n->fence, 1234567);
	how.id = 58;
	ck_assert_int_eq(ACQ(c, "x", X, -1, 3), LT_GRANTED);
	{
		const struct lt_request rx = { .key = "x", .key_len = 1, .mode = X, .detach = true };

		ck_assert_int_eq(locktable_restore(&fx.lt, &user, &rx, &how, &n), LT_BUSY);
		fx_drain(&fx);
	}
	advance_ms(300);
	fx_expire(&fx);
	ck_assert_uint_eq(fx.nlapsed, 1);
	ck_assert_uint_eq(fx.lt.stats.restored, 1);
}
END_TEST

/* Freed entries and resources are kept by malloc's chunk size and given
 * again for any size of the same chunk; at most SPARES_PER_CLASS of a
 * class, none past SPARES_SIZE_MAX. (Leaks show under ASan.) */
START_TEST(spares_are_reused_by_class)
{
	struct spares sp = { { NULL }, { 0 } };
	void *kept[SPARES_PER_CLASS + 1];
	void *blk = spares_alloc(&sp, 120), *again, *other;
	void *big = spares_alloc(&sp, SPARES_SIZE_MAX + 1);

	ck_assert_ptr_nonnull(blk);
	memset(blk, 0x5a, 120);
	spares_free(&sp, blk, 120);
	again = spares_alloc(&sp, 113);      /* the same 128-byte chunk */
	ck_assert_ptr_eq(again, blk);
	memset(again, 0xa5, 120);            /* the whole capacity is its own */
	spares_free(&sp, again, 113);
	other = spares_alloc(&sp, 121);      /* the next class up */
	ck_assert_ptr_ne(other, blk);
	spares_free(&sp, other, 121);
	spares_free(&sp, big, SPARES_SIZE_MAX + 1);    /* freed, not kept */
	for (size_t i = 0; i < SPARES_PER_CLASS + 1; i++)
		kept[i] = spares_alloc(&sp, 64);
	for (size_t i = 0; i < SPARES_PER_CLASS + 1; i++)
		spares_free(&sp, kept[i], 64);
	ck_assert_uint_eq(sp.count[3], SPARES_PER_CLASS);
	spares_free(&sp, NULL, 64);
	spares_done(&sp);
	ck_assert_ptr_null(sp.head[3]);
}
END_TEST

/* ---- semaphores: a named key with a limit ---- */

static enum lt_result acquire_sem(struct lt_owner *o, const char *key, uint32_t limit,
				  int64_t timeout_ms, int64_t tag, struct lt_entry **ret)
{
	const struct lt_request req = {
		.key = key, .key_len = strlen(key), .mode = X, .timeout_ms = timeout_ms,
		.tag = tag, .limit = limit,
	};
	struct lt_entry *dummy;
	enum lt_result r = locktable_acquire(&fx.lt, o, &req, ret ? ret : &dummy);

	fx_drain(&fx);
	return r;
}

#define SEM(o, key, limit, timeout, tag) acquire_sem(&(o), key, limit, timeout, tag, NULL)

START_TEST(a_semaphore_admits_limit_holders)
{
	struct lt_resource *r;

	ck_assert_int_eq(SEM(a, "k", 3, -1, 1), LT_GRANTED);
	ck_assert_int_eq(SEM(b, "k", 3, -1, 2), LT_GRANTED);
	ck_assert_int_eq(SEM(c, "k", 3, 0, 3), LT_GRANTED);
	ck_assert_int_eq(SEM(d, "k", 3, 0, 4), LT_BUSY);
	r = locktable_find(&fx.lt, "k", 1);
	ck_assert_uint_eq(r->nholders, 3);
	ck_assert_uint_eq(r->limit, 3);
	ck_assert_int_eq(r->held_mode, X);
	ck_assert_int_eq(SEM(a, "k", 3, -1, 5), LT_ALREADY_HELD);
}
END_TEST

/* FIFO: a request that finds a free slot waits all the same behind one
 * queued ahead of it; a release grants the head, not a newcomer. */
START_TEST(a_semaphore_grants_in_fifo_order)
{
	struct lt_owner e;
	struct lt_entry *l1, *l2;

	lt_owner_init(&e, 5, 105, 1000, 1000);
	ck_assert_int_eq(acquire_sem(&a, "k", 2, -1, 1, &l1), LT_GRANTED);
	ck_assert_int_eq(acquire_sem(&b, "k", 2, -1, 2, &l2), LT_GRANTED);
	ck_assert_int_eq(SEM(c, "k", 2, -1, 3), LT_QUEUED);
	ck_assert_int_eq(SEM(d, "k", 2, -1, 4), LT_QUEUED);
	ck_assert(locktable_would_wait(&fx.lt, "k", 1, X, 2));
	ck_assert_int_eq(fx_release(&fx, &a, l1->id), LT_OK);
	ck_assert_uint_eq(fx.ngranted, 1);
	ck_assert_int_eq(fx.granted_tags[0], 3);
	/* A slot is free only while d waits: e may not pass it. */
	ck_assert_int_eq(fx_release(&fx, &b, l2->id), LT_OK);
	ck_assert_uint_eq(fx.ngranted, 2);
	ck_assert_int_eq(fx.granted_tags[1], 4);
	ck_assert_int_eq(SEM(e, "k", 2, 0, 5), LT_BUSY);
	fx_owner_done(&fx, &c);
	ck_assert(!locktable_would_wait(&fx.lt, "k", 1, X, 2));
	ck_assert_int_eq(SEM(e, "k", 2, 0, 6), LT_GRANTED);
}
END_TEST

/* When holders leave together (an owner's end), the queue's head is
 * granted while slots are free: as many as left, in order. */
START_TEST(a_semaphore_promotes_as_many_as_left)
{
	struct lt_owner e, f;
	struct lt_resource *r;

	lt_owner_init(&e, 5, 105, 1000, 1000);
	lt_owner_init(&f, 6, 106, 1000, 1000);
	ck_assert_int_eq(SEM(a, "k", 3, -1, 1), LT_GRANTED);
	ck_assert_int_eq(SEM(a, "other", 3, -1, 2), LT_GRANTED);
	ck_assert_int_eq(SEM(b, "k", 3, -1, 3), LT_GRANTED);
	ck_assert_int_eq(SEM(c, "k", 3, -1, 4), LT_GRANTED);
	ck_assert_int_eq(SEM(d, "k", 3, -1, 5), LT_QUEUED);
	ck_assert_int_eq(SEM(e, "k", 3, -1, 6), LT_QUEUED);
	ck_assert_int_eq(SEM(f, "k", 3, -1, 7), LT_QUEUED);
	r = locktable_find(&fx.lt, "k", 1);
	locktable_revoke(&fx.lt, container_of(b.held.next, struct lt_entry, onode));
	fx_drain(&fx);
	ck_assert_uint_eq(fx.ngranted, 1);
	ck_assert_int_eq(fx.granted_tags[0], 5);
	fx_owner_done(&fx, &c);
	fx_owner_done(&fx, &a);
	ck_assert_uint_eq(fx.ngranted, 3);
	ck_assert_int_eq(fx.granted_tags[1], 6);
	ck_assert_int_eq(fx.granted_tags[2], 7);
	ck_assert_uint_eq(r->nholders, 3);
	ck_assert_uint_eq(r->nwaiters, 0);
	fx_owner_done(&fx, &e);
	fx_owner_done(&fx, &f);
}
END_TEST

/* A request must give the key's limit while the key is in use: another
 * limit, none on a semaphore, or one on an ordinary key is refused, and
 * nothing is made. */
START_TEST(a_wrong_limit_is_refused)
{
	struct lt_resource *r;
	size_t pairs;

	ck_assert_int_eq(SEM(a, "sem", 2, -1, 1), LT_GRANTED);
	ck_assert_int_eq(ACQ(a, "plain", S, -1, 2), LT_GRANTED);
	ck_assert_int_eq(ACQ(b, "plain", S, -1, 3), LT_GRANTED);
	pairs = fx.lt.pairs.count;
	ck_assert_int_eq(SEM(b, "sem", 3, -1, 4), LT_BAD_LIMIT);
	ck_assert_int_eq(SEM(b, "sem", 1, 0, 5), LT_BAD_LIMIT);
	ck_assert_int_eq(ACQ(b, "sem", X, -1, 6), LT_BAD_LIMIT);
	ck_assert_int_eq(SEM(c, "plain", 2, -1, 7), LT_BAD_LIMIT);
	/* Checked before already_held: the request is wrong whoever sends it. */
	ck_assert_int_eq(SEM(a, "sem", 4, -1, 8), LT_BAD_LIMIT);
	ck_assert_uint_eq(fx.lt.pairs.count, pairs);
	ck_assert_uint_eq(fx.lt.stats.waiters, 0);
	r = locktable_find(&fx.lt, "sem", 3);
	ck_assert_uint_eq(r->limit, 2);
	ck_assert_uint_eq(r->nholders, 1);
	ck_assert_uint_eq(locktable_find(&fx.lt, "plain", 5)->limit, 0);
	/* A try with a wrong limit is refused at once, not put off. */
	ck_assert(!locktable_would_wait(&fx.lt, "sem", 3, X, 3));
	ck_assert(!locktable_would_wait(&fx.lt, "plain", 5, X, 2));
	ck_assert(locktable_would_wait(&fx.lt, "plain", 5, X, 0));
}
END_TEST

/* The limit is the resource's while it has holders or waiters, waiters
 * alone included; it goes with the resource. */
START_TEST(a_limit_goes_with_its_resource)
{
	struct lt_entry *l;

	ck_assert_int_eq(acquire_sem(&a, "k", 1, -1, 1, &l), LT_GRANTED);
	ck_assert_int_eq(SEM(b, "k", 1, -1, 2), LT_QUEUED);
	ck_assert_int_eq(fx_release(&fx, &a, l->id), LT_OK);
	ck_assert_uint_eq(fx.ngranted, 1); /* b holds it now */
	ck_assert_int_eq(SEM(c, "k", 5, -1, 3), LT_BAD_LIMIT);
	fx_owner_done(&fx, &b);
	ck_assert_ptr_null(locktable_find(&fx.lt, "k", 1));
	/* Gone: the next request's limit is the key's, or none. */
	ck_assert_int_eq(SEM(c, "k", 5, -1, 4), LT_GRANTED);
	ck_assert_uint_eq(locktable_find(&fx.lt, "k", 1)->limit, 5);
	fx_owner_done(&fx, &c);
	ck_assert_int_eq(ACQ(d, "k", S, -1, 5), LT_GRANTED);
	ck_assert_uint_eq(locktable_find(&fx.lt, "k", 1)->limit, 0);
	/* A busy first request leaves no limit behind. */
	fx_owner_done(&fx, &d);
	ck_assert_int_eq(ACQ(a, "k", X, -1, 6), LT_GRANTED);
	ck_assert_int_eq(SEM(b, "k", 2, 0, 7), LT_BAD_LIMIT);
	ck_assert_uint_eq(locktable_find(&fx.lt, "k", 1)->limit, 0);
}
END_TEST

/* A limit of 1 is a mutex with a name that says so; and the resource stays
 * the size it was (the limit is in its padding). */
START_TEST(a_limit_of_one_is_a_mutex)
{
	ck_assert_uint_eq(sizeof(struct lt_resource), 64);
	ck_assert_int_eq(SEM(a, "k", 1, -1, 1), LT_GRANTED);
	ck_assert_int_eq(SEM(b, "k", 1, 0, 2), LT_BUSY);
	ck_assert_int_eq(SEM(b, "k", 1, 5, 3), LT_QUEUED);
	advance_ms(5);
	fx_expire(&fx);
	ck_assert_uint_eq(fx.nexpired, 1);
	ck_assert_uint_eq(locktable_find(&fx.lt, "k", 1)->nholders, 1);
}
END_TEST

static Suite *locktable_suite(void)
{
	Suite *s = suite_create("locktable");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, exclusive_excludes_everything);
	tcase_add_test(tc, would_wait_is_a_trys_busy);
	tcase_add_test(tc, a_ttl_starts_at_the_grant_and_lapses_then);
	tcase_add_test(tc, renew_moves_the_expiry);
	tcase_add_test(tc, a_detached_lease_outlives_its_session);
	tcase_add_test(tc, restore_keeps_ids_and_fences);
	tcase_add_test(tc, shared_holders_coexist);
	tcase_add_test(tc, grants_in_fifo_order);
	tcase_add_test(tc, writer_not_overtaken_by_later_readers);
	tcase_add_test(tc, run_of_shared_waiters_granted_together);
	tcase_add_test(tc, timed_out_writer_lets_readers_in);
	tcase_add_test(tc, cancelled_writer_lets_readers_in);
	tcase_add_test(tc, busy_leaves_no_resource_behind);
	tcase_add_test(tc, owner_end_frees_all_and_grants_next);
	tcase_add_test(tc, owner_end_does_not_grant_its_own_waiters);
	tcase_add_test(tc, already_held_held_or_waiting);
	tcase_add_test(tc, release_only_own_leases);
	tcase_add_test(tc, fences_strictly_increase);
	tcase_add_test(tc, no_fence_is_given_past_the_ceiling);
	tcase_add_test(tc, lease_ids_unique);
	tcase_add_test(tc, gauges_return_to_zero);
	tcase_add_test(tc, next_deadline_is_the_earliest);
	tcase_add_test(tc, huge_timeout_does_not_overflow);
	tcase_add_test(tc, keys_compare_by_length_and_bytes);
	tcase_add_test(tc, owner_strings_are_copied);
	tcase_add_test(tc, busy_on_a_new_refused_resource_leaves_nothing);
	tcase_add_test(tc, refused_request_keeps_its_place_until_kicked);
	tcase_add_test(tc, a_handed_over_grant_is_reported_and_gone);
	tcase_add_test(tc, ended_writer_at_head_lets_readers_in);
	tcase_add_test(tc, revoke_grants_the_next_waiter);
	tcase_add_test(tc, granted_timed_waiter_no_longer_expires);
	tcase_add_test(tc, fences_increase_for_grants_after_a_wait);
	tcase_add_test(tc, lease_ids_never_reused);
	tcase_add_test(tc, revoke_all_reports_every_lease_then_the_grants);
	tcase_add_test(tc, an_expired_request_names_its_resource_until_drained);
	tcase_add_test(tc, a_resource_is_reported_gone_after_its_entries);
	tcase_add_test(tc, an_os_resource_is_unlocked_unless_held_again);
	tcase_add_test(tc, a_lease_whose_last_holder_leaves_a_waiter_is_unlocked);
	tcase_add_test(tc, a_try_once_request_waits_a_second_for_a_fence);
	tcase_add_test(tc, an_os_resource_held_again_is_unlocked_later);
	tcase_add_test(tc, spares_are_reused_by_class);
	tcase_add_test(tc, a_semaphore_admits_limit_holders);
	tcase_add_test(tc, a_semaphore_grants_in_fifo_order);
	tcase_add_test(tc, a_semaphore_promotes_as_many_as_left);
	tcase_add_test(tc, a_wrong_limit_is_refused);
	tcase_add_test(tc, a_limit_goes_with_its_resource);
	tcase_add_test(tc, a_limit_of_one_is_a_mutex);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(locktable_suite());
}
