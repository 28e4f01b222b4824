/* libhasp's non-blocking core reading whatever a hostile or broken server
 * sends: the input is the server's side of a socketpair, fed to a client
 * with requests in flight (hello is id 1, then acquires 2 to 5: two free
 * keys, one with timeout 0, one cancelled at once), processed until the
 * input is read, then the server's end closed. Replies out of order, to
 * unknown or repeated ids, without a lease, events without one, errors
 * addressed to nobody, lines cut or huge: no crash, no leak, each
 * callback at most once, none for the cancelled request, and the end of
 * the connection told once. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "libhasp-internal.h"

#define NREQ 4

struct seen {
	int calls[NREQ];
	int disconnected;
};

static struct seen seen;

static void on_lock(hasp_client *c, hasp_request *req, int r, hasp_lease *lease, void *u)
{
	int *calls = u;

	(void)c, (void)req, (void)r;
	++*calls;
	hasp_lease_free(lease);
}

static void on_event(hasp_client *c, enum hasp_event ev, uint64_t lease, void *u)
{
	(void)c, (void)lease, (void)u;
	if (ev == HASP_EVENT_DISCONNECTED)
		seen.disconnected++;
}

/* The client's requests, read and thrown away, so that it never stalls. */
static void drain(int fd)
{
	char buf[4096];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hasp_acquire_options now = HASP_ACQUIRE_OPTIONS_INIT;
	const char *keys[NREQ] = { "a", "b", "try", "cancelled" };
	hasp_request *cancel = NULL;
	hasp_client *c;
	size_t off = 0;
	int sv[2];

	memset(&seen, 0, sizeof(seen));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	if (hasp_client_new(&c) < 0)
		abort();
	if (libhasp_connected(c, sv[0], "/fuzz/haspd.sock") < 0)
		abort(); /* sv[0] is closed */
	hasp_client_set_event_handler(c, on_event, NULL);
	now.timeout_ms = 0;
	for (int i = 0; i < NREQ; i++)
		if (hasp_lock_async(c, keys[i], i == 2 ? &now : NULL, on_lock, &seen.calls[i],
				    i == 3 ? &cancel : NULL) < 0)
			abort();
	hasp_request_cancel(cancel);

	/* The input, as much as the socket takes at a time, each piece
	 * processed; a bound on rounds, for a client that stops reading. */
	for (int round = 0; off < size && round < 10000 && hasp_client_get_events(c); round++) {
		ssize_t n = write(sv[1], data + off, size - off);

		if (n > 0)
			off += (size_t)n;
		drain(sv[1]);
		hasp_client_process(c);
	}
	for (int round = 0; round < 100 && hasp_client_get_events(c); round++) {
		struct pollfd p = { .fd = hasp_client_get_fd(c), .events = POLLIN };

		if (poll(&p, 1, 0) <= 0)
			break;
		hasp_client_process(c);
	}
	close(sv[1]);
	for (int round = 0; round < 100 && hasp_client_get_events(c); round++)
		hasp_client_process(c);
	assert(!hasp_client_get_events(c));
	for (int i = 0; i < NREQ; i++)
		assert(seen.calls[i] <= 1);
	assert(seen.calls[3] == 0);
	/* Every request ended with the connection, if not before. */
	assert(seen.calls[0] == 1 && seen.calls[1] == 1 && seen.calls[2] == 1);
	assert(seen.disconnected == 1);
	hasp_close(c);
	return 0;
}
