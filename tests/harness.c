#include "harness.h"
#include "sendfds.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t now_ms(void)
{
	return now_us() / 1000;
}

int test_ms(int ms)
{
	static int factor;

	if (!factor) {
		const char *f = getenv("HASP_TEST_TIME_FACTOR");

		factor = f && atoi(f) > 0 ? atoi(f) : 1;
	}
	return ms > INT_MAX / factor ? INT_MAX : ms * factor;
}

/* poll(2) for input, until end (now_ms() time). */
static bool readable_until(int fd, int64_t end)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int64_t left = end - now_ms();

	return left >= 0 && poll(&p, 1, (int)left) == 1;
}

static int try_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

bool wait_socket(const char *path, int timeout_ms)
{
	int64_t end = now_ms() + test_ms(timeout_ms);

	do {
		int fd = try_connect(path);

		if (fd >= 0) {
			close(fd);
			return true;
		}
		usleep(2000); /* polling the socket: the daemon has no other signal */
	} while (now_ms() < end);
	return false;
}

const char *haspd_path(void)
{
	return getenv("HASPD") ? getenv("HASPD") : "build/daemon/haspd";
}

unsigned spawn_nofile;

/* prlimit(1) runs argv: a test under valgrind may not set the limit itself
 * (valgrind keeps the descriptor limit of its guest). */
static void exec_with_nofile(char *const argv[])
{
	char *with[64], limit[64];
	size_t n = 0;

	snprintf(limit, sizeof(limit), "--nofile=%u:%u", spawn_nofile, spawn_nofile);
	with[n++] = "/usr/bin/prlimit";
	with[n++] = limit;
	with[n++] = "--";
	while (*argv && n < sizeof(with) / sizeof(with[0]) - 1)
		with[n++] = *argv++;
	with[n] = NULL;
	execv(with[0], with);
	_exit(127);
}

pid_t spawn_argv(char *const argv[], int stderr_fd)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (stderr_fd >= 0)
			dup2(stderr_fd, 2);
		if (spawn_nofile)
			exec_with_nofile(argv);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

size_t wrapper_argv(char **argv, size_t max, char *buf, size_t size)
{
	const char *w = getenv("HASP_TEST_WRAPPER");
	size_t n = 0;

	if (!w || !*w)
		return 0;
	ck_assert_msg(strlen(w) < size, "HASP_TEST_WRAPPER is too long");
	strcpy(buf, w);
	for (char *tok = strtok(buf, " "); tok && n < max; tok = strtok(NULL, " "))
		argv[n++] = tok;
	return n;
}

pid_t daemon_spawn_with(const char *socket, char *const opts[], int stderr_fd)
{
	char *argv[48], words[1024];
	size_t n = wrapper_argv(argv, 24, words, sizeof(words));

	argv[n++] = (char *)haspd_path();
	argv[n++] = "--socket";
	argv[n++] = (char *)socket;
	for (; *opts; opts++) {
		ck_assert_msg(n < sizeof(argv) / sizeof(argv[0]) - 1, "too many daemon options");
		argv[n++] = *opts;
	}
	argv[n] = NULL;
	return spawn_argv(argv, stderr_fd);
}

pid_t daemon_spawn(const char *socket, int stderr_fd)
{
	char *const opts[] = { "--log-level", "warning", NULL };

	return daemon_spawn_with(socket, opts, stderr_fd);
}

void daemon_dir(struct daemon_proc *d)
{
	snprintf(d->dir, sizeof(d->dir), "/tmp/hasp-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(d->dir));
	snprintf(d->socket, sizeof(d->socket), "%s/haspd.sock", d->dir);
	snprintf(d->fence, sizeof(d->fence), "%s/haspd.fence", d->dir);
	snprintf(d->journal, sizeof(d->journal), "%s/haspd.checkouts", d->dir);
}

void daemon_dir_remove(const struct daemon_proc *d)
{
	char aside[sizeof(d->journal) + 16];

	unlink(d->journal);
	snprintf(aside, sizeof(aside), "%s.unreadable", d->journal);
	unlink(aside);
	snprintf(aside, sizeof(aside), "%s.new", d->journal);
	unlink(aside);
	unlink(d->fence);
	unlink(d->socket);
	rmdir(d->dir);
}

void daemon_start(struct daemon_proc *d)
{
	daemon_dir(d);
	d->pid = daemon_spawn(d->socket, -1);
	ck_assert_msg(wait_socket(d->socket, DAEMON_START_MS), "haspd did not start on %s",
		      d->socket);
}

void daemon_stop(struct daemon_proc *d)
{
	int status;

	kill(d->pid, SIGTERM);
	status = wait_child(d->pid, DAEMON_START_MS);
	daemon_dir_remove(d);
	/* A sanitizer's or valgrind's report, a leak at exit, or a crash
	 * while stopping all show here. */
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "haspd did not stop cleanly (status %#x): see its stderr", status);
}

int wait_child(pid_t pid, int timeout_ms)
{
	int64_t end = now_ms() + test_ms(timeout_ms);
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		if (r < 0)
			return -1;
		if (now_ms() >= end) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			ck_abort_msg("child %d did not exit within %d ms", (int)pid, test_ms(timeout_ms));
		}
		usleep(1000); /* no portable event for a child's exit with a deadline */
	}
}

int raw_connect(const char *path)
{
	int fd = try_connect(path);

	ck_assert_msg(fd >= 0, "cannot connect to %s: %s", path, strerror(errno));
	return fd;
}

