#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "soak.h"

struct control *control_new(void)
{
	void *p = mmap(NULL, sizeof(struct control), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("hasp-soak: mmap");
		exit(2);
	}
	return p;
}

bool control_stopped(const struct control *c)
{
	return __atomic_load_n(&c->stop, __ATOMIC_ACQUIRE) != 0;
}

void control_set_stop(struct control *c, bool stop)
{
	__atomic_store_n(&c->stop, stop ? 1u : 0u, __ATOMIC_RELEASE);
}

uint32_t control_daemon_state(const struct control *c)
{
	return __atomic_load_n(&c->daemon_state, __ATOMIC_ACQUIRE);
}

void control_set_daemon_state(struct control *c, uint32_t state)
{
	__atomic_store_n(&c->daemon_state, state, __ATOMIC_RELEASE);
	syscall(SYS_futex, &c->daemon_state, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

void control_wait_change(struct control *c, uint32_t seen, int timeout_ms)
{
	struct timespec ts = { .tv_sec = timeout_ms / 1000, .tv_nsec = (timeout_ms % 1000) * 1000000L };

	/* Returns at once if the word is no longer seen (EAGAIN), on a wake-up,
	 * or after the timeout: the caller looks again either way. */
	syscall(SYS_futex, &c->daemon_state, FUTEX_WAIT, seen, &ts, NULL, 0);
}
