#include "openmetrics.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omtext.h"

/* The most bounds of a histogram (the spec's has 14), and the longest
 * member name made into a metric name. */
#define OPENMETRICS_MAX_BOUNDS 64
#define OPENMETRICS_NAME_MAX 64

/* A histogram as the stats object has it: per-bucket (not cumulative)
 * counts, the last one +Inf, over the shared bounds (µs). */
struct openmetrics_bounds {
	json_int_t us[OPENMETRICS_MAX_BOUNDS];
	size_t n;
};

struct openmetrics_help {
	const char *member;
	const char *name;       /* the family's name, if not hasp_MEMBER */
	const char *help;
};

static const struct openmetrics_help openmetrics_gauges[] = {
	{ "sessions", NULL, "Sessions (client connections) open now." },
	{ "upgrading", NULL, "Leases whose upgrade to exclusive waits now." },
	{ "resources", NULL, "Keys and files with a holder or a waiter now." },
	{ "leases", NULL, "Leases held now, checkouts included." },
	{ "checkouts", NULL, "Checkouts (detached leases) held now." },
	{ "waiters", NULL, "Requests waiting for a lease now." },
	{ "uptime_ms", NULL, "Time since haspd started." },
	{ "heap_bytes", NULL, "Bytes haspd has allocated and not freed." },
	{ "oldest_waiter_ms", NULL, "How long the longest waiting request has waited (0: none waits)." },
	{ "watchers", NULL, "Sessions that watch lock events now." },
	{ NULL, NULL, NULL },
};

static const struct openmetrics_help openmetrics_counters[] = {
	{ "sessions", "hasp_sessions_opened", "Sessions begun." },
	{ "acquires", NULL, "Acquire requests that reached the lock table." },
	{ "granted_at_once", NULL, "Leases granted without waiting." },
	{ "granted_after_wait", NULL, "Leases granted after waiting." },
	{ "busy", NULL, "Acquires answered busy." },
	{ "timeouts", NULL, "Waiting acquires answered timeout." },
	{ "cancels", NULL, "Waiting acquires cancelled." },
	{ "abandoned", NULL, "Waiting acquires removed because their session ended." },
	{ "releases", NULL, "Leases ended by release." },
	{ "disconnects", NULL, "Leases ended because their session ended." },
	{ "handed_over", NULL, "Grants of the fd form: the flock placed on the client's description." },
	{ "already_held", NULL, "Acquires answered already_held." },
	{ "revokes", NULL, "Leases ended by revoke." },
	{ "expired", NULL, "Leases ended by their time-to-live." },
	{ "restored", NULL, "Checkouts restored from the journal at start." },
	{ "deadlocks", NULL, "Acquires and upgrades answered deadlock." },
	{ "deadlock_searches", NULL, "Searches of the wait-for graph." },
	{ "deadlock_searches_cut", NULL, "Searches of the wait-for graph that hit their bound." },
	{ "converts", NULL, "Converts of a lease to the other mode." },
	{ "downgrades", NULL, "Downgrades done." },
	{ "upgrades_at_once", NULL, "Upgrades granted without waiting." },
	{ "upgrades_after_wait", NULL, "Upgrades granted after a wait." },
	{ "protocol_errors", NULL, "Request lines that were not valid requests." },
	{ "watch_events", NULL, "Lock events sent to watchers." },
	{ "watch_events_lost", NULL, "Lock events dropped for watchers that did not read." },
	{ "audit_lines", NULL, "Lines written to the audit log." },
	{ "audit_lines_dropped", NULL, "Audit log lines dropped." },
	{ NULL, NULL, NULL },
};

/* Families the fixed parts below give, named before any member of
 * "gauges" or "counters" could take their names. */
static const char *const openmetrics_fixed[] = {
	"hasp_lock_wait_seconds", "hasp_lock_hold_seconds",
	"hasp_key_lock_wait_seconds", "hasp_key_lock_hold_seconds", "hasp_key_grants",
	"hasp_user_sessions", "hasp_user_locks", "hasp_user_files", "hasp_user_checkouts",
	"hasp_cluster_available", "hasp_cluster_locks", "hasp_cluster_waiters",
	"hasp_cluster_etcd_requests", "hasp_cluster_etcd_errors", "hasp_cluster_lost",
	"hasp_cluster_revoked", NULL,
};

