/* hasp ls, revoke and stats telling the truth (issue 12), against a real
 * haspd: filters by name and 'prefix*', the real user beside the claimed
 * owner, wall-clock grant times, files deleted or moved while locked, why a
 * waiter waits, revoke by file, and lease ends that balance grants. Tests
 * that need another uid run as root and say so when skipped. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli_run.h"
#include "harness.h"
#include "hasp.h"
#include "om_check.h"

#define OTHER_UID 4242  /* an unprivileged uid with no user entry */

static struct daemon_proc daemon_;

static void setup(void)
{
	daemon_start(&daemon_);
	setenv("HASP_SOCKET", daemon_.socket, 1);
	/* For clients of other uids: a root daemon's directory they may search. */
	ck_assert_int_eq(chmod(daemon_.dir, 0755), 0);
}

static void teardown(void)
{
	daemon_stop(&daemon_);
}

static bool have_root(void)
{
	if (geteuid() == 0)
		return true;
	fprintf(stderr, "skipped: needs root to run a client as another uid\n");
	return false;
}

/* Drops every privilege to uid (and a gid of the same number). */
static void become(uid_t uid)
{
	if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)
		_exit(100);
}

/* Runs hasp with args, as uid unless it is 0, to completion: its exit
 * status, and its stdout and stderr together in out. */
static int hasp_as(uid_t uid, char *const args[], char *out, size_t size)
{
	int p[2];
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		if (uid)
			become(uid);
		execv(cli_path(), args);
		_exit(127);
	}
	close(p[1]);
	return run_collect(pid, p[0], out, size);
}

#define HASP(out, ...) hasp_as(0, (char *const[]){ "hasp", __VA_ARGS__, NULL }, out, sizeof(out))
#define HASP_AS(uid, out, ...) \
	hasp_as(uid, (char *const[]){ "hasp", __VA_ARGS__, NULL }, out, sizeof(out))

/* Whether line's name column is name exactly, with no "(deleted)" or
 * "(moved)" after it. */
static bool row_named(const char *line, const char *name, size_t len)
{
	return strncmp(line, name, len) == 0 && line[len] == ' ' &&
	       line[len + strspn(line + len, " ")] != '(';
}

/* The first row of a table whose name column is name exactly, split into
 * its space-separated fields (at most max; the message's words last):
 * how many, or 0 when there is no such row. */
static size_t row_fields(const char *table, const char *name, char fields[][128], size_t max)
{
	size_t n = 0, len = strlen(name);
	const char *line = table;

	while (line && !row_named(line, name, len))
		line = (line = strchr(line, '\n')) ? line + 1 : NULL;
	if (!line)
		return 0;
	while (n < max && *line && *line != '\n') {
		size_t w = strcspn(line, " \n");

		if (w > 0)
			snprintf(fields[n++], 128, "%.*s", (int)w, line);
		line += w;
		line += strspn(line, " ");
	}
	return n;
}

/* Columns of a row: NAME STATE MODE LEASE PID USER OWNER DAY TIME AGE, then
 * WAITING FOR and MESSAGE in one or more words. */
enum { F_NAME, F_STATE, F_MODE, F_LEASE, F_PID, F_USER, F_OWNER, F_DAY, F_TIME, F_AGE, F_WHY };

static hasp_lease *lock_owned(hasp_client *c, const char *key, const char *owner)
{
	struct hasp_lock_options o = HASP_LOCK_OPTIONS_INIT;
	hasp_lease *l = NULL;

	o.owner = owner;
	o.timeout_ms = 0;
	ck_assert_int_eq(hasp_lock(c, key, &o, &l), 0);
	return l;
}

static hasp_lease *lock_file(hasp_client *c, const char *path)
{
	struct hasp_lock_options o = HASP_LOCK_OPTIONS_INIT;
	hasp_lease *l = NULL;

	o.timeout_ms = 0;
	ck_assert_int_eq(hasp_lock_file(c, path, &o, &l), 0);
	return l;
}

/* A path in the daemon's directory. */
static void path_in(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", daemon_.dir, name);
}

/* ---- filters ---- */

