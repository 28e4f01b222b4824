/* On-demand start: when the caller's own default socket has no daemon,
 * libhasp starts a per-user haspd there that exits once idle, as gpg-agent
 * is started by gpg (see libhasp(3)). Never for an explicit socket
 * ($HASP_SOCKET, a path given) or the system's: connect.c decides that. */
#pragma once

#include <stdbool.h>

#include "hasp.h"

/* Whether the caller lets libhasp start a daemon: not when
 * $HASP_NO_AUTOSTART is set to anything but "" or "0". */
bool autostart_wanted(void);
/* Starts haspd on path (absolute), fully detached, exiting after it was
 * idle for $HASP_AUTOSTART_IDLE seconds (default AUTOSTART_IDLE_S), and
 * waits at most AUTOSTART_WAIT_MS for it, or, if it lost the race to a
 * haspd that another client started, for that one: until something
 * listens on path. Returns 0, or a negative error with c's message set
 * (-ENOENT: no haspd to start; -ECHILD: it exited before listening;
 * -ETIMEDOUT). */
int autostart_haspd(hasp_client *c, const char *path);
