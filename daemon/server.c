#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "loop.h"

/* Connections accepted per wake-up, so that a storm of connects cannot
 * starve the sessions. */
#define ACCEPT_BATCH 64
/* How long to pause accepting when out of descriptors. */
#define EMFILE_BACKOFF_MS 100

struct server {
	struct loop *loop;
	const struct config *cfg;
	server_accepted_fn accepted;
	void *arg;
	int fd;
	struct loop_event *ev;
	struct loop_event *backoff;
	int spare;              /* a descriptor kept to refuse one client with */
	bool paused;
	char *path;
	dev_t dev;
	ino_t ino;
};

static int make_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path)) {
		log_err("socket path too long (max %zu bytes): %s", sizeof(sa->sun_path) - 1, path);
		return -1;
	}
	strcpy(sa->sun_path, path);
	return 0;
}

/* A missing socket directory's mode: root's system socket must be reachable
 * by every user (the socket's own mode decides who may connect); a per-user
 * daemon's directory is private. */
static mode_t dir_mode(const struct config *cfg)
{
	if (cfg->socket_dir_mode >= 0)
		return (mode_t)cfg->socket_dir_mode;
	return geteuid() == 0 ? 0755 : 0700;
}

/* "uid 4242" or "uid 1001 (alice)", for messages. */
static const char *uid_name(uid_t uid, char *buf, size_t n)
{
	struct passwd *pw = getpwuid(uid);

	if (pw)
		snprintf(buf, n, "uid %u (%s)", (unsigned)uid, pw->pw_name);
	else
		snprintf(buf, n, "uid %u", (unsigned)uid);
	return buf;
}

/* The checks a socket directory must pass, on its lstat() or fstat() st:
 * a directory, not a symbolic link, owned by haspd's euid or root, writable
 * by nobody else. what names it in messages ("the socket directory").
 * Returns 0, or -1 with the reason logged. */
static int check_dir_stat(const char *what, const char *dir, const struct stat *st)
{
	char owner[96], self[96];

	if (S_ISLNK(st->st_mode))
		log_err("%s %s is a symbolic link; refusing to listen there "
			"(whoever controls the link controls the socket)", what, dir);
	else if (!S_ISDIR(st->st_mode))
		log_err("%s is not a directory", dir);
	else if (st->st_uid != geteuid() && st->st_uid != 0)
		log_err("%s %s is owned by %s, not by %s%s; refusing to listen "
			"there (its owner could replace the socket)", what, dir,
			uid_name(st->st_uid, owner, sizeof(owner)),
			geteuid() == 0 ? "root" : uid_name(geteuid(), self, sizeof(self)),
			geteuid() == 0 ? "" : " (haspd's) or root");
	else if (st->st_mode & (S_IWGRP | S_IWOTH))
		log_err("%s %s is writable by its group or others (mode %04o); "
			"refusing to listen there (they could replace the socket)", what, dir,
			(unsigned)(st->st_mode & 07777));
	else
		return 0;
	return -1;
}

/* Makes dir if it is missing: 0 if it was there, 1 if made, with mode
 * exactly (mkdir(2) cuts the mode by the umask) and checked as a socket
 * directory through the descriptor that set the mode (what names it in
 * messages); -1 with the reason logged. */
static int make_dir(const char *what, const char *dir, mode_t mode)
{
	struct stat st;
	int fd;

	if (mkdir(dir, 0700) < 0) {
		if (errno == EEXIST)
			return 0;
		log_err("cannot create %s %s: %s", what, dir, strerror(errno));
		return -1;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		log_err("cannot open %s %s that haspd created: %s", what, dir, strerror(errno));
	} else if (st.st_uid != geteuid()) {
		log_err("%s %s was replaced after haspd created it; refusing to listen there",
			what, dir);
	} else if (fchmod(fd, mode) < 0 || fstat(fd, &st) < 0) {
		log_err("cannot set the mode of %s %s: %s", what, dir, strerror(errno));
	} else if (check_dir_stat(what, dir, &st) == 0) {
		close(fd);
		log_info("created %s %s, mode %04o", what, dir, (unsigned)mode);
		return 1;
	}
	if (fd >= 0)
		close(fd);
	return -1;
}

/* mkdir -p for the socket directory dir (a copy haspd may write into):
 * every missing directory on the way to it is made with mode 0755 (others
 * must reach the socket to use it; nobody else may write), dir itself with
 * mode, each one checked as the socket directory is. Directories that
 * exist on the way (/tmp, /run) are used as they are, as mkdir -p does; dir
 * itself is checked by the caller, made or not. Returns 0, or -1 with the
 * reason logged. */
static int make_dirs(char *dir, mode_t mode)
{
	for (char *p = dir + 1;; p++) {
		char c = *p;
		int r;

		if (c == '/') {
			*p = '\0';
			r = make_dir("the directory", dir, 0755);
			*p = '/';
		} else if (!c) { /* dir may be dirname(3)'s constant ".": not written */
			return make_dir("the socket directory", dir, mode) < 0 ? -1 : 0;
		} else {
			continue;
		}
		if (r < 0)
			return -1;
		while (p[1] == '/') /* a//b */
			p++;
	}
}

