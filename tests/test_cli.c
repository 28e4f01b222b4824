/* The hasp command line tool against a real haspd. */
#include <check.h>
#include <errno.h>
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

/* A -w argument: ms in seconds, stretched by test_ms() for a slow tool. */
static void wait_arg(char *buf, size_t size, int ms)
{
	snprintf(buf, size, "%.3f", test_ms(ms) / 1000.0);
}

/* hasp lock holding job, its command telling its pid on a pipe. */
static pid_t spawn_holding(const char *flag, pid_t *cmd_pid)
{
	char *args[] = { "hasp", "lock", "-k", "job", "--owner", "carol", (char *)flag,
			 "-c", "echo $$ >&3; exec sleep 30", NULL };
	char buf[32] = "";
	int p[2];
	pid_t pid;

	if (!flag) /* no extra flag: shift the command up */
		memmove(&args[6], &args[7], 3 * sizeof(args[0]));
	ck_assert_int_eq(pipe(p), 0);
	pid = cli_spawn(args, p[1], -1);
	close(p[1]);
	ck_assert_msg(wait_readable(p[0], 5000), "the command under hasp lock did not start");
	ck_assert_int_gt(read(p[0], buf, sizeof(buf) - 1), 0);
	*cmd_pid = atoi(buf);
	ck_assert_int_gt(*cmd_pid, 0);
	close(p[0]);
	return pid;
}

START_TEST(exit_status_of_the_command)
{
	char out[4096];

	ck_assert_int_eq(RUN(out, "lock", "-k", "k", "--", "sh", "-c", "exit 3"), 3);
	ck_assert_int_eq(RUN(out, "lock", "-k", "k", "-c", "exit 0"), 0);
	ck_assert_int_eq(RUN(out, "lock", "-k", "k", "--", "/nonexistent/cmd"), 127);
}
END_TEST

/* A command line that is not UTF-8, or whose first 1024 bytes end inside a
 * character, still runs: the default message is cut at a character or
 * left out. An owner that is not UTF-8 is refused, naming the problem. */
START_TEST(command_lines_that_are_not_utf8)
{
	char out[4096], arg[1100];

	memset(arg, 'a', 1018);
	strcpy(arg + 1018, "\xc3\xa9"); /* é across byte 1024 of the message */
	ck_assert_int_eq(RUN(out, "lock", "-k", "k", "--", "echo", arg), 0);
	ck_assert_int_eq(RUN(out, "lock", "-k", "k", "--", "echo", "caf\xe9"), 0);
	ck_assert_int_ne(RUN(out, "lock", "-k", "k", "--owner", "j\xf6rg", "--", "true"), 0);
	ck_assert_msg(strstr(out, "UTF-8"), "'%s' does not say why", out);
}
END_TEST

START_TEST(nonblock_on_a_held_key)
{
	hasp_client *c = client_connect(daemon_.socket);
	char out[4096], want[32];

	hasp_lease_free(client_lock(c, "held", HASP_EXCLUSIVE)); /* held until c closes */
	/* Silent, as flock(1) is, when stderr is not a terminal... */
	ck_assert_int_eq(RUN(out, "lock", "-n", "-k", "held", "--", "true"), 1);
	ck_assert_str_eq(out, "");
	/* ...and naming the holder with --verbose. */
	ck_assert_int_eq(RUN(out, "lock", "--verbose", "-n", "-k", "held", "--", "true"), 1);
	snprintf(want, sizeof(want), "pid %d", (int)getpid());
	ck_assert_msg(strstr(out, want), "'%s' does not name the holder", out);
	ck_assert_int_eq(RUN(out, "lock", "-n", "-E", "7", "-k", "held", "--", "true"), 7);
	hasp_close(c);
}
END_TEST

START_TEST(wait_times_out)
{
	hasp_client *c = client_connect(daemon_.socket);
	char out[4096];
	int64_t t0 = now_us(), dt;

	hasp_lease_free(client_lock(c, "held", HASP_EXCLUSIVE)); /* held until c closes */
	ck_assert_int_eq(RUN(out, "lock", "--verbose", "-w", "0.3", "-k", "held", "--", "true"), 1);
	dt = now_us() - t0;
	ck_assert_msg(dt >= 300000 && dt < test_ms(2000) * 1000LL, "-w 0.3 took %lld µs",
		      (long long)dt);
	ck_assert_ptr_nonnull(strstr(out, "timed out"));
	hasp_close(c);
}
END_TEST

