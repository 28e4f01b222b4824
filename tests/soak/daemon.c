#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hasp.h"
#include "soak.h"

#define DAEMON_START_MS 10000
#define DAEMON_EXIT_MS 10000

static bool daemon_connectable(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

bool daemon_wait_pidfd(int pidfd, int timeout_ms)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	int64_t end = util_now_us() + (int64_t)timeout_ms * 1000;

	for (;;) {
		int left = (int)((end - util_now_us()) / 1000);
		int r = poll(&p, 1, left < 0 ? 0 : left);

		if (r > 0)
			return true;
		if (r == 0 || (r < 0 && errno != EINTR))
			return false;
	}
}

int daemon_start(struct daemon *d)
{
	int64_t end = util_now_us() + DAEMON_START_MS * 1000LL;

	fflush(NULL);
	d->pid = fork();
	if (d->pid < 0)
		return -errno;
	if (d->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* no daemon outlives a killed soak */
		execl(d->haspd, "haspd", "--socket", d->socket, "--log-level", "warning", (char *)NULL);
		perror(d->haspd);
		_exit(127);
	}
	d->pidfd = pidfd_open(d->pid, 0);
	if (d->pidfd < 0) {
		int r = -errno;

		kill(d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
		d->pid = 0;
		return r;
	}
	/* Polling the socket: the daemon has no other signal of readiness here.
	 * A daemon that exits instead is noticed at once through its pidfd. */
	while (!daemon_connectable(d->socket)) {
		if (daemon_wait_pidfd(d->pidfd, 2) || util_now_us() > end) {
			daemon_kill(d);
			return -ETIMEDOUT;
		}
	}
	return 0;
}

static int daemon_reap(struct daemon *d, int sig)
{
	int status = 0;

	if (d->pid <= 0)
		return 0;
	kill(d->pid, sig);
	if (!daemon_wait_pidfd(d->pidfd, DAEMON_EXIT_MS)) {
		kill(d->pid, SIGKILL);
		daemon_wait_pidfd(d->pidfd, DAEMON_EXIT_MS);
	}
	waitpid(d->pid, &status, WNOHANG);
	close(d->pidfd);
	d->pid = 0;
	d->pidfd = -1;
	return status;
}

int daemon_kill(struct daemon *d)
{
	return daemon_reap(d, SIGKILL);
}

int daemon_stop(struct daemon *d)
{
	return daemon_reap(d, SIGTERM);
}

int daemon_fds(const struct daemon *d)
{
	char path[64];
	struct dirent *de;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)d->pid);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((de = readdir(dir)))
		n += de->d_name[0] != '.';
	closedir(dir);
	return n;
}

int daemon_gauges(struct hasp_client *c, struct gauges *ret)
{
	char *text = NULL;
	json_t *root, *g;
	int r = hasp_stats_json(c, &text);

	if (r < 0)
		return r;
	root = json_loads(text, 0, NULL);
	free(text);
	g = json_object_get(root, "gauges");
	if (!json_is_object(g)) {
		json_decref(root);
		return -EPROTO;
	}
	ret->sessions = json_integer_value(json_object_get(g, "sessions"));
	ret->resources = json_integer_value(json_object_get(g, "resources"));
	ret->leases = json_integer_value(json_object_get(g, "leases"));
	ret->waiters = json_integer_value(json_object_get(g, "waiters"));
	ret->heap_bytes = json_integer_value(json_object_get(g, "heap_bytes"));
	json_decref(root);
	return 0;
}
