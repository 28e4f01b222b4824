/* Running the hasp tool, and shell scripts, from the CLI tests. */
#include "cli_run.h"

#include <check.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

const char *cli_path(void)
{
	return getenv("HASP_CLI") ? getenv("HASP_CLI") : "build/client/hasp";
}

pid_t run_spawn(const char *path, char *const args[], int extra_fd, int out_fd)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (extra_fd >= 0 && extra_fd != 3) {
			dup2(extra_fd, 3);
			close(extra_fd);
		}
		if (out_fd >= 0) {
			dup2(out_fd, 1);
			dup2(out_fd, 2);
		}
		execv(path, args);
		_exit(127);
	}
	return pid;
}

pid_t cli_spawn(char *const args[], int extra_fd, int out_fd)
{
	return run_spawn(cli_path(), args, extra_fd, out_fd);
}

int run_collect(pid_t pid, int fd, char *out, size_t size)
{
	size_t len = 0;
	ssize_t n;
	int status;

	/* Bounded: one that hangs is killed by wait_child() below. */
	while (len + 1 < size && wait_readable(fd, 30000) &&
	       (n = read(fd, out + len, size - len - 1)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(fd);
	status = wait_child(pid, 30000);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

int run_capture(const char *path, char *const args[], char *out, size_t size)
{
	int p[2];
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = run_spawn(path, args, -1, p[1]);
	close(p[1]);
	return run_collect(pid, p[0], out, size);
}

int cli_run(char *const args[], char *out, size_t size)
{
	return run_capture(cli_path(), args, out, size);
}
