/* The interval and fence proofs. Intervals are sub-intervals of the real
 * leases, so for a correct daemon: an exclusive one overlaps nothing on its
 * resource, and of two incompatible ones the earlier has the smaller fence. */
#include <stdlib.h>

#include "soak.h"

static int intervals_cmp_start(const void *a, const void *b)
{
	const struct interval *x = a, *y = b;

	if (x->res != y->res)
		return x->res - y->res;
	return (x->start > y->start) - (x->start < y->start);
}

static int intervals_cmp_end(const void *a, const void *b)
{
	const struct interval *x = *(const struct interval *const *)a;
	const struct interval *y = *(const struct interval *const *)b;

	return (x->end > y->end) - (x->end < y->end);
}

static void intervals_report(struct check_result *r, enum check_kind k, const char *what,
			     const struct interval *a, const struct interval *b)
{
	check_violation(r, k,
			"%s on %s: w%d.%d request %ld %s [%lld, %lld] fence %llu and "
			"w%d.%d request %ld %s [%lld, %lld] fence %llu",
			what, worker_resource_name(a->res),
			a->id, a->gen, a->seq, a->shared ? "shared" : "exclusive", (long long)a->start,
			(long long)a->end, (unsigned long long)a->fence,
			b->id, b->gen, b->seq, b->shared ? "shared" : "exclusive", (long long)b->start,
			(long long)b->end, (unsigned long long)b->fence);
}

/* Most intervals alive at once on one resource. */
static int intervals_max_overlap(struct interval *v, const struct interval **by_end, size_t n)
{
	size_t e = 0;
	int live = 0, max = 0;

	for (size_t i = 0; i < n; i++) {
		while (e < n && by_end[e]->end <= v[i].start) {
			e++;
			live--;
		}
		if (++live > max)
			max = live;
	}
	return max;
}

/* One resource's intervals, sorted by start. */
static void intervals_one(struct interval *v, size_t n, struct check_result *r)
{
	const struct interval **by_end = util_calloc(n, sizeof(*by_end));
	const struct interval *last_all = NULL, *last_excl = NULL;   /* latest end so far */
	const struct interval *fmax_all = NULL, *fmax_excl = NULL;   /* highest fence ended */
	size_t e = 0;
	int m;

	for (size_t i = 0; i < n; i++)
		by_end[i] = &v[i];
	qsort(by_end, n, sizeof(*by_end), intervals_cmp_end);
	for (size_t i = 0; i < n; i++) {
		const struct interval *b = &v[i];
		const struct interval *conflict = b->shared ? last_excl : last_all;
		const struct interval *before;

		if (conflict && conflict->end > b->start)
			intervals_report(r, CK_OVERLAP, "incompatible leases overlap", conflict, b);
		/* Every interval that ended strictly before b began. */
		for (; e < n && by_end[e]->end < b->start; e++) {
			const struct interval *a = by_end[e];

			if (!fmax_all || a->fence > fmax_all->fence)
				fmax_all = a;
			if (!a->shared && (!fmax_excl || a->fence > fmax_excl->fence))
				fmax_excl = a;
		}
		before = b->shared ? fmax_excl : fmax_all;
		if (before) {
			r->fences++;
			if (before->fence >= b->fence)
				intervals_report(r, CK_FENCE_ORDER,
						 "a later incompatible lease has a smaller fence", before, b);
		}
		if (!last_all || b->end > last_all->end)
			last_all = b;
		if (!b->shared && (!last_excl || b->end > last_excl->end))
			last_excl = b;
	}
	m = intervals_max_overlap(v, by_end, n);
	if (m > r->max_shared)
		r->max_shared = m;
	free(by_end);
}

void intervals_check(struct interval *v, size_t n, struct check_result *r)
{
	size_t i = 0;

	if (n == 0) /* qsort() wants an array, even of nothing */
		return;
	qsort(v, n, sizeof(*v), intervals_cmp_start);
	r->intervals += (long)n;
	while (i < n) {
		size_t j = i;

		while (j < n && v[j].res == v[i].res)
			j++;
		intervals_one(v + i, j - i, r);
		i = j;
	}
}

