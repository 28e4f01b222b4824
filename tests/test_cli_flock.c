/* hasp lock as a drop-in for flock(1), against a real haspd: the fd form in
 * a real subshell, flock's spellings and exit codes, --verbose, --no-fork,
 * and a lost lease stopping the command. The shell scripts find hasp in
 * $HASP and the lock file in $F. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_run.h"
#include "harness.h"
#include "hasp.h"

static struct daemon_proc daemon_;
static char file[512];

static void setup(void)
{
	char hasp[4096];

	daemon_start(&daemon_);
	setenv("HASP_SOCKET", daemon_.socket, 1);
	ck_assert_ptr_nonnull(realpath(cli_path(), hasp)); /* the scripts cd */
	setenv("HASP", hasp, 1);
	snprintf(file, sizeof(file), "%s/job.lock", daemon_.dir);
	setenv("F", file, 1);
}

static void teardown(void)
{
	daemon_stop(&daemon_);
}

/* Runs a shell script to completion (bounded); its output into out. */
static int sh_run(const char *script, char *out, size_t size)
{
	return run_capture("/bin/sh", (char *const[]){ "sh", "-c", (char *)script, NULL }, out,
			   size);
}

/* Starts a shell script in the background, its output on *out_fd. */
static pid_t sh_spawn(const char *script, int *out_fd)
{
	char *args[] = { "sh", "-c", (char *)script, NULL };
	int p[2];
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		setpgid(0, 0); /* for kill(-pid): the script and its children */
		dup2(p[1], 1);
		dup2(p[1], 2);
		execv("/bin/sh", args);
		_exit(127);
	}
	close(p[1]);
	*out_fd = p[0];
	return pid;
}

/* hasp lock with args, its command telling its pid on fd 3; output on
 * *out_fd. */
