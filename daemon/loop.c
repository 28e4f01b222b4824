#include "loop.h"

#include <stdlib.h>

#include <event2/event.h>

struct loop_event {
	struct event *ev;
	struct loop *loop;
	void (*cb)(void *arg);
	void *arg;
};

void loop_call(struct loop *l, void (*cb)(void *arg), void *arg)
{
	l->before(l->arg);
	cb(arg);
	l->after(l->arg);
}

/* The bracket: the callback may free e (as part of what it ends), so e is
 * not touched after it. */
static void loop_run(evutil_socket_t fd, short what, void *arg)
{
	struct loop_event *e = arg;

	(void)fd, (void)what;
	loop_call(e->loop, e->cb, e->arg);
}

struct loop_event *loop_event_new(struct loop *l, int fd, short what, void (*cb)(void *arg),
				  void *arg)
{
	struct loop_event *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->loop = l;
	e->cb = cb;
	e->arg = arg;
	e->ev = event_new(l->base, fd, what, loop_run, e);
	if (!e->ev) {
		free(e);
		return NULL;
	}
	return e;
}

int loop_event_add(struct loop_event *e, const struct timeval *tv)
{
	return event_add(e->ev, tv) < 0 ? -1 : 0;
}

void loop_event_del(struct loop_event *e)
{
	event_del(e->ev);
}

bool loop_event_pending(const struct loop_event *e)
{
	return event_pending(e->ev, EV_TIMEOUT | EV_READ | EV_WRITE, NULL) != 0;
}

void loop_event_fire(struct loop_event *e)
{
	event_active(e->ev, EV_TIMEOUT, 1);
}

struct loop_event *loop_event_free(struct loop_event *e)
{
	if (e) {
		event_free(e->ev);
		free(e);
	}
	return NULL;
}
