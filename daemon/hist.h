/* A histogram of durations with fixed buckets, from 10 µs to an hour: lock
 * waits and hold times (metrics.h). Pure. */
#pragma once

#include <stdint.h>

/* Upper bounds (µs, inclusive) of every bucket but the last, which is +Inf. */
#define HIST_BOUNDS 14
#define HIST_BUCKETS (HIST_BOUNDS + 1)

extern const uint64_t hist_bounds_us[HIST_BOUNDS];

struct hist {
	uint64_t buckets[HIST_BUCKETS]; /* per bucket, not cumulative */
	uint64_t count;
	uint64_t sum_us;
};

void hist_observe(struct hist *h, uint64_t us);
