/* hasp checkout, checkin and renew, and hasp lock --ttl, against a real
 * haspd (with its default journal beside the socket), each hasp a process
 * of its own: the seed's checkout registry from separate shells, a file
 * checkout's real flock, --json, renew, a TTL running out, hasp lock
 * renewing its lease past its TTL and losing it when hasp stops, and the
 * exit codes. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_run.h"
#include "harness.h"
#include "hasp.h"

static struct daemon_proc daemon_;
static char file[512];

static void setup(void)
{
	daemon_start(&daemon_);
	setenv("HASP_SOCKET", daemon_.socket, 1);
	snprintf(file, sizeof(file), "%s/part-7.mcam", daemon_.dir);
}

/* The harness removes the socket, the fence file and the journal, and the
 * directory once the suite's file is gone too. */
static void teardown(void)
{
	daemon_stop(&daemon_);
	unlink(file);
	rmdir(daemon_.dir);
}

/* out is a token and a newline, and nothing else: the token into token. */
static void read_token(const char *out, char token[33])
{
	ck_assert_msg(strlen(out) == 33 && out[32] == '\n' &&
		      strspn(out, "0123456789abcdef") == 32, "not a token: '%s'", out);
	memcpy(token, out, 32);
	token[32] = '\0';
}

/* The first holder of name in the list, as JSON (a new reference), or NULL. */
static json_t *holder_of(const char *field, const char *name)
{
	hasp_client *c = client_connect(daemon_.socket);
	json_t *list, *r, *found = NULL;
	char *text = NULL;
	size_t i;

	ck_assert_int_eq(hasp_list_json(c, &text), 0);
	list = json_loads(text, 0, NULL);
	ck_assert_ptr_nonnull(list);
	json_array_foreach(list, i, r)
		if (!found && json_is_string(json_object_get(r, field)) &&
		    strcmp(json_string_value(json_object_get(r, field)), name) == 0)
			found = json_incref(json_array_get(json_object_get(r, "holders"), 0));
	json_decref(list);
	free(text);
	hasp_close(c);
	return found;
}

/* The seed: Alice checks out part-7.mcam with a message; Bob is told who
 * has it since when and why; Alice checks it in from another process by
 * its token; then Bob gets it. */
START_TEST(the_seed_checkout_registry)
{
	char out[4096], token[33], *text;
	json_t *h;
	int r;

	ck_assert_int_eq(RUN(out, "checkout", "-k", "part-7.mcam", "--owner", "alice",
			     "--message", "fixing fillets"), 0);
	read_token(out, token);
	/* It outlives the process that checked it out. */
	h = holder_of("key", "part-7.mcam");
	ck_assert_ptr_nonnull(h);
	ck_assert(json_is_true(json_object_get(h, "detached")));
	ck_assert_str_eq(json_string_value(json_object_get(h, "owner")), "alice");
	text = json_dumps(h, 0);
	ck_assert_ptr_null(strstr(text, token)); /* never shown */
	free(text);
	json_decref(h);
	ck_assert_int_eq(RUN(out, "ls", "part-7.mcam"), 0);
	ck_assert_msg(strstr(out, " checkout ") && strstr(out, "fixing fillets"), "%s", out);

	r = RUN(out, "checkout", "-n", "-k", "part-7.mcam", "--owner", "bob");
	ck_assert_msg(r == 1, "status %d: %s", r, out);
	ck_assert_msg(strstr(out, "checked out by alice (uid ") &&
		      strstr(out, ": fixing fillets") && strstr(out, " since "), "%s", out);

	ck_assert_int_eq(RUN(out, "checkin", "--token", token), 0);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(RUN(out, "checkout", "-n", "-k", "part-7.mcam", "--owner", "bob"), 0);
	read_token(out, token);
	/* Bob's own, by the key, from yet another process. */
	ck_assert_int_eq(RUN(out, "checkin", "-k", "part-7.mcam"), 0);
	ck_assert_int_eq(RUN(out, "checkin", "--token", token), 1);
	ck_assert_msg(strstr(out, "hasp: "), "%s", out);
}
END_TEST