static pid_t spawn_lock(char *const args[], pid_t *cmd_pid, int *out_fd)
{
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

/* Whether the list shows the fd form's request waiting, named by its
 * descriptor, within timeout_ms. */
static bool wait_for_waiter(hasp_client *c, int timeout_ms)
{
	int64_t end = now_ms() + test_ms(timeout_ms);

	do {
		char *text = NULL;
		bool found;

		ck_assert_int_eq(hasp_list_json(c, &text), 0);
		found = strstr(text, "\"waiters\":[{") &&
			strstr(text, "\"message\":\"descriptor 9 of pid ");
		free(text);
		if (found)
			return true;
		usleep(5000);
	} while (now_ms() < end);
	return false;
}

/* The idiom: ( hasp lock -n 9 || exit 1; ... ) 9>FILE. The lock is on the
 * shell's descriptor: held while the subshell keeps fd 9 open, for flock(1)
 * and hasp alike, and gone with it. */
START_TEST(the_fd_form_lasts_as_long_as_the_descriptor)
{
	char out[4096];

	ck_assert_int_eq(sh_run("( \"$HASP\" lock -n 9 || exit 1\n"
				"  flock -n \"$F\" true && exit 10\n"      /* flock(1) sees it */
				"  \"$HASP\" lock -n \"$F\" true && exit 11\n" /* and hasp */
				"  \"$HASP\" lock -n 9 || exit 12\n"        /* the same description: again */
				"  exit 0\n"
				") 9>\"$F\" || exit $?\n"                 /* the subshell's verdict */
				"flock -n \"$F\" true || exit 13\n"         /* closed: free */
				"( \"$HASP\" lock -s -n 9 && \"$HASP\" lock -u 9 && flock -n \"$F\" true"
				" ) 9>\"$F\" || exit 14\n",
				out, sizeof(out)), 0);
	ck_assert_str_eq(out, "");
}
END_TEST

/* A description that holds the lock re-takes or converts it at once, as
 * with flock(2), even with a waiter queued (who waits for it). */
START_TEST(the_fd_form_relocks_its_own_description_at_once)
{
	char out[4096];
	int r = sh_run("( \"$HASP\" lock -n 9 || exit 1\n"
		       "  \"$HASP\" lock -w 20 \"$F\" true 9>&- & w=$!\n"
		       "  i=0; until \"$HASP\" ls --json | grep -q '\"waiters\":\\[{'; do\n"
		       "    i=$((i + 1)); [ $i -lt 1000 ] || exit 2; sleep 0.01; done\n"
		       "  \"$HASP\" lock -n 9 || exit 3\n"
		       "  \"$HASP\" lock -n -s 9 || exit 4\n"
		       "  \"$HASP\" lock -n 9 || exit 5\n"
		       "  exec 9>&-; wait $w || exit 6\n"
		       ") 9>\"$F\"", out, sizeof(out));

	ck_assert_msg(r == 0, "status %d: %s", r, out);
}
END_TEST

/* Getting it goes through hasp's queue: the fd form waits behind a holder,
 * is granted when it leaves, shuts out a later hasp request, and hands over
 * when the subshell's descriptor closes. */
START_TEST(the_fd_form_queues_fairly_and_hands_over_on_close)
{
	hasp_client *c1 = client_connect(daemon_.socket), *c2 = client_connect(daemon_.socket);
	struct hasp_lock_options o = HASP_LOCK_OPTIONS_INIT;
	hasp_lease *l1, *l2;
	char out[4096] = "";
	int fd;
	pid_t sh;

	ck_assert_int_eq(hasp_lock_file(c1, file, NULL, &l1), 0);
	sh = sh_spawn("( \"$HASP\" lock -w 20 9 || exit 1; echo locked; exec sleep 60 ) 9>\"$F\"",
		      &fd);
	ck_assert(wait_for_waiter(c2, 5000));
	ck_assert_int_eq(hasp_unlock(c1, l1), 0);
	ck_assert_msg(wait_output(fd, "locked", test_ms(5000), out, sizeof(out)), "%s", out);
	o.timeout_ms = 0;
	ck_assert_int_eq(hasp_lock_file(c2, file, &o, &l2), -HASP_E_BUSY);
	/* The descriptor closes with the subshell: the next one gets it. */
	kill(-sh, SIGKILL);
	wait_child(sh, 5000);
	o.timeout_ms = test_ms(5000);
	ck_assert_int_eq(hasp_lock_file(c2, file, &o, &l2), 0);
	hasp_lease_free(l2);
	close(fd);
	hasp_close(c1);
	hasp_close(c2);
}
END_TEST

START_TEST(the_fd_form_needs_an_open_descriptor)
{
	char out[4096];

	/* As flock(1): 65, the number named, and no file called 7. */
	int r = sh_run("cd \"$(dirname \"$F\")\" && exec \"$HASP\" lock -n 7 7>&-", out,
		       sizeof(out));

	ck_assert_msg(r == 65, "status %d: %s", r, out);
	ck_assert_msg(strstr(out, "7: Bad file descriptor"), "%s", out);
	snprintf(out, sizeof(out), "%s/7", daemon_.dir);
	ck_assert_int_eq(access(out, F_OK), -1);
	ck_assert_int_eq(RUN(out, "lock", "-u", file, "true"), 64);
}
END_TEST

/* 1 (or -E) only for busy or timed out; a typo is never mistaken for it. */
START_TEST(exit_codes_tell_a_conflict_from_a_mistake)
{
	char out[4096], path[600], big[1100];
	hasp_client *c = client_connect(daemon_.socket);
	hasp_lease *l;

	ck_assert_int_eq(hasp_lock_file(c, file, NULL, &l), 0);
	ck_assert_int_eq(RUN(out, "lock", "-n", file, "true"), 1);
	ck_assert_str_eq(out, ""); /* silent, as flock(1) */
	/* Options after FILE; -w 0 is -n. */
	ck_assert_int_eq(RUN(out, "lock", file, "-n", "-E", "7", "--", "true"), 7);
	ck_assert_int_eq(RUN(out, "lock", file, "-w", "0", "-E", "8", "true"), 8);
	hasp_lease_free(l);
	snprintf(path, sizeof(path), "%s/missing/x", daemon_.dir);
	ck_assert_int_eq(RUN(out, "lock", "-n", path, "true"), 66);
	snprintf(path, sizeof(path), "%s/fifo", daemon_.dir);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	ck_assert_int_eq(RUN(out, "lock", "-n", path, "true"), 66);
	ck_assert_int_eq(RUN(out, "lock", "-n", "-k", "", "true"), 64);
	memset(big, 'k', 1025);
	big[1025] = '\0';
	ck_assert_int_eq(RUN(out, "lock", "-n", "-k", big, "true"), 64);
	ck_assert_int_eq(RUN(out, "lock", "-n", "-k", "caf\xe9", "true"), 64);
	ck_assert_int_eq(RUN(out, "lock", "-n", "-k", "k", "--message", big, "true"), 64);
	big[257] = '\0';
	ck_assert_int_eq(RUN(out, "lock", "-n", "-k", "k", "--owner", big, "true"), 64);
	ck_assert_int_eq(RUN(out, "lock", "-F", "-o", "-k", "k", "true"), 64);
	ck_assert_int_eq(RUN(out, "lock", file, "-k", "k", "true"), 64); /* which one? */
	ck_assert_int_eq(RUN(out, "lock", "--on-lost", "maybe", "-k", "k", "true"), 64);
	ck_assert_int_eq(RUN(out, "lock", "-w", "-1", "-k", "k", "true"), 64);
	ck_assert_int_eq(RUN(out, "--socket", "/nonexistent/s", "lock", "-k", "k", "true"), 69);
	hasp_close(c);
}
END_TEST

/* A directory is a lock target, as flock(1) allows: a real flock on it. */
START_TEST(a_directory_is_locked_as_flock_locks_it)
{
	char out[4096];

	ck_assert_int_eq(RUN(out, "lock", daemon_.dir, "-c", "flock -n \"$(dirname \"$F\")\" true"),
			 1);
	ck_assert_int_eq(RUN(out, "lock", "-s", daemon_.dir, "-c",
			     "flock -s -n \"$(dirname \"$F\")\" true"), 0);
}
END_TEST

START_TEST(verbose_says_it_in_flocks_words)
{
	char out[4096];
	unsigned s, us;

	ck_assert_int_eq(RUN(out, "lock", "--verbose", "-k", "v", "true"), 0);
	ck_assert_msg(sscanf(out, "hasp: getting lock took %u.%6u seconds\n", &s, &us) == 2 &&
		      strstr(out, " seconds\nhasp: executing true\n"), "%s", out);
}
END_TEST

/* Installed as flock (a symbolic link), hasp is hasp lock, and says flock. */
START_TEST(installed_as_flock_it_is_flock)
{
	char out[4096], link[600];

	snprintf(link, sizeof(link), "%s/flock", daemon_.dir);
	ck_assert_int_eq(symlink(getenv("HASP"), link), 0);
	ck_assert_int_eq(run_capture(link, (char *const[]){ "flock", "--verbose", "-n", file,
							    "true", NULL }, out, sizeof(out)), 0);
	ck_assert_msg(strncmp(out, "flock: getting lock took ", 25) == 0 &&
		      strstr(out, "\nflock: executing true\n"), "%s", out);
	ck_assert_int_eq(run_capture(link, (char *const[]){ "flock", "-n", "99", NULL }, out,
				     sizeof(out)), 65);
	ck_assert_msg(strstr(out, "flock: 99: Bad file descriptor"), "%s", out);
}
END_TEST

/* -F: the command runs in hasp's place (the same pid) and holds the lease. */
START_TEST(no_fork_runs_the_command_in_hasps_place)
{
	char *args[] = { "hasp", "lock", "-F", "-k", "nf", "-c",
			 "echo $$ >&3; \"$HASP\" lock -n -k nf true; echo inner=$?", NULL };
	char out[4096] = "";
	pid_t hasp, cmd;
	int fd;

	hasp = spawn_lock(args, &cmd, &fd);
	ck_assert_int_eq(cmd, hasp);
	ck_assert_msg(wait_output(fd, "inner=1", test_ms(5000), out, sizeof(out)), "%s", out);
	ck_assert_int_eq(WEXITSTATUS(wait_child(hasp, 5000)), 0);
	close(fd);
}
END_TEST

/* The lease ends under the command: revoked. hasp says so and acts as
 * --on-lost says. */
static int lose_lease(const char *on_lost, const char *script, char *out, size_t size,
		      pid_t *cmd)
{
	char *args[] = { "hasp", "lock", "--on-lost", (char *)on_lost, "--kill-after", "0.2",
			 "-k", "lost", "-c", (char *)script, NULL };
	hasp_client *admin = client_connect(daemon_.socket);
	int fd, status;
	pid_t hasp = spawn_lock(args, cmd, &fd);

	out[0] = '\0'; /* wait_output() appends */
	ck_assert_int_eq(hasp_revoke_key(admin, "lost"), 1);
	status = wait_child(hasp, 10000);
	ck_assert(WIFEXITED(status));
	/* Everything hasp and the command said: both are gone, so up to EOF. */
	wait_output(fd, "\x01", 5000, out, size);
	ck_assert_msg(strstr(out, "was revoked"), "%s", out);
	close(fd);
	hasp_close(admin);
	return WEXITSTATUS(status);
}

START_TEST(a_lost_lease_stops_the_command)
{
	char out[4096];
	pid_t cmd;

	/* term: SIGTERM ends it; 75. */
	ck_assert_int_eq(lose_lease("term", "trap 'echo got TERM; exit 0' TERM; echo $$ >&3; "
				    "while :; do sleep 0.05; done", out, sizeof(out), &cmd), 75);
	ck_assert(kill(cmd, 0) < 0 && errno == ESRCH);
	ck_assert_msg(strstr(out, "got TERM"), "the command did not see SIGTERM: %s", out);
	ck_assert_msg(strstr(out, "SIGTERM"), "%s", out);
	/* term, ignored: SIGKILL after --kill-after. */
	ck_assert_int_eq(lose_lease("term", "trap '' TERM; echo $$ >&3; while :; do sleep 0.05; "
				    "done", out, sizeof(out), &cmd), 75);
	ck_assert(kill(cmd, 0) < 0 && errno == ESRCH);
	/* kill: at once. */
	ck_assert_int_eq(lose_lease("kill", "trap '' TERM; echo $$ >&3; exec sleep 60", out,
				    sizeof(out), &cmd), 75);
	ck_assert_msg(strstr(out, "SIGKILL"), "%s", out);
	/* ignore: a warning, and the command's own status. */
	ck_assert_int_eq(lose_lease("ignore", "echo $$ >&3; sleep 0.5; exit 3", out, sizeof(out),
				    &cmd), 3);
	ck_assert_msg(strstr(out, "runs on"), "%s", out);
}
END_TEST

/* How many lines a read of n bytes ended. */
static int newlines(const char *buf, ssize_t n)
{
	int k = 0;

	for (ssize_t i = 0; i < n; i++)
		k += buf[i] == '\n';
	return k;
}

/* A fake haspd in cluster mode, in a child, on the listening socket srv:
 * it grants the first acquire (libhasp's hello is id 1, the acquire id 2)
 * as lease 9, says it lost it once go has a byte, and waits for the end. */
static void fake_cluster_serve(int srv, int go)
{
	static const char grant[] = "{\"id\":1,\"ok\":true,\"server\":\"fake\"}\n"
				    "{\"id\":2,\"ok\":true,\"lease\":9,\"fence\":77,"
				    "\"mode\":\"exclusive\"}\n";
	static const char lost[] = "{\"event\":\"lost\",\"lease\":9,\"key\":\"cluster/x\","
				   "\"message\":\"etcd could not be reached\"}\n";
	char buf[4096], b;
	int c = accept(srv, NULL, NULL), lines = 0;
	ssize_t n;

	while (c >= 0 && lines < 2 && (n = read(c, buf, sizeof(buf))) > 0)
		lines += newlines(buf, n);
	if (c < 0 || write(c, grant, sizeof(grant) - 1) < 0 || read(go, &b, 1) != 1 ||
	    write(c, lost, sizeof(lost) - 1) < 0)
		_exit(1);
	while (read(c, buf, sizeof(buf)) > 0)
		;
	_exit(0);
}

/* That fake on path; its pid, and the pipe that tells it to go on *go. */
static pid_t fake_cluster_haspd(const char *path, int *go)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int srv = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), p[2];
	pid_t pid;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ck_assert_int_ge(srv, 0);
	ck_assert_int_eq(bind(srv, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(srv, 1), 0);
	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[1]);
		fake_cluster_serve(srv, p[0]);
	}
	close(srv);
	close(p[0]);
	*go = p[1];
	return pid;
}

