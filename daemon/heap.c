#include "heap.h"

#include <errno.h>
#include <stdlib.h>

void heap_init(struct heap *h)
{
	h->v = NULL;
	h->len = h->cap = 0;
}

void heap_done(struct heap *h)
{
	free(h->v);
	heap_init(h);
}

static void heap_set(struct heap *h, size_t i, struct heapnode *n)
{
	h->v[i] = n;
	n->idx = i;
}

static void heap_up(struct heap *h, size_t i)
{
	struct heapnode *n = h->v[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (h->v[parent]->key <= n->key)
			break;
		heap_set(h, i, h->v[parent]);
		i = parent;
	}
	heap_set(h, i, n);
}

static void heap_down(struct heap *h, size_t i)
{
	struct heapnode *n = h->v[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->len)
			break;
		if (c + 1 < h->len && h->v[c + 1]->key < h->v[c]->key)
			c++;
		if (n->key <= h->v[c]->key)
			break;
		heap_set(h, i, h->v[c]);
		i = c;
	}
	heap_set(h, i, n);
}

int heap_push(struct heap *h, struct heapnode *n)
{
	if (h->len == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 64;
		struct heapnode **v = realloc(h->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		h->v = v;
		h->cap = cap;
	}
	heap_set(h, h->len++, n);
	heap_up(h, n->idx);
	return 0;
}

void heap_remove(struct heap *h, struct heapnode *n)
{
	size_t i = n->idx;
	struct heapnode *last = h->v[--h->len];

	if (last == n)
		return;
	heap_set(h, i, last);
	if (i > 0 && h->v[(i - 1) / 2]->key > last->key)
		heap_up(h, i);
	else
		heap_down(h, i);
}
