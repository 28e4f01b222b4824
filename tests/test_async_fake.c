/* libhasp's non-blocking core against a fake haspd on a socket pair, for
 * replies a real one never sends: a grant without a lease drops the
 * connection inside that request's completion, and another request's
 * callback, run by the connection's end, cancels the request being
 * completed. It must end quietly, not be used after it is freed (the
 * ASan build sees that). The hello is id 1, the requests 2 and 3. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hasp.h"
#include "libhasp-internal.h"
#include "suite.h"

static hasp_request *victim;

struct seen {
	int calls;
	int r;
};

static void cancel_victim(hasp_client *c, hasp_request *req, int r, hasp_lease *lease, void *u)
{
	struct seen *s = u;

	(void)c, (void)req;
	s->calls++;
	s->r = r;
	hasp_lease_free(lease);
	if (victim)
		ck_assert_int_eq(hasp_request_cancel(victim), 0);
	victim = NULL;
}

static void record(hasp_client *c, hasp_request *req, int r, hasp_lease *lease, void *u)
{
	struct seen *s = u;

	(void)c, (void)req;
	s->calls++;
	s->r = r;
	hasp_lease_free(lease);
}

/* What the client wrote, read and thrown away. */
static void drain(int fd)
{
	char buf[4096];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

START_TEST(cancel_of_a_request_whose_bad_grant_ends_the_connection)
{
	static const char grant[] = "{\"id\":3,\"ok\":true,\"fence\":1}\n";
	struct seen waiting = { 0 }, granted = { 0 };
	hasp_client *c;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	ck_assert_int_eq(hasp_client_new(&c), 0);
	ck_assert_int_eq(libhasp_connected(c, sv[0], "/fake/haspd.sock"), 0);
	ck_assert_int_eq(hasp_lock_async(c, "waits", NULL, cancel_victim, &waiting, NULL), 0);
	ck_assert_int_eq(hasp_lock_async(c, "granted", NULL, record, &granted, &victim), 0);
	ck_assert_int_eq(hasp_client_process(c), 0); /* writes them */
	drain(sv[1]);
	ck_assert_int_eq(write(sv[1], grant, strlen(grant)), (ssize_t)strlen(grant));
	ck_assert_int_lt(hasp_client_process(c), 0); /* the grant cannot be read */
	ck_assert_int_eq(waiting.calls, 1);
	ck_assert_int_lt(waiting.r, 0);
	ck_assert_ptr_null(victim);
	ck_assert_int_eq(granted.calls, 0);
	ck_assert_int_eq(hasp_client_get_events(c), 0);
	hasp_close(c);
	close(sv[1]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("async-fake");
	TCase *tc = tcase_create("async-fake");

	tcase_add_test(tc, cancel_of_a_request_whose_bad_grant_ends_the_connection);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
