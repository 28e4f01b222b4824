/* The daemon's event loop, with one bracket around every callback: before
 * it the clock is read, after it output is written, what was lost is freed
 * and the deadline timer is armed again (haspd.c owns both halves). Modules
 * below haspd.c register their events here and never see the bracket. */
#pragma once

#include <stdbool.h>

struct event_base;
struct timeval;

struct loop {
	struct event_base *base;
	void (*before)(void *arg);
	void (*after)(void *arg);
	void *arg;
};

/* Runs cb(arg) inside the bracket: for the callbacks libevent makes
 * itself (evhttp's), which no loop_event wraps. */
void loop_call(struct loop *l, void (*cb)(void *arg), void *arg);

/* An event whose callback runs inside the bracket. */
struct loop_event;

/* fd -1 for a timer; what as for event_new() (EV_READ, EV_WRITE,
 * EV_PERSIST). NULL on ENOMEM. */
struct loop_event *loop_event_new(struct loop *l, int fd, short what, void (*cb)(void *arg),
				  void *arg);
/* Returns 0, or -1 (out of memory): the event will not fire. */
int loop_event_add(struct loop_event *e, const struct timeval *tv);
void loop_event_del(struct loop_event *e);
/* Whether it is armed (for the tests that check that it always is). */
bool loop_event_pending(const struct loop_event *e);
/* Makes it fire at the next turn of the loop, as if its time had come. */
void loop_event_fire(struct loop_event *e);
/* Accepts NULL; returns NULL. */
struct loop_event *loop_event_free(struct loop_event *e);