int server_check_dir(const struct config *cfg, const char *path)
{
	char *copy = strdup(path), *dir;
	struct stat st;
	int r = -1;

	if (!copy) {
		log_err("out of memory");
		return -1;
	}
	dir = dirname(copy);
	if (make_dirs(dir, dir_mode(cfg)) < 0)
		; /* said */
	else if (lstat(dir, &st) < 0)
		log_err("cannot stat the socket directory %s: %s", dir, strerror(errno));
	else
		r = check_dir_stat("the socket directory", dir, &st);
	free(copy);
	return r;
}

int server_probe(const char *path)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : (log_err("cannot stat %s: %s", path, strerror(errno)), -1);
	if (!S_ISSOCK(st.st_mode)) {
		log_err("%s exists and is not a socket; refusing to replace it", path);
		return -1;
	}
	if (make_addr(path, &sa) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_err("socket: %s", strerror(errno));
		return -1;
	}
	r = connect(fd, (const struct sockaddr *)&sa, sizeof(sa));
	if (r == 0) {
		struct ucred cred = { 0 };
		socklen_t cl = sizeof(cred);

		getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl);
		close(fd);
		log_err("another haspd (pid %d) is already serving %s", (int)cred.pid, path);
		return -1;
	}
	close(fd);
	if (errno != ECONNREFUSED) {
		log_err("cannot probe %s: %s", path, strerror(errno));
		return -1;
	}
	return 1;
}

