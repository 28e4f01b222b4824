/* Running haspd as a service: revoke, limits, the configuration file and
 * its reload, socket activation and readiness. */
#include <check.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buildconf.h"
#include "fencefile.h"
#include "harness.h"

/* Sessions past max_sessions for root and haspd's uid (daemon/users.h). */
#define ADMIN_SESSIONS 64

static struct daemon_proc daemon_;

static void setup(void)
{
	daemon_start(&daemon_);
}

static void teardown(void)
{
	daemon_stop(&daemon_);
}

/* Starts haspd with these options (after --socket), stderr into a pipe. */
static int start_with(struct daemon_proc *d, char *const opts[])
{
	int p[2];

	daemon_dir(d);
	ck_assert_int_eq(pipe(p), 0);
	d->pid = daemon_spawn_with(d->socket, opts, p[1]);
	close(p[1]);
	return p[0];
}

/* ---- revoke ---- */

START_TEST(revoke_tells_the_holder_and_grants_the_waiter)
{
	hasp_client *holder = client_connect(daemon_.socket), *admin = client_connect(daemon_.socket);
	hasp_lease *l = client_lock(holder, "rk", HASP_EXCLUSIVE);
	int w = raw_connect(daemon_.socket);
	json_t *r;

	raw_send(w, "{\"id\":1,\"op\":\"acquire\",\"key\":\"rk\"}\n{\"id\":2,\"op\":\"ping\"}\n");
	json_decref(raw_recv_id(w, 2, 5000));
	ck_assert_int_eq(hasp_lease_revoked(holder, l), 0);
	ck_assert_int_eq(hasp_revoke(admin, hasp_lease_id(l)), 0);
	r = raw_recv_id(w, 1, 5000); /* the waiter is granted */
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
	ck_assert(wait_readable(hasp_client_fd(holder), 5000));
	ck_assert_int_eq(hasp_lease_revoked(holder, l), 1);
	ck_assert_int_eq(hasp_unlock(holder, l), -HASP_E_UNKNOWN_LEASE);
	ck_assert_int_eq(hasp_revoke(admin, 999999), -HASP_E_UNKNOWN_LEASE);
	close(w);
	hasp_close(holder);
	hasp_close(admin);
}
END_TEST

START_TEST(revoke_every_lease_on_a_key)
{
	hasp_client *a = client_connect(daemon_.socket), *b = client_connect(daemon_.socket);
	hasp_client *admin = client_connect(daemon_.socket);
	hasp_lease *la = client_lock(a, "shared-rk", HASP_SHARED);
	hasp_lease *lb = client_lock(b, "shared-rk", HASP_SHARED);

	ck_assert_int_eq(hasp_revoke_key(admin, "shared-rk"), 2);
	ck_assert(wait_readable(hasp_client_fd(a), 5000));
	ck_assert_int_eq(hasp_lease_revoked(a, la), 1);
	ck_assert(wait_readable(hasp_client_fd(b), 5000));
	ck_assert_int_eq(hasp_lease_revoked(b, lb), 1);
	ck_assert_int_eq(hasp_revoke_key(admin, "shared-rk"), 0);
	hasp_lease_free(la);
	hasp_lease_free(lb);
	hasp_close(a);
	hasp_close(b);
	hasp_close(admin);
}
END_TEST

static uint64_t target_lease;

/* As nobody: revoke target_lease; the exit status is what happened. */
static int nobody_revokes(void)
{
	hasp_client *c = NULL;
	int r;

	if (hasp_connect(daemon_.socket, &c) < 0)
		return 101;
	r = hasp_revoke(c, target_lease);
	hasp_close(c);
	return r == 0 ? 0 : r == -HASP_E_PERMISSION_DENIED ? 2 : 3;
}

/* Runs fn in a child as nobody; its exit status is fn's return. */
static pid_t spawn_as_nobody(int (*fn)(void))
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
			_exit(100);
		_exit(fn());
	}
	return pid;
}

static int nobody_status(pid_t pid)
{
	int st = wait_child(pid, 10000);

	ck_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static int as_nobody(int (*fn)(void))
{
	return nobody_status(spawn_as_nobody(fn));
}

/* As nobody: hold "nobody-key" until a byte arrives on go; tell the lease id. */
static pid_t nobody_holds(int ids, int go)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		hasp_client *c = NULL;
		hasp_lease *l = NULL;
		uint64_t id;
		char b;

		if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0 ||
		    hasp_connect(daemon_.socket, &c) < 0 || hasp_lock(c, "nobody-key", NULL, &l) < 0)
			_exit(1);
		id = hasp_lease_id(l);
		if (write(ids, &id, sizeof(id)) != sizeof(id) || read(go, &b, 1) < 0)
			_exit(2);
		_exit(0);
	}
	return pid;
}

