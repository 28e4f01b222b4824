#include "report.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "haspd.h"
#include "oslock.h"
#include "proto-daemon.h"
#include "utf8.h"

static json_t *report_decref(json_t *o)
{
	json_decref(o);
	return NULL;
}

static json_int_t age_ms(const struct haspd *d, uint64_t since_us)
{
	return (json_int_t)((d->lt.now_us - since_us) / 1000);
}

/* A string a client controls (or a file's name) under name in o, as it is
 * shown (U+FFFD for what is not UTF-8); nothing when s is NULL. */
static int report_set_text(json_t *o, const char *name, const char *s)
{
	return s ? json_object_set_new(o, name, proto_string_shown(s, strlen(s))) : 0;
}

/* A multi-key lease's or request's entries say over how many keys it is
 * ("keys"); 0, or -1 for want of memory. */
static int report_set_keys(json_t *o, const struct lt_entry *e)
{
	if (!e->multi)
		return 0;
	return json_object_set_new(o, "keys", json_integer((json_int_t)e->multi->n));
}

/* The fields holders and waiters share, who they are and what they asked,
 * and those of their kind in extra; NULL if either is, or for want of
 * memory to join them. */
static json_t *report_entry(const struct lt_entry *e, json_t *extra)
{
	const struct lt_owner *owner = e->owner;
	struct lt_cred who = lt_entry_sender(e);
	json_t *o = json_pack("{s:I,s:i,s:I,s:I,s:s}",
			      "session", (json_int_t)owner->session, "pid", (int)who.pid,
			      "uid", (json_int_t)who.uid, "gid", (json_int_t)who.gid,
			      "mode", lt_mode_name(e->mode));

	if (o && extra && report_set_text(o, "client", owner->label[0] ? owner->label : NULL) == 0 &&
	    report_set_text(o, "owner", lt_entry_owner_name(e)) == 0 &&
	    report_set_text(o, "message", lt_entry_message(e)) == 0 &&
	    report_set_keys(o, e) == 0 && json_object_update(o, extra) == 0) {
		json_decref(extra);
		return o;
	}
	json_decref(o);
	json_decref(extra);
	return NULL;
}

/* When an entry was granted or queued, on the wall clock (ms since the
 * epoch): its monotonic age back from the wall clock of this tick, so a
 * step of the wall clock since moves it, never the age. */
static uint64_t report_wall_ms(const struct haspd *d, uint64_t since_us)
{
	uint64_t age_us = d->lt.now_us - since_us;

	return (d->lt.wall_us > age_us ? d->lt.wall_us - age_us : 0) / 1000;
}

/* When an entry was granted or queued (ms since the epoch): a checkout's
 * or a TTL lease's as it was recorded (a restored one's is older than this
 * run), any other's from its age. */
static uint64_t report_when_ms(const struct haspd *d, const struct lt_entry *e)
{
	const struct lt_life *life = lt_entry_life(e);

	return e->held && life ? life->granted_wall_us / 1000 : report_wall_ms(d, e->since_us);
}

/* secs since the epoch in RFC 3339, UTC, to the second, into day; false
 * if it cannot be. */
static bool report_day(uint64_t secs, char day[24])
{
	time_t t = (time_t)secs;
	struct tm tm;

	return gmtime_r(&t, &tm) && strftime(day, 24, "%Y-%m-%dT%H:%M:%S", &tm);
}

/* ms since the epoch in RFC 3339, UTC, to the ms; "" if it cannot be. */
static void report_rfc3339(uint64_t ms, char *buf, size_t n)
{
	char day[24];

	buf[0] = '\0';
	if (report_day(ms / 1000, day))
		snprintf(buf, n, "%s.%03uZ", day, (unsigned)(ms % 1000));
}

void report_time(uint64_t wall_us, char *buf, size_t n)
{
	char day[24];

	buf[0] = '\0';
	if (report_day(wall_us / 1000000, day))
		snprintf(buf, n, "%s.%06uZ", day, (unsigned)(wall_us % 1000000));
}

/* "since_ms" and "since" (and "granted_at", the same, for a holder) of an
 * entry, into o; o is consumed, and NULL returned, for want of memory. */
