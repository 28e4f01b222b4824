/* A line sent with descriptors (SCM_RIGHTS) in one sendmsg(2), as libhasp
 * sends a file lease's: for the tests that play a client by hand. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#define SENDFDS_MAX 3

/* Sends up to len bytes of buf on sock, with the nfds (<= SENDFDS_MAX)
 * descriptors in fds attached to the first byte; never raises SIGPIPE.
 * Returns what sendmsg(2) returns. */
ssize_t sendfds(int sock, const void *buf, size_t len, const int *fds, size_t nfds);
