/* Exiting when nobody needs the daemon (idle_exit, --idle-exit): a haspd
 * that libhasp started on demand goes away by itself, as gpg-agent does.
 * Idle means no session, no lease, no waiter and no checkout; the timer
 * runs from the moment the daemon became idle, and any of them stops it. */
#pragma once

struct haspd;

/* Arms or stops the idle timer after each callback (haspd_sync()); does
 * nothing when d->cfg.idle_exit is 0. */
void idle_plan(struct haspd *d);
/* Forgets the timer's deadline, e.g. after idle_exit changed (SIGHUP): the
 * next idle_plan() counts again from then. */
void idle_reset(struct haspd *d);
