/* The listening socket: bind (replacing a stale socket file, refusing a live
 * daemon's), accept, back off on EMFILE, remove the socket file at the end. */
#pragma once

struct haspd;
struct server;

/* NULL on failure, with the reason logged. */
struct server *server_new(struct haspd *d, const char *path);
struct server *server_free(struct server *srv);
/* Accept again if accepting was paused for lack of descriptors. */
void server_resume(struct server *srv);
