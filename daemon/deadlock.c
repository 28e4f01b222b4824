#include "deadlock.h"

#include "list.h"

/* One search: breadth-first over owners, queued through lt_owner.dl_next. */
struct search {
	struct locktable *lt;
	struct lt_owner *start;
	struct lt_owner *head, *tail;
	size_t steps;
	bool cut;
	const struct lt_entry *from, *closing; /* the wait that came back to start */
};

/* Whether the search may take one more step. */
static bool step(struct search *s)
{
	if (++s->steps > s->lt->dl_steps_max)
		s->cut = true;
	return !s->cut;
}

/* from (NULL: the new request) waits for blocker: true when that closes
 * the cycle, else its owner is queued if it is new to this search. */
static bool reach(struct search *s, const struct lt_entry *from, const struct lt_entry *blocker)
{
	struct lt_owner *o = blocker->owner;

	if (o == s->start) {
		s->from = from;
		s->closing = blocker;
		return true;
	}
	if (o->dl_search == s->lt->dl_searches)
		return false;
	o->dl_search = s->lt->dl_searches;
	o->dl_from = from;
	o->dl_via = blocker;
	o->dl_next = NULL;
	if (s->tail)
		s->tail->dl_next = o;
	else
		s->head = o;
	s->tail = o;
	return false;
}

/* A request on r waits for r's pending upgrade, which goes ahead of it. */
static bool upgrader_edge(struct search *s, const struct lt_entry *from,
			  const struct lt_resource *r)
{
	return step(s) && reach(s, from, lt_resource_upgrade(r)->lease);
}

/* The edges of a request (from; NULL: the new one) in mode on r, queued
 * just behind the node ahead (&r->waiters: at the head): true when one
 * closes the cycle. */
static bool edges(struct search *s, const struct lt_entry *from, const struct lt_resource *r,
		  enum lt_mode mode, const struct list *ahead)
{
	bool holders = mode == LT_EXCLUSIVE || r->held_mode == LT_EXCLUSIVE;
	bool exclusive_ahead = false;
	const struct list *p;

	if (r->limit > 1)
		return false; /* a semaphore's waiter waits for any one place */
	for (p = ahead; p != &r->waiters; p = p->prev) {
		const struct lt_entry *w = container_of(p, struct lt_entry, qnode);

		if (!step(s))
			return false;
		if (mode == LT_EXCLUSIVE || w->mode == LT_EXCLUSIVE) {
			if (reach(s, from, w))
				return true;
			/* An exclusive one just ahead waits for every holder
			 * itself, and any exclusive one ahead for those ahead
			 * of it; a shared one (a multi-key request's part that
			 * waits for another key, or one behind an exclusive
			 * holder) waits for neither the shared requests ahead
			 * of it nor shared holders, so an exclusive request
			 * goes on past it. */
			if (w->mode == LT_EXCLUSIVE) {
				exclusive_ahead = true;
				holders = holders && p != ahead;
				break;
			}
		}
	}
	if (!holders && !exclusive_ahead && r->upgrading)
		return upgrader_edge(s, from, r);
	if (!holders || r->nholders == 0)
		return false;
	list_foreach(p, &r->holders) {
		if (!step(s))
			return false;
		if (reach(s, from, container_of(p, struct lt_entry, qnode)))
			return true;
	}
	return false;
}

/* The edges of the upgrade of lease (from: the lease, NULL: the new one):
 * every other holder of its resource. */
static bool upgrade_edges(struct search *s, const struct lt_entry *from,
			  const struct lt_entry *lease)
{
	const struct list *p;

	list_foreach(p, &lease->res->holders) {
		const struct lt_entry *h = container_of(p, struct lt_entry, qnode);

		if (h == lease)
			continue;
		if (!step(s))
			return false;
		if (reach(s, from, h))
			return true;
	}
	return false;
}

/* The edges of every upgrade o waits with. */
static bool owner_upgrade_edges(struct search *s, const struct lt_owner *o)
{
	const struct list *p;

	list_foreach(p, &o->upgrading) {
		const struct lt_upgrade *up = container_of(p, struct lt_upgrade, onode);

		if (upgrade_edges(s, up->lease, up->lease))
			return true;
		if (s->cut)
			return false;
	}
	return false;
}

/* The edges of every request o waits with. */
static bool owner_edges(struct search *s, const struct lt_owner *o)
{
	const struct list *p;

	if (owner_upgrade_edges(s, o))
		return true;
	if (s->cut)
		return false;

	list_foreach(p, &o->waiting) {
		const struct lt_entry *w = container_of(p, struct lt_entry, onode);

		if (!step(s)) /* a wait with no edges counts too */
			return false;
		if (edges(s, w, w->res, w->mode, w->qnode.prev))
			return true;
		if (s->cut)
			return false;
	}
	return false;
}

