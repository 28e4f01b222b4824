/* A hostile local user against a root haspd: descriptors that prove no
 * right to a file, authority borrowed through an inherited connection,
 * descriptors and sessions used up so that administrators cannot get in,
 * and client text that would drive a terminal or flood the log. Clients of
 * other uids are forked children that drop to an unnamed uid (no user
 * entry is needed for that); every test needs root, and says so if not. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "sendfds.h"

#define MALLORY 4242    /* the attacker */
#define VICTIM 4343     /* another unprivileged user */

/* The daemon's admission reserves (daemon/users.h). */
#define ADMIN_SESSIONS 64
#define FDS_IN_FLIGHT_MAX 64

static struct daemon_proc daemon_;
static int daemon_err = -1;     /* its stderr */

/* Starts haspd with opts (after --socket) for clients of any uid, its
 * stderr in daemon_err; false when not root. */
static bool start(char *const opts[])
{
	static char *const quiet[] = { "--log-level", "warning", NULL };
	int p[2];

	if (!opts)
		opts = quiet;
	if (geteuid() != 0) {
		fprintf(stderr, "skipped: needs root to run clients as other uids\n");
		return false;
	}
	daemon_dir(&daemon_);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	daemon_.pid = daemon_spawn_with(daemon_.socket, opts, p[1]);
	close(p[1]);
	daemon_err = p[0];
	ck_assert(wait_socket(daemon_.socket, DAEMON_START_MS));
	ck_assert_int_eq(chmod(daemon_.dir, 0755), 0);
	return true;
}

/* start() with RLIMIT_NOFILE at nofile from the daemon's first
 * instruction. */
static bool start_with_nofile(char *const opts[], unsigned nofile)
{
	bool r;

	spawn_nofile = nofile;
	r = start(opts);
	spawn_nofile = 0;
	return r;
}

static void stop(void)
{
	daemon_stop(&daemon_);
	close(daemon_err);
	daemon_err = -1;
}

/* Drops every privilege to uid (and a gid of the same number). */
static void become(uid_t uid)
{
	if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)
		_exit(100);
}

/* Runs fn(arg) in a child as uid; its exit status is fn's return. */
static pid_t spawn_as(uid_t uid, int (*fn)(void *), void *arg)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		become(uid);
		_exit(fn(arg));
	}
	return pid;
}

static int child_status(pid_t pid)
{
	int st = wait_child(pid, 20000);

	ck_assert_msg(WIFEXITED(st), "child status %d", st);
	return WEXITSTATUS(st);
}

static int run_as(uid_t uid, int (*fn)(void *), void *arg)
{
	return child_status(spawn_as(uid, fn, arg));
}

/* An error code as an exit status: 0 ok, 1 permission_denied, 2 limit,
 * 3 bad_request, 9 anything else (or no reply). */
static int code_status(json_t *r)
{
	const char *e = r ? reply_error(r) : "none";
	int st = !e ? 0 : !strcmp(e, "permission_denied") ? 1 : !strcmp(e, "limit") ? 2 :
		 !strcmp(e, "bad_request") ? 3 : 9;

	json_decref(r);
	return st;
}

/* An acquire of path with fd attached, on a new connection; the reply. */
static json_t *acquire_fd(int conn, const char *path, int fd)
{
	char line[512];

	snprintf(line, sizeof(line), "{\"id\":1,\"op\":\"acquire\",\"path\":\"%s\",\"fd\":true,"
		 "\"timeout_ms\":0}\n", path);
	raw_send_fd(conn, line, fd);
	return raw_recv_id(conn, 1, 5000);
}

/* ---- 1. a descriptor must prove the right to open the file ---- */

static char secret[192];        /* root's 0600 file, in a directory all may search */

/* A child tells the test what it got, then waits for leave to go on. */
struct handshake {
	int tell[2], leave[2];
};

static struct handshake hs;     /* the child's of the test at hand */

static void hs_open(struct handshake *h)
{
	ck_assert_int_eq(pipe(h->tell), 0);
	ck_assert_int_eq(pipe(h->leave), 0);
}

static void hs_close(struct handshake *h)
{
	for (int i = 0; i < 2; i++) {
		close(h->tell[i]);
		close(h->leave[i]);
	}
}

/* In the child: tells n bytes, then waits for leave; 0, or 51 if a pipe broke. */
static int hs_tell_and_wait(struct handshake *h, const void *buf, size_t n)
{
	char b;

	return write(h->tell[1], buf, n) == (ssize_t)n && read(h->leave[0], &b, 1) >= 0 ? 0 : 51;
}

/* In the test: what the child told (up to n bytes); how many bytes. */
static size_t hs_hear(struct handshake *h, void *buf, size_t n)
{
	ssize_t r;

	ck_assert(wait_readable(h->tell[0], 20000));
	r = read(h->tell[0], buf, n);
	ck_assert_int_gt(r, 0);
	return (size_t)r;
}

/* As the attacker: an O_PATH descriptor of root's file; the reply's status,
 * told, then the session stays until the test lets it go. */
static int opath_lock(void *arg)
{
	int fd = open(secret, O_PATH | O_CLOEXEC), conn, st;
	char b = 0;

	(void)arg;
	if (fd < 0)
		return 50;
	conn = raw_connect(daemon_.socket);
	st = code_status(acquire_fd(conn, secret, fd));
	b = (char)st;
	return hs_tell_and_wait(&hs, &b, 1);
}

