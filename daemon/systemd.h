/* systemd integration through libsystemd's sd-daemon, when haspd is built
 * with it (-Dsystemd); otherwise these do nothing. */
#pragma once

/* The listening socket passed by socket activation, or -1. */
int systemd_listen_fd(void);
/* sd_notify(): "READY=1", "STOPPING=1", "STATUS=...". */
void systemd_notify(const char *state);
/* Whether a service manager listens for notifications. */
int systemd_notifying(void);
