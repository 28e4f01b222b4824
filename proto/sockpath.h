/* Where haspd's socket is: the paths shared by haspd and libhasp. Which
 * one a client connects to (the system socket first) is libhasp's choice
 * (client/connect.c); these only spell the paths. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The system daemon's socket, as haspd.socket and the tmpfiles.d entry
 * place it. */
#define PROTO_SYSTEM_SOCKET "/run/hasp/haspd.sock"

/* Where haspd listens by default: $HASP_SOCKET, else proto_user_socket()'s
 * path. Returns 0, or -ENAMETOOLONG when it does not fit in size bytes. */
int proto_default_socket(char *buf, size_t size);
/* The caller's own daemon: $XDG_RUNTIME_DIR/hasp/haspd.sock, else
 * PROTO_SYSTEM_SOCKET for root, else /tmp/hasp-$EUID/haspd.sock. *ret_own
 * says whether it is a per-user path (not the system one), where libhasp
 * may start a daemon. Returns 0 or -ENAMETOOLONG. */
int proto_user_socket(char *buf, size_t size, bool *ret_own);
/* The system daemon's socket: $HASP_SYSTEM_SOCKET if set and not empty
 * (for tests and packaging), else PROTO_SYSTEM_SOCKET. Returns 0 or
 * -ENAMETOOLONG. */
int proto_system_socket(char *buf, size_t size);