static json_t *report_since(const struct haspd *d, const struct lt_entry *e, json_t *o)
{
	uint64_t ms = report_when_ms(d, e);
	char iso[40];

	report_rfc3339(ms, iso, sizeof(iso));
	if (!o || !iso[0] || json_object_set_new(o, "since_ms", json_integer((json_int_t)ms)) < 0 ||
	    json_object_set_new(o, "since", json_string(iso)) < 0 ||
	    (e->held && json_object_set_new(o, "granted_at", json_string(iso)) < 0))
		return report_decref(o);
	return o;
}

/* A holder's lifetime: "detached", "ttl_ms" and "expires_in_ms" where they
 * apply; o is consumed, and NULL returned, for want of memory. */
static json_t *report_life(const struct haspd *d, const struct lt_entry *e, json_t *o)
{
	const struct lt_life *life = lt_entry_life(e);

	if (!o || !life)
		return o;
	if (life->detached && json_object_set_new(o, "detached", json_true()) < 0)
		return report_decref(o);
	if (!life->ttl_ms)
		return o;
	if (json_object_set_new(o, "ttl_ms", json_integer((json_int_t)life->ttl_ms)) < 0 ||
	    json_object_set_new(o, "expires_in_ms",
				json_integer((json_int_t)(lt_life_left_us(&d->lt, life) / 1000))) < 0)
		return report_decref(o);
	return o;
}

/* How long a holder has held: a checkout's or a TTL lease's from its
 * recorded grant on the wall clock (a restored one's began in an earlier
 * run), any other's on the monotonic clock. */
static json_int_t held_ms(const struct haspd *d, const struct lt_entry *e)
{
	const struct lt_life *life = lt_entry_life(e);

	if (!life)
		return age_ms(d, e->since_us);
	return life->granted_wall_us < d->lt.wall_us ?
	       (json_int_t)((d->lt.wall_us - life->granted_wall_us) / 1000) : 0;
}

/* A holder whose upgrade waits: "upgrading": true and "upgrade": the
 * convert's request, how long it has waited, its timeout (o consumed). */
static json_t *report_upgrading(const struct haspd *d, const struct lt_entry *e, json_t *o)
{
	const struct lt_upgrade *up = locktable_upgrade_of(e);

	if (!up || !o)
		return o;
	if (json_object_set_new(o, "upgrading", json_true()) < 0 ||
	    json_object_set_new(o, "upgrade", json_pack("{s:I,s:I,s:o}", "request", (json_int_t)up->tag,
							 "waiting_ms", age_ms(d, up->since_us),
							 "timeout_ms", up->timeout_ms < 0 ? json_null() :
							 json_integer(up->timeout_ms))) < 0)
		return report_decref(o);
	return o;
}

static json_t *report_holder(const struct haspd *d, const struct lt_entry *e)
{
	json_t *o = json_pack("{s:I,s:I,s:I}", "lease", (json_int_t)e->id,
			      "fence", (json_int_t)e->fence, "held_ms", held_ms(d, e));

	return report_upgrading(d, e, report_entry(e, report_life(d, e, report_since(d, e, o))));
}

/* Why a waiter is not granted yet: "queue" behind the waiter ahead of it,
 * "holders" it conflicts with, "fence" (none to give until the ceiling is
 * stored), "keys" (a multi-key request that waits for its other keys), or
 * "outside_flock": its file is compatible with hasp's holders, so a
 * process outside hasp holds the flock. */
static const char *report_waiting_for(const struct haspd *d, const struct lt_entry *e)
{
	const struct lt_resource *r = e->res;

	if (e->qnode.prev != &r->waiters)
		return "queue";
	if (!lt_resource_compatible(r, e->mode))
		return "holders";
	if (e->multi)
		return "keys";
	if (d->lt.fences_starved)
		return "fence";
	return r->os ? "outside_flock" : "holders";
}

