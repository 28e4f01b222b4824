/* Deadlock detection in the lock table (daemon/deadlock.c), driven
 * directly: fake owners, a fake clock. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "lt_fixture.h"
#include "suite.h"

#define NOWNERS 24

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

/* Owner i's lease on key, granted at once. */
static struct lt_entry *hold(int i, const char *key, enum lt_mode mode)
{
	return fx_hold(&fx, &o[i], key, mode);
}

/* Owner i's request on key, which must wait. */
static struct lt_entry *wait_for(int i, const char *key, enum lt_mode mode, int64_t tag)
{
	return fx_wait(&fx, &o[i], key, mode, tag);
}

static enum lt_result ask(int i, const char *key, enum lt_mode mode)
{
	return fx_acquire(&fx, &o[i], key, mode, -1, 99, NULL);
}

/* The n-th wait of the cycle: owner i waits for mode on key, for blocker. */
static void check_wait(size_t n, int i, const char *key, enum lt_mode mode,
		       const struct lt_entry *blocker)
{
	const struct lt_wait *w = &fx.lt.cycle.waits[n];

	ck_assert_ptr_eq(w->owner, &o[i]);
	ck_assert_str_eq(w->res->key, key);
	ck_assert_int_eq(w->mode, mode);
	ck_assert_ptr_eq(w->blocker, blocker);
}

START_TEST(classic_two_sessions)
{
	struct lt_entry *ax = hold(0, "x", X), *by = hold(1, "y", X), *ay = wait_for(0, "y", X, 1);

	ck_assert_int_eq(ask(1, "x", X), LT_DEADLOCK);
	ck_assert_uint_eq(fx.lt.cycle.total, 2);
	ck_assert_uint_eq(fx.lt.cycle.len, 2);
	check_wait(0, 1, "x", X, ax);
	ck_assert_ptr_null(fx.lt.cycle.waits[0].waiter); /* the refused request */
	check_wait(1, 0, "y", X, by);
	ck_assert_ptr_eq(fx.lt.cycle.waits[1].waiter, ay);
	ck_assert_uint_eq(fx.lt.stats.deadlocks, 1);
	/* Nothing of the refused request stays; the other wait goes on. */
	ck_assert_uint_eq(o[1].nwaiting, 0);
	ck_assert_uint_eq(fx.lt.stats.waiters, 1);
	ck_assert_int_eq(fx_release(&fx, &o[1], by->id), LT_OK);
	ck_assert_uint_eq(fx.ngranted, 1);
	ck_assert_ptr_eq(fx.granted[0], ay);
}
END_TEST

START_TEST(three_sessions)
{
	struct lt_entry *ax = hold(0, "x", X), *by = hold(1, "y", X), *cz = hold(2, "z", X);
	struct lt_entry *ay = wait_for(0, "y", X, 1), *bz = wait_for(1, "z", X, 2);

	ck_assert_int_eq(ask(2, "x", S), LT_DEADLOCK);
	ck_assert_uint_eq(fx.lt.cycle.total, 3);
	check_wait(0, 2, "x", S, ax);
	check_wait(1, 0, "y", X, by);
	ck_assert_ptr_eq(fx.lt.cycle.waits[1].waiter, ay);
	check_wait(2, 1, "z", X, cz);
	ck_assert_ptr_eq(fx.lt.cycle.waits[2].waiter, bz);
}
END_TEST

START_TEST(a_chain_is_no_cycle)
{
	hold(0, "x", X);
	wait_for(1, "x", X, 1);
	hold(2, "y", X);
	wait_for(0, "y", X, 2); /* 0 waits for 2, who waits for nobody */
	ck_assert_int_eq(ask(2, "z", X), LT_GRANTED);
	ck_assert_int_eq(ask(3, "y", S), LT_QUEUED);
	ck_assert_uint_eq(fx.lt.stats.deadlocks, 0);
	ck_assert_uint_eq(fx.lt.stats.deadlock_searches, 3);
}
END_TEST

/* Shared requests do not wait for each other: readers that share a key
 * while each waits for the other's second key are no deadlock... */
START_TEST(shared_holders_are_no_cycle)
{
	hold(0, "x", S);
	hold(1, "x", S);
	hold(2, "y", X);
	wait_for(0, "y", S, 1);
	ck_assert_int_eq(ask(1, "y", S), LT_QUEUED);
	ck_assert_uint_eq(fx.lt.stats.deadlocks, 0);
}
END_TEST

/* ...nor does a reader wait for a reader queued ahead of it: both go in
 * together when the writer ahead of them is done. */
START_TEST(a_reader_does_not_wait_for_a_reader_ahead)
{
	hold(0, "r", X);
	wait_for(1, "r", X, 1);
	wait_for(2, "r", S, 2);
	hold(3, "k", X);
	wait_for(3, "r", S, 3); /* behind 2: waits for 1's writer, not for 2 */
	ck_assert_int_eq(ask(2, "k", X), LT_QUEUED);
	ck_assert_uint_eq(fx.lt.stats.deadlocks, 0);
}
END_TEST

