/* Text from clients (keys, owners, messages, client names, paths) and the
 * daemon's messages that quote it, made safe for a terminal. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "utf8.h"

static size_t escape_byte(char *out, unsigned char b)
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
static bool escape_keeps(const unsigned char *s, int n)
{
	if (n == 1)
		return s[0] >= 0x20 && s[0] != 0x7f && s[0] != '\\';
	return !(n == 2 && s[0] == 0xc2 && s[1] < 0xa0);
}

char *cli_escape(const char *s)
{
	size_t len = strlen(s), used = 0;
	char *out = malloc(4 * len + 1);

	if (!out)
		return NULL;
	for (size_t i = 0; i < len;) {
		int k = utf8_char(s + i, len - i);
		size_t n = (size_t)(k < 0 ? -k : k);

		if (k > 0 && escape_keeps((const unsigned char *)s + i, k)) {
			memcpy(out + used, s + i, n);
			used += n;
		} else {
			for (size_t j = 0; j < n; j++)
				used += escape_byte(out + used, (unsigned char)s[i + j]);
		}
		i += n;
	}
	out[used] = '\0';
	return out;
}

void cli_put_escaped(FILE *f, const char *s)
{
	char *e = cli_escape(s);

	fputs(e ? e : "(out of memory)", f);
	free(e);
}
