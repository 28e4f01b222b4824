/* The servers the benchmark starts: haspd on a socket, etcd on loopback
 * ports, each waited for by a bounded poll (they give no other signal). */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "etcd.h"

#define MAX_ARGS 32

/* Whether pid has exited (reaped here). */
static bool gone(pid_t pid)
{
	return waitpid(pid, NULL, WNOHANG) == pid;
}

static pid_t spawn(char *const argv[], const char *log)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		/* A benchmark that exits on a failure leaves no server behind. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (log && !freopen(log, "w", stderr))
			_exit(126);
		if (log)
			dup2(STDERR_FILENO, STDOUT_FILENO);
		execv(argv[0], argv);
		perror(argv[0]);
		_exit(127);
	}
	return pid;
}

static void stop(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static bool connectable(const char *path)
{
	struct conn c;

	if (conn_open(&c, path) < 0)
		return false;
	close(c.fd);
	return true;
}

pid_t spawn_haspd(const char *haspd, const char *socket, const char *const *extra)
{
	char *argv[MAX_ARGS] = { (char *)haspd, "--socket", (char *)socket, "--log-level", "warning" };
	size_t n = 5;
	pid_t pid;

	for (; extra && *extra && n < MAX_ARGS - 1; extra++)
		argv[n++] = (char *)*extra;
	pid = spawn(argv, NULL);
	for (int i = 0; i < 5000 && !connectable(socket); i++) {
		if (gone(pid))
			return -1;
		usleep(1000);
	}
	if (!connectable(socket)) {
		stop(pid);
		return -1;
	}
	return pid;
}

int spawn_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -errno;

	if (fd < 0)
		return port;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		port = -errno;
	else
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

bool spawn_find(const char *name, char *path, size_t size)
{
	const char *dirs = getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin";

	while (*dirs) {
		size_t len = strcspn(dirs, ":");

		snprintf(path, size, "%.*s/%s", (int)len, dirs, name);
		if (len > 0 && access(path, X_OK) == 0)
			return true;
		dirs += len + (dirs[len] == ':');
	}
	return false;
}

/* Whether a TCP connection to 127.0.0.1:port is accepted. */
static bool listening(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				  .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

/* Until etcd listens, 60 s at most, then whether it serves its gateway (a
 * lease granted and revoked). */
static bool etcd_ready(pid_t pid, int port, const char *endpoint)
{
	struct etcd *e;

	for (int i = 0; i < 6000 && !listening(port); i++) {
		if (gone(pid))
			return false;
		usleep(10000);
	}
	e = etcd_connect(endpoint);
	if (e)
		etcd_disconnect(e);
	return e != NULL;
}

pid_t spawn_etcd(const char *etcd, const char *dir, char *endpoint, size_t size)
{
	char data[300], log[300], client[64], peer[64], cluster[80];
	int cport = spawn_free_port(), pport = spawn_free_port();
	pid_t pid;

	if (cport < 0 || pport < 0 || cport == pport)
		return -1;
	snprintf(data, sizeof(data), "%s/etcd", dir);
	snprintf(log, sizeof(log), "%s/etcd.log", dir);
	snprintf(client, sizeof(client), "http://127.0.0.1:%d", cport);
	snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", pport);
	snprintf(cluster, sizeof(cluster), "bench=%s", peer);
	pid = spawn((char *[]){ (char *)etcd, "--name", "bench", "--data-dir", data,
				"--listen-client-urls", client, "--advertise-client-urls", client,
				"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
				"--initial-cluster", cluster, "--logger", "zap",
				"--log-level", "error", NULL }, log);
	snprintf(endpoint, size, "127.0.0.1:%d", cport);
	if (!etcd_ready(pid, cport, endpoint)) {
		stop(pid);
		return -1;
	}
	return pid;
}

void spawn_stop(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
}
