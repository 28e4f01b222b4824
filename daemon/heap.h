/* A binary min-heap of intrusive nodes keyed by a uint64_t; each node knows
 * its index, so removal from the middle is O(log n). */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct heapnode {
	uint64_t key;
	size_t idx;
};

struct heap {
	struct heapnode **v;
	size_t len, cap;
};

void heap_init(struct heap *h);
void heap_done(struct heap *h);
int heap_push(struct heap *h, struct heapnode *n);     /* -ENOMEM */
void heap_remove(struct heap *h, struct heapnode *n);
static inline struct heapnode *heap_top(const struct heap *h)
{
	return h->len ? h->v[0] : NULL;
}