/* Whether the list shows a waiter on key within timeout_ms. */
static bool wait_for_waiter(const char *key, int timeout_ms)
{
	hasp_client *c = client_connect(daemon_.socket);
	int64_t end = now_ms() + test_ms(timeout_ms);
	bool found = false;

	do {
		struct hasp_list_options o = HASP_LIST_OPTIONS_INIT;
		char *text = NULL, *next = NULL;

		o.prefix = key;
		ck_assert_int_eq(hasp_list_page_json(c, &o, &text, &next), 0);
		found = strstr(text, "\"waiters\":[{") != NULL;
		free(text);
		free(next);
		if (!found)
			usleep(5000);
	} while (!found && now_ms() < end);
	hasp_close(c);
	return found;
}

/* The seed across a crash: a checkout survives kill -9 and a restart of
 * haspd; Bob is still told who has it; its token still checks it in. */
START_TEST(a_checkout_survives_a_restart_of_haspd)
{
	char out[4096], token[33];
	int r;

	ck_assert_int_eq(RUN(out, "checkout", "-k", "part-7.mcam", "--owner", "alice",
			     "--message", "fixing fillets"), 0);
	read_token(out, token);
	ck_assert_int_eq(kill(daemon_.pid, SIGKILL), 0);
	wait_child(daemon_.pid, DAEMON_START_MS);
	daemon_.pid = daemon_spawn(daemon_.socket, -1);
	ck_assert_msg(wait_socket(daemon_.socket, DAEMON_START_MS), "haspd did not start again");

	r = RUN(out, "checkout", "-n", "-k", "part-7.mcam", "--owner", "bob");
	ck_assert_msg(r == 1, "status %d: %s", r, out);
	ck_assert_msg(strstr(out, "checked out by alice (uid ") && strstr(out, ": fixing fillets"),
		      "%s", out);
	ck_assert_int_eq(RUN(out, "checkin", "--token", token), 0);
	ck_assert_int_eq(RUN(out, "checkout", "-n", "-k", "part-7.mcam", "--owner", "bob"), 0);
	/* Granted (the restored checkout among them) is ended plus held. */
	ck_assert_int_eq(RUN(out, "stats"), 0);
	ck_assert_msg(strstr(out, "  granted                  2\n") &&
		      strstr(out, "    restored               1\n") &&
		      strstr(out, "  ended                    1\n") &&
		      strstr(out, "    released               1\n") &&
		      strstr(out, "  held                     1\n"), "%s", out);
}
END_TEST

/* A waiting checkout is granted at once when the holder checks in. */
START_TEST(a_waiting_checkout_is_granted_at_checkin)
{
	char out[4096], token[33];
	int p[2];
	pid_t bob;

	ck_assert_int_eq(RUN(out, "checkout", "-k", "k"), 0);
	read_token(out, token);
	ck_assert_int_eq(pipe(p), 0);
	bob = cli_spawn((char *const[]){ "hasp", "checkout", "--verbose", "-w", "30", "-k", "k",
					 NULL }, -1, p[1]);
	close(p[1]);
	ck_assert(wait_for_waiter("k", 5000));
	/* After a second, --verbose says for whom it waits. */
	out[0] = '\0';
	ck_assert_msg(wait_output(p[0], "\n", 10000, out, sizeof(out)), "%s", out);
	ck_assert_msg(strstr(out, "hasp: waiting for 'k', held by a checkout of pid "), "%s", out);
	ck_assert_int_eq(RUN(out, "checkin", "--token", token), 0);
	ck_assert_int_eq(run_collect(bob, p[0], out, sizeof(out)), 0);
	read_token(out, token);
	ck_assert_int_eq(RUN(out, "checkin", "--token", token), 0);
}
END_TEST

/* FILE is created and flocked for real while checked out, by no running
 * process; checkin FILE releases it. */
