/* The OpenMetrics formatter (proto/openmetrics.c) on hand-written stats
 * objects, read back by the strict checker (om_check.c), and the checker
 * itself refusing what OpenMetrics forbids. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "om_check.h"
#include "openmetrics.h"
#include "suite.h"

/* Every family: gauges (one in ms, one in bytes, one unknown to the
 * formatter), counters (sessions among them, which the gauge's name
 * would clash with), both histograms, a key whose name needs escaping, a
 * file, and two users given out of order. */
static const char full_stats[] =
	"{\"gauges\":{\"sessions\":3,\"upgrading\":0,\"resources\":2,\"leases\":2,\"checkouts\":1,"
	"\"waiters\":1,\"uptime_ms\":12345,\"heap_bytes\":4096,\"oldest_waiter_ms\":1500,"
	"\"watchers\":1,\"future_gauge\":7},"
	"\"counters\":{\"sessions\":17,\"acquires\":9,\"granted_at_once\":6,\"granted_after_wait\":2,"
	"\"watch_events\":40,\"watch_events_lost\":0,\"audit_lines\":5,\"audit_lines_dropped\":0},"
	"\"histograms\":{\"bounds_us\":[10,100,1000,10000,100000,500000,1000000,5000000,10000000,"
	"60000000,300000000,600000000,1800000000,3600000000],"
	"\"wait\":{\"buckets\":[5,1,0,0,1,0,0,1,0,0,0,0,0,0,0],\"count\":8,\"sum_us\":5100007},"
	"\"hold\":{\"buckets\":[0,0,2,1,0,0,0,0,0,0,0,0,0,0,3],\"count\":6,\"sum_us\":36000000000}},"
	"\"keys\":[{\"key\":\"a\\\"b\\\\c\\nd\",\"grants\":5,"
	"\"wait\":{\"buckets\":[1,0,0,0,0,0,0,0,0,0,0,0,0,0,2],\"count\":3,\"sum_us\":7200000000},"
	"\"hold\":{\"buckets\":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],\"count\":0,\"sum_us\":0}},"
	"{\"path\":\"/srv/x\",\"grants\":1,"
	"\"wait\":{\"buckets\":[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0],\"count\":1,\"sum_us\":3},"
	"\"hold\":{\"buckets\":[0,1,0,0,0,0,0,0,0,0,0,0,0,0,0],\"count\":1,\"sum_us\":50}}],"
	"\"users\":[{\"uid\":1000,\"sessions\":2,\"locks\":3,\"files\":1,\"checkouts\":1},"
	"{\"uid\":0,\"sessions\":1,\"locks\":0,\"files\":0,\"checkouts\":0}],"
	"\"cluster\":{\"endpoints\":[\"http://127.0.0.1:2379\"],\"available\":true,\"locks\":2,"
	"\"waiting\":1,\"counters\":{\"requests\":40,\"errors\":1,\"lost\":0,\"revoked\":3}}}";

static char *format(const char *json, size_t *len)
{
	json_t *o = json_loads(json, 0, NULL);
	char *text = NULL;

	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(openmetrics_format(o, &text, len), 0);
	json_decref(o);
	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(strlen(text), *len);
	return text;
}

static void assert_valid(const char *text, size_t len)
{
	char why[512];

	ck_assert_msg(om_check(text, len, why, sizeof(why)), "%s", why);
}

static void assert_has(const char *text, const char *line)
{
	ck_assert_msg(strstr(text, line), "no '%s' in:\n%.1500s", line, text);
}

