/* Checkouts and lease lifetimes on the wire, against a real haspd: detach
 * and tokens, release by token, lease, key and path, TTL expiry and renew,
 * the fields list shows, and the journal across kill -9 and restarts. */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "suite.h"

static struct daemon_proc daemon_;

static void setup(void)
{
	daemon_start(&daemon_);
}

static void teardown(void)
{
	daemon_stop(&daemon_);
}

/* Sends one request (printf-style) and returns the reply with its id. */
static json_t *call(int fd, int64_t id, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static json_t *call(int fd, int64_t id, const char *fmt, ...)
{
	char body[2048], line[2200];
	va_list ap;
	json_t *r;

	va_start(ap, fmt);
	vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "{\"id\":%lld,%s}\n", (long long)id, body);
	raw_send(fd, line);
	r = raw_recv_id(fd, id, 10000);
	ck_assert_msg(r != NULL, "no reply to %s", line);
	return r;
}

/* A call that must succeed. */
static json_t *call_ok(int fd, int64_t id, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static json_t *call_ok(int fd, int64_t id, const char *fmt, ...)
{
	char body[2048];
	va_list ap;
	json_t *r;

	va_start(ap, fmt);
	vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	r = call(fd, id, "%s", body);
	ck_assert_msg(!reply_error(r), "%s: %s", body, reply_message(r));
	return r;
}

/* The error code of a call, which must fail; its message into msg. */
static void call_fails(int fd, const char *want, char *msg, size_t n, const char *body)
{
	json_t *r = call(fd, 99, "%s", body);

	ck_assert_msg(reply_error(r) && !strcmp(reply_error(r), want), "%s: %s %s", body,
		      reply_error(r) ? reply_error(r) : "ok", reply_message(r));
	if (msg)
		snprintf(msg, n, "%s", reply_message(r));
	json_decref(r);
}

struct grant {
	json_int_t lease, fence;
	char token[40];
};

/* A checkout of key on a new connection that is closed at once. */
static struct grant checkout(const char *socket, const char *extra)
{
	int fd = raw_connect(socket);
	json_t *r = call_ok(fd, 1, "\"op\":\"acquire\",\"detach\":true%s", extra);
	const char *token = json_string_value(json_object_get(r, "token"));
	struct grant g = {
		json_integer_value(json_object_get(r, "lease")),
		json_integer_value(json_object_get(r, "fence")), "",
	};

	ck_assert_ptr_nonnull(token);
	ck_assert_uint_eq(strlen(token), 32);
	ck_assert_uint_eq(strspn(token, "0123456789abcdef"), 32);
	snprintf(g.token, sizeof(g.token), "%s", token);
	json_decref(r);
	close(fd);
	return g;
}

/* The holders listed on name (a key or a path), as a new reference, or NULL. */
static json_t *holders_of(int fd, const char *name)
{
	json_t *r = call_ok(fd, 50, "\"op\":\"list\",\"prefix\":\"%s\"", name), *res, *found = NULL;
	size_t i;

	json_array_foreach(json_object_get(r, "resources"), i, res) {
		const char *n = json_string_value(json_object_get(res, "key"));

		if (!n)
			n = json_string_value(json_object_get(res, "path"));
		if (n && !strcmp(n, name))
			found = json_incref(json_object_get(res, "holders"));
	}
	json_decref(r);
	return found;
}

static bool listed(int fd, const char *name)
{
	json_t *h = holders_of(fd, name);

	json_decref(h);
	return h != NULL;
}

static json_int_t counter(int fd, const char *name)
{
	json_t *r = call_ok(fd, 60, "\"op\":\"stats\"");
	json_int_t v = json_integer_value(json_object_get(
		json_object_get(json_object_get(r, "stats"), "counters"), name));

	json_decref(r);
	return v;
}

/* ---- detach and tokens ---- */

/* The seed: a checkout outlives its session; a conflicting request names
 * who has it, since when and why; the token ends it from anywhere. */
START_TEST(a_checkout_outlives_its_session_and_names_its_holder)
{
	struct grant g = checkout(daemon_.socket, ",\"key\":\"part-7.mcam\",\"owner\":\"alice\","
				  "\"message\":\"fixing fillets\"");
	int bob = raw_connect(daemon_.socket);
	json_t *h = holders_of(bob, "part-7.mcam"), *one;
	char msg[2048], want[128];

	ck_assert_ptr_nonnull(h);
	one = json_array_get(h, 0);
	ck_assert(json_is_true(json_object_get(one, "detached")));
	ck_assert_int_eq(json_integer_value(json_object_get(one, "lease")), g.lease);
	ck_assert_int_eq(json_integer_value(json_object_get(one, "session")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(one, "pid")), getpid());
	ck_assert_ptr_nonnull(json_string_value(json_object_get(one, "granted_at")));
	ck_assert_int_eq(strlen(json_string_value(json_object_get(one, "granted_at"))),
			 strlen("2026-11-30T10:21:09.123Z"));
	ck_assert_ptr_null(json_object_get(one, "token")); /* never shown */
	ck_assert_ptr_null(json_object_get(one, "expires_in_ms"));
	json_decref(h);
	call_fails(bob, "busy", msg, sizeof(msg),
		   "\"op\":\"acquire\",\"key\":\"part-7.mcam\",\"timeout_ms\":0");
	snprintf(want, sizeof(want), "is checked out by alice (uid %u) since 20", (unsigned)getuid());
	ck_assert_msg(strstr(msg, want) && strstr(msg, " UTC: fixing fillets"), "%s", msg);
	json_decref(call_ok(bob, 2, "\"op\":\"release\",\"token\":\"%s\"", g.token));
	json_decref(call_ok(bob, 3, "\"op\":\"acquire\",\"key\":\"part-7.mcam\",\"timeout_ms\":0"));
	close(bob);
}
END_TEST

/* A waiting request that asked to detach is checked out at its grant, and
 * answered with its token then. */
START_TEST(a_waiting_request_is_checked_out_at_its_grant)
{
	int a = raw_connect(daemon_.socket), b = raw_connect(daemon_.socket);
	json_t *r = call_ok(a, 1, "\"op\":\"acquire\",\"key\":\"w\"");
	json_int_t lease = json_integer_value(json_object_get(r, "lease"));

	json_decref(r);
	raw_send(b, "{\"id\":7,\"op\":\"acquire\",\"key\":\"w\",\"detach\":true}\n");
	json_decref(call_ok(b, 8, "\"op\":\"ping\"")); /* it waits */
	json_decref(call_ok(a, 2, "\"op\":\"release\",\"lease\":%lld", (long long)lease));
	r = raw_recv_id(b, 7, 5000);
	ck_assert_ptr_nonnull(r);
	ck_assert_ptr_null(reply_error(r));
	ck_assert_uint_eq(strlen(json_string_value(json_object_get(r, "token"))), 32);
	json_decref(r);
	close(b); /* the checkout stays */
	r = holders_of(a, "w");
	ck_assert_ptr_nonnull(r);
	ck_assert(json_is_true(json_object_get(json_array_get(r, 0), "detached")));
	json_decref(r);
	close(a);
}
END_TEST

/* A release with a token must carry the right one, whoever sends it; a
 * session-bound lease has none; a checkout's own uid needs none. */
START_TEST(tokens_must_be_right)
{
	struct grant g = checkout(daemon_.socket, ",\"key\":\"t\"");
	int c = raw_connect(daemon_.socket);
	char body[200], wrong[40];
	json_t *r;

	snprintf(wrong, sizeof(wrong), "%s", g.token);
	wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
	snprintf(body, sizeof(body), "\"op\":\"release\",\"lease\":%lld,\"token\":\"%s\"",
		 (long long)g.lease, wrong);
	call_fails(c, "permission_denied", NULL, 0, body);
	snprintf(body, sizeof(body), "\"op\":\"release\",\"token\":\"%s\"", wrong);
	call_fails(c, "unknown_lease", NULL, 0, body);
	call_fails(c, "bad_request", NULL, 0, "\"op\":\"release\",\"token\":\"ABC\"");
	call_fails(c, "bad_request", NULL, 0, "\"op\":\"release\"");
	/* Its own uid (the same as here) releases it by lease, no token. */
	r = call_ok(c, 3, "\"op\":\"release\",\"lease\":%lld", (long long)g.lease);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "lease")), g.lease);
	json_decref(r);
	snprintf(body, sizeof(body), "\"op\":\"release\",\"token\":\"%s\"", g.token);
	call_fails(c, "unknown_lease", NULL, 0, body); /* once */
	r = call_ok(c, 4, "\"op\":\"acquire\",\"key\":\"s\"");
	snprintf(body, sizeof(body), "\"op\":\"release\",\"lease\":%lld,\"token\":\"%s\"",
		 (long long)json_integer_value(json_object_get(r, "lease")), g.token);
	call_fails(c, "permission_denied", NULL, 0, body);
	json_decref(r);
	close(c);
}
END_TEST