/* The new request e's part that waits for blocker (one on its resource). */
static const struct lt_entry *deadlock_part(const struct lt_entry *e,
					    const struct lt_entry *blocker)
{
	if (!e->multi)
		return e;
	for (size_t i = 0; i < e->multi->n; i++)
		if (e->multi->parts[i]->res == blocker->res)
			return e->multi->parts[i];
	return e;
}

/* The i-th wait: waiter, or (NULL) the new request e, waits for blocker.
 * A held waiter is a lease whose upgrade waits: for exclusive. */
static void cycle_set(struct lt_cycle *c, size_t i, const struct lt_entry *e,
		      const struct lt_entry *waiter, const struct lt_entry *blocker)
{
	const struct lt_entry *w = waiter ? waiter : deadlock_part(e, blocker);
	enum lt_mode mode = w->held ? LT_EXCLUSIVE : (enum lt_mode)w->mode;

	if (i < LT_CYCLE_MAX)
		c->waits[i] = (struct lt_wait){ w->owner, waiter, w->res, mode, blocker };
}

/* lt->cycle from the search's marks, from e's wait round to its owner. */
static void cycle_record(const struct search *s, const struct lt_entry *e)
{
	struct lt_cycle *c = &s->lt->cycle;
	const struct lt_entry *w;
	size_t n = 1, i;

	for (w = s->from; w; w = w->owner->dl_from)
		n++;
	c->total = n;
	c->len = n < LT_CYCLE_MAX ? n : LT_CYCLE_MAX;
	i = n - 1;
	cycle_set(c, i, e, s->from, s->closing);
	for (w = s->from; w; w = w->owner->dl_from)
		cycle_set(c, --i, e, w->owner->dl_from, w->owner->dl_via);
}

/* The new request's own edges: a multi-key request's from every part. */
static bool deadlock_start_edges(struct search *s, const struct lt_entry *e)
{
	if (!e->multi)
		return edges(s, NULL, e->res, e->mode, e->res->waiters.prev);
	for (size_t i = 0; i < e->multi->n && !s->cut; i++) {
		const struct lt_entry *p = e->multi->parts[i];

		if (edges(s, NULL, p->res, p->mode, p->res->waiters.prev))
			return true;
	}
	return false;
}

/* The search from e's new wait: a request's, or (upgrade) a lease's; or,
 * with via, from e's queued request's new wait for the lease via. */
static bool search_from(struct locktable *lt, const struct lt_entry *e, bool upgrade,
			const struct lt_entry *via)
{
	struct search s = { .lt = lt, .start = e->owner };
	bool found;

	lt->stats.deadlock_searches++;
	lt->dl_searches++;
	e->owner->dl_search = lt->dl_searches;
	if (via)
		found = reach(&s, NULL, via);
	else
		found = upgrade ? upgrade_edges(&s, NULL, e) : deadlock_start_edges(&s, e);
	while (!found && !s.cut && s.head) {
		const struct lt_owner *o = s.head;

		s.head = o->dl_next;
		if (!s.head)
			s.tail = NULL;
		found = owner_edges(&s, o);
	}
	if (s.cut)
		lt->stats.deadlock_searches_cut++;
	if (!found)
		return false;
	lt->stats.deadlocks++;
	cycle_record(&s, e);
	return true;
}

bool deadlock_find(struct locktable *lt, const struct lt_entry *e)
{
	return search_from(lt, e, false, NULL);
}

/* The cycle of two upgraders of one resource: e's upgrade waits for the
 * pending one's lease, whose upgrade waits for e. */
static void two_upgraders(struct locktable *lt, const struct lt_entry *e)
{
	const struct lt_entry *other = lt_resource_upgrade(e->res)->lease;
	struct lt_cycle *c = &lt->cycle;

	c->total = c->len = 2;
	cycle_set(c, 0, e, NULL, other);
	cycle_set(c, 1, e, other, e);
	lt->stats.deadlocks++;
}

bool deadlock_find_upgrade(struct locktable *lt, const struct lt_entry *e)
{
	if (search_from(lt, e, true, NULL))
		return true;
	if (!e->res->upgrading)
		return false;
	two_upgraders(lt, e); /* the search was cut before it found it */
	return true;
}

bool deadlock_find_passed(struct locktable *lt, const struct lt_entry *e)
{
	const struct list *p;

	list_foreach(p, &e->res->waiters) {
		const struct lt_entry *w = container_of(p, struct lt_entry, qnode);

		if (w->mode == LT_EXCLUSIVE)
			break; /* it waits for e already, and those behind it for it */
		if (w->owner != e->owner && search_from(lt, w, false, e)) {
			lt->cycle.waits[0].waiter = w; /* queued: not the refused request */
			return true;
		}
	}
	return false;
}
