/* The checker: reads a log after every writer is gone and proves what it
 * can from it. Every interval it builds lies inside the lease's real life:
 * ENTER is stamped after the grant arrived, EXIT before the release is sent,
 * KILL and DAEMON_KILL before kill(2). So a correct daemon never trips it. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soak.h"

#define CHECK_PRINT_MAX 5

static const char *const kind_names[CK_NKINDS] = {
	[CK_OVERLAP] = "overlap", [CK_FENCE_ORDER] = "fence-order", [CK_FENCE_DUP] = "fence-dup",
	[CK_FENCE_EPOCH] = "fence-epoch", [CK_LEASE_DUP] = "lease-dup",
	[CK_UNANSWERED] = "unanswered", [CK_TIMEOUT_EARLY] = "timeout-early",
	[CK_TIMEOUT_LATE] = "timeout-late", [CK_OUTCOME] = "outcome", [CK_LOST] = "lost",
	[CK_FLOCK] = "flock", [CK_WORKER] = "worker", [CK_BASELINE] = "baseline",
	[CK_FORMAT] = "format",
};

const char *check_kind_name(enum check_kind k)
{
	return kind_names[k];
}

void check_violation(struct check_result *r, enum check_kind k, const char *fmt, ...)
{
	va_list ap;

	if (r->violations[k]++ >= CHECK_PRINT_MAX)
		return;
	fprintf(stderr, "VIOLATION %s: ", kind_names[k]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* One worker process, a generation: generations are unique in a run. */
struct wstate {
	int id;
	bool seen, killed, done, hung, reaped;
	int status;
	int64_t kill_ts;
	/* the request without an outcome yet */
	bool pending;
	long seq;
	int res, tmo;
	bool shared;
	int64_t want_ts;
	long open;              /* index of the interval not yet ended, or -1 */
};

struct vec {
	void *v;
	size_t n, cap, size;
};

static void *check_vec_push(struct vec *a)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 1024;
		a->v = realloc(a->v, a->cap * a->size);
		if (!a->v) {
			fputs("hasp-soak: out of memory\n", stderr);
			exit(2);
		}
	}
	memset((char *)a->v + a->n * a->size, 0, a->size);
	return (char *)a->v + a->n++ * a->size;
}

struct lost {
	int64_t ts;
	int epoch, id, gen;
	long seq;
};

struct checker {
	struct check_result *r;
	struct vec gens;        /* struct wstate, by generation */
	struct vec dkill;       /* int64_t, DAEMON_KILL stamp by epoch (0: none) */
	struct vec intervals;   /* struct interval; end < 0 while open */
	struct vec epochs;      /* int, the epoch of each interval */
	struct vec grants;      /* struct grant */
	struct vec lost;        /* struct lost */
	bool have_base;
	long long base_fds, base_heap;
};

static struct wstate *check_gen(struct checker *c, int gen)
{
	if (gen <= 0 || gen > 10000000)
		return NULL;
	while (c->gens.n <= (size_t)gen) {
		struct wstate *w = check_vec_push(&c->gens);

		w->open = -1;
	}
	return (struct wstate *)c->gens.v + gen;
}

static int64_t *check_dkill(struct checker *c, int epoch)
{
	if (epoch <= 0 || epoch > 10000000)
		return NULL;
	while (c->dkill.n <= (size_t)epoch)
		check_vec_push(&c->dkill);
	return (int64_t *)c->dkill.v + epoch;
}

static int check_res(const char *name)
{
	for (int i = 0; i < SOAK_RESOURCES; i++)
		if (strcmp(name, worker_resource_name(i)) == 0)
			return i;
	return -1;
}

static bool check_who(const char *s, int *id, int *gen)
{
	return sscanf(s, "w%d.%d", id, gen) == 2;
}

