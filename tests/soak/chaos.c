/* The parent: a daemon, workers, the chaos (killing workers and the daemon),
 * a clean stop, the daemon's figures before and after, then the checker. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hasp.h"
#include "soak.h"

#define CHAOS_STOP_MS (SOAK_TIMEOUT_MAX_MS + 20000)  /* every worker answered and exited */
#define CHAOS_KILL_WAIT_MS 10000                     /* a SIGKILLed worker is gone */
#define CHAOS_QUIET_MS 10000                         /* the daemon saw every session end */

struct slot {
	pid_t pid;
	int pidfd;
	int gen;
};

struct chaos {
	const struct soak_opts *o;
	struct control *ctl;
	struct daemon d;
	int epoch;
	int logfd;
	char dir[64], log[512], fence[96];
	struct slot *w;
	uint64_t rng;
	int next_gen;
	int base_fds;
};

/* Gives up: nothing of the run may outlive it. */
static void chaos_fatal(struct chaos *ch, const char *what)
{
	fprintf(stderr, "hasp-soak: %s (seed %llu, log %s)\n", what,
		(unsigned long long)ch->o->seed, ch->log);
	for (int i = 0; ch->w && i < ch->o->workers; i++)
		if (ch->w[i].pid > 0)
			kill(ch->w[i].pid, SIGKILL);
	if (ch->d.pid > 0)
		kill(ch->d.pid, SIGKILL);
	exit(2);
}

static void chaos_spawn(struct chaos *ch, int id)
{
	struct slot *s = &ch->w[id];
	struct worker_ctx ctx = { .id = id, .gen = ++ch->next_gen, .logfd = ch->logfd, .ctl = ch->ctl };
	pid_t parent = getpid();
	char who[32];

	ctx.seed = ch->o->seed * 0x9e3779b97f4a7c15ull + (uint64_t)ctx.gen * 0xbf58476d1ce4e5b9ull + 1;
	fflush(NULL);
	s->pid = fork();
	if (s->pid < 0)
		chaos_fatal(ch, "fork failed");
	if (s->pid == 0) {
		/* a parent killed by a test runner takes its workers along */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(6);
		worker_main(&ctx);
	}
	s->gen = ctx.gen;
	s->pidfd = pidfd_open(s->pid, 0);
	if (s->pidfd < 0)
		chaos_fatal(ch, "pidfd_open failed");
	snprintf(who, sizeof(who), "w%d.%d", id, s->gen);
	record_write(ch->logfd, util_now_us(), "P", "SPAWN %s %d", who, (int)s->pid);
}

/* Reaps a worker whose pidfd is readable (or after SIGKILL) and logs how it
 * ended. */
static void chaos_reap(struct chaos *ch, int id)
{
	struct slot *s = &ch->w[id];
	char who[32];
	int status = 0;

	if (waitpid(s->pid, &status, 0) != s->pid)
		status = -1;
	close(s->pidfd);
	snprintf(who, sizeof(who), "w%d.%d", id, s->gen);
	record_write(ch->logfd, util_now_us(), "P", "REAP %s %d", who,
		     WIFEXITED(status) ? WEXITSTATUS(status) :
		     WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 255);
	s->pid = 0;
	s->pidfd = -1;
}

static void chaos_kill_worker(struct chaos *ch, int id)
{
	struct slot *s = &ch->w[id];
	char who[32];

	snprintf(who, sizeof(who), "w%d.%d", id, s->gen);
	/* stamped before kill(2): the worker's lease, if any, lasts at least until then */
	record_write(ch->logfd, util_now_us(), "P", "KILL %s %d", who, (int)s->pid);
	kill(s->pid, SIGKILL);
	if (!daemon_wait_pidfd(s->pidfd, CHAOS_KILL_WAIT_MS))
		chaos_fatal(ch, "a SIGKILLed worker did not die");
	chaos_reap(ch, id);
}

static void chaos_restart_daemon(struct chaos *ch)
{
	int64_t ts = util_now_us();

	control_set_daemon_state(ch->ctl, 2u * (uint32_t)ch->epoch);
	record_write(ch->logfd, ts, "P", "DAEMON_KILL %d", ch->epoch); /* stamped before kill(2) */
	daemon_kill(&ch->d);
	ch->epoch++;
	if (daemon_start(&ch->d) < 0)
		chaos_fatal(ch, "haspd did not restart");
	control_set_daemon_state(ch->ctl, 2u * (uint32_t)ch->epoch + 1);
	record_write(ch->logfd, util_now_us(), "P", "DAEMON_START %d %d", ch->epoch, (int)ch->d.pid);
}

/* Workers that exit on their own (they should not before the stop) are
 * reaped, logged and replaced. Waits at most timeout_ms. */