START_TEST(revoke_permissions)
{
	hasp_client *root = client_connect(daemon_.socket);
	/* Static: still reachable in the forked children (valgrind's leak check). */
	static hasp_lease *l;
	int ids[2], go[2];
	pid_t holder;

	l = client_lock(root, "root-key", HASP_EXCLUSIVE);

	if (geteuid() != 0) {
		fprintf(stderr, "skipped: needs root to run clients as another uid\n");
		hasp_lease_free(l);
		hasp_close(root);
		return;
	}
	ck_assert_int_eq(chmod(daemon_.dir, 0755), 0);
	/* Another, unprivileged uid may not revoke root's lease. */
	target_lease = hasp_lease_id(l);
	ck_assert_int_eq(as_nobody(nobody_revokes), 2);
	ck_assert_int_eq(hasp_lease_revoked(root, l), 0);
	/* The holder's own uid may revoke its lease from another session. */
	ck_assert_int_eq(pipe(ids), 0);
	ck_assert_int_eq(pipe(go), 0);
	holder = nobody_holds(ids[1], go[0]);
	ck_assert(wait_readable(ids[0], 5000));
	ck_assert_int_eq(read(ids[0], &target_lease, sizeof(target_lease)), sizeof(target_lease));
	ck_assert_int_eq(as_nobody(nobody_revokes), 0);
	signal_byte(go[1]);
	ck_assert_int_eq(wait_child(holder, 5000), 0);
	hasp_lease_free(l);
	hasp_close(root);
}
END_TEST

/* ---- limits and configuration ---- */

/* A connection the daemon serves. wait_socket()'s probe may not have been
 * counted out yet, so a refusal is tried again, within a bound. */
static int connect_served(const char *socket)
{
	int64_t end = now_ms() + test_ms(5000);

	for (;;) {
		int fd = raw_connect_served(socket);

		if (fd >= 0)
			return fd;
		ck_assert_msg(now_ms() < end, "haspd keeps refusing connections");
	}
}

/* true once the peer of fd has closed, within timeout_ms. */
static bool wait_hangup(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	return poll(&p, 1, test_ms(timeout_ms)) == 1 && (p.revents & (POLLRDHUP | POLLHUP));
}

/* A new connection gets a limit error naming limit, and is closed. */
static void expect_refused(const char *socket, const char *limit)
{
	int fd = raw_connect(socket);
	json_t *r = raw_recv(fd, 5000);

	ck_assert_str_eq(reply_error(r), "limit");
	ck_assert_msg(strstr(reply_message(r), limit), "%s", reply_message(r));
	json_decref(r);
	ck_assert_ptr_null(raw_recv(fd, 5000)); /* closed, not left hanging */
	close(fd);
}

START_TEST(max_sessions_gives_a_limit_error)
{
	struct daemon_proc d;
	char *opts[] = { "--max-sessions", "2", NULL };
	int err = start_with(&d, opts), fds[2 + ADMIN_SESSIONS];
	hasp_client *h;

	ck_assert(wait_socket(d.socket, DAEMON_START_MS));
	/* Root (this test) gets a reserve past the limit (test_security
	 * shows that other uids do not). */
	for (int i = 0; i < 2 + ADMIN_SESSIONS; i++)
		fds[i] = connect_served(d.socket);
	expect_refused(d.socket, "max_sessions");
	/* libhasp says so too, and then that the session is gone. */
	ck_assert_int_eq(hasp_connect(d.socket, &h), 0);
	ck_assert_int_eq(hasp_ping(h), -HASP_E_LIMIT);
	ck_assert_ptr_nonnull(strstr(hasp_client_errmsg(h), "max_sessions"));
	ck_assert_int_eq(hasp_ping(h), -ECONNRESET);
	hasp_close(h);
	/* Also when the daemon has closed before the request goes out. */
	ck_assert_int_eq(hasp_connect(d.socket, &h), 0);
	ck_assert(wait_hangup(hasp_client_fd(h), 5000));
	ck_assert_int_eq(hasp_ping(h), -HASP_E_LIMIT);
	ck_assert_ptr_nonnull(strstr(hasp_client_errmsg(h), "max_sessions"));
	hasp_close(h);
	for (int i = 0; i < 2 + ADMIN_SESSIONS; i++)
		close(fds[i]);
	close(err);
	daemon_stop(&d);
}
END_TEST

