#include "locktable.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "deadlock.h"

const char *lt_mode_name(enum lt_mode m)
{
	return m == LT_SHARED ? "shared" : "exclusive";
}

static uint64_t pair_hash(const struct lt_owner *o, const struct lt_resource *r)
{
	return hash_u64((uint64_t)(uintptr_t)o * 31 + (uint64_t)(uintptr_t)r);
}

static uint64_t resource_hash(const struct hnode *n)
{
	const struct lt_resource *r = container_of(n, struct lt_resource, node);

	return hash_bytes(r->key, r->key_len);
}

static uint64_t lease_hash(const struct hnode *n)
{
	return hash_u64(container_of(n, struct lt_entry, by_id)->id);
}

static uint64_t token_hash(const struct hnode *n)
{
	return hash_bytes(container_of(n, struct lt_life, by_token)->token, LT_TOKEN_LEN);
}

static uint64_t pair_node_hash(const struct hnode *n)
{
	const struct lt_entry *e = container_of(n, struct lt_entry, by_pair);

	return pair_hash(e->owner, e->res);
}

int locktable_init(struct locktable *lt, const struct lt_callbacks *cb)
{
	memset(lt, 0, sizeof(*lt));
	if (cb)
		lt->cb = *cb;
	lt->fence_ceiling = UINT64_MAX;
	lt->dl_steps_max = LT_DEADLOCK_STEPS;
	list_init(&lt->gone);
	lt->granted_tail = &lt->granted;
	lt->unlock_tail = &lt->unlock;
	lt->dead_tail = &lt->dead;
	heap_init(&lt->deadlines);
	heap_init(&lt->expiries);
	heap_init(&lt->upgrade_deadlines);
	lt->upgrades_tail = &lt->upgrades;
	if (htable_init(&lt->resources, 64, resource_hash) < 0 ||
	    htable_init(&lt->leases, 64, lease_hash) < 0 ||
	    htable_init(&lt->pairs, 64, pair_node_hash) < 0 ||
	    htable_init(&lt->tokens, 16, token_hash) < 0) {
		htable_done(&lt->resources);
		htable_done(&lt->leases);
		htable_done(&lt->pairs);
		htable_done(&lt->tokens);
		return -1;
	}
	return 0;
}

static void multi_put(struct lt_multi *m);

/* An entry freed with the table (and its multi-key request with its last
 * part). */
static void entry_done(struct lt_entry *e)
{
	if (e->multi)
		multi_put(e->multi);
	free(e);
}

static void free_resource_entries(struct hnode *n)
{
	struct lt_resource *r = container_of(n, struct lt_resource, node);
	struct list *pos, *tmp;

	free((void *)lt_resource_upgrade(r));
	list_foreach_safe(pos, tmp, &r->holders)
		entry_done(container_of(pos, struct lt_entry, qnode));
	list_foreach_safe(pos, tmp, &r->waiters)
		entry_done(container_of(pos, struct lt_entry, qnode));
}

void locktable_done(struct locktable *lt)
{
	struct lt_change c;

	while (locktable_next_change(lt, &c))
		;
	/* Entries first: a resource can only be freed once nothing points at
	 * its chain, so collect the resources after. */
	for (size_t i = 0; i <= lt->resources.mask; i++)
		for (struct hnode *n = lt->resources.buckets[i]; n; n = n->next)
			free_resource_entries(n);
	for (size_t i = 0; i <= lt->resources.mask; i++) {
		struct hnode *n = lt->resources.buckets[i];

		while (n) {
			struct hnode *next = n->next;

			free(container_of(n, struct lt_resource, node));
			n = next;
		}
	}
	htable_done(&lt->resources);
	htable_done(&lt->leases);
	htable_done(&lt->pairs);
	htable_done(&lt->tokens);
	heap_done(&lt->deadlines);
	heap_done(&lt->expiries);
	heap_done(&lt->upgrade_deadlines);
	spares_done(&lt->spares);
}

void locktable_set_now(struct locktable *lt, uint64_t mono_us, uint64_t wall_us)
{
	lt->now_us = mono_us;
	lt->wall_us = wall_us;
}

void locktable_set_fence_floor(struct locktable *lt, uint64_t floor)
{
	if (floor > lt->last_fence)
		lt->last_fence = floor;
}

/* The next fence: above the last, and not below the wall clock. */
static uint64_t upcoming_fence(const struct locktable *lt)
{
	uint64_t f = lt->last_fence + 1;

	return lt->wall_us > f ? lt->wall_us : f;
}

void locktable_set_fence_ceiling(struct locktable *lt, uint64_t ceiling)
{
	if (ceiling > upcoming_fence(lt))
		lt->fences_starved = false;
	lt->fence_ceiling = ceiling;
}

uint64_t locktable_fences_left(const struct locktable *lt)
{
	uint64_t f = upcoming_fence(lt);

	return f < lt->fence_ceiling ? lt->fence_ceiling - f : 0;
}

void lt_owner_init(struct lt_owner *o, uint64_t session, pid_t pid, uid_t uid, gid_t gid)
{
	memset(o, 0, sizeof(*o));
	list_init(&o->held);
	list_init(&o->waiting);
	list_init(&o->upgrading);
	o->session = session;
	o->pid = pid;
	o->uid = uid;
	o->gid = gid;
}

/* ---- lookups ---- */

struct lt_resource *locktable_find(const struct locktable *lt, const char *key, size_t key_len)
{
	uint64_t h = hash_bytes(key, key_len);

	for (struct hnode *n = htable_chain(&lt->resources, h); n; n = n->next) {
		struct lt_resource *r = container_of(n, struct lt_resource, node);

		if (r->key_len == key_len && memcmp(r->key, key, key_len) == 0)
			return r;
	}
	return NULL;
}

struct lt_entry *locktable_lease(const struct locktable *lt, uint64_t lease_id)
{
	uint64_t h = hash_u64(lease_id);

	for (struct hnode *n = htable_chain(&lt->leases, h); n; n = n->next) {
		struct lt_entry *e = container_of(n, struct lt_entry, by_id);

		if (e->id == lease_id)
			return e->multi ? e->multi->parts[0] : e;
	}
	return NULL;
}

static bool owner_has(const struct locktable *lt, const struct lt_owner *o,
		      const struct lt_resource *r)
{
	uint64_t h = pair_hash(o, r);

	for (struct hnode *n = htable_chain(&lt->pairs, h); n; n = n->next) {
		struct lt_entry *e = container_of(n, struct lt_entry, by_pair);

		if (e->owner == o && e->res == r)
			return true;
	}
	return false;
}

void locktable_foreach(const struct locktable *lt,
		       void (*fn)(struct lt_resource *r, void *arg), void *arg)
{
	for (size_t i = 0; i <= lt->resources.mask; i++)
		for (struct hnode *n = lt->resources.buckets[i]; n; n = n->next)
			fn(container_of(n, struct lt_resource, node), arg);
}

/* ---- resources ---- */

/* An os resource's link in the unlock queue: after its key, aligned. */
static size_t unlock_link_offset(size_t key_len)
{
	size_t off = sizeof(struct lt_resource) + key_len + 1;

	return (off + sizeof(void *) - 1) & ~(sizeof(void *) - 1);
}

static size_t resource_size(const void *os, size_t key_len)
{
	/* An os resource has its link in the unlock queue after the key. */
	return os ? unlock_link_offset(key_len) + sizeof(struct lt_resource *) :
		    sizeof(struct lt_resource) + key_len + 1;
}

