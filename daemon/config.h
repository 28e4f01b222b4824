/* haspd's settings: defaults, then the configuration file, then the
 * command line. Pure parsing: no I/O but reading the file. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "buildconf.h"
#include "netaddr.h"

/* sysconfdir/hasp/haspd.conf: /etc/hasp/haspd.conf for a /usr install. */
#define CONFIG_DEFAULT_PATH HASP_CONFIG_PATH
#define CONFIG_MAX_OVERRIDES 32

struct config {
	char socket[108];          /* "" = the default search */
	int socket_mode;           /* -1 = 0600 per user, 0666 for root */
	int socket_dir_mode;       /* a missing socket directory: -1 = 0700, 0755 for root */
	char socket_group[64];     /* "" = the daemon's own */
	char fence_file[256];      /* "" = $STATE_DIRECTORY/fence, else beside the socket */
	size_t max_line_bytes;     /* request line, newline included */
	size_t max_sessions;
	size_t max_session_locks;  /* leases + waiting requests per session */
	size_t max_user_sessions;  /* sessions of one uid */
	size_t max_user_locks;     /* leases + waiting requests over one uid's sessions */
	size_t max_user_files;     /* files one uid has haspd hold a descriptor for */
	char journal_file[256];    /* "" = $STATE_DIRECTORY/checkouts, else beside the socket */
	size_t max_user_checkouts; /* detached leases of one uid */
	int log_level;             /* enum log_level */
	unsigned idle_exit;        /* exit after this many s idle; 0 = never */
	char metrics_listen[NETADDR_TEXT_MAX]; /* GET /metrics on "127.0.0.1:9466"; "" = off */
	size_t log_lock_waits_ms;  /* audit grants that waited this long; 0 = never */
	char journal_socket[108];  /* "" = the journal's when it is the log (audit.h) */
	/* Cluster mode (cluster/cluster.h): off while cluster_endpoints is "". */
	char cluster_endpoints[1024]; /* "http://10.0.0.5:2379,..." */
	char cluster_prefix[256];  /* named keys under it are etcd's */
	unsigned cluster_ttl;      /* s: haspd's etcd lease */
	char cluster_host[256];    /* the name other hosts see; "" = gethostname() */
	size_t max_user_cluster_locks; /* requests on cluster keys of one uid */
};

/* A setting given on the command line: it wins over the file, on every load. */
struct config_override {
	const char *key;
	const char *value;
};

void config_defaults(struct config *c);
/* Sets one setting by name. Returns 0, or -1 with a message in err. */
int config_set(struct config *c, const char *key, const char *value, char *err, size_t n);
/* Reads path into c. Returns 0, -2 when the file does not exist, or -1 with
 * "PATH:LINE: what is wrong" in err. c is unchanged on failure. */
int config_load(struct config *c, const char *path, char *err, size_t n);
/* Whether name is a setting the daemon can change on SIGHUP. */
int config_reloadable(const char *name);
