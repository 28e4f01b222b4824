/* hasp watch against a real haspd (issue 18): a contention story (hold,
 * queue, release -> granted, timeout) seen in order, as JSON lines and as
 * plain lines with client text escaped; SIGTERM ends it with 0, the
 * daemon's end with 69. Every wait is on the output, with a bound. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_run.h"
#include "harness.h"
#include "hasp.h"

static struct daemon_proc daemon_;

static void setup(void)
{
	daemon_start(&daemon_);
	setenv("HASP_SOCKET", daemon_.socket, 1);
}

static void teardown(void)
{
	daemon_stop(&daemon_);
}

/* hasp watch with args, its output on *ret_out; returns once haspd
 * counts it as a watcher. */
static pid_t spawn_watch(char *const args[], hasp_client *probe, int *ret_out)
{
	int p[2];
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = cli_spawn(args, -1, p[1]);
	close(p[1]);
	/* No event says a watch has begun: haspd's gauge does. */
	wait_gauge(probe, "watchers", 1, 5000);
	*ret_out = p[0];
	return pid;
}

/* The story on key: a holds it; b waits (in a child process, on a
 * connection the parent keeps) and is granted when a lets go; c times out
 * behind b; b's session ends. */
static void contention_story(const char *key)
{
	struct hasp_lock_options t = HASP_LOCK_OPTIONS_INIT;
	hasp_client *a = client_connect(daemon_.socket), *b = client_connect(daemon_.socket);
	hasp_client *c = client_connect(daemon_.socket);
	hasp_lease *la = client_lock(a, key, HASP_EXCLUSIVE), *lease = NULL;
	pid_t child = fork();

	ck_assert_int_ge(child, 0);
	if (child == 0) {
		int r;

		t.owner = "bob";
		t.timeout_ms = test_ms(10000);
		r = hasp_lock(b, key, &t, &lease);
		/* The child's copies only (valgrind checks its leaks too):
		 * closing them ends no lease, the parent has the connections. */
		hasp_lease_free(lease);
		hasp_lease_free(la);
		hasp_close(a);
		hasp_close(b);
		hasp_close(c);
		_exit(r == 0 ? 0 : 1);
	}
	wait_gauge(a, "waiters", 1, 5000);
	ck_assert_int_eq(hasp_unlock(a, la), 0);
	ck_assert_int_eq(wait_child(child, 10000), 0); /* granted: b's lease lives on */
	t.owner = "carol";
	t.timeout_ms = 30;
	ck_assert_int_eq(hasp_lock(c, key, &t, &lease), -HASP_E_TIMEOUT);
	hasp_close(c);
	hasp_close(b);
	hasp_close(a);
}

/* needles, in this order, in what fd says within 10 s; the output in buf. */
static void expect_in_order(int fd, const char *const needles[], char *buf, size_t size)
{
	const char *at = buf;

	for (size_t i = 0; needles[i]; i++) {
		size_t off = (size_t)(at - buf);

		/* Read on (appended to buf) until it stands after the last. */
		ck_assert_msg(wait_output(fd, needles[i], 10000, buf + off, size - off),
			      "'%s' (number %zu) not seen in order in:\n%s", needles[i], i, buf);
		at = strstr(buf + off, needles[i]) + strlen(needles[i]);
	}
}

static void stop_watch(pid_t pid, int fd)
{
	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	ck_assert_int_eq(wait_child(pid, 10000), 0);
	close(fd);
}

/* hasp watch story/ (with --json if json) while the story plays on key
 * (after one on other/db, off the prefix): story's needles in order, the
 * output (without an escape, nor other/db) in buf. */
static void watch_story(bool json, const char *key, const char *const story[], char *buf,
			size_t size)
{
	hasp_client *probe = client_connect(daemon_.socket);
	char *args[] = { "hasp", "watch", json ? "--json" : "story/", "story/", NULL };
	int fd;
	pid_t pid;

	if (!json)
		args[3] = NULL;
	pid = spawn_watch(args, probe, &fd);
	contention_story("other/db");
	contention_story(key);
	expect_in_order(fd, story, buf, size);
	ck_assert_msg(!strstr(buf, "other/db"), "another prefix's event:\n%s", buf);
	ck_assert_msg(!strchr(buf, '\033'), "an escape reached the output:\n%s", buf);
	stop_watch(pid, fd);
	hasp_close(probe);
}

START_TEST(json_lines_tell_the_story_in_order)
{
	static const char *const story[] = {
		"\"event\":\"granted\",", "\"event\":\"queued\",", "\"owner\":\"bob\"",
		"\"event\":\"released\",", "\"reason\":\"release\"", "\"event\":\"granted\",",
		"\"owner\":\"bob\"", "\"event\":\"queued\",", "\"owner\":\"carol\"",
		"\"event\":\"timeout\",", "\"event\":\"released\",", "\"reason\":\"disconnect\"",
		NULL,
	};
	char buf[65536] = "";

	watch_story(true, "story/db\x7f", story, buf, sizeof(buf));
	ck_assert_msg(strstr(buf, "\"key\":\"story/db\\u007f\""), "DEL not as \\u007f:\n%s", buf);
}
END_TEST

START_TEST(plain_lines_are_escaped)
{
	static const char *const story[] = {
		" granted story/\\e[2Jdb\\n exclusive ", " queued story/\\e[2Jdb\\n ", " owner bob",
		" released story/", " reason release", " granted story/", " waited ",
		" queued story/", " owner carol", " timeout story/", " released story/",
		" reason disconnect", NULL,
	};
	char buf[65536] = "";

	watch_story(false, "story/\033[2Jdb\n", story, buf, sizeof(buf));
}
END_TEST

START_TEST(the_daemons_end_is_69)
{
	hasp_client *probe = client_connect(daemon_.socket);
	int fd;
	pid_t pid = spawn_watch((char *const[]){ "hasp", "watch", NULL }, probe, &fd);
	int status;

	hasp_close(probe);
	daemon_stop(&daemon_);
	status = wait_child(pid, 10000);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 69, "status %#x", status);
	close(fd);
	daemon_start(&daemon_); /* for the teardown */
	setenv("HASP_SOCKET", daemon_.socket, 1);
}
END_TEST

START_TEST(bad_prefix_and_help)
{
	char out[8192];

	ck_assert_int_eq(RUN(out, "watch", "bad\xff"), 64);
	ck_assert_msg(strstr(out, "UTF-8"), "%s", out);
	ck_assert_int_eq(RUN(out, "watch", "a", "b"), 64);
	ck_assert_int_eq(RUN(out, "watch", "--help"), 0);
	ck_assert_msg(strstr(out, "--json"), "%s", out);
}
END_TEST

static Suite *cli_watch_suite(void)
{
	Suite *s = suite_create("cli-watch");
	TCase *tc = tcase_create("watch");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, json_lines_tell_the_story_in_order);
	tcase_add_test(tc, plain_lines_are_escaped);
	tcase_add_test(tc, the_daemons_end_is_69);
	tcase_add_test(tc, bad_prefix_and_help);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(cli_watch_suite());
}
