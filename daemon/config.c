#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "netaddr.h"
#include "cluster/endpoints.h"

/* Keep the daemon usable: a line must fit any request, and no limit may
 * be zero. */
#define LINE_MIN 1024
#define LINE_MAX_ALLOWED (16u << 20)

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->socket_mode = -1;
	c->socket_dir_mode = -1;
	c->max_line_bytes = 65536;
	c->max_sessions = 16384;
	c->max_session_locks = 1u << 20;
	/* One user cannot take every session, nor more than 0.3 to 3 GiB
	 * (about 270 bytes a lease, 2.6 KB with the longest key, owner and
	 * message). */
	c->max_user_sessions = 12288;
	c->max_user_locks = 1u << 20;
	/* Each locked file is a descriptor of the daemon's. */
	c->max_user_files = 65536;
	/* Each is a journal record of up to 2.6 KB, and a lease. */
	c->max_user_checkouts = 1024;
	c->log_level = LOG_INFO;
	/* PostgreSQL's deadlock_timeout, after which log_lock_waits logs. */
	c->log_lock_waits_ms = 1000;
	strcpy(c->cluster_prefix, "cluster/");
	c->cluster_ttl = 10;
	/* Each is a connection to etcd (its watch) while it waits or holds. */
	c->max_user_cluster_locks = 1024;
}

static int parse_size(const char *v, size_t min, size_t max, size_t *out)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-' || x < min || x > max)
		return -1;
	*out = (size_t)x;
	return 0;
}

/* A year at most: a daemon that may exit after idling is one that can be
 * started again, and no timer needs to be longer. */
static int parse_seconds(const char *v, unsigned *out)
{
	size_t s;

	if (parse_size(v, 0, 365u * 24 * 3600, &s) < 0)
		return -1;
	*out = (unsigned)s;
	return 0;
}

static int copy_string(char *dst, size_t size, const char *v)
{
	if (strlen(v) >= size)
		return -1;
	strcpy(dst, v);
	return 0;
}

static int parse_mode(const char *v, int *out)
{
	char *end;
	long m;

	errno = 0;
	m = strtol(v, &end, 8);
	if (errno || end == v || *end || m < 0 || m > 0777)
		return -1;
	*out = (int)m;
	return 0;
}

/* The socket's directory: haspd must be able to create the socket in it,
 * and nobody else to replace it. */
static int set_dir_mode(struct config *c, const char *v)
{
	int m;

	if (parse_mode(v, &m) < 0 || (m & 0700) != 0700 || (m & 022))
		return -1;
	c->socket_dir_mode = m;
	return 0;
}

static int set_log_level(struct config *c, const char *v)
{
	int l = log_level_parse(v);

	if (l < 0)
		return -1;
	c->log_level = l;
	return 0;
}

/* "" turns the listener off. */
static int set_metrics_listen(struct config *c, const char *v)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (v[0] && netaddr_parse(v, &ss, &len) < 0)
		return -1;
	return copy_string(c->metrics_listen, sizeof(c->metrics_listen), v);
}

static int set_cluster_endpoints(struct config *c, const char *v)
{
	struct endpoint eps[ENDPOINTS_MAX];

	if (v[0] && endpoints_parse(v, eps, ENDPOINTS_MAX) < 0)
		return -1;
	return copy_string(c->cluster_endpoints, sizeof(c->cluster_endpoints), v);
}

/* A prefix of 1 to 255 bytes with no NUL: a key in the namespace is a key
 * and more. */
static int set_cluster_prefix(struct config *c, const char *v)
{
	return v[0] ? copy_string(c->cluster_prefix, sizeof(c->cluster_prefix), v) : -1;
}

static int set_cluster_ttl(struct config *c, const char *v)
{
	size_t s;

	if (parse_size(v, 2, 3600, &s) < 0)
		return -1;
	c->cluster_ttl = (unsigned)s;
	return 0;
}

struct setting {
	const char *name;
	const char *expects;
	int reloadable;
	size_t max_path;           /* a path setting: its longest length, else 0 */
};

