#include "changes.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkouts.h"
#include "events.h"
#include "fdlocks.h"
#include "files.h"
#include "haspd.h"
#include "proto-daemon.h"
#include "reply.h"
#include "report.h"
#include "session.h"

/* A request that timed out; one that tried once only waited for a fence
 * (LT_FENCE_WAIT_MS), and is busy. */
static void changes_expired(struct haspd *d, struct lt_entry *e)
{
	char what[64];

	events_stopped(d, e, EVENT_TIMEOUT, EVENT_BY_NONE);
	fdlocks_drop(session_of(e->owner), e->res);
	if (e->timeout_ms == 0) {
		reply_conflict(session_of(e->owner), e->tag, HASP_E_BUSY, "busy", e->res, NULL);
		return;
	}
	snprintf(what, sizeof(what), "timed out after %" PRId64 " ms", e->timeout_ms);
	reply_conflict(session_of(e->owner), e->tag, HASP_E_TIMEOUT, what, e->res, NULL);
}

/* Tells the holder of lease e of an event about it (body: its members,
 * consumed); for want of memory, the lease alone, which is what the holder
 * must hear. */
static void changes_tell(struct session *holder, const char *event, const struct lt_entry *e,
			 json_t *body)
{
	size_t len = 0;
	char *line = body ? proto_event(event, body, &len) : NULL;
	char small[PROTO_SMALL_REPLY];

	if (!line) {
		len = (size_t)snprintf(small, sizeof(small), "{\"event\":\"%s\",\"lease\":%" PRIu64
				       "}\n", event, e->id);
		session_write(holder, small, len);
		return;
	}
	session_write(holder, line, len);
	free(line);
}

/* A lease whose TTL ran out: its session is told; a checkout leaves the
 * journal. */
static void changes_lapsed(struct haspd *d, struct lt_entry *e)
{
	const struct lt_resource *r = e->res;
	const char *name = report_name(r);
	const struct lt_life *life = lt_entry_life(e);

	events_ended(d, e, EVENT_BY_EXPIRY, NULL);
	if (life->detached) {
		checkouts_ended(d, e);
		return;
	}
	changes_tell(session_of(e->owner), "expired", e, json_pack("{s:I,s:o}", "lease", (json_int_t)e->id,
						     r->os ? "path" : "key",
						     proto_string_shown(name, strlen(name))));
}

/* The holder of a revoked lease is told (a checkout leaves the journal),
 * and the log says who did it. */
static void changes_revoked(struct haspd *d, struct changes_revoker *rv, struct lt_entry *e)
{
	const struct lt_resource *r = e->res;
	struct session *by = rv->by;
	const char *name = report_name(r);

	events_ended(d, e, EVENT_BY_REVOKE, &by->sender);
	if (lt_entry_detached(e))
		checkouts_ended(d, e);
	else
		changes_tell(session_of(e->owner), "revoked", e,
			     json_pack("{s:I,s:o,s:{s:i,s:I,s:I}}", "lease", (json_int_t)e->id,
				       r->os ? "path" : "key", proto_string_shown(name, strlen(name)),
				       "by", "pid", (int)by->sender.pid,
				       "uid", (json_int_t)by->sender.uid,
				       "session", (json_int_t)by->id));
	/* A reply that left one out would misreport: none (the session ends). */
	if (rv->ids && json_array_append_new(rv->ids, json_integer((json_int_t)e->id)) < 0) {
		json_decref(rv->ids);
		rv->ids = NULL;
	}
}

/* A waiting request granted (or handed over): answered, or checked out. */
static void changes_granted(struct haspd *d, struct lt_entry *e)
{
	const struct lt_life *life = lt_entry_life(e);

	events_granted(d, e);
	if (life && life->detach && e->held)
		checkouts_granted(d, e);
	else
		reply_grant(session_of(e->owner), e);
}

/* A convert whose upgrade waited: granted (a new fence), timed out or
 * tried once (the lease stays shared), or its lease ended meanwhile. */
static void changes_upgrade(struct haspd *d, const struct lt_upgrade *up,
			    enum lt_change_kind kind)
{
	struct session *s = session_of(up->owner);
	char buf[PROTO_SMALL_REPLY];

	const struct lt_entry *lease = locktable_lease(&d->lt, up->lease_id);

	if (kind == LT_CHANGE_UPGRADED) {
		if (lease)
			events_converted(d, lease, d->lt.now_us - up->since_us);
		session_write(s, buf, proto_fmt_grant(buf, up->tag, up->lease_id, up->fence, false));
	} else if (kind == LT_CHANGE_UPGRADE_ENDED) {
		snprintf(buf, sizeof(buf), "lease %" PRIu64 " ended while its upgrade waited",
			 up->lease_id);
		reply_error(s, true, up->tag, HASP_E_UNKNOWN_LEASE, buf, NULL);
	} else if (up->timeout_ms == 0) {
		reply_conflict(s, up->tag, HASP_E_BUSY, "busy", up->res, NULL);
	} else {
		snprintf(buf, sizeof(buf), "timed out after %" PRId64 " ms", up->timeout_ms);
		reply_conflict(s, up->tag, HASP_E_TIMEOUT, buf, up->res, NULL);
	}
}

/* The records of one call, then of what the checkouts swept. */
static void changes_drain(struct haspd *d, struct changes_revoker *revoker)
{
	struct lt_change c;

	while (locktable_next_change(&d->lt, &c)) {
		switch (c.kind) {
		case LT_CHANGE_GRANTED:
			changes_granted(d, c.entry);
			break;
		case LT_CHANGE_EXPIRED:
			changes_expired(d, c.entry);
			break;
		case LT_CHANGE_LAPSED:
			changes_lapsed(d, c.entry);
			break;
		case LT_CHANGE_REVOKED:
			changes_revoked(d, revoker, c.entry);
			break;
		case LT_CHANGE_UNLOCKED:
			files_unlocked(c.res);
			break;
		case LT_CHANGE_FREED:
			if (c.res->os)
				files_freed(d, c.res);
			break;
		case LT_CHANGE_UPGRADED:
		case LT_CHANGE_UPGRADE_EXPIRED:
		case LT_CHANGE_UPGRADE_ENDED:
			changes_upgrade(d, c.upgrade, c.kind);
			break;
		}
	}
}

void changes_apply(struct haspd *d, struct changes_revoker *revoker)
{
	do
		changes_drain(d, revoker);
	while (checkouts_sweep(d));
	users_settle(&d->users);
}
