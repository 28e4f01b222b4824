/* A real haspd on a temporary socket, real client processes, real signals. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "hasp.h"

static struct daemon_proc daemon_;

static void setup(void)
{
	daemon_start(&daemon_);
}

static void teardown(void)
{
	daemon_stop(&daemon_);
}

static int lock_timeout(hasp_client *c, const char *key, enum hasp_mode mode, int64_t ms)
{
	struct hasp_lock_options o = HASP_LOCK_OPTIONS_INIT;
	hasp_lease *l = NULL;
	int r;

	o.mode = mode;
	o.timeout_ms = ms;
	r = hasp_lock(c, key, &o, &l);
	hasp_lease_free(l);
	return r;
}

/* A child that takes key and holds it until it reads a byte on go; it says
 * "granted" with a byte on ready. */
static pid_t spawn_holder(const char *key, enum hasp_mode mode, int ready, int go)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		hasp_client *c = NULL;
		hasp_lease *l = NULL;
		struct hasp_lock_options o = HASP_LOCK_OPTIONS_INIT;
		char b;

		o.mode = mode;
		o.owner = "holder";
		if (hasp_connect(daemon_.socket, &c) < 0 || hasp_lock(c, key, &o, &l) < 0)
			_exit(1);
		if (write(ready, "x", 1) != 1 || read(go, &b, 1) < 0)
			_exit(2);
		_exit(hasp_unlock(c, l) == 0 ? 0 : 3);
	}
	return pid;
}

START_TEST(mutual_exclusion_counter)
{
	enum { N = 6, M = 150 };
	char path[160];
	pid_t pids[N];
	FILE *f;
	long v = -1;

	snprintf(path, sizeof(path), "%s/counter", daemon_.dir);
	f = fopen(path, "w");
	fputs("0\n", f);
	fclose(f);
	for (int i = 0; i < N; i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0) {
			hasp_client *c = NULL;

			if (hasp_connect(daemon_.socket, &c) < 0)
				_exit(1);
			for (int j = 0; j < M; j++) {
				hasp_lease *l = NULL;
				long x = 0;

				if (hasp_lock(c, "counter", NULL, &l) < 0)
					_exit(2);
				/* read, yield, write: a lost update if two run at once */
				f = fopen(path, "r+");
				if (!f || fscanf(f, "%ld", &x) != 1)
					_exit(3);
				sched_yield();
				rewind(f);
				fprintf(f, "%ld\n", x + 1);
				fclose(f);
				if (hasp_unlock(c, l) < 0)
					_exit(4);
			}
			hasp_close(c);
			_exit(0);
		}
	}
	for (int i = 0; i < N; i++) {
		int st = wait_child(pids[i], 60000);

		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker %d failed: %#x", i, st);
	}
	f = fopen(path, "r");
	ck_assert_int_eq(fscanf(f, "%ld", &v), 1);
	fclose(f);
	unlink(path);
	ck_assert_int_eq(v, N * M);
}
END_TEST

START_TEST(shared_readers_hold_together)
{
	enum { N = 3 };
	int ready[2], go[2];
	pid_t pids[N];
	hasp_client *c = client_connect(daemon_.socket);

	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(go), 0);
	for (int i = 0; i < N; i++)
		pids[i] = spawn_holder("shared-key", HASP_SHARED, ready[1], go[0]);
	/* All N are granted while none has released. */
	for (int i = 0; i < N; i++)
		ck_assert_msg(wait_byte(ready[0], 5000), "reader %d was not granted", i);
	ck_assert_int_eq(lock_timeout(c, "shared-key", HASP_EXCLUSIVE, 0), -HASP_E_BUSY);
	ck_assert_int_eq(lock_timeout(c, "shared-key", HASP_SHARED, 0), 0);
	for (int i = 0; i < N; i++)
		signal_byte(go[1]);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(wait_child(pids[i], 5000), 0);
	hasp_close(c);
}
END_TEST

START_TEST(busy_names_the_holder)
{
	int ready[2], go[2];
	hasp_client *c = client_connect(daemon_.socket);
	char want[32];
	pid_t pid;

	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(go), 0);
	pid = spawn_holder("busy-key", HASP_EXCLUSIVE, ready[1], go[0]);
	ck_assert(wait_byte(ready[0], 5000));
	ck_assert_int_eq(lock_timeout(c, "busy-key", HASP_SHARED, 0), -HASP_E_BUSY);
	snprintf(want, sizeof(want), "pid %d", (int)pid);
	ck_assert_msg(strstr(hasp_client_errmsg(c), want), "'%s' does not name %s",
		      hasp_client_errmsg(c), want);
	ck_assert_ptr_nonnull(strstr(hasp_client_errmsg(c), "holder"));
	signal_byte(go[1]);
	ck_assert_int_eq(wait_child(pid, 5000), 0);
	hasp_close(c);
}
END_TEST

START_TEST(timeout_fires_on_time)
{
	int ready[2], go[2];
	hasp_client *c = client_connect(daemon_.socket);
	int64_t t0, dt;
	pid_t pid;

	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(go), 0);
	pid = spawn_holder("slow-key", HASP_EXCLUSIVE, ready[1], go[0]);
	ck_assert(wait_byte(ready[0], 5000));
	t0 = now_us();
	ck_assert_int_eq(lock_timeout(c, "slow-key", HASP_EXCLUSIVE, 300), -HASP_E_TIMEOUT);
	dt = now_us() - t0;
	ck_assert_msg(dt >= 300000 && dt < test_ms(1000) * 1000LL, "timeout of 300 ms took %lld µs",
		      (long long)dt);
	ck_assert_ptr_nonnull(strstr(hasp_client_errmsg(c), "timed out after 300 ms"));
	/* The timed-out request left the queue: the key is free once released. */
	signal_byte(go[1]);
	ck_assert_int_eq(wait_child(pid, 5000), 0);
	ck_assert_int_eq(lock_timeout(c, "slow-key", HASP_EXCLUSIVE, 0), 0);
	hasp_close(c);
}
END_TEST

