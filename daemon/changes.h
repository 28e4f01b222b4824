/* What the lock table reports after each call (locktable.h, change
 * records), carried out: the grant or timeout of a waiting request is
 * answered, the holder of a revoked lease is told, a file is unlocked or
 * closed. Every caller of the lock table drains it here, after each call. */
#pragma once

#include <jansson.h>

struct haspd;
struct session;

/* Who revokes, for the holders' events and the log; the ids revoked are
 * appended to ids (NULL once memory ran out). */
struct changes_revoker {
	struct session *by;
	json_t *ids;
};

/* Carries out every change record of the lock table's last call. revoker
 * is needed only after a revoke (NULL otherwise). */
void changes_apply(struct haspd *d, struct changes_revoker *revoker);