START_TEST(ls_filters_by_name_and_prefix)
{
	hasp_client *c = client_connect(daemon_.socket);
	const char *keys[] = { "job", "jobs/a", "jobs/b", "jobx", "a-job" };
	char out[1 << 14], file[160], rel[160];

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		hasp_lease_free(client_lock(c, keys[i], HASP_EXCLUSIVE));
	path_in(file, sizeof(file), "jobfile");
	hasp_lease_free(lock_file(c, file));

	ck_assert_int_eq(HASP(out, "ls", "job"), 0);
	ck_assert_msg(strstr(out, "\njob "), "%s", out);
	ck_assert_msg(!strstr(out, "jobs/") && !strstr(out, "jobx") && !strstr(out, "a-job") &&
		      !strstr(out, "jobfile"), "hasp ls job shows more than job:\n%s", out);

	ck_assert_int_eq(HASP(out, "ls", "jobs/*"), 0);
	ck_assert_msg(strstr(out, "\njobs/a ") && strstr(out, "\njobs/b "), "%s", out);
	ck_assert_msg(!strstr(out, "\njob ") && !strstr(out, "jobx"), "%s", out);

	/* A file by its path, as given or relative to the working directory. */
	ck_assert_int_eq(HASP(out, "ls", file), 0);
	ck_assert_msg(strstr(out, file) && !strstr(out, "\njob "), "%s", out);
	ck_assert_int_eq(chdir(daemon_.dir), 0);
	snprintf(rel, sizeof(rel), "./jobfile");
	ck_assert_int_eq(HASP(out, "ls", rel), 0);
	ck_assert_msg(strstr(out, file), "hasp ls ./jobfile: %s", out);

	/* Several, and --prefix as before. */
	ck_assert_int_eq(HASP(out, "ls", "jobx", "a-*"), 0);
	ck_assert_msg(strstr(out, "\njobx ") && strstr(out, "\na-job ") && !strstr(out, "\njob "),
		      "%s", out);
	ck_assert_int_eq(HASP(out, "ls", "--prefix", "jobs/"), 0);
	ck_assert_msg(strstr(out, "\njobs/a ") && !strstr(out, "\njobx "), "%s", out);

	ck_assert_int_eq(HASP(out, "ls", "nope", "zz*"), 0);
	ck_assert_msg(strstr(out, "nothing held or awaited as 'nope', under 'zz'"), "%s", out);
	ck_assert_int_eq(HASP(out, "ls", "--json", "jobx"), 0);
	ck_assert_msg(strstr(out, "\"key\":\"jobx\"") && !strstr(out, "\"job\""), "%s", out);
	hasp_close(c);
}
END_TEST

/* ---- who and when ---- */

/* Holds key as OTHER_UID, claiming to be root, until told to go. */
static void hold_as_other(int ready, int leave)
{
	struct hasp_lock_options o = HASP_LOCK_OPTIONS_INIT;
	hasp_client *c = NULL;
	hasp_lease *l = NULL;

	become(OTHER_UID);
	o.owner = "root";
	if (hasp_connect(daemon_.socket, &c) < 0 || hasp_lock(c, "theirs", &o, &l) < 0)
		_exit(1);
	signal_byte(ready);
	wait_byte(leave, 30000);
	_exit(0);
}

START_TEST(ls_user_is_the_senders_not_the_claimed_owner)
{
	char out[1 << 14], f[12][128], want[32];
	struct passwd *pw;
	int ready[2], leave[2];
	pid_t pid;

	if (!have_root())
		return;
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(leave), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		hold_as_other(ready[1], leave[0]);
	ck_assert_msg(wait_byte(ready[0], 10000), "the other uid's client took no lease");
	ck_assert_int_eq(HASP(out, "ls", "theirs"), 0);
	ck_assert_uint_ge(row_fields(out, "theirs", f, 12), F_WHY);
	pw = getpwuid(OTHER_UID);
	snprintf(want, sizeof(want), "%s", pw ? pw->pw_name : "4242");
	ck_assert_str_eq(f[F_USER], want);
	ck_assert_str_eq(f[F_OWNER], "root");
	/* And a uid with a name shows the name: root's own lease. */
	hasp_client *c = client_connect(daemon_.socket);

	hasp_lease_free(lock_owned(c, "mine", "mallory"));
	ck_assert_int_eq(HASP(out, "ls", "mine"), 0);
	ck_assert_uint_ge(row_fields(out, "mine", f, 12), F_WHY);
	ck_assert_str_eq(f[F_USER], getpwuid(0) ? getpwuid(0)->pw_name : "0");
	ck_assert_str_eq(f[F_OWNER], "mallory");
	signal_byte(leave[1]);
	ck_assert_int_eq(WEXITSTATUS(wait_child(pid, 10000)), 0);
	hasp_close(c);
}
END_TEST