static json_t *report_waiter(const struct haspd *d, const struct lt_entry *e)
{
	return report_entry(e, report_since(d, e, json_pack("{s:I,s:I,s:o,s:s}",
							    "request", (json_int_t)e->tag,
							    "waiting_ms", age_ms(d, e->since_us),
							    "timeout_ms", e->timeout_ms < 0 ? json_null() :
							    json_integer(e->timeout_ms),
							    "waiting_for", report_waiting_for(d, e))));
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

/* ---- deadlocks ---- */

/* The refused request of a deadlock, which has no entry: its session, its
 * sender and what it asked. */
static json_t *report_refused(const struct lt_wait *w, const struct lt_request *lr)
{
	const struct lt_owner *owner = w->owner;
	const struct lt_cred *who = lr->sender;
	json_t *o = json_pack("{s:I,s:i,s:I,s:I,s:s,s:I}",
			      "session", (json_int_t)owner->session,
			      "pid", (int)(who ? who->pid : owner->pid),
			      "uid", (json_int_t)(who ? who->uid : owner->uid),
			      "gid", (json_int_t)(who ? who->gid : owner->gid),
			      "mode", lt_mode_name(w->mode), "request", (json_int_t)lr->tag);

	if (o && report_set_text(o, "client", owner->label[0] ? owner->label : NULL) == 0 &&
	    report_set_text(o, "owner", lr->owner_name) == 0 &&
	    report_set_text(o, "message", lr->message) == 0)
		return o;
	return report_decref(o);
}

/* One wait of a cycle: the waiter as list shows it, with the resource it
 * waits on ("key" or "path") and the lease or request it waits for
 * ("waits_for"); o is consumed, and NULL returned, for want of memory. */
static json_t *report_wait(const struct haspd *d, const struct lt_wait *w,
			   const struct lt_request *lr)
{
	/* A held waiter is a lease whose upgrade waits: shown as list does. */
	json_t *o = !w->waiter ? report_refused(w, lr) :
		    w->waiter->held ? report_holder(d, w->waiter) : report_waiter(d, w->waiter);
	const struct lt_entry *b = w->blocker;

	if (!o || report_set_text(o, w->res->os ? "path" : "key", report_name(w->res)) < 0 ||
	    json_object_set_new(o, "waits_for", b->held ? report_holder(d, b) :
				report_waiter(d, b)) < 0)
		return report_decref(o);
	return o;
}

json_t *report_cycle(const struct haspd *d, const struct lt_cycle *c,
		     const struct lt_request *lr)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < c->len; i++)
		if (json_array_append_new(a, report_wait(d, &c->waits[i], lr)) < 0)
			a = report_decref(a);
	return a;
}

/* "session 4 (pid 413)" of an entry's owner (the pid of its sender), or
 * of the refused request's. */
static int report_session(char *buf, size_t n, const struct lt_owner *o, pid_t pid)
{
	return snprintf(buf, n, "session %" PRIu64 " (pid %d)", o->session, (int)pid);
}

void report_deadlock(const struct lt_cycle *c, const struct lt_request *lr, char *buf, size_t n)
{
	size_t w = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < c->len && w < n; i++) {
		const struct lt_wait *x = &c->waits[i];
		const struct lt_entry *b = x->blocker;
		pid_t pid = x->waiter ? lt_entry_sender(x->waiter).pid :
			    lr->sender ? lr->sender->pid : x->owner->pid;
		char who[64], whom[64];

		report_session(who, sizeof(who), x->owner, pid);
		report_session(whom, sizeof(whom), b->owner, lt_entry_sender(b).pid);
		w += (size_t)snprintf(buf + w, n - w, "%s%s waits for %s on '%.64s', %s %s%s%s",
				      i ? "; " : "", who, lt_mode_name(x->mode), report_name(x->res),
				      b->held ? "held by" : "queued behind", whom,
				      b->held ? "" : "'s request for ",
				      b->held ? "" : lt_mode_name(b->mode));
	}
	if (c->total > c->len && w < n)
		snprintf(buf + w, n - w, "; and %zu more sessions", c->total - c->len);
}

json_t *report_holders(const struct haspd *d, const struct lt_resource *r, size_t max)
{
	return report_queue(d, &r->holders, max, report_holder);
}

/* "checked out by alice (uid 1000) since 2026-11-30 10:21:09 UTC: fixing
 * fillets", as the people who share a checkout registry say it. */