/* Release by key: the session's own lease on it first, else the uid's
 * checkout; by path, with the file's descriptor. */
START_TEST(release_by_key_and_by_path)
{
	char path[200], body[300];
	int c = raw_connect(daemon_.socket), fd;
	json_t *r;

	checkout(daemon_.socket, ",\"key\":\"rk\",\"mode\":\"shared\"");
	r = call_ok(c, 1, "\"op\":\"acquire\",\"key\":\"rk\",\"mode\":\"shared\"");
	json_decref(r);
	r = holders_of(c, "rk");
	ck_assert_uint_eq(json_array_size(r), 2);
	json_decref(r);
	json_decref(call_ok(c, 2, "\"op\":\"release\",\"key\":\"rk\"")); /* the session's */
	r = holders_of(c, "rk");
	ck_assert_uint_eq(json_array_size(r), 1);
	ck_assert(json_is_true(json_object_get(json_array_get(r, 0), "detached")));
	json_decref(r);
	json_decref(call_ok(c, 3, "\"op\":\"release\",\"key\":\"rk\"")); /* the checkout */
	ck_assert_ptr_null(holders_of(c, "rk"));
	call_fails(c, "unknown_lease", NULL, 0, "\"op\":\"release\",\"key\":\"rk\"");

	snprintf(path, sizeof(path), "%s/co-file", daemon_.dir);
	fd = open(path, O_RDWR | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	snprintf(body, sizeof(body), "{\"id\":4,\"op\":\"acquire\",\"path\":\"%s\",\"fd\":true,"
		 "\"detach\":true}\n", path);
	raw_send_fd(c, body, fd);
	r = raw_recv_id(c, 4, 5000);
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
	/* The file's flock is held for the checkout (flock(1) sees it). */
	ck_assert_int_eq(setenv("HASP_CO_FILE", path, 1), 0);
	ck_assert_int_eq(WEXITSTATUS(system("flock -n -E 42 \"$HASP_CO_FILE\" true")), 42);
	snprintf(body, sizeof(body), "{\"id\":5,\"op\":\"release\",\"path\":\"%s\",\"fd\":true}\n", path);
	raw_send_fd(c, body, fd);
	r = raw_recv_id(c, 5, 5000);
	ck_assert_msg(!reply_error(r), "%s", reply_message(r));
	json_decref(r);
	ck_assert_int_eq(WEXITSTATUS(system("flock -n -E 42 \"$HASP_CO_FILE\" true")), 0);
	close(fd);
	unlink(path);
	close(c);
}
END_TEST

/* ---- time-to-live ---- */

/* A lease not renewed within its TTL ends: its session hears "expired",
 * the waiter behind it is granted, stats count it. */
START_TEST(a_ttl_lease_expires_and_the_waiter_goes_on)
{
	int a = raw_connect(daemon_.socket), b = raw_connect(daemon_.socket);
	int64_t start = now_ms(); /* before the grant: the lapse is 150 ms after it */
	json_t *r = call_ok(a, 1, "\"op\":\"acquire\",\"key\":\"ttl\",\"ttl_ms\":150");
	json_int_t lease = json_integer_value(json_object_get(r, "lease"));

	ck_assert_int_eq(json_integer_value(json_object_get(r, "expires_ms")), 150);
	json_decref(r);
	raw_send(b, "{\"id\":2,\"op\":\"acquire\",\"key\":\"ttl\"}\n");
	r = raw_recv(a, test_ms(5000));
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(json_string_value(json_object_get(r, "event")), "expired");
	ck_assert_int_eq(json_integer_value(json_object_get(r, "lease")), lease);
	ck_assert_str_eq(json_string_value(json_object_get(r, "key")), "ttl");
	ck_assert_int_ge(now_ms() - start, 150); /* never early */
	json_decref(r);
	r = raw_recv_id(b, 2, 5000);
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
	call_fails(a, "unknown_lease", NULL, 0, "\"op\":\"release\",\"key\":\"ttl\"");
	ck_assert_int_eq(counter(a, "expired"), 1);
	close(a);
	close(b);
}
END_TEST

/* A renew starts the TTL again (with a new one if given); a lease without
 * a TTL has none to renew. */
START_TEST(renew_starts_the_ttl_again)
{
	int c = raw_connect(daemon_.socket);
	json_t *r = call_ok(c, 1, "\"op\":\"acquire\",\"key\":\"rn\",\"ttl_ms\":400"), *h;
	json_int_t lease = json_integer_value(json_object_get(r, "lease"));
	struct grant g;

	json_decref(r);
	r = call_ok(c, 2, "\"op\":\"renew\",\"lease\":%lld,\"ttl_ms\":600000", (long long)lease);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "expires_ms")), 600000);
	json_decref(r);
	h = holders_of(c, "rn");
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(h, 0), "ttl_ms")), 600000);
	ck_assert_int_gt(json_integer_value(json_object_get(json_array_get(h, 0), "expires_in_ms")),
			 590000);
	json_decref(h);
	r = call_ok(c, 3, "\"op\":\"renew\",\"key\":\"rn\"");
	ck_assert_int_eq(json_integer_value(json_object_get(r, "expires_ms")), 600000);
	json_decref(r);
	json_decref(call_ok(c, 4, "\"op\":\"acquire\",\"key\":\"plain\""));
	call_fails(c, "bad_request", NULL, 0, "\"op\":\"renew\",\"key\":\"plain\"");
	call_fails(c, "unknown_lease", NULL, 0, "\"op\":\"renew\",\"key\":\"nothing\"");
	/* A checkout without a TTL may be given one, by its token. */
	g = checkout(daemon_.socket, ",\"key\":\"co-rn\"");
	call_fails(c, "bad_request", NULL, 0, "\"op\":\"renew\",\"key\":\"co-rn\"");
	r = call_ok(c, 5, "\"op\":\"renew\",\"token\":\"%s\",\"ttl_ms\":100", g.token);
	json_decref(r);
	close(c);
	/* ... and then expires by it, with nobody to tell. */
	c = raw_connect(daemon_.socket);
	for (int64_t end = now_ms() + test_ms(5000); counter(c, "expired") < 1; ) {
		ck_assert_msg(now_ms() < end, "the checkout did not expire");
		ck_assert(!wait_readable(c, 10));
	}
	ck_assert_ptr_null(holders_of(c, "co-rn"));
	close(c);
}
END_TEST

