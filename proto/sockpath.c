#include "sockpath.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int proto_default_socket(char *buf, size_t size)
{
	const char *env = getenv("HASP_SOCKET");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (env && *env)
		n = snprintf(buf, size, "%s", env);
	else if (xdg && *xdg)
		n = snprintf(buf, size, "%s/hasp/haspd.sock", xdg);
	else if (geteuid() == 0)
		n = snprintf(buf, size, "/run/hasp/haspd.sock");
	else
		n = snprintf(buf, size, "/tmp/hasp-%u/haspd.sock", (unsigned)geteuid());
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}