START_TEST(sigkill_holder_hands_over_at_once)
{
	int ready[2], go[2];
	int fd = raw_connect(daemon_.socket);
	json_t *r;
	int64_t t0, dt;
	pid_t pid;

	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(go), 0);
	pid = spawn_holder("kill-key", HASP_EXCLUSIVE, ready[1], go[0]);
	ck_assert(wait_byte(ready[0], 5000));
	raw_send(fd, "{\"id\":1,\"op\":\"acquire\",\"key\":\"kill-key\"}\n");
	raw_send(fd, "{\"id\":2,\"op\":\"ping\"}\n");
	r = raw_recv(fd, 5000);  /* the ping: the acquire is queued by now */
	ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), 2);
	json_decref(r);
	t0 = now_us();
	kill(pid, SIGKILL);
	r = raw_recv_id(fd, 1, 5000);
	dt = now_us() - t0;
	ck_assert_ptr_nonnull(r);
	ck_assert_ptr_null(reply_error(r));
	ck_assert_msg(dt < test_ms(500) * 1000LL, "hand-off after SIGKILL took %lld µs", (long long)dt);
	json_decref(r);
	wait_child(pid, 5000);
	close(fd);
}
END_TEST

START_TEST(disconnect_releases_everything)
{
	hasp_client *a = client_connect(daemon_.socket), *b = client_connect(daemon_.socket);

	hasp_lease *l1 = client_lock(a, "d1", HASP_EXCLUSIVE);
	hasp_lease *l2 = client_lock(a, "d2", HASP_SHARED);

	ck_assert_int_eq(lock_timeout(b, "d1", HASP_EXCLUSIVE, 0), -HASP_E_BUSY);
	hasp_close(a); /* without unlocking: the session's end releases both */
	ck_assert_int_eq(lock_timeout(b, "d1", HASP_EXCLUSIVE, test_ms(2000)), 0);
	ck_assert_int_eq(lock_timeout(b, "d2", HASP_EXCLUSIVE, test_ms(2000)), 0);
	hasp_close(b);
	hasp_lease_free(l1);
	hasp_lease_free(l2);
}
END_TEST

START_TEST(pipelined_requests)
{
	enum { N = 100 };
	int fd = raw_connect(daemon_.socket);
	char *batch = malloc(N * 256), *p = batch;
	bool seen[3 * N + 1] = { false };

	for (int i = 0; i < N; i++)
		p += sprintf(p, "{\"id\":%d,\"op\":\"acquire\",\"key\":\"pipe-%d\",\"timeout_ms\":0}\n"
			     "{\"id\":%d,\"op\":\"ping\"}\n"
			     "{\"id\":%d,\"op\":\"acquire\",\"key\":\"pipe-%d\",\"timeout_ms\":0}\n",
			     3 * i + 1, i, 3 * i + 2, 3 * i + 3, i);
	raw_send(fd, batch); /* one write, many requests */
	for (int n = 0; n < 3 * N; n++) {
		json_t *r = raw_recv(fd, 5000);
		int64_t id;

		ck_assert_ptr_nonnull(r);
		id = json_integer_value(json_object_get(r, "id"));
		ck_assert(id >= 1 && id <= 3 * N && !seen[id]);
		seen[id] = true;
		if (id % 3 == 0) /* the second acquire of a key in one session */
			ck_assert_str_eq(reply_error(r), "already_held");
		else
			ck_assert_ptr_null(reply_error(r));
		json_decref(r);
	}
	free(batch);
	close(fd);
}
END_TEST

START_TEST(cancel_a_waiting_request)
{
	hasp_client *a = client_connect(daemon_.socket);
	int fd = raw_connect(daemon_.socket);
	hasp_lease *l = client_lock(a, "cancel-key", HASP_EXCLUSIVE);
	json_t *r;

	raw_send(fd, "{\"id\":7,\"op\":\"acquire\",\"key\":\"cancel-key\"}\n"
		     "{\"id\":8,\"op\":\"cancel\",\"request\":7}\n"
		     "{\"id\":9,\"op\":\"cancel\",\"request\":7}\n");
	r = raw_recv_id(fd, 7, 5000);
	ck_assert_str_eq(reply_error(r), "cancelled");
	json_decref(r);
	r = raw_recv_id(fd, 8, 5000);
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
	r = raw_recv_id(fd, 9, 5000);
	ck_assert_str_eq(reply_error(r), "unknown_request");
	json_decref(r);
	close(fd);
	hasp_lease_free(l);
	hasp_close(a);
}
END_TEST

START_TEST(garbage_gets_an_error_and_the_session_goes_on)
{
	int fd = raw_connect(daemon_.socket);
	json_t *r;

	raw_send(fd, "this is not json\n{\"id\":1,\"op\":\"frobnicate\"}\n{\"id\":2,\"op\":\"ping\"}\n");
	r = raw_recv(fd, 5000);
	ck_assert_str_eq(reply_error(r), "bad_request");
	ck_assert(json_is_null(json_object_get(r, "id")));
	json_decref(r);
	r = raw_recv(fd, 5000);
	ck_assert_str_eq(reply_error(r), "unknown_op");
	json_decref(r);
	r = raw_recv(fd, 5000);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), 2);
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
	close(fd);
}
END_TEST

