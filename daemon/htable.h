/* An intrusive chained hash table: the caller embeds a struct hnode in its
 * object and gives the table a function that hashes a node, used to grow
 * and to remove. Lookups walk one chain, and the caller compares keys. No
 * I/O, no allocation per entry; the bucket array doubles at load factor 2. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct hnode {
	struct hnode *next;
};

struct htable {
	struct hnode **buckets;
	size_t mask;            /* bucket count - 1; the count is a power of two */
	size_t count;
	uint64_t (*hash)(const struct hnode *n);
};

int htable_init(struct htable *t, size_t min_buckets, uint64_t (*hash)(const struct hnode *n));
void htable_done(struct htable *t);

/* Never fails: when the bucket array cannot grow, chains just get longer. */
void htable_insert(struct htable *t, struct hnode *n);
void htable_remove(struct htable *t, struct hnode *n);

/* The chain where nodes with this hash are (others may be there too). */
static inline struct hnode *htable_chain(const struct htable *t, uint64_t hash)
{
	return t->buckets[hash & t->mask];
}

uint64_t hash_bytes(const void *p, size_t len);
uint64_t hash_u64(uint64_t x);
