/* An address to listen on, as a setting writes it: "127.0.0.1:9466" or
 * "[::1]:9466", a numeric IPv4 or IPv6 host (no name is looked up, so the
 * address is the same at every start) and a port from 1 to 65535. Pure. */
#pragma once

#include <sys/socket.h>

/* The longest such text: "[" INET6_ADDRSTRLEN "]:65535". */
#define NETADDR_TEXT_MAX 64

/* s as a socket address: 0, or -EINVAL when it is not one of the forms
 * above; ret_* are written only on success. */
int netaddr_parse(const char *s, struct sockaddr_storage *ret_addr, socklen_t *ret_len);