static void resource_free(struct locktable *lt, struct lt_resource *r)
{
	if (r)
		spares_free(&lt->spares, r, resource_size(r->os, r->key_len));
}

static struct lt_resource **unlock_link(struct lt_resource *r)
{
	return (struct lt_resource **)((char *)r + unlock_link_offset(r->key_len));
}

static struct lt_resource *resource_get(struct locktable *lt, const char *key, size_t key_len,
					void *os)
{
	struct lt_resource *r = locktable_find(lt, key, key_len);

	if (r)
		return r;
	r = spares_alloc(&lt->spares, resource_size(os, key_len));
	if (!r)
		return NULL;
	list_init(&r->holders);
	list_init(&r->waiters);
	r->nholders = r->nwaiters = 0;
	r->held_mode = LT_EXCLUSIVE;
	r->change = 0;
	r->limit = 0;
	r->upgrading = false;
	r->os = os;
	r->key_len = key_len;
	memcpy(r->key, key, key_len);
	r->key[key_len] = '\0';
	htable_insert(&lt->resources, &r->node);
	lt->stats.resources++;
	return r;
}

/* ---- change records ---- */

static void report_granted(struct locktable *lt, struct lt_entry *e)
{
	e->change = LT_CHANGE_GRANTED;
	e->granted_next = NULL;
	*lt->granted_tail = e;
	lt->granted_tail = &e->granted_next;
}

/* An entry out of every queue, kept for its record. */
static void report_gone(struct locktable *lt, struct lt_entry *e, enum lt_change_kind kind)
{
	e->change = (uint8_t)kind;
	list_add_tail(&lt->gone, &e->qnode);
}

/* An os resource has no holders: to unlock, unless it is gone first. */
static void report_unlocked(struct locktable *lt, struct lt_resource *r)
{
	if (r->change)
		return;
	r->change = LT_CHANGE_UNLOCKED;
	*unlock_link(r) = NULL;
	*lt->unlock_tail = r;
	lt->unlock_tail = unlock_link(r);
}

/* A resource out of the table (its hash link is free), kept for its record. */
static void report_freed(struct locktable *lt, struct lt_resource *r)
{
	r->change = LT_CHANGE_FREED;
	r->node.next = NULL;
	*lt->dead_tail = r;
	lt->dead_tail = (struct lt_resource **)&r->node.next;
}

static void entry_free_memory(struct locktable *lt, struct lt_entry *e);

static void upgrade_free(struct locktable *lt, struct lt_upgrade *up)
{
	if (up)
		spares_free(&lt->spares, up, sizeof(*up));
}

/* A gone multi-key record's parts after its first, kept with it until it
 * is drained: whoever handles the record may name every key. */
static void multi_free_rest(struct locktable *lt, struct lt_entry *first)
{
	if (first && first->multi)
		for (size_t i = first->multi->n - 1; i > 0; i--)
			entry_free_memory(lt, first->multi->parts[i]);
}

static void free_drained(struct locktable *lt)
{
	multi_free_rest(lt, lt->drained_entry);
	entry_free_memory(lt, lt->drained_entry);
	resource_free(lt, lt->drained_res);
	upgrade_free(lt, lt->drained_upgrade);
	lt->drained_entry = NULL;
	lt->drained_res = NULL;
	lt->drained_upgrade = NULL;
}

static bool next_entry_change(struct locktable *lt, struct lt_change *ret)
{
	struct lt_entry *e;

	if (!list_empty(&lt->gone)) {
		e = container_of(lt->gone.next, struct lt_entry, qnode);
		list_del(&e->qnode);
		lt->drained_entry = e; /* gone from the table: freed at the next */
	} else if ((e = lt->granted)) {
		lt->granted = e->granted_next;
		if (!lt->granted)
			lt->granted_tail = &lt->granted;
	} else {
		return false;
	}
	*ret = (struct lt_change){ (enum lt_change_kind)e->change, e, e->res, NULL };
	e->change = 0;
	return true;
}

static bool next_resource_change(struct locktable *lt, struct lt_change *ret)
{
	struct lt_resource *r;

	while ((r = lt->unlock)) {
		lt->unlock = *unlock_link(r);
		if (!lt->unlock)
			lt->unlock_tail = &lt->unlock;
		/* Gone since (its record follows), or held again within the
		 * call (then it may be reported again later). */
		if (r->change != LT_CHANGE_UNLOCKED)
			continue;
		if (r->nholders > 0) {
			r->change = 0;
			continue;
		}
		r->change = 0;
		*ret = (struct lt_change){ LT_CHANGE_UNLOCKED, NULL, r, NULL };
		return true;
	}
	if (!(r = lt->dead))
		return false;
	lt->dead = (struct lt_resource *)r->node.next;
	if (!lt->dead)
		lt->dead_tail = &lt->dead;
	lt->drained_res = r;
	*ret = (struct lt_change){ LT_CHANGE_FREED, NULL, r, NULL };
	return true;
}

/* An upgrade ended (granted, expired, or its lease gone): its record, and
 * its memory freed at the next. */
static bool next_upgrade_change(struct locktable *lt, struct lt_change *ret)
{
	struct lt_upgrade *up = lt->upgrades;

	if (!up)
		return false;
	lt->upgrades = up->next;
	if (!lt->upgrades)
		lt->upgrades_tail = &lt->upgrades;
	lt->drained_upgrade = up;
	*ret = (struct lt_change){ (enum lt_change_kind)up->change, NULL, up->res, up };
	return true;
}

bool locktable_next_change(struct locktable *lt, struct lt_change *ret)
{
	free_drained(lt);
	return next_entry_change(lt, ret) || next_upgrade_change(lt, ret) ||
	       next_resource_change(lt, ret);
}

/* Whether every change of the last call was drained, as each call needs. */
static bool drained(const struct locktable *lt)
{
	return list_empty(&lt->gone) && !lt->granted && !lt->unlock && !lt->dead &&
	       !lt->upgrades;
}

/* An unused resource leaves the table at once; its memory goes once its
 * record is drained (a record of one of its entries may still name it). */
static void resource_put_if_unused(struct locktable *lt, struct lt_resource *r)
{
	if (r->nholders || r->nwaiters)
		return;
	htable_remove(&lt->resources, &r->node);
	lt->stats.resources--;
	report_freed(lt, r);
}

_Static_assert(LT_LIMIT_MAX <= UINT16_MAX, "a limit fits in lt_resource.limit");
_Static_assert(LT_KEY_MAX <= UINT16_MAX, "a key's length fits in lt_resource.key_len");

/* The one rule: a semaphore admits up to its limit (its requests are all
 * exclusive), any other resource one exclusive holder or shared ones. */
static bool compatible(const struct lt_resource *r, enum lt_mode mode)
{
	if (r->upgrading)
		return false; /* it goes ahead of every request */
	if (r->limit)
		return r->nholders < r->limit;
	return r->nholders == 0 || (r->held_mode == LT_SHARED && mode == LT_SHARED);
}

bool lt_resource_compatible(const struct lt_resource *r, enum lt_mode mode)
{
	return compatible(r, mode);
}

bool locktable_would_wait(const struct locktable *lt, const char *key, size_t key_len,
			  enum lt_mode mode, uint32_t limit)
{
	const struct lt_resource *r = locktable_find(lt, key, key_len);

	if (!r || (r->limit != limit && (r->nholders || r->nwaiters)))
		return false;
	return r->nwaiters > 0 || !compatible(r, mode);
}

