/* haspd: options, signals, and the event loop. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "buildconf.h"
#include "config.h"
#include "checkouts.h"
#include "fences.h"
#include "haspd.h"
#include "idle.h"
#include "log.h"
#include "metrics-http.h"
#include "cluster/cluster.h"
#include "proto-daemon.h"
#include "sockpath.h"
#include "server.h"
#include "systemd.h"

static const char usage[] =
	"Usage: haspd [OPTIONS]\n"
	"The hasp lock daemon: serves exclusive and shared leases on files and named\n"
	"keys over a Unix socket. It runs in the foreground and logs to stderr.\n"
	"\n"
	"  -c, --config PATH            read settings from PATH (default:\n"
	"                               " CONFIG_DEFAULT_PATH ", if it exists)\n"
	"  -S, --socket PATH            listen on PATH (default: $HASP_SOCKET, else\n"
	"                               $XDG_RUNTIME_DIR/hasp/haspd.sock, else\n"
	"                               /run/hasp/haspd.sock for root, else\n"
	"                               /tmp/hasp-$UID/haspd.sock)\n"
	"      --socket-mode MODE       the socket file's mode, in octal (default:\n"
	"                               0600, 0666 for root), set before it listens\n"
	"      --socket-group GROUP     the socket file's group, set before it listens\n"
	"      --socket-dir-mode MODE   the mode of a missing socket directory, which\n"
	"                               haspd creates (default: 0700, 0755 for root).\n"
	"                               An existing one must be haspd's or root's, not\n"
	"                               a symbolic link, writable by nobody else\n"
	"      --max-line-bytes N       longest request line (default 65536)\n"
	"      --max-sessions N         most connections at once (default 16384)\n"
	"      --max-session-locks N    most leases + waiting requests per connection\n"
	"                               (default 1048576)\n"
	"      --max-user-sessions N    most connections of one uid (default 12288)\n"
	"      --max-user-locks N       most leases + waiting requests over one uid's\n"
	"                               connections (default 1048576); root and\n"
	"                               haspd's own uid are not limited per uid\n"
	"      --max-user-files N       most files one uid's leases and waits may\n"
	"                               have haspd open at once (default 65536)\n"
	"      --fence-file PATH        keep the fence ceiling in PATH (default:\n"
	"                               $STATE_DIRECTORY/fence under systemd, else\n"
	"                               the socket's path with .fence for .sock).\n"
	"                               Its lock keeps a second haspd out; an empty\n"
	"                               or unreadable one stops haspd (see haspd(8))\n"
	"      --journal PATH           keep checkouts (detached leases) in PATH\n"
	"                               (default: $STATE_DIRECTORY/checkouts under\n"
	"                               systemd, else the socket's path with\n"
	"                               .checkouts for .sock); an unreadable one\n"
	"                               stops haspd\n"
	"      --forget-checkouts       start even if the journal cannot be read: it\n"
	"                               is moved to PATH.unreadable and its\n"
	"                               checkouts are forgotten (see haspd(8))\n"
	"      --max-user-checkouts N   most checkouts of one uid (default 1024)\n"
	"      --idle-exit SECS         exit (status 0) after SECS with no session, no\n"
	"                               lease, no waiter and no checkout (default 0:\n"
	"                               never); libhasp starts haspd with it on demand\n"
	"      --metrics-listen ADDR    serve OpenMetrics text for Prometheus at\n"
	"                               http://ADDR/metrics, ADDR a numeric address\n"
	"                               and port: 127.0.0.1:9466 or [::1]:9466\n"
	"                               (default: none, no listener; see haspd(8))\n"
	;
/* Two parts: one string may be at most 4095 bytes (ISO C). */
static const char usage_more[] =
	"      --cluster-endpoints URLS share the locks of keys under the cluster\n"
	"                               prefix with other haspd through etcd at URLS,\n"
	"                               a comma list such as http://10.0.0.5:2379\n"
	"                               (default: none, cluster mode off)\n"
	"      --cluster-prefix PREFIX  the keys that are the cluster's (default cluster/)\n"
	"      --cluster-ttl SECS       the TTL of haspd's etcd lease: a haspd that dies\n"
	"                               frees its cluster locks within it (default 10)\n"
	"      --cluster-host NAME      the name other hosts see (default: the host name)\n"
	"      --max-user-cluster-locks N  most requests on cluster keys of one uid,\n"
	"                               each a connection to etcd (default 1024)\n"
	"      --ready-fd FD            write a newline to descriptor FD and close it\n"
	"                               once listening (how libhasp waits for it)\n"
	"  -l, --log-level LEVEL        error, warning, info (default) or debug\n"
	"  -f, --foreground             stay in the foreground (the default and only mode)\n"
	"  -V, --version                print the version and exit\n"
	"  -h, --help                   print this help and exit\n"
	"\n"
	"Command-line settings win over the file. SIGHUP reloads the file (limits and\n"
	"log level); SIGTERM or SIGINT stop the daemon and remove its socket file.\n"
	"Under systemd it takes its socket from socket activation and reports\n"
	"readiness and status (Type=notify).\n";

