/* haspd's metrics_listen against a real haspd: GET /metrics over a plain
 * TCP socket answers OpenMetrics text that the strict checker passes,
 * with the content type Prometheus asks for, and the daemon's clock of
 * that moment; other paths 404, other methods 405; a port it cannot bind
 * stops it at start; and without the setting it has no TCP socket at all. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "om_check.h"

#define CONTENT_TYPE "application/openmetrics-text; version=1.0.0; charset=utf-8"

static struct daemon_proc daemon_;
static int port_;
static int family_ = AF_INET;   /* what http() connects over: 127.0.0.1 or [::1] */

/* A socket bound to 127.0.0.1 on the port the kernel chose, in *port. */
static int bound_socket(int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* A port nobody listens on now. */
static int free_port(void)
{
	int port;

	close(bound_socket(&port));
	return port;
}

/* Starts haspd with opts (NULL-terminated, at most 8), and a
 * configuration file of conf unless NULL, and waits for its socket, or for
 * its exit: true once it serves, false if it exited (its stderr, then, in
 * err). */
static bool start_with(struct daemon_proc *d, char *const opts[], const char *conf, char *err,
		       size_t size)
{
	char *argv[12] = { "--log-level", "warning" }, path[sizeof(d->dir) + 16];
	int64_t end = now_ms() + test_ms(DAEMON_START_MS);
	size_t n = 2;
	int p[2], status;

	daemon_dir(d);
	snprintf(path, sizeof(path), "%s/haspd.conf", d->dir);
	if (conf) {
		FILE *f = fopen(path, "we");

		ck_assert_ptr_nonnull(f);
		fputs(conf, f);
		ck_assert_int_eq(fclose(f), 0);
		argv[n++] = "--config";
		argv[n++] = path;
	}
	for (; *opts; opts++)
		argv[n++] = *opts;
	argv[n] = NULL;
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	d->pid = daemon_spawn_with(d->socket, argv, p[1]);
	close(p[1]);
	err[0] = '\0';
	while (now_ms() < end) {
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			ssize_t r = read(p[0], err, size - 1);

			err[r > 0 ? r : 0] = '\0';
			close(p[0]);
			unlink(path);
			daemon_dir_remove(d);
			d->pid = -1;
			return false;
		}
		if (wait_socket(d->socket, 10)) {
			close(p[0]);
			unlink(path); /* read at the start; the directory must empty */
			return true;
		}
	}
	ck_abort_msg("haspd did not start on %s", d->socket);
	return false;
}

/* haspd with "metrics_listen = 127.0.0.1:PORT" in its configuration file,
 * PORT a free one, trying again if someone took the port between
 * free_port() and haspd's bind. */
static void setup_metrics(void)
{
	char conf[128], err[1024];

	for (int tries = 0; tries < 5; tries++) {
		port_ = free_port();
		snprintf(conf, sizeof(conf), "# the scrape\nmetrics_listen = 127.0.0.1:%d\n", port_);
		if (start_with(&daemon_, (char *const[]){ NULL }, conf, err, sizeof(err)))
			return;
	}
	ck_abort_msg("haspd would not listen for metrics: %s", err);
}

static void teardown(void)
{
	daemon_stop(&daemon_);
}

/* A connection to haspd's metrics (127.0.0.1 or [::1], as family_ says). */
static int metrics_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
				    .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	bool v6 = family_ == AF_INET6;
	int fd = socket(family_, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_msg(connect(fd, v6 ? (struct sockaddr *)&sa6 : (struct sockaddr *)&sa,
			      v6 ? sizeof(sa6) : sizeof(sa)) == 0, "connect to port %d: %s",
		      port, strerror(errno));
	return fd;
}

/* request, written as is on fd, the answer (the server closes after it:
 * HTTP/1.0) into out, and fd closed. Returns its length. */