START_TEST(every_family)
{
	size_t len;
	char *text = format(full_stats, &len);

	assert_valid(text, len);
	assert_has(text, "# TYPE hasp_sessions gauge\n");
	assert_has(text, "\nhasp_sessions 3\n");
	assert_has(text, "# TYPE hasp_uptime_seconds gauge\n# UNIT hasp_uptime_seconds seconds\n");
	assert_has(text, "\nhasp_uptime_seconds 12.345\n");
	assert_has(text, "\nhasp_oldest_waiter_seconds 1.5\n");
	assert_has(text, "# UNIT hasp_heap_bytes bytes\n");
	assert_has(text, "\nhasp_future_gauge 7\n");
	assert_has(text, "# TYPE hasp_sessions_opened counter\n");
	assert_has(text, "\nhasp_sessions_opened_total 17\n");
	assert_has(text, "\nhasp_acquires_total 9\n");
	assert_has(text, "\nhasp_watch_events_lost_total 0\n");
	assert_has(text, "# TYPE hasp_lock_wait_seconds histogram\n");
	/* Cumulative: 5, 5+1, ..., and +Inf equal to _count. */
	assert_has(text, "\nhasp_lock_wait_seconds_bucket{le=\"0.00001\"} 5\n"
			 "hasp_lock_wait_seconds_bucket{le=\"0.0001\"} 6\n"
			 "hasp_lock_wait_seconds_bucket{le=\"0.001\"} 6\n");
	assert_has(text, "\nhasp_lock_wait_seconds_bucket{le=\"0.1\"} 7\n");
	assert_has(text, "\nhasp_lock_wait_seconds_bucket{le=\"5.0\"} 8\n");
	assert_has(text, "\nhasp_lock_wait_seconds_bucket{le=\"3600.0\"} 8\n"
			 "hasp_lock_wait_seconds_bucket{le=\"+Inf\"} 8\n"
			 "hasp_lock_wait_seconds_count 8\n"
			 "hasp_lock_wait_seconds_sum 5.100007\n");
	assert_has(text, "\nhasp_lock_hold_seconds_bucket{le=\"+Inf\"} 6\n"
			 "hasp_lock_hold_seconds_count 6\nhasp_lock_hold_seconds_sum 36000.0\n");
	/* The key's ", \ and newline escaped; the file's label is path. */
	assert_has(text, "\nhasp_key_lock_wait_seconds_bucket{key=\"a\\\"b\\\\c\\nd\",le=\"0.00001\"} 1\n");
	assert_has(text, "\nhasp_key_lock_wait_seconds_bucket{key=\"a\\\"b\\\\c\\nd\",le=\"+Inf\"} 3\n");
	assert_has(text, "\nhasp_key_lock_hold_seconds_sum{path=\"/srv/x\"} 0.00005\n");
	assert_has(text, "# TYPE hasp_key_grants counter\n");
	assert_has(text, "\nhasp_key_grants_total{key=\"a\\\"b\\\\c\\nd\"} 5\n");
	/* Users by uid. */
	assert_has(text, "\nhasp_user_sessions{uid=\"0\"} 1\nhasp_user_sessions{uid=\"1000\"} 2\n");
	assert_has(text, "\nhasp_user_locks{uid=\"1000\"} 3\n");
	assert_has(text, "\nhasp_user_checkouts{uid=\"1000\"} 1\n");
	/* Cluster mode's (issue 19). */
	assert_has(text, "# TYPE hasp_cluster_available gauge\n");
	assert_has(text, "\nhasp_cluster_available 1\n");
	assert_has(text, "\nhasp_cluster_locks 2\n");
	assert_has(text, "\nhasp_cluster_waiters 1\n");
	assert_has(text, "# TYPE hasp_cluster_etcd_requests counter\n");
	assert_has(text, "\nhasp_cluster_etcd_requests_total 40\n");
	assert_has(text, "\nhasp_cluster_revoked_total 3\n");
	ck_assert_str_eq(text + len - 6, "# EOF\n");
	free(text);
}
END_TEST

/* A daemon from before issue 18: gauges and counters only. */
START_TEST(old_daemon)
{
	size_t len;
	char *text = format("{\"gauges\":{\"sessions\":1,\"uptime_ms\":5},"
			    "\"counters\":{\"sessions\":1,\"acquires\":0}}", &len);

	assert_valid(text, len);
	ck_assert_ptr_null(strstr(text, "histogram"));
	ck_assert_ptr_null(strstr(text, "hasp_user_"));
	assert_has(text, "\nhasp_uptime_seconds 0.005\n");
	free(text);
}
END_TEST

START_TEST(nothing)
{
	size_t len;
	char *text = NULL;

	ck_assert_int_eq(openmetrics_format(NULL, &text, &len), 0);
	ck_assert_str_eq(text, "# EOF\n");
	assert_valid(text, len);
	free(text);
	text = format("[1,2]", &len);
	ck_assert_str_eq(text, "# EOF\n");
	free(text);
}
END_TEST

/* What would be wrong to show is left out, never shown wrong: buckets
 * that do not add up to count, a non-integer, a member whose name would
 * clash or end as a sample's suffix, bounds that do not increase, a key
 * twice, a user twice, a negative counter. */