/* A request waits for the conflicting request queued ahead of it, not only
 * for the holders: that closes a cycle too. */
START_TEST(a_request_queued_ahead_closes_a_cycle)
{
	struct lt_entry *bx, *cz;

	hold(0, "x", S);
	hold(1, "y", X);
	bx = wait_for(1, "x", X, 1); /* waits for 0 */
	cz = hold(2, "z", X);
	wait_for(2, "x", S, 2);      /* waits for 1's writer ahead, not for 0 */
	ck_assert_int_eq(ask(1, "z", X), LT_DEADLOCK);
	ck_assert_uint_eq(fx.lt.cycle.total, 2);
	check_wait(0, 1, "z", X, cz);
	check_wait(1, 2, "x", S, bx);
	ck_assert(!fx.lt.cycle.waits[1].blocker->held);
}
END_TEST

/* A writer behind a reader waits for that reader and for the holders
 * (the reader ahead may be compatible with them): the cycle through the
 * holders is found, and it is the shortest. */
START_TEST(a_writer_behind_a_reader_waits_for_the_holders)
{
	struct lt_entry *ax = hold(0, "x", S), *dk = hold(3, "k", X), *dx;

	wait_for(1, "x", X, 1);
	wait_for(2, "x", S, 2);
	dx = wait_for(3, "x", X, 3);
	ck_assert_int_eq(ask(0, "k", X), LT_DEADLOCK);
	ck_assert_uint_eq(fx.lt.cycle.total, 2);
	check_wait(0, 0, "k", X, dk);
	check_wait(1, 3, "x", X, ax);
	ck_assert_ptr_eq(fx.lt.cycle.waits[1].waiter, dx);
}
END_TEST

/* An acquire of a semaphore's place. */
static enum lt_result ask_place(int i, const char *key, uint32_t limit, int64_t tag)
{
	const struct lt_request req = {
		.key = key, .key_len = strlen(key), .mode = X, .timeout_ms = -1, .tag = tag,
		.limit = limit,
	};
	struct lt_entry *e;
	enum lt_result r = locktable_acquire(&fx.lt, &o[i], &req, &e);

	fx_drain(&fx);
	return r;
}

/* With two places, a waiter waits for whichever holder leaves first: 3
 * holding k and waiting for a place is no cycle with 1, who holds a place
 * and waits for k, since 2 may leave its place. With one place it is. */
START_TEST(a_semaphore_waiter_waits_for_no_one_session)
{
	ck_assert_int_eq(ask_place(1, "pool", 2, 1), LT_GRANTED);
	ck_assert_int_eq(ask_place(2, "pool", 2, 2), LT_GRANTED);
	hold(3, "k", X);
	wait_for(1, "k", X, 3);
	ck_assert_int_eq(ask_place(3, "pool", 2, 4), LT_QUEUED);
	ck_assert_uint_eq(fx.lt.stats.deadlocks, 0);

	ck_assert_int_eq(ask_place(4, "one", 1, 5), LT_GRANTED);
	hold(5, "j", X);
	wait_for(4, "j", X, 6);
	ck_assert_int_eq(ask_place(5, "one", 1, 7), LT_DEADLOCK);
	ck_assert_uint_eq(fx.lt.cycle.total, 2);
}
END_TEST

/* A ring of n sessions, each holding its key and waiting for the next's. */
static void ring(int n)
{
	char key[16];

	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		hold(i, key, X);
	}
	for (int i = 0; i + 1 < n; i++) {
		snprintf(key, sizeof(key), "k%d", i + 1);
		wait_for(i, key, X, i + 1);
	}
}

START_TEST(a_long_cycle_is_cut_in_the_report)
{
	ring(20);
	ck_assert_int_eq(ask(19, "k0", X), LT_DEADLOCK);
	ck_assert_uint_eq(fx.lt.cycle.total, 20);
	ck_assert_uint_eq(fx.lt.cycle.len, LT_CYCLE_MAX);
	for (size_t i = 0; i < LT_CYCLE_MAX; i++)
		ck_assert_ptr_eq(fx.lt.cycle.waits[i].owner, &o[(i + 19) % 20]);
}
END_TEST

START_TEST(a_search_past_its_bound_lets_the_request_wait)
{
	ring(20);
	fx.lt.dl_steps_max = 10;
	ck_assert_int_eq(ask(19, "k0", X), LT_QUEUED);
	ck_assert_uint_eq(fx.lt.stats.deadlock_searches_cut, 1);
	ck_assert_uint_eq(fx.lt.stats.deadlocks, 0);
}
END_TEST

/* A writer cannot pass the readers queued ahead of it, any of them: here
 * 1's writer waits for 0's reader behind 2's, and 0 waits for 1 on k. */
