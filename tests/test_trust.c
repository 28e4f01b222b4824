/* libhasp and hasp trust a socket only where nobody else could have put it,
 * and only a server run by root, the caller or the socket's owner: another
 * user who squats /tmp/hasp-$UID with a fake server must never see a
 * request, let alone a descriptor of the caller's files.
 *
 * Three uids besides root: the victim (a number without a name), mallory
 * (a named user, created with useradd if missing, so that messages can name
 * it) and a daemon's own uid (a number). Needs root; skipped otherwise. */
#include <check.h>
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_run.h"
#include "harness.h"
#include "hasp.h"

#define MALLORY "hasp-test-mallory"

static uid_t victim, daemon_uid, mallory;
static char victim_dir[64];     /* /tmp/hasp-$VICTIM: the victim's default */
static char victim_sock[96];
static char data_dir[64];       /* the victim's private files */
static char data_file[96];


static void become(uid_t uid)
{
	if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)
		_exit(100);
}

static void remove_tree(const char *path)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	ck_assert_int_eq(system(cmd), 0);
}

static void setup(void)
{
	struct stat st;

	if (geteuid() != 0)
		return;
	remove_tree(victim_dir);
	snprintf(data_dir, sizeof(data_dir), "/tmp/hasp-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(data_dir));
	ck_assert_int_eq(chown(data_dir, victim, victim), 0);
	snprintf(data_file, sizeof(data_file), "%s/data.db", data_dir);
	ck_assert_int_eq(lstat(data_dir, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0700);
}

static void teardown(void)
{
	if (geteuid() != 0)
		return;
	remove_tree(victim_dir);
	remove_tree(data_dir);
}

static bool skipped(void)
{
	if (geteuid() == 0)
		return false;
	fprintf(stderr, "skipped: needs root to run clients and servers as other uids\n");
	return true;
}

/* ---- a fake server ---- */

struct fake {
	pid_t pid;
	int stop;               /* closed to stop it */
	int report;             /* what it saw: connections, bytes, descriptors */
};

struct seen {
	int connections;
	long bytes;
	int fds;
};

/* Takes what one connection sends, until its first newline or its end. */
static void fake_serve(int fd, struct seen *seen)
{
	char buf[4096];
	union {
		char buf[CMSG_SPACE(16 * sizeof(int))];
		struct cmsghdr align;
	} ctl;

	seen->connections++;
	while (wait_readable(fd, 5000)) {
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
				     .msg_controllen = sizeof(ctl.buf) };
		ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);

		if (n <= 0)
			break;
		seen->bytes += n;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
				seen->fds += (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		if (memchr(buf, '\n', (size_t)n))
			break;
	}
	close(fd); /* the client, if it sent anything, learns the end */
}

static void fake_loop(int lfd, int stop, int report)
{
	struct seen seen;

	memset(&seen, 0, sizeof(seen)); /* the padding too: it goes through a pipe */
	for (;;) {
		struct pollfd p[2] = { { lfd, POLLIN, 0 }, { stop, POLLIN, 0 } };

		if (poll(p, 2, test_ms(60000)) <= 0)
			break;
		/* A connection before the stop: a client that connected and
		 * left while this process was not yet scheduled is still seen. */
		if (p[0].revents) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

			if (fd >= 0)
				fake_serve(fd, &seen);
		} else if (p[1].revents) {
			break;
		}
	}
	if (write(report, &seen, sizeof(seen)) != sizeof(seen))
		_exit(3);
	_exit(0);
}

static int bind_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	return fd;
}

/* A fake haspd run by uid, listening on path. With mkdir_mode >= 0 it
 * creates the socket's directory first, as uid, with that mode. With
 * bound >= 0, it listens on that socket, bound by the caller, instead. */