struct options {
	const char *config;
	bool config_given;
	bool forget_checkouts;
	int ready_fd;           /* --ready-fd, or -1 */
	struct config_override overrides[CONFIG_MAX_OVERRIDES];
	size_t noverrides;
};

static void add_override(struct options *opt, const char *key, const char *value)
{
	if (opt->noverrides < CONFIG_MAX_OVERRIDES)
		opt->overrides[opt->noverrides++] = (struct config_override){ key, value };
}

static int parse_fd(const char *v, int *out)
{
	char *end;
	long fd;

	errno = 0;
	fd = strtol(v, &end, 10);
	if (errno || end == v || *end || fd < 0 || fd > INT_MAX)
		return -1;
	*out = (int)fd;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *opt)
{
	enum { OPT_MODE = 256, OPT_GROUP, OPT_LINE, OPT_SESSIONS, OPT_LOCKS, OPT_USER_SESSIONS,
	       OPT_USER_LOCKS, OPT_USER_FILES, OPT_FENCES, OPT_DIR_MODE,
	       OPT_JOURNAL, OPT_FORGET, OPT_USER_CHECKOUTS, OPT_IDLE_EXIT, OPT_READY_FD, OPT_METRICS,
	       OPT_CL_ENDPOINTS, OPT_CL_PREFIX, OPT_CL_TTL, OPT_CL_HOST, OPT_CL_LOCKS };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 'S' },
		{ "socket-mode", required_argument, NULL, OPT_MODE },
		{ "socket-group", required_argument, NULL, OPT_GROUP },
		{ "socket-dir-mode", required_argument, NULL, OPT_DIR_MODE },
		{ "max-line-bytes", required_argument, NULL, OPT_LINE },
		{ "max-sessions", required_argument, NULL, OPT_SESSIONS },
		{ "max-session-locks", required_argument, NULL, OPT_LOCKS },
		{ "max-user-sessions", required_argument, NULL, OPT_USER_SESSIONS },
		{ "max-user-locks", required_argument, NULL, OPT_USER_LOCKS },
		{ "max-user-files", required_argument, NULL, OPT_USER_FILES },
		{ "fence-file", required_argument, NULL, OPT_FENCES },
		{ "journal", required_argument, NULL, OPT_JOURNAL },
		{ "forget-checkouts", no_argument, NULL, OPT_FORGET },
		{ "max-user-checkouts", required_argument, NULL, OPT_USER_CHECKOUTS },
		{ "idle-exit", required_argument, NULL, OPT_IDLE_EXIT },
		{ "ready-fd", required_argument, NULL, OPT_READY_FD },
		{ "metrics-listen", required_argument, NULL, OPT_METRICS },
		{ "cluster-endpoints", required_argument, NULL, OPT_CL_ENDPOINTS },
		{ "cluster-prefix", required_argument, NULL, OPT_CL_PREFIX },
		{ "cluster-ttl", required_argument, NULL, OPT_CL_TTL },
		{ "cluster-host", required_argument, NULL, OPT_CL_HOST },
		{ "max-user-cluster-locks", required_argument, NULL, OPT_CL_LOCKS },
		{ "log-level", required_argument, NULL, 'l' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opt->config = CONFIG_DEFAULT_PATH;
	opt->ready_fd = -1;
	while ((c = getopt_long(argc, argv, "c:S:l:fVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': opt->config = optarg; opt->config_given = true; break;
		case 'S': add_override(opt, "socket", optarg); break;
		case OPT_MODE: add_override(opt, "socket_mode", optarg); break;
		case OPT_GROUP: add_override(opt, "socket_group", optarg); break;
		case OPT_DIR_MODE: add_override(opt, "socket_dir_mode", optarg); break;
		case OPT_LINE: add_override(opt, "max_line_bytes", optarg); break;
		case OPT_SESSIONS: add_override(opt, "max_sessions", optarg); break;
		case OPT_LOCKS: add_override(opt, "max_session_locks", optarg); break;
		case OPT_USER_SESSIONS: add_override(opt, "max_user_sessions", optarg); break;
		case OPT_USER_LOCKS: add_override(opt, "max_user_locks", optarg); break;
		case OPT_USER_FILES: add_override(opt, "max_user_files", optarg); break;
		case OPT_FENCES: add_override(opt, "fence_file", optarg); break;
		case OPT_JOURNAL: add_override(opt, "journal_file", optarg); break;
		case OPT_FORGET: opt->forget_checkouts = true; break;
		case OPT_USER_CHECKOUTS: add_override(opt, "max_user_checkouts", optarg); break;
		case OPT_IDLE_EXIT: add_override(opt, "idle_exit", optarg); break;
		case OPT_METRICS: add_override(opt, "metrics_listen", optarg); break;
		case OPT_CL_ENDPOINTS: add_override(opt, "cluster_endpoints", optarg); break;
		case OPT_CL_PREFIX: add_override(opt, "cluster_prefix", optarg); break;
		case OPT_CL_TTL: add_override(opt, "cluster_ttl", optarg); break;
		case OPT_CL_HOST: add_override(opt, "cluster_host", optarg); break;
		case OPT_CL_LOCKS: add_override(opt, "max_user_cluster_locks", optarg); break;
		case OPT_READY_FD:
			if (parse_fd(optarg, &opt->ready_fd) < 0) {
				fprintf(stderr, "haspd: --ready-fd: '%s' is not a descriptor\n", optarg);
				return 2;
			}
			break;
		case 'l': add_override(opt, "log_level", optarg); break;
		case 'f': break;
		case 'V':
			printf("haspd %s (protocol %d)\n", HASP_VERSION_STRING, PROTO_VERSION);
			return 0;
		case 'h':
			fputs(usage, stdout);
			fputs(usage_more, stdout);
			return 0;
		default:
			fputs("Try 'haspd --help'.\n", stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "haspd: unexpected argument '%s'\nTry 'haspd --help'.\n", argv[optind]);
		return 2;
	}
	return -1;
}

/* Defaults, the file, then the command line, into cfg. Returns 0, 1 when
 * there was no file to read (none given, none at the default path), or -1
 * with the reason (the file and line) in err. */
static int load_config(const struct options *opt, struct config *cfg, char *err, size_t n)
{
	struct config next;
	char why[256];
	int r;

	config_defaults(&next);
	r = config_load(&next, opt->config, err, n);
	if (r == -1 || (r == -2 && opt->config_given)) {
		if (r == -2)
			snprintf(err, n, "%s: no such file", opt->config);
		return -1;
	}
	for (size_t i = 0; i < opt->noverrides; i++) {
		if (config_set(&next, opt->overrides[i].key, opt->overrides[i].value, why,
			       sizeof(why)) < 0) {
			snprintf(err, n, "command line: %s", why);
			return -1;
		}
	}
	*cfg = next;
	return r == -2;
}

/* Everything main() sets up, for the signal handlers. */
struct main_ctx {
	struct haspd d;
	struct options opt;
	struct event *sigs[3];
	struct event *status;
	struct metrics_http *metrics; /* metrics_listen's, if set */
	char last_status[160];
};

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct main_ctx *m = arg;

	log_info("caught %s, stopping", strsignal((int)sig));
	systemd_notify("STOPPING=1");
	event_base_loopbreak(m->d.base);
}

/* SIGHUP: the file again. What cannot change without a restart is kept. */
static void on_reload(evutil_socket_t sig, short what, void *arg)
{
	struct main_ctx *m = arg;
	struct config next;
	char err[512], said[PATH_MAX + 80];
	int r;

	systemd_notify("RELOADING=1");
	r = load_config(&m->opt, &next, err, sizeof(err));
	if (r < 0) {
		log_err("reload refused, settings unchanged: %s", err);
	} else {
		if (strcmp(next.socket, m->d.cfg.socket) || next.socket_mode != m->d.cfg.socket_mode ||
		    strcmp(next.socket_group, m->d.cfg.socket_group) ||
		    next.socket_dir_mode != m->d.cfg.socket_dir_mode)
			log_warn("socket settings change only with a restart");
		if (strcmp(next.fence_file, m->d.cfg.fence_file) ||
		    strcmp(next.journal_file, m->d.cfg.journal_file))
			log_warn("fence_file and journal_file change only with a restart");
		if (strcmp(next.metrics_listen, m->d.cfg.metrics_listen))
			log_warn("metrics_listen changes only with a restart");
		if (strcmp(next.cluster_endpoints, m->d.cfg.cluster_endpoints) ||
		    strcmp(next.cluster_prefix, m->d.cfg.cluster_prefix) ||
		    strcmp(next.cluster_host, m->d.cfg.cluster_host) ||
		    next.cluster_ttl != m->d.cfg.cluster_ttl)
			log_warn("the cluster settings change only with a restart");
		m->d.cfg.max_line_bytes = next.max_line_bytes;
		m->d.cfg.max_sessions = next.max_sessions;
		m->d.cfg.max_session_locks = next.max_session_locks;
		m->d.cfg.max_user_sessions = next.max_user_sessions;
		m->d.cfg.max_user_locks = next.max_user_locks;
		m->d.cfg.max_user_files = next.max_user_files;
		m->d.cfg.max_user_checkouts = next.max_user_checkouts;
		m->d.cfg.max_user_cluster_locks = next.max_user_cluster_locks;
		m->d.cfg.log_level = next.log_level;
		m->d.cfg.log_lock_waits_ms = next.log_lock_waits_ms;
		if (next.idle_exit != m->d.cfg.idle_exit)
			idle_reset(&m->d); /* counted again with the new time */
		m->d.cfg.idle_exit = next.idle_exit;
		log_threshold = (enum log_level)next.log_level;
		if (r == 1)
			snprintf(said, sizeof(said), "no configuration file at %s; reloaded defaults "
				 "and command line settings", m->opt.config);
		else
			snprintf(said, sizeof(said), "reloaded %s", m->opt.config);
		log_info("%s: max_line_bytes %zu, max_sessions %zu, max_session_locks %zu, "
			 "max_user_sessions %zu, max_user_locks %zu, max_user_files %zu, "
			 "max_user_checkouts %zu, idle_exit %u", said, next.max_line_bytes,
			 next.max_sessions, next.max_session_locks, next.max_user_sessions,
			 next.max_user_locks, next.max_user_files, next.max_user_checkouts,
			 next.idle_exit);
	}
	systemd_notify("READY=1");
}

/* Once a second under systemd: STATUS= with live counts, when they change. */
static void on_status(evutil_socket_t fd, short what, void *arg)
{
	struct main_ctx *m = arg;
	const struct lt_stats *st = &m->d.lt.stats;
	char status[160];

	snprintf(status, sizeof(status), "STATUS=%zu sessions, %zu leases, %zu waiting, %zu locks",
		 m->d.nsessions, st->leases, st->waiters, st->resources);
	if (strcmp(status, m->last_status) != 0) {
		systemd_notify(status);
		memcpy(m->last_status, status, sizeof(status));
	}
}

/* One descriptor per connection and per locked file: take all the kernel
 * allows this process (the soft limit up to the hard one). */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn("cannot raise the descriptor limit: %s", strerror(errno));
}

