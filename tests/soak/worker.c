#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include "hasp.h"
#include "soak.h"

#define WORKER_RECONNECT_MS 30000

/* Resources 0-2 are keys, 3-4 files; how often each is asked shared (%). */
static const char *const names[SOAK_RESOURCES] = { "k0", "k1", "k2", "f0", "f1" };
static const int shared_pct[SOAK_RESOURCES] = { 80, 50, 10, 70, 20 };

const char *worker_resource_name(int i)
{
	return names[i];
}

struct worker {
	const struct worker_ctx *ctx;
	char who[32];
	uint64_t rng;
	hasp_client *c;
	int epoch;
	long seq;
};

static bool worker_lost_code(int r)
{
	return r == -ECONNRESET || r == -EPIPE || r == -ECONNREFUSED || r == -ENOENT;
}

/* Connects to the daemon of a known epoch; NULL when told to stop. Every
 * wait is an event (the parent's futex wake) or bounded. */
static hasp_client *worker_connect(struct worker *w)
{
	struct control *ctl = w->ctx->ctl;
	int64_t end = util_now_us() + WORKER_RECONNECT_MS * 1000LL;

	while (!control_stopped(ctl)) {
		uint32_t s = control_daemon_state(ctl);
		hasp_client *c = NULL;
		int r;

		if (util_now_us() > end) {
			record_write(w->ctx->logfd, util_now_us(), w->who, "ERR 0 reconnect-timeout");
			_exit(4);
		}
		if (!(s & 1)) {
			control_wait_change(ctl, s, 100);
			continue;
		}
		r = hasp_connect(ctl->socket, &c);
		if (r == 0 && control_daemon_state(ctl) == s) {
			w->epoch = (int)(s >> 1);
			record_write(w->ctx->logfd, util_now_us(), w->who, "CONN %d", w->epoch);
			return c;
		}
		hasp_close(c);
		if (r < 0 && !worker_lost_code(r)) {
			record_write(w->ctx->logfd, util_now_us(), w->who, "ERR 0 connect:%d", r);
			_exit(4);
		}
		if (control_daemon_state(ctl) == s)
			util_sleep_us(1000); /* listening, yet refused: a transient; retry soon */
	}
	return NULL;
}

static void worker_drop(struct worker *w)
{
	w->c = hasp_close(w->c);
}

/* Inside a file lease the daemon must hold the real flock: exclusive
 * refuses both modes to a fresh open file description, shared refuses
 * LOCK_EX. A failure is excused only if the daemon was being killed. */
static void worker_check_flock(struct worker *w, int res, bool shared)
{
	int fd = open(w->ctx->ctl->files[res - 3], O_RDONLY | O_CLOEXEC);
	const char *bad = NULL;

	if (fd < 0) {
		bad = "open";
	} else if (flock(fd, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK) {
		bad = "ex-not-refused";
	} else if (!shared) {
		if (flock(fd, LOCK_SH | LOCK_NB) == 0 || errno != EWOULDBLOCK)
			bad = "sh-not-refused";
	} else if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		flock(fd, LOCK_UN);
	}
	if (fd >= 0)
		close(fd);
	if (!bad)
		record_write(w->ctx->logfd, util_now_us(), w->who, "FLOCK %ld ok", w->seq);
	else if (control_daemon_state(w->ctx->ctl) != (uint32_t)(2 * w->epoch + 1))
		record_write(w->ctx->logfd, util_now_us(), w->who, "FLOCK %ld excused", w->seq);
	else
		record_write(w->ctx->logfd, util_now_us(), w->who, "FLOCK %ld bad:%s", w->seq, bad);
}

static int64_t worker_pick_timeout(struct worker *w)
{
	int p = (int)util_rand_range(&w->rng, 0, 99);

	if (p < 25)
		return 0;
	if (p < 65)
		return util_rand_range(&w->rng, 1, 50);
	if (p < 85)
		return 200;
	if (p < 95)
		return SOAK_TIMEOUT_MAX_MS;
	/* Forever ends too: nobody holds more than one lease, holds are short,
	 * so only a daemon that loses a wake-up leaves it hanging. */
	return HASP_WAIT_FOREVER;
}

