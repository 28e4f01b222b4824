/* The daemon's socket against hostile local users: the directory it binds
 * in (its owner, mode, no symbolic link; created with socket_dir_mode),
 * the socket's mode and group set before it listens, and the instance lock
 * taken before the socket is touched. Real daemons, real processes; the
 * tests that need another uid run as root and skip otherwise. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define NOBODY 65534

static bool root_or_skip(void)
{
	if (geteuid() == 0)
		return true;
	fprintf(stderr, "skipped: needs root to be another uid\n");
	return false;
}

/* haspd with opts on socket, exec'd once the pipe gate (if not NULL) is
 * closed, as uid (if not -1), its stderr to err_fd (if >= 0). */
static pid_t spawn_daemon(const char *socket, char *const opts[], const int *gate, uid_t uid,
			  int err_fd)
{
	char *argv[48], words[1024];
	size_t n = wrapper_argv(argv, 24, words, sizeof(words));
	pid_t pid;
	char b;

	argv[n++] = (char *)haspd_path();
	argv[n++] = "--socket";
	argv[n++] = (char *)socket;
	for (; *opts; opts++)
		argv[n++] = *opts;
	argv[n] = NULL;
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid > 0)
		return pid;
	if (err_fd >= 0)
		dup2(err_fd, 2);
	if (uid != (uid_t)-1 && (setgroups(0, NULL) < 0 || setgid(uid) < 0 || setuid(uid) < 0))
		_exit(126);
	if (gate) {
		close(gate[1]);
		if (read(gate[0], &b, 1) < 0)
			_exit(125);
		close(gate[0]);
	}
	execv(argv[0], argv);
	_exit(127);
}

/* Starts haspd with opts on socket, which must exit with status 1 and say
 * want on stderr without ever creating the socket. */
static void expect_refusal(const char *socket, char *const opts[], uid_t uid, const char *want)
{
	char out[4096] = "";
	int p[2], st;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = spawn_daemon(socket, opts, NULL, uid, p[1]);
	close(p[1]);
	ck_assert_msg(wait_output(p[0], want, DAEMON_START_MS, out, sizeof(out)), "stderr: %s", out);
	st = wait_child(pid, 10000);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %#x, stderr: %s", st, out);
	ck_assert_int_eq(access(socket, F_OK), -1);
	close(p[0]);
}

static char *const quiet[] = { "--log-level", "warning", NULL };

/* ---- the socket's directory ---- */

/* Another uid's directory, even one only it can write (0755): it could
 * replace the socket. A root haspd refuses it, naming the owner, and
 * leaves nothing in it (no socket, no fence file). */
START_TEST(a_directory_of_another_uid_is_refused)
{
	struct daemon_proc d;

	if (!root_or_skip())
		return;
	daemon_dir(&d);
	ck_assert_int_eq(chown(d.dir, 4242, 4242), 0);
	ck_assert_int_eq(chmod(d.dir, 0755), 0);
	expect_refusal(d.socket, quiet, (uid_t)-1, "owned by uid 4242");
	ck_assert_int_eq(access(d.fence, F_OK), -1);
	daemon_dir_remove(&d);
}
END_TEST

/* Our own directory, but one that the group or others can write to
 * (sticky or not, as /tmp is): refused. */
START_TEST(a_directory_others_can_write_is_refused)
{
	static const mode_t modes[] = { 0770, 0707, 01777, 0720 };
	struct daemon_proc d;

	daemon_dir(&d);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		ck_assert_int_eq(chmod(d.dir, modes[i]), 0);
		expect_refusal(d.socket, quiet, (uid_t)-1, "writable by its group or others");
		ck_assert_int_eq(access(d.fence, F_OK), -1);
	}
	daemon_dir_remove(&d);
}
END_TEST

/* A symbolic link as the directory, even to a good one: refused, since
 * whoever can change the link can move the socket. */
START_TEST(a_symlinked_directory_is_refused)
{
	struct daemon_proc d;
	char link[96], socket[160];

	daemon_dir(&d);
	snprintf(link, sizeof(link), "%s-link", d.dir);
	snprintf(socket, sizeof(socket), "%s/haspd.sock", link);
	ck_assert_int_eq(symlink(d.dir, link), 0);
	expect_refusal(socket, quiet, (uid_t)-1, "is a symbolic link");
	ck_assert_int_eq(access(d.fence, F_OK), -1);
	unlink(link);
	daemon_dir_remove(&d);
}
END_TEST