static void report_checked_out(const struct lt_resource *r, const struct lt_entry *e,
			       char *buf, size_t n)
{
	const char *owner = lt_entry_owner_name(e), *message = lt_entry_message(e);
	time_t secs = (time_t)(lt_entry_life(e)->granted_wall_us / 1000000);
	char when[32] = "", who[300];
	struct tm tm;
	int w;

	if (gmtime_r(&secs, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	if (owner)
		snprintf(who, sizeof(who), "%.256s (uid %u)", owner, (unsigned)lt_entry_sender(e).uid);
	else
		snprintf(who, sizeof(who), "uid %u", (unsigned)lt_entry_sender(e).uid);
	w = snprintf(buf, n, "checked out by %s since %s%s%.1024s", who, when, message ? ": " : "",
		     message ? message : "");
	if (r->nholders > 1 && w > 0 && (size_t)w < n)
		snprintf(buf + w, n - (size_t)w, " (and %u more holders)", (unsigned)r->nholders - 1);
}

void report_conflict(const struct haspd *d, const struct lt_resource *r, char *buf, size_t n)
{
	const struct lt_entry *e;
	const char *owner;
	int w;

	if (d->lt.fences_starved) {
		snprintf(buf, n, "free, but haspd has no fence to give until it stores a new fence "
			 "ceiling (see its log)");
		return;
	}
	if (!r || r->nholders == 0) {
		if (!r || r->os)
			snprintf(buf, n, "locked with flock(2) by a process outside hasp");
		else
			snprintf(buf, n, "%u requests wait ahead", (unsigned)r->nwaiters);
		return;
	}
	e = container_of(r->holders.next, struct lt_entry, qnode);
	if (lt_entry_detached(e)) {
		report_checked_out(r, e, buf, n);
		return;
	}
	owner = lt_entry_owner_name(e);
	w = snprintf(buf, n, "held by pid %d (%s%.64s%ssession %" PRIu64 "), %s, for %.1f s",
		     (int)lt_entry_sender(e).pid, owner ? "owner " : "", owner ? owner : "", owner ? ", " : "",
		     e->owner->session, lt_mode_name(e->mode),
		     (double)(d->lt.now_us - e->since_us) / 1e6);
	if (r->nholders > 1 && w > 0 && (size_t)w < n)
		snprintf(buf + w, n - (size_t)w, ", and %u more", (unsigned)r->nholders - 1);
}

/* ---- list: one page ----
 *
 * Resources come in the byte order of their names as shown (a key, or a
 * file's path with U+FFFD for what is not UTF-8), after the cursor and with
 * the prefix asked for. Names can repeat (a key that reads like a path, two
 * files once at one path, two names that differ only in bytes shown as
 * U+FFFD): such a group is never split by a page's end, since the cursor is
 * a name, so ties go by kind (keys first), raw name, then file identity.
 *
 * Cost: one pass over every resource keeps the limit smallest candidates in
 * a bounded heap, O(n log limit), with no allocation per resource; a second
 * pass (O(n)) runs only when a page ends inside a group of equal names.
 * Paging through everything is therefore O(n^2 / limit) in all.
 *
 * Bytes: a page stops before the resource that would take it past
 * REPORT_PAGE_BYTES (the first always goes in), a first group of equal
 * names runs to REPORT_GROUP_BYTES (what is left of it is counted in
 * "omitted"), and one resource's holders and waiters are cut at
 * REPORT_RESOURCE_BYTES (counted in "holders_omitted", "waiters_omitted").
 * A reply is thus at most about 8 MiB, half of a session's output hard
 * limit (16 MiB, session.c): a list reply never ends the session that asked.
 */
#define REPORT_PAGE_BYTES ((size_t)4 << 20)
#define REPORT_GROUP_BYTES ((size_t)8 << 20)
#define REPORT_RESOURCE_BYTES ((size_t)4 << 20)

/* A resource with its name, as the page orders it. */
struct named {
	struct lt_resource *r;
	const char *name;
	size_t len;
};

static struct named report_named(struct lt_resource *r)
{
	const char *name = report_name(r);

	return (struct named){ r, name, r->os ? strlen(name) : r->key_len };
}

static int report_cmp_shown(const struct named *a, const struct named *b)
{
	return utf8_shown_cmp(a->name, a->len, b->name, b->len);
}

static int report_cmp_bytes(const char *a, size_t an, const char *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);

	return c ? c : an < bn ? -1 : an > bn;
}

/* The page's order: a total order over resources. */
static int report_order(const struct named *a, const struct named *b)
{
	int c = report_cmp_shown(a, b);

	if (c)
		return c;
	if (!a->r->os != !b->r->os)
		return a->r->os ? 1 : -1;
	c = report_cmp_bytes(a->name, a->len, b->name, b->len);
	return c ? c : report_cmp_bytes(a->r->key, a->r->key_len, b->r->key, b->r->key_len);
}

static int report_order_qsort(const void *a, const void *b)
{
	return report_order(a, b);
}

struct page {
	const struct proto_list_args *args;
	struct named *v;        /* a max-heap of candidates, then the page in order */
	size_t n, cap;
	size_t candidates;      /* every resource the request asks for */
	struct named last;      /* the second pass: the page's last name, */
	size_t same;            /* how many candidates are shown as it */
	bool gather;            /* and whether to keep them in v */
};

static bool report_wanted(const struct proto_list_args *a, const struct named *x)
{
	if (a->prefix && !utf8_shown_has_prefix(x->name, x->len, a->prefix, a->prefix_len))
		return false;
	return !a->after || utf8_shown_cmp(x->name, x->len, a->after, a->after_len) > 0;
}

static void report_swap(struct named *a, struct named *b)
{
	struct named t = *a;

	*a = *b;
	*b = t;
}

static void report_sift_up(struct named *v, size_t i)
{
	while (i > 0 && report_order(&v[(i - 1) / 2], &v[i]) < 0) {
		report_swap(&v[(i - 1) / 2], &v[i]);
		i = (i - 1) / 2;
	}
}

static void report_sift_down(struct named *v, size_t n, size_t i)
{
	for (;;) {
		size_t big = i, l = 2 * i + 1, r = l + 1;

		if (l < n && report_order(&v[l], &v[big]) > 0)
			big = l;
		if (r < n && report_order(&v[r], &v[big]) > 0)
			big = r;
		if (big == i)
			return;
		report_swap(&v[i], &v[big]);
		i = big;
	}
}

/* The first pass: the cap smallest candidates. */
static void report_collect(struct lt_resource *r, void *arg)
{
	struct page *p = arg;
	struct named x = report_named(r);

	if (!report_wanted(p->args, &x))
		return;
	p->candidates++;
	if (p->n < p->cap) {
		p->v[p->n++] = x;
		report_sift_up(p->v, p->n - 1);
	} else if (report_order(&x, &p->v[0]) < 0) {
		p->v[0] = x;
		report_sift_down(p->v, p->n, 0);
	}
}

/* The second pass: the candidates shown under the page's last name. */
static void report_count_same(struct lt_resource *r, void *arg)
{
	struct page *p = arg;
	struct named x = report_named(r);

	if (!report_wanted(p->args, &x) || report_cmp_shown(&x, &p->last) != 0)
		return;
	if (p->gather && p->same < p->cap)
		p->v[p->same] = x;
	p->same++;
}

/* The page's end must not split a group of equal names: it ends before
 * the group, or, when the group is the whole page, takes all of it (more
 * than limit resources, then). Returns 0 or -ENOMEM. */
static int report_whole_groups(const struct haspd *d, struct page *p)
{
	size_t first = p->n;
	struct named *all;

	if (p->candidates == p->n)
		return 0;
	p->last = p->v[p->n - 1];
	while (first > 0 && report_cmp_shown(&p->v[first - 1], &p->last) == 0)
		first--;
	p->same = 0;
	locktable_foreach(&d->lt, report_count_same, p);
	if (p->same == p->n - first)
		return 0;               /* the group ends in this page */
	if (first > 0) {
		p->n = first;           /* the next page begins with it */
		return 0;
	}
	all = malloc(p->same * sizeof(*all));
	if (!all)
		return -ENOMEM;
	free(p->v);
	p->v = all;
	p->cap = p->same;
	p->same = 0;
	p->gather = true;
	locktable_foreach(&d->lt, report_count_same, p);
	p->n = p->same;
	qsort(p->v, p->n, sizeof(*p->v), report_order_qsort);
	return 0;
}

/* Holders, then waiters in queue order, into their arrays while the
 * resource stays within REPORT_RESOURCE_BYTES; *bytes grows by what went
 * in. Returns 0 or -ENOMEM. */
static int report_fill(const struct haspd *d, const struct lt_resource *r, json_t *holders,
		       json_t *waiters, json_t *o, size_t *bytes)
{
	size_t shown[2] = { 0, 0 };
	const struct list *q[2] = { &r->holders, &r->waiters };
	json_t *a[2] = { holders, waiters };
	bool full = false;

	for (int k = 0; k < 2; k++) {
		const struct list *pos;

		list_foreach(pos, q[k]) {
			const struct lt_entry *e = container_of(pos, struct lt_entry, qnode);
			json_t *x = k ? report_waiter(d, e) : report_holder(d, e);
			size_t n = x ? proto_dump_size(x) + 1 : 0;

			if (!x)
				return -ENOMEM;
			full = full || *bytes + n > REPORT_RESOURCE_BYTES;
			if (full) {
				json_decref(x);
				break;
			}
			if (json_array_append_new(a[k], x) < 0)
				return -ENOMEM;
			*bytes += n;
			shown[k]++;
		}
	}
	if (shown[0] < r->nholders &&
	    json_object_set_new(o, "holders_omitted", json_integer((json_int_t)(r->nholders - shown[0]))) < 0)
		return -ENOMEM;
	if (shown[1] < r->nwaiters &&
	    json_object_set_new(o, "waiters_omitted", json_integer((json_int_t)(r->nwaiters - shown[1]))) < 0)
		return -ENOMEM;
	return 0;
}

/* What became of a file's path since the daemon opened it: NULL while the
 * path names the file still; "deleted" when the file has no name left (the
 * daemon's descriptor keeps it alive), "moved" when the path names nothing
 * or another file (renamed away, or replaced; a file that replaced it under
 * the lock, adopted, is the lock's still). One stat(2) while the path is
 * true, an fstat(2) more when it is not. */
static const char *report_path_state(const struct oslock *o)
{
	struct stat st;

	if (stat(o->path, &st) == 0 && oslock_is(o, &st))
		return NULL;
	if (fstat(o->fd, &st) == 0 && st.st_nlink == 0)
		return "deleted";
	return "moved";
}

/* One resource of a list, and its length as JSON in *size; NULL for want
 * of memory: a list that leaves one out without saying so would misreport. */
static json_t *report_resource(const struct haspd *d, const struct named *x, size_t *size)
{
	const struct lt_resource *r = x->r;
	const char *state = r->os ? report_path_state(r->os) : NULL;
	json_t *holders = json_array(), *waiters = json_array();
	json_t *o = json_pack("{s:o,s:s*,s:o,s:O,s:O}", r->os ? "path" : "key",
			      proto_string_shown(x->name, x->len), "path_state", state,
			      "mode", r->nholders ? json_string(lt_mode_name(r->held_mode)) : json_null(),
			      "holders", holders, "waiters", waiters);
	size_t bytes;

	if (o && r->limit && json_object_set_new(o, "limit", json_integer(r->limit)) < 0)
		o = report_decref(o);
	bytes = o ? proto_dump_size(o) : 0;
	if (o && report_fill(d, r, holders, waiters, o, &bytes) == 0) {
		json_decref(holders);
		json_decref(waiters);
		*size = bytes + 32; /* and the "..._omitted" members, if any */
		return o;
	}
	json_decref(holders);
	json_decref(waiters);
	json_decref(o);
	return NULL;
}

/* The resources of the page, in order, within its bytes; *ret_more is the
 * number of candidates left for later pages, *ret_omitted those of a too
 * large first group that no page will show. */
static json_t *report_page(const struct haspd *d, const struct page *p, size_t *ret_shown,
			   size_t *ret_omitted)
{
	json_t *a = json_array();
	size_t bytes = 0, group = 0, i;

	for (i = 0; a && i < p->n; i++) {
		bool starts = i == 0 || report_cmp_shown(&p->v[i], &p->v[i - 1]) != 0;
		size_t size;
		json_t *o = report_resource(d, &p->v[i], &size);

		if (!o) {
			json_decref(a);
			return NULL;
		}
		if (starts)
			group = i;
		if (i > 0 && bytes + size > (group == 0 ? REPORT_GROUP_BYTES : REPORT_PAGE_BYTES)) {
			json_decref(o);
			break;
		}
		if (json_array_append_new(a, o) < 0) {
			json_decref(a);
			return NULL;
		}
		bytes += size + 1;
	}
	*ret_omitted = 0;
	if (i < p->n && group > 0 && group < i) {
		/* Not past the bytes inside a later group: the next page has it. */
		while (json_array_size(a) > group)
			json_array_remove(a, json_array_size(a) - 1);
		i = group;
	} else if (i < p->n && group == 0) {
		/* The first group alone is too large: the rest of it is left out. */
		while (i + *ret_omitted < p->n && report_cmp_shown(&p->v[i + *ret_omitted], &p->v[0]) == 0)
			++*ret_omitted;
	}
	*ret_shown = i;
	return a;
}

json_t *report_list(const struct haspd *d, const struct proto_list_args *args)
{
	struct page p = { .args = args, .cap = (size_t)args->limit };
	size_t shown = 0, omitted = 0;
	json_t *a = NULL, *o = NULL;

	p.v = malloc(p.cap * sizeof(*p.v));
	if (!p.v)
		return NULL;
	locktable_foreach(&d->lt, report_collect, &p);
	/* Sorting the heap: in place, from its largest down. */
	for (size_t n = p.n; n > 1; n--) {
		report_swap(&p.v[0], &p.v[n - 1]);
		report_sift_down(p.v, n - 1, 0);
	}
	if (report_whole_groups(d, &p) == 0)
		a = report_page(d, &p, &shown, &omitted);
	if (a)
		o = json_pack("{s:o}", "resources", a);
	if (o && shown + omitted < p.candidates) {
		const struct named *last = &p.v[shown - 1];

		if (json_object_set_new(o, "next", proto_string_shown(last->name, last->len)) < 0)
			o = report_decref(o);
	}
	if (o && omitted && json_object_set_new(o, "omitted", json_integer((json_int_t)omitted)) < 0)
		o = report_decref(o);
	free(p.v);
	return o;
}

/* Bytes the daemon has allocated and not freed: what a leak would grow. */
static json_int_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return (json_int_t)(mi.uordblks + mi.hblkhd);
}

