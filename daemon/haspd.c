#include "haspd.h"

#include <time.h>

#include <event2/event.h>

#include "files.h"
#include "session.h"

static uint64_t clock_us(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t haspd_now_ms(void)
{
	return clock_us(CLOCK_MONOTONIC) / 1000u;
}

void haspd_tick(struct haspd *d)
{
	locktable_set_now(&d->lt, clock_us(CLOCK_MONOTONIC), clock_us(CLOCK_REALTIME));
}

/* The earlier of two deadlines, -1 meaning none. */
static int64_t earliest(int64_t a, int64_t b)
{
	if (a < 0)
		return b;
	return b < 0 || a < b ? a : b;
}

static void haspd_arm_timer(struct haspd *d)
{
	int64_t next = earliest(locktable_next_deadline(&d->lt), files_next_retry(d));
	struct timeval tv;
	uint64_t wait;

	if (next == d->timer_at)
		return;
	d->timer_at = next;
	if (next < 0) {
		event_del(d->timer);
		return;
	}
	wait = (uint64_t)next > d->lt.now_us ? (uint64_t)next - d->lt.now_us : 0;
	tv.tv_sec = (time_t)(wait / 1000000u);
	tv.tv_usec = (suseconds_t)(wait % 1000000u);
	event_add(d->timer, &tv);
}

void haspd_sync(struct haspd *d)
{
	while (!list_empty(&d->flushing)) {
		struct session *s = list_entry(d->flushing.next, struct session, flush_link);

		list_del(&s->flush_link);
		session_flush(s);
	}
	while (!list_empty(&d->graveyard)) {
		struct session *s = list_entry(d->graveyard.next, struct session, link);

		list_del(&s->link);
		session_free(s);
	}
	haspd_arm_timer(d);
}
