/* Multi-key requests in the lock table (daemon/locktable.c), driven
 * directly: fake owners, a fake clock. One lease over several keys,
 * granted all-or-nothing, FIFO on each key, ended as one. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "lt_fixture.h"
#include "suite.h"

#define NOWNERS 8

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

/* Owner i asks for keys a and b (modes ma, mb), and c if given. */
static enum lt_result multi(int i, const char *a, enum lt_mode ma, const char *b,
			    enum lt_mode mb, const char *c, int64_t timeout_ms, int64_t tag,
			    struct lt_entry **ret)
{
	const struct lt_part parts[3] = {
		{ a, strlen(a), ma }, { b, strlen(b), mb }, { c ? c : "", c ? strlen(c) : 0, X },
	};
	const struct lt_request req = { .timeout_ms = timeout_ms, .tag = tag };
	struct lt_entry *dummy;
	enum lt_result r = locktable_acquire_multi(&fx.lt, &o[i], &req, parts, c ? 3 : 2,
						   ret ? ret : &dummy);

	fx_drain(&fx);
	return r;
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

static const struct lt_resource *res(const char *key)
{
	return locktable_find(&fx.lt, key, strlen(key));
}

/* The tags granted since the last call, in order, as "1,2,". */
static const char *grants(void)
{
	static char buf[256];
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < fx.ngranted; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%lld,",
				      (long long)fx.granted_tags[i]);
	fx.ngranted = 0;
	return buf;
}

START_TEST(free_keys_are_granted_at_once_as_one_lease)
{
	struct lt_entry *e;
	const struct lt_multi *m;

	ck_assert_int_eq(multi(0, "a", X, "b", S, "c", -1, 1, &e), LT_GRANTED);
	m = e->multi;
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(m->n, 3);
	for (size_t i = 0; i < 3; i++) {
		ck_assert(m->parts[i]->held);
		ck_assert_uint_eq(m->parts[i]->id, e->id);
		ck_assert_uint_eq(m->parts[i]->fence, e->fence);
	}
	ck_assert_int_eq(m->parts[1]->mode, S);
	ck_assert_ptr_eq(locktable_lease(&fx.lt, e->id), e);
	ck_assert_uint_eq(o[0].nheld, 3);
	ck_assert_uint_eq(fx.lt.stats.leases, 1);
	/* A shared request on b is compatible: granted beside it. */
	hold(1, "b", S);
	ck_assert_int_eq(fx_release(&fx, &o[0], e->id), LT_OK);
	ck_assert_ptr_null(res("a"));
	ck_assert_uint_eq(res("b")->nholders, 1);
	ck_assert_uint_eq(o[0].nheld, 0);
	ck_assert_uint_eq(fx.lt.stats.leases, 1);
}
END_TEST

/* It holds nothing while it waits: a, free, is not taken while b is held. */
START_TEST(it_holds_nothing_while_it_waits)
{
	struct lt_entry *hb = hold(1, "b", X), *e;

	ck_assert_int_eq(multi(0, "a", X, "b", X, NULL, -1, 1, &e), LT_QUEUED);
	ck_assert_uint_eq(res("a")->nholders, 0);
	ck_assert_uint_eq(res("a")->nwaiters, 1);
	/* Others may take a meanwhile (nothing conflicting is ahead of them
	 * when it is gone); here a request behind it on a waits behind it. */
	wait_for(2, "a", X, 2);
	ck_assert_int_eq(fx_release(&fx, &o[1], hb->id), LT_OK);
	ck_assert_str_eq(grants(), "1,");
	ck_assert(e->held && e->multi->parts[1]->held);
	ck_assert_uint_eq(e->multi->parts[1]->fence, e->fence);
	ck_assert_int_eq(fx_release(&fx, &o[0], e->id), LT_OK);
	ck_assert_str_eq(grants(), "2,");
}
END_TEST

START_TEST(timeout_zero_is_busy_and_leaves_nothing)
{
	hold(1, "b", S);
	ck_assert_int_eq(multi(0, "a", X, "b", X, NULL, 0, 1, NULL), LT_BUSY);
	ck_assert_ptr_null(res("a"));
	ck_assert_uint_eq(res("b")->nwaiters, 0);
	ck_assert_uint_eq(o[0].nwaiting + o[0].nheld, 0);
	ck_assert_int_eq(multi(0, "a", X, "b", S, NULL, 0, 1, NULL), LT_GRANTED);
}
END_TEST