START_TEST(oversized_line_ends_only_that_session)
{
	int bad = raw_connect(daemon_.socket);
	hasp_client *good = client_connect(daemon_.socket);
	size_t n = 70000;
	char *big = malloc(n + 1);
	json_t *r;

	raw_send(bad, "{\"id\":1,\"op\":\"acquire\",\"key\":\"big-key\"}\n");
	r = raw_recv(bad, 5000);
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
	memset(big, 'a', n);
	big[n] = '\0';
	raw_send(bad, big);
	r = raw_recv(bad, 5000);
	ck_assert_str_eq(reply_error(r), "too_large");
	json_decref(r);
	ck_assert_ptr_null(raw_recv(bad, 5000)); /* then EOF */
	/* The daemon still serves others, and the ended session's lease is gone. */
	ck_assert_int_eq(hasp_ping(good), 0);
	ck_assert_int_eq(lock_timeout(good, "big-key", HASP_EXCLUSIVE, test_ms(2000)), 0);
	free(big);
	close(bad);
	hasp_close(good);
}
END_TEST

START_TEST(client_that_never_reads_is_ended)
{
	int bad = raw_connect(daemon_.socket), filler = raw_connect(daemon_.socket);
	hasp_client *good = client_connect(daemon_.socket);
	char *batch = malloc(300 * 64), *p = batch;
	struct hasp_lock_options o = HASP_LOCK_OPTIONS_INIT;
	hasp_lease *l = NULL;
	json_t *r;
	char buf[65536];
	int64_t end;

	raw_send(bad, "{\"id\":1,\"op\":\"acquire\",\"key\":\"bad-key\"}\n");
	r = raw_recv(bad, 5000);
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
	/* Enough leases that every list reply is large. */
	for (int i = 0; i < 3000; i += 100) {
		p = batch;
		for (int k = i; k < i + 100; k++)
			p += sprintf(p, "{\"id\":%d,\"op\":\"acquire\",\"key\":\"fill-%d\"}\n", k, k);
		raw_send(filler, batch);
		json_decref(raw_recv_id(filler, i + 99, 5000));
	}
	/* Hundreds of list requests whose replies are never read: ~200 MB. */
	p = batch;
	for (int i = 0; i < 300; i++)
		p += sprintf(p, "{\"id\":%d,\"op\":\"list\"}\n", i);
	raw_send(bad, batch);
	/* The daemon ends that session, releasing its lease, and serves others. */
	o.timeout_ms = test_ms(20000);
	ck_assert_int_eq(hasp_lock(good, "bad-key", &o, &l), 0);
	ck_assert_int_eq(hasp_ping(good), 0);
	end = now_ms() + test_ms(20000);
	/* What was sent before it ended, then EOF; every wait for it bounded. */
	do
		ck_assert_msg(now_ms() < end && wait_readable(bad, 5000), "the session was not closed");
	while (read(bad, buf, sizeof(buf)) > 0);
	hasp_lease_free(l);
	free(batch);
	close(bad);
	close(filler);
	hasp_close(good);
}
END_TEST

/* A client that sends without reading is throttled: haspd stops reading
 * from it instead of queueing replies without bound, serves the others
 * meanwhile, and answers every request once the client reads again. */
START_TEST(client_that_sends_without_reading_is_throttled)
{
	enum { LIMIT = 32 << 20 };
	static const char ping[] = "{\"id\":7,\"op\":\"ping\"}\n";
	int fd = raw_connect(daemon_.socket);
	hasp_client *other = client_connect(daemon_.socket);
	char batch[(sizeof(ping) - 1) * 200 + 1] = "", buf[65536];
	size_t sent = 0, answered = 0;
	int64_t end;

	for (int i = 0; i < 200; i++)
		strcat(batch, ping);
	ck_assert_int_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	/* Send until the daemon stops reading: the socket stays full. */
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		size_t at = sent % (sizeof(batch) - 1);
		ssize_t n = send(fd, batch + at, sizeof(batch) - 1 - at, MSG_NOSIGNAL);

		if (n > 0) {
			sent += (size_t)n;
			ck_assert_msg(sent < LIMIT, "haspd read %zu bytes of requests without a reply "
				      "being read, and did not stop", sent);
			continue;
		}
		ck_assert_msg(errno == EAGAIN, "send: %s", strerror(errno));
		if (poll(&p, 1, 2000) == 0)
			break; /* full for 2 s: throttled */
	}
	ck_assert_int_eq(hasp_ping(other), 0);
	ck_assert_int_lt(stats_gauge(other, "heap_bytes"), 16 << 20);
	/* Reading lets it go on: every request whole is answered. */
	sent -= sent % (sizeof(ping) - 1);
	end = now_ms() + test_ms(30000);
	while (answered < sent / (sizeof(ping) - 1)) {
		ssize_t n;

		ck_assert_msg(now_ms() < end, "%zu of %zu pings answered", answered,
			      sent / (sizeof(ping) - 1));
		if (!wait_readable(fd, 1000))
			continue;
		n = read(fd, buf, sizeof(buf));
		ck_assert_int_gt(n, 0);
		for (ssize_t i = 0; i < n; i++)
			answered += buf[i] == '\n';
	}
	close(fd);
	hasp_close(other);
}
END_TEST

