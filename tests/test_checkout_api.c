/* libhasp's checkouts and TTLs against a real haspd (its default journal
 * beside the socket): hasp_checkout's token and its life beyond the
 * session, hasp_checkin by token, key and file, hasp_unlock on a checkout,
 * hasp_renew in its four forms, an expiry told by hasp_lease_revoked(),
 * and hasp_acquire_options read only as far as its size. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "harness.h"
#include "hasp.h"

static struct daemon_proc daemon_;
static char file[512];

static void setup(void)
{
	daemon_start(&daemon_);
	snprintf(file, sizeof(file), "%s/drawing.dwg", daemon_.dir);
}

/* The harness removes the socket, the fence file and the journal, and the
 * directory once the suite's file is gone too. */
static void teardown(void)
{
	daemon_stop(&daemon_);
	unlink(file);
	rmdir(daemon_.dir);
}

/* Whether another session can take key at once (and it lets it go). */
static bool key_free(const char *key)
{
	hasp_client *c = client_connect(daemon_.socket);
	struct hasp_lock_options o = HASP_LOCK_OPTIONS_INIT;
	hasp_lease *l;
	int r;

	o.timeout_ms = 0;
	r = hasp_lock(c, key, &o, &l);
	ck_assert_msg(r == 0 || r == -HASP_E_BUSY, "%d: %s", r, hasp_client_errmsg(c));
	if (r == 0)
		hasp_lease_free(l);
	hasp_close(c);
	return r == 0;
}

/* The holders of key in the list (a new reference). */
static json_t *holders_of(hasp_client *c, const char *key)
{
	struct hasp_list_options o = HASP_LIST_OPTIONS_INIT;
	char *text = NULL, *next = NULL;
	json_t *list, *holders;

	o.prefix = key;
	ck_assert_int_eq(hasp_list_page_json(c, &o, &text, &next), 0);
	list = json_loads(text, 0, NULL);
	ck_assert_int_eq(json_array_size(list), 1);
	holders = json_incref(json_object_get(json_array_get(list, 0), "holders"));
	json_decref(list);
	free(text);
	free(next);
	return holders;
}

START_TEST(a_checkout_outlives_its_session_until_checked_in)
{
	struct hasp_acquire_options o = HASP_ACQUIRE_OPTIONS_INIT;
	hasp_client *c = client_connect(daemon_.socket);
	hasp_lease *l;
	char token[33];

	o.owner = "alice";
	o.message = "fixing fillets";
	ck_assert_int_eq(hasp_checkout(c, "part-7.mcam", &o, &l), 0);
	ck_assert_ptr_nonnull(hasp_lease_token(l));
	ck_assert_int_eq(strlen(hasp_lease_token(l)), 32);
	ck_assert_int_eq(strspn(hasp_lease_token(l), "0123456789abcdef"), 32);
	ck_assert_int_eq(hasp_lease_ttl_ms(l), 0);
	ck_assert_int_gt(hasp_lease_id(l), 0);
	ck_assert_str_eq(hasp_lease_key(l), "part-7.mcam");
	strcpy(token, hasp_lease_token(l));
	hasp_lease_free(l);
	hasp_close(c);

	ck_assert(!key_free("part-7.mcam"));
	c = client_connect(daemon_.socket);
	ck_assert_int_eq(hasp_checkin(c, token), 0);
	ck_assert_int_eq(hasp_checkin(c, token), -HASP_E_UNKNOWN_LEASE);
	ck_assert(key_free("part-7.mcam"));
	/* A token that is not one is refused here, with the reason. */
	ck_assert_int_eq(hasp_checkin(c, "9F2C"), -EINVAL);
	ck_assert_str_ne(hasp_client_errmsg(c), "");
	hasp_close(c);
}
END_TEST

START_TEST(a_session_lease_has_no_token)
{
	hasp_client *c = client_connect(daemon_.socket);
	hasp_lease *l;

	ck_assert_int_eq(hasp_acquire(c, "plain", NULL, &l), 0);
	ck_assert_ptr_null(hasp_lease_token(l));
	ck_assert_int_eq(hasp_lease_ttl_ms(l), 0);
	ck_assert_int_eq(hasp_unlock(c, l), 0);
	hasp_close(c);
}
END_TEST

/* hasp_unlock() on a checkout checks it in, with its token. */
START_TEST(unlock_checks_a_checkout_in)
{
	hasp_client *c = client_connect(daemon_.socket);
	hasp_lease *l;

	ck_assert_int_eq(hasp_checkout(c, "u", NULL, &l), 0);
	ck_assert(!key_free("u"));
	ck_assert_int_eq(hasp_unlock(c, l), 0);
	ck_assert(key_free("u"));
	hasp_close(c);
}
END_TEST