START_TEST(any_key_held_or_waited_for_is_already_held)
{
	hold(0, "b", S);
	ck_assert_int_eq(multi(0, "a", X, "b", X, NULL, -1, 1, NULL), LT_ALREADY_HELD);
	ck_assert_ptr_null(res("a"));
	ck_assert_uint_eq(o[0].nheld, 1);
	ck_assert_uint_eq(o[0].nwaiting, 0);
}
END_TEST

START_TEST(a_semaphore_in_use_is_a_bad_limit)
{
	const struct lt_request req = { .key = "a", .key_len = 1, .mode = X, .timeout_ms = -1,
					.limit = 2 };
	struct lt_entry *e;

	ck_assert_int_eq(locktable_acquire(&fx.lt, &o[1], &req, &e), LT_GRANTED);
	fx_drain(&fx);
	ck_assert_int_eq(multi(0, "b", X, "a", X, NULL, -1, 1, NULL), LT_BAD_LIMIT);
	ck_assert_ptr_null(res("b"));
	ck_assert_uint_eq(res("a")->nholders, 1);
}
END_TEST

/* FIFO on each key: a single request behind it on a key waits, even when
 * it could be granted on that key alone; a compatible one passes. */
START_TEST(fifo_on_each_key_a_compatible_request_passes)
{
	struct lt_entry *hb = hold(1, "b", X), *e;

	hold(3, "a", S);
	ck_assert_int_eq(multi(0, "a", S, "b", X, NULL, -1, 1, &e), LT_QUEUED);
	/* Shared on a: no conflict ahead, compatible: granted at once. */
	ck_assert_int_eq(fx_acquire(&fx, &o[4], "a", S, -1, 4, NULL), LT_GRANTED);
	/* Exclusive on a behind it: waits, as behind any request ahead. */
	wait_for(2, "a", X, 2);
	/* Now a shared one waits too: the writer ahead conflicts. */
	wait_for(5, "a", S, 5);
	ck_assert_int_eq(fx_release(&fx, &o[1], hb->id), LT_OK);
	ck_assert_str_eq(grants(), "1,");
	ck_assert_uint_eq(res("a")->nholders, 3);
	ck_assert_uint_eq(res("a")->nwaiters, 2);
}
END_TEST

/* No starvation either way: a multi-key request is not passed by later
 * conflicting single ones, nor does it pass earlier ones. */
START_TEST(no_starvation_either_way)
{
	struct lt_entry *ha = hold(1, "a", S), *hb = hold(2, "b", S), *e, *w;

	ck_assert_int_eq(multi(0, "a", X, "b", X, NULL, -1, 1, &e), LT_QUEUED);
	/* Later readers on a and b queue behind it. */
	wait_for(3, "a", S, 3);
	wait_for(4, "b", S, 4);
	ck_assert_int_eq(fx_release(&fx, &o[1], ha->id), LT_OK);
	ck_assert_str_eq(grants(), "");
	ck_assert_int_eq(fx_release(&fx, &o[2], hb->id), LT_OK);
	ck_assert_str_eq(grants(), "1,");
	/* And a writer queued on b before a multi-key request goes first. */
	ck_assert_int_eq(fx_release(&fx, &o[0], e->id), LT_OK);
	ck_assert_str_eq(grants(), "3,4,");
	w = wait_for(5, "b", X, 5);
	ck_assert_int_eq(multi(6, "a", S, "b", S, NULL, -1, 6, NULL), LT_QUEUED);
	(void)w;
	fx_owner_done(&fx, &o[4]);
	ck_assert_str_eq(grants(), "5,");
	fx_owner_done(&fx, &o[5]);
	ck_assert_str_eq(grants(), "6,");
}
END_TEST

START_TEST(a_change_on_either_key_grants_it)
{
	struct lt_entry *ha = hold(1, "a", X), *hb = hold(2, "b", X), *e;

	ck_assert_int_eq(multi(0, "a", X, "b", X, NULL, -1, 1, &e), LT_QUEUED);
	ck_assert_int_eq(fx_release(&fx, &o[2], hb->id), LT_OK);
	ck_assert_str_eq(grants(), "");
	ck_assert_uint_eq(res("b")->nholders, 0); /* nothing taken on b */
	ck_assert_int_eq(fx_release(&fx, &o[1], ha->id), LT_OK);
	ck_assert_str_eq(grants(), "1,");
	ck_assert_ptr_eq(fx.granted[0], e);
}
END_TEST

