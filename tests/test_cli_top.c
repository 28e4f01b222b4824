/* hasp top against a real haspd (issue 18): --once's snapshot shows a
 * holder and a waiter, escapes client text, and the live view runs in a
 * terminal until 'q'. */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
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

static void never_granted(hasp_client *c, hasp_request *q, int r, hasp_lease *l, void *u)
{
	(void)c, (void)q, (void)u;
	ck_abort_msg("the waiter was answered (%d) while the key was held", r);
	hasp_lease_free(l);
}

/* A waiter on key, owned by owner, queued behind its holder: in the
 * daemon's queue when this returns. */
static hasp_client *queue_waiter(hasp_client *watcher, const char *key, const char *owner)
{
	struct hasp_acquire_options o = HASP_ACQUIRE_OPTIONS_INIT;
	hasp_client *c = client_connect(daemon_.socket);

	o.owner = owner;
	ck_assert_int_eq(hasp_lock_async(c, key, &o, never_granted, NULL, NULL), 0);
	ck_assert_int_eq(hasp_client_process(c), 0); /* written */
	wait_gauge(watcher, "waiters", 1, 5000);
	return c;
}

/* The line of out that holds needle, in line (cut to size); false if none. */
static bool line_with(const char *out, const char *needle, char *line, size_t size)
{
	const char *p = strstr(out, needle), *start, *end;

	if (!p)
		return false;
	for (start = p; start > out && start[-1] != '\n'; start--)
		;
	end = strchr(p, '\n');
	snprintf(line, size, "%.*s", (int)(end ? end - start : (long)strlen(start)), start);
	return true;
}

START_TEST(once_shows_holders_waiters_and_escapes)
{
	static const char evil[] = "ev\033[31mil\nkey";
	hasp_client *holder = client_connect(daemon_.socket), *waiter;
	hasp_lease *l = client_lock(holder, "db", HASP_EXCLUSIVE);
	hasp_lease *e = client_lock(holder, evil, HASP_EXCLUSIVE);
	char out[16384], line[512], *holders;

	waiter = queue_waiter(holder, "db", "waiter-bob");
	ck_assert_int_eq(RUN(out, "top", "--once"), 0);
	ck_assert_msg(line_with(out, "waiter-bob", line, sizeof(line)), "no waiter in:\n%s", out);
	ck_assert_msg(strncmp(line, "db ", 3) == 0 && strstr(line, "waiting"),
		      "the waiter's line is not db's: '%s'", line);
	ck_assert_msg(strstr(out, "LONGEST WAITS") && strstr(out, "HOLDERS"), "%s", out);
	/* This haspd reports its busiest keys: db among them, granted once. */
	ck_assert_msg(line_with(out, "BUSIEST KEY", line, sizeof(line)), "no keys:\n%s", out);
	ck_assert_msg(strstr(out, "\ndb                                      1 "),
		      "db's row in the busiest keys:\n%s", out);
	ck_assert_msg(strstr(out, "waiters 1"), "the header misses the waiter:\n%s", out);
	holders = strstr(out, "HOLDERS");
	ck_assert_msg(holders && line_with(holders, "ev\\e[31mil\\nkey", line, sizeof(line)) &&
		      strstr(line, "held"), "the evil key is not shown escaped:\n%s", out);
	ck_assert_msg(!strchr(out, '\033'), "an escape reached the output:\n%s", out);
	ck_assert_msg(strstr(out, "rates: none"), "--once says no rates:\n%s", out);
	hasp_close(waiter);
	hasp_lease_free(e);
	hasp_lease_free(l);
	hasp_close(holder);
}
END_TEST

START_TEST(once_with_nothing_held)
{
	char out[8192];

	ck_assert_int_eq(RUN(out, "top", "--once"), 0);
	ck_assert_msg(strstr(out, "sessions") && strstr(out, "(none)"), "%s", out);
}
END_TEST

