/* haspd's one etcd lease, to which every cluster request's key is bound:
 * asked for at the start and whenever it is lost, kept alive every TTL/6
 * (its calls go ahead of the others, with places of their own).
 * When etcd has not confirmed it for 2/3 of its TTL, it may expire before
 * haspd hears again, so it is given up first: its holders are told "lost"
 * and its waiters "unavailable" before another host can be granted. */
#include "cluster-int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "haspd.h"
#include "log.h"
#include "proto-daemon.h"

static uint64_t now_us(const struct cluster *c)
{
	return c->d->lt.now_us;
}

static void on_granted(void *arg, json_t *reply, const char *error)
{
	struct cluster *c = arg;
	struct list *pos, *tmp;

	c->granting = NULL;
	if (!error && etcd_get_int(reply, "ID", 0) == 0)
		error = "etcd granted no lease";
	if (error) {
		if (!c->grant_failing)
			log_warn("cluster: cannot get an etcd lease: %s (trying again every second)",
				 error);
		c->grant_failing = true;
		list_foreach_safe(pos, tmp, &c->parked) {
			struct cl_lock *l = container_of(pos, struct cl_lock, clink);

			cl_lock_fail(l, HASP_E_UNAVAILABLE, error);
			cl_lock_drop(l);
		}
		return;
	}
	c->lease = etcd_get_int(reply, "ID", 0);
	c->lease_ok_us = c->grant_tried_us;
	c->grant_failing = false;
	log_info("cluster: etcd lease %" PRIx64 " with a TTL of %u s", (uint64_t)c->lease, c->ttl_s);
	list_foreach_safe(pos, tmp, &c->parked)
		cl_lock_send(container_of(pos, struct cl_lock, clink));
}

void cl_lease_want(struct cluster *c)
{
	json_t *body;

	if (c->lease || c->granting)
		return;
	c->grant_tried_us = now_us(c);
	body = json_pack("{s:o}", "TTL", etcd_int(c->ttl_s));
	c->granting = body ? etcd_post_urgent(c->etcd, "/v3/lease/grant", body, c->ttl_s * 500,
					      on_granted, c) : NULL;
}

static void on_revoked(void *arg, json_t *reply, const char *error)
{
	(void)arg;
	(void)reply;
	if (error)
		log_debug("cluster: revoking a lost etcd lease: %s", error);
}

void cl_lease_revoke(struct cluster *c)
{
	json_t *body = json_pack("{s:o}", "ID", etcd_int(c->lease));

	if (body)
		etcd_post_urgent(c->etcd, "/v3/lease/revoke", body, c->ttl_s * 500, on_revoked, NULL);
}

/* Every request bound to the lease is gone with it. */
static void cl_lease_lost(struct cluster *c, const char *why)
{
	int64_t old = c->lease;
	struct list *pos, *tmp;
	size_t held = 0;

	if (c->keeping) {
		etcd_call_forget(c->keeping);
		c->keeping = NULL;
	}
	cl_lease_revoke(c); /* if etcd comes back before its TTL */
	c->lease = 0;
	list_foreach_safe(pos, tmp, &c->locks) {
		struct cl_lock *l = container_of(pos, struct cl_lock, clink);

		if (l->etcd_lease != old)
			continue;
		cl_event_ended(l, "lost");
		if (l->state == CL_DETACHING) {
			/* Its call is answered first: the checkout's own lease
			 * may outlive haspd's, and is revoked then. */
			cl_lock_fail(l, HASP_E_UNAVAILABLE, why);
			cl_lock_end(l);
			continue;
		}
		if (l->state == CL_HELD) {
			held++;
			cl_lock_tell(l, "lost", why);
		} else if (l->state != CL_ENDING) {
			cl_lock_fail(l, HASP_E_UNAVAILABLE, why);
		}
		cl_lock_drop(l);
	}
	c->lost_total += held;
	log_warn("cluster: etcd lease %" PRIx64 " given up (%s): %zu held lease%s lost", (uint64_t)old,
		 why, held, held == 1 ? "" : "s");
	cl_lease_want(c);
}

static void on_kept(void *arg, json_t *reply, const char *error)
{
	struct cluster *c = arg;
	json_t *result = json_object_get(reply, "result");

	c->keeping = NULL;
	if (error) {
		log_debug("cluster: keepalive: %s", error);
		return;
	}
	if (!result || etcd_get_int(result, "TTL", 0) <= 0) {
		cl_lease_lost(c, "unavailable: etcd says haspd's lease expired");
		return;
	}
	/* Its TTL started again at most when the keepalive was sent. */
	c->lease_ok_us = c->keep_sent_us;
}

/* A keepalive's bound: TTL/3 (sent at TTL/6, it is answered or given up by
 * TTL/2, leaving time for one more before 2/3), and 500 ms at least. */
static unsigned keepalive_ms(const struct cluster *c)
{
	return c->ttl_s * 1000 / 3 > 500 ? c->ttl_s * 1000 / 3 : 500;
}

/* Every 250 ms: a keepalive when one is due, the lease given up when it
 * has gone unconfirmed too long, or asked for again. */
void cl_lease_tick(void *arg)
{
	struct cluster *c = arg;
	uint64_t age = now_us(c) - c->lease_ok_us, ttl_us = (uint64_t)c->ttl_s * 1000000;
	json_t *body;

	if (!c->lease) {
		/* Asked for again at once by a request, else once a second. */
		if (!list_empty(&c->parked) || now_us(c) - c->grant_tried_us >= 1000000)
			cl_lease_want(c);
		return;
	}
	if (age >= ttl_us * 2 / 3) {
		cl_lease_lost(c, "unavailable: etcd could not be reached to keep haspd's lease alive");
		return;
	}
	if (c->keeping || age < ttl_us / 6)
		return;
	/* Bounded, so that a try that fails is given up before 2/3 of the TTL. */
	body = json_pack("{s:o}", "ID", etcd_int(c->lease));
	c->keep_sent_us = now_us(c);
	c->keeping = body ? etcd_post_urgent(c->etcd, "/v3/lease/keepalive", body, keepalive_ms(c),
					     on_kept, c) : NULL;
}