static void start_and_stop(const char *socket, char *const opts[], uid_t uid)
{
	pid_t pid = spawn_daemon(socket, opts, NULL, uid, -1);
	int st;

	ck_assert_msg(wait_socket(socket, DAEMON_START_MS), "haspd did not start on %s", socket);
	kill(pid, SIGTERM);
	st = wait_child(pid, DAEMON_START_MS);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	ck_assert_int_eq(lstat(path, &st), 0);
	return st.st_mode & 07777;
}

static void remove_dir(const char *dir)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/haspd.fence", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/haspd.checkouts", dir);
	unlink(path);
	ck_assert_int_eq(rmdir(dir), 0);
}

/* A missing directory is made with socket_dir_mode, whatever the umask:
 * 0755 by default for root (its socket serves every user), 0700 for
 * another uid; a mode others could write to is not a setting. */
START_TEST(a_missing_directory_is_made_with_socket_dir_mode)
{
	char *private[] = { "--socket-dir-mode", "0700", "--log-level", "warning", NULL };
	char *shared[] = { "--socket-dir-mode", "0777", NULL };
	char dir[96], socket[160];
	struct daemon_proc parent;
	mode_t old = umask(077);

	daemon_dir(&parent);
	ck_assert_int_eq(chmod(parent.dir, 0755), 0);
	snprintf(dir, sizeof(dir), "%s/run", parent.dir);
	snprintf(socket, sizeof(socket), "%s/haspd.sock", dir);
	start_and_stop(socket, quiet, (uid_t)-1);
	ck_assert_uint_eq(mode_of(dir), geteuid() == 0 ? 0755 : 0700);
	remove_dir(dir);
	start_and_stop(socket, private, (uid_t)-1);
	ck_assert_uint_eq(mode_of(dir), 0700);
	remove_dir(dir);
	expect_refusal(socket, shared, (uid_t)-1, "socket_dir_mode");
	if (geteuid() == 0) {
		/* Another uid's daemon: private. */
		ck_assert_int_eq(chown(parent.dir, NOBODY, NOBODY), 0);
		start_and_stop(socket, quiet, NOBODY);
		ck_assert_uint_eq(mode_of(dir), 0700);
		remove_dir(dir);
	}
	umask(old);
	daemon_dir_remove(&parent);
}
END_TEST

/* An explicit socket path whose parents are missing too: every one is
 * made, as mkdir -p does, whatever the umask: those on the way with 0755,
 * the socket's own directory with socket_dir_mode. Something that is not a
 * directory on the way is refused, naming it. Before, only the last
 * directory was made, and haspd stopped with "No such file or directory". */
START_TEST(missing_parents_are_made_as_mkdir_p_does)
{
	char *private[] = { "--socket-dir-mode", "0700", "--log-level", "warning", NULL };
	char a[96], b[112], dir[128], socket[160];
	struct daemon_proc parent;
	mode_t old = umask(077);

	daemon_dir(&parent);
	snprintf(a, sizeof(a), "%s/a", parent.dir);
	snprintf(b, sizeof(b), "%s//b", a);
	snprintf(dir, sizeof(dir), "%s/run", b);
	snprintf(socket, sizeof(socket), "%s/haspd.sock", dir);
	start_and_stop(socket, private, (uid_t)-1);
	ck_assert_uint_eq(mode_of(a), 0755);
	ck_assert_uint_eq(mode_of(b), 0755);
	ck_assert_uint_eq(mode_of(dir), 0700);
	remove_dir(dir);
	ck_assert_int_eq(rmdir(b), 0);
	ck_assert_int_eq(rmdir(a), 0);
	/* A file where a directory should be made. */
	close(open(a, O_WRONLY | O_CREAT | O_EXCL, 0600));
	expect_refusal(socket, quiet, (uid_t)-1, "cannot create the directory");
	ck_assert_int_eq(unlink(a), 0);
	umask(old);
	daemon_dir_remove(&parent);
}
END_TEST

/* A path too long for a Unix socket address (107 bytes and the NUL) is
 * refused as that, with its length; before, one given on the command line
 * (or in the file) was refused as "not an absolute path". */
START_TEST(a_socket_path_too_long_is_refused_as_that)
{
	char socket[200], want[64];
	struct daemon_proc d;
	size_t n;

	daemon_dir(&d);
	n = (size_t)snprintf(socket, sizeof(socket), "%s/", d.dir);
	while (n < 150)
		socket[n++] = 's';
	socket[n] = '\0';
	snprintf(want, sizeof(want), "socket path too long (%zu bytes, at most 107)", n);
	expect_refusal(socket, quiet, (uid_t)-1, want);
	ck_assert_int_eq(access(d.fence, F_OK), -1);
	daemon_dir_remove(&d);
}
END_TEST

/* ---- the instance lock ---- */

