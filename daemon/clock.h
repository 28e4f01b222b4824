/* The clocks, read now, in microseconds, and a span as libevent takes it.
 * (The lock table's clock, d->lt.now_us, is the tick's: haspd.h.) */
#pragma once

#include <stdint.h>
#include <sys/time.h>
#include <time.h>

static inline uint64_t clock_us(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline struct timeval clock_timeval(uint64_t us)
{
	return (struct timeval){ .tv_sec = (time_t)(us / 1000000),
				 .tv_usec = (suseconds_t)(us % 1000000) };
}