static const struct setting settings[] = {
	/* sizeof(config.socket) is sizeof(sockaddr_un.sun_path): 107 bytes and
	 * the NUL. */
	{ "socket", "an absolute path", 0, sizeof(((struct config *)0)->socket) - 1 },
	{ "socket_mode", "an octal mode such as 0660", 0, 0 },
	{ "socket_group", "a group name", 0, 0 },
	{ "max_line_bytes", "a number from 1024 to 16777216", 1, 0 },
	{ "max_sessions", "a number from 1 to 10000000", 1, 0 },
	{ "max_session_locks", "a number from 1 to 100000000", 1, 0 },
	{ "log_level", "error, warning, info or debug", 1, 0 },
	{ "fence_file", "an absolute path", 0, sizeof(((struct config *)0)->fence_file) - 1 },
	{ "max_user_sessions", "a number from 1 to 10000000", 1, 0 },
	{ "max_user_locks", "a number from 1 to 100000000", 1, 0 },
	{ "max_user_files", "a number from 1 to 10000000", 1, 0 },
	{ "socket_dir_mode", "an octal mode from 0700 to 0755, writable by the owner alone", 0, 0 },
	{ "journal_file", "an absolute path", 0, sizeof(((struct config *)0)->journal_file) - 1 },
	{ "max_user_checkouts", "a number from 1 to 10000000", 1, 0 },
	{ "idle_exit", "a number of seconds from 0 (never) to 31536000", 1, 0 },
	{ "metrics_listen", "empty (off), or a numeric address and port such as 127.0.0.1:9466 "
	  "or [::1]:9466", 0, 0 },
	{ "log_lock_waits_ms", "a number of ms from 0 (never) to 86400000", 1, 0 },
	{ "journal_socket", "an absolute path", 0, sizeof(((struct config *)0)->journal_socket) - 1 },
	{ "cluster_endpoints", "empty (off), or a comma list of up to 16 etcd URLs such as "
	  "http://10.0.0.5:2379", 0, 0 },
	{ "cluster_prefix", "a key prefix of 1 to 255 bytes such as cluster/", 0, 0 },
	{ "cluster_ttl", "a number of seconds from 2 to 3600", 0, 0 },
	{ "cluster_host", "a name of up to 255 bytes", 0, 0 },
	{ "max_user_cluster_locks", "a number from 1 to 1000000", 1, 0 },
};

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

static int apply(struct config *c, size_t i, const char *v)
{
	switch (i) {
	case 0: return v[0] == '/' ? copy_string(c->socket, sizeof(c->socket), v) : -1;
	case 1: return parse_mode(v, &c->socket_mode);
	case 2: return copy_string(c->socket_group, sizeof(c->socket_group), v);
	case 3: return parse_size(v, LINE_MIN, LINE_MAX_ALLOWED, &c->max_line_bytes);
	case 4: return parse_size(v, 1, 10000000, &c->max_sessions);
	case 5: return parse_size(v, 1, 100000000, &c->max_session_locks);
	case 6: return set_log_level(c, v);
	case 7: return v[0] == '/' ? copy_string(c->fence_file, sizeof(c->fence_file), v) : -1;
	case 8: return parse_size(v, 1, 10000000, &c->max_user_sessions);
	case 9: return parse_size(v, 1, 100000000, &c->max_user_locks);
	case 10: return parse_size(v, 1, 10000000, &c->max_user_files);
	case 11: return set_dir_mode(c, v);
	case 12: return v[0] == '/' ? copy_string(c->journal_file, sizeof(c->journal_file), v) : -1;
	case 13: return parse_size(v, 1, 10000000, &c->max_user_checkouts);
	case 14: return parse_seconds(v, &c->idle_exit);
	case 15: return set_metrics_listen(c, v);
	case 16: return parse_size(v, 0, 86400000, &c->log_lock_waits_ms);
	case 17: return v[0] == '/' ? copy_string(c->journal_socket, sizeof(c->journal_socket), v) : -1;
	case 18: return set_cluster_endpoints(c, v);
	case 19: return set_cluster_prefix(c, v);
	case 20: return set_cluster_ttl(c, v);
	case 21: return copy_string(c->cluster_host, sizeof(c->cluster_host), v);
	default: return parse_size(v, 1, 1000000, &c->max_user_cluster_locks);
	}
}

int config_set(struct config *c, const char *key, const char *value, char *err, size_t n)
{
	for (size_t i = 0; i < N_SETTINGS; i++) {
		if (strcmp(key, settings[i].name) != 0)
			continue;
		if (settings[i].max_path && strlen(value) > settings[i].max_path) {
			snprintf(err, n, "%s path too long (%zu bytes, at most %zu)", key,
				 strlen(value), settings[i].max_path);
			return -1;
		}
		if (apply(c, i, value) == 0)
			return 0;
		snprintf(err, n, "%s: '%s' is not %s", key, value, settings[i].expects);
		return -1;
	}
	snprintf(err, n, "unknown setting '%s'", key);
	return -1;
}

int config_reloadable(const char *name)
{
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (strcmp(name, settings[i].name) == 0)
			return settings[i].reloadable;
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* One "key = value" line; comments and blank lines are nothing. */
static int parse_line(struct config *c, char *line, char *err, size_t n)
{
	char *eq, *key, *value;

	line[strcspn(line, "#")] = '\0';
	key = trim(line);
	if (!*key)
		return 0;
	eq = strchr(key, '=');
	if (!eq) {
		snprintf(err, n, "expected 'setting = value'");
		return -1;
	}
	*eq = '\0';
	value = trim(eq + 1);
	key = trim(key);
	return config_set(c, key, value, err, n);
}

int config_load(struct config *c, const char *path, char *err, size_t n)
{
	struct config next = *c;
	char line[1024], why[256];
	unsigned lineno = 0;
	FILE *f = fopen(path, "re");

	if (!f) {
		if (errno == ENOENT)
			return -2;
		snprintf(err, n, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if (parse_line(&next, line, why, sizeof(why)) < 0) {
			snprintf(err, n, "%s:%u: %s", path, lineno, why);
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	*c = next;
	return 0;
}
