/* Small blocks kept when freed, for the next allocation of their size:
 * the lock table's entries and resources, which a pipelining client makes
 * and frees by the dozen. malloc's own caches keep seven of a size; past
 * them its small chunks wait in bins that every larger allocation (an
 * output buffer's) sweeps, and the next allocations of them take its slow
 * path: a tenth of the daemon's work under a pipelined load. Pure: libc
 * only. */
#pragma once

#include <stddef.h>

/* The largest size kept, and the classes below it: one per 16 bytes of
 * malloc's chunks, so that a kept block is the chunk malloc would give. */
#define SPARES_SIZE_MAX 152
#define SPARES_CLASSES 9
/* Blocks kept per class, at most (108 KiB over the classes). */
#define SPARES_PER_CLASS 128

struct spares {
	void *head[SPARES_CLASSES];     /* through each block's first word */
	unsigned count[SPARES_CLASSES];
};

/* A block of at least size bytes (malloc's, or a kept one of its class);
 * NULL when out of memory. */
void *spares_alloc(struct spares *s, size_t size);
/* Frees p, of the size it was allocated with (NULL: nothing), or keeps it. */
void spares_free(struct spares *s, void *p, size_t size);
/* Frees what is kept. */
void spares_done(struct spares *s);
