#include "autostart.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buildconf.h"
#include "libhasp-internal.h"

/* Ten minutes idle, then the daemon goes: long enough that a script's
 * successive hasp commands share one daemon (and its fences and queues),
 * short enough that nobody finds a forgotten one. */
#define AUTOSTART_IDLE_S 600
/* How long a client waits for the daemon it started (or another client's)
 * to listen. A haspd listens within milliseconds; this is for a machine
 * under load. */
#define AUTOSTART_WAIT_MS 5000
/* The descriptor on which haspd says it listens (--ready-fd). */
#define AUTOSTART_READY_FD 3

/* Everything the child needs, made before fork(): after it, in a
 * program with threads, only async-signal-safe calls are allowed. */
struct spawn {
	char *argv[10];
	char **envp;
	int devnull;
	int ready;              /* the pipe's write end */
	int max_fd;             /* for closing without close_range() */
};

extern char **environ;

bool autostart_wanted(void)
{
	const char *no = getenv("HASP_NO_AUTOSTART");

	return !no || !*no || strcmp(no, "0") == 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The haspd to start, into buf: $HASP_HASPD (a build tree's, for tests),
 * else the installed one, else the first on $PATH. -ENOENT if none. */
static int autostart_search(char *buf, size_t size)
{
	const char *env = getenv("HASP_HASPD"), *path = getenv("PATH");

	if (env && *env)
		return snprintf(buf, size, "%s", env) < (int)size ? 0 : -ENAMETOOLONG;
	if (access(HASP_HASPD_INSTALLED, X_OK) == 0)
		return snprintf(buf, size, "%s", HASP_HASPD_INSTALLED) < (int)size ? 0 : -ENAMETOOLONG;
	for (const char *p = path; p && *p; p += strcspn(p, ":"), p += *p == ':') {
		int n = (int)strcspn(p, ":");

		if (n > 0 && snprintf(buf, size, "%.*s/haspd", n, p) < (int)size &&
		    access(buf, X_OK) == 0)
			return 0;
	}
	return -ENOENT;
}

/* autostart_search()'s, as an absolute path (haspd starts in "/"), into
 * buf (PATH_MAX bytes). */
static int autostart_find(char *buf)
{
	char found[PATH_MAX];
	int r = autostart_search(found, sizeof(found));

	if (r < 0)
		return r;
	return realpath(found, buf) ? 0 : -errno;
}

/* Whether an environment entry is meant for the caller alone: a service
 * manager's (readiness, sockets, state directory) would make haspd speak
 * for the caller's service, or keep its state there. */
static bool autostart_private(const char *entry)
{
	static const char *const names[] = { "NOTIFY_SOCKET=", "LISTEN_FDS=", "LISTEN_PID=",
					     "LISTEN_FDNAMES=", "STATE_DIRECTORY=", "WATCHDOG_USEC=",
					     "WATCHDOG_PID=" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strncmp(entry, names[i], strlen(names[i])) == 0)
			return true;
	return false;
}

/* The caller's environment without autostart_private()'s entries: an
 * array of its strings, to free() alone. NULL on ENOMEM. */
static char **autostart_env(void)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ && environ[n])
		n++;
	env = calloc(n + 1, sizeof(*env));
	for (size_t i = 0; env && i < n; i++)
		if (!autostart_private(environ[i]))
			env[k++] = environ[i];
	return env;
}

/* In the grandchild: stdin, stdout and stderr on /dev/null, the ready
 * pipe as AUTOSTART_READY_FD, nothing else open (a descriptor the caller
 * forgot to make close-on-exec, such as the read end of its own output
 * pipe, must not be held open for ten minutes), default signals, then
 * haspd. Async-signal-safe calls only. */
static _Noreturn void autostart_exec(const struct spawn *s)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;
	/* Above the targets of dup2() below, so that none is overwritten. */
	int null = fcntl(s->devnull, F_DUPFD, 10), ready = fcntl(s->ready, F_DUPFD, 10);

	if (null < 0 || ready < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0 ||
	    dup2(ready, AUTOSTART_READY_FD) < 0)
		_exit(127);
	if (close_range(AUTOSTART_READY_FD + 1, ~0u, 0) < 0)
		for (int fd = AUTOSTART_READY_FD + 1; fd < s->max_fd; fd++)
			close(fd);
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL); /* an ignored SIGTERM would survive exec */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	umask(077);
	if (chdir("/") < 0) /* never keep the caller's directory busy */
		_exit(127);
	execve(s->argv[0], s->argv, s->envp);
	_exit(127);
}

/* Forks twice: the daemon is in a session of its own (no controlling
 * terminal, no signal from the caller's terminal or process group) and is
 * no child of the caller's, whose SIGCHLD and wait() it must not disturb.
 * The middle child is reaped here at once. */
