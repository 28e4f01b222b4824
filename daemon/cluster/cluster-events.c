/* What happens to this haspd's cluster requests, told as the lock table's
 * are (events.h): to the watchers, with "host", and to the wait and hold
 * histograms. Another host's requests are that host's to tell. */
#include "cluster-int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "haspd.h"
#include "hist.h"
#include "proto-daemon.h"
#include "report.h"
#include "watch.h"

static int set_text(json_t *o, const char *name, const json_t *v)
{
	return json_is_string(v) ? json_object_set(o, name, (json_t *)v) : 0;
}

/* The event's line: who, on what, and what (kind's members). */
static char *event_line(struct cl_lock *l, const char *kind, const char *reason, uint64_t us,
			size_t *len)
{
	bool held = l->state == CL_HELD || l->state == CL_DETACHING;
	char when[40];
	json_t *o;

	report_time(l->c->d->lt.wall_us, when, sizeof(when));
	o = json_pack("{s:s,s:O,s:i,s:I,s:o,s:s,s:s}", "time", when,
		      "session", json_object_get(l->value, "session"), "pid", (int)l->sender.pid,
		      "uid", (json_int_t)l->sender.uid, "key",
		      proto_string_shown(l->key, l->key_len), "mode",
		      l->shared ? "shared" : "exclusive", "host", l->c->host);
	if (!o || set_text(o, "owner", json_object_get(l->value, "owner")) < 0 ||
	    set_text(o, "message", json_object_get(l->value, "message")) < 0 ||
	    (held && json_object_set_new(o, "lease", json_integer((json_int_t)l->lease)) < 0) ||
	    (held && json_object_set_new(o, "fence", json_integer(l->rev)) < 0) ||
	    ((!held || l->held_since_us == 0) &&
	     json_object_set_new(o, "request", json_integer(l->tag)) < 0) ||
	    (us != UINT64_MAX && json_object_set_new(o, held && l->held_since_us ? "held_ms" :
						     "waited_ms", json_integer((json_int_t)(us / 1000))) < 0) ||
	    (reason && json_object_set_new(o, "reason", json_string(reason)) < 0) ||
	    (l->detach && json_object_set_new(o, "checkout", json_true()) < 0)) {
		json_decref(o);
		return NULL;
	}
	return proto_event(kind, o, len);
}

/* kind ("queued", "granted", "released", "timeout", "cancelled"), with its
 * reason or NULL, and us waited or held (UINT64_MAX: none). */
static void cl_event(struct cl_lock *l, const char *kind, const char *reason, uint64_t us)
{
	struct haspd *d = l->c->d;
	const char *names[1] = { l->key };
	size_t lens[1] = { l->key_len }, len;
	struct watch_subject subj = { names, lens, 1 };
	char *line;

	if (!d->nwatchers || !watch_wanted(d, &subj))
		return;
	line = event_line(l, kind, reason, us, &len);
	if (line)
		watch_publish(d, &subj, line, len);
	free(line);
}

void cl_event_queued(struct cl_lock *l)
{
	cl_event(l, "queued", NULL, UINT64_MAX);
}

void cl_event_granted(struct cl_lock *l)
{
	uint64_t waited = clock_us(CLOCK_MONOTONIC) - l->asked_us;

	hist_observe(&l->c->d->wait_hist, waited);
	cl_event(l, "granted", NULL, waited);
	l->held_since_us = clock_us(CLOCK_MONOTONIC);
}

void cl_event_ended(struct cl_lock *l, const char *reason)
{
	bool held = l->state == CL_HELD;
	uint64_t now = clock_us(CLOCK_MONOTONIC);

	if (held) {
		hist_observe(&l->c->d->hold_hist, now - l->held_since_us);
		cl_event(l, "released", reason, now - l->held_since_us);
	} else if (l->state != CL_ENDING && l->state != CL_DETACHING) {
		cl_event(l, strcmp(reason, "timeout") == 0 ? "timeout" : "cancelled",
			 strcmp(reason, "timeout") == 0 ? NULL : reason, now - l->asked_us);
	}
}
