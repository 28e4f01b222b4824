/* A randomized model test of the lock table: random acquires, releases,
 * cancels, expiries and owner ends over several owners and keys, checked
 * after every step against a plain reference model of the specification. */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lt_fixture.h"
#include "suite.h"

#define NOWN 6
#define NKEY 3
#define STEPS 20000

static const char *const keys[NKEY] = { "alpha", "beta", "gamma" };

struct m_entry {
	int owner;
	enum lt_mode mode;
	int64_t tag;
	uint64_t deadline;      /* 0: none */
};

struct m_key {
	struct m_entry holders[NOWN];
	int nh;
	struct m_entry waiters[NOWN];
	int nw;
	int64_t expected[4 * NOWN];  /* grants the model predicts this step, in order */
	int nexpected;
};

struct model {
	struct m_key k[NKEY];
	uint64_t now_us;
};

static struct lt_fixture fx;
static struct lt_owner owners[NOWN];
static struct model m;
static uint64_t rng;
static uint64_t seed_of_run;
static uint64_t last_fence;
static int64_t next_tag;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int rnd_below(int n)
{
	return (int)(rnd() % (uint64_t)n);
}

static bool m_compatible(const struct m_key *k, enum lt_mode mode)
{
	return k->nh == 0 || (k->holders[0].mode == LT_SHARED && mode == LT_SHARED);
}

static int m_find(const struct m_entry *v, int n, int owner)
{
	for (int i = 0; i < n; i++)
		if (v[i].owner == owner)
			return i;
	return -1;
}

static void m_remove(struct m_entry *v, int *n, int i)
{
	memmove(&v[i], &v[i + 1], (size_t)(*n - i - 1) * sizeof(*v));
	(*n)--;
}

static void m_promote(struct m_key *k)
{
	while (k->nw && m_compatible(k, k->waiters[0].mode)) {
		k->holders[k->nh++] = k->waiters[0];
		k->expected[k->nexpected++] = k->waiters[0].tag;
		m_remove(k->waiters, &k->nw, 0);
	}
}

static int key_index(const struct lt_resource *r)
{
	for (int i = 0; i < NKEY; i++)
		if (strcmp(r->key, keys[i]) == 0)
			return i;
	ck_abort_msg("unknown key %s", r->key);
	return -1;
}

static void check_fence(const struct lt_entry *e)
{
	ck_assert_msg(e->fence > last_fence, "seed %" PRIu64 ": fence went from %" PRIu64
		      " to %" PRIu64, seed_of_run, last_fence, e->fence);
	last_fence = e->fence;
}

/* Replays the table's expiries into the model (ties in deadline are the
 * table's to order) and checks every grant the table reported. */
static void reconcile_events(size_t granted_before)
{
	int actual[NKEY][4 * NOWN], nactual[NKEY] = { 0 };

	for (size_t i = 0; i < fx.nexpired; i++) {
		int64_t tag = fx.expired_tags[i];
		bool found = false;

		for (int ki = 0; ki < NKEY && !found; ki++) {
			struct m_key *k = &m.k[ki];

			for (int w = 0; w < k->nw; w++) {
				if (k->waiters[w].tag != tag)
					continue;
				ck_assert_msg(k->waiters[w].deadline && k->waiters[w].deadline <= m.now_us,
					      "seed %" PRIu64 ": tag %" PRId64 " expired early",
					      seed_of_run, tag);
				m_remove(k->waiters, &k->nw, w);
				m_promote(k);
				found = true;
				break;
			}
		}
		ck_assert_msg(found, "seed %" PRIu64 ": expired tag %" PRId64 " not waiting in the model",
			      seed_of_run, tag);
	}
	fx.nexpired = 0;
	for (size_t i = granted_before; i < fx.ngranted; i++) {
		int ki = key_index(fx.granted[i]->res);

		check_fence(fx.granted[i]);
		actual[ki][nactual[ki]++] = (int)fx.granted_tags[i];
	}
	fx.ngranted = 0;
	for (int ki = 0; ki < NKEY; ki++) {
		struct m_key *k = &m.k[ki];

		ck_assert_msg(nactual[ki] == k->nexpected, "seed %" PRIu64 ": key %s: %d grants, model says %d",
			      seed_of_run, keys[ki], nactual[ki], k->nexpected);
		for (int i = 0; i < nactual[ki]; i++)
			ck_assert_msg(actual[ki][i] == k->expected[i], "seed %" PRIu64 ": key %s: grant order",
				      seed_of_run, keys[ki]);
		k->nexpected = 0;
	}
}

