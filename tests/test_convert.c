/* Conversion of a held lease (issue 17): locktable_convert() driven
 * directly, with fake owners and a fake clock. */
#include <check.h>
#include <string.h>

#include "lt_fixture.h"
#include "suite.h"

#define NOWNERS 6

static struct lt_fixture fx;
static struct lt_owner o[NOWNERS];

#define X LT_EXCLUSIVE
#define S LT_SHARED

static void setup(void)
{
	fx_init(&fx);
	fx_owners_init(o, NOWNERS);
}

static void teardown(void)
{
	locktable_done(&fx.lt);
}

static struct lt_entry *hold(int i, const char *key, enum lt_mode mode)
{
	return fx_hold(&fx, &o[i], key, mode);
}

static struct lt_entry *wait_for(int i, const char *key, enum lt_mode mode, int64_t tag)
{
	return fx_wait(&fx, &o[i], key, mode, tag);
}

static enum lt_result convert(int i, const struct lt_entry *e, enum lt_mode mode,
			      int64_t timeout_ms, int64_t tag)
{
	return fx_convert(&fx, &o[i], e->id, mode, timeout_ms, tag);
}

START_TEST(only_the_holder_converts_its_lease)
{
	struct lt_entry *a = hold(0, "k", X);

	ck_assert_int_eq(convert(1, a, S, -1, 1), LT_UNKNOWN_LEASE);
	ck_assert_int_eq(fx_convert(&fx, &o[0], 999, S, -1, 1), LT_UNKNOWN_LEASE);
	ck_assert_int_eq(a->mode, X);
}
END_TEST

START_TEST(the_same_mode_is_ok_without_a_new_fence)
{
	struct lt_entry *a = hold(0, "k", S);
	uint64_t fence = a->fence;

	ck_assert_int_eq(convert(0, a, S, 0, 1), LT_OK);
	ck_assert_uint_eq(a->fence, fence);
	ck_assert_uint_eq(fx.lt.stats.converts, 0);
}
END_TEST

START_TEST(a_semaphore_place_does_not_convert)
{
	const struct lt_request req = {
		.key = "pool", .key_len = 4, .mode = X, .timeout_ms = -1, .limit = 2,
	};
	struct lt_entry *e;

	ck_assert_int_eq(locktable_acquire(&fx.lt, &o[0], &req, &e), LT_GRANTED);
	ck_assert_int_eq(convert(0, e, S, -1, 1), LT_BAD_LIMIT);
}
END_TEST

/* A downgrade keeps its fence and lets the run of readers at the head in,
 * not the writer behind them. */
START_TEST(a_downgrade_lets_the_readers_at_the_head_in)
{
	struct lt_entry *a = hold(0, "k", X), *r1, *r2;
	uint64_t fence = a->fence;

	r1 = wait_for(1, "k", S, 1);
	r2 = wait_for(2, "k", S, 2);
	wait_for(3, "k", X, 3);
	ck_assert_int_eq(convert(0, a, S, -1, 9), LT_GRANTED);
	ck_assert_int_eq(a->mode, S);
	ck_assert_uint_eq(a->fence, fence);
	ck_assert_uint_eq(fx.ngranted, 2);
	ck_assert_ptr_eq(fx.granted[0], r1);
	ck_assert_ptr_eq(fx.granted[1], r2);
	ck_assert_uint_eq(fx.lt.stats.waiters, 1);
	ck_assert_uint_eq(fx.lt.stats.downgrades, 1);
}
END_TEST

START_TEST(an_upgrade_alone_is_granted_at_once_with_a_new_fence)
{
	struct lt_entry *a = hold(0, "k", S);
	uint64_t fence = a->fence;

	ck_assert_int_eq(convert(0, a, X, 0, 1), LT_GRANTED);
	ck_assert_int_eq(a->mode, X);
	ck_assert_uint_gt(a->fence, fence);
	ck_assert_int_eq(a->res->held_mode, X);
	ck_assert_uint_eq(fx.lt.stats.upgrades_at_once, 1);
	/* Exclusive now: a reader waits. */
	ck_assert_int_eq(fx_acquire(&fx, &o[1], "k", S, 0, 2, NULL), LT_BUSY);
}
END_TEST