START_TEST(bad_lifetimes_are_refused)
{
	int c = raw_connect(daemon_.socket);

	call_fails(c, "bad_request", NULL, 0, "\"op\":\"acquire\",\"key\":\"x\",\"ttl_ms\":0");
	call_fails(c, "bad_request", NULL, 0, "\"op\":\"acquire\",\"key\":\"x\",\"ttl_ms\":\"1\"");
	call_fails(c, "bad_request", NULL, 0, "\"op\":\"acquire\",\"key\":\"x\",\"detach\":1");
	call_fails(c, "bad_request", NULL, 0,
		   "\"op\":\"renew\",\"key\":\"x\",\"lease\":3");
	close(c);
}
END_TEST

/* ---- the journal ---- */

static void kill_daemon(struct daemon_proc *d)
{
	kill(d->pid, SIGKILL);
	wait_child(d->pid, 5000);
}

/* Starts haspd again on d's socket and state, its stderr into *err. */
static void restart(struct daemon_proc *d, char *const opts[], int *err)
{
	static char *const quiet[] = { "--log-level", "info", NULL };
	int p[2];

	ck_assert_int_eq(pipe(p), 0);
	d->pid = daemon_spawn_with(d->socket, opts ? opts : quiet, p[1]);
	close(p[1]);
	*err = p[0];
	ck_assert(wait_socket(d->socket, DAEMON_START_MS));
}