static void check_parent(struct checker *c, int64_t ts, const char *kind, const char *rest)
{
	struct check_result *r = c->r;
	char who[32];
	int id, gen, epoch, v;
	struct wstate *w;

	if (strcmp(kind, "KILL") == 0 || strcmp(kind, "HUNG") == 0 || strcmp(kind, "REAP") == 0 ||
	    strcmp(kind, "SPAWN") == 0) {
		if (sscanf(rest, "%31s %d", who, &v) != 2 || !check_who(who, &id, &gen) ||
		    !(w = check_gen(c, gen))) {
			check_violation(r, CK_FORMAT, "bad parent record: %s %s", kind, rest);
			return;
		}
		w->id = id;
		w->seen = true;
		if (kind[0] == 'K') {
			if (!w->killed)
				r->killed++;
			w->killed = true;
			w->kill_ts = ts;
		} else if (kind[0] == 'H') {
			w->hung = true;
		} else if (kind[0] == 'R') {
			w->reaped = true;
			w->status = v;
		}
	} else if (strcmp(kind, "DAEMON_KILL") == 0) {
		int64_t *d;

		if (sscanf(rest, "%d", &epoch) != 1 || !(d = check_dkill(c, epoch))) {
			check_violation(r, CK_FORMAT, "bad DAEMON_KILL: %s", rest);
			return;
		}
		*d = ts;
		r->daemon_kills++;
	} else if (strcmp(kind, "DAEMON_EXIT") == 0) {
		if (sscanf(rest, "%d", &v) != 1 || v != 0)
			check_violation(r, CK_BASELINE, "haspd did not exit cleanly on SIGTERM (status %s)",
					rest);
	} else if (strcmp(kind, "BASELINE") == 0) {
		c->have_base = sscanf(rest, "fds=%lld heap=%lld", &c->base_fds, &c->base_heap) == 2;
		r->base_fds = c->base_fds;
		r->base_heap = c->base_heap;
	} else if (strcmp(kind, "FINAL") == 0) {
		long long fds, heap, sessions, leases, waiters, resources;

		r->have_final = true;
		if (sscanf(rest, "fds=%lld heap=%lld sessions=%lld leases=%lld waiters=%lld resources=%lld",
			   &fds, &heap, &sessions, &leases, &waiters, &resources) != 6 || !c->have_base) {
			check_violation(r, CK_BASELINE, "FINAL without a BASELINE, or unreadable: %s", rest);
			return;
		}
		r->end_fds = fds;
		r->end_heap = heap;
		if (sessions != 1 || leases != 0 || waiters != 0 || resources != 0)
			check_violation(r, CK_BASELINE,
					"after every worker exited the daemon still has sessions=%lld "
					"(want 1) leases=%lld waiters=%lld resources=%lld (want 0)",
					sessions, leases, waiters, resources);
		if (fds != c->base_fds)
			check_violation(r, CK_BASELINE, "daemon descriptors %lld at the end, %lld at baseline",
					fds, c->base_fds);
		if (llabs(heap - c->base_heap) > SOAK_HEAP_TOLERANCE)
			check_violation(r, CK_BASELINE,
					"daemon heap %lld bytes at the end, %lld at baseline (tolerance %d)",
					heap, c->base_heap, SOAK_HEAP_TOLERANCE);
	}
}

/* Ends the pending request; false (and a violation) if there is none. */
static bool check_answer(struct checker *c, struct wstate *w, const char *who, long seq,
			   const char *kind)
{
	if (!w->pending || w->seq != seq) {
		check_violation(c->r, CK_FORMAT, "%s %s %ld answers no pending request", who, kind, seq);
		return false;
	}
	w->pending = false;
	return true;
}

