/* The administrative revoke: end another session's lease, telling it. */
#include "revoke.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "changes.h"
#include "cluster/cluster.h"
#include "files.h"
#include "haspd.h"
#include "proto-daemon.h"
#include "reply.h"
#include "session.h"

/* Root, the daemon's own uid, and the holder's own uid may revoke: the uid
 * of the process that sent the revoke, and of the one that took the lease. */
static bool may_revoke(const struct lt_entry *e, const void *arg)
{
	const struct session *s = arg;
	uid_t uid = s->sender.uid;

	return uid == 0 || uid == geteuid() || uid == lt_entry_sender(e).uid;
}

/* The revoked leases' ids as the reply, or the session ends when memory
 * ran out for it (reply_ok() of NULL). */
static void revoke_reply(struct session *s, const struct proto_request *req, json_t *ids)
{
	reply_ok(s, req->id, ids ? json_pack("{s:o}", "revoked", ids) : NULL);
}

static void revoke_lease(struct session *s, const struct proto_request *req)
{
	struct lt_entry *e = locktable_lease(&s->d->lt, req->revoke.lease);
	struct changes_revoker rv = { s, json_array() };
	char msg[160];

	if (!rv.ids) {
		reply_error(s, true, req->id, HASP_E_INTERNAL, "out of memory", NULL);
	} else if (!e) {
		snprintf(msg, sizeof(msg), "no lease %" PRIu64, req->revoke.lease);
		reply_error(s, true, req->id, HASP_E_UNKNOWN_LEASE, msg, NULL);
	} else if (!may_revoke(e, s)) {
		snprintf(msg, sizeof(msg), "lease %" PRIu64 " is held by uid %u: only root, uid %u "
			 "and the holder's uid may revoke it", e->id, (unsigned)lt_entry_sender(e).uid,
			 (unsigned)geteuid());
		reply_error(s, true, req->id, HASP_E_PERMISSION_DENIED, msg, NULL);
	} else {
		locktable_revoke(&s->d->lt, e);
		changes_apply(s->d, &rv);
		revoke_reply(s, req, rv.ids);
		return;
	}
	json_decref(rv.ids);
}

/* Every lease on r (a key's or a file's resource, or NULL: none) that
 * this session may revoke; waiters stay. */
static void revoke_all(struct session *s, const struct proto_request *req, struct lt_resource *r)
{
	struct changes_revoker rv = { s, json_array() };
	size_t n = 0, refused = 0;

	if (!rv.ids) {
		reply_error(s, true, req->id, HASP_E_INTERNAL, "out of memory", NULL);
		return;
	}
	if (r)
		n = locktable_revoke_all(&s->d->lt, r, may_revoke, s, &refused);
	changes_apply(s->d, &rv);
	if (n == 0 && refused) {
		json_decref(rv.ids);
		reply_error(s, true, req->id, HASP_E_PERMISSION_DENIED, req->revoke.key ?
			    "the key's holders are other users': only root, the daemon's uid and the "
			    "holder's uid may revoke" :
			    "the file's holders are other users': only root, the daemon's uid and the "
			    "holder's uid may revoke", NULL);
		return;
	}
	revoke_reply(s, req, rv.ids);
}

/* The file a revoke names: by the descriptor that came with it (the
 * file's identity, as for an acquire), or by its path for the daemon's
 * own uid. */
static void revoke_file(struct session *s, const struct proto_request *req)
{
	struct lt_resource *r = NULL;
	char msg[1200];
	int code, fd = req->revoke.fd ? files_take_fd(s, &code, msg, sizeof(msg)) : -1;

	if ((req->revoke.fd && fd < 0) || files_find(s, req->revoke.path, fd, &r, &code, msg,
						     sizeof(msg)) < 0) {
		reply_error(s, true, req->id, code, msg, NULL);
		return;
	}
	revoke_all(s, req, r);
}

void revoke_request(struct session *s, const struct proto_request *req)
{
	if (req->revoke.key && cluster_key(s->d, req->revoke.key, req->revoke.key_len))
		cluster_revoke_key(s, req);
	else if (req->revoke.lease && cluster_revoke_lease(s, req))
		return;
	else if (req->revoke.key)
		revoke_all(s, req, locktable_find(&s->d->lt, req->revoke.key, req->revoke.key_len));
	else if (req->revoke.path)
		revoke_file(s, req);
	else
		revoke_lease(s, req);
}