START_TEST(timeout_cancel_and_owner_end_remove_every_part)
{
	hold(1, "b", X);
	ck_assert_int_eq(multi(0, "a", X, "b", X, "c", 5, 1, NULL), LT_QUEUED);
	locktable_set_now(&fx.lt, fx.lt.now_us + 5000, fx.lt.wall_us + 5000);
	fx_expire(&fx);
	ck_assert_uint_eq(fx.nexpired, 1);
	ck_assert_int_eq(fx.expired_tags[0], 1);
	ck_assert_ptr_null(res("a"));
	ck_assert_ptr_null(res("c"));
	ck_assert_uint_eq(res("b")->nwaiters, 0);
	ck_assert_int_eq(multi(0, "a", X, "b", X, NULL, -1, 2, NULL), LT_QUEUED);
	ck_assert_int_eq(fx_cancel(&fx, &o[0], 2), LT_OK);
	ck_assert_ptr_null(res("a"));
	ck_assert_int_eq(multi(0, "a", X, "b", X, NULL, -1, 3, NULL), LT_QUEUED);
	fx_owner_done(&fx, &o[0]);
	ck_assert_ptr_null(res("a"));
	ck_assert_uint_eq(res("b")->nwaiters, 0);
	ck_assert_uint_eq(fx.lt.stats.waiters, 0);
	ck_assert_uint_eq(fx.lt.deadlines.len, 0);
}
END_TEST

/* A revoke through any part (by id, or a key's) ends the whole lease. */
START_TEST(a_revoke_ends_every_part)
{
	struct lt_entry *e;
	uint64_t id;

	ck_assert_int_eq(multi(0, "a", X, "b", X, NULL, -1, 1, &e), LT_GRANTED);
	id = e->id;
	wait_for(1, "a", X, 2);
	wait_for(2, "b", X, 3);
	fx_revoke(&fx, e->multi->parts[1]); /* e is gone after */
	ck_assert_uint_eq(fx.nrevoked, 1);
	ck_assert_uint_eq(fx.revoked_ids[0], id);
	ck_assert_str_eq(grants(), "2,3,");
	ck_assert_uint_eq(o[0].nheld, 0);
}
END_TEST

/* Drains the table's records by hand: the one of kind must name every
 * key of its multi-key entry, in order, while it is handled. */
static void drain_naming(enum lt_change_kind kind, const char *const *keys, size_t n)
{
	struct lt_change c;
	size_t seen = 0;

	while (locktable_next_change(&fx.lt, &c)) {
		if (c.kind != kind)
			continue;
		ck_assert_ptr_nonnull(c.entry->multi);
		ck_assert_uint_eq(c.entry->multi->n, n);
		for (size_t i = 0; i < n; i++)
			ck_assert_str_eq(c.entry->multi->parts[i]->res->key, keys[i]);
		seen++;
	}
	ck_assert_uint_eq(seen, 1);
}

/* A gone record (a timeout, a revoke) names every key of its request or
 * lease until it is drained: each part stays until then (the daemon's
 * events list the keys). */
START_TEST(a_gone_record_keeps_every_part_until_drained)
{
	/* A message makes the parts too big to be kept as spares: freed, a
	 * part is malloc's again (and the sanitizers see its use). */
	const struct lt_part parts[3] = { { "ka", 2, X }, { "kb", 2, X }, { "kc", 2, X } };
	struct lt_request req = {
		.timeout_ms = 5, .tag = 1,
		.message = "a message long enough to make each part's entry a big one",
	};
	struct lt_entry *e;

	hold(1, "kb", X);
	ck_assert_int_eq(locktable_acquire_multi(&fx.lt, &o[0], &req, parts, 3, &e), LT_QUEUED);
	fx_drain(&fx);
	locktable_set_now(&fx.lt, fx.lt.now_us + 5000, fx.lt.wall_us + 5000);
	locktable_expire(&fx.lt);
	drain_naming(LT_CHANGE_EXPIRED, (const char *[]){ "ka", "kb", "kc" }, 3);
	ck_assert_ptr_null(res("ka"));

	req.timeout_ms = -1;
	ck_assert_int_eq(locktable_acquire_multi(&fx.lt, &o[2], &req, (const struct lt_part[]){
		parts[0], parts[2] }, 2, &e), LT_GRANTED);
	fx_drain(&fx);
	locktable_revoke(&fx.lt, e->multi->parts[1]);
	drain_naming(LT_CHANGE_REVOKED, (const char *[]){ "ka", "kc" }, 2);
	ck_assert_ptr_null(res("ka"));
	ck_assert_ptr_null(res("kc"));
}
END_TEST

