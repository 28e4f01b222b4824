/* A hand-off that alternates sides (pingpong.c), for any lock with a
 * struct peer (peers/peer.h). */
#pragma once

#include "bench.h"
#include "peers/peer.h"

/* 2 x rounds hand-offs of key between a side connected to target_a and one
 * connected to target_b, each in a process of its own, the first one way,
 * the next the other: the µs from the holder's unlock call to the waiter's
 * lock returning, added to s: the first side's grants (hand-offs to
 * target_a), then the second's. The holder unlocks settle_ms after it sees
 * the other side waiting. Exits on any failure. */
void pingpong(const struct peer *p, const char *target_a, const char *target_b, const char *key,
	      int rounds, int settle_ms, struct samples *s);