static int intervals_cmp_fence(const void *a, const void *b)
{
	const struct grant *x = a, *y = b;

	return (x->fence > y->fence) - (x->fence < y->fence);
}

static int intervals_cmp_lease(const void *a, const void *b)
{
	const struct grant *x = a, *y = b;

	if (x->epoch != y->epoch)
		return x->epoch - y->epoch;
	return (x->lease > y->lease) - (x->lease < y->lease);
}

static int intervals_cmp_enter(const void *a, const void *b)
{
	const struct grant *x = *(const struct grant *const *)a;
	const struct grant *y = *(const struct grant *const *)b;

	return (x->enter_ts > y->enter_ts) - (x->enter_ts < y->enter_ts);
}

static int intervals_cmp_want(const void *a, const void *b)
{
	const struct grant *x = *(const struct grant *const *)a;
	const struct grant *y = *(const struct grant *const *)b;

	return (x->want_ts > y->want_ts) - (x->want_ts < y->want_ts);
}

static void intervals_grants_report(struct check_result *r, enum check_kind k, const char *what,
			  const struct grant *a, const struct grant *b)
{
	check_violation(r, k,
			"%s: w%d.%d request %ld (epoch %d, lease %llu, fence %llu, granted by %lld) and "
			"w%d.%d request %ld (epoch %d, lease %llu, fence %llu, asked at %lld)",
			what, a->id, a->gen, a->seq, a->epoch, (unsigned long long)a->lease,
			(unsigned long long)a->fence, (long long)a->enter_ts,
			b->id, b->gen, b->seq, b->epoch, (unsigned long long)b->lease,
			(unsigned long long)b->fence, (long long)b->want_ts);
}

/* Fences grow with time across the whole run, restarts included: a grant
 * that arrived before another was even asked for has the smaller fence. */
static void intervals_grants_in_time(struct grant *g, size_t n, struct check_result *r)
{
	const struct grant **by_enter = util_calloc(n, sizeof(*by_enter));
	const struct grant **by_want = util_calloc(n, sizeof(*by_want));
	const struct grant *max = NULL;
	size_t e = 0;

	for (size_t i = 0; i < n; i++)
		by_enter[i] = by_want[i] = &g[i];
	qsort(by_enter, n, sizeof(*by_enter), intervals_cmp_enter);
	qsort(by_want, n, sizeof(*by_want), intervals_cmp_want);
	for (size_t i = 0; i < n; i++) {
		const struct grant *b = by_want[i];

		for (; e < n && by_enter[e]->enter_ts < b->want_ts; e++)
			if (!max || by_enter[e]->fence > max->fence)
				max = by_enter[e];
		if (!max)
			continue;
		r->fences++;
		if (max->fence >= b->fence)
			intervals_grants_report(r, max->epoch < b->epoch ? CK_FENCE_EPOCH : CK_FENCE_ORDER,
				      "a request asked after another's grant has a smaller fence", max, b);
	}
	free(by_enter);
	free(by_want);
}

void intervals_check_grants(struct grant *g, size_t n, struct check_result *r)
{
	if (n == 0)
		return;
	qsort(g, n, sizeof(*g), intervals_cmp_fence);
	for (size_t i = 1; i < n; i++) {
		if (g[i].fence == g[i - 1].fence)
			intervals_grants_report(r, CK_FENCE_DUP, "two grants with one fence",
						&g[i - 1], &g[i]);
		/* sorted by fence: an older epoch after a newer one is a fence that fell */
		if (g[i].epoch < g[i - 1].epoch)
			intervals_grants_report(r, CK_FENCE_EPOCH,
						"a restarted daemon's fence is not above its predecessor's",
						&g[i], &g[i - 1]);
	}
	intervals_grants_in_time(g, n, r);
	qsort(g, n, sizeof(*g), intervals_cmp_lease);
	for (size_t i = 1; i < n; i++)
		if (g[i].epoch == g[i - 1].epoch && g[i].lease == g[i - 1].lease)
			intervals_grants_report(r, CK_LEASE_DUP, "one lease id granted twice by one daemon",
						&g[i - 1], &g[i]);
}