static void chaos_watch(struct chaos *ch, int timeout_ms)
{
	int n = ch->o->workers;
	struct pollfd *p = util_calloc((size_t)n, sizeof(*p));

	for (int i = 0; i < n; i++)
		p[i] = (struct pollfd){ .fd = ch->w[i].pidfd, .events = POLLIN };
	if (poll(p, (nfds_t)n, timeout_ms) > 0) {
		for (int i = 0; i < n; i++) {
			if (p[i].revents) {
				chaos_reap(ch, i);
				chaos_spawn(ch, i);
			}
		}
	}
	free(p);
}

static void chaos_phase(struct chaos *ch, const char *name, double seconds, bool daemon_kills)
{
	int64_t now = util_now_us(), end = now + (int64_t)(seconds * 1e6);
	int64_t next_kill = now + util_rand_range(&ch->rng, 20000, 100000);
	int64_t next_dkill = now + util_rand_range(&ch->rng, 300000, 1200000);

	record_write(ch->logfd, now, "P", "PHASE %s %.0f", name, seconds * 1000);
	while ((now = util_now_us()) < end) {
		int64_t next = next_kill;

		if (daemon_kills && next_dkill < next)
			next = next_dkill;
		if (end < next)
			next = end;
		chaos_watch(ch, next > now ? (int)((next - now + 999) / 1000) : 0);
		now = util_now_us();
		if (now >= next_kill) {
			int id = (int)util_rand_range(&ch->rng, 0, ch->o->workers - 1);

			chaos_kill_worker(ch, id);
			chaos_spawn(ch, id);
			next_kill = now + util_rand_range(&ch->rng, 20000, 100000);
		}
		if (daemon_kills && now >= next_dkill) {
			chaos_restart_daemon(ch);
			next_dkill = util_now_us() + util_rand_range(&ch->rng, 300000, 1200000);
		}
	}
}

/* Tells the workers to stop and waits, bounded, for every one to exit. A
 * worker still there at the deadline left a waiter unanswered. */
static int chaos_stop(struct chaos *ch)
{
	int n = ch->o->workers, left = n, hung = 0;
	int64_t end = util_now_us() + CHAOS_STOP_MS * 1000LL;
	struct pollfd *p = util_calloc((size_t)n, sizeof(*p));

	record_write(ch->logfd, util_now_us(), "P", "STOP %d", n);
	control_set_stop(ch->ctl, true);
	control_set_daemon_state(ch->ctl, control_daemon_state(ch->ctl)); /* wake waiters */
	while (left > 0) {
		int64_t now = util_now_us();

		for (int i = 0; i < n; i++)
			p[i] = (struct pollfd){ .fd = ch->w[i].pid ? ch->w[i].pidfd : -1, .events = POLLIN };
		if (now >= end || poll(p, (nfds_t)n, (int)((end - now + 999) / 1000)) <= 0)
			break;
		for (int i = 0; i < n; i++) {
			if (ch->w[i].pid && p[i].revents) {
				chaos_reap(ch, i);
				left--;
			}
		}
	}
	for (int i = 0; i < n; i++) {
		char who[32];

		if (!ch->w[i].pid)
			continue;
		snprintf(who, sizeof(who), "w%d.%d", i, ch->w[i].gen);
		record_write(ch->logfd, util_now_us(), "P", "HUNG %s %d", who, (int)ch->w[i].pid);
		fprintf(stderr, "hasp-soak: %s did not exit within %d ms after the stop\n", who,
			CHAOS_STOP_MS);
		chaos_kill_worker(ch, i);
		hung++;
	}
	free(p);
	control_set_stop(ch->ctl, false);
	return hung;
}

/* Waits until the daemon has seen every worker session end, then records
 * its figures; returns its descriptor count. Polling: the daemon has no
 * event for it. */
static int chaos_figures(struct chaos *ch, hasp_client *c, const char *kind, int want_fds)
{
	int64_t end = util_now_us() + CHAOS_QUIET_MS * 1000LL;
	struct gauges g = { 0 };
	int fds;

	for (;;) {
		if (daemon_gauges(c, &g) < 0)
			chaos_fatal(ch, "stats failed");
		fds = daemon_fds(&ch->d);
		if ((g.sessions == 1 && g.leases == 0 && g.waiters == 0 && g.resources == 0 &&
		     (want_fds < 0 || fds == want_fds)) || util_now_us() > end)
			break;
		util_sleep_us(5000);
	}
	record_write(ch->logfd, util_now_us(), "P",
		     "%s fds=%d heap=%lld sessions=%lld leases=%lld waiters=%lld resources=%lld",
		     kind, fds, g.heap_bytes, g.sessions, g.leases, g.waiters, g.resources);
	return fds;
}

static void chaos_spawn_all(struct chaos *ch)
{
	for (int i = 0; i < ch->o->workers; i++)
		chaos_spawn(ch, i);
}

