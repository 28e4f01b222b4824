/* libhasp's non-blocking core against a fake haspd on a socket pair, for
 * replies a real one never sends: a grant without a lease drops the
 * connection inside that request's completion, and another request's
 * callback, run by the connection's end, cancels the request being
 * completed. It must end quietly, not be used after it is freed (the
 * ASan build sees that). And for an event only a haspd in cluster mode
 * sends: a lease lost (etcd out of reach) is told as a revoke. The hello
 * is id 1, the requests 2 and 3. */
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

struct told {
	int calls;
	enum hasp_event event;
	uint64_t lease;
};

static void note(hasp_client *c, enum hasp_event event, uint64_t lease, void *u)
{
	struct told *t = u;

	(void)c;
	t->calls++;
	t->event = event;
	t->lease = lease;
}

static void fake_say(int fd, const char *line)
{
	ck_assert_int_eq(write(fd, line, strlen(line)), (ssize_t)strlen(line));
}

/* A fake haspd grants "cluster/x" as lease 7, then says it lost it. */
START_TEST(lost_is_told_as_a_revoke)
{
	struct told told = { 0 };
	hasp_lease *l;
	hasp_client *c;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	ck_assert_int_eq(hasp_client_new(&c), 0);
	hasp_client_set_event_handler(c, note, &told);
	ck_assert_int_eq(libhasp_connected(c, sv[0], "/fake/haspd.sock"), 0);
	fake_say(sv[1], "{\"id\":1,\"ok\":true,\"server\":\"fake\"}\n"
			"{\"id\":2,\"ok\":true,\"lease\":7,\"fence\":42,\"mode\":\"exclusive\"}\n");
	ck_assert_int_eq(hasp_lock(c, "cluster/x", NULL, &l), 0);
	ck_assert_uint_eq(hasp_lease_id(l), 7);
	ck_assert_int_eq(hasp_lease_revoked(c, l), 0);
	fake_say(sv[1], "{\"event\":\"lost\",\"lease\":7,\"key\":\"cluster/x\","
			"\"message\":\"etcd unreachable for 10 s\"}\n");
	ck_assert_int_eq(hasp_lease_revoked(c, l), 3);
	ck_assert_int_eq(told.calls, 1);
	ck_assert_int_eq(told.event, HASP_EVENT_REVOKED);
	ck_assert_uint_eq(told.lease, 7);
	drain(sv[1]);
	ck_assert_int_eq(hasp_unlock(c, l), -HASP_E_UNKNOWN_LEASE);
	ck_assert_ptr_nonnull(strstr(hasp_client_errmsg(c), "lost"));
	hasp_close(c);
	close(sv[1]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("async-fake");
	TCase *tc = tcase_create("async-fake");

	tcase_add_test(tc, cancel_of_a_request_whose_bad_grant_ends_the_connection);
	tcase_add_test(tc, lost_is_told_as_a_revoke);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