static struct fake fake_start(uid_t uid, const char *path, int mkdir_mode, int bound)
{
	int ready[2], stop[2], report[2];
	struct fake f;

	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(stop), 0);
	ck_assert_int_eq(pipe(report), 0);
	f.pid = fork();
	ck_assert_int_ge(f.pid, 0);
	if (f.pid == 0) {
		char dir[128];
		int lfd = bound;

		close(ready[0]);
		close(stop[1]);
		close(report[0]);
		become(uid);
		snprintf(dir, sizeof(dir), "%s", path);
		*strrchr(dir, '/') = '\0';
		if (mkdir_mode >= 0 && (mkdir(dir, (mode_t)mkdir_mode) < 0 ||
					chmod(dir, (mode_t)mkdir_mode) < 0))
			_exit(1);
		/* Anyone may connect: the squatter wants victims. */
		if (lfd < 0 && ((lfd = bind_socket(path)) < 0 || chmod(path, 0777) < 0))
			_exit(2);
		if (listen(lfd, 16) < 0 || write(ready[1], "r", 1) != 1)
			_exit(2);
		fake_loop(lfd, stop[0], report[1]);
	}
	close(ready[1]);
	close(stop[0]);
	close(report[1]);
	ck_assert_msg(wait_byte(ready[0], 10000), "the fake server did not start");
	close(ready[0]);
	f.stop = stop[1];
	f.report = report[0];
	return f;
}

static struct seen fake_stop(struct fake *f)
{
	struct seen seen;

	close(f->stop);
	ck_assert(wait_readable(f->report, 10000));
	ck_assert_int_eq(read(f->report, &seen, sizeof(seen)), sizeof(seen));
	close(f->report);
	ck_assert_int_eq(wait_child(f->pid, 10000), 0);
	return seen;
}

/* ---- hasp and haspd as other uids ---- */

/* Runs hasp as uid, with no HASP_SOCKET or XDG_RUNTIME_DIR (so the default
 * for a plain user, /tmp/hasp-$UID, unless socket is given); stdout and
 * stderr into out. Returns the exit status. */
static int hasp_as(uid_t uid, const char *socket, char *out, size_t size, char *const args[])
{
	int p[2];
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		unsetenv("XDG_RUNTIME_DIR");
		if (socket)
			setenv("HASP_SOCKET", socket, 1);
		else
			unsetenv("HASP_SOCKET");
		dup2(p[1], 1);
		dup2(p[1], 2);
		become(uid);
		execv(cli_path(), args);
		_exit(127);
	}
	close(p[1]);
	return run_collect(pid, p[0], out, size);
}

#define HASP_AS(uid, socket, out, ...) \
	hasp_as(uid, socket, out, sizeof(out), (char *const[]){ "hasp", __VA_ARGS__, NULL })

/* A real haspd run by uid on socket (its directory must exist). */
static pid_t haspd_as(uid_t uid, const char *socket)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char *argv[] = { (char *)haspd_path(), "--socket", (char *)socket, "--log-level",
				 "warning", NULL };

		become(uid);
		execv(argv[0], argv);
		_exit(127);
	}
	ck_assert_msg(wait_socket(socket, DAEMON_START_MS), "haspd did not start on %s", socket);
	return pid;
}

static void haspd_stop(pid_t pid)
{
	int status;

	kill(pid, SIGTERM);
	status = wait_child(pid, DAEMON_START_MS);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "haspd: status %#x", status);
}

/* The refusal that libhasp gives, in-process (as root). */
static void assert_refused(const char *socket, const char *needle)
{
	hasp_client *c = NULL;

	ck_assert_int_eq(hasp_client_new(&c), 0);
	ck_assert_int_eq(hasp_client_connect(c, socket), -HASP_E_UNTRUSTED);
	ck_assert_msg(strstr(hasp_client_errmsg(c), needle), "'%s' does not say '%s'",
		      hasp_client_errmsg(c), needle);
	ck_assert_int_eq(hasp_ping(c), -ENOTCONN);
	ck_assert_int_eq(hasp_client_fd(c), -1);
	hasp_close(c);
}

/* ---- the tests ---- */

/* The case: mallory made /tmp/hasp-$VICTIM (0755) and serves a fake
 * haspd in it. The victim's hasp lock -c ... FILE refused it, naming the
 * owner, exited 69, and the fake server saw nothing at all. */
