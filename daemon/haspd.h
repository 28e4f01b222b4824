/* The daemon's shared state: one per process, created by main.c (or by a
 * test harness, without a listening server). */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "fencefile.h"
#include "files.h"
#include "audit.h"
#include "busiest.h"
#include "hist.h"
#include "journal.h"
#include "list.h"
#include "locktable.h"
#include "log.h"
#include "loop.h"
#include "ratelimit.h"
#include "users.h"

struct event_base;
struct event;

struct haspd {
	struct event_base *base;
	struct locktable lt;
	struct config cfg;
	struct loop loop;           /* base, with the bracket of every callback */
	struct loop_event *timer;   /* the earliest waiter deadline */
	int64_t timer_at;           /* when it is armed for, or -1 */
	struct list sessions;       /* session.link */
	struct list flushing;       /* connection.flush_link: output to write */
	struct list graveyard;      /* session.link: lost, freed in haspd_sync */
	struct files_retry retrying; /* files an outsider holds */
	struct htable aliases;      /* oslock_alias.node: files adopted into a lock (adopt.h) */
	struct users users;         /* sessions and locks per uid */
	struct ratelimit log_budget; /* log lines the sessions of each uid may cause */
	size_t nsessions;
	uint64_t sessions_total;
	uint64_t protocol_errors;
	uint64_t refusals_logged_us; /* when a refused connection was last logged */
	uint64_t refusals_unlogged;  /* refused since then */
	uint64_t started_us;
	struct server *server;
	struct fencefile fences;    /* where fences outlive the daemon, if open */
	struct loop_event *fence_timer; /* stores the next ceiling (fences.h) */
	uint64_t fences_mark;       /* the last fence at the last store */
	bool fences_failing;        /* the last store of a fence ceiling failed */
	bool fences_ending;         /* the ceiling reached the most the file holds */
	bool fences_exhausted;      /* no fence is left: nothing more is granted */
	uint64_t fences_tried_us;   /* when it was tried, on the lock table's clock */
	struct journal journal;     /* where checkouts outlive the daemon (checkouts.h) */
	char *journal_path;         /* NULL: no journal, no checkouts */
	struct lt_owner checkouts_failed; /* leases whose checkout could not be
				     * journaled, to end (checkouts_sweep()) */
	bool journal_stale;         /* an end it lacks: rewrite it before the next checkout */
	bool journal_failing;       /* the last rewrite failed (logged once) */
	uint64_t journal_retry_us;  /* then no rewrite is tried before this */
	struct loop_event *idle_timer; /* idle_exit's (idle.h), made when first armed */
	struct list tries;          /* session.try_link: tries put off a turn (tries.h) */
	struct loop_event *tries_timer; /* the next turn, for them */
	bool idle_armed;            /* counting down: the daemon is idle */
	/* What is told of lock events (events.h): */
	struct hist wait_hist;      /* how long each grant waited */
	struct hist hold_hist;      /* how long each lease was held */
	struct busiest busiest;     /* the busiest resources, with theirs */
	struct list watchers;       /* session.watch.link (watch.h) */
	size_t nwatchers;
	uint64_t watch_events;      /* lines written to watchers */
	uint64_t watch_events_lost; /* dropped: a watcher had no room */
	struct audit audit;         /* the audit trail (audit.h) */
	struct cluster *cluster;    /* cluster mode's, or NULL (cluster/cluster.h) */
};

/* Sets the lock table's clock (monotonic and wall µs), the one clock of the
 * daemon: d->lt.now_us is "now" for everything until the next callback. The
 * bracket of every callback (loop.h) calls it first. */
void haspd_tick(struct haspd *d);
/* The end of the bracket of every callback: writes pending output, frees
 * lost sessions, re-arms the deadline timer. */
void haspd_sync(struct haspd *d);

/* Logs a line about uid's doings, within its share of the log (ratelimit.h). */
void haspd_log_for(struct haspd *d, uid_t uid, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void haspd_vlog_for(struct haspd *d, uid_t uid, enum log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));

/* A client accepted by the listener (server.h): served, or refused when
 * out_of_fds or over a limit (users.h). */
void haspd_accepted(void *arg, int fd, bool out_of_fds);

/* Sets up d: the event loop, the lock table and the deadline timer; d->cfg
 * is zeroed and d->server NULL, for the caller to fill in. Returns 0, or -1
 * with errno set; haspd_done() must be called either way. */
int haspd_init(struct haspd *d);
/* Ends every session (their leases released), frees the server if any, the
 * timer, the lock table and the event loop. */
void haspd_done(struct haspd *d);