static size_t http_on(int fd, const char *request, char *out, size_t size)
{
	size_t n = 0;
	ssize_t r;

	/* The server may close before it read all of a request it refuses. */
	for (size_t w = 0; w < strlen(request); w += (size_t)r) {
		r = send(fd, request + w, strlen(request) - w, MSG_NOSIGNAL);
		if (r <= 0)
			break;
	}
	while (n < size - 1) {
		ck_assert_msg(wait_readable(fd, 10000), "no answer from haspd's metrics");
		r = read(fd, out + n, size - 1 - n);
		if (r <= 0) /* the end, or a reset after a refusal */
			break;
		n += (size_t)r;
	}
	out[n] = '\0';
	close(fd);
	return n;
}

static size_t http(int port, const char *request, char *out, size_t size)
{
	return http_on(metrics_connect(port), request, out, size);
}

/* The status code of an answer. */
static int http_status(const char *answer)
{
	int code = 0;

	ck_assert_msg(sscanf(answer, "HTTP/1.%*d %d", &code) == 1, "not HTTP: %.200s", answer);
	return code;
}

/* Where its body starts. */
static const char *http_body(const char *answer)
{
	const char *p = strstr(answer, "\r\n\r\n");

	ck_assert_msg(p, "no end of headers: %.300s", answer);
	return p + 4;
}

/* The value of a header (its name case-insensitive) into value. */
static bool http_header(const char *answer, const char *name, char *value, size_t size)
{
	size_t n = strlen(name);

	for (const char *p = strstr(answer, "\r\n"); p && p < http_body(answer); p = strstr(p + 2, "\r\n")) {
		if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
			const char *v = p + 3 + n + strspn(p + 3 + n, " ");

			snprintf(value, size, "%.*s", (int)strcspn(v, "\r"), v);
			return true;
		}
	}
	return false;
}

/* GET /metrics, checked: 200, the content type, a body the strict checker
 * passes; the body (in out). */
