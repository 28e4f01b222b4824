#include "wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

bool proto_utf8_valid(const char *s)
{
	return utf8_valid(s, strlen(s));
}

json_t *proto_string_shown(const char *s, size_t n)
{
	json_t *str;
	char *copy;

	if (utf8_valid(s, n))
		return json_stringn_nocheck(s, n);
	copy = n <= SIZE_MAX / 3 ? malloc(3 * n) : NULL;
	if (!copy)
		return NULL;
	str = json_stringn_nocheck(copy, utf8_shown(s, n, copy));
	free(copy);
	return str;
}

char *proto_dump_line(json_t *o, size_t *len)
{
	size_t n;
	char *buf = NULL;

	if (!o)
		return NULL;
	n = json_dumpb(o, NULL, 0, PROTO_DUMP_FLAGS);
	/* Each pass may allocate, so the second can fail where the first did
	 * not: then buf holds no whole line. */
	if (n > 0 && (buf = malloc(n + 1)) && json_dumpb(o, buf, n, PROTO_DUMP_FLAGS) == n) {
		buf[n] = '\n';
		*len = n + 1;
	} else {
		free(buf);
		buf = NULL;
	}
	json_decref(o);
	return buf;
}

/* "00" to "99": two digits a division. */
static const char decimal_pairs[] =
	"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
	"8081828384858687888990919293949596979899";

/* How many decimal digits v has: log10 from its bit length, corrected by
 * one comparison. */
static size_t decimal_digits(uint64_t v)
{
	static const uint64_t powers[20] = {
		1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000,
		1000000000, 10000000000u, 100000000000u, 1000000000000u, 10000000000000u,
		100000000000000u, 1000000000000000u, 10000000000000000u,
		100000000000000000u, 1000000000000000000u, 10000000000000000000u,
	};
	size_t t = (size_t)(64 - __builtin_clzll(v | 1)) * 1233 >> 12;

	return t + ((v | 1) >= powers[t]);
}

char *proto_put_u64(char *dst, uint64_t v)
{
	size_t n = decimal_digits(v);
	char *p = dst + n;

	while (v >= 100) {
		p -= 2;
		memcpy(p, decimal_pairs + 2 * (v % 100), 2);
		v /= 100;
	}
	if (v >= 10)
		memcpy(p - 2, decimal_pairs + 2 * v, 2);
	else
		p[-1] = (char)('0' + v);
	return dst + n;
}

char *proto_put_i64(char *dst, int64_t v)
{
	if (v >= 0)
		return proto_put_u64(dst, (uint64_t)v);
	*dst = '-';
	return proto_put_u64(dst + 1, 0 - (uint64_t)v);
}

void proto_hex_encode(char *dst, const unsigned char *src, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		dst[2 * i] = digits[src[i] >> 4];
		dst[2 * i + 1] = digits[src[i] & 15];
	}
	dst[2 * n] = '\0';
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int proto_hex_decode(unsigned char *dst, const char *src, size_t len, size_t n)
{
	if (len != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = hex_digit(src[2 * i]), lo = hex_digit(src[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		dst[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}