START_TEST(bad_members_left_out)
{
	size_t len;
	char *text = format(
		"{\"gauges\":{\"sessions\":\"3\",\"lock_wait_ms\":1,\"x_total\":1,\"Bad\":1,\"ok\":1},"
		"\"counters\":{\"releases\":-1,\"revokes\":2},"
		"\"histograms\":{\"bounds_us\":[10,100],"
		"\"wait\":{\"buckets\":[1,1,1],\"count\":2,\"sum_us\":1},"
		"\"hold\":{\"buckets\":[1,1,1],\"count\":3,\"sum_us\":1}},"
		"\"keys\":[{\"key\":\"k\",\"grants\":1},{\"key\":\"k\",\"grants\":2},{\"grants\":3}],"
		"\"users\":[{\"uid\":5,\"locks\":1},{\"uid\":5,\"locks\":2},{\"uid\":-1,\"locks\":3}]}",
		&len);

	assert_valid(text, len);
	ck_assert_ptr_null(strstr(text, "hasp_sessions "));
	ck_assert_ptr_null(strstr(text, "hasp_lock_wait_seconds"));
	ck_assert_ptr_null(strstr(text, "x_total"));
	ck_assert_ptr_null(strstr(text, "Bad"));
	ck_assert_ptr_null(strstr(text, "hasp_releases"));
	assert_has(text, "\nhasp_ok 1\n");
	assert_has(text, "\nhasp_revokes_total 2\n");
	assert_has(text, "\nhasp_lock_hold_seconds_count 3\n");
	assert_has(text, "\nhasp_key_grants_total{key=\"k\"} 1\n");
	ck_assert_ptr_null(strstr(text, "{key=\"k\"} 2"));
	assert_has(text, "\nhasp_user_locks{uid=\"5\"} 1\n");
	ck_assert_ptr_null(strstr(text, "uid=\"5\"} 2"));
	ck_assert_ptr_null(strstr(text, "uid=\"-1\""));
	free(text);
	text = format("{\"histograms\":{\"bounds_us\":[100,10],"
		      "\"wait\":{\"buckets\":[1,1,1],\"count\":3,\"sum_us\":1}}}", &len);
	ck_assert_str_eq(text, "# EOF\n");
	free(text);
}
END_TEST

/* A key that is not UTF-8 (as a file name can be) or holds NUL: U+FFFD. */
START_TEST(label_not_utf8)
{
	json_t *o = json_pack("{s:[{s:o,s:i},{s:o,s:i}]}", "keys",
			      "key", json_stringn_nocheck("a\xff" "b", 3), "grants", 1,
			      "path", json_stringn("n\0ul", 4), "grants", 2);
	char *text = NULL;
	size_t len;

	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(openmetrics_format(o, &text, &len), 0);
	assert_valid(text, len);
	assert_has(text, "{key=\"a\xef\xbf\xbd" "b\"} 1\n");
	assert_has(text, "{path=\"n\xef\xbf\xbdul\"} 2\n");
	json_decref(o);
	free(text);
}
END_TEST

/* ---- random stats: whatever a daemon sends, the text is valid ---- */

static uint64_t rng = 18;

static uint64_t rnd(uint64_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng % n;
}

/* Mostly small integers; sometimes negative, huge, or not an integer. */
static json_t *random_value(void)
{
	switch (rnd(12)) {
	case 0: return json_integer(-(json_int_t)rnd(5));
	case 1: return json_integer((json_int_t)(rng >> 1));
	case 2: return json_string("7");
	case 3: return json_real(1.5);
	case 4: return json_null();
	default: return json_integer((json_int_t)rnd(5));
	}
}

static json_t *random_group(void)
{
	static const char *const names[] = {
		"sessions", "uptime_ms", "heap_bytes", "oldest_waiter_ms", "x_total", "Bad", "a",
		"lock_wait_ms", "lock_wait_seconds", "sessions_opened", "user_sessions", "key_grants",
		"watchers", "acquires", "x-y", "", "b_bucket", "c_ms",
	};
	json_t *o = json_object();
	size_t n = rnd(10);

	for (size_t i = 0; i < n; i++)
		json_object_set_new(o, names[rnd(sizeof(names) / sizeof(names[0]))], random_value());
	return o;
}

/* Buckets that mostly add up to count; sometimes not, or of a wrong size. */
static json_t *random_histogram(size_t nbounds)
{
	json_t *b = json_array();
	size_t n = rnd(8) ? nbounds + 1 : rnd(20);
	json_int_t total = 0;

	for (size_t i = 0; i < n; i++) {
		json_int_t x = rnd(10) ? (json_int_t)rnd(4) : -1;

		total += x;
		json_array_append_new(b, json_integer(x));
	}
	return json_pack("{s:o,s:I,s:I}", "buckets", b, "count", rnd(8) ? total : total + 1,
			 "sum_us", (json_int_t)rnd(1000000));
}

/* Bytes that need escaping, or are not UTF-8, or NUL. */
static json_t *random_name(void)
{
	static const char *const pieces[] = { "a", "\"", "\\", "\n", "\xff", "\0", "\xc3",
					      "\xc3\xa9", "/", "{", "}", "=", ",", " " };
	char buf[64];
	size_t n = 0, k = 1 + rnd(6);

	for (size_t i = 0; i < k; i++) {
		const char *p = pieces[rnd(sizeof(pieces) / sizeof(pieces[0]))];
		size_t len = p[0] ? strlen(p) : 1;

		memcpy(buf + n, p, len);
		n += len;
	}
	return json_stringn_nocheck(buf, n);
}

