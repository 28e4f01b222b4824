/* Which socket a client without one finds (the system daemon's first, then
 * the caller's own), hasp ping naming it, and the per-user haspd libhasp
 * starts on demand: one for racing clients, detached, gone once idle,
 * never for an explicit socket or with HASP_NO_AUTOSTART=1.
 *
 * Each test has a private XDG_RUNTIME_DIR and a "system" socket path
 * (HASP_SYSTEM_SOCKET) in a temporary directory. The test process is a
 * child subreaper, so that every daemon a client starts (forked twice,
 * orphaned) becomes its child: it can wait for one's exit by pid, and the
 * teardown stops every one left. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_run.h"
#include "harness.h"
#include "hasp.h"

#define MAX_DAEMONS 16

static char xdg[64];            /* the private XDG_RUNTIME_DIR */
static char own_sock[128];      /* $XDG_RUNTIME_DIR/hasp/haspd.sock */
static char sys_sock[128];      /* HASP_SYSTEM_SOCKET: nothing there unless a test puts it */

/* The daemons that are children of this one (started by a test, or
 * started by a client and orphaned to us), by /proc: every live child is
 * one, since each client run is waited for. Not by name: under the
 * valgrind setup, a daemon the harness starts is valgrind. */
static size_t our_daemons(pid_t *pids, size_t max)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	size_t n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) && n < max) {
		char path[300], line[256], state;
		int pid, ppid;
		FILE *f;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		/* "pid (comm) state ppid": comm may hold spaces, not ")" here. */
		if (fgets(line, sizeof(line), f) && strrchr(line, ')') &&
		    sscanf(strrchr(line, ')') + 1, " %c %d", &state, &ppid) == 2 &&
		    ppid == (int)getpid() && state != 'Z' && sscanf(line, "%d", &pid) == 1)
			pids[n++] = pid;
		fclose(f);
	}
	closedir(d);
	return n;
}

/* The one haspd child there is: fails unless there is exactly one. */
static pid_t the_daemon(void)
{
	pid_t pids[MAX_DAEMONS];
	size_t n = our_daemons(pids, MAX_DAEMONS);

	ck_assert_msg(n == 1, "%zu haspd processes, not 1", n);
	return pids[0];
}