static void check_timeout(struct checker *c, struct wstate *w, const char *who, long long wait,
			    bool granted)
{
	struct check_result *r = c->r;
	long long late = wait - (long long)w->tmo * 1000;

	if (w->tmo <= 0)
		return;
	if (!granted && late < 0)
		check_violation(r, CK_TIMEOUT_EARLY,
				"%s request %ld (%s, timeout %d ms) timed out after %lld us", who, w->seq, worker_resource_name(w->res), w->tmo, wait);
	if (late > SOAK_LATE_SLACK_MS * 1000LL)
		check_violation(r, CK_TIMEOUT_LATE,
				"%s request %ld (%s, timeout %d ms) answered after %lld us", who, w->seq, worker_resource_name(w->res), w->tmo, wait);
	if (!granted && late > r->max_late_us)
		r->max_late_us = late;
}

static void check_enter(struct checker *c, struct wstate *w, const char *who, int gen,
			  int64_t ts, const char *rest)
{
	unsigned long long lease, fence;
	long long wait;
	long seq;
	int epoch;
	struct interval *iv;
	struct grant *g;

	if (sscanf(rest, "%ld %llu %llu %d %lld", &seq, &lease, &fence, &epoch, &wait) != 5) {
		check_violation(c->r, CK_FORMAT, "bad ENTER: %s %s", who, rest);
		return;
	}
	if (!check_answer(c, w, who, seq, "ENTER"))
		return;
	check_timeout(c, w, who, wait, true);
	c->r->grants++;
	g = check_vec_push(&c->grants);
	*g = (struct grant){ .want_ts = w->want_ts, .enter_ts = ts, .fence = fence, .lease = lease,
			     .epoch = epoch, .id = w->id, .gen = gen, .seq = seq };
	iv = check_vec_push(&c->intervals);
	*iv = (struct interval){ .start = ts, .end = -1, .fence = fence, .res = w->res,
				 .shared = w->shared, .id = w->id, .gen = gen, .seq = seq };
	*(int *)check_vec_push(&c->epochs) = epoch;
	w->open = (long)c->intervals.n - 1;
}

static void check_worker(struct checker *c, int64_t ts, const char *who, const char *kind,
			   const char *rest)
{
	struct check_result *r = c->r;
	struct wstate *w;
	char name[16], word[32];
	long long wait;
	long seq;
	int id, gen, code, epoch;

	if (!check_who(who, &id, &gen) || !(w = check_gen(c, gen))) {
		check_violation(r, CK_FORMAT, "bad worker: %s", who);
		return;
	}
	w->id = id;
	w->seen = true;
	if (strcmp(kind, "WANT") == 0) {
		char mode;

		if (sscanf(rest, "%ld %15s %c %d", &seq, name, &mode, &w->tmo) != 4 ||
		    check_res(name) < 0) {
			check_violation(r, CK_FORMAT, "bad WANT: %s %s", who, rest);
			return;
		}
		if (w->pending)
			check_violation(r, CK_UNANSWERED,
					"%s request %ld on %s got no answer before request %ld", who, w->seq, worker_resource_name(w->res), seq);
		r->wants++;
		w->pending = true;
		w->seq = seq;
		w->res = check_res(name);
		w->shared = mode == 'S';
		w->want_ts = ts;
	} else if (strcmp(kind, "ENTER") == 0) {
		check_enter(c, w, who, gen, ts, rest);
	} else if (strcmp(kind, "EXIT") == 0) {
		if (w->open < 0) {
			check_violation(r, CK_FORMAT, "%s EXIT %s outside a lease", who, rest);
			return;
		}
		((struct interval *)c->intervals.v)[w->open].end = ts;
		w->open = -1;
	} else if (strcmp(kind, "BUSY") == 0 || strcmp(kind, "TIMEOUT") == 0) {
		bool busy = kind[0] == 'B';

		if (sscanf(rest, "%ld %lld", &seq, &wait) != 2 || !check_answer(c, w, who, seq, kind))
			return;
		/* A try-once request ends TIMEOUT only by libhasp's own
		 * deadline, when the daemon has not answered within its grace
		 * (LIBHASP_GRACE_MS, 500 ms: a slow or loaded daemon). */
		if (busy ? w->tmo != 0 : w->tmo < 0 || (w->tmo == 0 && wait < 500000))
			check_violation(r, CK_OUTCOME, "%s request %ld with timeout %d ended %s", who, seq,
					w->tmo, kind);
		if (busy)
			r->busy++;
		else
			r->timeouts++;
		if (!busy)
			check_timeout(c, w, who, wait, false);
	} else if (strcmp(kind, "LOST") == 0 || strcmp(kind, "RELLOST") == 0) {
		struct lost *l;

		if (sscanf(rest, "%ld %d %d", &seq, &code, &epoch) != 3 ||
		    (kind[0] == 'L' && !check_answer(c, w, who, seq, kind)))
			return;
		r->lost++;
		l = check_vec_push(&c->lost);
		*l = (struct lost){ .ts = ts, .epoch = epoch, .id = id, .gen = gen, .seq = seq };
	} else if (strcmp(kind, "ERR") == 0 || strcmp(kind, "RELERR") == 0) {
		if (sscanf(rest, "%ld %31s", &seq, word) == 2 && kind[0] == 'E' && seq > 0)
			check_answer(c, w, who, seq, kind);
		r->errors++;
		check_violation(r, CK_OUTCOME, "%s %s %s", who, kind, rest);
	} else if (strcmp(kind, "FLOCK") == 0) {
		if (sscanf(rest, "%ld %31s", &seq, word) != 2)
			return;
		r->flock_checks++;
		if (strcmp(word, "excused") == 0)
			r->flock_excused++;
		else if (strcmp(word, "ok") != 0)
			check_violation(r, CK_FLOCK,
					"%s request %ld on %s: the daemon does not hold the flock (%s)", who, seq, worker_resource_name(w->res), word);
	} else if (strcmp(kind, "DONE") == 0) {
		w->done = true;
	}
}