/* Whether e, a request on r, can be granted now: compatible with the
 * holders, a fence to give, and admitted by the os attachment if any
 * (asked last: it may take a flock). */
static enum lt_admit grantable(struct locktable *lt, struct lt_resource *r,
			       const struct lt_entry *e)
{
	if (!compatible(r, e->mode))
		return LT_ADMIT_NO;
	if (upcoming_fence(lt) >= lt->fence_ceiling) {
		lt->fences_starved = true;
		return LT_ADMIT_NO;
	}
	return !r->os || !lt->cb.admit ? LT_ADMIT_HOLD : lt->cb.admit(r, e, lt->cb.arg);
}

/* ---- entries ---- */

static size_t opt_len(const char *s)
{
	return s ? strlen(s) + 1 : 0;
}

/* Copies s (if any) to *p and moves *p past it; whether there was one. */
static bool store_string(char **p, const char *s)
{
	size_t n;

	if (!s)
		return false;
	n = strlen(s) + 1;
	memcpy(*p, s, n);
	*p += n;
	return true;
}

/* An entry's size: what entry_new() allocated for it. */
static size_t entry_size(const struct lt_entry *e)
{
	return sizeof(*e) + (e->has_life ? sizeof(struct lt_life) : 0) +
	       (e->has_sender ? sizeof(struct lt_cred) : 0) +
	       opt_len(lt_entry_owner_name(e)) + opt_len(lt_entry_message(e));
}

static void entry_free_memory(struct locktable *lt, struct lt_entry *e)
{
	if (!e)
		return;
	if (e->multi)
		multi_put(e->multi);
	spares_free(&lt->spares, e, entry_size(e));
}

struct lt_life *lt_entry_life(const struct lt_entry *e)
{
	return e->has_life ? (struct lt_life *)(e + 1) : NULL;
}

bool lt_entry_detached(const struct lt_entry *e)
{
	return e->has_life && lt_entry_life(e)->detached;
}

uint64_t lt_life_left_us(const struct locktable *lt, const struct lt_life *life)
{
	return life->expiry.key > lt->now_us ? life->expiry.key - lt->now_us : 0;
}

static struct lt_entry *life_entry(struct lt_life *life)
{
	return (struct lt_entry *)life - 1;
}

/* Where the entry's sender is, if it has one: after its life. */
static const char *entry_sender_at(const struct lt_entry *e)
{
	return (const char *)(e + 1) + (e->has_life ? sizeof(struct lt_life) : 0);
}

struct lt_cred lt_entry_sender(const struct lt_entry *e)
{
	struct lt_cred c;

	/* Not the owner's when it has its own: a detached lease's owner may
	 * be gone by the time its change record is read. */
	if (e->has_sender)
		memcpy(&c, entry_sender_at(e), sizeof(c));
	else
		c = (struct lt_cred){ .pid = e->owner->pid, .uid = e->owner->uid, .gid = e->owner->gid };
	return c;
}

/* Where the entry's strings start: after its sender, if it has one. */
static const char *entry_strings(const struct lt_entry *e)
{
	return entry_sender_at(e) + (e->has_sender ? sizeof(struct lt_cred) : 0);
}

const char *lt_entry_owner_name(const struct lt_entry *e)
{
	return e->has_owner_name ? entry_strings(e) : NULL;
}

const char *lt_entry_message(const struct lt_entry *e)
{
	const char *p = entry_strings(e);

	if (!e->has_message)
		return NULL;
	return e->has_owner_name ? p + strlen(p) + 1 : p;
}

/* Whether the request's sender is another process than its owner's. */
static bool sender_differs(const struct lt_owner *o, const struct lt_cred *c)
{
	return c && (c->pid != o->pid || c->uid != o->uid || c->gid != o->gid);
}

/* The life of an entry that asks for a TTL or to detach takes its place in
 * the expiries now, never due until it has a TTL (UINT64_MAX): neither its
 * grant nor a renew (a checkout may be given a TTL later) needs memory. */
static int life_init(struct locktable *lt, struct lt_life *life, const struct lt_request *req)
{
	memset(life, 0, sizeof(*life));
	life->detach = req->detach;
	if (req->ttl_ms > 0)
		life->ttl_ms = req->ttl_ms > LT_TIMEOUT_MAX_MS ? LT_TIMEOUT_MAX_MS :
			       (uint64_t)req->ttl_ms;
	life->expiry.key = UINT64_MAX;
	return heap_push(&lt->expiries, &life->expiry);
}

/* An entry's life out of the table's indexes, as the entry goes (once):
 * its record still tells what it was. */
static void life_drop(struct locktable *lt, struct lt_entry *e)
{
	struct lt_life *life = lt_entry_life(e);

	if (!life)
		return;
	heap_remove(&lt->expiries, &life->expiry);
	if (life->detached) {
		htable_remove(&lt->tokens, &life->by_token);
		lt->stats.detached--;
	}
}

/* A lease's time-to-live starts now (a grant or a renew): its place in the
 * expiries moves, which needs no memory (it has one). */
static void life_expire_in(struct locktable *lt, struct lt_life *life, int64_t us)
{
	int r;

	heap_remove(&lt->expiries, &life->expiry);
	life->expiry.key = lt->now_us + (us > 0 ? (uint64_t)us : 0);
	r = heap_push(&lt->expiries, &life->expiry);
	assert(r == 0);
	(void)r;
}

static struct lt_entry *entry_new(struct locktable *lt, struct lt_owner *o, struct lt_resource *r,
				  const struct lt_request *req)
{
	bool has_life = req->ttl_ms > 0 || req->detach;
	/* One that detaches keeps who asked: its owner will be another. */
	bool has_sender = sender_differs(o, req->sender) || req->detach;
	struct lt_cred sender = req->sender ? *req->sender :
				(struct lt_cred){ o->pid, o->uid, o->gid };
	size_t size = sizeof(struct lt_entry) + (has_life ? sizeof(struct lt_life) : 0) +
		      (has_sender ? sizeof(struct lt_cred) : 0) +
		      opt_len(req->owner_name) + opt_len(req->message);
	struct lt_entry *e = spares_alloc(&lt->spares, size);
	char *p;

	if (!e)
		return NULL;
	p = (char *)(e + 1);
	e->has_life = has_life;
	if (has_life) {
		if (life_init(lt, (struct lt_life *)p, req) < 0) {
			spares_free(&lt->spares, e, size);
			return NULL;
		}
		p += sizeof(struct lt_life);
	}
	e->has_sender = has_sender;
	if (has_sender) {
		memcpy(p, &sender, sizeof(sender));
		p += sizeof(sender);
	}
	e->res = r;
	e->owner = o;
	e->id = ++lt->last_id;
	e->fence = 0;
	e->since_us = lt->now_us;
	e->timeout_ms = req->timeout_ms;
	e->tag = req->tag;
	e->multi = NULL;
	e->mode = req->mode;
	e->change = 0;
	e->held = false;
	e->timed = false;
	e->has_owner_name = store_string(&p, req->owner_name);
	e->has_message = store_string(&p, req->message);
	htable_insert(&lt->pairs, &e->by_pair);
	return e;
}

/* An entry of o's came (+1) or went (-1). */
static void group_add(struct lt_owner *o, int delta)
{
	if (!o->group)
		return;
	if (delta > 0)
		o->group->entries++;
	else
		o->group->entries--;
}

static uint64_t next_fence(struct locktable *lt)
{
	uint64_t f = upcoming_fence(lt);

	assert(f < lt->fence_ceiling); /* grantable() said so */
	lt->last_fence = f;
	return f;
}