START_TEST(shared_coexists_exclusive_does_not)
{
	hasp_client *c = client_connect(daemon_.socket);
	char out[4096];

	hasp_lease_free(client_lock(c, "sh", HASP_SHARED)); /* held until c closes */
	ck_assert_int_eq(RUN(out, "lock", "-s", "-n", "-k", "sh", "--", "true"), 0);
	ck_assert_int_eq(RUN(out, "lock", "-n", "-k", "sh", "--", "true"), 1);
	ck_assert_int_eq(RUN(out, "lock", "-x", "-n", "-k", "sh", "--", "true"), 1);
	hasp_close(c);
}
END_TEST

START_TEST(ls_json_shows_the_holder)
{
	char out[1 << 15];
	pid_t cmd, hasp = spawn_holding(NULL, &cmd);
	json_t *res, *h;

	ck_assert_int_eq(RUN(out, "ls", "--json"), 0);
	res = json_loads(out, 0, NULL);
	ck_assert_msg(res, "not JSON: %s", out);
	h = json_array_get(json_object_get(json_array_get(res, 0), "holders"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(res, 0), "key")), "job");
	ck_assert_str_eq(json_string_value(json_object_get(h, "owner")), "carol");
	ck_assert_int_eq(json_integer_value(json_object_get(h, "pid")), hasp);
	json_decref(res);
	ck_assert_int_eq(RUN(out, "ls"), 0);
	ck_assert_ptr_nonnull(strstr(out, "carol"));
	ck_assert_ptr_nonnull(strstr(out, "exec sleep 30")); /* the default message */
	kill(cmd, SIGKILL);
	wait_child(hasp, 5000);
}
END_TEST

START_TEST(lease_outlives_killed_hasp_until_the_command_ends)
{
	char out[4096], w[32];
	pid_t cmd, hasp = spawn_holding(NULL, &cmd);
	int64_t t0, dt;

	kill(hasp, SIGKILL);
	wait_child(hasp, 5000);
	/* The command still runs, so the lease still holds. */
	ck_assert_int_eq(RUN(out, "lock", "-n", "-k", "job", "--", "true"), 1);
	/* Both gone: the next one gets in at once. */
	wait_arg(w, sizeof(w), 5000);
	kill(cmd, SIGKILL);
	t0 = now_us();
	ck_assert_int_eq(RUN(out, "lock", "-w", w, "-k", "job", "--", "true"), 0);
	dt = now_us() - t0;
	ck_assert_msg(dt < test_ms(2000) * 1000LL, "waited %lld µs after the holder died",
		      (long long)dt);
}
END_TEST

START_TEST(close_flag_ties_the_lease_to_hasp)
{
	char out[4096], w[32];
	pid_t cmd, hasp = spawn_holding("-o", &cmd);

	kill(hasp, SIGKILL);
	wait_child(hasp, 5000);
	/* The command runs on, but with -o it does not hold the session. */
	wait_arg(w, sizeof(w), 5000);
	ck_assert_int_eq(RUN(out, "lock", "-w", w, "-k", "job", "--", "true"), 0);
	kill(cmd, SIGKILL);
}
END_TEST

/* haspd dies under a running command: hasp stops it (SIGTERM), says why,
 * and exits 75. */