static void check_line(struct checker *c, char *line)
{
	char *at = strrchr(line, '@'), who[32], kind[32];
	long long ts;
	int n = 0;

	line[strcspn(line, "\n")] = '\0';
	if (!at) {
		if (*line)
			check_violation(c->r, CK_FORMAT, "not a record: %.80s", line);
		return;
	}
	if (at != line)
		c->r->torn++; /* a writer killed inside write(2): resynchronised */
	if (sscanf(at, "@%lld %31s %31s %n", &ts, who, kind, &n) < 3 || n == 0) {
		if (at == line)
			check_violation(c->r, CK_FORMAT, "not a record: %.80s", line);
		else
			c->r->torn++;
		return;
	}
	c->r->records++;
	if (strcmp(who, "P") == 0)
		check_parent(c, ts, kind, at + n);
	else
		check_worker(c, ts, who, kind, at + n);
}

/* What only the whole log can tell: unanswered waiters, ends of leases of
 * killed workers and daemons, lost connections of living daemons. */
static void check_finish(struct checker *c)
{
	struct check_result *r = c->r;
	struct interval *iv = c->intervals.v;
	int *ep = c->epochs.v;

	for (size_t g = 1; g < c->gens.n; g++) {
		struct wstate *w = (struct wstate *)c->gens.v + g;

		if (!w->seen)
			continue;
		r->workers++;
		if (w->pending && (!w->killed || w->hung))
			check_violation(r, CK_UNANSWERED,
					"w%d.%zu request %ld (%s %s, timeout %d ms) was never answered%s", w->id, g, w->seq, worker_resource_name(w->res),
					w->shared ? "shared" : "exclusive", w->tmo,
					w->hung ? " (the worker hung at the stop)" : "");
		if (w->open >= 0) {
			if (w->killed) {
				iv[w->open].end = w->kill_ts;
				r->ended_kill++;
			}
			else
				check_violation(r, CK_WORKER, "w%d.%zu ended inside its lease without EXIT", w->id, g);
		}
		if (w->hung && !w->pending)
			check_violation(r, CK_WORKER, "w%d.%zu did not exit at the stop", w->id, g);
		if (!w->killed && (!w->done || (w->reaped && w->status != 0)))
			check_violation(r, CK_WORKER, "w%d.%zu was not killed yet %s (status %d)", w->id, g,
					w->done ? "exited badly" : "never finished", w->reaped ? w->status : -1);
	}
	for (size_t i = 0; i < c->intervals.n; i++) {
		int64_t *d = check_dkill(c, ep[i]);

		if (d && *d && iv[i].end > *d) {
			iv[i].end = *d;   /* its daemon's death ended it */
			r->ended_dkill++;
		}
		if (iv[i].end >= 0 && iv[i].end <= iv[i].start)
			r->stale++;       /* granted, then its daemon or worker died before ENTER */
	}
	for (size_t i = 0; i < c->lost.n; i++) {
		struct lost *l = (struct lost *)c->lost.v + i;
		int64_t *d = check_dkill(c, l->epoch);

		if (!d || !*d || *d > l->ts)
			check_violation(r, CK_LOST,
					"w%d.%d request %ld lost its connection to the daemon of epoch %d, "
					"which was not killed", l->id, l->gen, l->seq, l->epoch);
	}
}

