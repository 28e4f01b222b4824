#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

enum log_level log_threshold = LOG_INFO;

static const char *const names[] = { "error", "warning", "info", "debug" };

int log_level_parse(const char *name)
{
	for (int i = 0; i <= LOG_DEBUG; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	if (strcmp(name, "warn") == 0)
		return LOG_WARN;
	return -1;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char raw[1024], line[4 * sizeof(raw)];
	va_list ap;
	int n;

	if (level > log_threshold)
		return;
	va_start(ap, fmt);
	n = vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	/* Keys, owners, paths and client names are in there: whatever they
	 * hold, one line of printable text (the log is read on terminals). */
	text_escape(line, sizeof(line), raw, n < 0 ? 0 : (size_t)n < sizeof(raw) ? (size_t)n :
		    sizeof(raw) - 1);
	/* Under systemd, <N> is the journal's priority: err=3, warning=4,
	 * info=6, debug=7. */
	if (getenv("JOURNAL_STREAM"))
		fprintf(stderr, "<%d>%s: %s\n", (int[]){ 3, 4, 6, 7 }[level], names[level], line);
	else
		fprintf(stderr, "haspd: %s: %s\n", names[level], line);
}
