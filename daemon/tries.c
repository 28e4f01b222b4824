#include "tries.h"

#include <sys/time.h>

#include "haspd.h"
#include "session.h"

/* One turn: the timer fires after the loop's next poll for input, whose
 * callbacks (the other clients' releases) run before it. */
static void on_turn(void *arg)
{
	struct haspd *d = arg;
	struct list due;

	list_take_all(&due, &d->tries); /* those put off from now on: the next turn */
	while (!list_empty(&due)) {
		struct session *s = list_entry(due.next, struct session, try_link);

		list_del(&s->try_link);
		s->try_final = true;
		session_resume(s);
		s->try_final = false;
	}
}

int tries_init(struct haspd *d)
{
	const struct timeval hour = { 3600, 0 };

	list_init(&d->tries);
	d->tries_timer = loop_event_new(&d->loop, -1, 0, on_turn, d);
	/* Armed once, as haspd_init() does its own: the heap of timers has
	 * room for it from then on. */
	if (!d->tries_timer || loop_event_add(d->tries_timer, &hour) < 0)
		return -1;
	loop_event_del(d->tries_timer);
	return 0;
}

void tries_done(struct haspd *d)
{
	d->tries_timer = loop_event_free(d->tries_timer);
}

bool tries_defer(struct session *s)
{
	const struct timeval now = { 0, 0 };

	if (s->try_final || loop_event_add(s->d->tries_timer, &now) < 0)
		return false;
	session_pause(s);
	list_add_tail(&s->d->tries, &s->try_link);
	return true;
}

void tries_forget(struct session *s)
{
	list_del(&s->try_link); /* linked to itself when not put off */
}