/* Suffixes OpenMetrics gives samples: no family name may end with one. */
static const char *const openmetrics_reserved[] = {
	"_total", "_bucket", "_count", "_sum", "_created", "_info", "_gcount", "_gsum", NULL,
};

static bool openmetrics_ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Whether a member's name can become a metric's: [a-z0-9_], not too long,
 * not ending as a sample's suffix does. */
static bool openmetrics_member_ok(const char *member)
{
	size_t n = strlen(member);

	if (n == 0 || n > OPENMETRICS_NAME_MAX || strspn(member, "abcdefghijklmnopqrstuvwxyz0123456789_") != n)
		return false;
	for (size_t i = 0; openmetrics_reserved[i]; i++)
		if (openmetrics_ends_with(member, openmetrics_reserved[i]))
			return false;
	return true;
}

static const struct openmetrics_help *openmetrics_help_of(const struct openmetrics_help *table,
							 const char *member)
{
	for (; table->member; table++)
		if (strcmp(table->member, member) == 0)
			return table;
	return NULL;
}

/* One member of "gauges" or "counters" as a family of one sample: NAME_ms
 * in seconds, NAME_bytes with its unit. */
static void openmetrics_member(struct omtext *om, const struct openmetrics_help *table,
			       const char *group, const char *member, const json_t *v)
{
	const struct openmetrics_help *h = openmetrics_help_of(table, member);
	bool counter = table == openmetrics_counters, ms = openmetrics_ends_with(member, "_ms");
	const char *unit = ms ? "seconds" : openmetrics_ends_with(member, "_bytes") ? "bytes" : NULL;
	json_int_t x = json_integer_value(v);
	char name[OPENMETRICS_NAME_MAX + 32], help[OPENMETRICS_NAME_MAX + 64];

	if (!json_is_integer(v) || !openmetrics_member_ok(member) || (counter && x < 0))
		return;
	if (h && h->name)
		snprintf(name, sizeof(name), "%s", h->name);
	else
		snprintf(name, sizeof(name), "hasp_%.*s%s", (int)(strlen(member) - (ms ? 3 : 0)),
			 member, ms ? "_seconds" : "");
	if (!omtext_claim(om, name))
		return;
	snprintf(help, sizeof(help), "haspd's %s.%s.", group, member);
	omtext_put_family(om, name, counter ? "counter" : "gauge", unit, h ? h->help : help);
	omtext_printf(om, "%s%s ", name, counter ? "_total" : "");
	omtext_put_scaled(om, x, ms ? 3 : 0);
	omtext_puts(om, "\n");
}

static void openmetrics_members(struct omtext *om, const json_t *stats, const char *group,
				const struct openmetrics_help *table)
{
	const json_t *o = json_object_get(stats, group);
	size_t shown = 0;
	const char *member;
	json_t *v;

	if (!json_is_object(o))
		return;
	json_object_foreach((json_t *)o, member, v)
		if (shown++ < OPENMETRICS_MAX_MEMBERS)
			openmetrics_member(om, table, group, member, v);
}

/* histograms.bounds_us: 1 to OPENMETRICS_MAX_BOUNDS integers > 0, strictly
 * increasing; false if they are not. */
static bool openmetrics_bounds(const json_t *stats, struct openmetrics_bounds *b)
{
	const json_t *a = json_object_get(json_object_get(stats, "histograms"), "bounds_us");
	size_t i;
	json_t *v;

	b->n = json_array_size(a);
	if (b->n == 0 || b->n > OPENMETRICS_MAX_BOUNDS)
		return false;
	json_array_foreach(a, i, v) {
		b->us[i] = json_integer_value(v);
		if (!json_is_integer(v) || b->us[i] <= 0 || (i > 0 && b->us[i] <= b->us[i - 1]))
			return false;
	}
	return true;
}

/* Whether h is a histogram over b: b->n + 1 bucket counts >= 0 adding up
 * to its count, and a sum_us >= 0. */