/* Checkouts survive kill -9 and a restart as they were: ids, fences,
 * owners, modes, TTLs by the wall clock, holders' order; new grants have
 * higher fences and ids; their tokens still end them. */
START_TEST(checkouts_survive_a_kill_and_a_restart)
{
	struct grant a = checkout(daemon_.socket, ",\"key\":\"j\",\"mode\":\"shared\",\"owner\":\"ann\"");
	struct grant b = checkout(daemon_.socket, ",\"key\":\"j\",\"mode\":\"shared\","
				  "\"message\":\"m\\u00e9\",\"ttl_ms\":3600000");
	struct grant gone = checkout(daemon_.socket, ",\"key\":\"g\"");
	int64_t granted = now_ms();
	int c = raw_connect(daemon_.socket), err;
	json_t *h, *r;

	json_decref(call_ok(c, 1, "\"op\":\"release\",\"token\":\"%s\"", gone.token));
	json_decref(call_ok(c, 2, "\"op\":\"acquire\",\"key\":\"bound\"")); /* dies with haspd */
	close(c);
	kill_daemon(&daemon_);
	while (now_ms() < granted + 300) /* time held, to be counted across the restart */
		usleep(10000);
	restart(&daemon_, NULL, &err);
	c = raw_connect(daemon_.socket);
	h = holders_of(c, "j");
	ck_assert_uint_eq(json_array_size(h), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(h, 0), "lease")), a.lease);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(h, 0), "fence")), a.fence);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(h, 0), "owner")), "ann");
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(h, 1), "lease")), b.lease);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(h, 1), "fence")), b.fence);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(h, 1), "message")), "m\xc3\xa9");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(h, 1), "mode")), "shared");
	ck_assert_int_gt(json_integer_value(json_object_get(json_array_get(h, 1), "expires_in_ms")),
			 3500000);
	/* Held since the grant of the run before, not since the restart. */
	ck_assert_int_ge(json_integer_value(json_object_get(json_array_get(h, 0), "held_ms")), 300);
	json_decref(h);
	ck_assert_ptr_null(holders_of(c, "g"));
	ck_assert_ptr_null(holders_of(c, "bound"));
	r = call_ok(c, 3, "\"op\":\"acquire\",\"key\":\"new\"");
	ck_assert_int_gt(json_integer_value(json_object_get(r, "fence")), b.fence);
	ck_assert_int_gt(json_integer_value(json_object_get(r, "lease")), gone.lease);
	json_decref(r);
	ck_assert_int_eq(counter(c, "restored"), 2);
	json_decref(call_ok(c, 4, "\"op\":\"release\",\"token\":\"%s\"", a.token));
	json_decref(call_ok(c, 5, "\"op\":\"release\",\"token\":\"%s\"", b.token));
	ck_assert_ptr_null(holders_of(c, "j"));
	close(c);
	close(err);
}
END_TEST

