/* How many log lines the sessions of each uid may cause: a token bucket per
 * uid (hashed into a fixed table, so that it outlives the uid's sessions:
 * 3,000 short connections get no more lines than one long one). Pure: the
 * caller tells the time. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define RATELIMIT_SLOTS 256
/* A burst of lines, then one a second. */
#define RATELIMIT_BURST 10
#define RATELIMIT_EVERY_US 1000000

struct ratelimit_slot {
	uint64_t refilled_us;       /* when tokens were last topped up */
	uint32_t tokens;
	uint64_t suppressed;        /* lines refused since the last one let through */
};

struct ratelimit {
	struct ratelimit_slot slot[RATELIMIT_SLOTS];
};

/* Whether uid's sessions may log a line at now_us (monotonic); if so,
 * *ret_suppressed is how many were refused before it (to say so). */
bool ratelimit_take(struct ratelimit *rl, uid_t uid, uint64_t now_us, uint64_t *ret_suppressed);
