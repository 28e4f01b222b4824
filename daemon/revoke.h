/* revoke: ends a lease by id, or every lease on a key or a file (named by
 * its descriptor), whoever holds it.
 * Allowed to root, the daemon's own uid and the holder's uid; the holder
 * gets a {"event":"revoked"} message. */
#pragma once

#include "proto-daemon.h"

struct session;

void revoke_request(struct session *s, const struct proto_request *req);