/* A cluster key's lease lost in etcd (the lost event of a haspd in
 * cluster mode): hasp says so and stops the command, as for a revoke. */
START_TEST(a_lease_lost_in_etcd_stops_the_command)
{
	char path[sizeof(daemon_.dir) + 16], out[4096] = "";
	char *args[] = { "hasp", "--socket", path, "lock", "-k", "cluster/x", "-c",
			 "trap 'echo got TERM; exit 0' TERM; echo $$ >&3; "
			 "while :; do sleep 0.05; done", NULL };
	int go, fd, status;
	pid_t fake, hasp, cmd;

	snprintf(path, sizeof(path), "%s/fake.sock", daemon_.dir);
	fake = fake_cluster_haspd(path, &go);
	hasp = spawn_lock(args, &cmd, &fd);
	ck_assert_int_eq(write(go, "g", 1), 1);
	status = wait_child(hasp, 10000);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 75);
	wait_output(fd, "\x01", 5000, out, sizeof(out)); /* up to EOF */
	ck_assert_msg(strstr(out, "got TERM"), "the command did not see SIGTERM: %s", out);
	ck_assert_msg(strstr(out, "'cluster/x' was lost: haspd could not keep it in etcd"), "%s",
		      out);
	ck_assert_int_eq(WEXITSTATUS(wait_child(fake, 5000)), 0);
	close(fd);
	close(go);
}
END_TEST