START_TEST(a_writer_waits_for_every_reader_ahead)
{
	struct lt_entry *bk = hold(1, "k", X), *ar;

	hold(3, "r", X);
	ar = wait_for(0, "r", S, 1);
	wait_for(0, "k", X, 2);
	wait_for(2, "r", S, 3);
	ck_assert_int_eq(ask(1, "r", X), LT_DEADLOCK);
	ck_assert_uint_eq(fx.lt.cycle.total, 2);
	check_wait(0, 1, "r", X, ar);
	ck_assert_ptr_eq(fx.lt.cycle.waits[1].blocker, bk);
}
END_TEST

/* Every wait of an owner the search passes is a step, even one with no
 * edges (a place on a semaphore): the bound holds. */
START_TEST(every_wait_passed_is_a_step)
{
	char key[16];

	hold(0, "k", X);
	for (int i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "s%d", i);
		ck_assert_int_eq(ask_place(1, key, 2, 100 + i), LT_GRANTED);
		ck_assert_int_eq(ask_place(2, key, 2, 200 + i), LT_GRANTED);
		ck_assert_int_eq(ask_place(0, key, 2, 300 + i), LT_QUEUED);
	}
	fx.lt.dl_steps_max = 20;
	ck_assert_int_eq(ask(3, "k", X), LT_QUEUED);
	ck_assert_uint_eq(fx.lt.stats.deadlock_searches_cut, 1);
}
END_TEST

/* Owner 0's request for g (shared) and k (exclusive, held by 2): its part
 * on g waits, compatible with g's readers, for k; and 0 holds h, which 1,
 * a reader of g, waits for. */
static struct lt_entry *passed_setup(void)
{
	static const struct lt_part parts[] = {
		{ "g", 1, LT_SHARED }, { "k", 1, LT_EXCLUSIVE },
	};
	const struct lt_request req = { .mode = X, .timeout_ms = -1, .tag = 9 };
	struct lt_entry *g = hold(1, "g", S), *e;

	hold(2, "k", X);
	hold(0, "h", X);
	wait_for(1, "h", X, 1);
	ck_assert_int_eq(locktable_acquire_multi(&fx.lt, &o[0], &req, parts, 2, &e), LT_QUEUED);
	fx_drain(&fx);
	return g;
}

/* An upgrade goes ahead of every queued request, so the requests it
 * passes wait for it from then on: granted at once, 1's upgrade of g
 * would make 0's part wait for 1, which waits for 0. Refused, the cycle
 * from 0's wait. */
START_TEST(an_upgrade_at_once_that_a_passed_request_would_wait_in_a_cycle_for)
{
	struct lt_entry *g = passed_setup();

	ck_assert_int_eq(fx_convert(&fx, &o[1], g->id, X, -1, 5), LT_DEADLOCK);
	ck_assert_int_eq(g->mode, S);
	ck_assert_uint_eq(fx.lt.cycle.total, 2);
	ck_assert_ptr_eq(fx.lt.cycle.waits[0].owner, &o[0]);
	ck_assert_ptr_nonnull(fx.lt.cycle.waits[0].waiter); /* queued: the upgrade is refused */
	ck_assert_ptr_eq(fx.lt.cycle.waits[0].blocker, g);
	ck_assert_ptr_eq(fx.lt.cycle.waits[1].owner, &o[1]);
}
END_TEST

/* The same with another reader of g: the upgrade would wait for it, and
 * the part it passes would wait for the upgrade. */
START_TEST(a_pending_upgrade_that_a_passed_request_would_wait_in_a_cycle_for)
{
	struct lt_entry *g = passed_setup();

	hold(3, "g", S);
	ck_assert_int_eq(fx_convert(&fx, &o[1], g->id, X, -1, 5), LT_DEADLOCK);
	ck_assert(!g->res->upgrading); /* nothing of it left pending */
	ck_assert_uint_eq(fx.lt.stats.upgrading, 0);
	ck_assert_ptr_eq(fx.lt.cycle.waits[0].owner, &o[0]);
}
END_TEST

static Suite *deadlock_suite(void)
{
	Suite *s = suite_create("deadlock");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, classic_two_sessions);
	tcase_add_test(tc, three_sessions);
	tcase_add_test(tc, a_chain_is_no_cycle);
	tcase_add_test(tc, shared_holders_are_no_cycle);
	tcase_add_test(tc, a_reader_does_not_wait_for_a_reader_ahead);
	tcase_add_test(tc, a_request_queued_ahead_closes_a_cycle);
	tcase_add_test(tc, a_writer_behind_a_reader_waits_for_the_holders);
	tcase_add_test(tc, a_semaphore_waiter_waits_for_no_one_session);
	tcase_add_test(tc, a_writer_waits_for_every_reader_ahead);
	tcase_add_test(tc, every_wait_passed_is_a_step);
	tcase_add_test(tc, an_upgrade_at_once_that_a_passed_request_would_wait_in_a_cycle_for);
	tcase_add_test(tc, a_pending_upgrade_that_a_passed_request_would_wait_in_a_cycle_for);
	tcase_add_test(tc, a_long_cycle_is_cut_in_the_report);
	tcase_add_test(tc, a_search_past_its_bound_lets_the_request_wait);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(deadlock_suite());
}
