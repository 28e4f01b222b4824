#include "busiest.h"

#include <stdlib.h>
#include <string.h>

#include "htable.h"

static uint64_t busiest_hash(bool file, const char *name, size_t len)
{
	return hash_bytes(name, len) ^ file;
}

static size_t busiest_cut(size_t len)
{
	return len > BUSIEST_NAME_MAX ? BUSIEST_NAME_MAX : len;
}

static struct busiest_key *busiest_lookup(struct busiest *b, uint64_t h, bool file,
					  const char *name, size_t len)
{
	for (size_t i = 0; i < b->n; i++) {
		struct busiest_key *k = &b->slot[i];

		if (k->hash == h && k->file == file && k->len == len &&
		    memcmp(k->name, name, len) == 0)
			return k;
	}
	return NULL;
}

struct busiest_key *busiest_find(struct busiest *b, bool file, const char *name, size_t len)
{
	len = busiest_cut(len);
	return busiest_lookup(b, busiest_hash(file, name, len), file, name, len);
}

static struct busiest_key *busiest_least(struct busiest *b)
{
	struct busiest_key *least = &b->slot[0];

	for (size_t i = 1; i < b->n; i++)
		if (b->slot[i].grants < least->grants)
			least = &b->slot[i];
	return least;
}

struct busiest_key *busiest_grant(struct busiest *b, bool file, const char *name, size_t len)
{
	uint64_t h, grants = 0;
	struct busiest_key *k;

	len = busiest_cut(len);
	h = busiest_hash(file, name, len);
	k = busiest_lookup(b, h, file, name, len);
	if (k) {
		k->grants++;
		return k;
	}
	if (b->n < BUSIEST_SLOTS) {
		k = &b->slot[b->n++];
	} else {
		k = busiest_least(b);
		grants = k->grants;
	}
	memset(&k->wait, 0, sizeof(k->wait));
	memset(&k->hold, 0, sizeof(k->hold));
	k->hash = h;
	k->grants = grants + 1;
	k->file = file;
	k->len = (uint16_t)len;
	memcpy(k->name, name, len);
	k->name[len] = '\0';
	return k;
}

static int busiest_cmp(const void *a, const void *b)
{
	uint64_t x = (*(const struct busiest_key *const *)a)->grants;
	uint64_t y = (*(const struct busiest_key *const *)b)->grants;

	return x < y ? 1 : x > y ? -1 : 0;
}

size_t busiest_top(const struct busiest *b, const struct busiest_key **ret, size_t max)
{
	const struct busiest_key *all[BUSIEST_SLOTS];

	for (size_t i = 0; i < b->n; i++)
		all[i] = &b->slot[i];
	qsort(all, b->n, sizeof(all[0]), busiest_cmp);
	if (max > b->n)
		max = b->n;
	memcpy(ret, all, max * sizeof(all[0]));
	return max;
}
