/* hasp top's view as lines of text: the header (gauges and rates from two
 * stats replies), the busiest keys (stats' "keys", when haspd has them)
 * and, from the list, the longest waits and the holders. Every client's
 * text is escaped here. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "top.h"

void top_lines_init(struct top_lines *l)
{
	*l = (struct top_lines){ NULL, 0, 0, false };
}

void top_lines_done(struct top_lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	top_lines_init(l);
}

void top_lines_add(struct top_lines *l, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 32;
		char **v = realloc(l->v, cap * sizeof(*v));

		if (!v) {
			l->nomem = true;
			return;
		}
		l->v = v;
		l->cap = cap;
	}
	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		l->nomem = true;
	else
		l->v[l->n++] = s;
}

static long long int_of(json_t *o, const char *name)
{
	return (long long)json_integer_value(json_object_get(o, name));
}

/* Escaped client text, in buf (cut to size). */
static const char *shown(char *buf, size_t size, const char *s)
{
	char *e = cli_escape(s);

	snprintf(buf, size, "%s", e ? e : "(out of memory)");
	free(e);
	return buf;
}

/* ---- quantiles ---- */

double top_view_quantile(json_t *hist, json_t *bounds_us, double q, bool *over, bool *under)
{
	json_t *buckets = json_object_get(hist, "buckets");
	size_t nb = json_array_size(buckets), nbounds = json_array_size(bounds_us);
	double total = 0, cum = 0, target;

	*over = *under = false;
	for (size_t i = 0; i < nb; i++)
		total += (double)json_integer_value(json_array_get(buckets, i));
	if (total <= 0 || nbounds == 0)
		return -1;
	target = q * total;
	for (size_t i = 0; i < nb; i++) {
		double b = (double)json_integer_value(json_array_get(buckets, i));
		double lo = i ? (double)json_integer_value(json_array_get(bounds_us, i - 1)) : 0;

		if (b <= 0 || cum + b < target) {
			cum += b;
			continue;
		}
		if (i >= nbounds) {
			*over = true;
			return (double)json_integer_value(json_array_get(bounds_us, nbounds - 1));
		}
		if (i == 0) { /* 0 to the first bound: mostly grants at once */
			*under = true;
			return (double)json_integer_value(json_array_get(bounds_us, 0));
		}
		return lo + ((double)json_integer_value(json_array_get(bounds_us, i)) - lo) *
			    (target - cum) / b;
	}
	return -1;
}

/* "12us", "3.4ms", "2.5s", "4m05s"; "-" for none; ">1h00m" past the last
 * bound, "<10us" within the first. */
static void format_us(char *buf, size_t size, double us, bool over, bool under)
{
	char age[24];

	if (under) {
		snprintf(buf, size, "<%.0fus", us);
	} else if (us < 0) {
		snprintf(buf, size, "-");
	} else if (us < 1000 && !over) {
		snprintf(buf, size, "%.0fus", us);
	} else if (us < 1000000 && !over) {
		snprintf(buf, size, "%.1fms", us / 1000);
	} else {
		cli_format_age(age, sizeof(age), (long long)(us / 1000));
		snprintf(buf, size, "%s%s", over ? ">" : "", age);
	}
}

/* The quantile q of hist as text. */
static const char *quantile(char *buf, size_t size, json_t *hist, json_t *bounds, double q)
{
	bool over, under;
	double us = top_view_quantile(hist, bounds, q, &over, &under);

	format_us(buf, size, us, over, under);
	return buf;
}

/* ---- the header ---- */

/* A counter's rate between the two samples, or "-". */
static const char *rate(char *buf, size_t size, const struct top_view *v, const char *const names[])
{
	json_t *now = json_object_get(v->stats, "counters");
	json_t *was = json_object_get(v->prev, "counters");
	long long d = 0;

	for (size_t i = 0; names[i]; i++)
		d += int_of(now, names[i]) - int_of(was, names[i]);
	if (!v->prev || v->interval_s <= 0 || d < 0) /* a restarted haspd counts from 0 */
		snprintf(buf, size, "-");
	else
		snprintf(buf, size, "%.1f", (double)d / v->interval_s);
	return buf;
}

static void add_rates(struct top_lines *out, const struct top_view *v)
{
	static const char *const grants[] = { "granted_at_once", "granted_after_wait", NULL };
	static const char *const waits[] = { "granted_after_wait", "timeouts", "cancels",
					     "abandoned", NULL };
	static const char *const timeouts[] = { "timeouts", NULL };
	static const char *const deadlocks[] = { "deadlocks", NULL };
	char g[32], w[32], t[32], d[32];

	if (!v->prev) {
		top_lines_add(out, "rates: none (one sample)");
		return;
	}
	top_lines_add(out, "grants/s %s  waits/s %s  timeouts/s %s  deadlocks/s %s",
		      rate(g, sizeof(g), v, grants), rate(w, sizeof(w), v, waits),
		      rate(t, sizeof(t), v, timeouts), rate(d, sizeof(d), v, deadlocks));
}

/* The oldest waiter's wait: the gauge, or the list's longest. */
static long long oldest_wait(const struct top_view *v)
{
	json_t *gauges = json_object_get(v->stats, "gauges"), *r, *w;
	long long oldest = -1;
	size_t i, j;

	if (json_is_integer(json_object_get(gauges, "oldest_waiter_ms")))
		return int_of(gauges, "oldest_waiter_ms");
	json_array_foreach(v->list, i, r)
		json_array_foreach(json_object_get(r, "waiters"), j, w)
			if (int_of(w, "waiting_ms") > oldest)
				oldest = int_of(w, "waiting_ms");
	return oldest;
}