/* The access mode of the daemon's own descriptor for path, or -1. */
static int daemon_access_mode(const char *path)
{
	char dir[64], link[PATH_MAX], target[PATH_MAX], info[128];
	int mode = -1;

	for (int fd = 0; fd < 1024 && mode < 0; fd++) {
		ssize_t n;
		FILE *f;

		snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)daemon_.pid, fd);
		n = readlink(link, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		if (strcmp(target, path) != 0)
			continue;
		snprintf(dir, sizeof(dir), "/proc/%d/fdinfo/%d", (int)daemon_.pid, fd);
		f = fopen(dir, "re");
		while (f && fgets(info, sizeof(info), f)) {
			unsigned flags;

			if (sscanf(info, "flags: %o", &flags) == 1)
				mode = (int)(flags & O_ACCMODE);
		}
		if (f)
			fclose(f);
	}
	return mode;
}

START_TEST(a_descriptor_must_be_open_for_reading_or_writing)
{
	int fd, conn, mine;
	char b;

	if (!start(NULL))
		return;
	snprintf(secret, sizeof(secret), "%s/shadow", daemon_.dir);
	fd = open(secret, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	/* Another user's O_PATH descriptor: refused, and root's flock is free. */
	hs_open(&hs);
	pid_t pid = spawn_as(MALLORY, opath_lock, NULL);
	hs_hear(&hs, &b, 1);
	mine = open(secret, O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(flock(mine, LOCK_EX | LOCK_NB), 0);
	close(mine);
	signal_byte(hs.leave[1]);
	ck_assert_int_eq(child_status(pid), 0);
	ck_assert_int_eq(b, 1); /* permission_denied */
	/* Open for neither (mode 3, ioctl only): refused, even from root. */
	conn = raw_connect(daemon_.socket);
	fd = open(secret, 3 | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(code_status(acquire_fd(conn, secret, fd)), 1);
	close(fd);
	/* A write-only descriptor: the daemon's own is write-only too. */
	fd = open(secret, O_WRONLY | O_CLOEXEC);
	ck_assert_int_eq(code_status(acquire_fd(conn, secret, fd)), 0);
	ck_assert_int_eq(daemon_access_mode(secret), O_WRONLY);
	close(fd);
	close(conn);
	/* A read-only one: read-only. */
	conn = raw_connect(daemon_.socket);
	fd = open(secret, O_RDWR | O_CLOEXEC);
	ck_assert_int_eq(code_status(acquire_fd(conn, secret, fd)), 0);
	ck_assert_int_eq(daemon_access_mode(secret), O_RDONLY);
	close(fd);
	close(conn);
	hs_close(&hs);
	stop();
}
END_TEST

/* ---- 5. authority comes from the sender of each request ---- */

static int inherited = -1;      /* root's connection, handed to a child */
static uint64_t victim_lease;
static char bare_path[192];

/* As the victim: holds "victim-key", tells its lease id, waits. */
static int victim_holds(void *arg)
{
	hasp_client *c = NULL;
	hasp_lease *l = NULL;
	char b;

	(void)arg;
	if (hasp_connect(daemon_.socket, &c) < 0 || hasp_lock(c, "victim-key", NULL, &l) < 0)
		return 50;
	victim_lease = hasp_lease_id(l);
	b = (char)hs_tell_and_wait(&hs, &victim_lease, sizeof(victim_lease));
	hasp_lease_free(l);
	hasp_close(c);
	return b;
}

/* As the attacker, on root's connection: revoke the victim's lease (bit 0:
 * refused), lock a bare path (bit 1: refused), lock "child-key" (bit 2:
 * granted), then hold it until released. */
static int borrow_root_connection(void *arg)
{
	char line[512];
	int st = 0;
	char b;

	(void)arg;
	snprintf(line, sizeof(line), "{\"id\":1,\"op\":\"revoke\",\"lease\":%" PRIu64 "}\n",
		 victim_lease);
	raw_send(inherited, line);
	st |= code_status(raw_recv_id(inherited, 1, 5000)) == 1 ? 1 : 0;
	snprintf(line, sizeof(line), "{\"id\":2,\"op\":\"acquire\",\"path\":\"%s\"}\n", bare_path);
	raw_send(inherited, line);
	st |= code_status(raw_recv_id(inherited, 2, 5000)) == 1 ? 2 : 0;
	raw_send(inherited, "{\"id\":3,\"op\":\"acquire\",\"key\":\"child-key\"}\n");
	st |= code_status(raw_recv_id(inherited, 3, 5000)) == 0 ? 4 : 0;
	b = (char)st;
	return hs_tell_and_wait(&hs, &b, 1);
}

/* The first holder of key in a list reply. */
static json_t *holder_of(json_t *list, const char *key)
{
	json_t *res = json_object_get(list, "resources"), *r;
	size_t i;

	json_array_foreach(res, i, r) {
		const char *k = json_string_value(json_object_get(r, "key"));

		if (k && !strcmp(k, key))
			return json_array_get(json_object_get(r, "holders"), 0);
	}
	return NULL;
}

START_TEST(authority_is_the_senders_not_the_connections)
{
	struct handshake victim_hs;
	int admin;
	pid_t victim, child;
	json_t *list, *h;
	char b;

	if (!start(NULL))
		return;
	snprintf(bare_path, sizeof(bare_path), "%s/made-by-root", daemon_.dir);
	hs_open(&hs);
	victim = spawn_as(VICTIM, victim_holds, NULL);
	ck_assert_uint_eq(hs_hear(&hs, &victim_lease, sizeof(victim_lease)), sizeof(victim_lease));
	victim_hs = hs;
	hs_open(&hs);
	/* Root connects, then hands the connection to a child that drops to
	 * another uid, as `hasp lock -k k -- setpriv --reuid=... cmd` does. */
	inherited = raw_connect(daemon_.socket);
	raw_send(inherited, "{\"id\":0,\"op\":\"ping\"}\n");
	json_decref(raw_recv_id(inherited, 0, 5000));
	child = spawn_as(MALLORY, borrow_root_connection, NULL);
	hs_hear(&hs, &b, 1);
	ck_assert_msg(b & 1, "the child revoked the victim's lease with root's authority");
	ck_assert_msg(b & 2, "the child locked a bare path with root's authority");
	ck_assert_int_eq(access(bare_path, F_OK), -1);
	ck_assert_msg(b & 4, "the child could not lock a key");
	/* list shows who sent the acquire, not who connected. */
	admin = raw_connect(daemon_.socket);
	raw_send(admin, "{\"id\":1,\"op\":\"list\"}\n");
	list = raw_recv_id(admin, 1, 5000);
	h = holder_of(list, "child-key");
	ck_assert_ptr_nonnull(h);
	ck_assert_int_eq(json_integer_value(json_object_get(h, "uid")), MALLORY);
	ck_assert_int_eq(json_integer_value(json_object_get(h, "pid")), child);
	h = holder_of(list, "victim-key");
	ck_assert_int_eq(json_integer_value(json_object_get(h, "uid")), VICTIM);
	json_decref(list);
	/* A line whose bytes came from two processes is not served. */
	raw_send(inherited, "{\"id\":4,\"op\":\"ping\"");
	signal_byte(hs.leave[1]);
	ck_assert_int_eq(child_status(child), 0);
	raw_send(inherited, "}\n");
	ck_assert_int_eq(code_status(raw_recv_id(inherited, 4, 5000)), 0); /* root alone */
	close(admin);
	close(inherited);
	signal_byte(victim_hs.leave[1]);
	ck_assert_int_eq(child_status(victim), 0);
	hs_close(&hs);
	hs_close(&victim_hs);
	stop();
}
END_TEST

/* Root starts a line, a child of another uid ends it on the same
 * connection: neither's authority serves it. */
static int end_the_line(void *arg)
{
	(void)arg;
	raw_send(inherited, "\"key\":\"mixed\"}\n");
	return 0;
}

START_TEST(a_line_from_two_senders_is_refused)
{
	if (!start(NULL))
		return;
	inherited = raw_connect(daemon_.socket);
	raw_send(inherited, "{\"id\":1,\"op\":\"acquire\",");
	ck_assert_int_eq(run_as(MALLORY, end_the_line, NULL), 0);
	ck_assert_int_eq(code_status(raw_recv_id(inherited, 1, 5000)), 3);
	close(inherited);
	stop();
}
END_TEST

/* ---- 6. administrators always get in ---- */

/* As the attacker: as many sessions as haspd serves, up to 8; the count,
 * then held until released. */
static int fill_sessions(void *arg)
{
	int n = 0;
	char b;

	(void)arg;
	while (n < 8 && raw_connect_served(daemon_.socket) >= 0)
		n++;
	b = (char)n;
	return hs_tell_and_wait(&hs, &b, 1);
}

START_TEST(max_sessions_keeps_a_reserve_for_administrators)
{
	char *opts[] = { "--max-sessions", "3", NULL };
	int fds[ADMIN_SESSIONS + 1], n = 0;
	hasp_client *root;
	pid_t pid;
	char b;

	if (!start(opts))
		return;
	hs_open(&hs);
	root = client_connect(daemon_.socket);
	ck_assert_int_eq(hasp_ping(root), 0);
	pid = spawn_as(MALLORY, fill_sessions, NULL);
	hs_hear(&hs, &b, 1);
	ck_assert_int_eq(b, 2); /* root's session counts toward max_sessions */
	/* Root gets in past max_sessions, up to the reserve. */
	while (n <= ADMIN_SESSIONS && (fds[n] = raw_connect_served(daemon_.socket)) >= 0)
		n++;
	ck_assert_int_eq(n, ADMIN_SESSIONS);
	ck_assert_int_eq(hasp_ping(root), 0);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	signal_byte(hs.leave[1]);
	ck_assert_int_eq(child_status(pid), 0);
	hasp_close(root);
	hs_close(&hs);
	stop();
}
END_TEST

enum { LOW_NOFILE = 256, SESSIONS = 18, PER_SESSION = 16 };

/* Sends text with n copies of fd attached, in one sendmsg, if it can. */
static void send_copies(int conn, const char *text, int fd, int n)
{
	union {
		char buf[CMSG_SPACE(PER_SESSION * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { (void *)text, strlen(text) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			     .msg_controllen = CMSG_SPACE((size_t)n * sizeof(int)) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	memset(&ctl, 0, sizeof(ctl));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
	for (int i = 0; i < n; i++)
		memcpy(CMSG_DATA(c) + i * sizeof(int), &fd, sizeof(int));
	/* A refused session may be closed already: its refusal is still there. */
	(void)sendmsg(conn, &mh, MSG_NOSIGNAL);
}

/* As the attacker: up to SESSIONS sessions (until one is refused), each
 * with PER_SESSION descriptors that belong to an unfinished line (sent with
 * a whole ping, whose answer shows they were read); tells how many were
 * served, then holds them until released. */
static int flood_descriptors(void *arg)
{
	int conns[SESSIONS], devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	char n = 0;

	(void)arg;
	for (; n < SESSIONS; n++) {
		json_t *r;

		conns[(int)n] = raw_connect(daemon_.socket);
		send_copies(conns[(int)n], "{\"id\":1,\"op\":\"ping\"}\n{\"id\":2,", devnull,
			    PER_SESSION);
		r = raw_recv(conns[(int)n], 5000);
		if (!r || reply_error(r)) {
			json_decref(r);
			break;
		}
		json_decref(r);
	}
	return hs_tell_and_wait(&hs, &n, 1);
}

/* As the victim: a file lease on a memfd; the status of the first reply
 * (the lease, or a refusal of the session). */
static int lock_a_memfd(void *arg)
{
	int fd = memfd_create("victim", MFD_CLOEXEC), conn = raw_connect(daemon_.socket);
	char line[256];

	(void)arg;
	snprintf(line, sizeof(line), "{\"id\":1,\"op\":\"acquire\",\"path\":\"/memfd-%d\","
		 "\"fd\":true,\"timeout_ms\":0}\n", (int)getpid());
	/* A refused session may be closed already: its refusal is still there. */
	(void)sendfds(conn, line, strlen(line), &fd, 1);
	close(fd);
	return code_status(raw_recv(conn, 5000));
}

START_TEST(descriptors_in_flight_count_per_uid)
{
	int before, after;
	hasp_client *root;
	pid_t pid;
	char b;

	if (!start_with_nofile(NULL, LOW_NOFILE))
		return;
	hs_open(&hs);
	root = client_connect(daemon_.socket);
	before = count_fds(daemon_.pid);
	pid = spawn_as(MALLORY, flood_descriptors, NULL);
	hs_hear(&hs, &b, 1);
	ck_assert_int_eq(b, SESSIONS);
	/* 288 sent; the uid keeps 64 in flight over its 18 sessions (and the
	 * daemon a few of its own: a probe's session, a spare). */
	after = count_fds(daemon_.pid);
	ck_assert_msg(after <= before + SESSIONS + FDS_IN_FLIGHT_MAX + 4,
		      "%d descriptors open, %d before", after, before);
	/* Another user and root still get in, and lock files. */
	ck_assert_int_eq(run_as(VICTIM, lock_a_memfd, NULL), 0);
	ck_assert_int_eq(lock_a_memfd(NULL), 0);
	ck_assert_int_eq(hasp_ping(root), 0);
	signal_byte(hs.leave[1]);
	ck_assert_int_eq(child_status(pid), 0);
	hasp_close(root);
	hs_close(&hs);
	stop();
}
END_TEST

/* As the attacker: memfd leases until refused; the count and the refusal's
 * message told ("N code message"), then held until released. */
static int lock_memfds(void *arg)
{
	int conn = raw_connect(daemon_.socket), n = 0;
	char line[512], note[600];
	json_t *r;

	(void)arg;
	for (;;) {
		int fd = memfd_create("mallory", MFD_CLOEXEC);

		snprintf(line, sizeof(line), "{\"id\":%d,\"op\":\"acquire\",\"path\":\"/m%d\","
			 "\"fd\":true}\n", n + 1, n);
		raw_send_fd(conn, line, fd);
		close(fd);
		r = raw_recv_id(conn, n + 1, 5000);
		if (!r || reply_error(r))
			break;
		json_decref(r);
		n++;
	}
	snprintf(note, sizeof(note), "%d %s %s", n, r ? reply_error(r) : "none", reply_message(r));
	json_decref(r);
	return hs_tell_and_wait(&hs, note, strlen(note));
}

/* Runs lock_memfds as the attacker and checks what stopped it; then the
 * victim and root still lock files. */
static void files_until_refused(int want_n, const char *want_message)
{
	hasp_client *root = client_connect(daemon_.socket);
	char note[600] = "";
	pid_t pid;

	hs_open(&hs);
	pid = spawn_as(MALLORY, lock_memfds, NULL);
	hs_hear(&hs, note, sizeof(note) - 1);
	ck_assert_msg(strstr(note, " limit ") && strstr(note, want_message), "%s", note);
	if (want_n >= 0)
		ck_assert_int_eq(atoi(note), want_n);
	if (want_n < 0) /* stopped by the reserve: others can be too */
		ck_assert_int_eq(run_as(VICTIM, lock_a_memfd, NULL), 2);
	else
		ck_assert_int_eq(run_as(VICTIM, lock_a_memfd, NULL), 0);
	ck_assert_int_eq(lock_a_memfd(NULL), 0);
	ck_assert_int_eq(hasp_ping(root), 0);
	signal_byte(hs.leave[1]);
	ck_assert_int_eq(child_status(pid), 0);
	hasp_close(root);
	hs_close(&hs);
}

/* Several uids, each within its share of descriptors in flight, together
 * reach the administrators' reserve: root still gets in and locks. */
START_TEST(descriptors_in_flight_leave_a_reserve)
{
	enum { UIDS = 3 };
	struct handshake each[UIDS];
	pid_t pids[UIDS];
	int served = 0;
	char b;

	if (!start_with_nofile(NULL, LOW_NOFILE))
		return;
	for (int i = 0; i < UIDS; i++) {
		hs_open(&hs);
		each[i] = hs;
		pids[i] = spawn_as(MALLORY + (uid_t)i, flood_descriptors, NULL);
		hs_hear(&each[i], &b, 1);
		served += b;
	}
	/* Not all of them were served: the reserve was reached. */
	ck_assert_int_lt(served, UIDS * SESSIONS);
	ck_assert_int_eq(lock_a_memfd(NULL), 0);
	for (int i = 0; i < UIDS; i++) {
		signal_byte(each[i].leave[1]);
		ck_assert_int_eq(child_status(pids[i]), 0);
		hs_close(&each[i]);
	}
	stop();
}
END_TEST

START_TEST(max_user_files_counts_a_uids_open_files)
{
	char *opts[] = { "--max-user-files", "20", NULL };

	if (!start(opts))
		return;
	files_until_refused(20, "max_user_files");
	stop();
}
END_TEST

START_TEST(file_leases_leave_descriptors_for_administrators)
{
	if (!start_with_nofile(NULL, LOW_NOFILE))
		return;
	files_until_refused(-1, "administrators");
	stop();
}
END_TEST

/* As a user near max_user_files: a lease on one memfd, then the fd form on
 * another, refused (2: limit) with nothing left behind for it. */
static int fd_form_over_the_limit(void *arg)
{
	int held = memfd_create("held", MFD_CLOEXEC), more = memfd_create("more", MFD_CLOEXEC);
	int conn = raw_connect(daemon_.socket), st;
	char line[256];

	(void)arg;
	st = code_status(acquire_fd(conn, "/memfd-held", held));
	if (st != 0)
		return 10 + st;
	snprintf(line, sizeof(line), "{\"id\":2,\"op\":\"acquire\",\"path\":\"/memfd-more\","
		 "\"fd\":true,\"lock_fd\":true,\"timeout_ms\":0}\n");
	raw_send_fd(conn, line, more);
	return code_status(raw_recv_id(conn, 2, 5000));
}

/* A refused fd-form request leaves no resource, no open file and no charge:
 * the uid's next session may lock as before. */
START_TEST(a_refused_fd_form_leaves_nothing_behind)
{
	/* One file held: the fd form's file would be the second, its kept
	 * descriptor the third. */
	char *opts[] = { "--max-user-files", "2", NULL };
	hasp_client *root;
	char *text = NULL;

	if (!start(opts))
		return;
	ck_assert_int_eq(run_as(MALLORY, fd_form_over_the_limit, NULL), 2);
	root = client_connect(daemon_.socket);
	wait_gauge(root, "resources", 0, 5000);
	ck_assert_int_eq(hasp_list_json(root, &text), 0);
	ck_assert_msg(!strstr(text, "memfd-more"), "%s", text);
	free(text);
	ck_assert_int_eq(run_as(MALLORY, lock_a_memfd, NULL), 0);
	hasp_close(root);
	stop();
}
END_TEST

/* ---- 10. client text in the log ---- */

/* Reads the daemon's stderr until it has needle; the text read. */
static void read_log(const char *needle, char *buf, size_t size)
{
	ck_assert_msg(wait_output(daemon_err, needle, 10000, buf, size), "log: %s", buf);
}

START_TEST(client_text_is_escaped_in_the_log)
{
	char *opts[] = { "--log-level", "info", NULL };
	hasp_client *c;
	hasp_lease *l;
	char log[8192] = "";

	if (!start(opts))
		return;
	c = client_connect(daemon_.socket);
	l = client_lock(c, "evil\x1b[2J\r\nhaspd: error: fake\xc2\x9b" "31m", HASP_EXCLUSIVE);
	ck_assert_int_eq(hasp_revoke(c, hasp_lease_id(l)), 0);
	read_log("revoked by", log, sizeof(log));
	ck_assert_ptr_null(strchr(log, '\x1b'));
	ck_assert_ptr_null(strchr(log, '\r'));
	ck_assert_ptr_null(strstr(log, "\xc2\x9b"));
	ck_assert_msg(strstr(log, "evil\\e[2J\\r\\nhaspd: error: fake\\xc2\\x9b31m"), "%s",
		      log);
	hasp_lease_free(l);
	hasp_close(c);
	stop();
}
END_TEST

/* A holder is told of a revoke with the file's name as list shows it, even
 * when the name is not UTF-8. */
START_TEST(a_revoke_names_a_file_whose_name_is_not_utf8)
{
	char path[256];
	int holder, admin, fd;
	json_t *r, *ev;
	const char *shown;
	json_int_t lease;

	if (!start(NULL))
		return;
	snprintf(path, sizeof(path), "%s/bad-\xff.lock", daemon_.dir);
	fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	holder = raw_connect(daemon_.socket);
	/* The path in the request is display text (libhasp sends it shown). */
	r = acquire_fd(holder, "/bad-\xef\xbf\xbd.lock", fd);
	ck_assert_ptr_null(reply_error(r));
	lease = json_integer_value(json_object_get(r, "lease"));
	json_decref(r);
	admin = raw_connect(daemon_.socket);
	snprintf(path, sizeof(path), "{\"id\":1,\"op\":\"revoke\",\"lease\":%lld}\n",
		 (long long)lease);
	raw_send(admin, path);
	json_decref(raw_recv_id(admin, 1, 5000));
	ev = raw_recv(holder, 5000);
	ck_assert_str_eq(json_string_value(json_object_get(ev, "event")), "revoked");
	shown = json_string_value(json_object_get(ev, "path"));
	ck_assert_ptr_nonnull(shown);
	ck_assert_ptr_nonnull(strstr(shown, "/bad-\xef\xbf\xbd.lock"));
	json_decref(ev);
	snprintf(path, sizeof(path), "%s/bad-\xff.lock", daemon_.dir);
	unlink(path);
	close(fd);
	close(holder);
	close(admin);
	stop();
}
END_TEST

/* As the attacker: n sessions one after another, each with a protocol
 * error (logged at info, once per session). */
static int protocol_errors(void *arg)
{
	int n = *(int *)arg;

	for (int i = 0; i < n; i++) {
		int fd = raw_connect(daemon_.socket);

		raw_send(fd, "not json\n");
		json_decref(raw_recv(fd, 5000));
		close(fd);
	}
	return 0;
}

static int count_lines(const char *log, const char *needle)
{
	int n = 0;

	for (const char *p = log; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

START_TEST(a_uids_log_lines_are_rate_limited)
{
	char *opts[] = { "--log-level", "info", NULL };
	static char log[1 << 20];
	int n = 300, lines;
	int64_t t0 = now_ms(), secs;
	size_t len = 0;
	ssize_t r;

	if (!start(opts))
		return;
	ck_assert_int_eq(run_as(MALLORY, protocol_errors, &n), 0);
	secs = (now_ms() - t0) / 1000 + 1;
	/* Root's line still gets through. */
	n = 1;
	ck_assert_int_eq(protocol_errors(&n), 0);
	daemon_stop(&daemon_);
	while ((r = read(daemon_err, log + len, sizeof(log) - 1 - len)) > 0)
		len += (size_t)r;
	log[len] = '\0';
	close(daemon_err);
	lines = count_lines(log, "uid 4242): protocol error");
	ck_assert_msg(lines >= 10 && lines <= 10 + secs, "%d lines in %" PRId64 " s", lines, secs);
	ck_assert_int_eq(count_lines(log, "uid 0): protocol error"), 1);
}
END_TEST

/* ---- 7. checkouts ---- */

static char co_token[40];
static uint64_t co_lease;

/* As another uid: root's checkout cannot be released, renewed or revoked
 * by its lease or key (bits 0-3 set when refused), but its token, which
 * root handed over, releases it (bit 4). */
static int use_roots_checkout(void *arg)
{
	int conn = raw_connect(daemon_.socket), st = 0;
	char line[256];

	(void)arg;
	snprintf(line, sizeof(line), "{\"id\":1,\"op\":\"release\",\"lease\":%" PRIu64 "}\n",
		 co_lease);
	raw_send(conn, line);
	st |= code_status(raw_recv_id(conn, 1, 5000)) == 1 ? 1 : 0;
	raw_send(conn, "{\"id\":2,\"op\":\"release\",\"key\":\"co-root\"}\n");
	st |= code_status(raw_recv_id(conn, 2, 5000)) == 9 ? 2 : 0; /* not its own: unknown */
	snprintf(line, sizeof(line), "{\"id\":3,\"op\":\"renew\",\"lease\":%" PRIu64 ","
		 "\"ttl_ms\":1}\n", co_lease);
	raw_send(conn, line);
	st |= code_status(raw_recv_id(conn, 3, 5000)) == 1 ? 4 : 0;
	snprintf(line, sizeof(line), "{\"id\":4,\"op\":\"revoke\",\"lease\":%" PRIu64 "}\n",
		 co_lease);
	raw_send(conn, line);
	st |= code_status(raw_recv_id(conn, 4, 5000)) == 1 ? 8 : 0;
	snprintf(line, sizeof(line), "{\"id\":5,\"op\":\"release\",\"token\":\"%s\"}\n",
		 co_token);
	raw_send(conn, line);
	st |= code_status(raw_recv_id(conn, 5, 5000)) == 0 ? 16 : 0;
	return st;
}

START_TEST(another_uids_checkout_needs_its_token)
{
	int conn;
	json_t *r;

	if (!start(NULL))
		return;
	conn = raw_connect(daemon_.socket);
	raw_send(conn, "{\"id\":1,\"op\":\"acquire\",\"key\":\"co-root\",\"detach\":true}\n");
	r = raw_recv_id(conn, 1, 5000);
	ck_assert_ptr_null(reply_error(r));
	co_lease = (uint64_t)json_integer_value(json_object_get(r, "lease"));
	snprintf(co_token, sizeof(co_token), "%s", json_string_value(json_object_get(r, "token")));
	json_decref(r);
	close(conn);
	ck_assert_int_eq(run_as(MALLORY, use_roots_checkout, NULL), 31);
	stop();
}
END_TEST

/* As a limited uid: checkouts until refused; the exit status is how many
 * were granted, or 100 + the refusal's code_status. */
static int checkouts_until_refused(void *arg)
{
	const char *prefix = arg;
	int conn = raw_connect(daemon_.socket);
	char line[128];

	for (int i = 1; i < 50; i++) {
		int st;

		snprintf(line, sizeof(line), "{\"id\":%d,\"op\":\"acquire\",\"key\":\"%s%d\","
			 "\"detach\":true,\"timeout_ms\":0}\n", i, prefix, i);
		raw_send(conn, line);
		st = code_status(raw_recv_id(conn, i, 5000));
		if (st)
			return st == 2 ? i - 1 : 100 + st;
	}
	return 99;
}

/* As a limited uid: three keys held in one session, detached requests for
 * them waiting in another, then the first ends: the exit status counts
 * the checkouts granted (bits 0-3), and 16 when the last got limit. */
static int waiting_checkouts_past_the_limit(void *arg)
{
	int a = raw_connect(daemon_.socket), b = raw_connect(daemon_.socket), st = 0;
	char line[128];

	(void)arg;
	for (int i = 1; i <= 3; i++) {
		snprintf(line, sizeof(line), "{\"id\":%d,\"op\":\"acquire\",\"key\":\"w-%d\"}\n", i, i);
		raw_send(a, line);
		if (code_status(raw_recv_id(a, i, 5000)))
			return 100;
		snprintf(line, sizeof(line), "{\"id\":%d,\"op\":\"acquire\",\"key\":\"w-%d\","
			 "\"detach\":true}\n", i, i);
		raw_send(b, line);
	}
	raw_send(b, "{\"id\":9,\"op\":\"ping\"}\n");
	json_decref(raw_recv_id(b, 9, 5000)); /* all three wait */
	close(a);
	for (int i = 1; i <= 3; i++) {
		int code = code_status(raw_recv_id(b, i, 5000));

		st += code == 0;
		st |= i == 3 && code == 2 ? 16 : 0;
	}
	return st;
}

/* The granted and released events a watcher has seen, as 10 * granted +
 * released (it reads until it is quiet). */
static int count_grants_and_ends(int w)
{
	json_t *e;
	int n = 0;

	while ((e = raw_recv(w, 300))) {
		const char *kind = json_string_value(json_object_get(e, "event"));

		n += kind && strcmp(kind, "granted") == 0 ? 10 : kind && strcmp(kind, "released") == 0;
		json_decref(e);
	}
	return n;
}

/* Whether the stats' hold histogram counts every lease's end, and the wait
 * histogram every grant. */
static bool histograms_balance(int fd)
{
	json_t *r, *st, *c, *h;
	bool ok;

	raw_send(fd, "{\"id\":77,\"op\":\"stats\"}\n");
	r = raw_recv_id(fd, 77, 5000);
	st = json_object_get(r, "stats");
	c = json_object_get(st, "counters");
	h = json_object_get(st, "histograms");
#define N(o, name) json_integer_value(json_object_get(o, name))
	ok = N(json_object_get(h, "hold"), "count") ==
		     N(c, "releases") + N(c, "disconnects") + N(c, "revokes") + N(c, "expired") &&
	     N(json_object_get(h, "wait"), "count") ==
		     N(c, "granted_at_once") + N(c, "granted_after_wait");
#undef N
	json_decref(r);
	return ok;
}

/* As a limited uid: sessions that watch until one is refused; the exit
 * status is how many could, or 100 + the refusal's code_status when it
 * is not limit. */
static int watchers_until_refused(void *arg)
{
	(void)arg;
	for (int i = 0; i < 200; i++) {
		int conn = raw_connect(daemon_.socket), st;

		raw_send(conn, "{\"id\":1,\"op\":\"watch\",\"prefix\":\"nothing/\"}\n");
		st = code_status(raw_recv_id(conn, 1, 5000));
		if (st)
			return st == 2 ? i : 100 + st;
	}
	return 255;
}

/* Every lock event looks at every watcher: one uid may not make each of
 * them slow with thousands of idle watchers. Root may. */
START_TEST(watchers_of_a_uid_are_limited)
{
	hasp_client *root;
	int conns[70];

	if (!start(NULL))
		return;
	root = client_connect(daemon_.socket);
	ck_assert_int_eq(run_as(MALLORY, watchers_until_refused, NULL), 64);
	wait_gauge(root, "watchers", 0, 5000);
	for (int i = 0; i < 70; i++) {
		conns[i] = raw_connect(daemon_.socket);
		raw_send(conns[i], "{\"id\":1,\"op\":\"watch\"}\n");
		ck_assert_int_eq(code_status(raw_recv_id(conns[i], 1, 5000)), 0);
	}
	for (int i = 0; i < 70; i++)
		close(conns[i]);
	/* Its watchers gone with its sessions, the uid may watch again. */
	ck_assert_int_eq(run_as(MALLORY, watchers_until_refused, NULL), 64);
	hasp_close(root);
	stop();
}
END_TEST

/* max_user_checkouts holds over sessions, and after them: the checkouts a
 * uid left still count until one is ended (here by root's revoke). */
START_TEST(max_user_checkouts_caps_a_uid)
{
	char *opts[] = { "--max-user-checkouts", "3", "--log-level", "warning", NULL };
	hasp_client *root;
	int w;

	if (!start(opts))
		return;
	ck_assert_int_eq(run_as(MALLORY, checkouts_until_refused, "a-"), 3);
	ck_assert_int_eq(run_as(MALLORY, checkouts_until_refused, "b-"), 0);
	root = client_connect(daemon_.socket);
	ck_assert_int_eq(hasp_revoke_key(root, "a-2"), 1);
	ck_assert_int_eq(run_as(MALLORY, checkouts_until_refused, "c-"), 1);
	ck_assert_int_eq(stats_gauge(root, "checkouts"), 3);
	/* Requests that waited are held to it at their grant. */
	ck_assert_int_eq(hasp_revoke_key(root, "a-1"), 1);
	ck_assert_int_eq(hasp_revoke_key(root, "a-3"), 1);
	w = raw_connect(daemon_.socket);
	raw_send(w, "{\"id\":1,\"op\":\"watch\",\"prefix\":\"w-\"}\n");
	json_decref(raw_recv_id(w, 1, 5000));
	ck_assert_int_eq(run_as(MALLORY, waiting_checkouts_past_the_limit, NULL), 16 + 2);
	ck_assert_int_eq(stats_gauge(root, "checkouts"), 3);
	/* The one refused at its grant was granted in the table, then ended:
	 * both are told, and counted (3 leases of the first session, ended
	 * with it; 3 grants of the checkouts, one of them ended). */
	ck_assert_int_eq(count_grants_and_ends(w), 64);
	ck_assert(histograms_balance(w));
	close(w);
	hasp_close(root);
	stop();
}
END_TEST

/* As a limited uid: the checkouts arg names (a NULL-terminated list of
 * request bodies), then, with ttl_ms set, a TTL of that many ms for all of
 * them in one write (so that they lapse at one moment), then leaves: 0
 * when all were granted. */
static int ttl_ms;

static int checkouts_then_leave(void *arg)
{
	const char *const *bodies = arg;
	int conn = raw_connect(daemon_.socket), i;
	char line[512], renews[4096] = "";

	for (i = 0; bodies[i]; i++) {
		snprintf(line, sizeof(line), "{\"id\":%d,\"op\":\"acquire\",\"detach\":true,%s}\n",
			 i + 1, bodies[i]);
		raw_send(conn, line);
		if (code_status(raw_recv_id(conn, i + 1, 5000)))
			return 10 + i;
		snprintf(line, sizeof(line), "{\"id\":%d,\"op\":\"renew\",%s,\"ttl_ms\":%d}\n",
			 100 + i, bodies[i], ttl_ms);
		strcat(renews, line);
	}
	if (ttl_ms) {
		raw_send(conn, renews);
		if (code_status(raw_recv_id(conn, 100 + i - 1, 5000)))
			return 30;
	}
	return 0;
}

/* Several checkouts of a uid with no session left end in one go (their
 * TTLs run out at one moment; a revoke of their key): the daemon goes on,
 * and the uid's accounting with it. */
START_TEST(checkouts_of_an_absent_uid_ending_together)
{
	static const char *const lapsing[] = {
		"\"key\":\"t1\"", "\"key\":\"t2\"", "\"key\":\"t3\"", "\"key\":\"t4\"", NULL,
	};
	static const char *const sharing[] = {
		"\"key\":\"sh\",\"mode\":\"shared\"", "\"key\":\"sh\",\"mode\":\"shared\"", NULL,
	};
	hasp_client *root;

	if (!start(NULL))
		return;
	root = client_connect(daemon_.socket);
	ck_assert_int_eq(run_as(MALLORY, checkouts_then_leave, (void *)sharing), 0);
	wait_gauge(root, "sessions", 1, 5000); /* the uid has none left */
	ck_assert_int_eq(hasp_revoke_key(root, "sh"), 2);
	ttl_ms = 300;
	ck_assert_int_eq(run_as(MALLORY, checkouts_then_leave, (void *)lapsing), 0);
	ttl_ms = 0;
	wait_gauge(root, "sessions", 1, 5000); /* gone before the TTL ran out */
	wait_gauge(root, "checkouts", 0, 5000);
	ck_assert_int_eq(hasp_ping(root), 0);
	hasp_close(root);
	/* The uid starts afresh: its count of checkouts went back to 0. */
	ck_assert_int_eq(run_as(MALLORY, checkouts_then_leave, (void *)sharing), 0);
	stop();
}
END_TEST

/* A reader's flock on a checked-out file across a restart: the checkout is
 * dropped (said in the log), and the daemon starts. */
START_TEST(a_file_checkout_dropped_at_restore)
{
	char path[256], out[8192] = "";
	const char *bodies[] = { path, NULL };
	char body[300];
	int fd, p[2];

	if (!start(NULL))
		return;
	snprintf(path, sizeof(path), "%s/co-file", daemon_.dir);
	fd = open(path, O_RDWR | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	snprintf(body, sizeof(body), "\"path\":\"%s\"", path);
	bodies[0] = body;
	/* Bare paths are the daemon's uid's: root checks it out for itself. */
	ck_assert_int_eq(checkouts_then_leave((void *)bodies), 0);
	kill(daemon_.pid, SIGKILL);
	wait_child(daemon_.pid, 5000);
	ck_assert_int_eq(flock(fd, LOCK_SH | LOCK_NB), 0);
	close(daemon_err);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	daemon_.pid = daemon_spawn(daemon_.socket, p[1]);
	close(p[1]);
	daemon_err = p[0];
	ck_assert(wait_output(daemon_err, "is dropped", test_ms(10000), out, sizeof(out)));
	ck_assert_msg(strstr(out, "outside hasp holds its flock"), "%s", out);
	ck_assert(wait_socket(daemon_.socket, DAEMON_START_MS));
	close(fd);
	unlink(path);
	stop();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("security");
	TCase *files = tcase_create("descriptors");
	TCase *authority = tcase_create("authority");
	TCase *admins = tcase_create("administrators");
	TCase *log = tcase_create("log");

	tcase_set_timeout(files, 60);
	tcase_add_test(files, a_descriptor_must_be_open_for_reading_or_writing);
	suite_add_tcase(s, files);
	tcase_set_timeout(authority, 60);
	tcase_add_test(authority, authority_is_the_senders_not_the_connections);
	tcase_add_test(authority, a_line_from_two_senders_is_refused);
	suite_add_tcase(s, authority);
	tcase_set_timeout(admins, 120);
	tcase_add_test(admins, max_sessions_keeps_a_reserve_for_administrators);
	tcase_add_test(admins, descriptors_in_flight_count_per_uid);
	tcase_add_test(admins, descriptors_in_flight_leave_a_reserve);
	tcase_add_test(admins, max_user_files_counts_a_uids_open_files);
	tcase_add_test(admins, a_refused_fd_form_leaves_nothing_behind);
	tcase_add_test(admins, file_leases_leave_descriptors_for_administrators);
	tcase_add_test(admins, another_uids_checkout_needs_its_token);
	tcase_add_test(admins, max_user_checkouts_caps_a_uid);
	tcase_add_test(admins, watchers_of_a_uid_are_limited);
	tcase_add_test(admins, checkouts_of_an_absent_uid_ending_together);
	tcase_add_test(admins, a_file_checkout_dropped_at_restore);
	suite_add_tcase(s, admins);
	tcase_set_timeout(log, 120);
	tcase_add_test(log, client_text_is_escaped_in_the_log);
	tcase_add_test(log, a_revoke_names_a_file_whose_name_is_not_utf8);
	tcase_add_test(log, a_uids_log_lines_are_rate_limited);
	suite_add_tcase(s, log);
	return run_suite(s);
}