static bool openmetrics_histogram_ok(const json_t *h, const struct openmetrics_bounds *b)
{
	const json_t *buckets = json_object_get(h, "buckets"), *count = json_object_get(h, "count");
	const json_t *sum = json_object_get(h, "sum_us");
	uint64_t total = 0;
	size_t i;
	json_t *v;

	if (json_array_size(buckets) != b->n + 1 || !json_is_integer(count) || !json_is_integer(sum) ||
	    json_integer_value(sum) < 0)
		return false;
	json_array_foreach(buckets, i, v) {
		json_int_t x = json_integer_value(v);

		if (!json_is_integer(v) || x < 0 || (uint64_t)x > UINT64_MAX - total)
			return false;
		total += (uint64_t)x;
	}
	return json_integer_value(count) >= 0 && total == (uint64_t)json_integer_value(count);
}

/* The samples of one histogram h (checked): cumulative buckets with le in
 * seconds, +Inf last, then _count and _sum (seconds). */
static void openmetrics_histogram(struct omtext *om, const char *name, const char *labels,
				  const json_t *h, const struct openmetrics_bounds *b)
{
	const json_t *buckets = json_object_get(h, "buckets");
	uint64_t cumulative = 0;

	for (size_t i = 0; i <= b->n; i++) {
		char le[OMTEXT_NUMBER_MAX] = "+Inf";

		cumulative += (uint64_t)json_integer_value(json_array_get(buckets, i));
		if (i < b->n)
			omtext_scaled(le, b->us[i], 6);
		omtext_put_sample(om, name, "_bucket", labels, le);
		omtext_printf(om, " %llu\n", (unsigned long long)cumulative);
	}
	omtext_put_sample(om, name, "_count", labels, NULL);
	omtext_printf(om, " %llu\n", (unsigned long long)cumulative);
	omtext_put_sample(om, name, "_sum", labels, NULL);
	omtext_puts(om, " ");
	omtext_put_scaled(om, json_integer_value(json_object_get(h, "sum_us")), 6);
	omtext_puts(om, "\n");
}

static void openmetrics_lock_histograms(struct omtext *om, const json_t *stats,
					const struct openmetrics_bounds *b)
{
	static const char *const which[][3] = {
		{ "wait", "hasp_lock_wait_seconds",
		  "How long granted requests waited (0 for a grant at once)." },
		{ "hold", "hasp_lock_hold_seconds", "How long ended leases were held." },
	};
	const json_t *hs = json_object_get(stats, "histograms");

	for (size_t i = 0; i < 2; i++) {
		const json_t *h = json_object_get(hs, which[i][0]);

		if (!openmetrics_histogram_ok(h, b))
			continue;
		omtext_put_family(om, which[i][1], "histogram", "seconds", which[i][2]);
		openmetrics_histogram(om, which[i][1], NULL, h, b);
	}
}

/* An entry of "keys" that is shown, with its label as written. */
struct openmetrics_key {
	const json_t *o;
	char *label;            /* key="..." or path="...", escaped */
};

/* The label of one entry of "keys", key="..." or path="...", escaped, into
 * *ret_label (malloc'ed); 0, -ENOENT when it has neither as a string, or
 * -ENOMEM. */
static int openmetrics_key_label(const json_t *k, char **ret_label)
{
	const json_t *v = json_object_get(k, "key");
	const char *name = "key";
	struct omtext label = { 0 };
	size_t len;

	if (!json_is_string(v)) {
		v = json_object_get(k, "path");
		name = "path";
	}
	if (!json_is_string(v))
		return -ENOENT;
	omtext_printf(&label, "%s=\"", name);
	omtext_put_label_value(&label, json_string_value(v), json_string_length(v));
	omtext_puts(&label, "\"");
	return omtext_finish(&label, ret_label, &len);
}

/* The entries of "keys" shown, at most OPENMETRICS_MAX_KEYS: those with a
 * key or a path, each label once (two names can be shown alike: bytes
 * that are not UTF-8 as U+FFFD), in their order. Returns how many. */
static size_t openmetrics_keys(struct omtext *om, const json_t *stats,
			       struct openmetrics_key *keys)
{
	const json_t *a = json_object_get(stats, "keys");
	size_t n = 0;