static pid_t wait_first_exit(pid_t a, pid_t b, int timeout_ms, int *status)
{
	int64_t end = now_ms() + test_ms(timeout_ms);

	for (;;) {
		pid_t pids[2] = { a, b };

		for (int i = 0; i < 2; i++)
			if (waitpid(pids[i], status, WNOHANG) == pids[i])
				return pids[i];
		if (now_ms() >= end)
			return -1;
		usleep(1000); /* no portable event for a child's exit with a deadline */
	}
}

/* The pid of the process that serves socket (SO_PEERCRED), or -1. */
static pid_t server_pid(const char *socket)
{
	struct ucred cred = { 0 };
	socklen_t len = sizeof(cred);
	int fd;

	if (!wait_socket(socket, DAEMON_START_MS))
		return -1;
	fd = raw_connect(socket);
	ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len), 0);
	close(fd);
	return cred.pid;
}

/* Releases two daemons on d's socket at the same instant: exactly one
 * serves, the other exits with an error. Returns the one that serves. */
static pid_t race_two(struct daemon_proc *d, int round)
{
	int gate[2], err[2], st;
	pid_t a, b, loser, winner;
	char out[4096] = "";

	ck_assert_int_eq(pipe(gate), 0);
	ck_assert_int_eq(pipe(err), 0);
	a = spawn_daemon(d->socket, quiet, gate, (uid_t)-1, err[1]);
	b = spawn_daemon(d->socket, quiet, gate, (uid_t)-1, err[1]);
	close(gate[0]);
	close(err[1]);
	close(gate[1]); /* go */
	loser = wait_first_exit(a, b, 10000, &st);
	if (loser < 0) {
		kill(a, SIGKILL);
		kill(b, SIGKILL);
		waitpid(a, NULL, 0);
		waitpid(b, NULL, 0);
		ck_abort_msg("round %d: both daemons serve", round);
	}
	winner = loser == a ? b : a;
	wait_output(err[0], "\n", 5000, out, sizeof(out));
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 0, "round %d: status %#x, stderr: %s",
		      round, st, out);
	ck_assert_msg(server_pid(d->socket) == winner, "round %d: the socket does not answer to "
		      "the daemon that runs (stderr: %s)", round, out);
	ck_assert_int_eq(waitpid(winner, &st, WNOHANG), 0); /* still serving */
	close(err[0]);
	return winner;
}

/* Two daemons released at the same instant on a stale socket (and the
 * fence file its killed daemon left): exactly one serves, the other exits
 * with an error, every time. Before the instance lock came first, both
 * could probe the stale socket, remove it and bind: 2 starts in 30 left
 * two daemons serving, one of them on a socket file that no longer
 * existed (the old haspd failed this within 30 rounds in 6 runs of 6). */
START_TEST(two_daemons_on_a_stale_socket_one_serves)
{
	enum { ROUNDS = 60 };
	struct daemon_proc d;

	daemon_start(&d);
	for (int round = 0; round < ROUNDS; round++) {
		kill(d.pid, SIGKILL); /* the socket and fence file stay: stale */
		wait_child(d.pid, 5000);
		ck_assert_int_eq(access(d.socket, F_OK), 0);
		d.pid = race_two(&d, round);
	}
	daemon_stop(&d);
}
END_TEST

/* The same at a first start, neither socket nor fence file there: both
 * create the fence file, which appears with its ceiling and its lock, so
 * the loser never finds it empty. */
START_TEST(two_daemons_at_a_first_start_one_serves)
{
	enum { ROUNDS = 20 };
	struct daemon_proc d;

	daemon_dir(&d);
	for (int round = 0; round < ROUNDS; round++) {
		int st;

		d.pid = race_two(&d, round);
		kill(d.pid, SIGTERM);
		st = wait_child(d.pid, DAEMON_START_MS);
		ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		ck_assert_int_eq(unlink(d.fence), 0);
		ck_assert_int_eq(access(d.socket, F_OK), -1);
	}
	daemon_dir_remove(&d);
}
END_TEST

/* ---- the socket's mode and group ---- */

/* As uid, in gid's group alone: connect() to path as fast as it can until
 * the pipe stop is closed; exits with how many connections succeeded (at
 * most 100). Says on the pipe ready that it runs. */
static pid_t spawn_connector(const char *path, uid_t uid, gid_t gid, const int *ready,
			     const int *stop)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		struct pollfd p = { .fd = stop[0], .events = POLLIN };
		int got = 0, fd;

		close(ready[0]);
		close(stop[1]);

		if (strlen(path) >= sizeof(sa.sun_path))
			_exit(203);
		memcpy(sa.sun_path, path, strlen(path) + 1);
		if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
			_exit(200);
		if (write(ready[1], "r", 1) != 1)
			_exit(201);
		/* One connect(2) a turn: a refused one leaves the socket as it was. */
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		for (unsigned i = 0; fd >= 0; i++) {
			if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
				got += got < 100;
				close(fd);
				fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			}
			if (i % 64 == 0 && poll(&p, 1, 0) != 0)
				_exit(got);
		}
		_exit(202);
	}
	return pid;
}