/* Out of descriptors (RLIMIT_NOFILE), a client is told so and the
 * connection closed, not left hanging in the backlog; room made by a
 * departing client is used again. */
START_TEST(out_of_descriptors_gives_a_limit_error)
{
	enum { NOFILE = 24 };
	static const char ping[] = "{\"id\":1,\"op\":\"ping\"}\n";
	struct rlimit rl = { NOFILE, NOFILE };
	struct daemon_proc d;
	int fds[NOFILE], n = 0, last;
	json_t *r = NULL;

	daemon_start(&d);
	ck_assert_int_eq(prlimit(d.pid, RLIMIT_NOFILE, &rl, NULL), 0);
	/* Fill every descriptor the daemon has; the one after is refused. */
	for (;;) {
		ck_assert_msg(n < NOFILE, "%d connections served under RLIMIT_NOFILE %d", n, NOFILE);
		fds[n] = raw_connect(d.socket);
		/* A refused one may be closed already: its refusal is still there to read. */
		(void)send(fds[n], ping, strlen(ping), MSG_NOSIGNAL);
		r = raw_recv(fds[n], 5000);
		ck_assert_ptr_nonnull(r);
		if (reply_error(r))
			break;
		json_decref(r);
		n++;
	}
	ck_assert_str_eq(reply_error(r), "limit");
	ck_assert_msg(strstr(reply_message(r), "file descriptors"), "%s", reply_message(r));
	json_decref(r);
	ck_assert_ptr_null(raw_recv(fds[n], 5000)); /* closed, not left hanging */
	close(fds[n]);
	/* One leaves; the next is served. */
	close(fds[0]);
	last = connect_served(d.socket);
	for (int i = 1; i < n; i++)
		close(fds[i]);
	close(last);
	daemon_stop(&d);
}
END_TEST

/* ---- the fence file ---- */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}


/* Starts haspd on d (its directory made), waits until it exits, and
 * returns its stderr, which must hold want. Fails if it serves instead. */
static void expect_no_start(struct daemon_proc *d, char *const opts[], const char *want,
			    char *out, size_t size)
{
	int p[2], st;

	ck_assert_int_eq(pipe(p), 0);
	d->pid = daemon_spawn_with(d->socket, opts, p[1]);
	close(p[1]);
	out[0] = '\0';
	ck_assert_msg(wait_output(p[0], want, DAEMON_START_MS, out, size), "stderr: %s", out);
	st = wait_child(d->pid, 10000);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %#x, stderr: %s", st, out);
	close(p[0]);
}

static void write_ceiling(const char *path, uint64_t c)
{
	char text[32];

	snprintf(text, sizeof(text), "%020llu\n", (unsigned long long)c);
	write_file(path, text);
}

static uint64_t fence_of_a_lease(const char *socket)
{
	hasp_client *c = client_connect(socket);
	hasp_lease *l = client_lock(c, "fenced", HASP_EXCLUSIVE);
	uint64_t f = hasp_lease_fence(l);

	ck_assert_int_eq(hasp_unlock(c, l), 0);
	hasp_close(c);
	return f;
}

/* A fence file that holds something else stops haspd, which says why and
 * leaves the file alone: taking it for new could give lower fences. */
START_TEST(bad_fence_file_stops_the_daemon)
{
	char out[4096], back[64] = "";
	struct daemon_proc d;
	char *opts[] = { "--fence-file", d.fence, NULL };
	FILE *f;

	daemon_dir(&d);
	write_file(d.fence, "not a fence\n");
	expect_no_start(&d, opts, "does not hold a fence ceiling", out, sizeof(out));
	ck_assert_ptr_nonnull(strstr(out, d.fence));
	ck_assert_ptr_nonnull(strstr(out, "fences could go backwards"));
	ck_assert_int_eq(access(d.socket, F_OK), -1); /* it never listened */
	f = fopen(d.fence, "r");
	ck_assert_ptr_nonnull(fgets(back, sizeof(back), f));
	fclose(f);
	ck_assert_str_eq(back, "not a fence\n");
	daemon_dir_remove(&d);
}
END_TEST