START_TEST(list_shows_holders_and_waiters)
{
	hasp_client *a = client_connect(daemon_.socket);
	int fd = raw_connect(daemon_.socket);
	char *text = NULL;
	json_t *all, *res, *h, *w;
	struct hasp_lock_options o = HASP_LOCK_OPTIONS_INIT;
	hasp_lease *l = NULL;

	o.owner = "alice";
	o.message = "schema v42";
	ck_assert_int_eq(hasp_lock(a, "list-key", &o, &l), 0);
	raw_send(fd, "{\"id\":1,\"op\":\"acquire\",\"key\":\"list-key\",\"mode\":\"shared\",\"owner\":\"bob\"}\n"
		     "{\"id\":2,\"op\":\"ping\"}\n");
	json_decref(raw_recv_id(fd, 2, 5000));
	ck_assert_int_eq(hasp_list_json(a, &text), 0);
	all = json_loads(text, 0, NULL);
	res = json_array_get(all, 0);
	ck_assert_str_eq(json_string_value(json_object_get(res, "key")), "list-key");
	h = json_array_get(json_object_get(res, "holders"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(h, "owner")), "alice");
	ck_assert_str_eq(json_string_value(json_object_get(h, "message")), "schema v42");
	ck_assert_int_eq(json_integer_value(json_object_get(h, "pid")), getpid());
	ck_assert_int_eq(json_integer_value(json_object_get(h, "lease")), (json_int_t)hasp_lease_id(l));
	w = json_array_get(json_object_get(res, "waiters"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(w, "owner")), "bob");
	ck_assert_str_eq(json_string_value(json_object_get(w, "mode")), "shared");
	json_decref(all);
	free(text);
	close(fd);
	hasp_lease_free(l);
	hasp_close(a);
}
END_TEST

/* A long client name is cut at a character, not inside one, so that list
 * still shows it. */
START_TEST(long_client_name_is_cut_at_a_character)
{
	hasp_client *c = client_connect(daemon_.socket);
	int fd = raw_connect(daemon_.socket);
	char line[512] = "{\"id\":1,\"op\":\"hello\",\"client\":\"", *text = NULL;
	json_t *all, *h;
	const char *name;

	for (int i = 0; i < 40; i++)
		strcat(line, "\xc3\xa9"); /* é, two bytes */
	strcat(line, "\"}\n{\"id\":2,\"op\":\"acquire\",\"key\":\"named\"}\n");
	raw_send(fd, line);
	json_decref(raw_recv_id(fd, 2, 5000));
	ck_assert_int_eq(hasp_list_json(c, &text), 0);
	all = json_loads(text, 0, NULL);
	h = json_array_get(json_object_get(json_array_get(all, 0), "holders"), 0);
	name = json_string_value(json_object_get(h, "client"));
	ck_assert_msg(name, "no client in %s", text);
	ck_assert_uint_eq(strlen(name), 62);
	ck_assert(strncmp(name, line + strlen("{\"id\":1,\"op\":\"hello\",\"client\":\""), 62) == 0);
	json_decref(all);
	free(text);
	close(fd);
	hasp_close(c);
}
END_TEST

START_TEST(fences_increase)
{
	hasp_client *c = client_connect(daemon_.socket);
	uint64_t last = 0;

	for (int i = 0; i < 50; i++) {
		hasp_lease *l = client_lock(c, "fence-key", HASP_EXCLUSIVE);

		ck_assert_uint_gt(hasp_lease_fence(l), last);
		ck_assert_uint_lt(hasp_lease_fence(l), 1ULL << 53);
		last = hasp_lease_fence(l);
		ck_assert_int_eq(hasp_unlock(c, l), 0);
	}
	hasp_close(c);
}
END_TEST

/* Writes the fence file of d's directory. */
static void write_fence_file(const struct daemon_proc *d, const char *text)
{
	FILE *f = fopen(d->fence, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static uint64_t read_fence_file(const struct daemon_proc *d)
{
	char text[64] = "";
	FILE *f = fopen(d->fence, "r");

	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(text, sizeof(text), f));
	fclose(f);
	return strtoull(text, NULL, 10);
}

/* Fences rest on a ceiling kept beside the socket, not on the wall clock
 * alone: a daemon starts above the stored ceiling (here an hour ahead of
 * the clock, as after a clock stepped back), and stores a new one above
 * every fence before it gives it. */
START_TEST(fences_start_above_the_stored_ceiling)
{
	uint64_t ahead = (uint64_t)time(NULL) * 1000000u + 3600ull * 1000000u;
	char text[32];
	hasp_client *c;
	hasp_lease *l;

	daemon_stop(&daemon_);
	daemon_dir(&daemon_);
	snprintf(text, sizeof(text), "%020llu\n", (unsigned long long)ahead);
	write_fence_file(&daemon_, text);
	daemon_.pid = daemon_spawn(daemon_.socket, -1);
	ck_assert(wait_socket(daemon_.socket, DAEMON_START_MS));
	c = client_connect(daemon_.socket);
	for (int i = 0; i < 100; i++) {
		l = client_lock(c, "fence-key", HASP_EXCLUSIVE);
		ck_assert_uint_gt(hasp_lease_fence(l), ahead);
		ck_assert_uint_gt(read_fence_file(&daemon_), hasp_lease_fence(l));
		ahead = hasp_lease_fence(l);
		ck_assert_int_eq(hasp_unlock(c, l), 0);
	}
	hasp_close(c);
}
END_TEST

START_TEST(stale_socket_replaced_live_one_refused)
{
	int pipefd[2], status;
	char buf[512] = "";
	pid_t second;
	ssize_t n;

	/* A live daemon: a second one on the same path refuses, with a reason. */
	ck_assert_int_eq(pipe(pipefd), 0);
	second = daemon_spawn(daemon_.socket, pipefd[1]);
	close(pipefd[1]);
	status = wait_child(second, DAEMON_START_MS);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0);
	n = read(pipefd[0], buf, sizeof(buf) - 1);
	ck_assert_int_gt(n, 0);
	ck_assert_msg(strstr(buf, "another haspd"), "message: %s", buf);
	close(pipefd[0]);
	/* A dead one leaves its socket file; the next start replaces it. */
	kill(daemon_.pid, SIGKILL);
	wait_child(daemon_.pid, 5000);
	ck_assert_int_eq(access(daemon_.socket, F_OK), 0);
	daemon_.pid = daemon_spawn(daemon_.socket, -1);
	ck_assert(wait_socket(daemon_.socket, DAEMON_START_MS));
}
END_TEST

