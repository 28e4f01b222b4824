/* Atomic replacement under a lease (the adopt op): a file about to be
 * renamed over the file of a held file lease joins that lease's lock first,
 * as an alias of its resource, so that one queue serves the path before and
 * after the rename: newcomers that open the new file, and late ones that
 * opened the old, find the same resource, and the flock is held on both.
 * An alias lasts as long as its resource; a resource keeps its newest
 * OSLOCK_ALIASES aliases. */
#pragma once

#include "htable.h"
#include "oslock.h"

struct haspd;
struct lt_resource;
struct proto_request;
struct session;

int adopt_init(struct htable *aliases);
void adopt_done(struct htable *aliases);
/* The resource that key (a file's, oslock.h) is an alias of, or NULL. */
struct lt_resource *adopt_lookup(const struct haspd *d, const char *key);
/* The adopt request of s: answers it. */
void adopt_request(struct session *s, const struct proto_request *req);
/* o's resource is gone: its aliases leave the table, their charges are
 * refunded (oslock_free() closes them). */
void adopt_forget(struct haspd *d, struct oslock *o);