/* haspd writes a ceiling into each fence file as it creates it, so an empty
 * one was emptied: it stops haspd, which says how to recover. */
START_TEST(emptied_fence_file_stops_the_daemon)
{
	struct daemon_proc d;
	char *opts[] = { "--log-level", "warning", NULL };
	char out[4096];

	daemon_start(&d);
	kill(d.pid, SIGTERM);
	ck_assert_int_eq(wait_child(d.pid, DAEMON_START_MS), 0);
	ck_assert_int_eq(truncate(d.fence, 0), 0);
	expect_no_start(&d, opts, "is empty", out, sizeof(out));
	ck_assert_ptr_nonnull(strstr(out, "fences could go backwards"));
	ck_assert_ptr_nonnull(strstr(out, "echo $(printf %020d ")); /* the way back */
	ck_assert_int_eq(access(d.socket, F_OK), -1);
	daemon_dir_remove(&d);
}
END_TEST

/* A fence file gone while the socket an earlier haspd left is still there:
 * haspd refuses, and starts once the ceiling is written back the way its
 * message says, with fences above the earlier run's. */
START_TEST(deleted_fence_file_beside_a_stale_socket_stops_the_daemon)
{
	struct daemon_proc d;
	char *opts[] = { "--log-level", "warning", NULL };
	char out[4096], cmd[512];
	uint64_t before;

	daemon_start(&d);
	before = fence_of_a_lease(d.socket);
	kill(d.pid, SIGKILL);
	wait_child(d.pid, 5000);
	ck_assert_int_eq(unlink(d.fence), 0);
	expect_no_start(&d, opts, "is missing", out, sizeof(out));
	ck_assert_ptr_nonnull(strstr(out, "fences could go backwards"));
	ck_assert_ptr_nonnull(strstr(out, d.socket));
	ck_assert_int_eq(access(d.socket, F_OK), 0); /* the evidence stays */
	ck_assert_int_eq(access(d.fence, F_OK), -1);
	snprintf(cmd, sizeof(cmd), "echo $(printf %%020d $(( $(date +%%s%%N) / 1000 + 3600000000 ))) > %s",
		 d.fence);
	ck_assert_int_eq(system(cmd), 0);
	d.pid = daemon_spawn(d.socket, -1);
	ck_assert(wait_socket(d.socket, DAEMON_START_MS));
	ck_assert_uint_gt(fence_of_a_lease(d.socket), before + 3600000000ull);
	daemon_stop(&d);
}
END_TEST

/* A first start (no socket, no fence file) creates the file and says so. */
START_TEST(first_start_creates_the_fence_file)
{
	struct daemon_proc d;
	char *opts[] = { "--log-level", "info", NULL };
	char out[4096] = "";
	int err;

	err = start_with(&d, opts);
	ck_assert_msg(wait_output(err, "a first start", DAEMON_START_MS, out, sizeof(out)),
		      "stderr: %s", out);
	ck_assert(wait_socket(d.socket, DAEMON_START_MS));
	ck_assert_int_eq(access(d.fence, F_OK), 0);
	close(err);
	daemon_stop(&d);
}
END_TEST

/* A stored ceiling near the most the file holds: haspd starts, grants,
 * stops, and starts again on what it stored, its fences still increasing. */
START_TEST(fence_ceiling_near_the_maximum_survives_restarts)
{
	struct daemon_proc d;
	uint64_t f = FENCEFILE_MAX - 1000, g;

	daemon_dir(&d);
	write_ceiling(d.fence, f);
	for (int run = 0; run < 3; run++) {
		d.pid = daemon_spawn(d.socket, -1);
		ck_assert_msg(wait_socket(d.socket, DAEMON_START_MS), "run %d did not start", run);
		g = fence_of_a_lease(d.socket);
		ck_assert_uint_gt(g, f);
		ck_assert_uint_lt(g, FENCEFILE_MAX);
		f = g;
		kill(d.pid, SIGTERM);
		ck_assert_int_eq(wait_child(d.pid, DAEMON_START_MS), 0);
	}
	daemon_dir_remove(&d);
}
END_TEST

/* The last fences are given; then nothing more is granted (requests wait
 * and time out) rather than give a fence that later runs could not be kept
 * above; the daemon stays up for list and revoke, and will not start again. */
