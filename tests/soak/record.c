#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "soak.h"

void record_write(int fd, int64_t ts, const char *who, const char *fmt, ...)
{
	char line[SOAK_LINE_MAX];
	va_list ap;
	int n = snprintf(line, sizeof(line), "@%lld %s ", (long long)ts, who);
	int m;

	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0 || (size_t)(n + m) >= sizeof(line) - 1)
		m = (int)(sizeof(line) - (size_t)n - 2);
	n += m;
	line[n++] = '\n';
	/* One write(2) on an O_APPEND file: the record lands whole and contiguous.
	 * Only a SIGKILL can tear it (a page boundary in the write); the
	 * checker resynchronises on the next '@'. */
	if (write(fd, line, (size_t)n) != n) {
		/* a failed log write would make the checker's proof worthless */
		_exit(5);
	}
}
