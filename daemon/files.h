/* File leases: from a request's path and descriptor to a lock table
 * resource with an oslock attached, keeping the real flock in step with
 * the holders (the lock table's admit question, its unlocked and freed
 * records), and the backoff retries while a process outside hasp holds the
 * flock. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "locktable.h"

struct haspd;
struct session;

/* First retry after 1 ms, doubling up to 8 ms: a process outside hasp that
 * releases the flock lets the head waiter in within a few ms, for the cost
 * of at most 125 flock(2) attempts a second per contended file. */
#define FILES_BACKOFF_MIN_US 1000
#define FILES_BACKOFF_MAX_US 8000

/* The resource of the file a request names: with fd (the client's
 * descriptor, always consumed), or by path alone for a peer with the
 * daemon's own uid. Returns the resource, or NULL with *code and msg set. */
struct lt_resource *files_resource(struct session *s, const char *path, int fd, int *code,
				   char *msg, size_t msg_size);

/* The lock table's question: may a lease of this mode be granted on r's
 * file now (the flock taken)? If not, a retry is scheduled. */
bool files_admit(struct lt_resource *r, enum lt_mode mode, void *arg);
/* Change records: r's file has no holders (its flock goes), or r is gone
 * (its file is closed, and its uid's charge refunded). */
void files_unlocked(struct lt_resource *r);
void files_freed(struct haspd *d, struct lt_resource *r);

/* The earliest retry (monotonic µs), or -1. */
int64_t files_next_retry(const struct haspd *d);
/* Retries every file whose time has come. */
void files_retry_due(struct haspd *d);
