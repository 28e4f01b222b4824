/* Whether libhasp may trust a socket: who could have put it there, checked
 * before connecting (nothing is sent to an untrusted socket), and who
 * serves it, checked once connected. See DESIGN.md, "Security model".
 *
 * The socket's directory (lstat: not a symbolic link) must not be writable
 * by group or others, and must belong to root, to the caller (euid), or to
 * the socket's owner (a daemon running under its own uid in a directory of
 * its own). The per-user default directory, /tmp/hasp-$EUID, must be the
 * caller's own with mode 0700 exactly. The socket itself must not be a
 * symbolic link. Once connected, the peer (SO_PEERCRED) must be root, the
 * caller, or the owner of the socket or of its directory. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

struct trust {
	uid_t dir_uid;          /* the socket's directory's owner */
	uid_t sock_uid;         /* the socket's owner */
};

/* Checks path before connecting. Returns 0 and fills *ret, -HASP_E_UNTRUSTED
 * with the reason (naming the directory, its owner and mode) in msg, or
 * -errno when there is nothing to check (-ENOENT: no such socket). */
int trust_socket(const char *path, struct trust *ret, char *msg, size_t size);
/* Checks who serves fd, connected to path, which trust_socket() passed as
 * t. Returns 0, -HASP_E_UNTRUSTED with the reason in msg, or -errno. */
int trust_peer(int fd, const char *path, const struct trust *t, char *msg, size_t size);