static bool holder_has_tag(const struct m_key *k, int64_t tag)
{
	for (int i = 0; i < k->nh; i++)
		if (k->holders[i].tag == tag)
			return true;
	return false;
}

static void check_state(void)
{
	size_t leases = 0, waiters = 0, resources = 0;

	for (int ki = 0; ki < NKEY; ki++) {
		const struct m_key *k = &m.k[ki];
		const struct lt_resource *r = locktable_find(&fx.lt, keys[ki], strlen(keys[ki]));
		const struct list *pos;
		int i = 0;

		if (k->nh == 0 && k->nw == 0) {
			ck_assert_msg(!r, "seed %" PRIu64 ": key %s should be gone", seed_of_run, keys[ki]);
			continue;
		}
		ck_assert_ptr_nonnull(r);
		resources++;
		ck_assert_int_eq((int)r->nholders, k->nh);
		ck_assert_int_eq((int)r->nwaiters, k->nw);
		list_foreach(pos, &r->holders) {
			const struct lt_entry *e = list_entry(pos, struct lt_entry, qnode);

			ck_assert(holder_has_tag(k, e->tag));
			/* No two incompatible leases coexist. */
			ck_assert(r->nholders == 1 || e->mode == LT_SHARED);
		}
		list_foreach(pos, &r->waiters) {
			const struct lt_entry *e = list_entry(pos, struct lt_entry, qnode);

			ck_assert_int_eq(e->tag, k->waiters[i++].tag);  /* FIFO order */
		}
		/* Nobody waits who could be granted. */
		ck_assert(k->nw == 0 || !m_compatible(k, k->waiters[0].mode));
		leases += (size_t)k->nh;
		waiters += (size_t)k->nw;
	}
	ck_assert_uint_eq(fx.lt.stats.leases, leases);
	ck_assert_uint_eq(fx.lt.stats.waiters, waiters);
	ck_assert_uint_eq(fx.lt.stats.resources, resources);
}

static void step_acquire(void)
{
	static const int64_t timeouts[] = { -1, 0, 0, 1, 5, 20 };
	int o = rnd_below(NOWN), ki = rnd_below(NKEY);
	enum lt_mode mode = rnd_below(3) ? LT_SHARED : LT_EXCLUSIVE;
	int64_t timeout = timeouts[rnd_below(6)], tag = ++next_tag;
	struct m_key *k = &m.k[ki];
	struct lt_entry *e = NULL;
	enum lt_result want, got = fx_acquire(&fx, &owners[o], keys[ki], mode, timeout, tag, &e);
	struct m_entry me = { o, mode, tag, timeout > 0 ? m.now_us + (uint64_t)timeout * 1000 : 0 };

	if (m_find(k->holders, k->nh, o) >= 0 || m_find(k->waiters, k->nw, o) >= 0) {
		want = LT_ALREADY_HELD;
	} else if (k->nw == 0 && m_compatible(k, mode)) {
		want = LT_GRANTED;
		k->holders[k->nh++] = me;
	} else if (timeout == 0) {
		want = LT_BUSY;
	} else {
		want = LT_QUEUED;
		k->waiters[k->nw++] = me;
	}
	ck_assert_msg(got == want, "seed %" PRIu64 ": acquire gave %d, model says %d", seed_of_run,
		      got, want);
	if (got == LT_GRANTED)
		check_fence(e);
}