static int add_signal(struct main_ctx *m, int i, int sig, event_callback_fn fn)
{
	m->sigs[i] = evsignal_new(m->d.base, sig, fn, m);
	return m->sigs[i] && event_add(m->sigs[i], NULL) == 0 ? 0 : -1;
}

static int start_status(struct main_ctx *m)
{
	struct timeval second = { 1, 0 };

	if (!systemd_notifying())
		return 0;
	m->status = event_new(m->d.base, -1, EV_PERSIST, on_status, m);
	if (!m->status || event_add(m->status, &second) < 0)
		return -1;
	on_status(-1, 0, m);
	return 0;
}

/* --ready-fd: whoever started haspd (libhasp, on demand) learns that it
 * listens, without polling the socket; an end of file instead means that
 * haspd exited first. */
static void tell_ready(int fd)
{
	if (fd < 0)
		return;
	if (write(fd, "\n", 1) != 1)
		log_warn("cannot write to the --ready-fd descriptor %d: %s", fd, strerror(errno));
	close(fd);
}

/* The socket's path from cfg (or the default search) into path: one that
 * fits a Unix socket address (sun_path: 107 bytes and the NUL), else -1
 * with the reason logged. */
static int socket_path(const struct config *cfg, char *path, size_t size)
{
	const size_t max = sizeof(cfg->socket) - 1;

	if (cfg->socket[0])
		snprintf(path, size, "%s", cfg->socket);
	else if (proto_default_socket(path, size) < 0) {
		log_err("the default socket path is too long (more than %zu bytes, at most %zu); "
			"use --socket", size - 1, max);
		return -1;
	}
	if (strlen(path) > max) {
		log_err("socket path too long (%zu bytes, at most %zu): %s", strlen(path), max, path);
		return -1;
	}
	return 0;
}

