#include "spares.h"

#include <stdlib.h>

/* Under AddressSanitizer a kept block is poisoned, so that a use after its
 * free is still caught. */
#if defined(__SANITIZE_ADDRESS__)
#define SPARES_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPARES_ASAN 1
#endif
#endif
#ifdef SPARES_ASAN
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(p, n) ((void)(p), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(p, n) ((void)(p), (void)(n))
#endif

/* malloc (glibc's) rounds a request up to a chunk of size + 8, a multiple
 * of 16, 32 at least: the class is the chunk, and the capacity what fits. */
static size_t class_of(size_t size)
{
	return ((size < 24 ? 24 : size) + 23) / 16 - 2;
}

static size_t capacity(size_t class)
{
	return (class + 2) * 16 - 8;
}

void *spares_alloc(struct spares *s, size_t size)
{
	size_t c;
	void *p;

	if (size > SPARES_SIZE_MAX)
		return malloc(size);
	c = class_of(size);
	if (!s->head[c])
		return malloc(capacity(c));
	p = s->head[c];
	ASAN_UNPOISON_MEMORY_REGION(p, capacity(c));
	s->head[c] = *(void **)p;
	s->count[c]--;
	return p;
}

void spares_free(struct spares *s, void *p, size_t size)
{
	size_t c;

	if (!p)
		return;
	if (size > SPARES_SIZE_MAX || s->count[class_of(size)] == SPARES_PER_CLASS) {
		free(p);
		return;
	}
	c = class_of(size);
	*(void **)p = s->head[c];
	s->head[c] = p;
	s->count[c]++;
	ASAN_POISON_MEMORY_REGION(p, capacity(c));
}

void spares_done(struct spares *s)
{
	for (size_t c = 0; c < SPARES_CLASSES; c++) {
		while (s->head[c]) {
			void *p = s->head[c];

			ASAN_UNPOISON_MEMORY_REGION(p, capacity(c));
			s->head[c] = *(void **)p;
			free(p);
		}
		s->count[c] = 0;
	}
}