START_TEST(descriptor_limit_raised)
{
	char path[64], line[256];
	unsigned long soft = 0, hard = 1;
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/limits", (int)daemon_.pid);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Max open files %lu %lu", &soft, &hard) == 2)
			found = true;
	fclose(f);
	ck_assert(found);
	ck_assert_uint_eq(soft, hard);
}
END_TEST

START_TEST(sigterm_removes_socket)
{
	daemon_stop(&daemon_);
	ck_assert_int_eq(access(daemon_.socket, F_OK), -1);
	daemon_start(&daemon_); /* for teardown */
}
END_TEST

static void note_waiting(void *fd)
{
	signal_byte(*(int *)fd);
}

/* A child waiting for key; exits 0 when its wait ends in a lost connection. */
static pid_t spawn_waiter_until_lost(const char *key, int waiting)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct hasp_lock_options o = HASP_LOCK_OPTIONS_INIT;
		hasp_client *c = NULL;
		hasp_lease *l = NULL;

		o.waiting = note_waiting;
		o.userdata = &waiting;
		if (hasp_connect(daemon_.socket, &c) < 0)
			_exit(1);
		_exit(hasp_lock(c, key, &o, &l) == -ECONNRESET ? 0 : 2);
	}
	return pid;
}

/* haspd killed and started again: its clients learn that their leases and
 * waits are lost, the new daemon's fences are above every fence the old
 * one gave, and clients that connect again are served. */
START_TEST(daemon_restart_loses_leases_and_fences_go_on)
{
	hasp_client *a = client_connect(daemon_.socket), *b;
	struct hasp_lock_options now = HASP_LOCK_OPTIONS_INIT;
	hasp_lease *held, *l = NULL;
	int waiting[2];
	uint64_t last, ceiling;
	pid_t waiter;

	/* Grants in a burst, so that the last fence is as far ahead as it gets. */
	for (int i = 0; i < 2000; i++)
		ck_assert_int_eq(hasp_unlock(a, client_lock(a, "restart-key", HASP_EXCLUSIVE)), 0);
	held = client_lock(a, "restart-key", HASP_EXCLUSIVE);
	last = hasp_lease_fence(held);
	ck_assert_int_eq(pipe(waiting), 0);
	waiter = spawn_waiter_until_lost("restart-key", waiting[1]);
	ck_assert(wait_byte(waiting[0], 5000));
	ck_assert_int_eq(hasp_lease_revoked(a, held), 0);

	kill(daemon_.pid, SIGKILL);
	wait_child(daemon_.pid, 5000);
	ck_assert_int_eq(hasp_lease_revoked(a, held), -ECONNRESET);
	ck_assert_ptr_nonnull(strstr(hasp_client_errmsg(a), "lost"));
	ck_assert_int_eq(hasp_ping(a), -ECONNRESET); /* and so does every later call */
	ck_assert_int_eq(hasp_lock(a, "other-key", NULL, &l), -ECONNRESET);
	ck_assert_int_eq(wait_child(waiter, 5000), 0);
	/* The old daemon stored a ceiling above its fences, ahead of the clock. */
	ceiling = read_fence_file(&daemon_);
	ck_assert_uint_gt(ceiling, last);

	daemon_.pid = daemon_spawn(daemon_.socket, -1);
	ck_assert(wait_socket(daemon_.socket, DAEMON_START_MS));
	b = client_connect(daemon_.socket);
	now.timeout_ms = 0; /* the old lease ended with the old daemon */
	ck_assert_int_eq(hasp_lock(b, "restart-key", &now, &l), 0);
	ck_assert_uint_gt(hasp_lease_fence(l), ceiling);
	ck_assert_int_eq(hasp_unlock(b, l), 0);
	hasp_lease_free(held);
	hasp_close(a);
	hasp_close(b);
	close(waiting[0]);
	close(waiting[1]);
}
END_TEST

/* A lease revoked before the daemon died reads as revoked, the more
 * precise of the two answers. */
START_TEST(revoked_before_the_daemon_died_reads_as_revoked)
{
	hasp_client *a = client_connect(daemon_.socket), *admin = client_connect(daemon_.socket);
	hasp_lease *l = client_lock(a, "revoked-key", HASP_EXCLUSIVE);

	/* The event is on a's socket before the daemon dies. (Not
	 * necessarily before the revoke's reply is on admin's: the daemon
	 * flushes sessions in the order they got output, and admin's hello,
	 * sent at connect, may have put it first.) */
	ck_assert_int_eq(hasp_revoke(admin, hasp_lease_id(l)), 0);
	ck_assert(wait_readable(hasp_client_fd(a), 5000));
	kill(daemon_.pid, SIGKILL);
	wait_child(daemon_.pid, 5000);
	ck_assert_int_eq(hasp_lease_revoked(a, l), 1);
	ck_assert_int_eq(hasp_ping(a), -ECONNRESET);
	hasp_lease_free(l);
	hasp_close(a);
	hasp_close(admin);
	daemon_.pid = daemon_spawn(daemon_.socket, -1); /* for teardown */
	ck_assert(wait_socket(daemon_.socket, DAEMON_START_MS));
}
END_TEST

/* With the default limits, 10,000 idle connections are served at once, and
 * the daemon is back to one session when they have gone. */