/* Where a state file is: as configured, else in systemd's
 * StateDirectory under name, else beside our own socket (haspd.sock:
 * haspd.NAME). Returns 0 with the path, or -1 when there is none. */
static int state_path(const char *configured, const char *name, const char *socket,
		      char *path, size_t size)
{
	const char *state = getenv("STATE_DIRECTORY");
	size_t n = strlen(socket);

	if (configured[0]) {
		snprintf(path, size, "%s", configured);
	} else if (state && state[0] == '/') { /* the first, if systemd lists several */
		snprintf(path, size, "%.*s/%s", (int)strcspn(state, ":"), state, name);
	} else if (n > 0) {
		if (n > 5 && strcmp(socket + n - 5, ".sock") == 0)
			n -= 5;
		snprintf(path, size, "%.*s.%s", (int)n, socket, name);
	} else {
		return -1;
	}
	return 0;
}

/* The fence file, whose flock is also the instance lock: taken before the
 * socket is touched, so that of two daemons started at once only one ever
 * probes, removes or binds it. A socket at our path (listen_fd < 0) is what
 * an earlier haspd left: then a missing fence file was lost, not new. */
static int keep_fences(struct haspd *d, const char *socket)
{
	char path[PATH_MAX];
	struct stat st;
	bool stale = socket[0] && lstat(socket, &st) == 0 && S_ISSOCK(st.st_mode);

	if (state_path(d->cfg.fence_file, "fence", socket, path, sizeof(path)) < 0) {
		log_warn("no fence_file and no StateDirectory: after a restart, fences rest on "
			 "the wall clock alone");
		return 0;
	}
	if (stale && access(path, F_OK) < 0 && errno == ENOENT && server_probe(socket) < 0)
		return -1; /* someone serves there: that, not the fences, is what to say */
	return fences_keep(d, path, stale ? socket : NULL);
}