/* e becomes a lease with this fence. */
static void hold_with(struct locktable *lt, struct lt_entry *e, uint64_t fence)
{
	struct lt_resource *r = e->res;
	struct lt_owner *o = e->owner;
	struct lt_life *life = lt_entry_life(e);

	e->held = true;
	e->fence = fence;
	e->waited_us = lt->now_us - e->since_us;
	e->since_us = lt->now_us;
	if (life) {
		life->granted_wall_us = lt->wall_us;
		if (life->ttl_ms)
			life_expire_in(lt, life, (int64_t)life->ttl_ms * 1000);
	}
	list_add_tail(&r->holders, &e->qnode);
	r->nholders++;
	r->held_mode = e->mode;
	list_add_tail(&o->held, &e->onode);
	o->nheld++;
	group_add(o, 1);
	htable_insert(&lt->leases, &e->by_id);
	lt->stats.leases++;
}

static void hold(struct locktable *lt, struct lt_entry *e)
{
	hold_with(lt, e, next_fence(lt));
}

static void unwait(struct locktable *lt, struct lt_entry *e)
{
	assert(!e->held);
	list_del(&e->qnode);
	e->res->nwaiters--;
	list_del(&e->onode);
	e->owner->nwaiting--;
	group_add(e->owner, -1);
	if (e->timed)
		heap_remove(&lt->deadlines, &e->deadline);
	lt->stats.waiters--;
}

static void unhold(struct locktable *lt, struct lt_entry *e)
{
	assert(e->held);
	list_del(&e->qnode);
	e->res->nholders--;
	list_del(&e->onode);
	e->owner->nheld--;
	group_add(e->owner, -1);
	htable_remove(&lt->leases, &e->by_id);
	lt->stats.leases--;
}

static void entry_free(struct locktable *lt, struct lt_entry *e)
{
	life_drop(lt, e);
	htable_remove(&lt->pairs, &e->by_pair);
	entry_free_memory(lt, e);
}

/* A grant the os attachment keeps for the requester: a fence, a GRANTED
 * record, and the entry gone with it (freed once the record is drained). */
static void hand_over(struct locktable *lt, struct lt_entry *e)
{
	e->fence = next_fence(lt);
	e->waited_us = lt->now_us - e->since_us;
	life_drop(lt, e);
	htable_remove(&lt->pairs, &e->by_pair);
	lt->stats.handed_over++;
	report_gone(lt, e, LT_CHANGE_GRANTED);
}

static bool upgrade_promote(struct locktable *lt, struct lt_resource *r);
static void multi_promote(struct locktable *lt, struct lt_resource *r);

/* Grants from the head of the queue: one exclusive request, or the run of
 * shared requests, as long as each is compatible with the holders. A
 * multi-key request at the head may wait for another key: then those
 * behind it that conflict with nothing ahead may pass (multi_promote). */
static void promote(struct locktable *lt, struct lt_resource *r)
{
	if (!upgrade_promote(lt, r))
		return; /* a pending upgrade goes first */
	while (r->nwaiters) {
		struct lt_entry *e = container_of(r->waiters.next, struct lt_entry, qnode);
		enum lt_admit a;

		if (e->multi) {
			multi_promote(lt, r);
			return;
		}
		a = grantable(lt, r, e);
		if (a == LT_ADMIT_NO)
			break;
		unwait(lt, e);
		lt->stats.granted_after_wait++;
		if (a == LT_ADMIT_HANDED_OVER) {
			hand_over(lt, e);
			continue;
		}
		hold(lt, e);
		report_granted(lt, e);
	}
}

static void upgrade_end(struct locktable *lt, struct lt_upgrade *up, enum lt_change_kind kind);
static struct lt_upgrade *upgrade_of(const struct lt_entry *e);

static void multi_end(struct locktable *lt, struct lt_multi *m, enum lt_change_kind kind);

/* Removes a waiter or a lease, lets the queue move, and lets go of what is
 * unused. With a kind, the entry is reported as ended so, and freed once
 * the record is drained; else at once. */
static void entry_end(struct locktable *lt, struct lt_entry *e, enum lt_change_kind kind)
{
	struct lt_resource *r = e->res;

	if (e->multi) {
		multi_end(lt, e->multi, kind);
		return;
	}
	if (e->held && upgrade_of(e))
		upgrade_end(lt, upgrade_of(e), LT_CHANGE_UPGRADE_ENDED);
	if (e->held) {
		unhold(lt, e);
		if (r->nholders == 0 && r->os)
			report_unlocked(lt, r);
	} else {
		unwait(lt, e);
	}
	life_drop(lt, e);
	htable_remove(&lt->pairs, &e->by_pair);
	if (kind)
		report_gone(lt, e, kind);
	else
		entry_free_memory(lt, e);
	promote(lt, r);
	resource_put_if_unused(lt, r);
}

static bool conflicts(enum lt_mode a, enum lt_mode b)
{
	return a == LT_EXCLUSIVE || b == LT_EXCLUSIVE;
}

/* Whether no request queued on r before upto (&r->waiters: the whole
 * queue) conflicts with one in mode (a semaphore's all do). */
static bool clear_ahead(const struct lt_resource *r, enum lt_mode mode, const struct list *upto)
{
	const struct list *p;

	for (p = r->waiters.next; p != upto; p = p->next)
		if (r->limit || conflicts(mode, container_of(p, struct lt_entry, qnode)->mode))
			return false;
	return true;
}

/* Whether a new shared request may pass r's waiters: on a named key, only
 * shared multi-key requests that wait for another key can be queued while
 * it is compatible with the holders (the head is exclusive otherwise, and
 * the scan stops there). */
static bool passes_queue(const struct lt_resource *r, enum lt_mode mode)
{
	return mode == LT_SHARED && !r->os && compatible(r, mode) &&
	       clear_ahead(r, mode, &r->waiters);
}

static enum lt_result enqueue(struct locktable *lt, struct lt_entry *e, int64_t timeout_ms)
{
	if (timeout_ms > 0) {
		if (timeout_ms > LT_TIMEOUT_MAX_MS)
			timeout_ms = LT_TIMEOUT_MAX_MS;
		e->deadline.key = lt->now_us + (uint64_t)timeout_ms * 1000u;
		if (heap_push(&lt->deadlines, &e->deadline) < 0)
			return LT_NOMEM;
		e->timed = true;
	}
	list_add_tail(&e->res->waiters, &e->qnode);
	e->res->nwaiters++;
	list_add_tail(&e->owner->waiting, &e->onode);
	e->owner->nwaiting++;
	group_add(e->owner, 1);
	lt->stats.waiters++;
	return LT_QUEUED;
}