START_TEST(ten_thousand_idle_connections)
{
	enum { N = 10000 };
	static int fds[N];
	struct rlimit rl;
	hasp_client *c;
	json_t *r;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max < N + 64) {
		fprintf(stderr, "skipped: the descriptor hard limit (%lu) is below %d\n",
			(unsigned long)rl.rlim_max, N + 64);
		return;
	}
	rl.rlim_cur = rl.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	/* wait_socket()'s probe may not have been counted out yet. */
	c = client_connect(daemon_.socket);
	wait_gauge(c, "sessions", 1, 5000);
	for (int i = 0; i < N; i++)
		fds[i] = raw_connect(daemon_.socket);
	/* The first and the last are both served. */
	raw_send(fds[0], "{\"id\":1,\"op\":\"ping\"}\n");
	raw_send(fds[N - 1], "{\"id\":2,\"op\":\"ping\"}\n");
	r = raw_recv(fds[N - 1], 10000);
	ck_assert_ptr_nonnull(r);
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
	r = raw_recv(fds[0], 10000);
	ck_assert_ptr_nonnull(r);
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
	/* Accepted in order: the last one served, every one before it is. */
	ck_assert_int_eq(stats_gauge(c, "sessions"), N + 1);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	wait_gauge(c, "sessions", 1, 20000);
	hasp_close(c);
}
END_TEST

/* fd acquires key as request id; the lease granted. */
static json_int_t raw_lease(int fd, const char *key, int id)
{
	char line[128];
	json_int_t lease;
	json_t *r;

	snprintf(line, sizeof(line), "{\"id\":%d,\"op\":\"acquire\",\"key\":\"%s\"}\n", id, key);
	raw_send(fd, line);
	r = raw_recv_id(fd, id, test_ms(5000));
	ck_assert_ptr_null(reply_error(r));
	lease = json_integer_value(json_object_get(r, "lease"));
	json_decref(r);
	return lease;
}

/* With haspd stopped, before what the trier's try must come after: the
 * trier goes ahead in haspd's queue of ready sockets (its ping first). */
static void trier_ahead(int trier)
{
	raw_send(trier, "{\"id\":1,\"op\":\"ping\"}\n");
}

/* The trier's try of key, sent now; haspd is resumed, and the try must
 * find key free (the trier releases it again). */
static void trier_gets(int trier, const char *key, int round)
{
	char line[256];
	json_t *r;

	snprintf(line, sizeof(line), "{\"id\":2,\"op\":\"acquire\",\"key\":\"%s\",\"timeout_ms\":0}\n"
		 "{\"id\":3,\"op\":\"release\",\"key\":\"%s\"}\n", key, key);
	raw_send(trier, line);
	ck_assert_int_eq(kill(daemon_.pid, SIGCONT), 0);
	r = raw_recv_id(trier, 2, test_ms(5000));
	ck_assert_msg(!reply_error(r), "round %d: the try was answered %s", round,
		      reply_error(r));
	json_decref(r);
	r = raw_recv_id(trier, 3, test_ms(5000));
	ck_assert_ptr_null(reply_error(r));
	json_decref(r);
}

/* A try (timeout 0) is served after a release that was written before it
 * was sent, even from another connection the daemon reads later: here the
 * try's connection is ahead in the daemon's queue of ready sockets (its
 * ping came first), and haspd is stopped while all the lines arrive. */
START_TEST(a_try_is_served_after_a_release_written_before_it)
{
	int holder = raw_connect(daemon_.socket), trier = raw_connect(daemon_.socket);

	for (int round = 0; round < 20; round++) {
		json_int_t lease = raw_lease(holder, "handed", 2 * round + 1);
		char line[128];

		ck_assert_int_eq(kill(daemon_.pid, SIGSTOP), 0);
		trier_ahead(trier);
		snprintf(line, sizeof(line), "{\"id\":%d,\"op\":\"release\",\"lease\":%lld}\n",
			 2 * round + 2, (long long)lease);
		raw_send(holder, line);
		trier_gets(trier, "handed", round);
	}
	close(holder);
	close(trier);
}
END_TEST

/* ---- deadlocks ---- */

/* Sends an acquire of key on fd that will wait, and returns once haspd has
 * queued it: a ping sent after it is answered. */
static void raw_wait_for(int fd, const char *key, int id)
{
	char line[192];
	json_t *pong;

	snprintf(line, sizeof(line),
		 "{\"id\":%d,\"op\":\"acquire\",\"key\":\"%s\"}\n{\"id\":%d,\"op\":\"ping\"}\n",
		 id, key, id + 1000);
	raw_send(fd, line);
	pong = raw_recv_id(fd, id + 1000, 5000);
	ck_assert_ptr_nonnull(pong);
	ck_assert_ptr_null(json_object_get(pong, "error"));
	json_decref(pong);
}

/* The reply to an acquire of key on fd that closes a cycle: deadlock. */
static json_t *raw_deadlock(int fd, const char *key, int id)
{
	char line[128];
	json_t *r;

	snprintf(line, sizeof(line), "{\"id\":%d,\"op\":\"acquire\",\"key\":\"%s\"}\n", id, key);
	raw_send(fd, line);
	r = raw_recv_id(fd, id, 5000);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(reply_error(r), "deadlock");
	return r;
}

/* The cycle's wait i: the waiting session waits for key, for a lease of
 * the next wait's session. */
static json_int_t check_cycle_wait(json_t *cycle, size_t i, const char *key)
{
	json_t *w = json_array_get(cycle, i), *next = json_array_get(cycle, (i + 1) % json_array_size(cycle));
	json_t *by = json_object_get(w, "waits_for");

	ck_assert_str_eq(json_string_value(json_object_get(w, "key")), key);
	ck_assert_str_eq(json_string_value(json_object_get(w, "mode")), "exclusive");
	ck_assert_int_eq(json_integer_value(json_object_get(w, "pid")), getpid());
	ck_assert_int_eq(json_integer_value(json_object_get(by, "session")),
			 json_integer_value(json_object_get(next, "session")));
	ck_assert(json_integer_value(json_object_get(by, "lease")) > 0);
	return json_integer_value(json_object_get(w, "session"));
}

