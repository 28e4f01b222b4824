/* Text from clients (keys, owners, messages, client names, paths) and the
 * daemon's messages that quote it, made safe for a terminal. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "text.h"

char *cli_escape(const char *s)
{
	size_t len = strlen(s), size = TEXT_ESCAPE_MAX * len + 1;
	char *out = malloc(size);

	if (out)
		text_escape(out, size, s, len);
	return out;
}

void cli_put_escaped(FILE *f, const char *s)
{
	char *e = cli_escape(s);

	fputs(e ? e : "(out of memory)", f);
	free(e);
}

int cli_print_json(json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);

	if (!text)
		return -1;
	for (const char *p = text; *p; p++) {
		if (*p == 0x7f)
			fputs("\\u007f", stdout);
		else
			putchar(*p);
	}
	free(text);
	return 0;
}
