/* The examples of libhasp's non-blocking core (examples/, issue 15), each
 * run against a haspd of its own on a temporary socket ($HASP_SOCKET), under
 * $HASP_TEST_WRAPPER too (valgrind): each holds 100 lock requests in
 * flight, cancels 50 (whose callbacks must never run), gets the other 50
 * granted and hears a revoke of one through its event handler; it exits 0
 * only if all of that happened. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "harness.h"

static struct daemon_proc daemon_;

static void setup(void)
{
	daemon_start(&daemon_);
}

static void teardown(void)
{
	daemon_stop(&daemon_);
}

/* Runs the example $var names; it must exit 0 within the bound. */
static void run_example(const char *var)
{
	const char *path = getenv(var);
	char *argv[32], words[1024];
	size_t n;
	int status;

	ck_assert_msg(path, "$%s is not set", var);
	n = wrapper_argv(argv, 24, words, sizeof(words));
	argv[n++] = (char *)path;
	argv[n] = NULL;
	ck_assert_int_eq(setenv("HASP_SOCKET", daemon_.socket, 1), 0);
	status = wait_child(spawn_argv(argv, -1), 60000);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: status %#x", path,
		      status);
}

START_TEST(poll_example)
{
	run_example("HASP_EXAMPLE_POLL");
}
END_TEST

START_TEST(libevent_example)
{
	run_example("HASP_EXAMPLE_LIBEVENT");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("examples");
	TCase *tc = tcase_create("examples");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, poll_example);
	tcase_add_test(tc, libevent_example);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
