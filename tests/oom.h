/* Running the daemon out of memory on demand, for test_oom and
 * fuzz_session. Link with
 *   -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup
 * so that the daemon's calls (haspd_core, proto) come here; jansson's
 * allocations reach malloc through the daemon's hook
 * (proto_track_memory()), and libevent's through event_set_mem_functions()
 * with __wrap_malloc and __wrap_realloc. Only allocations made while
 * oom_armed is set, in the thread that set it, are counted or fail: not
 * those of the test itself (Check's included), nor a fuzzer's thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

extern __thread bool oom_armed;
/* Counted while armed; the caller resets it when it likes. */
extern unsigned long oom_allocations;
/* Set when an allocation was made to fail; the caller resets it. */
extern bool oom_fired;

/* The nth allocation from now (1 is the next) fails, and with on every
 * one after it too; n 0: none. */
void oom_fail(unsigned long n, bool on);

void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
char *__wrap_strdup(const char *s);