static void local_time(char *buf, size_t size, time_t t)
{
	struct tm tm;

	ck_assert_ptr_nonnull(localtime_r(&t, &tm));
	strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
}

START_TEST(ls_shows_the_grant_time_and_the_age)
{
	hasp_client *c = client_connect(daemon_.socket);
	char out[1 << 14], f[12][128], since[300], lo[32], hi[32];
	time_t t0 = time(NULL), t1;
	json_t *a, *h;
	json_int_t ms;

	hasp_lease_free(client_lock(c, "dated", HASP_EXCLUSIVE));
	ck_assert_int_eq(HASP(out, "ls", "dated"), 0);
	t1 = time(NULL);
	ck_assert_uint_ge(row_fields(out, "dated", f, 12), F_WHY);
	snprintf(since, sizeof(since), "%s %s", f[F_DAY], f[F_TIME]);
	local_time(lo, sizeof(lo), t0);
	local_time(hi, sizeof(hi), t1);
	ck_assert_msg(strcmp(since, lo) >= 0 && strcmp(since, hi) <= 0,
		      "SINCE %s is not between %s and %s:\n%s", since, lo, hi, out);
	ck_assert_msg(f[F_AGE][strlen(f[F_AGE]) - 1] == 's', "AGE %s", f[F_AGE]);
	ck_assert_msg(strstr(out, "SINCE") && strstr(out, "AGE"), "%s", out);
	/* The daemon's: ms since the epoch, and the same in ISO 8601, UTC. */
	ck_assert_int_eq(HASP(out, "ls", "--json", "dated"), 0);
	a = json_loads(out, 0, NULL);
	ck_assert_msg(a, "not JSON: %s", out);
	h = json_array_get(json_object_get(json_array_get(a, 0), "holders"), 0);
	ms = json_integer_value(json_object_get(h, "since_ms"));
	ck_assert_int_ge(ms, (json_int_t)t0 * 1000 - 1000);
	ck_assert_int_le(ms, (json_int_t)t1 * 1000 + 1000);
	ck_assert_uint_eq(strlen(json_string_value(json_object_get(h, "since"))), 24);
	ck_assert_int_eq(json_string_value(json_object_get(h, "since"))[23], 'Z');
	json_decref(a);
	hasp_close(c);
}
END_TEST

/* ---- files that changed under their lock ---- */

START_TEST(ls_marks_files_deleted_or_moved_while_locked)
{
	hasp_client *a = client_connect(daemon_.socket), *b = client_connect(daemon_.socket);
	char out[1 << 14], file[160], other[160], moved[200], f[12][128];
	const char *states[2];
	json_t *arr;

	path_in(file, sizeof(file), "victim");
	hasp_lease_free(lock_file(a, file));
	ck_assert_int_eq(HASP(out, "ls", file), 0);
	ck_assert_msg(!strstr(out, "(deleted)") && !strstr(out, "(moved)"), "%s", out);
	/* rm, and the same path made again and locked: two locks, one path. */
	ck_assert_int_eq(unlink(file), 0);
	hasp_lease_free(lock_file(b, file));
	ck_assert_int_eq(HASP(out, "ls", file), 0);
	snprintf(moved, sizeof(moved), "%s (deleted)", file);
	ck_assert_msg(strstr(out, moved), "the old file is not marked deleted:\n%s", out);
	ck_assert_uint_ge(row_fields(out, file, f, 12), F_WHY);
	ck_assert_str_eq(f[F_STATE], "held"); /* the new file's row, unmarked */
	ck_assert_int_eq(HASP(out, "ls", "--json", file), 0);
	arr = json_loads(out, 0, NULL);
	ck_assert_msg(arr && json_array_size(arr) == 2, "%s", out);
	/* Equal names go by file identity: either may come first. */
	states[0] = json_string_value(json_object_get(json_array_get(arr, 0), "path_state"));
	states[1] = json_string_value(json_object_get(json_array_get(arr, 1), "path_state"));
	ck_assert_msg(!states[0] != !states[1], "%s", out);
	ck_assert_str_eq(states[0] ? states[0] : states[1], "deleted");
	json_decref(arr);
	/* Renamed away while locked. */
	path_in(other, sizeof(other), "wanderer");
	hasp_lease_free(lock_file(a, other));
	snprintf(moved, sizeof(moved), "%s.new", other);
	ck_assert_int_eq(rename(other, moved), 0);
	ck_assert_int_eq(HASP(out, "ls", other), 0);
	snprintf(moved, sizeof(moved), "%s (moved)", other);
	ck_assert_msg(strstr(out, moved), "the renamed file is not marked moved:\n%s", out);
	hasp_close(a);
	hasp_close(b);
}
END_TEST

