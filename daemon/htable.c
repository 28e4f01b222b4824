#include "htable.h"

#include <stdlib.h>

int htable_init(struct htable *t, size_t min_buckets)
{
	size_t n = 16;

	while (n < min_buckets)
		n <<= 1;
	t->buckets = calloc(n, sizeof(*t->buckets));
	if (!t->buckets)
		return -1;
	t->mask = n - 1;
	t->count = 0;
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
			struct hnode **b = &nb[n->hash & (new_n - 1)];

			n->next = *b;
			*b = n;
			n = next;
		}
	}
	free(t->buckets);
	t->buckets = nb;
	t->mask = new_n - 1;
}

void htable_insert(struct htable *t, struct hnode *n, uint64_t hash)
{
	struct hnode **b;

	if (t->count >= t->mask + 1)
		htable_grow(t);
	b = &t->buckets[hash & t->mask];
	n->hash = hash;
	n->next = *b;
	*b = n;
	t->count++;
}

void htable_remove(struct htable *t, struct hnode *n)
{
	struct hnode **p = &t->buckets[n->hash & t->mask];

	while (*p && *p != n)
		p = &(*p)->next;
	if (*p) {
		*p = n->next;
		t->count--;
	}
	n->next = NULL;
}

struct hnode *htable_first(const struct htable *t, uint64_t hash)
{
	struct hnode *n = t->buckets[hash & t->mask];

	while (n && n->hash != hash)
		n = n->next;
	return n;
}

struct hnode *htable_next(const struct hnode *n, uint64_t hash)
{
	struct hnode *m = n->next;

	while (m && m->hash != hash)
		m = m->next;
	return m;
}

void htable_foreach(const struct htable *t, void (*fn)(struct hnode *n, void *arg), void *arg)
{
	for (size_t i = 0; i <= t->mask; i++)
		for (struct hnode *n = t->buckets[i]; n; n = n->next)
			fn(n, arg);
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