/* Starts haspd with opts STARTS times while a client of uid/gid that the
 * final mode and group keep out connects in a loop from before the bind
 * until it serves: not one connection may get through. */
static void never_reachable_while_starting(char *const opts[], uid_t uid, gid_t gid)
{
	enum { STARTS = 40, CLIENTS = 2 };
	struct daemon_proc d;
	int through = 0;

	daemon_dir(&d);
	ck_assert_int_eq(chmod(d.dir, 0755), 0); /* the client may reach the socket file */
	for (int i = 0; i < STARTS; i++) {
		int ready[2], stop[2], st;
		pid_t clients[CLIENTS];

		/* Not inherited by the daemon: the clients stop when the last
		 * writer, this process, closes stop. */
		ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
		ck_assert_int_eq(pipe2(stop, O_CLOEXEC), 0);
		for (int c = 0; c < CLIENTS; c++)
			clients[c] = spawn_connector(d.socket, uid, gid, ready, stop);
		close(ready[1]);
		close(stop[0]);
		for (int c = 0; c < CLIENTS; c++)
			ck_assert_msg(wait_byte(ready[0], 5000), "a client did not start");
		d.pid = spawn_daemon(d.socket, opts, NULL, (uid_t)-1, -1);
		ck_assert(wait_socket(d.socket, DAEMON_START_MS));
		close(stop[1]);
		for (int c = 0; c < CLIENTS; c++) {
			st = wait_child(clients[c], 10000);
			ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) <= 100, "client status %#x", st);
			through += WEXITSTATUS(st);
		}
		close(ready[0]);
		kill(d.pid, SIGTERM);
		ck_assert_int_eq(wait_child(d.pid, DAEMON_START_MS), 0);
	}
	daemon_dir_remove(&d);
	ck_assert_msg(through == 0, "%d connections got through a socket mode that keeps them out",
		      through);
}

/* --socket-mode 0600 on root's daemon: another uid never connects. Before,
 * the socket listened with mode 0666 and was chmod'ed afterwards. */
START_TEST(socket_mode_is_set_before_listening)
{
	char *opts[] = { "--socket-mode", "0600", "--log-level", "warning", NULL };

	if (!root_or_skip())
		return;
	never_reachable_while_starting(opts, NOBODY, NOBODY);
}
END_TEST

/* --socket-mode 0660 --socket-group nogroup: a client in the daemon's own
 * group (root's) but not in nogroup never connects, so the group too is
 * set before listen(). */
START_TEST(socket_group_is_set_before_listening)
{
	char *opts[] = { "--socket-mode", "0660", "--socket-group", "nogroup", "--log-level",
			 "warning", NULL };

	if (!root_or_skip())
		return;
	if (!getgrnam("nogroup")) {
		fprintf(stderr, "skipped: no group 'nogroup'\n");
		return;
	}
	never_reachable_while_starting(opts, NOBODY, getegid());
}
END_TEST

static Suite *socket_suite(void)
{
	Suite *s = suite_create("socket");
	TCase *dir = tcase_create("directory"), *lock = tcase_create("instance lock");
	TCase *mode = tcase_create("mode");

	tcase_set_timeout(dir, 120);
	tcase_set_timeout(lock, 300);
	tcase_set_timeout(mode, 300);
	tcase_add_test(dir, a_directory_of_another_uid_is_refused);
	tcase_add_test(dir, a_directory_others_can_write_is_refused);
	tcase_add_test(dir, a_symlinked_directory_is_refused);
	tcase_add_test(dir, a_missing_directory_is_made_with_socket_dir_mode);
	tcase_add_test(dir, missing_parents_are_made_as_mkdir_p_does);
	tcase_add_test(dir, a_socket_path_too_long_is_refused_as_that);
	tcase_add_test(lock, two_daemons_on_a_stale_socket_one_serves);
	tcase_add_test(lock, two_daemons_at_a_first_start_one_serves);
	tcase_add_test(mode, socket_mode_is_set_before_listening);
	tcase_add_test(mode, socket_group_is_set_before_listening);
	suite_add_tcase(s, dir);
	suite_add_tcase(s, lock);
	suite_add_tcase(s, mode);
	return s;
}

int main(void)
{
	return run_suite(socket_suite());
}