/* A file checkout is kept only if its path still names the same file. */
START_TEST(a_file_replaced_while_haspd_was_down_is_dropped)
{
	char kept[200], replaced[200], body[400], out[8192] = "";
	int c = raw_connect(daemon_.socket), err;

	snprintf(kept, sizeof(kept), "%s/kept", daemon_.dir);
	snprintf(replaced, sizeof(replaced), "%s/replaced", daemon_.dir);
	for (int i = 0; i < 2; i++) {
		const char *path = i ? replaced : kept;
		int fd = open(path, O_RDWR | O_CREAT, 0644);
		json_t *r;

		snprintf(body, sizeof(body), "{\"id\":%d,\"op\":\"acquire\",\"path\":\"%s\",\"fd\":true,"
			 "\"detach\":true}\n", i + 1, path);
		raw_send_fd(c, body, fd);
		r = raw_recv_id(c, i + 1, 5000);
		ck_assert_ptr_null(reply_error(r));
		json_decref(r);
		close(fd);
	}
	close(c);
	kill_daemon(&daemon_);
	ck_assert_int_eq(unlink(replaced), 0);
	close(open(replaced, O_RDWR | O_CREAT, 0644));
	restart(&daemon_, NULL, &err);
	ck_assert_msg(wait_output(err, "restored 1 checkouts", test_ms(5000), out, sizeof(out)), "%s", out);
	ck_assert_msg(strstr(out, "another file is at its path now"), "%s", out);
	c = raw_connect(daemon_.socket);
	ck_assert(listed(c, kept));
	ck_assert(!listed(c, replaced));
	close(c);
	close(err);
	unlink(kept);
	unlink(replaced);
}
END_TEST

