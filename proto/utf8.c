/* UTF-8: the one validator, and text that is not UTF-8 as people are shown
 * it, each invalid sequence replaced by U+FFFD. */
#include "utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

/* The range of the second byte after lead byte b (Unicode's table 3-7:
 * no overlong forms, no surrogates, nothing above U+10FFFF). */
static void second_range(unsigned char b, unsigned char *lo, unsigned char *hi)
{
	*lo = b == 0xe0 ? 0xa0 : b == 0xf0 ? 0x90 : 0x80;
	*hi = b == 0xed ? 0x9f : b == 0xf4 ? 0x8f : 0xbf;
}

int utf8_char(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned char lo, hi;
	int len = s[0] < 0x80 ? 1 : s[0] < 0xc2 ? 0 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 :
		  s[0] < 0xf5 ? 4 : 0;

	if (len <= 1)
		return len == 1 ? 1 : -1;
	second_range(s[0], &lo, &hi);
	for (int i = 1; i < len; i++) {
		if ((size_t)i >= n || s[i] < lo || s[i] > hi)
			return -i; /* the maximal subpart: lead byte and good continuations */
		lo = 0x80;
		hi = 0xbf;
	}
	return len;
}

bool utf8_valid(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		int k = utf8_char(s + i, n - i);

		if (k < 0)
			return false;
		i += (size_t)k;
	}
	return true;
}

size_t utf8_shown_chunk(const char *s, size_t n, const char **chunk, size_t *chunk_len)
{
	int k = utf8_char(s, n);

	if (k > 0) {
		*chunk = s;
		*chunk_len = (size_t)k;
		return (size_t)k;
	}
	*chunk = replacement;
	*chunk_len = sizeof(replacement) - 1;
	return (size_t)-k;
}

int utf8_shown_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	size_t i = 0, j = 0;

	while (i < an && j < bn) {
		const char *ca, *cb;
		size_t la, lb;
		int c;

		/* ASCII on both sides, the common case, byte by byte. */
		if ((unsigned char)a[i] < 0x80 && (unsigned char)b[j] < 0x80) {
			if (a[i] != b[j])
				return (unsigned char)a[i] < (unsigned char)b[j] ? -1 : 1;
			i++;
			j++;
			continue;
		}
		i += utf8_shown_chunk(a + i, an - i, &ca, &la);
		j += utf8_shown_chunk(b + j, bn - j, &cb, &lb);
		/* Valid UTF-8 is prefix-free: two characters are equal or
		 * differ within the shorter one. */
		c = memcmp(ca, cb, la < lb ? la : lb);
		if (c || la != lb)
			return c ? c : la < lb ? -1 : 1;
	}
	return i < an ? 1 : j < bn ? -1 : 0;
}

bool utf8_shown_has_prefix(const char *s, size_t n, const char *prefix, size_t plen)
{
	size_t i = 0, j = 0;

	while (j < plen) {
		const char *c;
		size_t len;

		if (i >= n)
			return false;
		i += utf8_shown_chunk(s + i, n - i, &c, &len);
		if (len > plen - j)
			len = plen - j;
		if (memcmp(c, prefix + j, len) != 0)
			return false;
		j += len;
	}
	return true;
}

size_t utf8_shown(const char *s, size_t n, char *out)
{
	size_t used = 0;

	for (size_t i = 0; i < n;) {
		const char *c;
		size_t len;

		i += utf8_shown_chunk(s + i, n - i, &c, &len);
		memcpy(out + used, c, len);
		used += len;
	}
	return used;
}