START_TEST(exhausted_fences_grant_nothing_more)
{
	struct hasp_lock_options wait = HASP_LOCK_OPTIONS_INIT;
	struct daemon_proc d;
	char *opts[] = { "--log-level", "warning", NULL };
	char out[4096] = "";
	hasp_client *c;
	hasp_lease *l;
	int err;

	daemon_dir(&d);
	write_ceiling(d.fence, FENCEFILE_MAX - 3);
	{
		int p[2];

		ck_assert_int_eq(pipe(p), 0);
		d.pid = daemon_spawn_with(d.socket, opts, p[1]);
		close(p[1]);
		err = p[0];
	}
	ck_assert(wait_socket(d.socket, DAEMON_START_MS));
	ck_assert_uint_eq(fence_of_a_lease(d.socket), FENCEFILE_MAX - 2);
	ck_assert_uint_eq(fence_of_a_lease(d.socket), FENCEFILE_MAX - 1);
	c = client_connect(d.socket);
	wait.timeout_ms = 200;
	ck_assert_int_eq(hasp_lock(c, "fenced", &wait, &l), -HASP_E_TIMEOUT);
	ck_assert_msg(wait_output(err, "fences are exhausted", 5000, out, sizeof(out)), "stderr: %s",
		      out);
	ck_assert_int_eq(hasp_ping(c), 0); /* still serving */
	hasp_close(c);
	close(err);
	kill(d.pid, SIGTERM); /* the fence file stays */
	ck_assert_int_eq(wait_child(d.pid, DAEMON_START_MS), 0);
	expect_no_start(&d, opts, "fences are exhausted", out, sizeof(out));
	daemon_dir_remove(&d);
}
END_TEST

static const char *user_socket;

/* As nobody: two sessions are served, the third refused for max_user_sessions. */
static int nobody_fills_its_sessions(void)
{
	hasp_client *c[3] = { NULL, NULL, NULL };
	int r = 1;

	for (int i = 0; i < 3; i++)
		if (hasp_connect(user_socket, &c[i]) < 0)
			goto out;
	if (hasp_ping(c[0]) == 0 && hasp_ping(c[1]) == 0 && hasp_ping(c[2]) == -HASP_E_LIMIT &&
	    strstr(hasp_client_errmsg(c[2]), "max_user_sessions"))
		r = 0;
out:
	for (int i = 0; i < 3; i++)
		hasp_close(c[i]);
	return r;
}

/* nobody_fills_its_locks tells on closed[1] that it closed its first
 * session, and waits on gone[0] until the daemon has ended that session. */
static int closed[2], gone[2];

/* As nobody: leases and waits count over all its sessions, and leave with them. */
static int nobody_fills_its_locks(void)
{
	struct hasp_lock_options now = HASP_LOCK_OPTIONS_INIT;
	hasp_client *a = NULL, *b = NULL;
	hasp_lease *l[4] = { NULL, NULL, NULL, NULL };
	int r = 1;

	now.timeout_ms = 0;
	close(closed[0]);
	close(gone[1]);
	if (hasp_connect(user_socket, &a) < 0 || hasp_connect(user_socket, &b) < 0)
		goto out;
	if (hasp_lock(a, "a1", &now, &l[0]) == 0 && hasp_lock(a, "a2", &now, &l[1]) == 0 &&
	    hasp_lock(b, "b1", &now, &l[2]) == 0 && hasp_lock(b, "b2", &now, &l[3]) == -HASP_E_LIMIT &&
	    strstr(hasp_client_errmsg(b), "max_user_locks")) {
		a = hasp_close(a); /* its two go */
		if (write(closed[1], "x", 1) != 1 || !wait_byte(gone[0], 10000))
			r = 3;
		else
			r = hasp_lock(b, "b2", &now, &l[3]) == 0 ? 0 : 2;
	}
out:
	for (int i = 0; i < 4; i++)
		hasp_lease_free(l[i]);
	hasp_close(a);
	hasp_close(b);
	return r;
}

/* Starts haspd with opts for clients of any uid; false (and nothing
 * started) when not root, who alone can be another uid. */
static bool start_for_users(struct daemon_proc *d, char *const opts[], int *err)
{
	if (geteuid() != 0) {
		fprintf(stderr, "skipped: needs root to run clients as another uid\n");
		return false;
	}
	*err = start_with(d, opts);
	ck_assert(wait_socket(d->socket, DAEMON_START_MS));
	ck_assert_int_eq(chmod(d->dir, 0755), 0);
	user_socket = d->socket;
	return true;
}

