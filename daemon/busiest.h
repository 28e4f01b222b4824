/* The busiest resources (most grants) over the daemon's life, with a wait
 * and a hold histogram each, for the metrics (metrics.h). A space-saving
 * sketch: a fixed number of slots; a resource not in one takes the least
 * busy slot's place, with its count plus one (an over-estimate, never an
 * under-estimate) and empty histograms. Pure. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hist.h"

#define BUSIEST_SLOTS 32
/* How many are shown (stats "keys"). */
#define BUSIEST_SHOWN 10
/* A longer name (a file's path) is cut to this. */
#define BUSIEST_NAME_MAX 1024

struct busiest_key {
	uint64_t hash;
	uint64_t grants;
	struct hist wait, hold;
	bool file;              /* name is a file's path, not a key */
	uint16_t len;
	char name[BUSIEST_NAME_MAX + 1];
};

struct busiest {
	struct busiest_key slot[BUSIEST_SLOTS];
	size_t n;
};

/* The slot of the resource named so, counting one more grant: found, or
 * made (in place of the least busy when every slot is used). */
struct busiest_key *busiest_grant(struct busiest *b, bool file, const char *name, size_t len);
/* The slot of the resource named so, or NULL. */
struct busiest_key *busiest_find(struct busiest *b, bool file, const char *name, size_t len);
/* Up to max of the busiest, busiest first, into ret; returns how many. */
size_t busiest_top(const struct busiest *b, const struct busiest_key **ret, size_t max);