/* ---- stats: histograms, the busiest resources, users ---- */

static json_t *report_hist(const struct hist *h)
{
	json_t *b = json_array();

	for (size_t i = 0; b && i < HIST_BUCKETS; i++)
		if (json_array_append_new(b, json_integer((json_int_t)h->buckets[i])) < 0)
			b = report_decref(b);
	return json_pack("{s:o,s:I,s:I}", "buckets", b, "count", (json_int_t)h->count,
			 "sum_us", (json_int_t)h->sum_us);
}

static json_t *report_histograms(const struct haspd *d)
{
	json_t *bounds = json_array();

	for (size_t i = 0; bounds && i < HIST_BOUNDS; i++)
		if (json_array_append_new(bounds, json_integer((json_int_t)hist_bounds_us[i])) < 0)
			bounds = report_decref(bounds);
	return json_pack("{s:o,s:o,s:o}", "bounds_us", bounds, "wait", report_hist(&d->wait_hist),
			 "hold", report_hist(&d->hold_hist));
}

static json_t *report_busiest(const struct haspd *d)
{
	const struct busiest_key *top[BUSIEST_SHOWN];
	size_t n = busiest_top(&d->busiest, top, BUSIEST_SHOWN);
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++) {
		const struct busiest_key *k = top[i];
		json_t *o = json_pack("{s:o,s:I,s:o,s:o}", k->file ? "path" : "key",
				      proto_string_shown(k->name, k->len),
				      "grants", (json_int_t)k->grants, "wait", report_hist(&k->wait),
				      "hold", report_hist(&k->hold));

		if (json_array_append_new(a, o) < 0)
			a = report_decref(a);
	}
	return a;
}