/* One uid over max_user_sessions is refused; root is not limited per uid. */
START_TEST(max_user_sessions_is_per_uid)
{
	char *opts[] = { "--max-user-sessions", "2", NULL };
	struct daemon_proc d;
	int err, fds[3];

	if (!start_for_users(&d, opts, &err))
		return;
	ck_assert_int_eq(as_nobody(nobody_fills_its_sessions), 0);
	for (int i = 0; i < 3; i++)
		fds[i] = connect_served(d.socket);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	close(err);
	daemon_stop(&d);
}
END_TEST

/* Leases and waits count per uid over all its sessions; root is not limited. */
START_TEST(max_user_locks_counts_every_session_of_a_uid)
{
	char *opts[] = { "--max-user-locks", "3", NULL };
	struct hasp_lock_options wait = HASP_LOCK_OPTIONS_INIT;
	hasp_lease *l[4];
	struct daemon_proc d;
	hasp_client *root;
	pid_t pid;
	int err;

	if (!start_for_users(&d, opts, &err))
		return;
	ck_assert_int_eq(pipe(closed), 0);
	ck_assert_int_eq(pipe(gone), 0);
	pid = spawn_as_nobody(nobody_fills_its_locks);
	close(closed[1]);
	close(gone[0]);
	root = client_connect(d.socket);
	/* Root gets "a1" once the daemon has ended the session that held it. */
	if (!wait_byte(closed[0], 10000))
		ck_abort_msg("the child did not get that far: exit status %d", nobody_status(pid));
	wait.timeout_ms = test_ms(5000);
	ck_assert_int_eq(hasp_lock(root, "a1", &wait, &l[0]), 0);
	hasp_lease_free(l[0]);
	signal_byte(gone[1]);
	ck_assert_int_eq(nobody_status(pid), 0);
	close(closed[0]);
	close(gone[1]);
	for (int i = 0; i < 4; i++) {
		char key[8];

		snprintf(key, sizeof(key), "r%d", i);
		l[i] = client_lock(root, key, HASP_EXCLUSIVE);
	}
	for (int i = 0; i < 4; i++)
		hasp_lease_free(l[i]);
	hasp_close(root);
	close(err);
	daemon_stop(&d);
}
END_TEST

START_TEST(max_session_locks_and_line_bytes)
{
	struct daemon_proc d;
	char *opts[] = { "--max-session-locks", "2", "--max-line-bytes", "1024", NULL };
	int err = start_with(&d, opts), fd;
	char big[2100];
	json_t *r;

	ck_assert(wait_socket(d.socket, DAEMON_START_MS));
	fd = raw_connect(d.socket);
	raw_send(fd, "{\"id\":1,\"op\":\"acquire\",\"key\":\"a\"}\n"
		     "{\"id\":2,\"op\":\"acquire\",\"key\":\"b\"}\n"
		     "{\"id\":3,\"op\":\"acquire\",\"key\":\"c\"}\n");
	r = raw_recv_id(fd, 3, 5000);
	ck_assert_str_eq(reply_error(r), "limit");
	ck_assert_ptr_nonnull(strstr(reply_message(r), "max_session_locks"));
	json_decref(r);
	memset(big, ' ', sizeof(big) - 2);
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = '\0';
	raw_send(fd, big);
	r = raw_recv(fd, 5000);
	ck_assert_str_eq(reply_error(r), "too_large");
	ck_assert_ptr_nonnull(strstr(reply_message(r), "1024"));
	json_decref(r);
	close(fd);
	close(err);
	daemon_stop(&d);
}
END_TEST

START_TEST(bad_config_file_refused_with_its_line)
{
	struct daemon_proc d;
	char conf[200], out[2048] = "", want[240];
	int err, st;

	daemon_dir(&d);
	snprintf(conf, sizeof(conf), "%s/haspd.conf", d.dir);
	write_file(conf, "# limits\nmax_sessions = 10\nmax_session_locks = many\n");
	{
		char *opts[] = { "--config", conf, NULL };
		int p[2];

		ck_assert_int_eq(pipe(p), 0);
		d.pid = daemon_spawn_with(d.socket, opts, p[1]);
		close(p[1]);
		err = p[0];
	}
	st = wait_child(d.pid, DAEMON_START_MS);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	snprintf(want, sizeof(want), "%s:3:", conf);
	ck_assert_msg(wait_output(err, want, 5000, out, sizeof(out)), "stderr: %s", out);
	ck_assert_ptr_nonnull(strstr(out, "max_session_locks"));
	ck_assert_int_eq(access(d.socket, F_OK), -1); /* it never listened */
	close(err);
	unlink(conf);
	rmdir(d.dir);
}
END_TEST