/* The upgrade waits for the other reader only, and goes ahead of the
 * writer queued before it and of the reader that comes after it. */
START_TEST(an_upgrade_goes_ahead_of_every_waiter)
{
	struct lt_entry *a = hold(0, "k", S), *b = hold(1, "k", S), *w, *r;
	uint64_t fence = a->fence;

	w = wait_for(2, "k", X, 2);
	ck_assert_int_eq(convert(0, a, X, -1, 7), LT_QUEUED);
	ck_assert_int_eq(a->mode, S); /* it keeps its shared lease */
	ck_assert_ptr_eq(locktable_upgrade_of(a)->lease, a);
	r = wait_for(3, "k", S, 3); /* no new reader passes it */
	ck_assert_int_eq(fx_acquire(&fx, &o[4], "k", S, 0, 4, NULL), LT_BUSY);
	ck_assert_int_eq(fx_release(&fx, &o[1], b->id), LT_OK);
	ck_assert_uint_eq(fx.nupgraded, 1);
	ck_assert_int_eq(fx.upgraded_tags[0], 7);
	ck_assert_uint_gt(fx.upgraded_fences[0], fence);
	ck_assert_uint_eq(fx.upgraded_fences[0], a->fence);
	ck_assert_int_eq(a->mode, X);
	ck_assert_uint_eq(fx.ngranted, 0);
	ck_assert_ptr_null(locktable_upgrade_of(a));
	ck_assert_int_eq(fx_release(&fx, &o[0], a->id), LT_OK);
	ck_assert_uint_eq(fx.ngranted, 1);
	ck_assert_ptr_eq(fx.granted[0], w);
	ck_assert(!r->held);
	ck_assert_uint_eq(fx.lt.stats.upgrades_after_wait, 1);
	ck_assert_uint_eq(fx.lt.stats.upgrading, 0);
}
END_TEST

START_TEST(an_upgrade_that_tries_once_stays_shared)
{
	struct lt_entry *a = hold(0, "k", S);

	hold(1, "k", S);
	ck_assert_int_eq(convert(0, a, X, 0, 1), LT_BUSY);
	ck_assert_int_eq(a->mode, S);
	ck_assert_ptr_null(locktable_upgrade_of(a));
	/* Nothing waits: a reader goes in. */
	ck_assert_int_eq(fx_acquire(&fx, &o[2], "k", S, 0, 2, NULL), LT_GRANTED);
}
END_TEST

/* A timed-out upgrade leaves the lease shared, and the reader that waited
 * behind it goes in. */
START_TEST(an_upgrade_times_out_and_the_queue_moves)
{
	struct lt_entry *a = hold(0, "k", S), *r;

	hold(1, "k", S);
	ck_assert_int_eq(convert(0, a, X, 5, 1), LT_QUEUED);
	r = wait_for(2, "k", S, 2);
	locktable_set_now(&fx.lt, 1000000 + 4999, 1000000 + 4999);
	fx_expire(&fx);
	ck_assert_uint_eq(fx.nupgrade_expired, 0);
	ck_assert_int_eq(locktable_next_deadline(&fx.lt), 1000000 + 5000);
	locktable_set_now(&fx.lt, 1000000 + 5000, 1000000 + 5000);
	fx_expire(&fx);
	ck_assert_uint_eq(fx.nupgrade_expired, 1);
	ck_assert_int_eq(fx.upgrade_expired_tags[0], 1);
	ck_assert_int_eq(a->mode, S);
	ck_assert(a->held);
	ck_assert_uint_eq(fx.ngranted, 1);
	ck_assert_ptr_eq(fx.granted[0], r);
}
END_TEST