static const char *scrape(char *out, size_t size)
{
	char type[128], why[512];
	const char *body;

	http(port_, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n", out, size);
	ck_assert_msg(http_status(out) == 200, "%.300s", out);
	ck_assert_msg(http_header(out, "Content-Type", type, sizeof(type)), "%.300s", out);
	ck_assert_str_eq(type, CONTENT_TYPE);
	body = http_body(out);
	ck_assert_msg(om_check(body, strlen(body), why, sizeof(why)), "%s:\n%.3000s", why, body);
	return body;
}

START_TEST(metrics_served)
{
	hasp_client *c = client_connect(daemon_.socket);
	hasp_lease *l = client_lock(c, "db", HASP_EXCLUSIVE);
	char out[1 << 17];
	const char *body = scrape(out, sizeof(out));

	ck_assert_msg(om_value(body, "hasp_leases") == 1, "%.3000s", body);
	/* c, and perhaps the start's probe, not yet seen to end (valgrind) */
	ck_assert_msg(om_value(body, "hasp_sessions") >= 1, "%.3000s", body);
	ck_assert_msg(om_value(body, "hasp_acquires_total") == 1, "%.3000s", body);
	ck_assert_msg(strstr(body, "# TYPE hasp_sessions_opened counter\n"), "%.3000s", body);
	ck_assert_int_eq(hasp_unlock(c, l), 0);
	body = scrape(out, sizeof(out));
	ck_assert_msg(om_value(body, "hasp_leases") == 0, "%.3000s", body);
	ck_assert_msg(om_value(body, "hasp_releases_total") == 1, "%.3000s", body);
	/* HTTP/1.1 with a query string is the same scrape. */
	http(port_, "GET /metrics?x=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
	     out, sizeof(out));
	ck_assert_int_eq(http_status(out), 200);
	hasp_close(c);
}
END_TEST

START_TEST(metrics_other_paths_and_methods)
{
	char out[1 << 17], allow[64];

	http(port_, "GET / HTTP/1.0\r\n\r\n", out, sizeof(out));
	ck_assert_msg(http_status(out) == 404, "%.300s", out);
	http(port_, "GET /metrics/x HTTP/1.0\r\n\r\n", out, sizeof(out));
	ck_assert_msg(http_status(out) == 404, "%.300s", out);
	http(port_, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n", out, sizeof(out));
	ck_assert_msg(http_status(out) == 405, "%.300s", out);
	ck_assert_msg(http_header(out, "Allow", allow, sizeof(allow)), "%.300s", out);
	ck_assert_str_eq(allow, "GET");
	http(port_, "DELETE /metrics HTTP/1.0\r\n\r\n", out, sizeof(out));
	ck_assert_msg(http_status(out) == 405, "%.300s", out);
	http(port_, "HEAD /metrics HTTP/1.0\r\n\r\n", out, sizeof(out));
	ck_assert_msg(http_status(out) == 405, "%.300s", out);
	/* Headers past the limit are refused, and the daemon goes on. */
	{
		static char big[16384 + 64];

		snprintf(big, sizeof(big), "GET /metrics HTTP/1.0\r\nX: %0*d\r\n\r\n", 16000, 0);
		http(port_, big, out, sizeof(out));
		ck_assert_msg(out[0] == '\0' || http_status(out) >= 400, "%.300s", out);
	}
	scrape(out, sizeof(out));
}
END_TEST

/* Each request runs in the daemon's bracket: the clock is read for it, so
 * an idle daemon's uptime still moves between two scrapes. */
START_TEST(metrics_read_the_clock)
{
	char out[1 << 17];
	double before = om_value(scrape(out, sizeof(out)), "hasp_uptime_seconds"), after;

	usleep(300 * 1000); /* the time to see pass, not a wait for an event */
	after = om_value(scrape(out, sizeof(out)), "hasp_uptime_seconds");
	ck_assert_msg(after >= before + 0.3, "uptime %g then %g", before, after);
}
END_TEST

/* The inodes of the TCP sockets (IPv4 and IPv6) in /proc/net/tcp*: how
 * many of them are among process pid's descriptors. */
static int tcp_sockets_of(pid_t pid)
{
	static const char *const tables[] = { "/proc/net/tcp", "/proc/net/tcp6" };
	char dir[64], link[384], target[64], line[512];
	unsigned long inodes[1024];
	size_t n = 0;
	int found = 0;
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) && n < sizeof(inodes) / sizeof(inodes[0])) {
		ssize_t r;

		snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
		r = readlink(link, target, sizeof(target) - 1);
		if (r > 0) {
			target[r] = '\0';
			if (sscanf(target, "socket:[%lu]", &inodes[n]) == 1)
				n++;
		}
	}
	closedir(d);
	for (size_t t = 0; t < 2; t++) {
		FILE *f = fopen(tables[t], "re");

		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			unsigned long inode;

			if (sscanf(line, "%*s %*s %*s %*s %*s %*s %*s %*s %*s %lu", &inode) != 1)
				continue;
			for (size_t i = 0; i < n; i++)
				found += inodes[i] == inode;
		}
		fclose(f);
	}
	return found;
}

START_TEST(metrics_listener_is_one_tcp_socket)
{
	ck_assert_int_eq(tcp_sockets_of(daemon_.pid), 1);
}
END_TEST

/* Until haspd has n TCP sockets (its listener and its connections). */
static void wait_tcp_sockets(int n)
{
	int64_t end = now_ms() + test_ms(10000);

	while (tcp_sockets_of(daemon_.pid) != n) {
		ck_assert_msg(now_ms() < end, "haspd has %d TCP sockets, not %d",
			      tcp_sockets_of(daemon_.pid), n);
		usleep(2000); /* accepting has no event the test can see */
	}
}

/* 16 connections at once: a 17th waits in the listen queue, unserved,
 * until one of them ends; the Unix socket is served all along. */
