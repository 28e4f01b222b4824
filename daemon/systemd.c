#include "systemd.h"

#include <stdlib.h>

#include "buildconf.h"
#include "log.h"

#if HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>

int systemd_listen_fd(void)
{
	int n = sd_listen_fds(1);

	if (n < 0) {
		log_warn("socket activation: %s", "LISTEN_FDS is invalid");
		return -1;
	}
	if (n > 1)
		log_warn("socket activation passed %d sockets; using the first", n);
	return n >= 1 ? SD_LISTEN_FDS_START : -1;
}

void systemd_notify(const char *state)
{
	sd_notify(0, state);
}
#else
int systemd_listen_fd(void)
{
	if (getenv("LISTEN_FDS"))
		log_warn("LISTEN_FDS is set, but this haspd was built without systemd support");
	return -1;
}

void systemd_notify(const char *state)
{
	(void)state;
}
#endif

int systemd_notifying(void)
{
	return getenv("NOTIFY_SOCKET") != NULL;
}