/* By key and by file: the caller's own checkout; a file checkout holds
 * the real flock. */
START_TEST(checkin_by_key_and_file)
{
	hasp_client *c = client_connect(daemon_.socket);
	hasp_lease *l;
	int fd;

	ck_assert_int_eq(hasp_checkout(c, "by-key", NULL, &l), 0);
	hasp_lease_free(l);
	ck_assert_int_eq(hasp_checkin_key(c, "by-key"), 0);
	ck_assert_int_eq(hasp_checkin_key(c, "by-key"), -HASP_E_UNKNOWN_LEASE);
	ck_assert(key_free("by-key"));

	ck_assert_int_eq(hasp_checkout_file(c, file, NULL, &l), 0);
	ck_assert_str_eq(hasp_lease_key(l), file);
	ck_assert_ptr_nonnull(hasp_lease_token(l));
	hasp_lease_free(l);
	fd = open(file, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), -1);
	ck_assert_int_eq(hasp_checkin_file(c, file), 0);
	ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
	close(fd);
	ck_assert_int_eq(hasp_checkin_file(c, "/nonexistent/file"), -ENOENT);
	hasp_close(c);
}
END_TEST

/* Renew by handle, token, key and file; list shows the TTL. */
START_TEST(renew_in_its_four_forms)
{
	struct hasp_acquire_options o = HASP_ACQUIRE_OPTIONS_INIT;
	hasp_client *c = client_connect(daemon_.socket);
	int64_t expires = -1;
	hasp_lease *l, *f;
	json_t *holders;

	o.ttl_ms = 60000;
	ck_assert_int_eq(hasp_checkout(c, "r", &o, &l), 0);
	ck_assert_int_eq(hasp_lease_ttl_ms(l), 60000);
	ck_assert_int_eq(hasp_renew(c, l, 3600000, &expires), 0);
	ck_assert_int_gt(expires, 60000);
	ck_assert_int_le(expires, 3600000);
	holders = holders_of(c, "r");
	ck_assert(json_is_true(json_object_get(json_array_get(holders, 0), "detached")));
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(holders, 0),
							    "ttl_ms")), 3600000);
	ck_assert_int_gt(json_integer_value(json_object_get(json_array_get(holders, 0),
							    "expires_in_ms")), 60000);
	json_decref(holders);
	expires = -1;
	ck_assert_int_eq(hasp_renew_token(c, hasp_lease_token(l), 0, &expires), 0);
	ck_assert_int_gt(expires, 60000); /* its own TTL is an hour now */
	ck_assert_int_eq(hasp_renew_key(c, "r", 120000, NULL), 0);
	ck_assert_int_eq(hasp_renew(c, l, -1, NULL), -EINVAL);

	ck_assert_int_eq(hasp_acquire_file(c, file, &o, &f), 0);
	ck_assert_int_eq(hasp_renew_file(c, file, 0, &expires), 0);
	ck_assert_int_le(expires, 60000);
	ck_assert_int_eq(hasp_unlock(c, f), 0);
	ck_assert_int_eq(hasp_renew_file(c, file, 0, NULL), -HASP_E_UNKNOWN_LEASE);

	ck_assert_int_eq(hasp_unlock(c, l), 0);
	ck_assert_int_eq(hasp_renew_key(c, "r", 0, NULL), -HASP_E_UNKNOWN_LEASE);
	hasp_close(c);
}
END_TEST

/* A lease without a TTL has none to renew again (a checkout gets one when
 * it is given); a token nobody has is refused. */
START_TEST(renew_errors)
{
	hasp_client *c = client_connect(daemon_.socket);
	hasp_lease *l, *k;

	ck_assert_int_eq(hasp_acquire(c, "no-ttl", NULL, &l), 0);
	ck_assert_int_eq(hasp_renew(c, l, 0, NULL), -HASP_E_BAD_REQUEST);
	ck_assert_int_eq(hasp_renew_token(c, "00000000000000000000000000000000", 1000, NULL),
			 -HASP_E_UNKNOWN_LEASE);
	ck_assert_int_eq(hasp_renew_token(c, "not a token", 1000, NULL), -EINVAL);
	ck_assert_int_eq(hasp_checkout(c, "k", NULL, &k), 0);
	ck_assert_int_eq(hasp_checkin(c, "00000000000000000000000000000000"),
			 -HASP_E_UNKNOWN_LEASE);
	ck_assert(!key_free("k"));
	/* With a TTL given, a checkout without one gets it. */
	ck_assert_int_eq(hasp_renew(c, k, 0, NULL), -HASP_E_BAD_REQUEST);
	ck_assert_int_eq(hasp_renew(c, k, 600000, NULL), 0);
	ck_assert_int_eq(hasp_renew(c, k, 0, NULL), 0);
	ck_assert_int_eq(hasp_unlock(c, k), 0);
	ck_assert_int_eq(hasp_unlock(c, l), 0);
	hasp_close(c);
}
END_TEST

