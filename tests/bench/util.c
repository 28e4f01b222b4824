#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double elapsed_us(uint64_t since_ns)
{
	return (double)(now_ns() - since_ns) / 1000.0;
}

int conn_open(struct conn *c, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	c->start = c->end = 0;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (c->fd >= 0)
			close(c->fd);
		return -errno;
	}
	return 0;
}

void conn_send(struct conn *c, const char *text, size_t len)
{
	while (len > 0) {
		ssize_t n = send(c->fd, text, len, MSG_NOSIGNAL);

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			perror("hasp-bench: send");
			exit(1);
		}
		text += n;
		len -= (size_t)n;
	}
}

char *conn_line(struct conn *c)
{
	for (;;) {
		char *nl = memchr(c->buf + c->start, '\n', c->end - c->start);
		ssize_t n;

		if (nl) {
			char *line = c->buf + c->start;

			*nl = '\0';
			c->start = (size_t)(nl - c->buf) + 1;
			return line;
		}
		if (c->start > 0) {
			memmove(c->buf, c->buf + c->start, c->end - c->start);
			c->end -= c->start;
			c->start = 0;
		}
		if (c->end == sizeof(c->buf))
			return NULL;
		n = read(c->fd, c->buf + c->end, sizeof(c->buf) - c->end);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		c->end += (size_t)n;
	}
}

void *shared_page(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("hasp-bench: mmap");
		exit(1);
	}
	return p;
}

void run_in_child(void (*fn)(void *), void *arg, pid_t *pid)
{
	fflush(NULL);
	*pid = fork();
	if (*pid < 0) {
		perror("hasp-bench: fork");
		exit(1);
	}
	if (*pid == 0) {
		fn(arg);
		_exit(0);
	}
}

void wait_all(pid_t *pids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int st;

		if (pids[i] > 0 && waitpid(pids[i], &st, 0) == pids[i] &&
		    (!WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
			fprintf(stderr, "hasp-bench: a worker failed (status %#x)\n", st);
			exit(1);
		}
	}
}
