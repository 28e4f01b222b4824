#include "report.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "haspd.h"
#include "oslock.h"
#include "session.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static json_t *report_decref(json_t *o)
{
	json_decref(o);
	return NULL;
}

static json_int_t age_ms(const struct haspd *d, uint64_t since_us)
{
	return (json_int_t)((d->lt.now_us - since_us) / 1000);
}

/* The fields holders and waiters share, who they are and what they asked,
 * and those of their kind in extra; NULL if either is, or for want of
 * memory to join them. */
static json_t *report_entry(const struct lt_entry *e, json_t *extra)
{
	const struct session *s = session_of(e->owner);
	json_t *o = json_pack("{s:I,s:i,s:I,s:I,s:s,s:s*,s:s*,s:s*}",
			      "session", (json_int_t)s->id, "pid", (int)e->sender.pid,
			      "uid", (json_int_t)e->sender.uid, "gid", (json_int_t)e->sender.gid,
			      "mode", lt_mode_name(e->mode),
			      "client", s->client[0] ? s->client : NULL,
			      "owner", lt_entry_owner_name(e),
			      "message", lt_entry_message(e));

	if (o && extra && json_object_update(o, extra) == 0) {
		json_decref(extra);
		return o;
	}
	json_decref(o);
	json_decref(extra);
	return NULL;
}

static json_t *report_holder(const struct haspd *d, const struct lt_entry *e)
{
	return report_entry(e, json_pack("{s:I,s:I,s:I}", "lease", (json_int_t)e->id,
					 "fence", (json_int_t)e->fence,
					 "held_ms", age_ms(d, e->since_us)));
}

static json_t *report_waiter(const struct haspd *d, const struct lt_entry *e)
{
	return report_entry(e, json_pack("{s:I,s:I,s:o}", "request", (json_int_t)e->tag,
					 "waiting_ms", age_ms(d, e->since_us),
					 "timeout_ms", e->timeout_ms < 0 ? json_null() :
					 json_integer(e->timeout_ms)));
}

/* The first max entries of q, each made by one; NULL for want of memory
 * for any of them: a list that leaves one out would misreport. */
static json_t *report_queue(const struct haspd *d, const struct list *q, size_t max,
			    json_t *(*one)(const struct haspd *, const struct lt_entry *))
{
	json_t *a = json_array();
	const struct list *pos;

	list_foreach(pos, q) {
		if (!a || json_array_size(a) >= max)
			break;
		if (json_array_append_new(a, one(d, container_of(pos, struct lt_entry, qnode))) < 0)
			a = report_decref(a);
	}
	return a;
}

const char *report_name(const struct lt_resource *r)
{
	return r->os ? ((const struct oslock *)r->os)->path : r->key;
}

json_t *report_holders(const struct haspd *d, const struct lt_resource *r, size_t max)
{
	return report_queue(d, &r->holders, max, report_holder);
}

void report_conflict(const struct haspd *d, const struct lt_resource *r, char *buf, size_t n)
{
	const struct lt_entry *e;
	const char *owner;
	int w;

	if (!r || r->nholders == 0) {
		if (!r || r->os)
			snprintf(buf, n, "locked with flock(2) by a process outside hasp");
		else
			snprintf(buf, n, "%u requests wait ahead", (unsigned)r->nwaiters);
		return;
	}
	e = container_of(r->holders.next, struct lt_entry, qnode);
	owner = lt_entry_owner_name(e);
	w = snprintf(buf, n, "held by pid %d (%s%.64s%ssession %" PRIu64 "), %s, for %.1f s",
		     (int)e->sender.pid, owner ? "owner " : "", owner ? owner : "", owner ? ", " : "",
		     session_of(e->owner)->id, lt_mode_name(e->mode),
		     (double)(d->lt.now_us - e->since_us) / 1e6);
	if (r->nholders > 1 && w > 0 && (size_t)w < n)
		snprintf(buf + w, n - (size_t)w, ", and %u more", (unsigned)r->nholders - 1);
}

struct list_ctx {
	const struct haspd *d;
	json_t *resources;      /* NULL once memory ran out */
};

static void report_resource(struct lt_resource *r, void *arg)
{
	struct list_ctx *ctx = arg;
	json_t *o;

	if (!ctx->resources)
		return;
	o = json_pack("{s:s%,s:o,s:o,s:o}", r->os ? "path" : "key",
		      report_name(r), r->os ? strlen(report_name(r)) : r->key_len,
		      "mode", r->nholders ? json_string(lt_mode_name(r->held_mode)) : json_null(),
		      "holders", report_queue(ctx->d, &r->holders, SIZE_MAX, report_holder),
		      "waiters", report_queue(ctx->d, &r->waiters, SIZE_MAX, report_waiter));

	if (json_array_append_new(ctx->resources, o) < 0)
		ctx->resources = report_decref(ctx->resources);
}

json_t *report_list(const struct haspd *d)
{
	struct list_ctx ctx = { d, json_array() };

	if (!ctx.resources)
		return NULL;
	locktable_foreach(&d->lt, report_resource, &ctx);
	return ctx.resources ? json_pack("{s:o}", "resources", ctx.resources) : NULL;
}

/* Bytes the daemon has allocated and not freed: what a leak would grow. */
static json_int_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return (json_int_t)(mi.uordblks + mi.hblkhd);
}

json_t *report_stats(const struct haspd *d)
{
	const struct lt_stats *st = &d->lt.stats;
	json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}",
			      "sessions", (json_int_t)d->nsessions,
			      "resources", (json_int_t)st->resources,
			      "leases", (json_int_t)st->leases,
			      "waiters", (json_int_t)st->waiters,
			      "uptime_ms", (json_int_t)(haspd_now_ms() - d->started_ms),
			      "heap_bytes", heap_in_use());
	json_t *c = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
			      "sessions", (json_int_t)d->sessions_total,
			      "acquires", (json_int_t)st->acquires,
			      "granted_at_once", (json_int_t)st->granted_at_once,
			      "granted_after_wait", (json_int_t)st->granted_after_wait,
			      "busy", (json_int_t)st->busy,
			      "timeouts", (json_int_t)st->timeouts,
			      "cancels", (json_int_t)st->cancels,
			      "releases", (json_int_t)st->releases,
			      "already_held", (json_int_t)st->already_held,
			      "revokes", (json_int_t)st->revokes,
			      "protocol_errors", (json_int_t)d->protocol_errors);

	return json_pack("{s:{s:o,s:o}}", "stats", "gauges", o, "counters", c);
}