START_TEST(a_file_checkout_holds_the_real_flock)
{
	char out[4096], token[33];
	int fd, r;

	ck_assert_int_eq(RUN(out, "checkout", file), 0);
	read_token(out, token);
	fd = open(file, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0); /* created */
	ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), -1);
	ck_assert_int_eq(errno, EWOULDBLOCK);
	r = RUN(out, "checkout", "-n", file);
	ck_assert_msg(r == 1, "status %d: %s", r, out);

	ck_assert_int_eq(RUN(out, "checkin", file), 0);
	/* The daemon dropped its flock before it answered. */
	ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
	close(fd);
	ck_assert_int_eq(RUN(out, "checkin", "--token", token), 1);
	/* --json names the file by its absolute path. */
	ck_assert_int_eq(RUN(out, "checkout", "--json", file), 0);
	ck_assert_msg(strstr(out, "\"path\":\"") && strstr(out, "/part-7.mcam\""), "%s", out);
	ck_assert_int_eq(RUN(out, "checkin", file), 0);
	/* A checkin names the file, never creates one. */
	unlink(file);
	r = RUN(out, "checkin", file);
	ck_assert_msg(r == 66, "status %d: %s", r, out);
	ck_assert_int_eq(access(file, F_OK), -1);
}
END_TEST

/* --json: the grant's members as one object, and what it is on. */
START_TEST(json_prints_the_grant)
{
	char out[4096];
	json_t *o;

	ck_assert_int_eq(RUN(out, "checkout", "--json", "--ttl", "60", "-s", "-k", "j"), 0);
	o = json_loads(out, 0, NULL);
	ck_assert_msg(o, "not JSON: %s", out);
	ck_assert_int_gt(json_integer_value(json_object_get(o, "lease")), 0);
	ck_assert_int_gt(json_integer_value(json_object_get(o, "fence")), 0);
	ck_assert_str_eq(json_string_value(json_object_get(o, "mode")), "shared");
	ck_assert_str_eq(json_string_value(json_object_get(o, "key")), "j");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "expires_ms")), 60000);
	ck_assert_int_eq(strlen(json_string_value(json_object_get(o, "token"))), 32);
	/* Shared: a second shared checkout coexists. */
	ck_assert_int_eq(RUN(out, "checkout", "-n", "-s", "-k", "j"), 0);
	json_decref(o);
}
END_TEST

/* renew pushes the end back, by key or token; list shows the TTL. */
START_TEST(renew_pushes_back_the_end)
{
	char out[4096], token[33];
	json_t *o, *h;

	ck_assert_int_eq(RUN(out, "checkout", "--ttl", "30", "-k", "r"), 0);
	read_token(out, token);
	ck_assert_int_eq(RUN(out, "renew", "--ttl", "3600", "-k", "r", "--json"), 0);
	o = json_loads(out, 0, NULL);
	ck_assert_msg(o, "not JSON: %s", out);
	ck_assert_int_gt(json_integer_value(json_object_get(o, "expires_ms")), 30000);
	ck_assert_int_le(json_integer_value(json_object_get(o, "expires_ms")), 3600000);
	json_decref(o);
	h = holder_of("key", "r");
	ck_assert_ptr_nonnull(h);
	ck_assert_int_eq(json_integer_value(json_object_get(h, "ttl_ms")), 3600000);
	ck_assert_int_gt(json_integer_value(json_object_get(h, "expires_in_ms")), 30000);
	json_decref(h);
	ck_assert_int_eq(RUN(out, "ls", "r"), 0);
	ck_assert_msg(strstr(out, "expires in "), "%s", out);
	/* Its own TTL again, by token; no output without --json. */
	ck_assert_int_eq(RUN(out, "renew", "--token", token), 0);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(RUN(out, "checkin", "--token", token), 0);
	ck_assert_int_eq(RUN(out, "renew", "--token", token), 1);
	ck_assert_int_eq(RUN(out, "renew", "-k", "r"), 1);
}
END_TEST

/* A checkout whose TTL runs out ends: a waiter is granted then, not
 * before. */