START_TEST(an_upgrade_is_cancelled_by_its_tag)
{
	struct lt_entry *a = hold(0, "k", S), *r;

	hold(1, "k", S);
	ck_assert_int_eq(convert(0, a, X, -1, 5), LT_QUEUED);
	ck_assert_int_eq(convert(0, a, S, -1, 6), LT_ALREADY_HELD);
	ck_assert_int_eq(convert(0, a, X, -1, 6), LT_ALREADY_HELD);
	r = wait_for(2, "k", S, 2);
	ck_assert_int_eq(fx_cancel(&fx, &o[1], 5), LT_UNKNOWN_REQUEST);
	ck_assert_int_eq(fx_cancel(&fx, &o[0], 5), LT_OK);
	ck_assert_ptr_null(locktable_upgrade_of(a));
	ck_assert_ptr_eq(fx.granted[0], r);
	ck_assert_uint_eq(fx.nupgraded + fx.nupgrade_expired + fx.nupgrade_ended, 0);
}
END_TEST

/* Two readers that both upgrade wait for each other: the second is
 * refused, and the first is granted once the second lets go. */
START_TEST(a_second_upgrader_gets_deadlock)
{
	struct lt_entry *a = hold(0, "k", S), *b = hold(1, "k", S);
	const struct lt_cycle *c = &fx.lt.cycle;

	ck_assert_int_eq(convert(0, a, X, -1, 1), LT_QUEUED);
	ck_assert_int_eq(convert(1, b, X, -1, 2), LT_DEADLOCK);
	ck_assert_uint_eq(c->total, 2);
	ck_assert_ptr_eq(c->waits[0].owner, &o[1]);
	ck_assert_ptr_null(c->waits[0].waiter);
	ck_assert_int_eq(c->waits[0].mode, X);
	ck_assert_ptr_eq(c->waits[0].blocker, a);
	ck_assert_ptr_eq(c->waits[1].owner, &o[0]);
	ck_assert_ptr_eq(c->waits[1].waiter, a);
	ck_assert_int_eq(c->waits[1].mode, X);
	ck_assert_ptr_eq(c->waits[1].blocker, b);
	ck_assert_int_eq(b->mode, S);
	ck_assert_int_eq(convert(1, b, S, -1, 3), LT_OK);
	ck_assert_int_eq(fx_release(&fx, &o[1], b->id), LT_OK);
	ck_assert_uint_eq(fx.nupgraded, 1);
	ck_assert_int_eq(a->mode, X);
}
END_TEST

/* Even when its search is cut before the cycle. */
START_TEST(a_second_upgrader_gets_deadlock_past_the_bound)
{
	struct lt_entry *a = hold(0, "k", S), *b = hold(1, "k", S);

	ck_assert_int_eq(convert(0, a, X, -1, 1), LT_QUEUED);
	fx.lt.dl_steps_max = 0;
	ck_assert_int_eq(convert(1, b, X, -1, 2), LT_DEADLOCK);
	ck_assert_uint_eq(fx.lt.cycle.total, 2);
	ck_assert_ptr_eq(fx.lt.cycle.waits[1].waiter, a);
	ck_assert_uint_eq(fx.lt.stats.deadlock_searches_cut, 1);
}
END_TEST

/* A reader queued behind a pending upgrade waits for the upgrader, though
 * it conflicts with no holder: that closes a cycle. */