START_TEST(sighup_reloads_the_limits)
{
	struct daemon_proc d;
	char conf[200], out[4096] = "";
	int err, fd;
	json_t *r;

	daemon_dir(&d);
	snprintf(conf, sizeof(conf), "%s/haspd.conf", d.dir);
	write_file(conf, "max_session_locks = 1\n");
	{
		char *opts[] = { "--config", conf, "--log-level", "info", NULL };
		int p[2];

		ck_assert_int_eq(pipe(p), 0);
		d.pid = daemon_spawn_with(d.socket, opts, p[1]);
		close(p[1]);
		err = p[0];
	}
	ck_assert(wait_socket(d.socket, DAEMON_START_MS));
	fd = raw_connect(d.socket);
	raw_send(fd, "{\"id\":1,\"op\":\"acquire\",\"key\":\"a\"}\n{\"id\":2,\"op\":\"acquire\",\"key\":\"b\"}\n");
	r = raw_recv_id(fd, 2, 5000);
	ck_assert_str_eq(reply_error(r), "limit");
	json_decref(r);
	write_file(conf, "max_session_locks = 5\n");
	kill(d.pid, SIGHUP);
	ck_assert_msg(wait_output(err, "reloaded", 5000, out, sizeof(out)), "stderr: %s", out);
	raw_send(fd, "{\"id\":3,\"op\":\"acquire\",\"key\":\"b\"}\n");
	r = raw_recv_id(fd, 3, 5000);
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
	/* A bad file on reload is refused; the daemon goes on with what it had. */
	write_file(conf, "max_session_locks = -3\n");
	kill(d.pid, SIGHUP);
	ck_assert(wait_output(err, "reload refused", 5000, out, sizeof(out)));
	raw_send(fd, "{\"id\":4,\"op\":\"acquire\",\"key\":\"c\"}\n");
	r = raw_recv_id(fd, 4, 5000);
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
	close(fd);
	close(err);
	unlink(conf);
	daemon_stop(&d);
}
END_TEST

/* SIGHUP with no file at the default configuration path (none given, so
 * none is needed): the log says that defaults and the command line were
 * reloaded, not "reloaded PATH" of a file that does not exist. */
START_TEST(sighup_without_a_config_file_says_so)
{
	char *opts[] = { "--log-level", "info", "--max-sessions", "77", NULL };
	char out[4096] = "", want[PATH_MAX + 80];
	struct daemon_proc d;
	int err;

	if (access(HASP_CONFIG_PATH, F_OK) == 0) {
		fprintf(stderr, "skipped: %s exists on this machine\n", HASP_CONFIG_PATH);
		return;
	}
	err = start_with(&d, opts);
	ck_assert(wait_socket(d.socket, DAEMON_START_MS));
	kill(d.pid, SIGHUP);
	snprintf(want, sizeof(want), "no configuration file at %s; reloaded defaults and command "
		 "line settings: max_line_bytes 65536, max_sessions 77,", HASP_CONFIG_PATH);
	ck_assert_msg(wait_output(err, want, 5000, out, sizeof(out)), "stderr: %s", out);
	ck_assert_msg(!strstr(out, "reloaded " HASP_CONFIG_PATH), "stderr: %s", out);
	close(err);
	daemon_stop(&d);
}
END_TEST

/* ---- systemd ---- */

static bool built_with_systemd(void)
{
	return getenv("HASP_HAVE_SYSTEMD") && strcmp(getenv("HASP_HAVE_SYSTEMD"), "1") == 0;
}