	for (size_t i = 0; i < json_array_size(a) && n < OPENMETRICS_MAX_KEYS; i++) {
		const json_t *k = json_array_get(a, i);
		bool seen = false;
		char *label;
		int r = openmetrics_key_label(k, &label);

		if (r == -ENOMEM)
			om->failed = true;
		if (r < 0)
			continue;
		for (size_t j = 0; j < n && !seen; j++)
			seen = strcmp(keys[j].label, label) == 0;
		if (seen)
			free(label);
		else
			keys[n++] = (struct openmetrics_key){ k, label };
	}
	return n;
}

static void openmetrics_key_histograms(struct omtext *om, const struct openmetrics_key *keys,
				       size_t n, const struct openmetrics_bounds *b)
{
	static const char *const which[][3] = {
		{ "wait", "hasp_key_lock_wait_seconds",
		  "How long granted requests waited, on each of the busiest keys." },
		{ "hold", "hasp_key_lock_hold_seconds",
		  "How long ended leases were held, on each of the busiest keys." },
	};

	for (size_t w = 0; w < 2; w++) {
		bool named = false;

		for (size_t i = 0; i < n; i++) {
			const json_t *h = json_object_get(keys[i].o, which[w][0]);

			if (!openmetrics_histogram_ok(h, b))
				continue;
			if (!named)
				omtext_put_family(om, which[w][1], "histogram", "seconds", which[w][2]);
			named = true;
			openmetrics_histogram(om, which[w][1], keys[i].label, h, b);
		}
	}
}

static void openmetrics_key_grants(struct omtext *om, const struct openmetrics_key *keys,
				   size_t n)
{
	bool named = false;

	for (size_t i = 0; i < n; i++) {
		const json_t *g = json_object_get(keys[i].o, "grants");

		if (!json_is_integer(g) || json_integer_value(g) < 0)
			continue;
		if (!named)
			omtext_put_family(om, "hasp_key_grants", "counter",
					       NULL, "Leases granted on each of the busiest keys.");
		named = true;
		omtext_put_sample(om, "hasp_key_grants", "_total", keys[i].label, NULL);
		omtext_printf(om, " %lld\n", (long long)json_integer_value(g));
	}
}

/* An entry of "users" with its uid, to sort by. */
struct openmetrics_user {
	long long uid;
	const json_t *o;
};

static int openmetrics_user_cmp(const void *a, const void *b)
{
	const struct openmetrics_user *x = a, *y = b;

	return (x->uid > y->uid) - (x->uid < y->uid);
}

/* The entries of "users" with a uid (0 to 2^32 - 1), by uid, each uid
 * once; *n of them, NULL when none (or for want of memory). */
static struct openmetrics_user *openmetrics_users(struct omtext *om, const json_t *stats,
						  size_t *n)
{
	const json_t *users = json_object_get(stats, "users");
	size_t max = json_array_size(users), k = 0;
	struct openmetrics_user *v;

	*n = 0;
	if (max > OPENMETRICS_MAX_USERS)
		max = OPENMETRICS_MAX_USERS;
	if (max == 0)
		return NULL;
	v = calloc(max, sizeof(*v));
	if (!v) {
		om->failed = true;
		return NULL;
	}
	for (size_t i = 0; i < max; i++) {
		const json_t *u = json_array_get(users, i), *uid = json_object_get(u, "uid");

		if (json_is_integer(uid) && json_integer_value(uid) >= 0 &&
		    json_integer_value(uid) <= (json_int_t)UINT32_MAX)
			v[k++] = (struct openmetrics_user){ (long long)json_integer_value(uid), u };
	}
	qsort(v, k, sizeof(*v), openmetrics_user_cmp);
	for (size_t i = 0; i < k; i++)
		if (*n == 0 || v[*n - 1].uid != v[i].uid)
			v[(*n)++] = v[i];
	return v;
}