START_TEST(metrics_connections_bounded)
{
	int idle[16], extra;
	char out[1 << 17];
	hasp_client *c;

	for (size_t i = 0; i < 16; i++)
		idle[i] = metrics_connect(port_);
	wait_tcp_sockets(1 + 16);
	extra = metrics_connect(port_);
	const char *get = "GET /metrics HTTP/1.0\r\n\r\n";

	ck_assert_int_eq(send(extra, get, strlen(get), MSG_NOSIGNAL), (ssize_t)strlen(get));
	ck_assert_msg(!wait_readable(extra, 300), "a 17th connection was served");
	ck_assert_int_eq(tcp_sockets_of(daemon_.pid), 1 + 16);
	c = client_connect(daemon_.socket);
	ck_assert_int_eq(hasp_unlock(c, client_lock(c, "still", HASP_EXCLUSIVE)), 0);
	hasp_close(c);
	close(idle[0]);
	http_on(extra, "", out, sizeof(out));
	ck_assert_msg(http_status(out) == 200, "%.300s", out);
	for (size_t i = 1; i < 16; i++)
		close(idle[i]);
	wait_tcp_sockets(1);
	scrape(out, sizeof(out));
}
END_TEST

START_TEST(no_tcp_socket_by_default)
{
	struct daemon_proc d;

	daemon_start(&d);
	ck_assert_int_eq(tcp_sockets_of(d.pid), 0);
	daemon_stop(&d);
}
END_TEST

START_TEST(bind_failure_stops_haspd)
{
	char addr[64], err[2048], want[128];
	struct daemon_proc d;
	int port, fd = bound_socket(&port);

	ck_assert_int_eq(listen(fd, 1), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	ck_assert_msg(!start_with(&d, (char *const[]){ "--metrics-listen", addr, NULL }, NULL, err,
				  sizeof(err)), "haspd started on a port in use");
	snprintf(want, sizeof(want), "metrics_listen: cannot listen on %s: Address already in use",
		 addr);
	ck_assert_msg(strstr(err, want), "%s", err);
	ck_assert_msg(!start_with(&d, (char *const[]){ "--metrics-listen", "localhost:9466", NULL },
				  NULL, err, sizeof(err)), "haspd took a host name");
	ck_assert_msg(strstr(err, "metrics_listen: 'localhost:9466' is not"), "%s", err);
	close(fd);
}
END_TEST

/* "[::1]:PORT", where the machine has IPv6 on loopback. */
START_TEST(metrics_over_ipv6)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char addr[64], err[1024], out[1 << 17];

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "no IPv6 on loopback: metrics_over_ipv6 skipped\n");
		if (fd >= 0)
			close(fd);
		return;
	}
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	port_ = ntohs(sa.sin6_port);
	snprintf(addr, sizeof(addr), "[::1]:%d", port_);
	ck_assert_msg(start_with(&daemon_, (char *const[]){ "--metrics-listen", addr, NULL }, NULL,
				 err, sizeof(err)), "%s", err);
	family_ = AF_INET6;
	ck_assert_msg(om_value(scrape(out, sizeof(out)), "hasp_leases") == 0, "%.2000s", out);
	family_ = AF_INET;
	daemon_stop(&daemon_);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("metrics");
	TCase *served = tcase_create("served"), *off = tcase_create("off");

	tcase_add_checked_fixture(served, setup_metrics, teardown);
	tcase_set_timeout(served, 60);
	tcase_add_test(served, metrics_served);
	tcase_add_test(served, metrics_other_paths_and_methods);
	tcase_add_test(served, metrics_read_the_clock);
	tcase_add_test(served, metrics_listener_is_one_tcp_socket);
	tcase_add_test(served, metrics_connections_bounded);
	suite_add_tcase(s, served);
	tcase_set_timeout(off, 60);
	tcase_add_test(off, no_tcp_socket_by_default);
	tcase_add_test(off, bind_failure_stops_haspd);
	tcase_add_test(off, metrics_over_ipv6);
	suite_add_tcase(s, off);
	return run_suite(s);
}
