#include "endpoints.h"

#include <stdlib.h>
#include <string.h>

/* One "http://HOST:PORT" of len bytes; a trailing "/" is allowed. */
static int parse_one(const char *s, size_t len, struct endpoint *ep)
{
	static const char scheme[] = "http://";
	const char *host, *colon, *end = s + len;
	char digits[8], *stop;
	unsigned long port;
	size_t hlen, plen;

	if (len > 0 && end[-1] == '/')
		end--;
	if ((size_t)(end - s) <= sizeof(scheme) - 1 || strncmp(s, scheme, sizeof(scheme) - 1))
		return -1;
	host = s + sizeof(scheme) - 1;
	colon = memrchr(host, ':', (size_t)(end - host));
	if (!colon)
		return -1;
	hlen = (size_t)(colon - host);
	plen = (size_t)(end - colon - 1);
	if (hlen == 0 || hlen >= sizeof(ep->host) || memchr(host, '/', hlen) || plen == 0 ||
	    plen >= sizeof(digits))
		return -1;
	memcpy(digits, colon + 1, plen);
	digits[plen] = '\0';
	port = strtoul(digits, &stop, 10);
	if (*stop || port == 0 || port > 65535)
		return -1;
	memcpy(ep->host, host, hlen);
	ep->host[hlen] = '\0';
	ep->port = (unsigned short)port;
	return 0;
}

int endpoints_parse(const char *list, struct endpoint *eps, size_t max)
{
	size_t n = 0;

	while (*list) {
		size_t len = strcspn(list, ",");

		if (n == max || parse_one(list, len, &eps[n]) < 0)
			return -1;
		n++;
		list += len;
		if (*list == ',')
			list++;
	}
	return n ? (int)n : -1;
}
