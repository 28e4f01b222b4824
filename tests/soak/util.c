#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "soak.h"

int64_t util_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t util_rand(uint64_t *state)
{
	uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

int64_t util_rand_range(uint64_t *state, int64_t lo, int64_t hi)
{
	return lo + (int64_t)(util_rand(state) % (uint64_t)(hi - lo + 1));
}

void util_sleep_us(int64_t us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void *util_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (!p) {
		fprintf(stderr, "hasp-soak: out of memory\n");
		exit(2);
	}
	return p;
}