void raw_send(int fd, const char *text)
{
	size_t len = strlen(text);

	while (len > 0) {
		ssize_t n = send(fd, text, len, MSG_NOSIGNAL);

		ck_assert_msg(n > 0, "send: %s", strerror(errno));
		text += n;
		len -= (size_t)n;
	}
}

void raw_send_fd(int fd, const char *text, int passfd)
{
	size_t len = strlen(text);

	ck_assert_int_eq(sendfds(fd, text, len, &passfd, 1), (ssize_t)len);
}

int raw_connect_served(const char *path)
{
	static const char ping[] = "{\"id\":1,\"op\":\"ping\"}\n";
	int fd = raw_connect(path);
	json_t *r;

	/* A refused one may be closed already: its refusal is still there to read. */
	(void)send(fd, ping, strlen(ping), MSG_NOSIGNAL);
	r = raw_recv(fd, 5000);
	if (r && !reply_error(r)) {
		json_decref(r);
		return fd;
	}
	json_decref(r);
	close(fd);
	return -1;
}

int count_fds(pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The next line as JSON, or NULL at EOF or at end (now_ms() time). */
static json_t *recv_until(int fd, int64_t end)
{
	char line[1 << 16];
	size_t len = 0;

	/* One byte at a time: slow, but it never reads past the line. */
	while (len < sizeof(line) - 1) {
		if (!readable_until(fd, end))
			return NULL;
		if (read(fd, line + len, 1) != 1)
			return NULL;
		if (line[len] == '\n')
			return json_loadb(line, len, 0, NULL);
		len++;
	}
	return NULL;
}

json_t *raw_recv(int fd, int timeout_ms)
{
	return recv_until(fd, now_ms() + test_ms(timeout_ms));
}

json_t *raw_recv_id(int fd, int64_t id, int timeout_ms)
{
	int64_t end = now_ms() + test_ms(timeout_ms);

	for (;;) {
		json_t *r = recv_until(fd, end);

		if (!r || json_integer_value(json_object_get(r, "id")) == id)
			return r;
		json_decref(r);
	}
}

json_t *raw_reply(int fd, int64_t id)
{
	json_t *r = raw_recv_id(fd, id, 5000);

	ck_assert_msg(r, "no reply to request %lld", (long long)id);
	return r;
}

void raw_sendf(int fd, const char *fmt, ...)
{
	char line[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	ck_assert(n >= 0 && (size_t)n < sizeof(line));
	raw_send(fd, line);
}

const char *reply_error(json_t *reply)
{
	if (json_is_true(json_object_get(reply, "ok")))
		return NULL;
	return json_string_value(json_object_get(json_object_get(reply, "error"), "code"));
}

const char *reply_message(json_t *reply)
{
	const char *m = json_string_value(json_object_get(json_object_get(reply, "error"), "message"));

	return m ? m : "";
}

void signal_byte(int fd)
{
	ck_assert_int_eq(write(fd, "x", 1), 1);
}

bool wait_readable(int fd, int timeout_ms)
{
	return readable_until(fd, now_ms() + test_ms(timeout_ms));
}

bool wait_output(int fd, const char *needle, int timeout_ms, char *buf, size_t size)
{
	int64_t end = now_ms() + test_ms(timeout_ms);
	size_t len = strlen(buf);

	while (!strstr(buf, needle)) {
		ssize_t n;

		if (len + 1 >= size || !readable_until(fd, end))
			return false;
		n = read(fd, buf + len, size - len - 1);
		if (n <= 0)
			return false;
		len += (size_t)n;
		buf[len] = '\0';
	}
	return true;
}

bool wait_byte(int fd, int timeout_ms)
{
	char c;

	return wait_readable(fd, timeout_ms) && read(fd, &c, 1) == 1;
}

hasp_client *client_connect(const char *socket)
{
	hasp_client *c = NULL;

	ck_assert_int_eq(hasp_connect(socket, &c), 0);
	return c;
}

hasp_lease *client_lock(hasp_client *c, const char *key, enum hasp_mode mode)
{
	struct hasp_lock_options o = HASP_LOCK_OPTIONS_INIT;
	hasp_lease *l = NULL;

	o.mode = mode;
	ck_assert_msg(hasp_lock(c, key, &o, &l) == 0, "lock %s: %s", key, hasp_client_errmsg(c));
	return l;
}

/* The stats member name of group ("gauges" or "counters"). */
static json_int_t stats_value(hasp_client *c, const char *group, const char *name)
{
	char *text = NULL;
	json_t *st;
	json_int_t v;

	ck_assert_int_eq(hasp_stats_json(c, &text), 0);
	st = json_loads(text, 0, NULL);
	v = json_integer_value(json_object_get(json_object_get(st, group), name));
	json_decref(st);
	free(text);
	return v;
}

json_int_t stats_gauge(hasp_client *c, const char *name)
{
	return stats_value(c, "gauges", name);
}

json_int_t stats_counter(hasp_client *c, const char *name)
{
	return stats_value(c, "counters", name);
}

void wait_gauge(hasp_client *c, const char *name, json_int_t want, int timeout_ms)
{
	int64_t end = now_ms() + test_ms(timeout_ms);
	json_int_t v;

	while ((v = stats_gauge(c, name)) != want) {
		ck_assert_msg(now_ms() < end, "gauge %s is %lld, not %lld, after %d ms", name,
			      (long long)v, (long long)want, test_ms(timeout_ms));
		usleep(1000); /* polling: the daemon has no event for it */
	}
}