/* A random held lease (or waiting request) of a random owner, or false. */
static bool pick(bool held, int *o, int *ki, int *idx)
{
	int start = rnd_below(NOWN * NKEY);

	for (int n = 0; n < NOWN * NKEY; n++) {
		int x = (start + n) % (NOWN * NKEY);
		struct m_key *k = &m.k[x % NKEY];

		*o = x / NKEY;
		*ki = x % NKEY;
		*idx = held ? m_find(k->holders, k->nh, *o) : m_find(k->waiters, k->nw, *o);
		if (*idx >= 0)
			return true;
	}
	return false;
}

static struct lt_entry *real_entry(int o, int64_t tag)
{
	struct list *pos;

	list_foreach(pos, &owners[o].held) {
		struct lt_entry *e = list_entry(pos, struct lt_entry, onode);

		if (e->tag == tag)
			return e;
	}
	return NULL;
}

static void step_release(void)
{
	int o, ki, i;
	struct m_key *k;

	if (!pick(true, &o, &ki, &i))
		return;
	k = &m.k[ki];
	ck_assert_int_eq(locktable_release(&fx.lt, &owners[o],
					   real_entry(o, k->holders[i].tag)->id), LT_OK);
	m_remove(k->holders, &k->nh, i);
	m_promote(k);
}

static void step_cancel(void)
{
	int o, ki, i;
	struct m_key *k;

	if (!pick(false, &o, &ki, &i))
		return;
	k = &m.k[ki];
	ck_assert_int_eq(locktable_cancel(&fx.lt, &owners[o], k->waiters[i].tag), LT_OK);
	m_remove(k->waiters, &k->nw, i);
	m_promote(k);
}

static void step_owner_end(void)
{
	int o = rnd_below(NOWN), i;

	locktable_owner_done(&fx.lt, &owners[o]);
	for (int ki = 0; ki < NKEY; ki++) {
		struct m_key *k = &m.k[ki];

		if ((i = m_find(k->waiters, k->nw, o)) >= 0)
			m_remove(k->waiters, &k->nw, i);
		if ((i = m_find(k->holders, k->nh, o)) >= 0)
			m_remove(k->holders, &k->nh, i);
		m_promote(k);
	}
	lt_owner_init(&owners[o], (uint64_t)o, o, 0, 0);
}

static void step_time(void)
{
	m.now_us += (uint64_t)rnd_below(8000);
	/* The wall clock sometimes goes back: fences must still increase. */
	locktable_set_now(&fx.lt, m.now_us, rnd_below(4) ? m.now_us : m.now_us / 2);
	locktable_expire(&fx.lt);
}

static void run_seed(uint64_t seed)
{
	seed_of_run = seed;
	rng = seed;
	last_fence = 0;
	next_tag = 0;
	memset(&m, 0, sizeof(m));
	fx_init(&fx);
	m.now_us = fx.lt.now_us;
	for (int o = 0; o < NOWN; o++)
		lt_owner_init(&owners[o], (uint64_t)o, o, 0, 0);
	for (int s = 0; s < STEPS; s++) {
		int op = rnd_below(20);

		if (op < 8)
			step_acquire();
		else if (op < 13)
			step_release();
		else if (op < 15)
			step_cancel();
		else if (op < 19)
			step_time();
		else
			step_owner_end();
		reconcile_events(0);
		check_state();
	}
	for (int o = 0; o < NOWN; o++)
		locktable_owner_done(&fx.lt, &owners[o]);
	ck_assert_uint_eq(fx.lt.stats.leases + fx.lt.stats.waiters + fx.lt.stats.resources, 0);
	locktable_done(&fx.lt);
}

START_TEST(random_operations_match_the_model)
{
	static const uint64_t seeds[] = { 1, 42, 0x9e3779b97f4a7c15ULL, 20261124, 7777777 };

	run_seed(seeds[_i]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("model");
	TCase *tc = tcase_create("random");

	tcase_add_loop_test(tc, random_operations_match_the_model, 0, 5);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
