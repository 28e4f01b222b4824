/* The listening socket (the listener): bind (replacing a stale socket file,
 * refusing a live daemon's), accept, pause while out of descriptors (a
 * spare one is kept to accept a client and have it told so), remove the
 * socket file at the end. Accepted sockets are reported through a callback;
 * whom to serve is the caller's policy. */
#pragma once

#include <stdbool.h>

struct config;
struct loop;
struct server;

/* A socket accepted (non-blocking, close-on-exec), now the callee's; with
 * out_of_fds when it was accepted with the spare descriptor, to be refused. */
typedef void (*server_accepted_fn)(void *arg, int fd, bool out_of_fds);

/* The directory of the socket at path, before anything else: it must be a
 * directory (not a symbolic link) owned by haspd's euid or root, writable by
 * nobody else; a missing one is created with cfg's socket_dir_mode. Returns
 * 0, or -1 with the reason logged. */
int server_check_dir(const struct config *cfg, const char *path);
/* What is at the socket path: 0 nothing, 1 a socket nobody answers on (left
 * by a haspd that died), or -1 with the reason logged (a live daemon,
 * something that is not a socket, an error). Only connects. */
int server_probe(const char *path);
/* Listens on path, with cfg's socket mode and group, which the socket
 * has before it listens; a stale socket file is replaced. Call it with the
 * directory checked and the instance lock (the fence file) held, so that
 * two daemons never both replace it. NULL on failure, with the reason
 * logged. */
struct server *server_new(struct loop *loop, const struct config *cfg, const char *path,
			  server_accepted_fn accepted, void *arg);
/* Serves a listening socket made by someone else (socket activation); it is
 * closed, but its file is not removed, at the end. */
struct server *server_adopt(struct loop *loop, int fd, server_accepted_fn accepted, void *arg);
struct server *server_free(struct server *srv);
/* Whether a client waits in the listen queue, not accepted yet (false
 * for NULL). */
bool server_pending(const struct server *srv);
/* Accept again if accepting was paused for lack of descriptors. */
void server_resume(struct server *srv);