/* A multi-key request about to wait searches from every part's edges. */
START_TEST(a_deadlock_through_any_part_is_found)
{
	struct lt_entry *hb;

	hold(0, "a", X);
	hb = hold(1, "c", X);
	wait_for(1, "a", X, 1); /* 1 waits for 0 */
	ck_assert_int_eq(multi(0, "b", X, "c", X, NULL, -1, 2, NULL), LT_DEADLOCK);
	ck_assert_uint_eq(fx.lt.cycle.total, 2);
	ck_assert_ptr_eq(fx.lt.cycle.waits[0].owner, &o[0]);
	ck_assert_str_eq(fx.lt.cycle.waits[0].res->key, "c");
	ck_assert_ptr_eq(fx.lt.cycle.waits[0].blocker, hb);
	ck_assert_ptr_null(res("b"));
	ck_assert_uint_eq(o[0].nwaiting, 0);
}
END_TEST

/* A waiting multi-key request is a request ahead on each of its keys: one
 * queued behind it that conflicts waits for it. */
START_TEST(a_waiting_multi_key_request_is_in_the_graph)
{
	hold(1, "b", X);
	ck_assert_int_eq(multi(0, "a", S, "b", X, NULL, -1, 1, NULL), LT_QUEUED);
	hold(2, "c", X);
	wait_for(2, "a", X, 2);  /* waits for 0's part on a */
	/* 0 waits for 1 on b: 1 asking for c (2's) closes 1 -> 2 -> 0 -> 1. */
	ck_assert_int_eq(fx_acquire(&fx, &o[1], "c", X, -1, 3, NULL), LT_DEADLOCK);
	ck_assert_uint_eq(fx.lt.cycle.total, 3);
}
END_TEST

/* Shared parts queued in a row are each waited for by a writer behind. */
START_TEST(a_writer_waits_for_each_shared_part_ahead)
{
	hold(1, "b", X);
	hold(2, "c", X);
	ck_assert_int_eq(multi(0, "a", S, "b", S, NULL, -1, 1, NULL), LT_QUEUED);
	ck_assert_int_eq(multi(3, "a", S, "c", S, NULL, -1, 2, NULL), LT_QUEUED);
	wait_for(4, "a", X, 3); /* waits for 0 and 3 */
	/* 1 asks for d, held by 4: 1 -> 4 -> 0 -> 1 goes through the first
	 * shared part, not the one just ahead. */
	hold(4, "d", X);
	ck_assert_int_eq(fx_acquire(&fx, &o[1], "d", X, -1, 4, NULL), LT_DEADLOCK);
	ck_assert_uint_eq(fx.lt.cycle.total, 3);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("multikey");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, free_keys_are_granted_at_once_as_one_lease);
	tcase_add_test(tc, it_holds_nothing_while_it_waits);
	tcase_add_test(tc, timeout_zero_is_busy_and_leaves_nothing);
	tcase_add_test(tc, any_key_held_or_waited_for_is_already_held);
	tcase_add_test(tc, a_semaphore_in_use_is_a_bad_limit);
	tcase_add_test(tc, fifo_on_each_key_a_compatible_request_passes);
	tcase_add_test(tc, no_starvation_either_way);
	tcase_add_test(tc, a_change_on_either_key_grants_it);
	tcase_add_test(tc, timeout_cancel_and_owner_end_remove_every_part);
	tcase_add_test(tc, a_revoke_ends_every_part);
	tcase_add_test(tc, a_gone_record_keeps_every_part_until_drained);
	tcase_add_test(tc, a_deadlock_through_any_part_is_found);
	tcase_add_test(tc, a_waiting_multi_key_request_is_in_the_graph);
	tcase_add_test(tc, a_writer_waits_for_each_shared_part_ahead);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
