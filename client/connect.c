/* Connecting: which socket (the default's order), whether to trust it,
 * and the connection's start (libhasp_connected() in the core).
 *
 * The order, for a connection without a path: $HASP_SOCKET, as it is and
 * nothing else; else the system socket, when a trusted haspd answers there,
 * since that daemon is where users coordinate with each other; else the
 * caller's own (per-user) socket, whose daemon libhasp starts on demand
 * (autostart.h). A path given, $HASP_SOCKET and the system socket are
 * never started: a daemon there is someone else's to run. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "autostart.h"
#include "libhasp-internal.h"
#include "sockpath.h"
#include "trust.h"

#define SOCKET_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

/* A connected socket to a trusted path, or a negative error with the
 * reason in msg. */
static int connect_trusted(const char *path, char *msg, size_t size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct trust t;
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(msg, size, "socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	r = trust_socket(path, &t, msg, size);
	if (r == -HASP_E_UNTRUSTED)
		return r;
	if (r < 0)
		goto cannot;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		goto cannot;
	}
	r = trust_peer(fd, path, &t, msg, size);
	if (r < 0) {
		close(fd);
		if (r != -HASP_E_UNTRUSTED)
			snprintf(msg, size, "cannot check who serves %s: %s", path, strerror(-r));
		return r;
	}
	return fd;
cannot:
	snprintf(msg, size, "cannot connect to haspd at %s: %s", path, strerror(-r));
	return r;
}

/* $HASP_SOCKET, or NULL when it is unset or empty. */
static const char *connect_env_socket(void)
{
	const char *env = getenv("HASP_SOCKET");

	return env && *env ? env : NULL;
}

/* The system socket and the caller's own into sys and user (each
 * SOCKET_PATH_MAX bytes); *own as proto_user_socket() says. Returns 0 or
 * -ENAMETOOLONG. */
static int connect_paths(char *sys, char *user, bool *own)
{
	if (proto_system_socket(sys, SOCKET_PATH_MAX) < 0 ||
	    proto_user_socket(user, SOCKET_PATH_MAX, own) < 0)
		return -ENAMETOOLONG;
	return 0;
}

/* A trusted haspd's connection on the system socket, or a negative error:
 * none answering there, or one not to be trusted, is no error, but the
 * next socket's turn. Never the same path as user's: that one is tried
 * next anyway. */
static int connect_system(const char *sys, const char *user)
{
	char why[sizeof(((hasp_client *)0)->errmsg)];

	return strcmp(sys, user) != 0 ? connect_trusted(sys, why, sizeof(why)) : -ENOENT;
}

HASP_EXPORT int hasp_default_socket(char *buf, size_t size)
{
	char sys[SOCKET_PATH_MAX], user[SOCKET_PATH_MAX];
	const char *env = connect_env_socket(), *pick = env;
	bool own;
	int fd;

	if (!pick) {
		if (connect_paths(sys, user, &own) < 0)
			return -ENAMETOOLONG;
		fd = connect_system(sys, user);
		if (fd >= 0)
			close(fd); /* only asked: it answers */
		pick = fd >= 0 ? sys : user;
	}
	if (strlen(pick) >= size)
		return -ENAMETOOLONG;
	strcpy(buf, pick);
	return 0;
}

HASP_EXPORT const char *hasp_client_socket(const hasp_client *c)
{
	return c->socket_path;
}

/* c connected to path, or a negative error with c's message set. */
static int connect_to(hasp_client *c, const char *path)
{
	int fd = connect_trusted(path, c->errmsg, sizeof(c->errmsg));

	return fd < 0 ? fd : libhasp_connected(c, fd, path);
}

/* The caller's own socket, its daemon started if none listens there (and
 * the caller did not say no). */
static int connect_own(hasp_client *c, const char *path)
{
	int r = connect_to(c, path);

	if ((r != -ENOENT && r != -ECONNREFUSED) || path[0] != '/' || !autostart_wanted())
		return r;
	r = autostart_haspd(c, path);
	return r < 0 ? r : connect_to(c, path);
}

/* The default order (at the top of this file). */
static int connect_default(hasp_client *c)
{
	char sys[SOCKET_PATH_MAX], user[SOCKET_PATH_MAX];
	const char *env = connect_env_socket();
	bool own;
	int fd;

	if (env)
		return connect_to(c, env);
	if (connect_paths(sys, user, &own) < 0)
		return libhasp_error(c, -ENAMETOOLONG, "the default socket path is too long");
	fd = connect_system(sys, user);
	if (fd >= 0)
		return libhasp_connected(c, fd, sys);
	return own ? connect_own(c, user) : connect_to(c, user);
}

HASP_EXPORT int hasp_client_connect(hasp_client *c, const char *socket_path)
{
	c->errmsg[0] = '\0';
	if (c->fd >= 0)
		return libhasp_error(c, -EISCONN, "already connected to haspd");
	return socket_path ? connect_to(c, socket_path) : connect_default(c);
}

HASP_EXPORT int hasp_connect(const char *socket_path, hasp_client **ret_client)
{
	hasp_client *c;
	int r = hasp_client_new(&c);

	if (r < 0)
		return r;
	r = hasp_client_connect(c, socket_path);
	if (r < 0) {
		hasp_close(c);
		return r;
	}
	*ret_client = c;
	return 0;
}