/* A holds x and waits for y; B holds y and asks for x: B is refused at
 * once, naming both; A's wait goes on, and A gets y when B lets it go. */
START_TEST(classic_deadlock_refuses_the_second_and_names_both)
{
	int a = raw_connect(daemon_.socket), b = raw_connect(daemon_.socket);
	json_int_t by, sa, sb;
	json_t *r, *cycle, *granted;
	char line[128], want[64];

	raw_lease(a, "x", 1);
	by = raw_lease(b, "y", 1);
	raw_wait_for(a, "y", 2);
	r = raw_deadlock(b, "x", 2);
	cycle = json_object_get(json_object_get(r, "error"), "cycle");
	ck_assert_uint_eq(json_array_size(cycle), 2);
	sb = check_cycle_wait(cycle, 0, "x");
	sa = check_cycle_wait(cycle, 1, "y");
	ck_assert_int_ne(sa, sb);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(cycle, 0), "request")), 2);
	snprintf(want, sizeof(want), "session %lld (pid %d) waits for exclusive on 'x', held by session %lld",
		 (long long)sb, (int)getpid(), (long long)sa);
	ck_assert_msg(strstr(reply_message(r), want), "message: %s", reply_message(r));
	snprintf(want, sizeof(want), "session %lld (pid %d) waits for exclusive on 'y', held by session %lld",
		 (long long)sa, (int)getpid(), (long long)sb);
	ck_assert_msg(strstr(reply_message(r), want), "message: %s", reply_message(r));
	json_decref(r);
	/* B gives up: A is granted. */
	snprintf(line, sizeof(line), "{\"id\":3,\"op\":\"release\",\"lease\":%lld}\n", (long long)by);
	raw_send(b, line);
	granted = raw_recv_id(a, 2, 5000);
	ck_assert_ptr_nonnull(granted);
	ck_assert_ptr_null(reply_error(granted));
	json_decref(granted);
	close(a);
	close(b);
}
END_TEST

/* A holds x, B y, C z; A waits for y and B for z: C's request for x is
 * refused with the three of them, and the deadlock is counted. */
START_TEST(three_session_cycle)
{
	int fd[3];
	static const char *const keys[3] = { "x", "y", "z" };
	hasp_client *admin = client_connect(daemon_.socket);
	json_t *r, *cycle;

	for (int i = 0; i < 3; i++) {
		fd[i] = raw_connect(daemon_.socket);
		raw_lease(fd[i], keys[i], 1);
	}
	raw_wait_for(fd[0], "y", 2);
	raw_wait_for(fd[1], "z", 2);
	r = raw_deadlock(fd[2], "x", 2);
	cycle = json_object_get(json_object_get(r, "error"), "cycle");
	ck_assert_uint_eq(json_array_size(cycle), 3);
	check_cycle_wait(cycle, 0, "x");
	check_cycle_wait(cycle, 1, "y");
	check_cycle_wait(cycle, 2, "z");
	json_decref(r);
	ck_assert_int_eq(stats_counter(admin, "deadlocks"), 1);
	ck_assert_int_eq(stats_gauge(admin, "waiters"), 2);
	hasp_close(admin);
	for (int i = 0; i < 3; i++)
		close(fd[i]);
}
END_TEST

/* ---- semaphores ---- */

/* The one reply to request id on fd, which must be a grant: its lease. */
static json_int_t sem_granted(int fd, int64_t id)
{
	json_t *r = raw_recv(fd, test_ms(5000));
	json_int_t lease;

	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), id);
	ck_assert_msg(!reply_error(r), "not granted: %s", reply_message(r));
	lease = json_integer_value(json_object_get(r, "lease"));
	json_decref(r);
	return lease;
}

/* Sends an acquire of "sem" with limit 2 and a ping after it: the ping's
 * answer says the acquire was served. Its lease if it was granted at
 * once (its reply comes before the ping's), else 0: it waits. */
static json_int_t sem_ask(int fd, int64_t id)
{
	char line[160];
	json_int_t lease = 0;
	json_t *r;

	snprintf(line, sizeof(line), "{\"id\":%lld,\"op\":\"acquire\",\"key\":\"sem\",\"limit\":2}\n"
		 "{\"id\":%lld,\"op\":\"ping\"}\n", (long long)id, (long long)id + 100);
	raw_send(fd, line);
	if (!wait_readable(fd, test_ms(5000)))
		ck_abort_msg("no answer to request %lld", (long long)id);
	r = raw_recv(fd, test_ms(5000));
	ck_assert_ptr_nonnull(r);
	if (json_integer_value(json_object_get(r, "id")) == id) {
		ck_assert_msg(!reply_error(r), "not granted: %s", reply_message(r));
		lease = json_integer_value(json_object_get(r, "lease"));
		json_decref(r);
		r = raw_recv(fd, test_ms(5000));
	}
	ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), id + 100);
	json_decref(r);
	return lease;
}

/* The "sem" resource of a list, checked: its limit, holders and waiters
 * (the sessions' request ids, in queue order). */