struct user_counts {
	json_int_t uid, sessions, locks, files, checkouts;
};

struct user_tally {
	struct user_counts *v;
	size_t n;
};

static void report_count_user(const struct user *usr, void *arg)
{
	struct user_tally *t = arg;

	t->v[t->n++] = (struct user_counts){
		.uid = usr->uid, .sessions = (json_int_t)usr->sessions,
		.locks = (json_int_t)usr->group.entries, .files = (json_int_t)usr->files,
		.checkouts = (json_int_t)usr->checkouts.nheld,
	};
}

static int report_cmp_uid(const void *a, const void *b)
{
	json_int_t x = ((const struct user_counts *)a)->uid, y = ((const struct user_counts *)b)->uid;

	return x < y ? -1 : x > y;
}

/* Every uid with a session, lock, file or checkout, by uid. */
static json_t *report_users(const struct haspd *d)
{
	struct user_tally t = { .v = malloc((d->users.table.count + 1) * sizeof(*t.v)) };
	json_t *a = t.v ? json_array() : NULL;

	if (!a) {
		free(t.v);
		return NULL;
	}
	users_foreach(&d->users, report_count_user, &t);
	qsort(t.v, t.n, sizeof(*t.v), report_cmp_uid);
	for (size_t i = 0; a && i < t.n; i++) {
		const struct user_counts *c = &t.v[i];

		if (json_array_append_new(a, json_pack("{s:I,s:I,s:I,s:I,s:I}", "uid", c->uid,
						       "sessions", c->sessions, "locks", c->locks,
						       "files", c->files,
						       "checkouts", c->checkouts)) < 0)
			a = report_decref(a);
	}
	free(t.v);
	return a;
}