/* Restore finds a file by O_PATH, following no symbolic link: a directory
 * on its path replaced by a link to another while haspd was down (to a
 * FIFO or a device, by someone who owns the directory) is never opened. */
START_TEST(a_path_through_a_new_symbolic_link_is_not_followed)
{
	char dir[200], moved[200], file[260], fifo[260], body[400], out[8192] = "";
	int c = raw_connect(daemon_.socket), fd, err;
	json_t *r;

	snprintf(dir, sizeof(dir), "%s/d", daemon_.dir);
	snprintf(moved, sizeof(moved), "%s/e", daemon_.dir);
	snprintf(file, sizeof(file), "%s/f", dir);
	snprintf(fifo, sizeof(fifo), "%s/f", moved);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	fd = open(file, O_RDWR | O_CREAT, 0644);
	snprintf(body, sizeof(body), "{\"id\":1,\"op\":\"acquire\",\"path\":\"%s\",\"fd\":true,"
		 "\"detach\":true}\n", file);
	raw_send_fd(c, body, fd);
	r = raw_recv_id(c, 1, 5000);
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
	close(fd);
	close(c);
	kill_daemon(&daemon_);
	ck_assert_int_eq(unlink(file), 0);
	ck_assert_int_eq(rmdir(dir), 0);
	ck_assert_int_eq(mkdir(moved, 0755), 0);
	ck_assert_int_eq(mkfifo(fifo, 0644), 0);
	ck_assert_int_eq(symlink(moved, dir), 0);
	restart(&daemon_, NULL, &err); /* an open of the FIFO would hang it */
	ck_assert(wait_output(err, "is dropped", test_ms(5000), out, sizeof(out)));
	/* Where openat2(2) is missing (valgrind knows no syscall 437), the
	 * path is found by O_PATH, which opens no FIFO either. */
	ck_assert_msg(strstr(out, "symbolic link") || strstr(out, "no longer a regular file"),
		      "%s", out);
	close(err);
	unlink(fifo);
	rmdir(moved);
	unlink(dir);
}
END_TEST

/* One that expired while haspd was down is not restored. */
START_TEST(a_checkout_that_expired_while_down_is_dropped)
{
	struct grant g = checkout(daemon_.socket, ",\"key\":\"short\",\"ttl_ms\":200");
	int64_t due = now_ms() + 200;
	char out[8192] = "";
	int c, err;

	(void)g;
	kill_daemon(&daemon_);
	while (now_ms() <= due) /* the wall clock must pass its expiry: nothing to await */
		usleep(10000);
	restart(&daemon_, NULL, &err);
	ck_assert(wait_output(err, "expired while haspd was down", test_ms(5000), out, sizeof(out)));
	c = raw_connect(daemon_.socket);
	ck_assert(!listed(c, "short"));
	close(c);
	close(err);
}
END_TEST

