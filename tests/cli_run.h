/* Running the hasp tool ($HASP_CLI) from the CLI tests. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* The hasp binary under test. */
const char *cli_path(void);
/* Starts path with args; fd 3 of the child is extra_fd when >= 0, and its
 * stdout and stderr go to out_fd when >= 0. */
pid_t run_spawn(const char *path, char *const args[], int extra_fd, int out_fd);
/* Reads fd (the read end of a child's output pipe, closed after) into out
 * until EOF, then waits for pid (bounded); returns its exit status. */
int run_collect(pid_t pid, int fd, char *out, size_t size);
/* Runs path with args to completion (bounded); its stdout and stderr into
 * out. Returns its exit status. */
int run_capture(const char *path, char *const args[], char *out, size_t size);
/* run_spawn() and run_capture() of hasp. */
pid_t cli_spawn(char *const args[], int extra_fd, int out_fd);
int cli_run(char *const args[], char *out, size_t size);

#define RUN(out, ...) cli_run((char *const[]){ "hasp", __VA_ARGS__, NULL }, out, sizeof(out))