START_TEST(a_checkout_expires_with_its_ttl)
{
	char out[4096], token[33];
	int64_t start;
	int r;

	start = now_ms(); /* before the grant: the end is 300 ms after it */
	ck_assert_int_eq(RUN(out, "checkout", "--ttl", "0.3", "-k", "e"), 0);
	r = RUN(out, "checkout", "-w", "30", "-k", "e");
	ck_assert_msg(r == 0, "status %d: %s", r, out);
	ck_assert_int_ge(now_ms() - start, 300);
	read_token(out, token);
	ck_assert_int_eq(RUN(out, "checkin", "--token", token), 0);
	ck_assert_int_eq(RUN(out, "stats"), 0);
	ck_assert_msg(strstr(out, "  granted                  2\n") &&
		      strstr(out, "  ended                    2\n") &&
		      strstr(out, "    expired                1\n"), "%s", out);
}
END_TEST

/* hasp lock --ttl with a command that says its pid on fd 3 and runs until
 * killed; hasp's output on *out_fd. */
static pid_t spawn_lock_ttl(const char *ttl, pid_t *cmd_pid, int *out_fd)
{
	char *args[] = { "hasp", "lock", "--ttl", (char *)ttl, "--kill-after", "1", "-k", "t",
			 "--", "/bin/sh", "-c", "echo $$ >&3; exec sleep 600", NULL };
	char buf[32] = "";
	int ready[2], output[2];
	pid_t pid;

	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(output), 0);
	pid = cli_spawn(args, ready[1], output[1]);
	close(ready[1]);
	close(output[1]);
	ck_assert_msg(wait_readable(ready[0], test_ms(5000)), "the command did not start");
	ck_assert_int_gt(read(ready[0], buf, sizeof(buf) - 1), 0);
	close(ready[0]);
	*cmd_pid = atoi(buf);
	ck_assert_int_gt(*cmd_pid, 0);
	*out_fd = output[0];
	return pid;
}

/* While the command runs, hasp renews its lease: another request waits in
 * vain for three TTLs, and the list shows the lease's TTL; when the
 * command ends, the lease goes with it. */
START_TEST(lock_ttl_keeps_the_lease_while_the_command_runs)
{
	char out[4096];
	pid_t hasp, cmd;
	json_t *h;
	int fd, r;

	hasp = spawn_lock_ttl("1", &cmd, &fd);
	h = holder_of("key", "t");
	ck_assert_ptr_nonnull(h);
	ck_assert_int_eq(json_integer_value(json_object_get(h, "ttl_ms")), 1000);
	ck_assert(json_is_integer(json_object_get(h, "expires_in_ms")));
	ck_assert_int_le(json_integer_value(json_object_get(h, "expires_in_ms")), 1000);
	json_decref(h);
	r = RUN(out, "lock", "-w", "3", "-k", "t", "true");
	ck_assert_msg(r == 1, "the lease was not kept past its TTL: status %d: %s", r, out);
	kill(cmd, SIGTERM);
	ck_assert_int_eq(run_collect(hasp, fd, out, sizeof(out)), 128 + SIGTERM);
	ck_assert_int_eq(RUN(out, "lock", "-n", "-k", "t", "true"), 0);
	/* On a file too, with the command's status. */
	ck_assert_int_eq(RUN(out, "lock", "--ttl", "5", file, "sh", "-c", "exit 3"), 3);
}
END_TEST

/* A hasp that stops renewing (SIGSTOP) loses the lease when its TTL runs
 * out: the next waiter gets it, and hasp, woken, says it expired and stops
 * the command (--on-lost term), exiting 75. */
START_TEST(lock_ttl_loses_the_lease_when_hasp_stops)
{
	char out[4096];
	pid_t hasp, cmd;
	int fd, r;

	hasp = spawn_lock_ttl("0.5", &cmd, &fd);
	ck_assert_int_eq(kill(hasp, SIGSTOP), 0);
	r = RUN(out, "lock", "-w", "30", "-k", "t", "true");
	ck_assert_msg(r == 0, "status %d: %s", r, out);
	ck_assert_int_eq(kill(hasp, SIGCONT), 0);
	r = run_collect(hasp, fd, out, sizeof(out));
	ck_assert_msg(r == 75, "status %d: %s", r, out);
	ck_assert_msg(strstr(out, "the lease on 't' expired"), "%s", out);
	ck_assert_int_eq(kill(cmd, 0), -1); /* stopped, and reaped by hasp */
}
END_TEST

