/* The listening socket: bind (replacing a stale socket file, refusing a live
 * daemon's), accept, refuse a client with a limit error when over
 * max_sessions or out of descriptors (a spare one is kept for that), remove
 * the socket file at the end. */
#pragma once

struct haspd;
struct server;

/* Listens on path, with d->cfg's socket mode and group. NULL on failure,
 * with the reason logged. */
struct server *server_new(struct haspd *d, const char *path);
/* Serves a listening socket made by someone else (socket activation); it is
 * closed, but its file is not removed, at the end. */
struct server *server_adopt(struct haspd *d, int fd);
struct server *server_free(struct server *srv);
/* Accept again if accepting was paused for lack of descriptors. */
void server_resume(struct server *srv);
