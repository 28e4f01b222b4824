/* The administrative revoke: end another session's lease, telling it. */
#include "revoke.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "haspd.h"
#include "log.h"
#include "proto.h"
#include "reply.h"
#include "report.h"
#include "session.h"

/* Root, the daemon's own uid, and the holder's own uid may revoke: the uid
 * of the process that sent the revoke, and of the one that took the lease. */
static bool may_revoke(const struct session *s, const struct lt_entry *e)
{
	uid_t uid = s->sender.uid;

	return uid == 0 || uid == geteuid() || uid == e->sender.uid;
}

/* Tells the holder, logs, and ends the lease. */
static void revoke_one(struct session *by, struct lt_entry *e)
{
	const struct lt_resource *r = e->res;
	struct session *holder = session_of(e->owner);
	const char *name = report_name(r);
	json_t *body = json_pack("{s:I,s:o,s:{s:i,s:I,s:I}}",
		"lease", (json_int_t)e->id, r->os ? "path" : "key",
		proto_string_shown(name, strlen(name)),
		"by", "pid", (int)by->sender.pid, "uid", (json_int_t)by->sender.uid,
		"session", (json_int_t)by->id);
	size_t len = 0;
	char *line = body ? proto_event("revoked", body, &len) : NULL;

	session_log(by, LOG_INFO, "lease %" PRIu64 " on '%s' (pid %d) revoked by pid %d uid %u",
		    e->id, name, (int)e->sender.pid, (int)by->sender.pid,
		    (unsigned)by->sender.uid);
	if (line) {
		session_write(holder, line, len);
		free(line);
	} else {
		/* Out of memory for the whole event: the lease alone, which is
		 * what the holder must hear. */
		char small[PROTO_SMALL_REPLY];

		len = (size_t)snprintf(small, sizeof(small),
				       "{\"event\":\"revoked\",\"lease\":%" PRIu64 "}\n", e->id);
		session_write(holder, small, len);
	}
	locktable_revoke(&by->d->lt, e);
}

static void revoke_lease(struct session *s, const struct proto_request *req)
{
	struct lt_entry *e = locktable_lease(&s->d->lt, req->revoke.lease);
	char msg[160];

	if (!e) {
		snprintf(msg, sizeof(msg), "no lease %" PRIu64, req->revoke.lease);
		reply_error(s, true, req->id, HASP_E_UNKNOWN_LEASE, msg, NULL);
	} else if (!may_revoke(s, e)) {
		snprintf(msg, sizeof(msg), "lease %" PRIu64 " is held by uid %u: only root, uid %u "
			 "and the holder's uid may revoke it", e->id, (unsigned)e->sender.uid,
			 (unsigned)geteuid());
		reply_error(s, true, req->id, HASP_E_PERMISSION_DENIED, msg, NULL);
	} else {
		uint64_t id = e->id;

		revoke_one(s, e);
		reply_ok(s, req->id, json_pack("{s:[I]}", "revoked", (json_int_t)id));
	}
}

/* Every lease on a key that this session may revoke; waiters stay. */
static void revoke_key(struct session *s, const struct proto_request *req)
{
	struct lt_resource *r = locktable_find(&s->d->lt, req->revoke.key, req->revoke.key_len);
	size_t n = 0, refused = 0;
	uint64_t *ids = r ? calloc(r->nholders + 1, sizeof(*ids)) : NULL;
	json_t *revoked = json_array();
	struct list *pos;

	if (r && (!ids || !revoked)) {
		free(ids);
		json_decref(revoked);
		reply_error(s, true, req->id, HASP_E_INTERNAL, "out of memory", NULL);
		return;
	}
	/* Ids first: revoking grants the next waiters, who must not be hit. */
	if (r) {
		list_foreach(pos, &r->holders) {
			struct lt_entry *e = list_entry(pos, struct lt_entry, qnode);

			if (may_revoke(s, e))
				ids[n++] = e->id;
			else
				refused++;
		}
	}
	for (size_t i = 0; i < n; i++) {
		revoke_one(s, locktable_lease(&s->d->lt, ids[i]));
		/* A reply that left one out would misreport: none, and the
		 * session ends (reply_ok() of NULL). */
		if (revoked && json_array_append_new(revoked, json_integer((json_int_t)ids[i])) < 0) {
			json_decref(revoked);
			revoked = NULL;
		}
	}
	free(ids);
	if (n == 0 && refused) {
		json_decref(revoked);
		reply_error(s, true, req->id, HASP_E_PERMISSION_DENIED,
			    "the key's holders are other users': only root, the daemon's uid and the "
			    "holder's uid may revoke", NULL);
		return;
	}
	reply_ok(s, req->id, revoked ? json_pack("{s:o}", "revoked", revoked) : NULL);
}

void revoke_request(struct session *s, const struct proto_request *req)
{
	if (req->revoke.key)
		revoke_key(s, req);
	else
		revoke_lease(s, req);
}