static void write_text(const char *path, const char *text, const char *mode)
{
	FILE *f = fopen(path, mode);

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

/* A last line cut short (a crash while it was written, so never
 * acknowledged) is skipped; anything else unreadable stops haspd, which
 * names the file, unless --forget-checkouts, which moves it aside. */
START_TEST(an_unreadable_journal_stops_haspd)
{
	static char *const forget[] = { "--log-level", "info", "--forget-checkouts", NULL };
	struct grant g = checkout(daemon_.socket, ",\"key\":\"kept\"");
	char out[8192] = "", aside[200];
	int c, err, st;

	kill_daemon(&daemon_);
	write_text(daemon_.journal, "{\"op\":\"end\",\"lea", "a");
	restart(&daemon_, NULL, &err);
	ck_assert(wait_output(err, "cut short", test_ms(5000), out, sizeof(out)));
	c = raw_connect(daemon_.socket);
	ck_assert(listed(c, "kept"));
	close(c);
	close(err);
	kill_daemon(&daemon_);

	write_text(daemon_.journal, "garbage\n{\"op\":\"end\",\"lease\":1}\n", "a");
	{
		int p[2];

		ck_assert_int_eq(pipe(p), 0);
		daemon_.pid = daemon_spawn(daemon_.socket, p[1]);
		close(p[1]);
		out[0] = '\0';
		ck_assert(wait_output(p[0], "cannot read the checkout journal", test_ms(10000), out,
				      sizeof(out)));
		ck_assert_msg(strstr(out, daemon_.journal) && strstr(out, "--forget-checkouts"), "%s", out);
		st = wait_child(daemon_.pid, 10000);
		ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
		close(p[0]);
	}
	ck_assert_int_eq(access(daemon_.socket, F_OK), 0); /* it never served: still the old one */
	restart(&daemon_, forget, &err);
	ck_assert(wait_output(err, "forgotten", test_ms(5000), out, sizeof(out)));
	snprintf(aside, sizeof(aside), "%s.unreadable", daemon_.journal);
	ck_assert_int_eq(access(aside, F_OK), 0);
	c = raw_connect(daemon_.socket);
	ck_assert(!listed(c, "kept"));
	(void)g;
	close(c);
	close(err);
}
END_TEST

static void stop_daemon(struct daemon_proc *d)
{
	int st;

	kill(d->pid, SIGTERM);
	st = wait_child(d->pid, DAEMON_START_MS);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* A clean stop keeps every checkout, however many records the journal
 * holds, and makes none of a request still waiting (its session ends, and
 * its grant, as the holder before it goes, would reach nobody). */
START_TEST(a_clean_stop_keeps_every_checkout)
{
	enum { N = 300 };
	int c = raw_connect(daemon_.socket), w = raw_connect(daemon_.socket), err;
	char *batch = malloc(N * 80), *p = batch;
	char out[8192] = "";
	json_t *r;

	for (int i = 0; i < N; i++)
		p += sprintf(p, "{\"id\":%d,\"op\":\"acquire\",\"key\":\"many-%d\",\"detach\":true}\n",
			     i + 1, i);
	raw_send(c, batch);
	free(batch);
	r = raw_recv_id(c, N, 30000);
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
	json_decref(call_ok(c, N + 1, "\"op\":\"acquire\",\"key\":\"held\""));
	raw_send(w, "{\"id\":1,\"op\":\"acquire\",\"key\":\"held\",\"detach\":true}\n");
	json_decref(call_ok(w, 2, "\"op\":\"ping\"")); /* it waits */
	stop_daemon(&daemon_);
	close(c);
	close(w);
	restart(&daemon_, NULL, &err);
	ck_assert_msg(wait_output(err, "restored 300 checkouts", test_ms(10000), out, sizeof(out)),
		      "%s", out);
	c = raw_connect(daemon_.socket);
	ck_assert_int_eq(counter(c, "restored"), N);
	ck_assert(!listed(c, "held"));
	close(c);
	close(err);
}
END_TEST

static Suite *checkouts_suite(void)
{
	Suite *s = suite_create("checkouts");
	TCase *tc = tcase_create("wire");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, a_checkout_outlives_its_session_and_names_its_holder);
	tcase_add_test(tc, a_waiting_request_is_checked_out_at_its_grant);
	tcase_add_test(tc, tokens_must_be_right);
	tcase_add_test(tc, release_by_key_and_by_path);
	tcase_add_test(tc, a_ttl_lease_expires_and_the_waiter_goes_on);
	tcase_add_test(tc, renew_starts_the_ttl_again);
	tcase_add_test(tc, bad_lifetimes_are_refused);
	tcase_add_test(tc, checkouts_survive_a_kill_and_a_restart);
	tcase_add_test(tc, a_file_replaced_while_haspd_was_down_is_dropped);
	tcase_add_test(tc, a_checkout_that_expired_while_down_is_dropped);
	tcase_add_test(tc, a_path_through_a_new_symbolic_link_is_not_followed);
	tcase_add_test(tc, an_unreadable_journal_stops_haspd);
	tcase_add_test(tc, a_clean_stop_keeps_every_checkout);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(checkouts_suite());
}
