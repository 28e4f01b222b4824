#include "text.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

size_t text_utf8_len(const unsigned char *s, size_t len)
{
	size_t n = s[0] < 0x80 ? 1 : s[0] < 0xc2 ? 0 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 :
		   s[0] < 0xf5 ? 4 : 0;
	uint32_t cp = s[0] & (0x7f >> n);

	if (n > len)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* Whether the character at s (k bytes of valid UTF-8) is a control one. */
static int text_is_control(const unsigned char *s, size_t k)
{
	if (k == 1)
		return s[0] < 0x20 || s[0] == 0x7f;
	return k == 2 && s[0] == 0xc2 && s[1] < 0xa0; /* C1: U+0080 to U+009F */
}

size_t text_escape(char *dst, size_t size, const char *src, size_t len)
{
	const unsigned char *p = (const unsigned char *)src, *end = p + len;
	size_t n = 0;

	if (size == 0)
		return 0;
	while (p < end) {
		size_t k = text_utf8_len(p, (size_t)(end - p));
		char esc[16];
		size_t w;

		if (k == 0 || text_is_control(p, k)) {
			w = 0;
			for (size_t i = 0; i < (k ? k : 1); i++)
				w += (size_t)snprintf(esc + w, sizeof(esc) - w, "\\x%02x", p[i]);
			k = k ? k : 1;
		} else if (p[0] == '\\') {
			w = 2;
			memcpy(esc, "\\\\", 2);
		} else {
			w = k;
			memcpy(esc, p, k);
		}
		if (n + w >= size)
			break;
		memcpy(dst + n, esc, w);
		n += w;
		p += k;
	}
	dst[n] = '\0';
	return n;
}