static void add_header(struct top_lines *out, const struct top_view *v)
{
	json_t *gauges = json_object_get(v->stats, "gauges");
	json_t *hists = json_object_get(v->stats, "histograms");
	json_t *bounds = json_object_get(hists, "bounds_us");
	long long oldest = oldest_wait(v);
	char age[32] = "-", a[32], b[32], c[32];

	if (oldest >= 0 && int_of(gauges, "waiters") > 0)
		cli_format_age(age, sizeof(age), oldest);
	top_lines_add(out, "%s", v->title);
	top_lines_add(out, "sessions %lld  leases %lld  waiters %lld  oldest waiter %s",
		      int_of(gauges, "sessions"), int_of(gauges, "leases"),
		      int_of(gauges, "waiters"), age);
	add_rates(out, v);
	if (json_is_object(hists))
		top_lines_add(out, "wait p50 %s  p99 %s  hold p50 %s",
			      quantile(a, sizeof(a), json_object_get(hists, "wait"), bounds, 0.5),
			      quantile(b, sizeof(b), json_object_get(hists, "wait"), bounds, 0.99),
			      quantile(c, sizeof(c), json_object_get(hists, "hold"), bounds, 0.5));
}

/* ---- the busiest keys ---- */

static void add_keys(struct top_lines *out, const struct top_view *v)
{
	json_t *keys = json_object_get(v->stats, "keys"), *k;
	json_t *bounds = json_object_get(json_object_get(v->stats, "histograms"), "bounds_us");
	char name[64], a[32], b[32], c[32];
	size_t i;

	top_lines_add(out, "%s", "");
	if (!json_is_array(keys)) {
		top_lines_add(out, "BUSIEST KEYS: not reported by this haspd");
		return;
	}
	top_lines_add(out, "%-32s %8s %9s %9s %9s", "BUSIEST KEY/PATH", "GRANTS", "WAIT p50",
		      "WAIT p99", "HOLD p50");
	json_array_foreach(keys, i, k)
		top_lines_add(out, "%-32s %8lld %9s %9s %9s",
			      shown(name, sizeof(name), cli_str(k, "key", cli_str(k, "path", "?"))),
			      int_of(k, "grants"),
			      quantile(a, sizeof(a), json_object_get(k, "wait"), bounds, 0.5),
			      quantile(b, sizeof(b), json_object_get(k, "wait"), bounds, 0.99),
			      quantile(c, sizeof(c), json_object_get(k, "hold"), bounds, 0.5));
}

/* ---- waits and holders, from the list ---- */

/* A waiter or holder and its resource. */
struct top_entry {
	json_t *r, *e;
	long long ms;
};

static int entry_longer_first(const void *a, const void *b)
{
	const struct top_entry *x = a, *y = b;

	return (x->ms < y->ms) - (x->ms > y->ms);
}

/* Every entry of the list's kind ("waiters", "holders"), longest first
 * (by age_field); n into *ret_n. NULL for none or out of memory. */
static struct top_entry *entries(json_t *list, const char *kind, const char *age_field,
				 size_t *ret_n)
{
	struct top_entry *v = NULL;
	size_t i, j, n = 0, cap = 0;
	json_t *r, *e;

	json_array_foreach(list, i, r)
		cap += json_array_size(json_object_get(r, kind));
	if (cap && !(v = malloc(cap * sizeof(*v))))
		cap = 0;
	json_array_foreach(list, i, r)
		json_array_foreach(json_object_get(r, kind), j, e)
			if (n < cap)
				v[n++] = (struct top_entry){ r, e, int_of(e, age_field) };
	if (n)
		qsort(v, n, sizeof(*v), entry_longer_first);
	*ret_n = n;
	return v;
}

static void add_entry(struct top_lines *out, const struct top_entry *t, const char *state)
{
	char name[64], owner[32], mode[24], age[32], lease[24] = "-";

	cli_format_age(age, sizeof(age), t->ms);
	if (json_object_get(t->e, "lease"))
		snprintf(lease, sizeof(lease), "%lld", int_of(t->e, "lease"));
	shown(mode, sizeof(mode), cli_str(t->e, "mode", "?"));
	top_lines_add(out, "%-32s %-8s %-10s %-7s %-8lld %-6lld %-12s %s",
		      shown(name, sizeof(name), cli_str(t->r, "key", cli_str(t->r, "path", "?"))),
		      state, mode, lease, int_of(t->e, "pid"), int_of(t->e, "uid"),
		      shown(owner, sizeof(owner), cli_str(t->e, "owner", "-")), age);
}

static void add_entries(struct top_lines *out, const struct top_view *v, const char *kind,
			const char *age_field, const char *title, const char *state)
{
	size_t n, i;
	struct top_entry *e = entries(v->list, kind, age_field, &n);

	top_lines_add(out, "%s", "");
	top_lines_add(out, "%-32s %-8s %-10s %-7s %-8s %-6s %-12s %s", title, "STATE", "MODE",
		      "LEASE", "PID", "UID", "OWNER", strcmp(state, "waiting") ? "HELD" : "WAITING");
	for (i = 0; i < n && i < v->max_rows; i++)
		add_entry(out, &e[i], state);
	if (n > i)
		top_lines_add(out, "... %zu more", n - i);
	if (n == 0)
		top_lines_add(out, "(none)");
	free(e);
}

void top_view_build(struct top_lines *out, const struct top_view *v)
{
	add_header(out, v);
	add_keys(out, v);
	add_entries(out, v, "waiters", "waiting_ms", "LONGEST WAITS", "waiting");
	add_entries(out, v, "holders", "held_ms", "HOLDERS", "held");
}
