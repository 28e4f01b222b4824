/* The physical limits hasp is measured against, in the same run. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"

/* As long as hasp's acquire request and grant reply. */
static const char request[] = "{\"id\":1,\"op\":\"acquire\",\"key\":\"bench\",\"timeout_ms\":0}\n";
static const char grant[] = "{\"id\":1,\"ok\":true,\"lease\":1,\"fence\":1795000000000000,\"mode\":\"exclusive\"}\n";

static int iterations(const struct bench_opts *o, int full)
{
	return o->quick ? full / 10 : full;
}

double base_roundtrip(const struct bench_opts *o)
{
	int sv[2], n = iterations(o, 50000);
	struct samples s = { 0 };
	char buf[256];
	struct result *r;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		exit(1);
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		for (int i = 0; i < n; i++)
			if (read(sv[1], buf, sizeof(request) - 1) <= 0 ||
			    write(sv[1], grant, sizeof(grant) - 1) < 0)
				_exit(1);
		_exit(0);
	}
	close(sv[1]);
	for (int i = 0; i < n; i++) {
		uint64_t t = now_ns();

		if (write(sv[0], request, sizeof(request) - 1) < 0 ||
		    read(sv[0], buf, sizeof(grant) - 1) <= 0)
			exit(1);
		samples_add(&s, elapsed_us(t));
	}
	close(sv[0]);
	wait_all(&pid, 1);
	r = result_add("(a) bare Unix socket round trip");
	r->median_us = samples_pct(&s, 50);
	r->p99_us = samples_pct(&s, 99);
	r->ops = 1e6 / r->median_us;
	snprintf(r->note, sizeof(r->note), "%zu-byte request, %zu-byte reply", sizeof(request) - 1,
		 sizeof(grant) - 1);
	samples_free(&s);
	return r->median_us;
}

static int open_scratch(const struct bench_opts *o, const char *name)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", o->dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		perror(path);
		exit(1);
	}
	return fd;
}

double base_flock(const struct bench_opts *o)
{
	int fd = open_scratch(o, "flock"), n = iterations(o, 100000);
	struct samples s = { 0 };
	struct result *r;

	for (int i = 0; i < n; i++) {
		uint64_t t = now_ns();

		flock(fd, LOCK_EX);
		flock(fd, LOCK_UN);
		samples_add(&s, elapsed_us(t));
	}
	close(fd);
	r = result_add("(b) flock(2) LOCK_EX + LOCK_UN");
	r->median_us = samples_pct(&s, 50);
	r->p99_us = samples_pct(&s, 99);
	r->ops = 1e6 / r->median_us;
	snprintf(r->note, sizeof(r->note), "one descriptor, no contention");
	samples_free(&s);
	return r->median_us;
}

/* B blocks in flock(); A unlocks; B's return time minus A's unlock time. */
double base_flock_handoff(const struct bench_opts *o)
{
	int n = iterations(o, 1000), go[2], ready[2], done[2];
	int fd = open_scratch(o, "handoff");
	volatile uint64_t *t = shared_page();
	struct samples s = { 0 };
	struct result *r;
	pid_t pid;
	char b;

	if (pipe(go) < 0 || pipe(ready) < 0 || pipe(done) < 0)
		exit(1);
	pid = fork();
	if (pid == 0) {
		int bfd = open_scratch(o, "handoff"); /* a description of its own */

		for (int i = 0; i < n; i++) {
			if (read(go[0], &b, 1) != 1 || write(ready[1], "r", 1) != 1)
				_exit(1);
			flock(bfd, LOCK_EX);
			t[1] = now_ns();
			flock(bfd, LOCK_UN);
			if (write(done[1], "d", 1) != 1)
				_exit(1);
		}
		_exit(0);
	}
	for (int i = 0; i < n; i++) {
		flock(fd, LOCK_EX);
		if (write(go[1], "g", 1) != 1 || read(ready[0], &b, 1) != 1)
			exit(1);
		usleep(1000); /* B reaches flock() and sleeps in it */
		t[0] = now_ns();
		flock(fd, LOCK_UN);
		if (read(done[0], &b, 1) != 1)
			exit(1);
		samples_add(&s, (double)(t[1] - t[0]) / 1000.0);
	}
	close(fd);
	wait_all(&pid, 1);
	r = result_add("(c) kernel flock hand-off");
	r->median_us = samples_pct(&s, 50);
	r->p99_us = samples_pct(&s, 99);
	snprintf(r->note, sizeof(r->note), "unlock in A to return in B");
	samples_free(&s);
	return r->median_us;
}

/* ---- (d) a bare libevent server answering hasp's lines ---- */

static void echo_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev), *out = bufferevent_get_output(bev);
	static const char ok[] = "{\"id\":2,\"ok\":true}\n";
	size_t len;
	char *line;

	(void)arg;
	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF))) {
		if (strstr(line, "acquire"))
			evbuffer_add(out, grant, sizeof(grant) - 1);
		else
			evbuffer_add(out, ok, sizeof(ok) - 1);
		free(line);
	}
}

static void echo_event(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	(void)arg;
	bufferevent_free(bev);
}

static void echo_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
			int len, void *arg)
{
	struct bufferevent *bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
							 BEV_OPT_CLOSE_ON_FREE);

	(void)sa;
	(void)len;
	(void)arg;
	bufferevent_setcb(bev, echo_read, NULL, echo_event, NULL);
	bufferevent_enable(bev, EV_READ);
}

pid_t base_echo_start(const struct bench_opts *o, char *path, size_t size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;
	pid_t pid;

	snprintf(path, size, "%s/echo.sock", o->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1024) < 0) {
		perror("hasp-bench: echo server");
		exit(1);
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		struct event_base *base = event_base_new();

		evutil_make_socket_nonblocking(fd);
		evconnlistener_new(base, echo_accept, NULL, LEV_OPT_CLOSE_ON_FREE, -1, fd);
		event_base_dispatch(base);
		_exit(0);
	}
	close(fd);
	return pid;
}
