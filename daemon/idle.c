#include "idle.h"

#include <sys/time.h>

#include <event2/event.h>

#include "haspd.h"
#include "log.h"
#include "server.h"

/* Whether the daemon holds nothing for anyone: ending now loses nothing. */
static bool idle_now(const struct haspd *d)
{
	const struct lt_stats *st = &d->lt.stats;

	return d->nsessions == 0 && st->leases == 0 && st->waiters == 0 && st->detached == 0;
}

static void on_idle(void *arg)
{
	struct haspd *d = arg;

	d->idle_armed = false;
	/* A client in the listen queue, not accepted yet, would find its
	 * connection reset: serve it, and count again once it is gone. */
	if (!idle_now(d) || server_pending(d->server))
		return;
	log_info("idle for %u s (idle_exit): stopping", d->cfg.idle_exit);
	event_base_loopbreak(d->base);
}

void idle_plan(struct haspd *d)
{
	struct timeval tv = { (time_t)d->cfg.idle_exit, 0 };

	if (d->cfg.idle_exit == 0 || !idle_now(d)) {
		idle_reset(d);
		return;
	}
	if (d->idle_armed)
		return; /* counting since the daemon became idle */
	if (!d->idle_timer)
		d->idle_timer = loop_event_new(&d->loop, -1, 0, on_idle, d);
	if (!d->idle_timer || loop_event_add(d->idle_timer, &tv) < 0) {
		log_warn("no memory for the idle timer: tried again after the next event");
		return;
	}
	d->idle_armed = true;
}

void idle_reset(struct haspd *d)
{
	if (d->idle_armed)
		loop_event_del(d->idle_timer);
	d->idle_armed = false;
}