START_TEST(a_reader_behind_an_upgrade_waits_for_the_upgrader)
{
	struct lt_entry *a = hold(0, "x", S), *cy = hold(2, "y", X), *cx;

	hold(1, "x", S);
	ck_assert_int_eq(convert(0, a, X, -1, 1), LT_QUEUED);
	cx = wait_for(2, "x", S, 2);
	ck_assert_int_eq(fx_acquire(&fx, &o[0], "y", X, -1, 3, NULL), LT_DEADLOCK);
	ck_assert_uint_eq(fx.lt.cycle.total, 2);
	ck_assert_ptr_eq(fx.lt.cycle.waits[0].blocker, cy);
	ck_assert_ptr_eq(fx.lt.cycle.waits[1].waiter, cx);
	ck_assert_ptr_eq(fx.lt.cycle.waits[1].blocker, a);
}
END_TEST

/* The upgrade's own wait closes a cycle through a request elsewhere. */
START_TEST(an_upgrade_that_closes_a_cycle_is_refused)
{
	struct lt_entry *a = hold(0, "x", S), *b = hold(1, "x", S);

	hold(0, "y", X);
	wait_for(1, "y", X, 1); /* 1 waits for 0 */
	ck_assert_int_eq(convert(0, a, X, -1, 2), LT_DEADLOCK);
	ck_assert_ptr_eq(fx.lt.cycle.waits[0].blocker, b);
	ck_assert_ptr_null(locktable_upgrade_of(a));
	ck_assert_int_eq(a->mode, S);
}
END_TEST

/* A lease released, revoked or ended with its session while its upgrade
 * waits takes the upgrade with it. */
START_TEST(an_upgrade_ends_with_its_lease)
{
	struct lt_entry *a = hold(0, "k", S), *b = hold(1, "k", S), *c;

	ck_assert_int_eq(convert(0, a, X, -1, 1), LT_QUEUED);
	ck_assert_int_eq(fx_release(&fx, &o[0], a->id), LT_OK);
	ck_assert_uint_eq(fx.nupgrade_ended, 1);
	ck_assert_int_eq(fx.upgrade_ended_tags[0], 1);
	c = hold(2, "k", S);
	ck_assert_int_eq(convert(1, b, X, -1, 2), LT_QUEUED);
	fx_revoke(&fx, b);
	ck_assert_uint_eq(fx.nupgrade_ended, 2);
	ck_assert_int_eq(convert(2, c, X, -1, 3), LT_GRANTED);
	ck_assert_int_eq(convert(2, c, S, -1, 4), LT_GRANTED);
	hold(3, "k", S);
	ck_assert_int_eq(convert(2, c, X, 10, 5), LT_QUEUED);
	fx_owner_done(&fx, &o[2]); /* unreported: nobody is left to answer */
	ck_assert_uint_eq(fx.nupgrade_ended, 2);
	ck_assert_uint_eq(fx.lt.stats.upgrading, 0);
	ck_assert_int_eq(locktable_next_deadline(&fx.lt), -1);
}
END_TEST

static Suite *convert_suite(void)
{
	Suite *s = suite_create("convert");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, only_the_holder_converts_its_lease);
	tcase_add_test(tc, the_same_mode_is_ok_without_a_new_fence);
	tcase_add_test(tc, a_semaphore_place_does_not_convert);
	tcase_add_test(tc, a_downgrade_lets_the_readers_at_the_head_in);
	tcase_add_test(tc, an_upgrade_alone_is_granted_at_once_with_a_new_fence);
	tcase_add_test(tc, an_upgrade_goes_ahead_of_every_waiter);
	tcase_add_test(tc, an_upgrade_that_tries_once_stays_shared);
	tcase_add_test(tc, an_upgrade_times_out_and_the_queue_moves);
	tcase_add_test(tc, an_upgrade_is_cancelled_by_its_tag);
	tcase_add_test(tc, a_second_upgrader_gets_deadlock);
	tcase_add_test(tc, a_second_upgrader_gets_deadlock_past_the_bound);
	tcase_add_test(tc, a_reader_behind_an_upgrade_waits_for_the_upgrader);
	tcase_add_test(tc, an_upgrade_that_closes_a_cycle_is_refused);
	tcase_add_test(tc, an_upgrade_ends_with_its_lease);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(convert_suite());
}
