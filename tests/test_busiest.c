/* The pure parts of haspd's metrics (issue 18): a histogram's buckets at
 * their bounds, and the busiest resources' sketch: counts, order, and the
 * least busy slot given up, with its count, to a newcomer. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "busiest.h"
#include "hist.h"
#include "suite.h"

START_TEST(a_duration_falls_in_the_first_bucket_whose_bound_holds_it)
{
	struct hist h;

	memset(&h, 0, sizeof(h));

	hist_observe(&h, 0);
	hist_observe(&h, 10);           /* bounds are inclusive */
	hist_observe(&h, 11);
	hist_observe(&h, 3600000000u);
	hist_observe(&h, 3600000001u);  /* past an hour: +Inf */
	ck_assert_int_eq(h.buckets[0], 2);
	ck_assert_int_eq(h.buckets[1], 1);
	ck_assert_int_eq(h.buckets[HIST_BOUNDS - 1], 1);
	ck_assert_int_eq(h.buckets[HIST_BOUNDS], 1);
	ck_assert_int_eq(h.count, 5);
	ck_assert_int_eq(h.sum_us, 7200000022u);
	for (unsigned i = 1; i < HIST_BOUNDS; i++)
		ck_assert_uint_gt(hist_bounds_us[i], hist_bounds_us[i - 1]);
}
END_TEST

START_TEST(the_busiest_come_first_and_files_are_apart_from_keys)
{
	static struct busiest b;
	const struct busiest_key *top[BUSIEST_SHOWN];

	memset(&b, 0, sizeof(b));
	for (int i = 0; i < 3; i++)
		busiest_grant(&b, false, "a", 1);
	for (int i = 0; i < 5; i++)
		busiest_grant(&b, false, "/a", 2);
	busiest_grant(&b, true, "/a", 2);
	ck_assert_uint_eq(busiest_top(&b, top, BUSIEST_SHOWN), 3);
	ck_assert_str_eq(top[0]->name, "/a");
	ck_assert(!top[0]->file);
	ck_assert_int_eq(top[0]->grants, 5);
	ck_assert_str_eq(top[1]->name, "a");
	ck_assert(top[2]->file);
	ck_assert_ptr_eq(busiest_find(&b, true, "/a", 2), top[2]);
	ck_assert_ptr_null(busiest_find(&b, false, "b", 1));
	ck_assert_uint_eq(busiest_top(&b, top, 1), 1);
}
END_TEST

START_TEST(a_newcomer_takes_the_least_busy_slot_with_its_count)
{
	static struct busiest b;
	const struct busiest_key *top[BUSIEST_SHOWN];
	struct busiest_key *k;
	char name[16];

	memset(&b, 0, sizeof(b));
	for (int i = 0; i < BUSIEST_SLOTS; i++) {
		snprintf(name, sizeof(name), "k%d", i);
		for (int j = 0; j <= i; j++)
			busiest_grant(&b, false, name, strlen(name));
	}
	hist_observe(&busiest_find(&b, false, "k0", 2)->wait, 5);
	k = busiest_grant(&b, false, "new", 3);
	ck_assert_int_eq(k->grants, 2);         /* k0's one, and its own */
	ck_assert_int_eq(k->wait.count, 0);     /* k0's histograms are not its */
	ck_assert_ptr_null(busiest_find(&b, false, "k0", 2));
	ck_assert_uint_eq(busiest_top(&b, top, BUSIEST_SHOWN), BUSIEST_SHOWN);
	ck_assert_str_eq(top[0]->name, "k31");
	ck_assert_int_eq(top[0]->grants, BUSIEST_SLOTS);
	/* A name past the longest kept is cut, and found by its cut. */
	{
		static char longname[BUSIEST_NAME_MAX + 100];

		memset(longname, 'x', sizeof(longname) - 1);
		k = busiest_grant(&b, true, longname, sizeof(longname) - 1);
		ck_assert_uint_eq(k->len, BUSIEST_NAME_MAX);
		ck_assert_ptr_eq(busiest_find(&b, true, longname, sizeof(longname) - 1), k);
	}
}
END_TEST

static Suite *busiest_suite(void)
{
	Suite *s = suite_create("busiest");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, a_duration_falls_in_the_first_bucket_whose_bound_holds_it);
	tcase_add_test(tc, the_busiest_come_first_and_files_are_apart_from_keys);
	tcase_add_test(tc, a_newcomer_takes_the_least_busy_slot_with_its_count);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(busiest_suite());
}