/* ---- why a waiter waits ---- */

/* hasp lock ARGS -c true in the background: it waits, or it is done. */
static pid_t spawn_hasp_lock(const char *what, const char *name)
{
	const char *cli = getenv("HASP_CLI") ? getenv("HASP_CLI") : "build/client/hasp";
	char *args[] = { (char *)cli, "lock", (char *)what, (char *)name, "-c", "true", NULL };

	if (!what) { /* a file */
		args[2] = (char *)name;
		args[3] = "-c";
		args[4] = "true";
		args[5] = NULL;
	}
	return spawn_argv(args, -1);
}

START_TEST(ls_says_why_a_waiter_waits)
{
	hasp_client *c = client_connect(daemon_.socket);
	hasp_lease *l = client_lock(c, "w", HASP_EXCLUSIVE);
	char out[1 << 14], f[16][128], want[64], file[160];
	pid_t first, second;

	first = spawn_hasp_lock("-k", "w");
	wait_gauge(c, "waiters", 1, 10000);
	second = spawn_hasp_lock("-k", "w");
	wait_gauge(c, "waiters", 2, 10000);
	ck_assert_int_eq(HASP(out, "ls", "w"), 0);
	/* Rows: the holder, then the waiters in queue order. */
	{
		const char *w1 = strstr(out, "\nw "), *w2 = w1 ? strstr(w1 + 1, "\nw ") : NULL;
		const char *w3 = w2 ? strstr(w2 + 1, "\nw ") : NULL;

		ck_assert_msg(w3, "%s", out);
		ck_assert_uint_ge(row_fields(w2 + 1, "w", f, 16), F_WHY + 2);
		snprintf(want, sizeof(want), "%llu", (unsigned long long)hasp_lease_id(l));
		ck_assert_msg(!strcmp(f[F_WHY], "lease") && !strcmp(f[F_WHY + 1], want),
			      "the head waiter does not name lease %s:\n%s", want, out);
		ck_assert_uint_ge(row_fields(w3 + 1, "w", f, 16), F_WHY + 3);
		snprintf(want, sizeof(want), "%d", (int)first);
		ck_assert_msg(!strcmp(f[F_WHY], "queue:") && !strcmp(f[F_WHY + 2], want),
			      "the second waiter is not behind pid %s:\n%s", want, out);
	}
	ck_assert_int_eq(hasp_unlock(c, l), 0);
	ck_assert_int_eq(WEXITSTATUS(wait_child(first, 10000)), 0);
	ck_assert_int_eq(WEXITSTATUS(wait_child(second, 10000)), 0);
	hasp_close(c);

	/* A file that flock(1), outside hasp, holds. */
	path_in(file, sizeof(file), "flocked");
	{
		char *fl[] = { "/usr/bin/flock", file, "-c", "echo flock holds; exec cat", NULL };
		char said[64] = "";
		int in[2], o[2];
		pid_t holder, waiter;

		ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
		ck_assert_int_eq(pipe2(o, O_CLOEXEC), 0);
		holder = fork();
		ck_assert_int_ge(holder, 0);
		if (holder == 0) {
			dup2(in[0], 0);
			dup2(o[1], 1);
			close(in[1]);
			execv(fl[0], fl);
			_exit(127);
		}
		close(in[0]);
		close(o[1]);
		ck_assert_msg(wait_output(o[0], "flock holds", 10000, said, sizeof(said)),
			      "flock(1) did not take the lock");
		c = client_connect(daemon_.socket);
		waiter = spawn_hasp_lock(NULL, file);
		wait_gauge(c, "waiters", 1, 10000);
		ck_assert_int_eq(HASP(out, "ls", file), 0);
		ck_assert_uint_ge(row_fields(out, file, f, 16), F_WHY + 2);
		ck_assert_msg(!strcmp(f[F_STATE], "waiting") && !strcmp(f[F_WHY], "outside") &&
			      !strcmp(f[F_WHY + 1], "flock"), "%s", out);
		close(in[1]); /* cat ends, and flock(1) with it */
		close(o[0]);
		ck_assert_int_eq(WEXITSTATUS(wait_child(holder, 10000)), 0);
		ck_assert_int_eq(WEXITSTATUS(wait_child(waiter, 10000)), 0);
		hasp_close(c);
	}
}
END_TEST