static void chaos_setup(struct chaos *ch)
{
	snprintf(ch->dir, sizeof(ch->dir), "/tmp/hasp-soak-XXXXXX");
	if (!mkdtemp(ch->dir))
		chaos_fatal(ch, "mkdtemp failed");
	snprintf(ch->ctl->socket, sizeof(ch->ctl->socket), "%s/haspd.sock", ch->dir);
	snprintf(ch->fence, sizeof(ch->fence), "%s/haspd.fence", ch->dir);
	for (int i = 0; i < 2; i++)
		snprintf(ch->ctl->files[i], sizeof(ch->ctl->files[i]), "%s/f%d", ch->dir, i);
	if (ch->o->keep_log)
		snprintf(ch->log, sizeof(ch->log), "%s", ch->o->keep_log);
	else
		snprintf(ch->log, sizeof(ch->log), "%s/soak.log", ch->dir);
	ch->logfd = open(ch->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (ch->logfd < 0)
		chaos_fatal(ch, "cannot create the log");
	ch->d = (struct daemon){ .haspd = ch->o->haspd, .socket = ch->ctl->socket, .pidfd = -1 };
	ch->w = util_calloc((size_t)ch->o->workers, sizeof(*ch->w));
}

static void chaos_cleanup(struct chaos *ch, bool keep_log)
{
	for (int i = 0; i < 2; i++)
		unlink(ch->ctl->files[i]);
	unlink(ch->ctl->socket);
	unlink(ch->fence);
	if (!keep_log && !ch->o->keep_log)
		unlink(ch->log);
	rmdir(ch->dir); /* fails, and so keeps the log, when it is still there */
	free(ch->w);
}

static void chaos_timeline(struct chaos *ch, hasp_client **checker)
{
	double d = ch->o->duration;
	double restarts = ch->o->daemon_restarts ? 0.4 * d : 0;
	double warmup = 0.15 * d > 1 ? 0.15 * d : 1;
	double main_phase = d - restarts - warmup > 1 ? d - restarts - warmup : 1;

	chaos_spawn_all(ch);
	if (restarts > 0) {
		chaos_phase(ch, "restarts", restarts, true);
		/* The daemon measured for a baseline gets the same warm-up. */
		chaos_restart_daemon(ch);
	}
	chaos_phase(ch, "warmup", warmup, false);
	chaos_stop(ch);
	if (hasp_connect(ch->ctl->socket, checker) < 0)
		chaos_fatal(ch, "the checker cannot connect");
	ch->base_fds = chaos_figures(ch, *checker, "BASELINE", -1);
	chaos_spawn_all(ch);
	chaos_phase(ch, "main", main_phase, false);
	chaos_stop(ch);
}

int chaos_run(const struct soak_opts *o)
{
	struct chaos ch = { .o = o, .rng = o->seed ^ 0x5eed, .epoch = 1 };
	struct check_result r;
	hasp_client *checker = NULL;
	int rc;

	/* Children's exits are awaited through pidfds (Linux 5.3); valgrind,
	 * for one, does not know the call: skip rather than fail. */
	rc = pidfd_open(getpid(), 0);
	if (rc < 0) {
		printf("hasp-soak: skipped: pidfd_open: %s\n", strerror(errno));
		return 77;
	}
	close(rc);
	ch.ctl = control_new();
	chaos_setup(&ch);
	printf("hasp-soak: seed %llu, %d workers, %.0f s, daemon restarts %s, log %s\n",
	       (unsigned long long)o->seed, o->workers, o->duration,
	       o->daemon_restarts ? "on" : "off", ch.log);
	fflush(stdout);
	record_write(ch.logfd, util_now_us(), "P", "CONFIG seed=%llu workers=%d duration=%g restarts=%d",
		     (unsigned long long)o->seed, o->workers, o->duration, o->daemon_restarts);
	if (daemon_start(&ch.d) < 0)
		chaos_fatal(&ch, "haspd did not start");
	control_set_daemon_state(ch.ctl, 2u * (uint32_t)ch.epoch + 1);
	record_write(ch.logfd, util_now_us(), "P", "DAEMON_START %d %d", ch.epoch, (int)ch.d.pid);
	chaos_timeline(&ch, &checker);
	chaos_figures(&ch, checker, "FINAL", ch.base_fds);
	hasp_close(checker);
	rc = daemon_stop(&ch.d);
	record_write(ch.logfd, util_now_us(), "P", "DAEMON_EXIT %d",
		     WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc));
	close(ch.logfd);
	/* Every writer is gone: the workers reaped, the log closed. */
	rc = check_file(ch.log, &r);
	check_print(&r);
	if (rc != 0)
		fprintf(stderr, "hasp-soak: FAILED (seed %llu); the log is kept at %s\n",
			(unsigned long long)o->seed, ch.log);
	else
		printf("hasp-soak: OK\n");
	chaos_cleanup(&ch, rc != 0);
	return rc == 0 ? 0 : 1;
}
