/* A try (an acquire with timeout_ms 0) that finds a named key held is not
 * answered busy at once: the session's input stops at it for one turn of
 * the loop, which reads what other clients had sent already, and then the
 * try is served again, for good. So a release written before the try was
 * sent (a client that released without waiting for the answer, then told
 * another process to try) is served first, whichever socket the daemon
 * happened to read first. Files are not deferred: their releases are
 * awaited by the clients, and an outsider's flock(2) reaches no socket. */
#pragma once

#include <stdbool.h>

struct haspd;
struct session;

/* 0, or -1 when out of memory. */
int tries_init(struct haspd *d);
void tries_done(struct haspd *d);
/* From the dispatch of a try on a key that would wait: true when the try
 * was put off (its line is handed up again at the next turn, with
 * s->try_final set); false when it is to be answered now (it was put off
 * once already, or the timer could not be armed). */
bool tries_defer(struct session *s);
/* s ends: a try put off is forgotten. */
void tries_forget(struct session *s);