/* ---- revoke FILE ---- */

START_TEST(revoke_a_file_by_its_path)
{
	hasp_client *c = client_connect(daemon_.socket);
	char out[1 << 14], file[160], free_file[160];
	hasp_lease *l;
	int fd;

	path_in(file, sizeof(file), "revocable");
	l = lock_file(c, file);
	ck_assert_int_eq(HASP(out, "revoke", file), 0);
	ck_assert_msg(strstr(out, "revoked 1 lease on file"), "%s", out);
	ck_assert_int_eq(hasp_lease_revoked(c, l), 1);
	hasp_lease_free(l);
	/* --file, and a relative path. */
	l = lock_file(c, file);
	ck_assert_int_eq(chdir(daemon_.dir), 0);
	ck_assert_int_eq(HASP(out, "revoke", "--file", "revocable"), 0);
	ck_assert_int_eq(hasp_lease_revoked(c, l), 1);
	hasp_lease_free(l);
	/* No lease on it, no such file: exit 1. */
	path_in(free_file, sizeof(free_file), "unlocked");
	fd = open(free_file, O_CREAT | O_WRONLY, 0644);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(HASP(out, "revoke", free_file), 1);
	ck_assert_msg(strstr(out, "revoked 0 leases"), "%s", out);
	ck_assert_int_eq(HASP(out, "revoke", "/nonexistent/x"), 1);
	ck_assert_msg(strstr(out, "No such file"), "%s", out);
	ck_assert_int_eq(access("/nonexistent/x", F_OK), -1);
	hasp_close(c);
}
END_TEST

START_TEST(revoke_a_file_needs_authority)
{
	hasp_client *c;
	char out[1 << 14], file[160];
	hasp_lease *l;

	if (!have_root())
		return;
	c = client_connect(daemon_.socket);
	path_in(file, sizeof(file), "roots");
	l = lock_file(c, file); /* made 0644 by root: the other uid may read it */
	ck_assert_int_eq(HASP_AS(OTHER_UID, out, "revoke", file), 1);
	ck_assert_msg(strstr(out, "other users'"), "%s", out);
	ck_assert_int_eq(hasp_lease_revoked(c, l), 0);
	ck_assert_int_eq(HASP(out, "revoke", file), 0); /* root may */
	ck_assert_int_eq(hasp_lease_revoked(c, l), 1);
	hasp_lease_free(l);
	hasp_close(c);
}
END_TEST

/* ---- stats ---- */

static json_int_t counter(json_t *st, const char *group, const char *name)
{
	json_t *v = json_object_get(json_object_get(st, group), name);

	ck_assert_msg(json_is_integer(v), "no %s.%s in stats", group, name);
	return json_integer_value(v);
}

START_TEST(stats_ends_balance_grants)
{
	hasp_client *c = client_connect(daemon_.socket), *gone = client_connect(daemon_.socket);
	char out[1 << 14], lease[32];
	hasp_lease *l;
	json_t *st;

	ck_assert_int_eq(hasp_unlock(c, client_lock(c, "released", HASP_EXCLUSIVE)), 0);
	hasp_lease_free(client_lock(gone, "disconnected", HASP_EXCLUSIVE));
	hasp_lease_free(client_lock(gone, "disconnected-too", HASP_SHARED));
	hasp_close(gone);
	wait_gauge(c, "sessions", 1, 10000);
	l = client_lock(c, "revoked", HASP_EXCLUSIVE);
	snprintf(lease, sizeof(lease), "%llu", (unsigned long long)hasp_lease_id(l));
	ck_assert_int_eq(HASP(out, "revoke", lease), 0);
	hasp_lease_free(l);
	hasp_lease_free(client_lock(c, "held", HASP_EXCLUSIVE));

	ck_assert_int_eq(HASP(out, "stats", "--json"), 0);
	st = json_loads(out, 0, NULL);
	ck_assert_msg(st, "not JSON: %s", out);
	ck_assert_int_eq(counter(st, "counters", "releases"), 1);
	ck_assert_int_eq(counter(st, "counters", "disconnects"), 2);
	ck_assert_int_eq(counter(st, "counters", "revokes"), 1);
	ck_assert_int_eq(counter(st, "gauges", "leases"), 1);
	ck_assert_int_eq(counter(st, "counters", "granted_at_once") +
			 counter(st, "counters", "granted_after_wait"),
			 counter(st, "counters", "releases") + counter(st, "counters", "disconnects") +
			 counter(st, "counters", "revokes") + counter(st, "gauges", "leases"));
	json_decref(st);
	ck_assert_int_eq(HASP(out, "stats"), 0);
	ck_assert_msg(strstr(out, "  granted                  5\n") &&
		      strstr(out, "  ended                    4\n") &&
		      strstr(out, "    released               1\n") &&
		      strstr(out, "    disconnected           2\n") &&
		      strstr(out, "    revoked                1\n") &&
		      strstr(out, "  held                     1\n") &&
		      strstr(out, "  deadlock_searches_cut    0\n"), "%s", out);
	hasp_close(c);
}
END_TEST