static json_t *random_stats(void)
{
	json_t *bounds = json_array(), *keys = json_array(), *users = json_array();
	size_t nb = rnd(6), nk = rnd(8), nu = rnd(6);
	json_int_t last = 0;

	for (size_t i = 0; i < nb; i++) {
		last += rnd(8) ? 1 + (json_int_t)rnd(1000) : -1;
		json_array_append_new(bounds, json_integer(last));
	}
	for (size_t i = 0; i < nk; i++)
		json_array_append_new(keys, json_pack("{s:o,s:o,s:o,s:o}", rnd(2) ? "key" : "path",
						      random_name(), "grants", random_value(),
						      "wait", random_histogram(nb),
						      "hold", random_histogram(nb)));
	for (size_t i = 0; i < nu; i++)
		json_array_append_new(users, json_pack("{s:o,s:o,s:o,s:o,s:o}",
						       "uid", rnd(4) ? json_integer((json_int_t)rnd(3)) :
						       random_value(), "sessions", random_value(),
						       "locks", random_value(), "files", random_value(),
						       "checkouts", random_value()));
	return json_pack("{s:o,s:o,s:{s:o,s:o,s:o},s:o,s:o}", "gauges", random_group(),
			 "counters", random_group(), "histograms", "bounds_us", bounds,
			 "wait", random_histogram(nb), "hold", random_histogram(nb),
			 "keys", keys, "users", users);
}

START_TEST(random_stats_give_valid_text)
{
	for (int i = 0; i < 3000; i++) {
		json_t *o = random_stats();
		char *text = NULL, why[512], *dump;
		size_t len;

		ck_assert_ptr_nonnull(o);
		ck_assert_int_eq(openmetrics_format(o, &text, &len), 0);
		dump = json_dumps(o, JSON_COMPACT);
		ck_assert_msg(om_check(text, len, why, sizeof(why)), "case %d: %s\nfrom %.1500s", i,
			      why, dump);
		free(dump);
		free(text);
		json_decref(o);
	}
}
END_TEST

/* The checker itself: each of these breaks one rule. */
START_TEST(checker_refuses)
{
	static const char *const bad[] = {
		"",
		"# TYPE a gauge\na 1\n",                                  /* no # EOF */
		"# TYPE a gauge\na 1\n# EOF\n# EOF\n",                    /* twice */
		"# TYPE a gauge\n\na 1\n# EOF\n",                         /* blank line */
		"a 1\n# EOF\n",                                           /* no TYPE */
		"# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n# EOF\n", /* interleaved */
		"# TYPE a gauge\na 1\n# TYPE a gauge\n# EOF\n",           /* family twice */
		"# TYPE a counter\na 1\n# EOF\n",                         /* not _total */
		"# TYPE a gauge\na 1\na 2\n# EOF\n",                      /* series twice */
		"# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n# EOF\n",          /* label twice */
		"# TYPE a gauge\na{x=\"\\t\"} 1\n# EOF\n",                /* bad escape */
		"# TYPE a gauge\na{x=1} 1\n# EOF\n",                      /* unquoted */
		"# TYPE a gauge\na{x=\"\xff\"} 1\n# EOF\n",               /* not UTF-8 */
		"# TYPE 1a gauge\n1a 1\n# EOF\n",                         /* bad name */
		"# TYPE a gauge\na one\n# EOF\n",                         /* bad value */
		"# TYPE a_seconds gauge\n# UNIT a_seconds bytes\na_seconds 1\n# EOF\n",
		"# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\n"
		"h_bucket{le=\"+Inf\"} 2\nh_count 2\n# EOF\n",            /* not cumulative */
		"# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
		"h_bucket{le=\"+Inf\"} 2\nh_count 2\n# EOF\n",            /* le decreasing */
		"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n# EOF\n", /* no +Inf */
		"# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n# EOF\n", /* count */
		"# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_bucket{le=\"1\"} 2\n"
		"h_count 2\n# EOF\n",                                     /* +Inf not last */
		"# TYPE a gauge\r\na 1\n# EOF\n",                         /* CR */
		"# COMMENT x\n# EOF\n",
	};
	char why[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!om_check(bad[i], strlen(bad[i]), why, sizeof(why)),
			      "accepted bad text %zu:\n%s", i, bad[i]);
	const char *unit = "# TYPE h histogram\n# UNIT h_seconds seconds\n# EOF\n";

	ck_assert_msg(!om_check(unit, strlen(unit), why, sizeof(why)), "a UNIT of another family");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("openmetrics");
	TCase *tc = tcase_create("format");

	tcase_add_test(tc, every_family);
	tcase_add_test(tc, old_daemon);
	tcase_add_test(tc, nothing);
	tcase_add_test(tc, bad_members_left_out);
	tcase_add_test(tc, label_not_utf8);
	tcase_add_test(tc, random_stats_give_valid_text);
	tcase_add_test(tc, checker_refuses);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