/* A socket file at path: live daemon (refuse), stale (remove), or none. */
static int clear_stale(const char *path)
{
	int r = server_probe(path);

	if (r <= 0)
		return r;
	log_info("removing stale socket %s", path);
	if (unlink(path) < 0 && errno != ENOENT) {
		log_err("cannot remove stale socket %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* The socket file's mode: socket_mode, else the owner alone for a per-user
 * daemon, everyone for root's (the directory decides who may reach it). */
static mode_t socket_mode(const struct config *cfg)
{
	if (cfg->socket_mode >= 0)
		return (mode_t)cfg->socket_mode;
	return geteuid() == 0 ? 0666 : 0600;
}

/* The final group, then the final mode, set before listen(). Until the
 * mode is set, only the owner may connect(2): the group's and others' bits
 * come last, when the group is the final one, so that no connect() is let
 * through by the permissions of a moment (the kernel checks them before it
 * looks whether the socket listens). */
static int set_owner_and_mode(const struct config *cfg, const char *path, mode_t mode)
{
	struct group *g = NULL;

	if (cfg->socket_group[0] && !(g = getgrnam(cfg->socket_group))) {
		log_err("socket_group: no group '%s'", cfg->socket_group);
		return -1;
	}
	if (g && chown(path, (uid_t)-1, g->gr_gid) < 0) {
		log_err("cannot give %s to group %s: %s", path, cfg->socket_group, strerror(errno));
		return -1;
	}
	if (chmod(path, mode) < 0) {
		log_err("cannot set the mode of %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Every connection tells the credentials of each sender (SCM_CREDENTIALS),
 * from its first byte: accepted sockets inherit the flag. */
static int server_pass_credentials(int fd)
{
	return setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &(int){ 1 }, sizeof(int));
}

static int listen_on(struct server *srv, const char *path) __attribute__((nonnull));

/* The directory was checked and the instance lock taken (see server.h).
 * The socket is made with its owner's bits only (through the umask: the
 * process has one thread), then gets its final group and mode, all before
 * listen(): no client ever gets in through a wider mode or another group,
 * even one whose connect() checked the permissions a moment before. */
static int listen_on(struct server *srv, const char *path)
{
	mode_t mode = socket_mode(srv->cfg), old;
	struct sockaddr_un sa;
	struct stat st;
	int r;

	if (make_addr(path, &sa) < 0 || clear_stale(path) < 0)
		return -1;
	srv->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->fd < 0) {
		log_err("socket: %s", strerror(errno));
		return -1;
	}
	old = umask(0077 | (~mode & 0700)); /* the owner's bits only, until the group is set */
	r = bind(srv->fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0) {
		log_err("cannot bind %s: %s", path, strerror(errno));
		close(srv->fd);
		srv->fd = -1;
		return -1;
	}
	if (stat(path, &st) < 0) {
		log_err("cannot stat %s: %s", path, strerror(errno));
		unlink(path);
		return -1;
	}
	/* From here server_free() removes the file. */
	srv->dev = st.st_dev;
	srv->ino = st.st_ino;
	if (set_owner_and_mode(srv->cfg, path, mode) < 0)
		return -1;
	if (server_pass_credentials(srv->fd) < 0 || listen(srv->fd, SOMAXCONN) < 0) {
		log_err("cannot listen on %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* accept(2) failed for want of err (descriptors, memory): rest a while. */
static void server_pause(struct server *srv, int err)
{
	struct timeval tv = { 0, EMFILE_BACKOFF_MS * 1000 };

	/* Without the timer to resume, a pause could last for good. */
	if (srv->paused || loop_event_add(srv->backoff, &tv) < 0)
		return;
	log_warn("accept: %s; not accepting for %d ms", strerror(err), EMFILE_BACKOFF_MS);
	srv->paused = true;
	loop_event_del(srv->ev);
}

bool server_pending(const struct server *srv)
{
	struct pollfd p = { .fd = srv ? srv->fd : -1, .events = POLLIN };

	return srv && poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

void server_resume(struct server *srv)
{
	if (!srv || !srv->paused)
		return;
	loop_event_del(srv->backoff);
	if (loop_event_add(srv->ev, NULL) < 0) {
		/* Listening again failed: try once more after the back-off
		 * (its timer cannot fail: the heap was reserved). */
		loop_event_add(srv->backoff, &(struct timeval){ 0, EMFILE_BACKOFF_MS * 1000 });
		return;
	}
	srv->paused = false;
}

/* Opens the spare descriptor again once the refused session has freed it
 * (at the end of the callback that refused it). */
static void server_keep_spare(struct server *srv)
{
	if (srv->spare < 0)
		srv->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Out of descriptors: gives up the spare one to accept a waiting client and
 * have it told so, rather than leave it hanging in the backlog. (accept4
 * says EMFILE before it looks at the backlog, so there may be nobody.)
 * Returns false when there was nothing to do it with. */
static bool server_refuse_one(struct server *srv)
{
	int c;

	if (srv->spare < 0)
		return false;
	close(srv->spare);
	srv->spare = -1;
	c = accept4(srv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (c < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
		       errno == ECONNABORTED;
	srv->accepted(srv->arg, c, true);
	return true;
}

static void server_accept_cb(void *arg)
{
	struct server *srv = arg;

	server_keep_spare(srv);
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int c = accept4(srv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (c >= 0) {
			srv->accepted(srv->arg, c, false);
			continue;
		}
		if (errno == EMFILE || errno == ENFILE) {
			int err = errno;

			if (!server_refuse_one(srv))
				server_pause(srv, err);
		} else if (errno == ENOBUFS || errno == ENOMEM) {
			server_pause(srv, errno);
		} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			   errno != ECONNABORTED) {
			log_warn("accept: %s", strerror(errno));
		}
		break;
	}
}

static void server_backoff_cb(void *arg)
{
	server_resume(arg);
}

static struct server *server_start(struct server *srv)
{
	server_keep_spare(srv);
	srv->ev = loop_event_new(srv->loop, srv->fd, EV_READ | EV_PERSIST, server_accept_cb, srv);
	srv->backoff = loop_event_new(srv->loop, -1, 0, server_backoff_cb, srv);
	if (!srv->ev || !srv->backoff || loop_event_add(srv->ev, NULL) < 0)
		return server_free(srv);
	return srv;
}

static struct server *server_alloc(struct loop *loop, int fd, server_accepted_fn accepted,
				   void *arg)
{
	struct server *srv = calloc(1, sizeof(*srv));

	if (!srv)
		return NULL;
	srv->loop = loop;
	srv->accepted = accepted;
	srv->arg = arg;
	srv->fd = fd;
	srv->spare = -1;
	return srv;
}

struct server *server_new(struct loop *loop, const struct config *cfg, const char *path,
			  server_accepted_fn accepted, void *arg)
{
	struct server *srv = server_alloc(loop, -1, accepted, arg);

	if (!srv)
		return NULL;
	srv->cfg = cfg;
	srv->path = strdup(path);
	if (!srv->path || listen_on(srv, path) < 0)
		return server_free(srv);
	return server_start(srv);
}

struct server *server_adopt(struct loop *loop, int fd, server_accepted_fn accepted, void *arg)
{
	struct server *srv = server_alloc(loop, fd, accepted, arg);

	if (!srv)
		return NULL;
	if (evutil_make_socket_nonblocking(fd) < 0 || evutil_make_socket_closeonexec(fd) < 0 ||
	    server_pass_credentials(fd) < 0)
		return server_free(srv);
	return server_start(srv);
}

/* Removes the socket file only if it is still the one we bound. */
static void unlink_ours(const struct server *srv)
{
	struct stat st;

	if (stat(srv->path, &st) == 0 && st.st_dev == srv->dev && st.st_ino == srv->ino)
		unlink(srv->path);
}

struct server *server_free(struct server *srv)
{
	if (!srv)
		return NULL;
	loop_event_free(srv->ev);
	loop_event_free(srv->backoff);
	if (srv->spare >= 0)
		close(srv->spare);
	if (srv->fd >= 0) {
		close(srv->fd);
		if (srv->path)
			unlink_ours(srv);
	}
	free(srv->path);
	free(srv);
	return NULL;
}
