#include "netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* "1" to "65535", digits only. */
static int netaddr_port(const char *s, in_port_t *ret_port)
{
	char *end;
	unsigned long p;

	if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 5)
		return -EINVAL;
	p = strtoul(s, &end, 10);
	if (p == 0 || p > 65535)
		return -EINVAL;
	*ret_port = htons((in_port_t)p);
	return 0;
}

int netaddr_parse(const char *s, struct sockaddr_storage *ret_addr, socklen_t *ret_len)
{
	struct sockaddr_storage ss;
	const char *colon = strrchr(s, ':'), *host = s;
	char buf[NETADDR_TEXT_MAX];
	size_t n;
	in_port_t port;

	if (!colon || strlen(s) >= sizeof(buf) || netaddr_port(colon + 1, &port) < 0)
		return -EINVAL;
	n = (size_t)(colon - s);
	if (s[0] == '[') {
		if (n < 2 || s[n - 1] != ']')
			return -EINVAL;
		host++;
		n -= 2;
	}
	memcpy(buf, host, n);
	buf[n] = '\0';
	memset(&ss, 0, sizeof(ss));
	if (s[0] == '[') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		if (inet_pton(AF_INET6, buf, &a->sin6_addr) != 1)
			return -EINVAL;
		a->sin6_family = AF_INET6;
		a->sin6_port = port;
		*ret_len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		if (inet_pton(AF_INET, buf, &a->sin_addr) != 1)
			return -EINVAL;
		a->sin_family = AF_INET;
		a->sin_port = port;
		*ret_len = sizeof(*a);
	}
	*ret_addr = ss;
	return 0;
}
