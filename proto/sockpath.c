#include "sockpath.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* 0, or -ENAMETOOLONG for snprintf()'s n in size bytes. */
static int fits(int n, size_t size)
{
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int proto_user_socket(char *buf, size_t size, bool *ret_own)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	bool own = true;
	int n;

	if (xdg && *xdg) {
		n = snprintf(buf, size, "%s/hasp/haspd.sock", xdg);
	} else if (geteuid() == 0) {
		/* root's own daemon is the system's */
		n = snprintf(buf, size, "%s", PROTO_SYSTEM_SOCKET);
		own = false;
	} else {
		n = snprintf(buf, size, "/tmp/hasp-%u/haspd.sock", (unsigned)geteuid());
	}
	if (fits(n, size) < 0)
		return -ENAMETOOLONG;
	*ret_own = own;
	return 0;
}

int proto_default_socket(char *buf, size_t size)
{
	const char *env = getenv("HASP_SOCKET");
	bool own;

	if (env && *env)
		return fits(snprintf(buf, size, "%s", env), size);
	return proto_user_socket(buf, size, &own);
}

int proto_system_socket(char *buf, size_t size)
{
	const char *env = getenv("HASP_SYSTEM_SOCKET");

	return fits(snprintf(buf, size, "%s", env && *env ? env : PROTO_SYSTEM_SOCKET), size);
}
