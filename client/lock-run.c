/* hasp lock's command: run while the lease is held (and renewed, with
 * --ttl), and stopped when the lease is lost (revoked, expired, or haspd
 * gone), as `consul lock` does. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lock.h"

/* How often the child is looked at where pidfds are missing (before
 * Linux 5.3). */
#define LOCK_POLL_MS 50

static pid_t start_command(hasp_client *c, const struct lock_args *a)
{
	char *sh[4], **argv = lock_argv(a, sh);
	int fd = hasp_client_fd(c);
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid != 0)
		return pid;
	if (a->close_fd)
		close(a->fd >= 0 ? a->fd : fd); /* flock(1)'s --close: the locked descriptor */
	if (!a->close_fd || a->fd >= 0)
		fcntl(fd, F_SETFD, 0); /* COMMAND inherits the session */
	execvp(argv[0], argv);
	fprintf(stderr, "%s: cannot run %s: %s\n", CLI_NAME, argv[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How often a lease with a TTL is renewed: every third of it, so that one
 * late renew does not lose it. */
static int64_t renew_interval(const struct lock_args *a)
{
	return a->ttl_ms / 3 > 0 ? a->ttl_ms / 3 : 1;
}

/* Says how the lease was lost (r: 1 revoked, 2 expired, 3 lost by haspd in
 * cluster mode, else why the connection ended or the renew failed) and
 * what is done about it. */
static void report_loss(hasp_client *c, const hasp_lease *l, int r, const struct lock_args *a)
{
	static const char *const done[] = {
		[LOCK_LOST_TERM] = "stopping the command (SIGTERM)",
		[LOCK_LOST_KILL] = "killing the command (SIGKILL)",
		[LOCK_LOST_IGNORE] = "the command runs on (--on-lost=ignore)",
	};

	char *name = cli_escape(hasp_lease_key(l));
	char *why = cli_escape(*hasp_client_errmsg(c) ? hasp_client_errmsg(c) : hasp_strerror(r));

	/* One write: the line stays whole beside the command's output. */
	if (r == 1)
		fprintf(stderr, "%s: the lease on '%s' was revoked; %s\n", CLI_NAME,
			name ? name : "?", done[a->on_lost]);
	else if (r == 2 || r == -HASP_E_UNKNOWN_LEASE)
		fprintf(stderr, "%s: the lease on '%s' expired (not renewed within its TTL); %s\n",
			CLI_NAME, name ? name : "?", done[a->on_lost]);
	else if (r == 3)
		fprintf(stderr, "%s: the lease on '%s' was lost: haspd could not keep it in etcd "
			"(cluster mode); %s\n", CLI_NAME, name ? name : "?", done[a->on_lost]);
	else if (r == -ECONNRESET)
		fprintf(stderr, "%s: the lease on '%s' was lost: haspd went away (it stopped, "
			"crashed or restarted); %s\n", CLI_NAME, name ? name : "?",
			done[a->on_lost]);
	else
		fprintf(stderr, "%s: the lease on '%s' may be lost: %s; %s\n", CLI_NAME,
			name ? name : "?", why ? why : "?", done[a->on_lost]);
	free(name);
	free(why);
}

struct watch {
	pid_t pid;
	int pidfd;              /* or -1: look every LOCK_POLL_MS */
	bool lost;
	int64_t kill_at_ms;     /* after SIGTERM, when SIGKILL follows; else -1 */
	int64_t renew_at_ms;    /* with a TTL, when to renew the lease; else -1 */
	int status;
};

/* The lease is lost (r as report_loss() takes it): the command is told. */
static void lease_lost(struct watch *w, hasp_client *c, const hasp_lease *l, int r,
		       const struct lock_args *a)
{
	w->lost = true;
	w->renew_at_ms = -1;
	report_loss(c, l, r, a);
	if (a->on_lost == LOCK_LOST_KILL) {
		kill(w->pid, SIGKILL);
	} else if (a->on_lost == LOCK_LOST_TERM) {
		kill(w->pid, SIGTERM);
		w->kill_at_ms = now_ms() + a->kill_after_ms;
	}
}

/* The lease's connection spoke: an event, or its end. */
static void watch_lease(struct watch *w, hasp_client *c, const hasp_lease *l,
			const struct lock_args *a)
{
	int r = hasp_lease_revoked(c, l);

	if (r != 0)
		lease_lost(w, c, l, r, a);
}

/* A third of the TTL has passed since the last renew: renew again. Any
 * failure is a loss, told as precisely as known: an expiry or revoke that
 * the daemon announced, else why the renew failed. */
static void renew_lease(struct watch *w, hasp_client *c, const hasp_lease *l,
			const struct lock_args *a)
{
	int r = hasp_renew(c, l, 0, NULL);
	int why = r < 0 ? hasp_lease_revoked(c, l) : 0;

	if (r < 0) {
		lease_lost(w, c, l, why > 0 ? why : r, a);
		return;
	}
	w->renew_at_ms = now_ms() + renew_interval(a);
}

/* Whether the command has ended (its status then in w->status). */
static bool reaped(struct watch *w)
{
	pid_t p = waitpid(w->pid, &w->status, WNOHANG);

	return p == w->pid || (p < 0 && errno != EINTR);
}

/* ms until t (-1: never), for poll(2), at most max (-1: no bound). */
static int64_t ms_until(int64_t t, int64_t max)
{
	int64_t left;

	if (t < 0)
		return max;
	left = t - now_ms();
	if (left < 0)
		left = 0;
	return max >= 0 && left > max ? max : left;
}

static int poll_timeout(const struct watch *w)
{
	int64_t left = ms_until(w->kill_at_ms, w->pidfd < 0 ? LOCK_POLL_MS : -1);

	left = ms_until(w->renew_at_ms, left);
	return left > INT_MAX ? INT_MAX : (int)left;
}

/* Waits for the command, and acts on the lease's loss meanwhile. */
static void watch(struct watch *w, hasp_client *c, const hasp_lease *l, const struct lock_args *a)
{
	struct pollfd p[2] = {
		{ .fd = w->pidfd, .events = POLLIN },
		/* The fd form's lock is the descriptor's: nothing to lose. */
		{ .fd = a->fd >= 0 ? -1 : hasp_client_fd(c), .events = POLLIN },
	};

	while (!reaped(w)) {
		if (poll(p, 2, poll_timeout(w)) < 0 && errno != EINTR)
			break;
		if (p[1].revents && !w->lost) {
			watch_lease(w, c, l, a);
			if (w->lost)
				p[1].fd = -1; /* said once; an ended connection stays readable */
		}
		if (w->kill_at_ms >= 0 && now_ms() >= w->kill_at_ms) {
			kill(w->pid, SIGKILL);
			w->kill_at_ms = -1;
		}
		if (w->renew_at_ms >= 0 && now_ms() >= w->renew_at_ms && !w->lost) {
			renew_lease(w, c, l, a);
			if (w->lost)
				p[1].fd = -1;
		}
	}
	while (waitpid(w->pid, &w->status, 0) < 0 && errno == EINTR)
		;
}

int lock_run(hasp_client *c, const hasp_lease *l, const struct lock_args *a)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, old_int, old_quit;
	struct watch w = { .pidfd = -1, .kill_at_ms = -1, .renew_at_ms = -1 };

	w.pid = start_command(c, a);
	if (w.pid < 0) {
		fprintf(stderr, "%s: fork: %s\n", CLI_NAME, strerror(errno));
		return EXIT_OSERR;
	}
	w.pidfd = (int)syscall(SYS_pidfd_open, w.pid, 0);
	if (a->ttl_ms > 0 && a->fd < 0)
		w.renew_at_ms = now_ms() + renew_interval(a);
	/* Like system(3): the terminal's ^C and ^\ are for COMMAND, whose
	 * status is the one to report. */
	sigaction(SIGINT, &ign, &old_int);
	sigaction(SIGQUIT, &ign, &old_quit);
	watch(&w, c, l, a);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGQUIT, &old_quit, NULL);
	if (w.pidfd >= 0)
		close(w.pidfd);
	if (w.lost && a->on_lost != LOCK_LOST_IGNORE)
		return EXIT_LEASE_LOST;
	if (WIFSIGNALED(w.status))
		return 128 + WTERMSIG(w.status);
	return WEXITSTATUS(w.status);
}