START_TEST(a_lease_lost_with_haspd_stops_the_command)
{
	char *args[] = { "hasp", "lock", "-k", "job", "-c", "echo $$ >&3; exec sleep 30", NULL };
	char buf[32] = "", out[4096] = "";
	int ready[2], output[2], status;
	pid_t hasp, cmd;

	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(output), 0);
	hasp = cli_spawn(args, ready[1], output[1]);
	close(ready[1]);
	close(output[1]);
	ck_assert_msg(wait_readable(ready[0], 5000), "the command under hasp lock did not start");
	ck_assert_int_gt(read(ready[0], buf, sizeof(buf) - 1), 0);
	cmd = atoi(buf);
	ck_assert_int_gt(cmd, 0);
	kill(daemon_.pid, SIGKILL);
	wait_child(daemon_.pid, 5000);
	status = wait_child(hasp, 5000);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 75, "status %#x", status);
	ck_assert(kill(cmd, 0) < 0 && errno == ESRCH); /* stopped, and reaped by hasp */
	ck_assert_msg(wait_output(output[0], "haspd went away", 5000, out, sizeof(out)),
		      "hasp said: %s", out);
	close(ready[0]);
	close(output[0]);
	daemon_.pid = daemon_spawn(daemon_.socket, -1); /* for teardown */
	ck_assert(wait_socket(daemon_.socket, DAEMON_START_MS));
}
END_TEST

START_TEST(usage_and_unreachable)
{
	char out[4096];

	ck_assert_int_eq(RUN(out, "lock"), 64);
	ck_assert_ptr_nonnull(strstr(out, "FILE, a -k KEY"));
	ck_assert_int_eq(RUN(out, "lock", "some-file"), 64); /* no command */
	ck_assert_ptr_nonnull(strstr(out, "needs a command"));
	ck_assert_int_eq(RUN(out, "lock", "-k", "x"), 64);
	ck_assert_int_eq(RUN(out, "lock", "-w", "soon", "-k", "x", "--", "true"), 64);
	ck_assert_int_eq(RUN(out, "frobnicate"), 64);
	ck_assert_int_eq(RUN(out, "lock", "--help"), 0);
	ck_assert_ptr_nonnull(strstr(out, "Usage: hasp lock"));
	ck_assert_int_eq(RUN(out, "--help"), 0);
	ck_assert_ptr_nonnull(strstr(out, "ls"));
	ck_assert_int_eq(RUN(out, "--socket", "/nonexistent/haspd.sock", "ping"), 69);
	ck_assert_ptr_nonnull(strstr(out, "is haspd running?"));
	ck_assert_int_eq(RUN(out, "ping"), 0);
	ck_assert_int_eq(RUN(out, "stats", "--json"), 0);
	ck_assert_ptr_nonnull(strstr(out, "\"counters\""));
}
END_TEST

/* flock(1)'s other spellings of -n and -w, and a key given twice. */
START_TEST(flock_spellings_and_one_key)
{
	hasp_client *c = client_connect(daemon_.socket);
	char out[4096];

	hasp_lease_free(client_lock(c, "held", HASP_EXCLUSIVE)); /* held until c closes */
	ck_assert_int_eq(RUN(out, "lock", "--nb", "-k", "held", "--", "true"), 1);
	ck_assert_int_eq(RUN(out, "lock", "--nonblocking", "-k", "held", "--", "true"), 1);
	ck_assert_int_eq(RUN(out, "lock", "--wait", "0.05", "--verbose", "-k", "held", "--", "true"), 1);
	ck_assert_ptr_nonnull(strstr(out, "timed out"));
	ck_assert_int_eq(RUN(out, "lock", "--nb", "-k", "free", "--", "true"), 0);
	/* One key twice: an error (two keys are one lease over both). */
	ck_assert_int_eq(RUN(out, "lock", "-k", "a", "-k", "a", "--", "true"), 64);
	ck_assert_ptr_nonnull(strstr(out, "twice"));
	hasp_close(c);
}
END_TEST

/* The command finds its lease in its environment: the id and fence are the
 * ones list shows for it, and the key or path is named. */
START_TEST(the_command_learns_its_lease)
{
	char out[16384], path[256], script[512], want[64];
	unsigned long long lease = 0, fence = 0;
	char key[64] = "";

	/* The lease as list shows it, from inside the command. */
	snprintf(script, sizeof(script), "echo \"$HASP_LEASE $HASP_FENCE $HASP_KEY "
		 "${HASP_PATH-none}\"; %s ls --json", cli_path());
	ck_assert_int_eq(RUN(out, "lock", "-k", "envkey", "--", "sh", "-c", script), 0);
	ck_assert_int_eq(sscanf(out, "%llu %llu %63s", &lease, &fence, key), 3);
	ck_assert_str_eq(key, "envkey");
	ck_assert_ptr_nonnull(strstr(out, " none\n"));
	snprintf(want, sizeof(want), "\"lease\":%llu,", lease);
	ck_assert_msg(strstr(out, want), "%s not in %s", want, out);
	snprintf(want, sizeof(want), "\"fence\":%llu,", fence);
	ck_assert_msg(strstr(out, want), "%s not in %s", want, out);
	snprintf(path, sizeof(path), "%s/envfile", daemon_.dir);
	ck_assert_int_eq(RUN(out, "lock", path, "-c",
			     "echo \"$HASP_LEASE ${HASP_KEY-none} $HASP_PATH\""), 0);
	ck_assert_ptr_nonnull(strstr(out, " none "));
	ck_assert_ptr_nonnull(strstr(out, path));
}
END_TEST

