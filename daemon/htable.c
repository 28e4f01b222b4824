#include "htable.h"

#include <stdlib.h>

/* Nodes per bucket, on average, before the bucket array doubles: two keeps
 * chains short and halves the buckets' memory against one. */
#define LOAD_FACTOR 2

int htable_init(struct htable *t, size_t min_buckets, uint64_t (*hash)(const struct hnode *n))
{
	size_t n = 16;

	while (n < min_buckets)
		n <<= 1;
	t->buckets = calloc(n, sizeof(*t->buckets));
	if (!t->buckets)
		return -1;
	t->mask = n - 1;
	t->count = 0;
	t->hash = hash;
	return 0;
}

void htable_done(struct htable *t)
{
	free(t->buckets);
	t->buckets = NULL;
	t->mask = 0;
	t->count = 0;
}

static void htable_grow(struct htable *t)
{
	size_t old_n = t->mask + 1, new_n = old_n * 2;
	struct hnode **nb = calloc(new_n, sizeof(*nb));

	if (!nb)
		return;
	for (size_t i = 0; i < old_n; i++) {
		struct hnode *n = t->buckets[i];

		while (n) {
			struct hnode *next = n->next;
			struct hnode **b = &nb[t->hash(n) & (new_n - 1)];

			n->next = *b;
			*b = n;
			n = next;
		}
	}
	free(t->buckets);
	t->buckets = nb;
	t->mask = new_n - 1;
}

void htable_insert(struct htable *t, struct hnode *n)
{
	struct hnode **b;

	if (t->count >= LOAD_FACTOR * (t->mask + 1))
		htable_grow(t);
	b = &t->buckets[t->hash(n) & t->mask];
	n->next = *b;
	*b = n;
	t->count++;
}

void htable_remove(struct htable *t, struct hnode *n)
{
	struct hnode **p = &t->buckets[t->hash(n) & t->mask];

	while (*p && *p != n)
		p = &(*p)->next;
	if (*p) {
		*p = n->next;
		t->count--;
	}
	n->next = NULL;
}

/* FNV-1a, then a final avalanche so that the low bits used for buckets mix well. */
uint64_t hash_bytes(const void *p, size_t len)
{
	const unsigned char *s = p;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	return hash_u64(h);
}

/* The splitmix64 finaliser. */
uint64_t hash_u64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}
