#include "text.h"

#include <stdbool.h>
#include <string.h>

#include "utf8.h"

/* The escape of byte b into out (TEXT_ESCAPE_MAX bytes); its length. */
static size_t text_escape_byte(char *out, unsigned char b)
{
	static const char hex[] = "0123456789abcdef";
	const char *named = b == '\n' ? "\\n" : b == '\r' ? "\\r" : b == '\t' ? "\\t" :
			    b == 0x1b ? "\\e" : b == '\\' ? "\\\\" : NULL;

	if (named) {
		memcpy(out, named, 2);
		return 2;
	}
	out[0] = '\\';
	out[1] = 'x';
	out[2] = hex[b >> 4];
	out[3] = hex[b & 15];
	return 4;
}

/* Whether the character of n bytes at s is shown as it is: not a C0 or C1
 * control, not DEL, not a backslash (escaped, so that "\e" in the text and
 * an escaped ESC differ). */
static bool text_keeps(const unsigned char *s, int n)
{
	if (n == 1)
		return s[0] >= 0x20 && s[0] != 0x7f && s[0] != '\\';
	return !(n == 2 && s[0] == 0xc2 && s[1] < 0xa0);
}

size_t text_escape(char *dst, size_t size, const char *src, size_t len)
{
	size_t used = 0;

	if (size == 0)
		return 0;
	for (size_t i = 0; i < len;) {
		int k = utf8_char(src + i, len - i);
		size_t n = (size_t)(k < 0 ? -k : k);
		char esc[4 * TEXT_ESCAPE_MAX];
		size_t w = 0;

		if (k > 0 && text_keeps((const unsigned char *)src + i, k)) {
			memcpy(esc, src + i, n);
			w = n;
		} else {
			for (size_t j = 0; j < n; j++)
				w += text_escape_byte(esc + w, (unsigned char)src[i + j]);
		}
		if (used + w >= size)
			break;
		memcpy(dst + used, esc, w);
		used += w;
		i += n;
	}
	dst[used] = '\0';
	return used;
}