static void assert_no_daemon(void)
{
	pid_t pids[MAX_DAEMONS];

	ck_assert_uint_eq(our_daemons(pids, MAX_DAEMONS), 0);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static void setup(void)
{
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	snprintf(xdg, sizeof(xdg), "/tmp/hasp-xdg-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(xdg)); /* 0700, ours */
	snprintf(own_sock, sizeof(own_sock), "%s/hasp/haspd.sock", xdg);
	snprintf(sys_sock, sizeof(sys_sock), "%s/system.sock", xdg);
	setenv("XDG_RUNTIME_DIR", xdg, 1);
	setenv("HASP_SYSTEM_SOCKET", sys_sock, 1);
	setenv("HASP_HASPD", haspd_path(), 1);
	setenv("HASP_AUTOSTART_IDLE", "60", 1); /* the teardown stops it */
	unsetenv("HASP_SOCKET");
	unsetenv("HASP_NO_AUTOSTART");
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

/* Stops every daemon left, by pid, and removes what they left behind. */
static void teardown(void)
{
	pid_t pids[MAX_DAEMONS];
	size_t n = our_daemons(pids, MAX_DAEMONS);

	for (size_t i = 0; i < n; i++) {
		kill(pids[i], SIGTERM);
		wait_child(pids[i], DAEMON_START_MS);
	}
	while (waitpid(-1, NULL, WNOHANG) > 0) /* losers of a race, exited */
		;
	/* What the daemons kept beside their sockets, and their directories. */
	ck_assert_int_eq(nftw(xdg, remove_one, 8, FTW_DEPTH | FTW_PHYS), 0);
}

/* A daemon of the test's own on path, waited for. */
static pid_t start_daemon_on(const char *path)
{
	pid_t pid = daemon_spawn(path, -1);

	ck_assert_msg(wait_socket(path, DAEMON_START_MS), "haspd did not start on %s", path);
	return pid;
}

static void stop_daemon(pid_t pid)
{
	int status;

	kill(pid, SIGTERM);
	status = wait_child(pid, DAEMON_START_MS);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "haspd: status %#x", status);
}

/* out says that haspd at path answered. */
static void assert_answered_at(const char *out, const char *path)
{
	char want[256];

	snprintf(want, sizeof(want), "haspd at %s answered in ", path);
	ck_assert_msg(strstr(out, want), "'%s' does not say '%s'", out, want);
}

/* What libhasp chooses in this process: hasp_default_socket(), and where a
 * connection without a path went. */
static void assert_chosen(const char *path)
{
	char buf[128];
	hasp_client *c = NULL;

	ck_assert_int_eq(hasp_default_socket(buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, path);
	c = client_connect(NULL);
	ck_assert_str_eq(hasp_client_socket(c), path);
	ck_assert_int_eq(hasp_ping(c), 0);
	hasp_close(c);
}

/* A socket file nobody listens on (a system haspd that died): connecting
 * to it is refused. */
static void leave_dead_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
}

/* The case: a system haspd listens, so a client without a socket
 * uses it, not a per-user one, and starts nothing. */
START_TEST(the_system_socket_comes_first)
{
	char out[4096];
	pid_t sys = start_daemon_on(sys_sock);

	ck_assert_int_eq(RUN(out, "ping"), 0);
	assert_answered_at(out, sys_sock);
	assert_chosen(sys_sock);
	ck_assert_int_eq(the_daemon(), sys);
	ck_assert(!exists(own_sock));
	stop_daemon(sys);
}
END_TEST

/* No system haspd (no socket, then a dead one): the caller's own socket,
 * whose daemon is already running. */
START_TEST(the_own_socket_without_a_system_daemon)
{
	char out[4096];
	pid_t own = start_daemon_on(own_sock);

	ck_assert_int_eq(RUN(out, "ping"), 0);
	assert_answered_at(out, own_sock);
	assert_chosen(own_sock);
	leave_dead_socket(sys_sock);
	ck_assert_int_eq(RUN(out, "ping"), 0);
	assert_answered_at(out, own_sock);
	assert_chosen(own_sock);
	ck_assert_int_eq(the_daemon(), own);
	stop_daemon(own);
}
END_TEST

/* $HASP_SOCKET wins over a listening system socket. */
START_TEST(hasp_socket_wins)
{
	char out[4096], other[128];
	pid_t sys = start_daemon_on(sys_sock), mine;

	snprintf(other, sizeof(other), "%s/other/haspd.sock", xdg);
	mine = start_daemon_on(other);
	setenv("HASP_SOCKET", other, 1);
	ck_assert_int_eq(RUN(out, "ping"), 0);
	assert_answered_at(out, other);
	assert_chosen(other);
	stop_daemon(mine);
	stop_daemon(sys);
}
END_TEST

/* Clients racing to start the per-user daemon: each is served, by one
 * daemon; the daemons that lost the race exit. */
START_TEST(racing_clients_start_one_daemon)
{
	enum { N = 4 };
	char *args[] = { "hasp", "ping", NULL };
	char out[N][4096];
	int p[N][2];
	pid_t pids[N], daemons[MAX_DAEMONS], served;
	size_t n;

	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(pipe(p[i]), 0);
		pids[i] = cli_spawn(args, -1, p[i][1]);
		close(p[i][1]);
	}
	for (int i = 0; i < N; i++) {
		ck_assert_msg(run_collect(pids[i], p[i][0], out[i], sizeof(out[i])) == 0,
			      "client %d: %s", i, out[i]);
		assert_answered_at(out[i], own_sock);
	}
	/* The one that serves: its pid, as the socket tells it. */
	{
		int fd = raw_connect(own_sock);
		struct ucred cred;
		socklen_t len = sizeof(cred);

		ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len), 0);
		close(fd);
		served = cred.pid;
	}
	n = our_daemons(daemons, MAX_DAEMONS);
	for (size_t i = 0; i < n; i++)
		if (daemons[i] != served)
			wait_child(daemons[i], DAEMON_START_MS); /* a loser: it exits by itself */
	ck_assert_int_eq(the_daemon(), served);
}
END_TEST

/* The started daemon holds nothing of its client's: the client's output
 * pipe ends with the client; it is in a session of its own, its stdio on
 * /dev/null. */
START_TEST(the_started_daemon_is_detached)
{
	char *args[] = { "hasp", "ping", NULL };
	char out[4096] = "", path[64], target[64];
	int p[2];
	pid_t pid, d;
	ssize_t n;

	ck_assert_int_eq(pipe(p), 0);
	pid = cli_spawn(args, -1, p[1]);
	close(p[1]);
	ck_assert_int_eq(wait_child(pid, 30000), 0);
	/* The client is gone: its pipe must be at its end now. */
	ck_assert_msg(wait_output(p[0], "\n", 5000, out, sizeof(out)), "no output: '%s'", out);
	ck_assert_msg(wait_readable(p[0], 5000) && read(p[0], out, sizeof(out)) == 0,
		      "the client's output pipe is still open after it exited");
	close(p[0]);
	d = the_daemon();
	ck_assert_int_ne(getsid(d), getsid(0));
	for (int fd = 0; fd < 3; fd++) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)d, fd);
		n = readlink(path, target, sizeof(target) - 1);
		ck_assert_int_gt(n, 0);
		target[n] = '\0';
		ck_assert_str_eq(target, "/dev/null");
	}
}
END_TEST

/* A started daemon exits by itself (status 0, its socket removed) once
 * idle for its idle-exit time. */