static void sem_listed(int fd, int nholders, const int64_t *waiters, int nwaiters)
{
	json_t *r, *res, *w;

	raw_send(fd, "{\"id\":900,\"op\":\"list\",\"prefix\":\"sem\"}\n");
	r = raw_recv_id(fd, 900, test_ms(5000));
	res = json_array_get(json_object_get(r, "resources"), 0);
	ck_assert_ptr_nonnull(res);
	ck_assert_int_eq(json_integer_value(json_object_get(res, "limit")), 2);
	ck_assert_str_eq(json_string_value(json_object_get(res, "mode")), "exclusive");
	ck_assert_int_eq(json_array_size(json_object_get(res, "holders")), nholders);
	w = json_object_get(res, "waiters");
	ck_assert_int_eq(json_array_size(w), nwaiters);
	for (int i = 0; i < nwaiters; i++) {
		json_t *x = json_array_get(w, i);

		ck_assert_int_eq(json_integer_value(json_object_get(x, "request")), waiters[i]);
		ck_assert_str_eq(json_string_value(json_object_get(x, "waiting_for")),
				 i ? "queue" : "holders");
	}
	json_decref(r);
}

/* With limit 2, four sessions ask in order: two are granted, the third and
 * the fourth wait and are granted in order as holders leave. A request
 * with another limit, or none, is refused naming the key's; list shows
 * the limit; once the key is unused, its limit goes with it. */
START_TEST(semaphore_grants_two_then_in_order)
{
	int fd[4], other = raw_connect(daemon_.socket);
	json_int_t lease[4];
	json_t *r;

	for (int i = 0; i < 4; i++) {
		fd[i] = raw_connect(daemon_.socket);
		lease[i] = sem_ask(fd[i], i + 1);
	}
	ck_assert(lease[0] && lease[1] && lease[0] != lease[1]);
	ck_assert(!lease[2] && !lease[3]);
	ck_assert(!wait_readable(fd[2], test_ms(50)) && !wait_readable(fd[3], 0));
	sem_listed(other, 2, (const int64_t[]){ 3, 4 }, 2);
	raw_send(other, "{\"id\":1,\"op\":\"acquire\",\"key\":\"sem\",\"limit\":3,\"timeout_ms\":0}\n"
		       "{\"id\":2,\"op\":\"acquire\",\"key\":\"sem\"}\n"
		       "{\"id\":3,\"op\":\"acquire\",\"key\":\"sem\",\"limit\":2,\"mode\":\"shared\"}\n");
	for (int id = 1; id <= 3; id++) {
		r = raw_recv_id(other, id, test_ms(5000));
		ck_assert_str_eq(reply_error(r), "bad_request");
		ck_assert_msg(strstr(reply_message(r), id < 3 ? "semaphore with limit 2" : "exclusive"),
			      "%s", reply_message(r));
		json_decref(r);
	}
	/* The first holder's session ends: the third is granted, not the
	 * fourth. */
	close(fd[0]);
	lease[2] = sem_granted(fd[2], 3);
	ck_assert(!wait_readable(fd[3], test_ms(50)));
	sem_listed(other, 2, (const int64_t[]){ 4 }, 1);
	/* The second releases its lease: the fourth goes. */
	raw_send(fd[1], "{\"id\":6,\"op\":\"release\",\"key\":\"sem\"}\n");
	r = raw_recv_id(fd[1], 6, test_ms(5000));
	ck_assert_int_eq(json_integer_value(json_object_get(r, "lease")), lease[1]);
	json_decref(r);
	lease[3] = sem_granted(fd[3], 4);
	ck_assert(lease[2] != lease[3]);
	for (int i = 1; i < 4; i++)
		close(fd[i]);
	/* Gone with its holders: the key takes the next request's limit. */
	raw_send(other, "{\"id\":7,\"op\":\"acquire\",\"key\":\"sem\",\"limit\":5,\"timeout_ms\":5000}\n");
	r = raw_recv_id(other, 7, test_ms(5000));
	ck_assert_msg(!reply_error(r), "%s", reply_message(r));
	json_decref(r);
	close(other);
}
END_TEST

static Suite *integration_suite(void)
{
	Suite *s = suite_create("integration");
	TCase *tc = tcase_create("haspd");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, mutual_exclusion_counter);
	tcase_add_test(tc, shared_readers_hold_together);
	tcase_add_test(tc, busy_names_the_holder);
	tcase_add_test(tc, timeout_fires_on_time);
	tcase_add_test(tc, sigkill_holder_hands_over_at_once);
	tcase_add_test(tc, disconnect_releases_everything);
	tcase_add_test(tc, pipelined_requests);
	tcase_add_test(tc, cancel_a_waiting_request);
	tcase_add_test(tc, garbage_gets_an_error_and_the_session_goes_on);
	tcase_add_test(tc, oversized_line_ends_only_that_session);
	tcase_add_test(tc, list_shows_holders_and_waiters);
	tcase_add_test(tc, client_that_never_reads_is_ended);
	tcase_add_test(tc, client_that_sends_without_reading_is_throttled);
	tcase_add_test(tc, long_client_name_is_cut_at_a_character);
	tcase_add_test(tc, fences_increase);
	tcase_add_test(tc, fences_start_above_the_stored_ceiling);
	tcase_add_test(tc, stale_socket_replaced_live_one_refused);
	tcase_add_test(tc, sigterm_removes_socket);
	tcase_add_test(tc, descriptor_limit_raised);
	tcase_add_test(tc, daemon_restart_loses_leases_and_fences_go_on);
	tcase_add_test(tc, revoked_before_the_daemon_died_reads_as_revoked);
	tcase_add_test(tc, ten_thousand_idle_connections);
	tcase_add_test(tc, a_try_is_served_after_a_release_written_before_it);
	tcase_add_test(tc, classic_deadlock_refuses_the_second_and_names_both);
	tcase_add_test(tc, three_session_cycle);

	tcase_add_test(tc, semaphore_grants_two_then_in_order);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(integration_suite());
}