/* The checkouts of the last run, restored before anyone can connect. */
static int restore_checkouts(struct haspd *d, const char *socket, bool forget)
{
	char path[PATH_MAX];

	if (state_path(d->cfg.journal_file, "checkouts", socket, path, sizeof(path)) < 0)
		return checkouts_open(d, NULL, forget);
	return checkouts_open(d, path, forget);
}

/* In this order: the socket's directory, the instance lock, the checkouts,
 * the metrics listener if configured (listening before the socket does, so
 * that whoever sees the socket can scrape), the socket (socket
 * activation's, or ours on cfg's path, whose path goes to path: "" under
 * socket activation). */
static struct server *open_server(struct haspd *d, char *path, size_t size, bool forget,
				  struct metrics_http **metrics)
{
	int fd = systemd_listen_fd();

	path[0] = '\0';
	if (fd < 0 && (socket_path(&d->cfg, path, size) < 0 || server_check_dir(&d->cfg, path) < 0))
		return NULL;
	if (keep_fences(d, path) < 0 || restore_checkouts(d, path, forget) < 0)
		return NULL;
	if (d->cfg.metrics_listen[0] && !(*metrics = metrics_http_new(d, d->cfg.metrics_listen)))
		return NULL;
	return fd >= 0 ? server_adopt(&d->loop, fd, haspd_accepted, d) :
			 server_new(&d->loop, &d->cfg, path, haspd_accepted, d);
}