START_TEST(the_started_daemon_exits_when_idle)
{
	char out[4096];
	int status;
	pid_t d;

	setenv("HASP_AUTOSTART_IDLE", "1", 1);
	ck_assert_int_eq(RUN(out, "ping"), 0);
	assert_answered_at(out, own_sock);
	d = the_daemon();
	status = wait_child(d, 10000);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	ck_assert(!exists(own_sock));
	/* The next client starts another. */
	ck_assert_int_eq(RUN(out, "ping"), 0);
	ck_assert_int_ne(the_daemon(), d);
}
END_TEST

/* Whether pid is still running after ms: a bound on what must not happen. */
static bool still_running_after(pid_t pid, int ms)
{
	int64_t end = now_ms() + test_ms(ms);

	while (now_ms() < end) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return false;
		usleep(10000); /* watching for an exit that must not come */
	}
	return true;
}

/* --idle-exit counts only idle time: not while a session, a lease or a
 * checkout is there. */
START_TEST(idle_exit_waits_for_leases_and_checkouts)
{
	char *const opts[] = { "--idle-exit", "1", "--log-level", "warning", NULL };
	struct hasp_acquire_options o = HASP_ACQUIRE_OPTIONS_INIT;
	struct daemon_proc dp;
	hasp_client *c;
	hasp_lease *l = NULL;
	char token[64];
	int status;

	daemon_dir(&dp);
	dp.pid = daemon_spawn_with(dp.socket, opts, -1);
	ck_assert(wait_socket(dp.socket, DAEMON_START_MS));
	c = client_connect(dp.socket); /* within its second idle, or this fails */
	l = client_lock(c, "held", HASP_EXCLUSIVE);
	ck_assert_msg(still_running_after(dp.pid, 2500), "haspd exited with a session and a lease");
	hasp_lease_free(l);
	ck_assert_int_eq(hasp_checkout(c, "kept", &o, &l), 0);
	snprintf(token, sizeof(token), "%s", hasp_lease_token(l));
	hasp_lease_free(l);
	hasp_close(c);
	ck_assert_msg(still_running_after(dp.pid, 2500), "haspd exited with a checkout");
	c = client_connect(dp.socket);
	ck_assert_int_eq(hasp_checkin(c, token), 0);
	hasp_close(c);
	status = wait_child(dp.pid, 10000);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	daemon_dir_remove(&dp);
}
END_TEST

/* HASP_NO_AUTOSTART=1: the error of before, and no daemon. */
START_TEST(no_autostart_when_asked)
{
	char out[4096], want[256];

	setenv("HASP_NO_AUTOSTART", "1", 1);
	ck_assert_int_eq(RUN(out, "ping"), 69);
	snprintf(want, sizeof(want), "hasp: cannot connect to haspd at %s: No such file or "
		 "directory (is haspd running?)", own_sock);
	ck_assert_msg(strstr(out, want), "'%s' does not say '%s'", out, want);
	assert_no_daemon();
	ck_assert(!exists(own_sock));
}
END_TEST

/* An explicit socket ($HASP_SOCKET, --socket, a path given to libhasp) is
 * never started, nor is root's own without XDG_RUNTIME_DIR, the system's. */
START_TEST(an_explicit_socket_is_never_started)
{
	char out[4096], path[128];
	hasp_client *c = NULL;

	snprintf(path, sizeof(path), "%s/hasp/haspd.sock", xdg); /* even the own one's path */
	ck_assert_int_eq(RUN(out, "--socket", path, "ping"), 69);
	ck_assert_ptr_nonnull(strstr(out, "is haspd running?"));
	ck_assert_int_eq(hasp_connect(path, &c), -ENOENT);
	setenv("HASP_SOCKET", path, 1);
	ck_assert_int_eq(RUN(out, "ping"), 69);
	ck_assert_int_eq(hasp_connect(NULL, &c), -ENOENT);
	assert_no_daemon();
	if (geteuid() == 0 && !exists("/run/hasp/haspd.sock")) {
		unsetenv("HASP_SOCKET");
		unsetenv("XDG_RUNTIME_DIR");
		ck_assert_int_eq(RUN(out, "ping"), 69);
		ck_assert_ptr_nonnull(strstr(out, "at /run/hasp/haspd.sock"));
		assert_no_daemon();
	}
	ck_assert(!exists(own_sock));
}
END_TEST

static Suite *sockfind_suite(void)
{
	Suite *s = suite_create("sockfind");
	TCase *tc = tcase_create("sockfind");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, the_system_socket_comes_first);
	tcase_add_test(tc, the_own_socket_without_a_system_daemon);
	tcase_add_test(tc, hasp_socket_wins);
	tcase_add_test(tc, racing_clients_start_one_daemon);
	tcase_add_test(tc, the_started_daemon_is_detached);
	tcase_add_test(tc, the_started_daemon_exits_when_idle);
	tcase_add_test(tc, idle_exit_waits_for_leases_and_checkouts);
	tcase_add_test(tc, no_autostart_when_asked);
	tcase_add_test(tc, an_explicit_socket_is_never_started);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(sockfind_suite());
}
