/* The pure parts of cluster mode (issue 19): the recipe's order (whom a
 * request waits for), etcd's replies read as requests, the gateway's
 * base64, and cluster_endpoints parsed. The rest runs against a real etcd
 * in tests/cluster. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "base64.h"
#include "endpoints.h"
#include "etcd.h"
#include "kv.h"
#include "suite.h"

/* A request of a range reply: etcd's key and value, base64. */
static json_t *kv_json(const char *key, const char *tail, long rev, const char *value)
{
	char ekey[256];
	size_t n = (size_t)snprintf(ekey, sizeof(ekey), KV_ROOT "%s", key);

	n += 1 + (size_t)snprintf(ekey + n + 1, sizeof(ekey) - n - 1, "%s", tail);
	return json_pack("{s:o,s:o,s:o}", "key", etcd_bytes(ekey, n), "create_revision",
			 etcd_int(rev), "value", etcd_bytes(value, strlen(value)));
}

START_TEST(a_writer_waits_for_whoever_is_ahead_and_a_reader_for_the_last_writer)
{
	struct kv_req v[6];
	const bool shared[6] = { true, true, false, true, true, false };
	const long expect[6] = { -1, -1, 1, 2, 2, 4 };

	memset(v, 0, sizeof(v));
	for (int i = 0; i < 6; i++) {
		v[i].rev = 10 + i;
		v[i].shared = shared[i];
	}
	const size_t blockers[6] = { 0, 0, 2, 1, 1, 5 };

	for (size_t i = 0; i < 6; i++) {
		ck_assert_int_eq(kv_waits_for(v, 0, i), expect[i]);
		ck_assert_uint_eq(kv_blockers(v, 0, i), blockers[i]);
	}
	/* From the second request on, as if the first had gone. */
	ck_assert_int_eq(kv_waits_for(v, 1, 1), -1);
	ck_assert_int_eq(kv_waits_for(v, 3, 3), -1);
	ck_assert_int_eq(kv_waits_for(v, 3, 4), -1);
	ck_assert_int_eq(kv_waits_for(v, 3, 5), 4);
}
END_TEST

START_TEST(a_range_reply_reads_as_requests_by_lock_then_revision)
{
	json_t *range = json_pack("{s:[o,o,o,o]}", "kvs",
				  kv_json("cluster/b", "aa-1", 9, "{\"mode\":\"shared\",\"host\":\"h\"}"),
				  kv_json("cluster/a", "bb-2", 12, "{\"mode\":\"exclusive\"}"),
				  kv_json("cluster/a", "aa-3", 7, "not json"),
				  kv_json("cluster/a/x", "aa-4", 3, "{}"));
	struct kv_req *v;
	long n = kv_parse(range, &v);

	ck_assert_int_eq(n, 4);
	ck_assert_int_eq(v[0].key_len, strlen("cluster/a"));
	ck_assert(memcmp(v[0].key, "cluster/a", v[0].key_len) == 0);
	ck_assert_int_eq(v[0].rev, 7);
	ck_assert(json_is_object(v[0].value)); /* a value that is not JSON: nobody named */
	ck_assert_int_eq(v[1].rev, 12);
	ck_assert(!v[1].shared);
	ck_assert_int_eq(v[2].key_len, strlen("cluster/a/x"));
	ck_assert_int_eq(v[3].rev, 9);
	ck_assert(v[3].shared);
	ck_assert_str_eq(json_string_value(json_object_get(v[3].value, "host")), "h");
	ck_assert_int_eq(kv_find(v, 4, v[1].ekey, v[1].ekey_len), 1);
	ck_assert_int_eq(kv_find(v, 4, v[1].ekey, v[1].ekey_len - 1), -1);
	kv_free(v, 4);
	json_decref(range);
}
END_TEST

START_TEST(holders_carry_their_fence_and_age_and_waiters_their_wait)
{
	json_t *range = json_pack("{s:[o,o,o]}", "kvs",
				  kv_json("k", "a-1", 5, "{\"mode\":\"shared\",\"lease\":1,\"request\":4,"
					  "\"since_us\":1000000}"),
				  kv_json("k", "a-2", 6, "{\"mode\":\"exclusive\",\"lease\":2,"
					  "\"request\":5,\"since_us\":2000000}"),
				  kv_json("k", "a-3", 8, "{\"mode\":\"shared\",\"lease\":3,"
					  "\"request\":6,\"since_us\":2500000}"));
	struct kv_req *v;
	long n = kv_parse(range, &v);
	json_t *h = kv_holders(v, 0, (size_t)n, 3000000), *w = kv_waiters(v, 0, (size_t)n, 3000000);

	ck_assert_int_eq(json_array_size(h), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(h, 0), "fence")), 5);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(h, 0), "held_ms")), 2000);
	ck_assert_ptr_null(json_object_get(json_array_get(h, 0), "request"));
	ck_assert_int_eq(json_array_size(w), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(w, 1), "waiting_ms")), 500);
	ck_assert_ptr_null(json_object_get(json_array_get(w, 0), "lease"));
	json_decref(h);
	json_decref(w);
	kv_free(v, (size_t)n);
	json_decref(range);
}
END_TEST