START_TEST(socket_activation)
{
	static const char activate[] = "/usr/bin/systemd-socket-activate";
	struct daemon_proc d;
	char *argv[40], words[1024];
	hasp_client *c;
	hasp_lease *l;
	size_t n = 0;
	int st;

	if (!built_with_systemd() || access(activate, X_OK) != 0) {
		fprintf(stderr, "skipped: needs haspd built with libsystemd and systemd-socket-activate\n");
		return;
	}
	daemon_dir(&d);
	argv[n++] = (char *)activate;
	argv[n++] = "-l";
	argv[n++] = d.socket;
	n += wrapper_argv(argv + n, 24, words, sizeof(words));
	argv[n++] = (char *)haspd_path();
	argv[n++] = "--log-level";
	argv[n++] = "warning";
	argv[n] = NULL;
	d.pid = spawn_argv(argv, -1);
	ck_assert(wait_socket(d.socket, DAEMON_START_MS));
	c = client_connect(d.socket);
	l = client_lock(c, "activated", HASP_EXCLUSIVE);
	ck_assert_int_eq(hasp_ping(c), 0);
	ck_assert_int_eq(hasp_unlock(c, l), 0);
	hasp_close(c);
	kill(d.pid, SIGTERM);
	st = wait_child(d.pid, DAEMON_START_MS);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	daemon_dir_remove(&d);
}
END_TEST

START_TEST(readiness_notification)
{
	struct daemon_proc d;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char msgs[4096] = "", path[100];
	int ns, st;

	if (!built_with_systemd()) {
		fprintf(stderr, "skipped: haspd was built without libsystemd\n");
		return;
	}
	daemon_dir(&d);
	snprintf(path, sizeof(path), "%s/notify", d.dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ns = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(bind(ns, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", path, 1);
	d.pid = daemon_spawn(d.socket, -1);
	unsetenv("NOTIFY_SOCKET");
	/* Datagrams: each read is one notification. */
	ck_assert_msg(wait_output(ns, "READY=1", DAEMON_START_MS, msgs, sizeof(msgs)), "got: %s",
		      msgs);
	ck_assert_ptr_nonnull(strstr(msgs, "STATUS=0 sessions"));
	ck_assert(wait_socket(d.socket, 5000)); /* READY=1 came once it serves */
	kill(d.pid, SIGTERM);
	ck_assert(wait_output(ns, "STOPPING=1", DAEMON_START_MS, msgs, sizeof(msgs)));
	st = wait_child(d.pid, DAEMON_START_MS);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(ns);
	unlink(path);
	daemon_dir_remove(&d);
}
END_TEST

static Suite *admin_suite(void)
{
	Suite *s = suite_create("admin");
	TCase *revoke = tcase_create("revoke"), *limits = tcase_create("limits");
	TCase *sd = tcase_create("systemd"), *fences = tcase_create("fences");

	tcase_add_checked_fixture(revoke, setup, teardown);
	tcase_set_timeout(revoke, 60);
	tcase_set_timeout(limits, 60);
	tcase_set_timeout(sd, 60);
	tcase_set_timeout(fences, 60);
	tcase_add_test(revoke, revoke_tells_the_holder_and_grants_the_waiter);
	tcase_add_test(revoke, revoke_every_lease_on_a_key);
	tcase_add_test(revoke, revoke_permissions);
	tcase_add_test(limits, max_sessions_gives_a_limit_error);
	tcase_add_test(limits, out_of_descriptors_gives_a_limit_error);
	tcase_add_test(limits, max_user_sessions_is_per_uid);
	tcase_add_test(limits, max_user_locks_counts_every_session_of_a_uid);
	tcase_add_test(limits, max_session_locks_and_line_bytes);
	tcase_add_test(fences, bad_fence_file_stops_the_daemon);
	tcase_add_test(fences, emptied_fence_file_stops_the_daemon);
	tcase_add_test(fences, deleted_fence_file_beside_a_stale_socket_stops_the_daemon);
	tcase_add_test(fences, first_start_creates_the_fence_file);
	tcase_add_test(fences, fence_ceiling_near_the_maximum_survives_restarts);
	tcase_add_test(fences, exhausted_fences_grant_nothing_more);
	tcase_add_test(limits, bad_config_file_refused_with_its_line);
	tcase_add_test(limits, sighup_reloads_the_limits);
	tcase_add_test(limits, sighup_without_a_config_file_says_so);
	tcase_add_test(sd, socket_activation);
	tcase_add_test(sd, readiness_notification);
	suite_add_tcase(s, revoke);
	suite_add_tcase(s, limits);
	suite_add_tcase(s, sd);
	suite_add_tcase(s, fences);
	return s;
}

int main(void)
{
	return run_suite(admin_suite());
}
