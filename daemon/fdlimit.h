/* The daemon's descriptor table, as the per-uid limits need it (users.h):
 * its size, and how much of it is open. */
#pragma once

#include <stddef.h>

/* RLIMIT_NOFILE's soft limit (prlimit(1) may change it while haspd runs),
 * or 0 if unlimited or unknown. */
size_t fdlimit_now(void);
/* The descriptors open now, from /proc/self/fd (0 if it cannot be read). */
size_t fdlimit_open(void);