static void openmetrics_user_gauges(struct omtext *om, const json_t *stats)
{
	static const char *const which[][3] = {
		{ "sessions", "hasp_user_sessions", "Sessions of each uid open now." },
		{ "locks", "hasp_user_locks", "Leases and waiting requests of each uid now." },
		{ "files", "hasp_user_files", "Files haspd holds open for each uid now." },
		{ "checkouts", "hasp_user_checkouts", "Checkouts of each uid now." },
	};
	size_t n;
	struct openmetrics_user *users = openmetrics_users(om, stats, &n);

	for (size_t w = 0; w < sizeof(which) / sizeof(which[0]); w++) {
		bool named = false;

		for (size_t i = 0; i < n; i++) {
			const json_t *x = json_object_get(users[i].o, which[w][0]);

			if (!json_is_integer(x))
				continue;
			if (!named)
				omtext_put_family(om, which[w][1], "gauge", NULL, which[w][2]);
			named = true;
			omtext_printf(om, "%s{uid=\"%lld\"} %lld\n", which[w][1], users[i].uid,
					   (long long)json_integer_value(x));
		}
	}
	free(users);
}

/* Cluster mode's figures (stats.cluster), when haspd is in it. */
static const struct openmetrics_help openmetrics_cluster_figures[] = {
	{ "locks", "hasp_cluster_locks", "Cluster leases this haspd's sessions hold now." },
	{ "waiting", "hasp_cluster_waiters", "Cluster requests of this haspd's sessions waiting now." },
	{ "requests", "hasp_cluster_etcd_requests", "Calls made to etcd." },
	{ "errors", "hasp_cluster_etcd_errors", "Calls to etcd that failed on every endpoint." },
	{ "lost", "hasp_cluster_lost", "Cluster leases lost with haspd's etcd lease." },
	{ "revoked", "hasp_cluster_revoked", "Cluster leases whose key was deleted by another." },
	{ NULL, NULL, NULL },
};

static void openmetrics_cluster_one(struct omtext *om, const struct openmetrics_help *h,
				    const json_t *v, bool counter)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return;
	omtext_put_family(om, h->name, counter ? "counter" : "gauge", NULL, h->help);
	omtext_printf(om, "%s%s %" JSON_INTEGER_FORMAT "\n", h->name, counter ? "_total" : "",
		      json_integer_value(v));
}

static void openmetrics_cluster(struct omtext *om, const json_t *stats)
{
	const json_t *c = json_object_get(stats, "cluster"), *counters;
	const struct openmetrics_help available = { "available", "hasp_cluster_available",
		"1 while haspd holds its etcd lease and etcd answers, else 0." };

	if (!json_is_object(c))
		return;
	counters = json_object_get(c, "counters");
	/* The names are claimed at the start (openmetrics_fixed). */
	omtext_put_family(om, available.name, "gauge", NULL, available.help);
	omtext_printf(om, "%s %d\n", available.name, json_is_true(json_object_get(c, "available")));
	for (const struct openmetrics_help *h = openmetrics_cluster_figures; h->member; h++) {
		const json_t *v = json_object_get(c, h->member);

		openmetrics_cluster_one(om, h, v ? v : json_object_get(counters, h->member), !v);
	}
}

int openmetrics_format(const json_t *stats, char **ret_text, size_t *ret_len)
{
	struct omtext om = { 0 };
	struct openmetrics_key keys[OPENMETRICS_MAX_KEYS];
	struct openmetrics_bounds b;
	size_t nkeys;

	if (!json_is_object(stats))
		stats = NULL;
	nkeys = openmetrics_keys(&om, stats, keys);
	for (size_t i = 0; openmetrics_fixed[i]; i++)
		omtext_claim(&om, openmetrics_fixed[i]);
	openmetrics_members(&om, stats, "gauges", openmetrics_gauges);
	openmetrics_members(&om, stats, "counters", openmetrics_counters);
	if (openmetrics_bounds(stats, &b)) {
		openmetrics_lock_histograms(&om, stats, &b);
		openmetrics_key_histograms(&om, keys, nkeys, &b);
	}
	openmetrics_key_grants(&om, keys, nkeys);
	openmetrics_user_gauges(&om, stats);
	openmetrics_cluster(&om, stats);
	omtext_puts(&om, "# EOF\n");
	for (size_t i = 0; i < nkeys; i++)
		free(keys[i].label);
	return omtext_finish(&om, ret_text, ret_len);
}