static void worker_hold(struct worker *w, int res, bool shared)
{
	int64_t hold = util_rand_range(&w->rng, 0, 4) == 0 ? 0 : util_rand_range(&w->rng, 0, 3000);

	util_sleep_us(hold / 2);
	if (res >= 3)
		worker_check_flock(w, res, shared);
	util_sleep_us(hold - hold / 2);
}

static void worker_release(struct worker *w, hasp_lease *l)
{
	int fd = w->ctx->logfd;
	int r;

	record_write(fd, util_now_us(), w->who, "EXIT %ld", w->seq);
	r = hasp_unlock(w->c, l);
	if (r == 0)
		return;
	if (worker_lost_code(r)) {
		record_write(fd, util_now_us(), w->who, "RELLOST %ld %d %d", w->seq, -r, w->epoch);
		worker_drop(w);
	} else {
		record_write(fd, util_now_us(), w->who, "RELERR %ld %d", w->seq, -r);
	}
}

static void worker_once(struct worker *w)
{
	struct hasp_lock_options o = HASP_LOCK_OPTIONS_INIT;
	int res = (int)util_rand_range(&w->rng, 0, SOAK_RESOURCES - 1);
	bool shared = util_rand_range(&w->rng, 0, 99) < shared_pct[res];
	int fd = w->ctx->logfd;
	hasp_lease *l = NULL;
	int64_t t0, t1;
	int r;

	o.mode = shared ? HASP_SHARED : HASP_EXCLUSIVE;
	o.timeout_ms = worker_pick_timeout(w);
	o.owner = w->who;
	w->seq++;
	record_write(fd, util_now_us(), w->who, "WANT %ld %s %c %lld", w->seq, names[res],
		     shared ? 'S' : 'X', (long long)o.timeout_ms);
	t0 = util_now_us();
	if (res < 3)
		r = hasp_lock(w->c, names[res], &o, &l);
	else
		r = hasp_lock_file(w->c, w->ctx->ctl->files[res - 3], &o, &l);
	t1 = util_now_us(); /* after the reply: a lease begins no later than this */
	if (r == 0) {
		record_write(fd, t1, w->who, "ENTER %ld %llu %llu %d %lld", w->seq,
			     (unsigned long long)hasp_lease_id(l),
			     (unsigned long long)hasp_lease_fence(l), w->epoch, (long long)(t1 - t0));
		worker_hold(w, res, shared);
		worker_release(w, l);
	} else if (r == -HASP_E_BUSY) {
		record_write(fd, t1, w->who, "BUSY %ld %lld", w->seq, (long long)(t1 - t0));
	} else if (r == -HASP_E_TIMEOUT) {
		record_write(fd, t1, w->who, "TIMEOUT %ld %lld", w->seq, (long long)(t1 - t0));
	} else if (worker_lost_code(r)) {
		record_write(fd, t1, w->who, "LOST %ld %d %d", w->seq, -r, w->epoch);
		worker_drop(w);
	} else {
		record_write(fd, t1, w->who, "ERR %ld %d", w->seq, -r);
	}
}

void worker_main(const struct worker_ctx *ctx)
{
	struct worker w = { .ctx = ctx, .rng = ctx->seed };

	snprintf(w.who, sizeof(w.who), "w%d.%d", ctx->id, ctx->gen);
	record_write(ctx->logfd, util_now_us(), w.who, "START %d", (int)getpid());
	while (!control_stopped(ctx->ctl)) {
		if (!w.c && !(w.c = worker_connect(&w)))
			break;
		worker_once(&w);
	}
	hasp_close(w.c);
	record_write(ctx->logfd, util_now_us(), w.who, "DONE");
	_exit(0);
}