enum lt_result locktable_acquire(struct locktable *lt, struct lt_owner *o,
				 const struct lt_request *req, struct lt_entry **ret)
{
	struct lt_resource *r;
	struct lt_entry *e;
	enum lt_admit now = LT_ADMIT_NO;

	assert(drained(lt));
	assert(req->limit <= LT_LIMIT_MAX && (!req->limit || req->mode == LT_EXCLUSIVE));
	lt->stats.acquires++;
	r = resource_get(lt, req->key, req->key_len, NULL);
	if (!r)
		return LT_NOMEM;
	/* The limit (0: none) is the first request's, the resource's while
	 * it has holders or waiters. */
	if (r->nholders == 0 && r->nwaiters == 0)
		r->limit = (uint16_t)req->limit;
	else if (r->limit != req->limit)
		return LT_BAD_LIMIT; /* in use, so it stays */
	if (owner_has(lt, o, r)) {
		lt->stats.already_held++;
		return LT_ALREADY_HELD;
	}
	/* The entry first: the os attachment is asked about it. */
	e = entry_new(lt, o, r, req);
	if (!e) {
		resource_put_if_unused(lt, r);
		return LT_NOMEM;
	}
	if (r->nwaiters == 0 || req->ahead || passes_queue(r, req->mode))
		now = grantable(lt, r, e);
	/* Even one that tries once waits for a fence to give: that is the
	 * daemon's delay (one store), not a conflict. */
	if (now == LT_ADMIT_NO && req->timeout_ms == 0 &&
	    !(r->nwaiters == 0 && compatible(r, req->mode) && lt->fences_starved)) {
		lt->stats.busy++;
		entry_free(lt, e);
		resource_put_if_unused(lt, r);
		return LT_BUSY;
	}
	if (now == LT_ADMIT_HANDED_OVER) {
		lt->stats.granted_at_once++;
		hand_over(lt, e);
		resource_put_if_unused(lt, r);
		*ret = e;
		return LT_HANDED_OVER;
	}
	if (now == LT_ADMIT_HOLD) {
		hold(lt, e);
		lt->stats.granted_at_once++;
		*ret = e;
		return LT_GRANTED;
	}
	if (deadlock_find(lt, e)) {
		entry_free(lt, e);
		resource_put_if_unused(lt, r);
		return LT_DEADLOCK;
	}
	if (enqueue(lt, e, req->timeout_ms == 0 ? LT_FENCE_WAIT_MS : req->timeout_ms) == LT_NOMEM) {
		entry_free(lt, e);
		resource_put_if_unused(lt, r);
		return LT_NOMEM;
	}
	*ret = e;
	return LT_QUEUED;
}

struct lt_resource *locktable_attach(struct locktable *lt, const char *key, size_t key_len,
				     void *os)
{
	struct lt_resource *r = resource_get(lt, key, key_len, os);

	return r && r->os == os ? r : NULL; /* not another's, nor one without */
}

void locktable_put_unused(struct locktable *lt, struct lt_resource *r)
{
	assert(drained(lt));
	resource_put_if_unused(lt, r);
}

void locktable_kick(struct locktable *lt, struct lt_resource *r)
{
	assert(drained(lt));
	promote(lt, r);
	resource_put_if_unused(lt, r); /* all handed over */
}

void locktable_kick_all(struct locktable *lt)
{
	assert(drained(lt));
	for (size_t i = 0; i <= lt->resources.mask && !lt->fences_starved; i++) {
		for (struct hnode *n = lt->resources.buckets[i], *next; n; n = next) {
			struct lt_resource *r = container_of(n, struct lt_resource, node);

			next = n->next; /* r may go: all handed over */
			if (r->nwaiters || r->upgrading) {
				promote(lt, r);
				resource_put_if_unused(lt, r);
			}
		}
	}
}

enum lt_result locktable_release(struct locktable *lt, struct lt_owner *o, uint64_t lease_id)
{
	struct lt_entry *e = locktable_lease(lt, lease_id);

	assert(drained(lt));
	if (!e || e->owner != o)
		return LT_UNKNOWN_LEASE;
	lt->stats.releases++;
	entry_end(lt, e, 0);
	return LT_OK;
}

void locktable_end(struct locktable *lt, struct lt_entry *lease)
{
	assert(lease->held && drained(lt));
	lt->stats.releases++;
	entry_end(lt, lease, 0);
}

static void mark_detached(struct locktable *lt, struct lt_life *life,
			  const uint8_t token[LT_TOKEN_LEN])
{
	memcpy(life->token, token, LT_TOKEN_LEN);
	life->detached = true;
	htable_insert(&lt->tokens, &life->by_token);
	lt->stats.detached++;
}

void locktable_detach(struct locktable *lt, struct lt_entry *lease, struct lt_owner *to,
		      const uint8_t token[LT_TOKEN_LEN])
{
	struct lt_life *life = lt_entry_life(lease);
	struct lt_owner *from = lease->owner;

	assert(lease->held && life && life->detach && !life->detached);
	list_del(&lease->onode);
	from->nheld--;
	group_add(from, -1);
	htable_remove(&lt->pairs, &lease->by_pair);
	lease->owner = to;
	list_add_tail(&to->held, &lease->onode);
	to->nheld++;
	group_add(to, 1);
	htable_insert(&lt->pairs, &lease->by_pair);
	mark_detached(lt, life, token);
}

struct lt_entry *locktable_by_token(const struct locktable *lt, const uint8_t token[LT_TOKEN_LEN])
{
	for (struct hnode *n = htable_chain(&lt->tokens, hash_bytes(token, LT_TOKEN_LEN)); n;
	     n = n->next) {
		struct lt_life *life = container_of(n, struct lt_life, by_token);

		if (memcmp(life->token, token, LT_TOKEN_LEN) == 0)
			return life_entry(life);
	}
	return NULL;
}

struct lt_entry *locktable_any_detached(const struct locktable *lt)
{
	for (size_t i = 0; i <= lt->tokens.mask; i++)
		if (lt->tokens.buckets[i])
			return life_entry(container_of(lt->tokens.buckets[i], struct lt_life, by_token));
	return NULL;
}

enum lt_result locktable_renew(struct locktable *lt, struct lt_entry *lease, int64_t ttl_ms)
{
	struct lt_life *life = lt_entry_life(lease);

	assert(lease->held);
	if (!life || (ttl_ms <= 0 && !life->ttl_ms))
		return LT_UNKNOWN_LEASE;
	if (ttl_ms > LT_TIMEOUT_MAX_MS)
		ttl_ms = LT_TIMEOUT_MAX_MS;
	if (ttl_ms > 0)
		life->ttl_ms = (uint64_t)ttl_ms;
	life_expire_in(lt, life, (int64_t)life->ttl_ms * 1000);
	return LT_OK;
}

enum lt_result locktable_restore(struct locktable *lt, struct lt_owner *o,
				 const struct lt_request *req, const struct lt_restore *how,
				 struct lt_entry **ret)
{
	struct lt_resource *r;
	struct lt_entry *e;
	struct lt_life *life;

	assert(drained(lt) && req->detach);
	r = resource_get(lt, req->key, req->key_len, NULL);
	if (!r)
		return LT_NOMEM;
	if (r->nwaiters || !compatible(r, req->mode)) {
		resource_put_if_unused(lt, r);
		return LT_BUSY;
	}
	e = entry_new(lt, o, r, req);
	if (!e) {
		resource_put_if_unused(lt, r);
		return LT_NOMEM;
	}
	e->id = how->id;
	if (how->id > lt->last_id)
		lt->last_id = how->id;
	if (how->fence > lt->last_fence)
		lt->last_fence = how->fence;
	hold_with(lt, e, how->fence);
	life = lt_entry_life(e);
	life->granted_wall_us = how->granted_wall_us;
	if (life->ttl_ms)
		life_expire_in(lt, life, how->expires_in_us);
	mark_detached(lt, life, how->token);
	lt->stats.restored++;
	*ret = e;
	return LT_GRANTED;
}

void locktable_revoke(struct locktable *lt, struct lt_entry *lease)
{
	assert(lease->held && drained(lt));
	lt->stats.revokes++;
	entry_end(lt, lease, LT_CHANGE_REVOKED);
}

