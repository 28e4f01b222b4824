/* etcd's lock service through its JSON gateway (etcd.h). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "etcd.h"

#define ME program_invocation_short_name /* hasp-bench or etcd-peer */

struct etcd {
	struct conn conn;           /* bench.h's line reader, on a TCP socket */
	char host[128];             /* for Host: */
	char lease[32];             /* its ID, decimal */
	char held[256];             /* the held lock's key, base64 */
	char body[8192];            /* the last response's */
	bool watching;              /* the connection carries a watch's stream */
};

static void base64(const char *in, char *out, size_t size)
{
	static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(in), o = 0;

	for (size_t i = 0; i < n && o + 5 < size; i += 3) {
		unsigned v = (unsigned char)in[i] << 16;

		v |= i + 1 < n ? (unsigned)(unsigned char)in[i + 1] << 8 : 0;
		v |= i + 2 < n ? (unsigned char)in[i + 2] : 0;
		out[o++] = digits[v >> 18 & 63];
		out[o++] = digits[v >> 12 & 63];
		out[o++] = i + 1 < n ? digits[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? digits[v & 63] : '=';
	}
	out[o] = '\0';
}

/* The string value of "name" in a flat enough JSON body. */
static int json_string(const char *body, const char *name, char *out, size_t size)
{
	char pattern[64];
	const char *p, *end;

	snprintf(pattern, sizeof(pattern), "\"%s\":\"", name);
	p = strstr(body, pattern);
	if (!p)
		return -1;
	p += strlen(pattern);
	end = strchr(p, '"');
	if (!end || (size_t)(end - p) >= size)
		return -1;
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
	return 0;
}

/* The next line, its CRLF cut: valid until the next read. */
static char *read_line(struct etcd *e)
{
	char *line = conn_line(&e->conn);
	size_t len = line ? strlen(line) : 0;

	if (len > 0 && line[len - 1] == '\r')
		line[len - 1] = '\0';
	return line;
}

/* n more bytes of the body after its first *len: what conn_line() has
 * read ahead, then from the socket. */
static int read_body(struct etcd *e, size_t n, size_t *len)
{
	struct conn *c = &e->conn;
	size_t k = c->end - c->start < n ? c->end - c->start : n;

	if (*len + n >= sizeof(e->body))
		return -1;
	memcpy(e->body + *len, c->buf + c->start, k);
	c->start += k;
	*len += k;
	n -= k;
	while (n > 0) {
		ssize_t r = read(c->fd, e->body + *len, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		*len += (size_t)r;
		n -= (size_t)r;
	}
	return 0;
}

/* A response's status line and headers. */
struct head {
	int status;
	long length;            /* -1: none given */
	bool chunked;
};

static int read_head(struct etcd *e, struct head *h)
{
	char *line = read_line(e);

	h->status = -1;
	h->length = -1;
	h->chunked = false;
	if (!line || sscanf(line, "HTTP/1.%*d %d", &h->status) != 1)
		return -1;
	while ((line = read_line(e)) && *line) {
		if (strncasecmp(line, "content-length:", 15) == 0)
			h->length = atol(line + 15);
		else if (strncasecmp(line, "transfer-encoding:", 18) == 0 && strstr(line, "chunked"))
			h->chunked = true;
	}
	return line ? 0 : -1;
}

/* The next chunk of a chunked body, added to body at *len: its size (0
 * for the last), or -1. */
static long read_chunk(struct etcd *e, size_t *len)
{
	char *line = read_line(e);
	size_t n;

	if (!line)
		return -1;
	n = strtoul(line, NULL, 16);
	if (n > 0 && (read_body(e, n, len) < 0 || !read_line(e)))
		return -1;
	return (long)n;
}

/* A response's status, its body in body; -1 when it cannot be read. */
static int read_response(struct etcd *e)
{
	struct head h;
	size_t len = 0;
	long n;
	char *line;

	if (read_head(e, &h) < 0)
		return -1;
	if (h.chunked) {
		while ((n = read_chunk(e, &len)) > 0)
			;
		if (n < 0)
			return -1;
		while ((line = read_line(e)) && *line) /* trailers, to an empty line */
			;
		if (!line)
			return -1;
	} else if (h.length < 0 || read_body(e, (size_t)h.length, &len) < 0) {
		return -1;
	}
	e->body[len] = '\0';
	return h.status;
}

static int send_post(struct etcd *e, const char *path, const char *body)
{
	char request[1024];
	int n = snprintf(request, sizeof(request),
			 "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\n\r\n%s", path, e->host, strlen(body), body);

	if (n < 0 || (size_t)n >= sizeof(request)) {
		fprintf(stderr, "%s: %s: request too long\n", ME, path);
		return -1;
	}
	conn_send(&e->conn, request, (size_t)n);
	return 0;
}

static int refused(struct etcd *e, const char *path, int status)
{
	fprintf(stderr, "%s: %s: %s%s\n", ME, path, status < 0 ? "no answer" : "refused: ",
		status < 0 ? "" : e->body);
	return -1;
}

static int post(struct etcd *e, const char *path, const char *body)
{
	int status;

	if (send_post(e, path, body) < 0)
		return -1;
	status = read_response(e);
	return status == 200 ? 0 : refused(e, path, status);
}

static int tcp_connect(const char *target, char *host, size_t size)
{
	const char *colon = strrchr(target, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	int fd, one = 1;

	if (!colon || (size_t)(colon - target) >= size) {
		fprintf(stderr, "%s: %s: not HOST:PORT\n", ME, target);
		return -1;
	}
	snprintf(host, size, "%.*s", (int)(colon - target), target);
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) {
		fprintf(stderr, "%s: %s: no such address\n", ME, target);
		return -1;
	}
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		fprintf(stderr, "%s: %s: %s\n", ME, target, strerror(errno));
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	snprintf(host, size, "%s", target);
	return fd;
}

struct etcd *etcd_connect(const char *target)
{
	struct etcd *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->conn.fd = tcp_connect(target, e->host, sizeof(e->host));
	if (e->conn.fd < 0 || post(e, "/v3/lease/grant", "{\"TTL\":300}") < 0 ||
	    json_string(e->body, "ID", e->lease, sizeof(e->lease)) < 0) {
		if (e->conn.fd >= 0)
			close(e->conn.fd);
		free(e);
		return NULL;
	}
	return e;
}

void etcd_disconnect(struct etcd *e)
{
	char body[96];

	/* A watching connection serves nothing else: its lease, which holds
	 * nothing, is left to expire. */
	snprintf(body, sizeof(body), "{\"ID\":\"%s\"}", e->lease);
	if (!e->watching)
		post(e, "/v3/lease/revoke", body);
	close(e->conn.fd);
	free(e);
}

int etcd_lock(struct etcd *e, const char *name)
{
	char name64[192], body[320];

	base64(name, name64, sizeof(name64));
	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"lease\":\"%s\"}", name64, e->lease);
	if (post(e, "/v3/lock/lock", body) < 0)
		return -1;
	if (json_string(e->body, "key", e->held, sizeof(e->held)) < 0) {
		fprintf(stderr, "%s: /v3/lock/lock: no key in %s\n", ME, e->body);
		return -1;
	}
	return 0;
}

int etcd_unlock(struct etcd *e)
{
	char body[320];

	snprintf(body, sizeof(body), "{\"key\":\"%s\"}", e->held);
	return post(e, "/v3/lock/unlock", body);
}

/* Whether a second key is under the lock's prefix (the mutex's keys are
 * NAME/LEASE: from "NAME/" up to "NAME0"). */
int etcd_waiting(struct etcd *e, const char *name)
{
	char from[128], to[128], from64[192], to64[192], body[512], count[24] = "0";

	snprintf(from, sizeof(from), "%s/", name);
	snprintf(to, sizeof(to), "%s0", name);
	base64(from, from64, sizeof(from64));
	base64(to, to64, sizeof(to64));
	snprintf(body, sizeof(body), "{\"key\":\"%s\",\"range_end\":\"%s\",\"count_only\":true}",
		 from64, to64);
	if (post(e, "/v3/kv/range", body) < 0)
		return -1;
	json_string(e->body, "count", count, sizeof(count)); /* absent when 0 */
	return atoi(count) >= 2;
}

/* ---- keys and watches ---- */

int etcd_put(struct etcd *e, const char *key, const char *value)
{
	char key64[192], value64[192], body[512];

	base64(key, key64, sizeof(key64));
	base64(value, value64, sizeof(value64));
	snprintf(body, sizeof(body), "{\"key\":\"%s\",\"value\":\"%s\"}", key64, value64);
	return post(e, "/v3/kv/put", body);
}

int etcd_delete(struct etcd *e, const char *key)
{
	char key64[192], body[256];

	base64(key, key64, sizeof(key64));
	snprintf(body, sizeof(body), "{\"key\":\"%s\"}", key64);
	return post(e, "/v3/kv/deleterange", body);
}

int etcd_watch(struct etcd *e, const char *key)
{
	char key64[192], body[256];
	struct head h;

	base64(key, key64, sizeof(key64));
	snprintf(body, sizeof(body), "{\"create_request\":{\"key\":\"%s\"}}", key64);
	if (send_post(e, "/v3/watch", body) < 0)
		return -1;
	e->watching = true;
	if (read_head(e, &h) < 0 || h.status != 200 || !h.chunked) {
		e->body[0] = '\0'; /* not read */
		return refused(e, "/v3/watch", h.status);
	}
	if (etcd_watch_next(e) < 0 || !strstr(e->body, "\"created\":true")) {
		fprintf(stderr, "%s: /v3/watch: not created: %s\n", ME, e->body);
		return -1;
	}
	return 0;
}

int etcd_watch_next(struct etcd *e)
{
	size_t len = 0;

	if (read_chunk(e, &len) <= 0) {
		fprintf(stderr, "%s: /v3/watch: the stream ended\n", ME);
		return -1;
	}
	e->body[len] = '\0';
	return 0;
}

/* ---- as a struct peer: the lock's name is the key ---- */

static void *peer_connect(const char *target)
{
	return etcd_connect(target);
}

static void peer_disconnect(void *conn)
{
	etcd_disconnect(conn);
}

static int peer_lock(void *conn, const char *key)
{
	return etcd_lock(conn, key);
}

static int peer_unlock(void *conn, const char *key)
{
	(void)key;
	return etcd_unlock(conn);
}

static int peer_waiting(void *conn, const char *key)
{
	return etcd_waiting(conn, key);
}

const struct peer etcd_peer = {
	"etcd", peer_connect, peer_disconnect, peer_lock, peer_unlock, peer_waiting,
};