/* A place on a semaphore: hasp lock -k KEY --limit N, beside a holder that
 * took one through libhasp; busy when the places are taken; a wrong limit
 * is refused naming the key's; ls shows the limit. */
START_TEST(lock_a_place_on_a_semaphore)
{
	struct hasp_acquire_options o = HASP_ACQUIRE_OPTIONS_INIT;
	hasp_client *c = client_connect(daemon_.socket), *c2 = client_connect(daemon_.socket);
	hasp_lease *l = NULL, *l2 = NULL;
	char out[4096];

	o.limit = 2;
	ck_assert_int_eq(hasp_acquire(c, "pool", &o, &l), 0);
	ck_assert_int_eq(RUN(out, "lock", "-k", "pool", "--limit", "2", "-n", "-c",
			     "\"$HASP_CLI\" ls pool"), 0);
	ck_assert_msg(strstr(out, "limit 2"), "ls shows no limit: '%s'", out);
	ck_assert_int_eq(hasp_acquire(c2, "pool", &o, &l2), 0);
	ck_assert_int_eq(RUN(out, "lock", "-k", "pool", "--limit", "2", "-n", "-c", "true"), 1);
	ck_assert_int_eq(RUN(out, "lock", "-k", "pool", "--limit", "3", "-n", "-c", "true"), 64);
	ck_assert_msg(strstr(out, "semaphore with limit 2"), "'%s' names no limit", out);
	ck_assert_int_eq(RUN(out, "lock", "-k", "pool", "-n", "-c", "true"), 64);
	ck_assert_int_eq(hasp_unlock(c2, l2), 0);
	ck_assert_int_eq(RUN(out, "lock", "-k", "pool", "--limit", "2", "-c", "true"), 0);
	/* Usage: a limit in range, on a key, exclusive. */
	ck_assert_int_eq(RUN(out, "lock", "-k", "pool", "--limit", "0", "-c", "true"), 64);
	ck_assert_int_eq(RUN(out, "lock", "-k", "pool", "--limit", "10001", "-c", "true"), 64);
	ck_assert_int_eq(RUN(out, "lock", "-s", "-k", "pool", "--limit", "2", "-c", "true"), 64);
	ck_assert_int_eq(RUN(out, "lock", "--limit", "2", "/tmp", "-c", "true"), 64);
	ck_assert_msg(strstr(out, "-k KEY"), "'%s'", out);
	ck_assert_int_eq(hasp_unlock(c, l), 0);
	hasp_close(c);
	hasp_close(c2);
}
END_TEST

static Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("hasp");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, exit_status_of_the_command);
	tcase_add_test(tc, command_lines_that_are_not_utf8);
	tcase_add_test(tc, nonblock_on_a_held_key);
	tcase_add_test(tc, flock_spellings_and_one_key);
	tcase_add_test(tc, the_command_learns_its_lease);
	tcase_add_test(tc, wait_times_out);
	tcase_add_test(tc, shared_coexists_exclusive_does_not);
	tcase_add_test(tc, ls_json_shows_the_holder);
	tcase_add_test(tc, lease_outlives_killed_hasp_until_the_command_ends);
	tcase_add_test(tc, close_flag_ties_the_lease_to_hasp);
	tcase_add_test(tc, a_lease_lost_with_haspd_stops_the_command);
	tcase_add_test(tc, usage_and_unreachable);
	tcase_add_test(tc, lock_a_place_on_a_semaphore);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(cli_suite());
}