int check_file(const char *path, struct check_result *r)
{
	struct checker c = { .r = r };
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	size_t nvalid = 0;
	long total = 0;

	memset(r, 0, sizeof(*r));
	if (!f)
		return -errno;
	c.gens.size = sizeof(struct wstate);
	c.dkill.size = sizeof(int64_t);
	c.intervals.size = sizeof(struct interval);
	c.epochs.size = sizeof(int);
	c.grants.size = sizeof(struct grant);
	c.lost.size = sizeof(struct lost);
	while (getline(&line, &cap, f) > 0)
		check_line(&c, line);
	free(line);
	fclose(f);
	check_finish(&c);
	if (!r->have_final)
		check_violation(r, CK_BASELINE, "no FINAL record: the run did not end cleanly");
	/* Only intervals that ended after they began take part. */
	for (size_t i = 0; i < c.intervals.n; i++) {
		struct interval *iv = (struct interval *)c.intervals.v + i;

		if (iv->end > iv->start)
			((struct interval *)c.intervals.v)[nvalid++] = *iv;
	}
	intervals_check(c.intervals.v, nvalid, r);
	intervals_check_grants(c.grants.v, c.grants.n, r);
	free(c.gens.v);
	free(c.dkill.v);
	free(c.intervals.v);
	free(c.epochs.v);
	free(c.grants.v);
	free(c.lost.v);
	for (int k = 0; k < CK_NKINDS; k++)
		total += r->violations[k];
	return total ? 1 : 0;
}

void check_print(const struct check_result *r)
{
	printf("records %ld (torn %ld), workers %ld (killed %ld), daemon kills %ld\n", r->records,
	       r->torn, r->workers, r->killed, r->daemon_kills);
	printf("requests %ld: granted %ld, busy %ld, timeout %ld, lost %ld, errors %ld\n", r->wants,
	       r->grants, r->busy, r->timeouts, r->lost, r->errors);
	printf("intervals checked %ld (ended by a worker's kill %ld, by the daemon's %ld; "
	       "empty %ld), fences checked %ld, max holders at once %d\n",
	       r->intervals, r->ended_kill, r->ended_dkill, r->stale, r->fences, r->max_shared);
	printf("flock checks %ld (excused by a daemon kill %ld), latest timeout %.1f ms past due\n",
	       r->flock_checks, r->flock_excused, (double)r->max_late_us / 1000);
	printf("daemon baseline: fds %lld heap %lld; end: fds %lld heap %lld (%+lld bytes)\n",
	       r->base_fds, r->base_heap, r->end_fds, r->end_heap, r->end_heap - r->base_heap);
	for (int k = 0; k < CK_NKINDS; k++)
		if (r->violations[k])
			printf("violations %s: %ld\n", kind_names[k], r->violations[k]);
}