START_TEST(a_squatted_per_user_directory_is_refused)
{
	char out[4096], want[512];
	struct fake f;
	struct seen seen;
	int status;

	if (skipped())
		return;
	f = fake_start(mallory, victim_sock, 0755, -1);
	status = HASP_AS(victim, NULL, out, "lock", "-c", "true", data_file);
	/* First what the fake server got: no descriptor, not a byte. */
	seen = fake_stop(&f);
	ck_assert_msg(seen.fds == 0, "the fake server got %d descriptors", seen.fds);
	ck_assert_int_eq(seen.bytes, 0);
	ck_assert_int_eq(seen.connections, 0);
	ck_assert_int_eq(status, 69);
	snprintf(want, sizeof(want), "hasp: refusing %s: its directory %s belongs to uid %u (" MALLORY
		 "), mode 0755; it must be yours, mode 0700\n", victim_sock, victim_dir,
		 (unsigned)mallory);
	ck_assert_str_eq(out, want);
	ck_assert_int_eq(HASP_AS(victim, NULL, out, "ls"), 69);
	ck_assert_str_eq(out, want);
	/* However the path is spelt. */
	snprintf(want, sizeof(want), "/tmp//hasp-%u/./haspd.sock", (unsigned)victim);
	ck_assert_int_eq(HASP_AS(victim, want, out, "ls"), 69);
	ck_assert_msg(strstr(out, "it must be yours, mode 0700"), "%s", out);
}
END_TEST

/* The per-user directory is the caller's own and mode 0700 exactly: not
 * 0750 or 0755 (even when the caller's), not the caller's group's or
 * anyone's to write. */
START_TEST(the_per_user_directory_must_be_mine_and_0700)
{
	static const int modes[] = { 0750, 0755, 0770, 0701, 01700 };
	char out[4096], want[256];
	pid_t d;

	if (skipped())
		return;
	ck_assert_int_eq(mkdir(victim_dir, 0700), 0);
	ck_assert_int_eq(chown(victim_dir, victim, victim), 0);
	d = haspd_as(victim, victim_sock);
	ck_assert_int_eq(HASP_AS(victim, NULL, out, "ping"), 0);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		ck_assert_int_eq(chmod(victim_dir, (mode_t)modes[i]), 0);
		ck_assert_int_eq(HASP_AS(victim, NULL, out, "ping"), 69);
		snprintf(want, sizeof(want), "belongs to uid %u, mode %04o; it must be yours, mode "
			 "0700", (unsigned)victim, modes[i]);
		ck_assert_msg(strstr(out, want), "%s", out);
	}
	ck_assert_int_eq(chmod(victim_dir, 0700), 0);
	ck_assert_int_eq(HASP_AS(victim, NULL, out, "lock", "-c", "true", data_file), 0);
	haspd_stop(d);
}
END_TEST

/* A symbolic link is never the socket's directory: neither mallory's link
 * at /tmp/hasp-$VICTIM, nor one of root's own (to a good directory). */
START_TEST(a_symlinked_directory_is_refused)
{
	char out[4096], target[64], link_dir[96], want[256], sock[128];
	struct daemon_proc d;
	struct fake f;
	struct seen seen;
	pid_t pid;

	if (skipped())
		return;
	/* Root's own link to root's own good directory. */
	daemon_start(&d);
	snprintf(link_dir, sizeof(link_dir), "%s-link", d.dir);
	ck_assert_int_eq(symlink(d.dir, link_dir), 0);
	snprintf(sock, sizeof(sock), "%s/haspd.sock", link_dir);
	assert_refused(sock, "is a symbolic link owned by uid 0 (root)");
	ck_assert_int_eq(HASP_AS(0, sock, out, "ping"), 69);
	ck_assert_msg(strstr(out, "it must be a directory, not a symbolic link"), "%s", out);
	unlink(link_dir);
	/* And the socket itself is no link either. */
	snprintf(link_dir, sizeof(link_dir), "%s/link.sock", d.dir);
	ck_assert_int_eq(symlink(d.socket, link_dir), 0);
	assert_refused(link_dir, "it is a symbolic link");
	unlink(link_dir);
	daemon_stop(&d);
	/* Mallory's link at /tmp/hasp-$VICTIM, to mallory's directory. */
	snprintf(target, sizeof(target), "/tmp/hasp-test-m%u", (unsigned)getpid());
	remove_tree(target);
	snprintf(sock, sizeof(sock), "%s/haspd.sock", target);
	f = fake_start(mallory, sock, 0700, -1);
	pid = fork(); /* made by mallory, in the sticky /tmp */
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		become(mallory);
		_exit(symlink(target, victim_dir) == 0 ? 0 : 1);
	}
	ck_assert_int_eq(wait_child(pid, 10000), 0);
	ck_assert_int_eq(HASP_AS(victim, NULL, out, "lock", "-c", "true", data_file), 69);
	snprintf(want, sizeof(want), "its directory %s is a symbolic link owned by uid %u (" MALLORY
		 ")", victim_dir, (unsigned)mallory);
	ck_assert_msg(strstr(out, want), "%s", out);
	seen = fake_stop(&f);
	ck_assert_int_eq(seen.connections + seen.fds, 0);
	remove_tree(target);
}
END_TEST

