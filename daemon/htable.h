/* An intrusive chained hash table: the caller embeds a struct hnode in its
 * object, computes the hash, and compares keys while walking a chain.
 * No I/O, no allocation per entry; the bucket array grows by doubling. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct hnode {
	struct hnode *next;
	uint64_t hash;
};

struct htable {
	struct hnode **buckets;
	size_t mask;            /* bucket count - 1; the count is a power of two */
	size_t count;
};

int htable_init(struct htable *t, size_t min_buckets);
void htable_done(struct htable *t);

/* Never fails: when the bucket array cannot grow, chains just get longer. */
void htable_insert(struct htable *t, struct hnode *n, uint64_t hash);
void htable_remove(struct htable *t, struct hnode *n);

/* The first node of hash's chain; walk it with htable_next(). */
struct hnode *htable_first(const struct htable *t, uint64_t hash);
struct hnode *htable_next(const struct hnode *n, uint64_t hash);

/* Visit every node; fn must not insert or remove. */
void htable_foreach(const struct htable *t, void (*fn)(struct hnode *n, void *arg), void *arg);

uint64_t hash_bytes(const void *p, size_t len);
uint64_t hash_u64(uint64_t x);