static int autostart_spawn(const struct spawn *s)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		pid_t daemon;

		if (setsid() < 0)
			_exit(127);
		daemon = fork();
		if (daemon == 0)
			autostart_exec(s);
		_exit(daemon < 0 ? 127 : 0);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return 0;
}

/* Until end (now_ms() time): 0 once haspd wrote to the ready pipe,
 * -ECHILD at its end of file (haspd exited first), -ETIMEDOUT. */
static int autostart_wait_ready(int fd, int64_t end)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	for (;;) {
		int64_t left = end - now_ms();
		int r = poll(&p, 1, left > 0 ? (int)left : 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -ETIMEDOUT;
		r = (int)read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		return r == 1 ? 0 : -ECHILD;
	}
}

/* Whether anyone accepts on path now. */
static bool autostart_listening(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool yes;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	yes = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return yes;
}

/* Our haspd exited without listening: most likely it lost the instance
 * lock to one another client started a moment earlier, which may still be
 * restoring its checkouts. There is no pipe to that one: poll, with a
 * back-off, until end. */
static int autostart_wait_other(const char *path, int64_t end)
{
	int delay = 1;

	while (!autostart_listening(path)) {
		if (now_ms() >= end)
			return -ECHILD;
		poll(NULL, 0, delay);
		delay = delay < 64 ? delay * 2 : 100;
	}
	return 0;
}

/* haspd's argv in s, for path and idle (its strings kept by the caller). */
static void autostart_argv(struct spawn *s, char *haspd, const char *path, char *idle)
{
	const char *v = getenv("HASP_AUTOSTART_IDLE");

	snprintf(idle, 16, "%d", AUTOSTART_IDLE_S);
	if (v && *v && strspn(v, "0123456789") == strlen(v) && strlen(v) < 9)
		snprintf(idle, 16, "%s", v); /* for tests: a daemon that goes within a second */
	s->argv[0] = haspd;
	s->argv[1] = "--socket";
	s->argv[2] = (char *)path;
	s->argv[3] = "--idle-exit";
	s->argv[4] = idle;
	s->argv[5] = "--ready-fd";
	s->argv[6] = "3";
	s->argv[7] = NULL;
}

/* Starts it and waits; -errno. */
static int autostart_run(struct spawn *s, const char *path, int ready_r)
{
	int64_t end = now_ms() + AUTOSTART_WAIT_MS;
	int r = autostart_spawn(s);

	close(s->ready); /* ours: only haspd's may keep the pipe open */
	s->ready = -1;
	if (r < 0)
		return r;
	r = autostart_wait_ready(ready_r, end);
	return r == -ECHILD ? autostart_wait_other(path, end) : r;
}

static int autostart_failed(hasp_client *c, int r, const char *path, const char *haspd)
{
	if (r == -ECHILD)
		return libhasp_error(c, r, "cannot connect to haspd at %s: the haspd started for it "
				     "(%s) exited without listening; run it with --socket %s to "
				     "see why, or set HASP_NO_AUTOSTART=1", path, haspd, path);
	if (r == -ETIMEDOUT)
		return libhasp_error(c, r, "cannot connect to haspd at %s: the haspd started for it "
				     "(%s) did not listen within %d ms", path, haspd,
				     AUTOSTART_WAIT_MS);
	return libhasp_error(c, r, "cannot connect to haspd at %s: cannot start %s for it: %s",
			     path, haspd, strerror(-r));
}

int autostart_haspd(hasp_client *c, const char *path)
{
	struct spawn s = { .devnull = -1, .ready = -1 };
	char haspd[PATH_MAX], idle[16];
	int p[2] = { -1, -1 }, r = autostart_find(haspd);

	if (r < 0)
		return libhasp_error(c, r, "cannot connect to haspd at %s: no daemon there, and no "
				     "haspd to start (%s, or on PATH)", path, HASP_HASPD_INSTALLED);
	autostart_argv(&s, haspd, path, idle);
	s.max_fd = (int)sysconf(_SC_OPEN_MAX);
	s.envp = autostart_env();
	s.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (!s.envp)
		r = -ENOMEM;
	else if (s.devnull < 0 || pipe2(p, O_CLOEXEC) < 0)
		r = -errno;
	else {
		s.ready = p[1];
		r = autostart_run(&s, path, p[0]);
	}
	if (p[0] >= 0)
		close(p[0]);
	if (s.ready >= 0)
		close(s.ready);
	if (s.devnull >= 0)
		close(s.devnull);
	free(s.envp);
	return r < 0 ? autostart_failed(c, r, path, haspd) : 0;
}