/* A directory that group or others may write is refused, root's own too,
 * and a sticky world-writable one like /tmp itself. */
START_TEST(a_directory_others_can_write_is_refused)
{
	static const int modes[] = { 0770, 0730, 0702, 01777, 0777 };
	char out[4096], want[128];
	struct daemon_proc d;
	hasp_client *c;

	if (skipped())
		return;
	daemon_start(&d); /* in a 0700 directory: then the mode changes */
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		ck_assert_int_eq(chmod(d.dir, (mode_t)modes[i]), 0);
		snprintf(want, sizeof(want), "belongs to uid 0 (root), mode %04o; others can write "
			 "to it", modes[i]);
		assert_refused(d.socket, want);
		ck_assert_int_eq(HASP_AS(0, d.socket, out, "ping"), 69);
		ck_assert_msg(strstr(out, want), "%s", out);
		ck_assert_int_eq(HASP_AS(victim, d.socket, out, "ping"), 69);
	}
	ck_assert_int_eq(chmod(d.dir, 0755), 0);
	ck_assert_int_eq(HASP_AS(victim, d.socket, out, "ping"), 0);
	ck_assert_int_eq(chmod(d.dir, 0700), 0);
	c = client_connect(d.socket);
	ck_assert_int_eq(hasp_ping(c), 0);
	hasp_close(c);
	daemon_stop(&d);
	/* /tmp itself. */
	assert_refused("/tmp/haspd.sock", "its directory /tmp belongs to uid 0 (root), mode 1777");
}
END_TEST

/* The victim's own /tmp/hasp-$VICTIM, 0700, with its own haspd: trusted,
 * and hasp lock -c ... FILE runs. */
START_TEST(my_own_0700_directory_is_accepted)
{
	char out[4096];
	pid_t d;

	if (skipped())
		return;
	ck_assert_int_eq(mkdir(victim_dir, 0700), 0);
	ck_assert_int_eq(chown(victim_dir, victim, victim), 0);
	d = haspd_as(victim, victim_sock);
	ck_assert_int_eq(HASP_AS(victim, NULL, out, "lock", "-c", "echo ran", data_file), 0);
	ck_assert_str_eq(out, "ran\n");
	ck_assert_int_eq(HASP_AS(victim, NULL, out, "ls"), 0);
	/* Root may use it too (root serves or is served by anyone). */
	ck_assert_int_eq(HASP_AS(0, victim_sock, out, "ping"), 0);
	haspd_stop(d);
}
END_TEST

/* A system daemon under its own uid, in a directory of its own (0755) with
 * a socket of its own: trusted by everyone. The same directory with a
 * socket someone else owns is not. */
START_TEST(a_daemon_uid_directory_is_accepted)
{
	char out[4096], dir[64], sock[96], want[160];
	pid_t d;

	if (skipped())
		return;
	snprintf(dir, sizeof(dir), "/tmp/hasp-test-d%u", (unsigned)getpid());
	remove_tree(dir);
	snprintf(sock, sizeof(sock), "%s/haspd.sock", dir);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	ck_assert_int_eq(chown(dir, daemon_uid, daemon_uid), 0);
	d = haspd_as(daemon_uid, sock);
	ck_assert_int_eq(chmod(sock, 0666), 0);
	ck_assert_int_eq(HASP_AS(victim, sock, out, "ping"), 0);
	ck_assert_int_eq(HASP_AS(victim, sock, out, "lock", "-c", "true", data_file), 0);
	ck_assert_int_eq(chown(sock, mallory, mallory), 0);
	ck_assert_int_eq(HASP_AS(victim, sock, out, "ping"), 69);
	snprintf(want, sizeof(want), "belongs to uid %u, mode 0755; it must belong to root, to you "
		 "(uid %u) or to the socket's owner (uid %u)", (unsigned)daemon_uid,
		 (unsigned)victim, (unsigned)mallory);
	ck_assert_msg(strstr(out, want), "%s", out);
	haspd_stop(d);
	remove_tree(dir);
}
END_TEST