/* hasp lock says who it is: the list names it. */
START_TEST(the_list_names_hasp_lock)
{
	char *args[] = { "hasp", "lock", "-k", "named", "-c", "echo $$ >&3; exec sleep 60", NULL };
	hasp_client *c = client_connect(daemon_.socket);
	char *text = NULL, want[64];
	pid_t hasp, cmd;
	int fd;

	hasp = spawn_lock(args, &cmd, &fd);
	ck_assert_int_eq(hasp_list_json(c, &text), 0);
	snprintf(want, sizeof(want), "\"client\":\"hasp lock (pid %d)\"", (int)hasp);
	ck_assert_msg(strstr(text, want), "%s not in %s", want, text);
	free(text);
	kill(cmd, SIGKILL);
	wait_child(hasp, 5000);
	close(fd);
	hasp_close(c);
}
END_TEST

static Suite *cli_flock_suite(void)
{
	Suite *s = suite_create("cli-flock");
	TCase *tc = tcase_create("flock");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, the_fd_form_lasts_as_long_as_the_descriptor);
	tcase_add_test(tc, the_fd_form_queues_fairly_and_hands_over_on_close);
	tcase_add_test(tc, the_fd_form_relocks_its_own_description_at_once);
	tcase_add_test(tc, the_fd_form_needs_an_open_descriptor);
	tcase_add_test(tc, exit_codes_tell_a_conflict_from_a_mistake);
	tcase_add_test(tc, a_directory_is_locked_as_flock_locks_it);
	tcase_add_test(tc, verbose_says_it_in_flocks_words);
	tcase_add_test(tc, no_fork_runs_the_command_in_hasps_place);
	tcase_add_test(tc, installed_as_flock_it_is_flock);
	tcase_add_test(tc, a_lost_lease_stops_the_command);
	tcase_add_test(tc, a_lease_lost_in_etcd_stops_the_command);
	tcase_add_test(tc, the_list_names_hasp_lock);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(cli_flock_suite());
}