/* hasp stats --format openmetrics: the daemon's own stats, as the strict
 * checker wants OpenMetrics text, with a lease and a waiter it can see. */
START_TEST(stats_as_openmetrics)
{
	hasp_client *c = client_connect(daemon_.socket);
	char out[1 << 16], why[512];
	hasp_lease *l = client_lock(c, "held", HASP_EXCLUSIVE);

	ck_assert_int_eq(HASP(out, "stats", "--format", "openmetrics"), 0);
	ck_assert_msg(om_check(out, strlen(out), why, sizeof(why)), "%s:\n%.2000s", why, out);
	ck_assert_msg(om_value(out, "hasp_leases") == 1, "%.2000s", out);
	ck_assert_msg(om_value(out, "hasp_acquires_total") == 1, "%.2000s", out);
	ck_assert_msg(strstr(out, "# TYPE hasp_uptime_seconds gauge\n"), "%.2000s", out);
	ck_assert_int_eq(HASP(out, "stats", "--format", "xml"), 64);
	ck_assert_msg(strstr(out, "unknown format 'xml'"), "%s", out);
	ck_assert_int_eq(HASP(out, "stats", "--format", "json"), 0);
	ck_assert_msg(out[0] == '{', "%s", out);
	ck_assert_int_eq(hasp_unlock(c, l), 0);
	hasp_close(c);
}
END_TEST

START_TEST(help_texts_tell_the_new_forms)
{
	char out[1 << 14];

	ck_assert_int_eq(HASP(out, "ls", "--help"), 0);
	ck_assert_msg(strstr(out, "PREFIX*") && strstr(out, "USER") && strstr(out, "(deleted)") &&
		      strstr(out, "WAITING FOR"), "%s", out);
	ck_assert_int_eq(HASP(out, "revoke", "--help"), 0);
	ck_assert_msg(strstr(out, "--file FILE"), "%s", out);
	ck_assert_int_eq(HASP(out, "stats", "--help"), 0);
	ck_assert_msg(strstr(out, "granted is always ended plus held") &&
		      strstr(out, "--format FORMAT") && strstr(out, "openmetrics"), "%s", out);
	ck_assert_int_eq(HASP(out, "revoke", "0"), 64);
	ck_assert_int_eq(HASP(out, "revoke", "--key", "k", "--file", "f"), 64);
}
END_TEST

static Suite *cli_ls_suite(void)
{
	Suite *s = suite_create("cli-ls");
	TCase *tc = tcase_create("truth");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, ls_filters_by_name_and_prefix);
	tcase_add_test(tc, ls_user_is_the_senders_not_the_claimed_owner);
	tcase_add_test(tc, ls_shows_the_grant_time_and_the_age);
	tcase_add_test(tc, ls_marks_files_deleted_or_moved_while_locked);
	tcase_add_test(tc, ls_says_why_a_waiter_waits);
	tcase_add_test(tc, revoke_a_file_by_its_path);
	tcase_add_test(tc, revoke_a_file_needs_authority);
	tcase_add_test(tc, stats_ends_balance_grants);
	tcase_add_test(tc, stats_as_openmetrics);
	tcase_add_test(tc, help_texts_tell_the_new_forms);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(cli_ls_suite());
}