START_TEST(bad_arguments)
{
	char out[8192];

	ck_assert_int_eq(RUN(out, "top", "--delay", "0"), 64);
	ck_assert_int_eq(RUN(out, "top", "extra"), 64);
	ck_assert_int_eq(RUN(out, "top", "--help"), 0);
	ck_assert_msg(strstr(out, "--once"), "%s", out);
}
END_TEST

/* hasp with args on a new pseudo-terminal of 30x100: its pid; the
 * master in *ret_master, a descriptor of the terminal in *ret_tty. */
static pid_t spawn_in_pty(char *const args[], int *ret_master, int *ret_tty)
{
	struct winsize ws = { .ws_row = 30, .ws_col = 100 };
	int m = posix_openpt(O_RDWR | O_NOCTTY), t;
	pid_t pid;

	ck_assert_int_ge(m, 0);
	ck_assert_int_eq(grantpt(m), 0);
	ck_assert_int_eq(unlockpt(m), 0);
	t = open(ptsname(m), O_RDWR | O_NOCTTY);
	ck_assert_int_ge(t, 0);
	ck_assert_int_eq(ioctl(t, TIOCSWINSZ, &ws), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		setsid();
		ioctl(t, TIOCSCTTY, 0);
		dup2(t, 0);
		dup2(t, 1);
		dup2(t, 2);
		execv(cli_path(), args);
		_exit(127);
	}
	*ret_master = m;
	*ret_tty = t;
	return pid;
}

/* The terminal's mode is canonical with echo: as a shell wants it. */
static bool canonical(int tty)
{
	struct termios tio;

	return tcgetattr(tty, &tio) == 0 && (tio.c_lflag & ICANON) && (tio.c_lflag & ECHO);
}

/* Runs the live view in a terminal, sees it draw (the waiter among it),
 * ends it with end (a 'q', or a signal), and sees it exit 0 and leave the
 * terminal as it found it. */
static void live_view_until(int sig)
{
	hasp_client *holder = client_connect(daemon_.socket), *waiter;
	hasp_lease *l = client_lock(holder, "db", HASP_EXCLUSIVE);
	char buf[65536] = "";
	int m, t, status;
	pid_t pid;

	waiter = queue_waiter(holder, "db", "waiter-bob");
	pid = spawn_in_pty((char *const[]){ "hasp", "top", "-d", "0.2", NULL }, &m, &t);
	ck_assert_msg(wait_output(m, "waiter-bob", 10000, buf, sizeof(buf)),
		      "the view did not show the waiter: '%s'", buf);
	/* A second frame, with rates from two samples. */
	ck_assert_msg(wait_output(m, "grants/s", 10000, buf, sizeof(buf)),
		      "no rates after two samples: '%s'", buf);
	ck_assert_msg(!canonical(t), "the view left the terminal canonical");
	if (sig)
		ck_assert_int_eq(kill(pid, sig), 0);
	else
		ck_assert_int_eq(write(m, "q", 1), 1);
	ck_assert_msg(wait_output(m, "\033[?1049l", 10000, buf, sizeof(buf)),
		      "the view did not leave the alternate screen");
	status = wait_child(pid, 10000);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
	ck_assert_msg(canonical(t), "the terminal was not restored");
	close(m);
	close(t);
	hasp_close(waiter);
	hasp_lease_free(l);
	hasp_close(holder);
}

START_TEST(live_view_quits_on_q)
{
	live_view_until(0);
}
END_TEST

START_TEST(live_view_ends_on_sigterm)
{
	live_view_until(SIGTERM);
}
END_TEST

static Suite *cli_top_suite(void)
{
	Suite *s = suite_create("cli-top");
	TCase *tc = tcase_create("top");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, once_shows_holders_waiters_and_escapes);
	tcase_add_test(tc, once_with_nothing_held);
	tcase_add_test(tc, bad_arguments);
	tcase_add_test(tc, live_view_quits_on_q);
	tcase_add_test(tc, live_view_ends_on_sigterm);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(cli_top_suite());
}