/* 1 for no such checkout or a wrong token; 64 for what the command line
 * gives; 69 without a daemon. */
START_TEST(exit_codes)
{
	char out[4096];

	ck_assert_int_eq(RUN(out, "checkin", "--token", "00000000000000000000000000000000"), 1);
	ck_assert_int_eq(RUN(out, "checkin", "-k", "nothing"), 1);
	ck_assert_int_eq(RUN(out, "renew", "--ttl", "5", "-k", "nothing"), 1);
	ck_assert_int_eq(RUN(out, "checkin", "--token", "short"), 64);
	ck_assert_int_eq(RUN(out, "checkin", "--token", "0000000000000000000000000000000G"), 64);
	ck_assert_int_eq(RUN(out, "checkin", "-k", "a", file), 64);
	ck_assert_int_eq(RUN(out, "checkin"), 64);
	ck_assert_int_eq(RUN(out, "checkout", "-k", "a", "--ttl", "0"), 64);
	ck_assert_int_eq(RUN(out, "checkout", "-k", ""), 64);
	ck_assert_int_eq(RUN(out, "renew", "--ttl", "-1", "-k", "a"), 64);
	ck_assert_int_eq(RUN(out, "lock", "--ttl", "5", "-F", "-k", "a", "true"), 64);
	ck_assert_int_eq(RUN(out, "lock", "--ttl", "5", "9"), 64);
	/* A checkout without a TTL has none to renew again. */
	ck_assert_int_eq(RUN(out, "checkout", "-k", "a"), 0);
	ck_assert_int_eq(RUN(out, "renew", "-k", "a"), 1);
	ck_assert_int_eq(RUN(out, "checkin", "-k", "a"), 0);
	ck_assert_int_eq(RUN(out, "--socket", "/nonexistent/haspd.sock", "checkout", "-k", "a"),
			 69);
}
END_TEST

/* What a holder wrote reaches the terminal escaped. */
START_TEST(a_conflict_message_is_escaped)
{
	char out[4096];
	int r;

	ck_assert_int_eq(RUN(out, "checkout", "-k", "esc", "--owner", "m\x1b[2Jx", "--message",
			     "a\nb"), 0);
	r = RUN(out, "checkout", "-n", "-k", "esc");
	ck_assert_msg(r == 1, "status %d: %s", r, out);
	ck_assert_msg(strstr(out, "m\\e[2Jx") && strstr(out, "a\\nb"), "%s", out);
	ck_assert_ptr_null(strchr(out, '\x1b'));
	ck_assert_int_eq(RUN(out, "checkin", "-k", "esc"), 0);
}
END_TEST

static Suite *cli_checkout_suite(void)
{
	Suite *s = suite_create("cli-checkout");
	TCase *tc = tcase_create("checkout");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, the_seed_checkout_registry);
	tcase_add_test(tc, a_checkout_survives_a_restart_of_haspd);
	tcase_add_test(tc, a_waiting_checkout_is_granted_at_checkin);
	tcase_add_test(tc, a_file_checkout_holds_the_real_flock);
	tcase_add_test(tc, json_prints_the_grant);
	tcase_add_test(tc, renew_pushes_back_the_end);
	tcase_add_test(tc, a_checkout_expires_with_its_ttl);
	tcase_add_test(tc, lock_ttl_keeps_the_lease_while_the_command_runs);
	tcase_add_test(tc, lock_ttl_loses_the_lease_when_hasp_stops);
	tcase_add_test(tc, exit_codes);
	tcase_add_test(tc, a_conflict_message_is_escaped);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(cli_checkout_suite());
}
