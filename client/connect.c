/* Connecting: which socket (the default's order), whether to trust it,
 * and the connection's start (libhasp_connected() in the core). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "libhasp-internal.h"
#include "sockpath.h"
#include "trust.h"

HASP_EXPORT int hasp_default_socket(char *buf, size_t size)
{
	return proto_default_socket(buf, size);
}

/* A connected socket to a trusted path, or a negative error. */
static int connect_trusted(hasp_client *c, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct trust t;
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return libhasp_error(c, -ENAMETOOLONG, "socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	r = trust_socket(path, &t, c->errmsg, sizeof(c->errmsg));
	if (r == -HASP_E_UNTRUSTED)
		return r;
	if (r < 0)
		return libhasp_error(c, r, "cannot connect to haspd at %s: %s", path, strerror(-r));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return libhasp_error(c, r, "cannot connect to haspd at %s: %s", path, strerror(-r));
	}
	r = trust_peer(fd, path, &t, c->errmsg, sizeof(c->errmsg));
	if (r < 0) {
		close(fd);
		return r == -HASP_E_UNTRUSTED ? r : libhasp_error(c, r, "cannot check who serves %s: %s",
							      path, strerror(-r));
	}
	return fd;
}

HASP_EXPORT int hasp_client_connect(hasp_client *c, const char *socket_path)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int fd;

	c->errmsg[0] = '\0';
	if (c->fd >= 0)
		return libhasp_error(c, -EISCONN, "already connected to haspd");
	if (!socket_path) {
		if (proto_default_socket(path, sizeof(path)) < 0)
			return libhasp_error(c, -ENAMETOOLONG, "the default socket path is too long");
		socket_path = path;
	}
	fd = connect_trusted(c, socket_path);
	if (fd < 0)
		return fd;
	return libhasp_connected(c, fd, socket_path);
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