/* The oldest waiter's since_us: each queue's head is its oldest. */
static void report_oldest(struct lt_resource *r, void *arg)
{
	uint64_t *oldest = arg;
	const struct lt_entry *head;

	if (!r->nwaiters)
		return;
	head = container_of(r->waiters.next, struct lt_entry, qnode);
	if (head->since_us < *oldest)
		*oldest = head->since_us;
}

static json_int_t report_oldest_waiter_ms(const struct haspd *d)
{
	uint64_t oldest = UINT64_MAX;

	if (d->lt.stats.waiters)
		locktable_foreach(&d->lt, report_oldest, &oldest);
	return oldest == UINT64_MAX ? 0 : age_ms(d, oldest);
}

json_t *report_stats(const struct haspd *d)
{
	const struct lt_stats *st = &d->lt.stats;
	json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
			      "sessions", (json_int_t)d->nsessions,
			      "upgrading", (json_int_t)st->upgrading,
			      "resources", (json_int_t)st->resources,
			      "leases", (json_int_t)st->leases,
			      "checkouts", (json_int_t)st->detached,
			      "waiters", (json_int_t)st->waiters,
			      "uptime_ms", (json_int_t)((d->lt.now_us - d->started_us) / 1000),
			      "heap_bytes", heap_in_use());
	json_t *more = json_pack("{s:I,s:I}", "oldest_waiter_ms", report_oldest_waiter_ms(d),
				 "watchers", (json_int_t)d->nwatchers);
	json_t *c = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
			      "s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
			      "sessions", (json_int_t)d->sessions_total,
			      "acquires", (json_int_t)st->acquires,
			      "granted_at_once", (json_int_t)st->granted_at_once,
			      "granted_after_wait", (json_int_t)st->granted_after_wait,
			      "busy", (json_int_t)st->busy,
			      "timeouts", (json_int_t)st->timeouts,
			      "cancels", (json_int_t)st->cancels,
			      "abandoned", (json_int_t)st->abandoned,
			      "releases", (json_int_t)st->releases,
			      "disconnects", (json_int_t)st->disconnects,
			      "handed_over", (json_int_t)st->handed_over,
			      "already_held", (json_int_t)st->already_held,
			      "revokes", (json_int_t)st->revokes,
			      "expired", (json_int_t)st->expired,
			      "restored", (json_int_t)st->restored,
			      "deadlocks", (json_int_t)st->deadlocks,
			      "deadlock_searches", (json_int_t)st->deadlock_searches,
			      "deadlock_searches_cut", (json_int_t)st->deadlock_searches_cut,
			      "converts", (json_int_t)st->converts,
			      "downgrades", (json_int_t)st->downgrades,
			      "upgrades_at_once", (json_int_t)st->upgrades_at_once,
			      "upgrades_after_wait", (json_int_t)st->upgrades_after_wait,
			      "protocol_errors", (json_int_t)d->protocol_errors);
	json_t *seen = json_pack("{s:I,s:I,s:I,s:I}",
				 "watch_events", (json_int_t)d->watch_events,
				 "watch_events_lost", (json_int_t)d->watch_events_lost,
				 "audit_lines", (json_int_t)d->audit.lines,
				 "audit_lines_dropped", (json_int_t)d->audit.dropped);

	if (!o || !c || json_object_update(o, more) < 0 || json_object_update(c, seen) < 0) {
		json_decref(o);
		json_decref(c);
		o = c = NULL;
	}
	json_decref(more);
	json_decref(seen);
	return json_pack("{s:{s:o,s:o,s:o,s:o,s:o}}", "stats", "gauges", o, "counters", c,
			 "histograms", report_histograms(d), "keys", report_busiest(d),
			 "users", report_users(d));
}