size_t locktable_revoke_all(struct locktable *lt, struct lt_resource *r,
			    bool (*may)(const struct lt_entry *lease, const void *arg),
			    const void *arg, size_t *ret_refused)
{
	struct list *pos, *tmp;
	size_t n = 0, refused = 0;

	assert(drained(lt));
	/* Collect, then end: the leases to end are marked first, so that the
	 * waiters they let in (added to the holders as they go) are not hit. */
	list_foreach(pos, &r->holders) {
		struct lt_entry *e = container_of(pos, struct lt_entry, qnode);

		if (may(e, arg)) {
			e->change = LT_CHANGE_REVOKED;
			n++;
		} else {
			refused++;
		}
	}
	list_foreach_safe(pos, tmp, &r->holders) {
		struct lt_entry *e = container_of(pos, struct lt_entry, qnode);

		if (e->change != LT_CHANGE_REVOKED)
			continue;
		lt->stats.revokes++;
		entry_end(lt, e, LT_CHANGE_REVOKED);
	}
	*ret_refused = refused;
	return n;
}

static enum lt_result upgrade_cancel(struct locktable *lt, struct lt_owner *o, int64_t tag);

enum lt_result locktable_cancel(struct locktable *lt, struct lt_owner *o, int64_t tag)
{
	struct list *pos;

	assert(drained(lt));
	list_foreach(pos, &o->waiting) {
		struct lt_entry *e = container_of(pos, struct lt_entry, onode);

		if (e->tag == tag) {
			lt->stats.cancels++;
			entry_end(lt, e, 0);
			return LT_OK;
		}
	}
	return upgrade_cancel(lt, o, tag);
}

static void upgrades_abandon(struct locktable *lt, struct lt_owner *o);

void locktable_owner_done(struct locktable *lt, struct lt_owner *o)
{
	assert(drained(lt));
	/* Waiters first, so that releasing the owner's leases cannot grant
	 * the owner's own requests. */
	while (!list_empty(&o->waiting)) {
		lt->stats.abandoned++;
		entry_end(lt, container_of(o->waiting.next, struct lt_entry, onode), 0);
	}
	upgrades_abandon(lt, o);
	while (!list_empty(&o->held)) {
		lt->stats.disconnects++;
		entry_end(lt, container_of(o->held.next, struct lt_entry, onode), 0);
	}
	lt->stats.owners_ended++;
}

static void upgrades_expire(struct locktable *lt);

void locktable_expire(struct locktable *lt)
{
	struct heapnode *top;

	assert(drained(lt));
	upgrades_expire(lt);
	while ((top = heap_top(&lt->deadlines)) && top->key <= lt->now_us) {
		struct lt_entry *e = container_of(top, struct lt_entry, deadline);

		lt->stats.timeouts++;
		entry_end(lt, e, LT_CHANGE_EXPIRED);
	}
	/* Waiters are there too, but never due (UINT64_MAX). */
	while ((top = heap_top(&lt->expiries)) && top->key <= lt->now_us) {
		struct lt_entry *e = life_entry(container_of(top, struct lt_life, expiry));

		lt->stats.expired++;
		entry_end(lt, e, LT_CHANGE_LAPSED);
	}
}

int64_t locktable_next_deadline(const struct locktable *lt)
{
	const struct heapnode *wait = heap_top(&lt->deadlines), *life = heap_top(&lt->expiries);
	const struct heapnode *up = heap_top(&lt->upgrade_deadlines);
	uint64_t next = wait ? wait->key : UINT64_MAX;

	if (life && life->key < next)
		next = life->key;
	if (up && up->key < next)
		next = up->key;
	return next == UINT64_MAX ? -1 : (int64_t)next;
}

/* ---- conversion (issue 17) ---- */

/* The lease's mode changes (the os lock converted): a downgrade keeps its
 * fence; an upgrade is a grant, with a new fence and a new grant time. */
static void lease_set_mode(struct locktable *lt, struct lt_entry *e, enum lt_mode mode)
{
	e->mode = mode;
	e->res->held_mode = mode;
	if (mode == LT_EXCLUSIVE) {
		e->fence = next_fence(lt);
		e->since_us = lt->now_us;
	}
}

/* Whether the os attachment, if any, converts its lock for e to mode. */
static bool os_converts(struct locktable *lt, struct lt_entry *e, enum lt_mode mode)
{
	struct lt_resource *r = e->res;

	return !r->os || !lt->cb.convert || lt->cb.convert(r, e, mode, lt->cb.arg);
}

/* Whether lease e can become exclusive now: the only holder, a fence to
 * give, and the os lock converted (asked last: it may convert it). */
static bool upgrade_grantable(struct locktable *lt, struct lt_entry *e)
{
	if (e->res->nholders != 1)
		return false;
	if (upcoming_fence(lt) >= lt->fence_ceiling) {
		lt->fences_starved = true;
		return false;
	}
	return os_converts(lt, e, LT_EXCLUSIVE);
}

/* Reports an upgrade as ended so (kind 0: silently, its owner ending),
 * out of its resource, its owner and the deadlines; the queue moves. */
static void upgrade_end(struct locktable *lt, struct lt_upgrade *up, enum lt_change_kind kind)
{
	struct lt_resource *r = up->res;

	assert(upgrade_of(up->lease) == up);
	r->upgrading = false;
	list_del(&up->onode);
	if (up->timed)
		heap_remove(&lt->upgrade_deadlines, &up->deadline);
	lt->stats.upgrading--;
	up->lease = NULL;
	if (!kind) {
		upgrade_free(lt, up);
		return;
	}
	up->change = (uint8_t)kind;
	up->next = NULL;
	*lt->upgrades_tail = up;
	lt->upgrades_tail = &up->next;
}

/* Grants r's pending upgrade if it can go now; whether none is left
 * pending (then the waiters may move). */
static bool upgrade_promote(struct locktable *lt, struct lt_resource *r)
{
	struct lt_upgrade *up = (struct lt_upgrade *)lt_resource_upgrade(r);
	struct lt_entry *e;

	if (!up)
		return true;
	e = up->lease;
	if (!upgrade_grantable(lt, e))
		return false;
	lease_set_mode(lt, e, LT_EXCLUSIVE);
	up->fence = e->fence;
	lt->stats.upgrades_after_wait++;
	upgrade_end(lt, up, LT_CHANGE_UPGRADED);
	return false; /* exclusive now: no waiter can go */
}

/* The upgrade of e waits, from now on, ahead of r's waiters. */
static enum lt_result upgrade_wait(struct locktable *lt, struct lt_entry *e, int64_t timeout_ms,
				   int64_t tag)
{
	struct lt_upgrade *up = spares_alloc(&lt->spares, sizeof(*up));

	if (!up)
		return LT_NOMEM;
	memset(up, 0, sizeof(*up));
	up->lease = e;
	up->owner = e->owner;
	up->res = e->res;
	up->lease_id = e->id;
	up->since_us = lt->now_us;
	up->timeout_ms = timeout_ms;
	up->tag = tag;
	if (timeout_ms == 0)
		timeout_ms = LT_FENCE_WAIT_MS; /* it waits only for a fence */
	if (timeout_ms > 0) {
		if (timeout_ms > LT_TIMEOUT_MAX_MS)
			timeout_ms = LT_TIMEOUT_MAX_MS;
		up->deadline.key = lt->now_us + (uint64_t)timeout_ms * 1000u;
		if (heap_push(&lt->upgrade_deadlines, &up->deadline) < 0) {
			upgrade_free(lt, up);
			return LT_NOMEM;
		}
		up->timed = true;
	}
	list_add_tail(&e->owner->upgrading, &up->onode);
	/* The first holder: where lt_resource_upgrade() looks. */
	list_del(&e->qnode);
	list_add_tail(e->res->holders.next, &e->qnode);
	e->res->upgrading = true;
	lt->stats.upgrading++;
	return LT_QUEUED;
}