/* A session lease whose TTL runs out: the next waiter is granted, and the
 * holder's client learns it through hasp_lease_revoked() (2: expired). */
START_TEST(an_expired_lease_is_told)
{
	struct hasp_acquire_options o = HASP_ACQUIRE_OPTIONS_INIT;
	struct hasp_lock_options w = HASP_LOCK_OPTIONS_INIT;
	hasp_client *c = client_connect(daemon_.socket);
	hasp_client *other = client_connect(daemon_.socket);
	hasp_lease *l, *l2;
	int64_t start = now_ms();

	o.ttl_ms = 200;
	ck_assert_int_eq(hasp_acquire(c, "ttl", &o, &l), 0);
	ck_assert_int_eq(hasp_lease_ttl_ms(l), 200);
	ck_assert_int_eq(hasp_lease_revoked(c, l), 0);
	w.timeout_ms = test_ms(30000);
	ck_assert_int_eq(hasp_lock(other, "ttl", &w, &l2), 0);
	ck_assert_int_ge(now_ms() - start, 150);
	ck_assert(wait_readable(hasp_client_fd(c), test_ms(5000)));
	ck_assert_int_eq(hasp_lease_revoked(c, l), 2);
	ck_assert_int_eq(hasp_unlock(c, l), -HASP_E_UNKNOWN_LEASE);
	ck_assert_int_eq(hasp_unlock(other, l2), 0);
	hasp_close(c);
	hasp_close(other);
}
END_TEST

/* A caller built against an older, smaller hasp_acquire_options: what lies
 * past its size is never read. */
START_TEST(an_older_options_struct_is_read_to_its_size)
{
	struct hasp_acquire_options o = HASP_ACQUIRE_OPTIONS_INIT;
	hasp_client *c = client_connect(daemon_.socket);
	json_t *holders, *h;
	hasp_lease *l;

	o.size = offsetof(struct hasp_acquire_options, ttl_ms);
	o.timeout_ms = 0;
	o.ttl_ms = 1;           /* past size: garbage to this caller */
	o.owner = "nobody-said-so";
	ck_assert_int_eq(hasp_acquire(c, "old", &o, &l), 0);
	ck_assert_int_eq(hasp_lease_ttl_ms(l), 0);
	holders = holders_of(c, "old");
	h = json_array_get(holders, 0);
	ck_assert_ptr_null(json_object_get(h, "ttl_ms"));
	ck_assert_ptr_null(json_object_get(h, "owner"));
	json_decref(holders);
	/* No TTL: it is still held, and can be unlocked. */
	ck_assert_int_eq(hasp_unlock(c, l), 0);

	o.size = offsetof(struct hasp_acquire_options, owner);
	o.ttl_ms = 60000;
	ck_assert_int_eq(hasp_acquire(c, "old", &o, &l), 0);
	ck_assert_int_eq(hasp_lease_ttl_ms(l), 60000);
	holders = holders_of(c, "old");
	ck_assert_ptr_null(json_object_get(json_array_get(holders, 0), "owner"));
	json_decref(holders);
	ck_assert_int_eq(hasp_unlock(c, l), 0);

	o.size = sizeof(o.size);
	ck_assert_int_eq(hasp_acquire(c, "old", &o, &l), -EINVAL);
	o.size = sizeof(o);
	o.ttl_ms = -5;
	ck_assert_int_eq(hasp_checkout(c, "old", &o, &l), -EINVAL);
	hasp_close(c);
}
END_TEST

static Suite *checkout_api_suite(void)
{
	Suite *s = suite_create("checkout-api");
	TCase *tc = tcase_create("checkout");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, a_checkout_outlives_its_session_until_checked_in);
	tcase_add_test(tc, a_session_lease_has_no_token);
	tcase_add_test(tc, unlock_checks_a_checkout_in);
	tcase_add_test(tc, checkin_by_key_and_file);
	tcase_add_test(tc, renew_in_its_four_forms);
	tcase_add_test(tc, renew_errors);
	tcase_add_test(tc, an_expired_lease_is_told);
	tcase_add_test(tc, an_older_options_struct_is_read_to_its_size);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(checkout_api_suite());
}
