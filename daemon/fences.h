/* Fences that outlive the daemon: the fence file (fencefile.h) holds a
 * ceiling above every fence given, and its flock is the instance lock. The
 * ceiling is stored ahead of need, from a timer, once half of the reserve
 * is used, never inside a grant; a grant that finds none left waits (the
 * lock table keeps it in its place) until the store is done. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct haspd;

/* How far ahead of the fences given a ceiling is stored: fences follow the
 * wall clock in µs, so one store about every 5 s while grants go on. */
#define FENCES_RESERVE_US 10000000u

/* Opens the fence file at path (creating it at a first start: not when
 * stale_socket, a socket an earlier haspd left, says there was an earlier
 * run), takes its lock, sets the floor and stores the first ceiling.
 * Returns 0, or -1 with the reason logged: haspd must not start then (a
 * second haspd, a lost or unreadable ceiling, fences exhausted). */
int fences_keep(struct haspd *d, const char *path, const char *stale_socket);
/* At the end of every callback: arms the store when a grant waits for a
 * fence, or when grants used half of the reserve. */
void fences_plan(struct haspd *d);
/* Stores the next ceiling now and raises the lock table's to it (the
 * timer's work, which then calls locktable_kick_all() for what waited).
 * Returns 0, or -errno when the store failed (tried again a second later),
 * or -ERANGE when no fence is left. */
int fences_store(struct haspd *d);