/* An upgrade of shared lease e: at once, or it waits. */
static enum lt_result upgrade(struct locktable *lt, struct lt_entry *e, int64_t timeout_ms,
			      int64_t tag)
{
	struct lt_resource *r = e->res;
	bool alone = r->nholders == 1;

	/* Before the os lock is converted: an upgrade that would make a
	 * request it goes ahead of wait in a cycle is refused. */
	if (alone && r->nwaiters && deadlock_find_passed(lt, e))
		return LT_DEADLOCK;
	if (upgrade_grantable(lt, e)) {
		lease_set_mode(lt, e, LT_EXCLUSIVE);
		lt->stats.upgrades_at_once++;
		return LT_GRANTED;
	}
	/* Even one that tries once waits for a fence to give, as an acquire. */
	if (timeout_ms == 0 && !(alone && lt->fences_starved)) {
		lt->stats.busy++;
		return LT_BUSY;
	}
	if (deadlock_find_upgrade(lt, e))
		return LT_DEADLOCK;
	if (upgrade_wait(lt, e, timeout_ms, tag) == LT_NOMEM)
		return LT_NOMEM;
	/* Pending, with its edges in the graph: the requests it goes ahead of. */
	if (r->nwaiters && deadlock_find_passed(lt, e)) {
		upgrade_end(lt, upgrade_of(e), 0);
		return LT_DEADLOCK;
	}
	return LT_QUEUED;
}

/* A downgrade: at once, the same fence; the queue moves. */
static enum lt_result downgrade(struct locktable *lt, struct lt_entry *e)
{
	if (!os_converts(lt, e, LT_SHARED))
		return LT_BUSY; /* an os attachment that broke its promise */
	lease_set_mode(lt, e, LT_SHARED);
	lt->stats.downgrades++;
	promote(lt, e->res);
	return LT_GRANTED;
}

enum lt_result locktable_convert(struct locktable *lt, struct lt_owner *o, uint64_t lease_id,
				 enum lt_mode mode, int64_t timeout_ms, int64_t tag,
				 struct lt_entry **ret)
{
	struct lt_entry *e = locktable_lease(lt, lease_id);
	enum lt_result result;

	assert(drained(lt));
	if (!e || e->owner != o)
		return LT_UNKNOWN_LEASE;
	if (e->res->limit || e->multi)
		return LT_BAD_LIMIT;
	if (upgrade_of(e))
		return LT_ALREADY_HELD;
	if (e->mode == mode) {
		*ret = e;
		return LT_OK;
	}
	lt->stats.converts++;
	result = mode == LT_SHARED ? downgrade(lt, e) : upgrade(lt, e, timeout_ms, tag);
	if (result == LT_GRANTED)
		*ret = e;
	return result;
}

const struct lt_upgrade *lt_resource_upgrade(const struct lt_resource *r)
{
	const struct lt_entry *first;
	const struct list *pos;

	if (!r->upgrading)
		return NULL;
	first = container_of(r->holders.next, struct lt_entry, qnode);
	list_foreach(pos, &first->owner->upgrading) {
		const struct lt_upgrade *up = container_of(pos, struct lt_upgrade, onode);

		if (up->lease == first)
			return up;
	}
	assert(!"a pending upgrade is its first holder's");
	return NULL;
}

/* Lease e's pending upgrade, or NULL. */
static struct lt_upgrade *upgrade_of(const struct lt_entry *e)
{
	const struct lt_upgrade *up = e->held ? lt_resource_upgrade(e->res) : NULL;

	return up && up->lease == e ? (struct lt_upgrade *)up : NULL;
}

const struct lt_upgrade *locktable_upgrade_of(const struct lt_entry *e)
{
	return upgrade_of(e);
}

static enum lt_result upgrade_cancel(struct locktable *lt, struct lt_owner *o, int64_t tag)
{
	struct list *pos;

	list_foreach(pos, &o->upgrading) {
		struct lt_upgrade *up = container_of(pos, struct lt_upgrade, onode);
		struct lt_resource *r = up->res;

		if (up->tag == tag) {
			lt->stats.cancels++;
			upgrade_end(lt, up, 0);
			promote(lt, r);
			return LT_OK;
		}
	}
	return LT_UNKNOWN_REQUEST;
}

/* The owner ends: its upgrades go unreported (nobody is left to answer). */
static void upgrades_abandon(struct locktable *lt, struct lt_owner *o)
{
	while (!list_empty(&o->upgrading)) {
		struct lt_upgrade *up = container_of(o->upgrading.next, struct lt_upgrade, onode);
		struct lt_resource *r = up->res;

		lt->stats.abandoned++;
		upgrade_end(lt, up, 0);
		promote(lt, r);
	}
}

/* Upgrades whose deadline is due end, their leases still shared, before
 * the waiters' (whom their end may let in). */
static void upgrades_expire(struct locktable *lt)
{
	struct heapnode *top;

	while ((top = heap_top(&lt->upgrade_deadlines)) && top->key <= lt->now_us) {
		struct lt_upgrade *up = container_of(top, struct lt_upgrade, deadline);
		struct lt_resource *r = up->res;

		lt->stats.timeouts++;
		upgrade_end(lt, up, LT_CHANGE_UPGRADE_EXPIRED);
		promote(lt, r);
	}
}

/* ---- multi-key requests ---- */

static void multi_put(struct lt_multi *m)
{
	if (--m->refs == 0)
		free(m);
}

/* Finds or makes the resources of the parts; LT_OK, or the request's
 * refusal (with nothing left made). */
static enum lt_result multi_resources(struct locktable *lt, const struct lt_owner *o,
				      const struct lt_part *parts, size_t n,
				      struct lt_resource **res)
{
	enum lt_result result = LT_OK;
	size_t i, made;

	for (made = 0; made < n; made++) {
		res[made] = resource_get(lt, parts[made].key, parts[made].key_len, NULL);
		if (!res[made]) {
			result = LT_NOMEM;
			break;
		}
		if (!res[made]->nholders && !res[made]->nwaiters)
			res[made]->limit = 0; /* the first request's: none */
		else if (res[made]->limit) {
			result = LT_BAD_LIMIT;
			made++;
			break;
		}
	}
	for (i = 0; i < made && result == LT_OK; i++)
		if (owner_has(lt, o, res[i]))
			result = LT_ALREADY_HELD;
	if (result == LT_OK)
		return LT_OK;
	for (i = 0; i < made; i++)
		resource_put_if_unused(lt, res[i]);
	return result;
}

/* Frees the parts of a request that was never queued (and so m). */
static void multi_free_parts(struct locktable *lt, struct lt_multi *m)
{
	size_t k = m->n;

	while (k > 0)
		entry_free(lt, m->parts[--k]);
}

