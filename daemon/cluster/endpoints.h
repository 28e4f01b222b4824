/* cluster_endpoints: "http://HOST:PORT,http://HOST:PORT", parsed. */
#pragma once

#include <stddef.h>

#define ENDPOINTS_MAX 16

struct endpoint {
	char host[256];
	unsigned short port;
};

/* Fills eps (at most max) from list. Returns how many, or -1 when an entry
 * is not http://HOST:PORT or there are too many. */
int endpoints_parse(const char *list, struct endpoint *eps, size_t max);
