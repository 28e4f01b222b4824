/* proto/utf8.c: the validator, and text that is not UTF-8 as it is shown
 * (U+FFFD per maximal subpart, as Python's errors="replace"), compared and
 * prefixed without being built. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "suite.h"
#include "utf8.h"

#define R "\xef\xbf\xbd" /* U+FFFD */

static void shown_is(const char *s, size_t n, const char *want, size_t want_len)
{
	char *out = malloc(3 * n + 1);
	size_t len;

	ck_assert_ptr_nonnull(out);
	len = utf8_shown(s, n, out);
	out[len] = '\0';
	ck_assert_msg(len == want_len && memcmp(out, want, len) == 0, "shown as '%s', not '%s'",
		      out, want);
	ck_assert_int_eq(utf8_valid(s, n), n == len && memcmp(out, s, n) == 0);
	free(out);
}

#define SHOWN_IS(lit, want) shown_is(lit, sizeof(lit) - 1, want, sizeof(want) - 1)

/* What Python's bytes.decode("utf-8", "replace") gives, Unicode's table 3-8
 * among them. */
START_TEST(replacement_per_maximal_subpart)
{
	SHOWN_IS("plain ascii", "plain ascii");
	SHOWN_IS("\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80", "\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80");
	SHOWN_IS("bad-\xff.lock", "bad-" R ".lock");
	SHOWN_IS("\x61\xf1\x80\x80\xe1\x80\xc2\x62\x80\x63\x80\xbf\x64",
		 "a" R R R "b" R "c" R R "d");
	SHOWN_IS("\xed\xa0\x80", R R R);            /* a surrogate */
	SHOWN_IS("\xf4\x90\x80\x80", R R R R);      /* above U+10FFFF */
	SHOWN_IS("\xe0\x80\x80", R R R);            /* overlong */
	SHOWN_IS("\xc0\xaf", R R);
	SHOWN_IS("\xf0\x9f\x98", R);                /* cut short */
	SHOWN_IS("\xf0\x9f\x98x", R "x");
	SHOWN_IS("a\0b\xff", "a\0b" R);             /* counted: NUL is a character */
	ck_assert_int_eq(utf8_char("\xf4\x8f\xbf\xbf", 4), 4);
	ck_assert_int_eq(utf8_char("\xf4\x8f\xbf", 3), -3);
	ck_assert_int_eq(utf8_char("\x80", 1), -1);
}
END_TEST

/* Comparing and prefixing shown forms without building them agrees with
 * building them, over random bytes biased towards UTF-8's lead and
 * continuation bytes. */
START_TEST(compare_and_prefix_as_shown)
{
	static const unsigned char alphabet[] = { 'a', 'b', 0x7f, 0x80, 0xbf, 0xc2, 0xc3, 0xe0,
						  0xed, 0xef, 0xf0, 0xf4, 0xff, 0xa0, 0xbd };
	char a[8], b[8], sa[32], sb[32];

	srand(1);
	for (int i = 0; i < 200000; i++) {
		size_t an = (size_t)rand() % 7, bn = (size_t)rand() % 7, la, lb;
		int want, got;

		for (size_t k = 0; k < an; k++)
			a[k] = (char)alphabet[rand() % sizeof(alphabet)];
		for (size_t k = 0; k < bn; k++)
			b[k] = (char)alphabet[rand() % sizeof(alphabet)];
		if (rand() % 4 == 0 && an > 0) { /* often a common start */
			bn = an - (size_t)rand() % an;
			memcpy(b, a, bn);
		}
		la = utf8_shown(a, an, sa);
		lb = utf8_shown(b, bn, sb);
		want = memcmp(sa, sb, la < lb ? la : lb);
		if (!want)
			want = la < lb ? -1 : la > lb;
		got = utf8_shown_cmp(a, an, b, bn);
		ck_assert_msg((want < 0) == (got < 0) && (want > 0) == (got > 0),
			      "compare: %d, not %d (case %d)", got, want, i);
		/* A prefix is UTF-8 (it comes in JSON): b's shown form, cut. */
		lb = lb > 0 ? (size_t)rand() % (lb + 1) : 0;
		ck_assert_int_eq(utf8_shown_has_prefix(a, an, sb, lb),
				 la >= lb && memcmp(sa, sb, lb) == 0);
	}
}
END_TEST

START_TEST(json_strings_as_shown)
{
	json_t *s = proto_string_shown("bad-\xff.lock", strlen("bad-\xff.lock"));

	ck_assert_str_eq(json_string_value(s), "bad-" R ".lock");
	json_decref(s);
	s = proto_string_shown("ok", 2);
	ck_assert_str_eq(json_string_value(s), "ok");
	json_decref(s);
	ck_assert(proto_utf8_valid("\xc3\xa9"));
	ck_assert(!proto_utf8_valid("\xc3"));
}
END_TEST

static Suite *utf8_suite(void)
{
	Suite *s = suite_create("utf8");
	TCase *tc = tcase_create("utf8");

	/* Exhaustive over short strings: seconds under ASan, more on a busy
	 * machine than Check's default 4 s allow. */
	tcase_set_timeout(tc, 60);

	tcase_add_test(tc, replacement_per_maximal_subpart);
	tcase_add_test(tc, compare_and_prefix_as_shown);
	tcase_add_test(tc, json_strings_as_shown);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(utf8_suite());
}
