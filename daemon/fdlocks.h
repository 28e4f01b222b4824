/* The fd form of a file lease (flock(1)'s `flock 9`, hasp's "lock_fd"):
 * the flock goes on the client's own open file description, not on the
 * daemon's. The request queues as any other; until it is granted, its
 * session keeps the client's descriptor here, charged to its uid as an open
 * file. At the grant (files_admit) the flock is placed on that description
 * and the descriptor closed: the lock then lasts exactly as long as the
 * client keeps its description open (or until it unlocks it), and the
 * daemon sees it as it sees any process outside hasp that holds the flock.
 * A session has at most one request per resource, so the resource names
 * the request. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "list.h"

struct lt_resource;
struct session;

struct fdlock {
	struct list link;               /* in session.fdlocks */
	const struct lt_resource *res;
	int fd;
};

/* Keeps fd for s's request on r, and the open file charged for it to s's
 * uid (the caller's, before). fd is consumed; the charge only on success.
 * Returns 0, -EEXIST when s has one for r already (the request is already
 * held), -ENOMEM. */
int fdlocks_add(struct session *s, const struct lt_resource *r, int fd);
/* The descriptor kept for s's request on r, or -1. */
int fdlocks_fd(const struct session *s, const struct lt_resource *r);
/* Closes the descriptor kept for s's request on r, if any: the request was
 * granted, or ended without a grant. */
void fdlocks_drop(struct session *s, const struct lt_resource *r);
/* Closes every descriptor s keeps: its requests are gone. */
void fdlocks_drop_all(struct session *s);
