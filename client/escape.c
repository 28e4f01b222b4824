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
