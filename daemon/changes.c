#include "changes.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fdlocks.h"
#include "files.h"
#include "haspd.h"
#include "proto-daemon.h"
#include "reply.h"
#include "report.h"
#include "session.h"

/* A request that timed out; one that tried once only waited for a fence
 * (LT_FENCE_WAIT_MS), and is busy. */
static void changes_expired(struct lt_entry *e)
{
	char what[64];

	fdlocks_drop(session_of(e->owner), e->res);
	if (e->timeout_ms == 0) {
		reply_conflict(session_of(e->owner), e->tag, HASP_E_BUSY, "busy", e->res, NULL);
		return;
	}
	snprintf(what, sizeof(what), "timed out after %" PRId64 " ms", e->timeout_ms);
	reply_conflict(session_of(e->owner), e->tag, HASP_E_TIMEOUT, what, e->res, NULL);
}

/* The holder of a revoked lease is told, and the log says who did it. */
static void changes_revoked(struct changes_revoker *rv, const struct lt_entry *e)
{
	const struct lt_resource *r = e->res;
	struct session *by = rv->by, *holder = session_of(e->owner);
	const char *name = report_name(r);
	json_t *body = json_pack("{s:I,s:o,s:{s:i,s:I,s:I}}",
		"lease", (json_int_t)e->id, r->os ? "path" : "key",
		proto_string_shown(name, strlen(name)),
		"by", "pid", (int)by->sender.pid, "uid", (json_int_t)by->sender.uid,
		"session", (json_int_t)by->id);
	size_t len = 0;
	char *line = body ? proto_event("revoked", body, &len) : NULL;

	session_log(by, LOG_INFO, "lease %" PRIu64 " on '%s' (pid %d) revoked by pid %d uid %u",
		    e->id, name, (int)lt_entry_sender(e).pid, (int)by->sender.pid,
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
	/* A reply that left one out would misreport: none (the session ends). */
	if (rv->ids && json_array_append_new(rv->ids, json_integer((json_int_t)e->id)) < 0) {
		json_decref(rv->ids);
		rv->ids = NULL;
	}
}

void changes_apply(struct haspd *d, struct changes_revoker *revoker)
{
	struct lt_change c;

	while (locktable_next_change(&d->lt, &c)) {
		switch (c.kind) {
		case LT_CHANGE_GRANTED:
			reply_grant(session_of(c.entry->owner), c.entry);
			break;
		case LT_CHANGE_EXPIRED:
			changes_expired(c.entry);
			break;
		case LT_CHANGE_REVOKED:
			changes_revoked(revoker, c.entry);
			break;
		case LT_CHANGE_UNLOCKED:
			files_unlocked(c.res);
			break;
		case LT_CHANGE_FREED:
			if (c.res->os)
				files_freed(d, c.res);
			break;
		}
	}
}