/* The parts as entries, one id for all, not queued; NULL for want of memory. */
static struct lt_multi *multi_new(struct locktable *lt, struct lt_owner *o,
				  const struct lt_request *req, const struct lt_part *parts,
				  size_t n, struct lt_resource **res)
{
	struct lt_multi *m = malloc(sizeof(*m) + n * sizeof(m->parts[0]));
	struct lt_request one = *req;

	if (!m)
		return NULL;
	m->n = m->refs = 0;
	for (size_t i = 0; i < n; i++) {
		struct lt_entry *e;

		one.key = parts[i].key;
		one.key_len = parts[i].key_len;
		one.mode = parts[i].mode;
		e = entry_new(lt, o, res[i], &one);
		if (!e) {
			if (m->n == 0)
				free(m);
			else
				multi_free_parts(lt, m);
			return NULL;
		}
		e->multi = m;
		m->parts[m->n++] = e;
		m->refs++;
	}
	/* The parts share the first's id: the others' are given back. */
	for (size_t i = 1; i < n; i++)
		m->parts[i]->id = m->parts[0]->id;
	lt->last_id = m->parts[0]->id;
	return m;
}

/* Whether every part is compatible with its resource's holders, and no
 * request queued ahead of it there (queued: else the whole queue)
 * conflicts with it. */
static bool multi_clear(const struct lt_multi *m, bool queued)
{
	for (size_t i = 0; i < m->n; i++) {
		const struct lt_entry *p = m->parts[i];
		const struct lt_resource *r = p->res;

		if (!compatible(r, p->mode) ||
		    !clear_ahead(r, p->mode, queued ? &p->qnode : &r->waiters))
			return false;
	}
	return true;
}

/* Whether a fence can be given now; if not, the grant waits for one. */
static bool fence_available(struct locktable *lt)
{
	if (upcoming_fence(lt) < lt->fence_ceiling)
		return true;
	lt->fences_starved = true;
	return false;
}

/* Every part becomes a lease, with one fence. A multi-key lease counts
 * once in stats.leases (hold_with() counts each part). */
static void multi_hold(struct locktable *lt, struct lt_multi *m)
{
	uint64_t fence = next_fence(lt);

	for (size_t i = 0; i < m->n; i++)
		hold_with(lt, m->parts[i], fence);
	lt->stats.leases -= m->n - 1;
}

/* A waiting request is granted on all its keys at once, reported once. */
static void multi_grant(struct locktable *lt, struct lt_multi *m)
{
	for (size_t i = 0; i < m->n; i++)
		unwait(lt, m->parts[i]);
	lt->stats.waiters += m->n - 1; /* it counted once (unwait() counts each part) */
	lt->stats.granted_after_wait++;
	multi_hold(lt, m);
	report_granted(lt, m->parts[0]);
}

/* Queues every part at its resource's tail; only the first has the
 * deadline. LT_QUEUED or LT_NOMEM (nothing queued). */
static enum lt_result multi_enqueue(struct locktable *lt, struct lt_multi *m, int64_t timeout_ms)
{
	if (enqueue(lt, m->parts[0], timeout_ms) == LT_NOMEM)
		return LT_NOMEM;
	for (size_t i = 1; i < m->n; i++)
		enqueue(lt, m->parts[i], -1);
	lt->stats.waiters -= m->n - 1; /* it counts once */
	return LT_QUEUED;
}

/* Lets go of the resources of a request that was never queued. */
static void multi_discard(struct locktable *lt, struct lt_multi *m)
{
	struct lt_resource *res[LT_MULTI_MAX];
	size_t n = m->n;

	for (size_t i = 0; i < n; i++)
		res[i] = m->parts[i]->res;
	multi_free_parts(lt, m);
	for (size_t i = 0; i < n; i++)
		resource_put_if_unused(lt, res[i]);
}

enum lt_result locktable_acquire_multi(struct locktable *lt, struct lt_owner *o,
				       const struct lt_request *req, const struct lt_part *parts,
				       size_t n, struct lt_entry **ret)
{
	struct lt_resource *res[LT_MULTI_MAX];
	struct lt_multi *m;
	enum lt_result result;
	bool clear;

	assert(drained(lt));
	assert(n >= 2 && n <= LT_MULTI_MAX);
	assert(!req->limit && !req->ttl_ms && !req->detach && !req->ahead);
	lt->stats.acquires++;
	result = multi_resources(lt, o, parts, n, res);
	if (result == LT_ALREADY_HELD)
		lt->stats.already_held++;
	if (result != LT_OK)
		return result;
	m = multi_new(lt, o, req, parts, n, res);
	if (!m) {
		for (size_t i = 0; i < n; i++)
			resource_put_if_unused(lt, res[i]);
		return LT_NOMEM;
	}
	clear = multi_clear(m, false);
	if (clear && fence_available(lt)) {
		multi_hold(lt, m);
		lt->stats.granted_at_once++;
		*ret = m->parts[0];
		return LT_GRANTED;
	}
	/* As locktable_acquire(): one that tries once waits for a fence only. */
	if (req->timeout_ms == 0 && !clear) {
		lt->stats.busy++;
		result = LT_BUSY;
	} else if (deadlock_find(lt, m->parts[0])) {
		result = LT_DEADLOCK;
	} else {
		result = multi_enqueue(lt, m, req->timeout_ms == 0 ? LT_FENCE_WAIT_MS :
					      req->timeout_ms);
	}
	if (result != LT_QUEUED) {
		multi_discard(lt, m);
		return result;
	}
	*ret = m->parts[0];
	return LT_QUEUED;
}

/* Ends a multi-key request or lease as entry_end() ends one entry: every
 * part leaves its resource at once, then each resource's queue moves. */
static void multi_end(struct locktable *lt, struct lt_multi *m, enum lt_change_kind kind)
{
	struct lt_resource *res[LT_MULTI_MAX];
	struct lt_entry *first = m->parts[0];
	size_t n = m->n;

	if (first->held)
		lt->stats.leases += n - 1; /* it counted once (unhold() counts each part) */
	else
		lt->stats.waiters += n - 1;
	for (size_t i = 0; i < n; i++) {
		struct lt_entry *p = m->parts[i];

		res[i] = p->res;
		if (p->held)
			unhold(lt, p);
		else
			unwait(lt, p);
		life_drop(lt, p);
		htable_remove(&lt->pairs, &p->by_pair);
	}
	if (kind) {
		report_gone(lt, first, kind); /* the other parts go with it */
	} else {
		multi_free_rest(lt, first);
		entry_free_memory(lt, first); /* and m */
	}
	for (size_t i = 0; i < n; i++) {
		promote(lt, res[i]);
		resource_put_if_unused(lt, res[i]);
	}
}

/* Grants what can go on r when a multi-key request waits at its head: in
 * queue order, each request that is compatible with the holders and that
 * no request still queued ahead of it conflicts with (a multi-key one on
 * all its keys). One pass: a grant makes no request ahead grantable, and
 * a multi-key grant makes none grantable on its other keys (the lease
 * conflicts with what its request conflicted with). */
static void multi_promote(struct locktable *lt, struct lt_resource *r)
{
	bool any_ahead = false, exclusive_ahead = false;
	struct list *pos, *next;

	assert(!r->os);
	for (pos = r->waiters.next; pos != &r->waiters; pos = next) {
		struct lt_entry *e = container_of(pos, struct lt_entry, qnode);
		bool blocked = e->mode == LT_EXCLUSIVE ? any_ahead : exclusive_ahead;

		next = pos->next;
		if (!blocked && e->multi && multi_clear(e->multi, true) && fence_available(lt)) {
			multi_grant(lt, e->multi);
			continue;
		}
		if (!blocked && !e->multi && grantable(lt, r, e) == LT_ADMIT_HOLD) {
			unwait(lt, e);
			lt->stats.granted_after_wait++;
			hold(lt, e);
			report_granted(lt, e);
			continue;
		}
		any_ahead = true;
		exclusive_ahead = exclusive_ahead || e->mode == LT_EXCLUSIVE;
	}
}
