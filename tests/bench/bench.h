/* hasp-bench: every figure measured in one run, as a ratio to a baseline
 * measured in the same run. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct bench_opts {
	bool quick;             /* a few seconds, for meson test: asserts nothing */
	bool json;
	const char *socket;     /* a running haspd, or NULL to start one */
	const char *haspd;      /* the haspd to start */
	const char *dir;        /* a scratch directory */
	pid_t daemon_pid;       /* for its memory use, 0 when not ours */
};

/* ---- samples and results (stats.c) ---- */

struct samples {
	double *v;              /* µs */
	size_t n, cap;
};

void samples_add(struct samples *s, double us);
double samples_pct(struct samples *s, double pct);   /* sorts */
void samples_free(struct samples *s);

struct result {
	char name[64];
	double median_us, p99_us;   /* < 0 when not a latency */
	double ops;                 /* per second, < 0 when not measured */
	double value;               /* for other figures (bytes, counts) */
	const char *unit;           /* of value, or NULL */
	char baseline[48];          /* what the ratio is against, or "" */
	double ratio;               /* < 0 when none */
	char note[96];
};

struct result *result_add(const char *name);
/* A latency figure from s (freed): its median, p99 and rate, and with base
 * its ratio to base_us. */
struct result *result_latency(const char *name, struct samples *s, const char *base,
			      double base_us);
void results_print(bool json);

/* ---- time and plumbing (util.c) ---- */

uint64_t now_ns(void);
double elapsed_us(uint64_t since_ns);
/* A line reader on a raw socket. */
struct conn {
	int fd;
	char buf[65536];
	size_t start, end;
};
int conn_open(struct conn *c, const char *path);
void conn_send(struct conn *c, const char *text, size_t len);
/* The next line, NUL-terminated in place; NULL at EOF. */
char *conn_line(struct conn *c);
/* Shared memory for a few timestamps between processes. */
void *shared_page(void);
void run_in_child(void (*fn)(void *), void *arg, pid_t *pid);
void wait_all(pid_t *pids, size_t n);

/* ---- servers (spawn.c) ---- */

/* haspd on socket with extra flags (NULL-terminated, or NULL), accepting
 * connections: its pid, or -1 when it exited or did not listen in 5 s. */
pid_t spawn_haspd(const char *haspd, const char *socket, const char *const *extra);
/* A one-member etcd on free 127.0.0.1 ports, its data and log in dir,
 * serving its gateway: its pid and HOST:PORT in endpoint, or -1. */
pid_t spawn_etcd(const char *etcd, const char *dir, char *endpoint, size_t size);
/* A loopback port nothing listens on now, or -errno. */
int spawn_free_port(void);
/* Whether name is an executable in $PATH, its path in path. */
bool spawn_find(const char *name, char *path, size_t size);
/* SIGTERM, then reaped; nothing for pid <= 0. */
void spawn_stop(pid_t pid);

/* ---- load (load.c) ---- */

/* Closed-loop acquire+release pairs on distinct keys from clients
 * connections spread over a few processes, for seconds: pairs per second.
 * The same lines go to hasp and to the echo baseline. */
double load_pairs(const char *socket, int clients, double seconds);
/* One connection sending batches of batch pairs: pairs per second. */
double load_pipelined(const char *socket, int batch, double seconds);

/* ---- measurements ---- */

/* Baselines (baseline.c). Each returns what later ratios divide by. */
double base_roundtrip(const struct bench_opts *o);            /* median µs */
double base_flock(const struct bench_opts *o);                /* median µs */
double base_flock_handoff(const struct bench_opts *o);        /* median µs */
/* A bare libevent server answering every line like haspd would; its socket
 * path is written to path. Returns its pid. */
pid_t base_echo_start(const struct bench_opts *o, char *path, size_t size);

/* hasp (cases.c). */
void bench_uncontended(const struct bench_opts *o, double rt, double flk);
void bench_handoff(const struct bench_opts *o, double rt);
void bench_throughput(const struct bench_opts *o);
void bench_pipelined(const struct bench_opts *o);
void bench_scale(const struct bench_opts *o);
void bench_sessions(const struct bench_opts *o);
void bench_fairness(const struct bench_opts *o);
/* deadlock.c */
void bench_deadlock(const struct bench_opts *o, double rt);
/* watch.c */
void bench_watch(const struct bench_opts *o);
/* cluster.c: two haspd through one etcd, against etcd's own lock. */
void bench_cluster(const struct bench_opts *o);
/* gateway.c, for cluster.c: etcd's gateway at endpoint (HOST:PORT): (e) n
 * ranges; (h) n deletes and (i) their watch events' lag. */
void gateway_range(const char *endpoint, int n);
void gateway_watch(const char *endpoint, int n);