START_TEST(a_key_without_its_separator_is_not_a_request)
{
	json_t *range = json_pack("{s:[{s:o}]}", "kvs", "key", etcd_bytes(KV_ROOT "k", KV_ROOT_LEN + 1));
	struct kv_req *v;

	ck_assert_int_eq(kv_parse(range, &v), -1);
	json_decref(range);
}
END_TEST

START_TEST(base64_round_trips_and_refuses_what_is_not_base64)
{
	unsigned char in[16], out[16];
	char text[32];

	for (size_t n = 0; n < sizeof(in); n++) {
		in[n] = (unsigned char)(n * 37 + 200);
		base64_encode(in, n, text);
		ck_assert_uint_eq(strlen(text), BASE64_LEN(n));
		ck_assert_int_eq(base64_decode(text, strlen(text), out), (long)n);
		ck_assert(memcmp(in, out, n) == 0);
	}
	base64_encode("hasp", 4, text);
	ck_assert_str_eq(text, "aGFzcA==");
	ck_assert_int_eq(base64_decode("aGFzcA=", 7, out), -1);
	ck_assert_int_eq(base64_decode("aG=zcA==", 8, out), -1);
	ck_assert_int_eq(base64_decode("aGFz*A==", 8, out), -1);
	ck_assert_int_eq(base64_decode("aA==aA==", 8, out), -1);
}
END_TEST

START_TEST(endpoints_are_http_urls_with_a_port)
{
	struct endpoint eps[ENDPOINTS_MAX];
	char many[ENDPOINTS_MAX * 24 + 24] = "";

	ck_assert_int_eq(endpoints_parse("http://127.0.0.1:2379,http://etcd-2:22379/", eps,
					 ENDPOINTS_MAX), 2);
	ck_assert_str_eq(eps[0].host, "127.0.0.1");
	ck_assert_int_eq(eps[0].port, 2379);
	ck_assert_str_eq(eps[1].host, "etcd-2");
	ck_assert_int_eq(eps[1].port, 22379);
	ck_assert_int_eq(endpoints_parse("https://a:1", eps, ENDPOINTS_MAX), -1);
	ck_assert_int_eq(endpoints_parse("http://a", eps, ENDPOINTS_MAX), -1);
	ck_assert_int_eq(endpoints_parse("http://a:0", eps, ENDPOINTS_MAX), -1);
	ck_assert_int_eq(endpoints_parse("http://a:65536", eps, ENDPOINTS_MAX), -1);
	ck_assert_int_eq(endpoints_parse("http://:1", eps, ENDPOINTS_MAX), -1);
	ck_assert_int_eq(endpoints_parse("http://a:1/v3", eps, ENDPOINTS_MAX), -1);
	ck_assert_int_eq(endpoints_parse("http://a:1,,http://b:2", eps, ENDPOINTS_MAX), -1);
	for (int i = 0; i <= ENDPOINTS_MAX; i++)
		strcat(many, i ? ",http://a:1" : "http://a:1");
	ck_assert_int_eq(endpoints_parse(many, eps, ENDPOINTS_MAX), -1);
}
END_TEST

static Suite *cluster_kv_suite(void)
{
	Suite *s = suite_create("cluster_kv");
	TCase *tc = tcase_create("pure");

	tcase_add_test(tc, a_writer_waits_for_whoever_is_ahead_and_a_reader_for_the_last_writer);
	tcase_add_test(tc, a_range_reply_reads_as_requests_by_lock_then_revision);
	tcase_add_test(tc, holders_carry_their_fence_and_age_and_waiters_their_wait);
	tcase_add_test(tc, a_key_without_its_separator_is_not_a_request);
	tcase_add_test(tc, base64_round_trips_and_refuses_what_is_not_base64);
	tcase_add_test(tc, endpoints_are_http_urls_with_a_port);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(cluster_kv_suite());
}
