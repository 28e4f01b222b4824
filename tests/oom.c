#include "oom.h"

__thread bool oom_armed;
unsigned long oom_allocations;
bool oom_fired;

static unsigned long left;      /* allocations until the one that fails; 0: none */
static bool fail_on;

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
char *__real_strdup(const char *s);

void oom_fail(unsigned long n, bool on)
{
	left = n;
	fail_on = on && n;
}

static bool oom_now(void)
{
	if (!oom_armed)
		return false;
	oom_allocations++;
	if (left && --left == 0) {
		oom_fired = true;
		if (fail_on)
			left = 1; /* and the next, and so on */
		return true;
	}
	return false;
}

void *__wrap_malloc(size_t size)
{
	return oom_now() ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return oom_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
	return oom_now() ? NULL : __real_realloc(p, size);
}

char *__wrap_strdup(const char *s)
{
	return oom_now() ? NULL : __real_strdup(s);
}