/* A good directory and a socket the victim owns, but the server behind it
 * runs as a third uid (mallory called listen()): refused once connected,
 * before anything is sent. */
START_TEST(a_server_of_a_third_uid_is_refused)
{
	char out[4096], want[256];
	struct fake f;
	struct seen seen;
	int fd;

	if (skipped())
		return;
	ck_assert_int_eq(mkdir(victim_dir, 0700), 0);
	ck_assert_int_eq(chown(victim_dir, victim, victim), 0);
	fd = bind_socket(victim_sock);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(chown(victim_sock, victim, victim), 0);
	ck_assert_int_eq(chmod(victim_sock, 0666), 0);
	f = fake_start(mallory, victim_sock, -1, fd);
	close(fd);
	ck_assert_int_eq(HASP_AS(victim, NULL, out, "lock", "-c", "true", data_file), 69);
	snprintf(want, sizeof(want), "hasp: refusing %s: it is served by pid ", victim_sock);
	ck_assert_msg(strncmp(out, want, strlen(want)) == 0, "%s", out);
	snprintf(want, sizeof(want), " of uid %u (" MALLORY "), which is neither root, you (uid %u), "
		 "nor the owner of the socket (uid %u) or of its directory (uid %u)\n",
		 (unsigned)mallory, (unsigned)victim, (unsigned)victim, (unsigned)victim);
	ck_assert_msg(strstr(out, want), "%s", out);
	seen = fake_stop(&f);
	ck_assert_int_eq(seen.connections, 1);
	ck_assert_int_eq(seen.bytes, 0);
	ck_assert_int_eq(seen.fds, 0);
}
END_TEST

/* useradd, as the test's setup: once, kept for later runs. Another test
 * run may be adding it at the same moment: useradd then fails to lock
 * /etc/passwd, and the user may exist afterwards. */
static uid_t ensure_mallory(void)
{
	for (int i = 0; i < 100; i++) {
		struct passwd *pw = getpwnam(MALLORY);

		if (pw)
			return pw->pw_uid;
		if (system("useradd --system --no-create-home --shell /usr/sbin/nologin "
			   MALLORY " >/dev/null 2>&1") == 0)
			continue;
		usleep(50000); /* /etc/passwd is locked by another useradd: no event for that */
	}
	fprintf(stderr, "cannot create the user " MALLORY "\n");
	exit(1);
}

static Suite *trust_suite(void)
{
	Suite *s = suite_create("trust");
	TCase *tc = tcase_create("trust");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, a_squatted_per_user_directory_is_refused);
	tcase_add_test(tc, the_per_user_directory_must_be_mine_and_0700);
	tcase_add_test(tc, a_symlinked_directory_is_refused);
	tcase_add_test(tc, a_directory_others_can_write_is_refused);
	tcase_add_test(tc, my_own_0700_directory_is_accepted);
	tcase_add_test(tc, a_daemon_uid_directory_is_accepted);
	tcase_add_test(tc, a_server_of_a_third_uid_is_refused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	/* Uids of this run, unlikely to be anyone's, so that parallel runs
	 * keep out of each other's /tmp/hasp-$UID. */
	victim = 42000 + (uid_t)(getpid() % 5000) * 2;
	daemon_uid = victim + 1;
	if (geteuid() == 0)
		mallory = ensure_mallory();
	snprintf(victim_dir, sizeof(victim_dir), "/tmp/hasp-%u", (unsigned)victim);
	snprintf(victim_sock, sizeof(victim_sock), "%s/haspd.sock", victim_dir);
	return run_suite(trust_suite());
}