int main(int argc, char **argv)
{
	static struct main_ctx m;
	struct config cfg;
	char path[256], err[512];
	int r = parse_options(argc, argv, &m.opt);

	if (r >= 0)
		return r;
	if (load_config(&m.opt, &cfg, err, sizeof(err)) < 0) {
		log_err("bad configuration, not starting: %s", err);
		return 1;
	}
	log_threshold = (enum log_level)cfg.log_level;
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	if (haspd_init(&m.d) < 0) {
		log_err("cannot initialise: %s", strerror(errno));
		haspd_done(&m.d);
		return 1;
	}
	m.d.cfg = cfg;
	r = audit_init(&m.d.audit, cfg.journal_socket);
	if (r < 0) {
		log_err("cannot open the journal's socket %s: %s", cfg.journal_socket, strerror(-r));
		haspd_done(&m.d);
		return 1;
	}
	if (cluster_start(&m.d) < 0) {
		log_err("cannot start cluster mode: %s", strerror(errno));
		haspd_done(&m.d);
		return 1;
	}
	if (m.d.cluster)
		log_info("cluster mode: keys under '%s' are shared through etcd at %s", cfg.cluster_prefix,
			 cfg.cluster_endpoints);
	/* The signals before the socket: a SIGTERM as soon as it accepts
	 * must still remove the socket file. */
	if (add_signal(&m, 0, SIGTERM, on_stop) < 0 || add_signal(&m, 1, SIGINT, on_stop) < 0 ||
	    add_signal(&m, 2, SIGHUP, on_reload) < 0 ||
	    !(m.d.server = open_server(&m.d, path, sizeof(path), m.opt.forget_checkouts, &m.metrics)) ||
	    start_status(&m) < 0) {
		r = 1;
	} else {
		log_info("haspd %s listening on %s", HASP_VERSION_STRING,
			 path[0] ? path : "(socket activation)");
		if (m.metrics)
			log_info("serving metrics at http://%s/metrics", m.d.cfg.metrics_listen);
		systemd_notify("READY=1");
		tell_ready(m.opt.ready_fd);
		idle_plan(&m.d); /* idle from the start, until a client comes */
		r = event_base_dispatch(m.d.base) < 0;
		log_info("stopped");
	}
	for (int i = 0; i < 3; i++)
		if (m.sigs[i])
			event_free(m.sigs[i]);
	if (m.status)
		event_free(m.status);
	m.metrics = metrics_http_free(m.metrics);
	haspd_done(&m.d);
	return r;
}
