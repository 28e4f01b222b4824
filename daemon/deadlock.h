/* Deadlock detection: a search of the wait-for graph when a request is
 * about to wait. Part of the pure core (no I/O, no clock), used by
 * locktable.c.
 *
 * The graph's nodes are owners (sessions). A waiting request waits for
 * the holders of its resource that it conflicts with and for the requests
 * queued ahead of it that it conflicts with, and its owner for theirs. A
 * new wait can close a cycle only through its own edges (waits end, and a
 * grant turns a request into a lease of the same owner, so no other step
 * adds an edge between owners): a breadth-first search from the new
 * request's edges that comes back to its owner finds every cycle the moment
 * it would form, and the shortest one. Detached owners wait for nothing,
 * so they are never in a cycle.
 *
 * It follows fewer edges with the same reach: an exclusive request waits
 * for the requests ahead of it back to the nearest exclusive one (which
 * waits for those ahead of it in turn; shared ones ahead do not wait for
 * each other) and, unless that one is just ahead, for the holders; a
 * shared one for the nearest exclusive request ahead, and for exclusive
 * holders. (Shared requests can wait in a row ahead of an exclusive one
 * behind an exclusive holder, or as parts of multi-key requests that wait
 * for other keys: the exclusive one waits for each.)
 *
 * A multi-key request waits with each of its parts, as any request does on
 * its key; a new one starts the search from the edges of all its parts.
 *
 * A request on a semaphore with a limit above 1 waits for no one session:
 * any holder's leaving may let it in (or the one ahead of it, and then it
 * too, if another leaves), so it has no edges, and a deadlock through it
 * is not found (its timeout ends it). With limit 1 it is a mutex.
 *
 * An upgrade (locktable_convert()) waits for every other holder of its
 * resource, and every request queued on that resource waits for the
 * upgrader too, since the upgrade goes ahead of it (a shared request that
 * waits for no holder waits for the upgrader; an exclusive one waits for
 * every holder, the upgrader among them). So a second upgrader of a
 * resource closes a cycle of two with the first: both hold it shared, and
 * each waits for the other. */
#pragma once

#include <stdbool.h>

#include "locktable.h"

/* Whether e, a request about to be queued at the tail of its resource's
 * queue (a multi-key request's parts[0]: each part at the tail of its
 * resource's), would close a cycle: then lt->cycle is that cycle, its
 * first wait the new request's part that closes it. Counts the
 * search in lt->stats, and its cut when it takes more than
 * lt->dl_steps_max steps (then no cycle is reported). Needs no memory. */
bool deadlock_find(struct locktable *lt, const struct lt_entry *e);
/* The same for an upgrade of lease e (shared, held) about to wait. A second
 * upgrader of a resource is always refused: if its search is cut, the
 * cycle reported is the two upgraders'. */
bool deadlock_find_upgrade(struct locktable *lt, const struct lt_entry *e);
/* Whether the upgrade of lease e, granted at once or pending, would close
 * a cycle through the requests it goes ahead of: a shared request queued
 * on its resource before any exclusive one (a multi-key request's part
 * that waits for its other keys) waits for e from then on, and e's
 * session waits, directly or through others, for that request's. Then
 * lt->cycle is that cycle, from that request's wait (its waiter set: the
 * upgrade is the refused one). */
bool deadlock_find_passed(struct locktable *lt, const struct lt_entry *e);
