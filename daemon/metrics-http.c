#include "metrics-http.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "haspd.h"
#include "log.h"
#include "loop.h"
#include "netaddr.h"
#include "openmetrics.h"
#include "report.h"

#define METRICS_HTTP_CONTENT_TYPE "application/openmetrics-text; version=1.0.0; charset=utf-8"
/* A connection that sends nothing, or reads nothing, for this long is
 * closed: the one bound on a slow or idle scraper. */
#define METRICS_HTTP_TIMEOUT_S 10
/* A request's line and headers, at most; a request has no body. */
#define METRICS_HTTP_MAX_HEADERS 8192
#define METRICS_HTTP_MAX_BODY 0
#define METRICS_HTTP_BACKLOG 16
/* Connections at once: a scraper uses one, a few scrapers and a curl fit.
 * At the bound, accepting pauses until one ends. Each is a descriptor of
 * the daemon's, counted in its budget (users.h) from the start. */
#define METRICS_HTTP_MAX_CONNECTIONS 16
/* The most a connection's input holds: far past any request evhttp
 * accepts, and all that one it has freed reads before the sweep. */
#define METRICS_HTTP_MAX_INPUT (64 * 1024)
/* How often the connections are looked at, while there are any. */
#define METRICS_HTTP_SWEEP_MS 100
/* How long to stop accepting after accept(2) failed (EMFILE): libevent's
 * listener would otherwise retry at once, for ever. */
#define METRICS_HTTP_BACKOFF_MS 100

/* The bound on connections. libevent 2.1's evhttp has none of its own
 * (evhttp_set_max_connections() came with 2.2), and no hook says when a
 * connection ends, one that never sent a request included. So each
 * connection's bufferevent is made here (evhttp_set_bevcb()) with a
 * reference of ours: when evhttp frees the connection, the bufferevent
 * stays, without callbacks (bufferevent_free() clears them), until the
 * sweep lets it go, which closes its socket. */
struct metrics_http {
	struct haspd *d;
	struct evhttp *http;
	struct evconnlistener *listener;
	struct bufferevent *conns[METRICS_HTTP_MAX_CONNECTIONS]; /* ours, one reference each */
	size_t nconns;
	struct loop_event *sweep;   /* lets go of ended connections */
	struct loop_event *resume;  /* accepting again after a failed accept */
	bool full;                  /* paused: METRICS_HTTP_MAX_CONNECTIONS open */
	bool backing_off;           /* paused: after a failed accept */
};

/* The listener of the process (main.c makes at most one): libevent calls
 * the listener's error callback with evhttp's argument, not ours. */
static struct metrics_http *metrics_http_current;

/* A request, for the bracket. */
struct metrics_http_call {
	struct metrics_http *m;
	struct evhttp_request *req;
};

/* Answers req with code and body (len bytes) of type. */
static void metrics_http_reply(struct evhttp_request *req, int code, const char *reason,
			       const char *type, const char *body, size_t len)
{
	struct evbuffer *b = evbuffer_new();

	if (!b || evbuffer_add(b, body, len) < 0 ||
	    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type) < 0) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
	} else {
		evhttp_send_reply(req, code, reason, b);
	}
	if (b)
		evbuffer_free(b);
}

static void metrics_http_text(struct evhttp_request *req, int code, const char *reason,
			      const char *text)
{
	metrics_http_reply(req, code, reason, "text/plain; charset=utf-8", text, strlen(text));
}

/* GET /metrics: the stats of this tick, the inner object of the stats
 * reply, as OpenMetrics text. */
static void metrics_http_scrape(struct metrics_http *m, struct evhttp_request *req)
{
	json_t *o = report_stats(m->d);
	char *text = NULL;
	size_t len;
	int r = o ? openmetrics_format(json_object_get(o, "stats"), &text, &len) : -ENOMEM;

	json_decref(o);
	if (r < 0) {
		metrics_http_text(req, HTTP_INTERNAL, "Internal Server Error", "out of memory\n");
		return;
	}
	metrics_http_reply(req, HTTP_OK, "OK", METRICS_HTTP_CONTENT_TYPE, text, len);
	free(text);
}

static void metrics_http_serve(void *arg)
{
	struct metrics_http_call *call = arg;
	struct evhttp_request *req = call->req;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	if (!path || strcmp(path, "/metrics") != 0) {
		metrics_http_text(req, HTTP_NOTFOUND, "Not Found", "not found: try /metrics\n");
	} else if (cmd != EVHTTP_REQ_GET) {
		/* Not even HEAD: libevent 2.1 sends a body to an HTTP/1.0 HEAD. */
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
		metrics_http_text(req, 405, "Method Not Allowed", "only GET\n");
	} else {
		metrics_http_scrape(call->m, req);
	}
}

/* evhttp's callback, run in the bracket like every other of the daemon's:
 * the lock table's clock is this tick's, output is flushed after. */
static void metrics_http_request(struct evhttp_request *req, void *arg)
{
	struct metrics_http_call call = { arg, req };

	loop_call(&call.m->d->loop, metrics_http_serve, &call);
}

/* Accepts again unless still paused for the other reason. */
static void metrics_http_accept_again(struct metrics_http *m)
{
	if (!m->full && !m->backing_off)
		evconnlistener_enable(m->listener);
}

static void metrics_http_resume(void *arg)
{
	struct metrics_http *m = arg;

	m->backing_off = false;
	metrics_http_accept_again(m);
}

static void metrics_http_plan_sweep(struct metrics_http *m)
{
	struct timeval tv = { 0, METRICS_HTTP_SWEEP_MS * 1000 };

	/* If it cannot be armed, the next connection tries again. */
	if (m->nconns > 0 && !loop_event_pending(m->sweep))
		loop_event_add(m->sweep, &tv);
}

/* Lets go of the connections evhttp has freed (their callbacks are gone),
 * which closes them; accepts again below the bound. */
static void metrics_http_sweep(void *arg)
{
	struct metrics_http *m = arg;

	for (size_t i = 0; i < m->nconns;) {
		bufferevent_data_cb read_cb;

		bufferevent_getcb(m->conns[i], &read_cb, NULL, NULL, NULL);
		if (read_cb) {
			i++;
			continue;
		}
		bufferevent_decref(m->conns[i]);
		m->conns[i] = m->conns[--m->nconns];
	}
	if (m->full && m->nconns < METRICS_HTTP_MAX_CONNECTIONS) {
		m->full = false;
		metrics_http_accept_again(m);
	}
	metrics_http_plan_sweep(m);
}

/* A connection accepted, for the bracket: its bufferevent, to make. */
struct metrics_http_accepted {
	struct metrics_http *m;
	struct event_base *base;
	struct bufferevent *bev;
};

/* A new connection's bufferevent, with a reference of ours; at the bound,
 * accepting pauses (libevent's listener stops its accept loop at once).
 * NULL, for evhttp to make one itself (not counted), only for want of
 * memory, when evhttp's own is not likely either. */
static void metrics_http_count(void *arg)
{
	struct metrics_http_accepted *a = arg;
	struct metrics_http *m = a->m;

	if (m->nconns == METRICS_HTTP_MAX_CONNECTIONS)
		return; /* not while paused */
	a->bev = bufferevent_socket_new(a->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!a->bev)
		return;
	bufferevent_setwatermark(a->bev, EV_READ, 0, METRICS_HTTP_MAX_INPUT);
	bufferevent_incref(a->bev);
	m->conns[m->nconns++] = a->bev;
	if (m->nconns == METRICS_HTTP_MAX_CONNECTIONS) {
		m->full = true;
		evconnlistener_disable(m->listener);
	}
	metrics_http_plan_sweep(m);
}

/* evhttp_set_bevcb()'s callback, in the bracket as every other. */
static struct bufferevent *metrics_http_bev(struct event_base *base, void *arg)
{
	struct metrics_http_accepted a = { arg, base, NULL };

	loop_call(&a.m->d->loop, metrics_http_count, &a);
	return a.bev;
}

/* accept(2) failed, for the bracket: why. */
struct metrics_http_failed {
	struct metrics_http *m;
	int err;
};

/* accept(2) failed (out of descriptors): rest a while rather than spin. */
static void metrics_http_back_off(void *arg)
{
	struct metrics_http_failed *f = arg;
	struct metrics_http *m = f->m;
	struct timeval tv = { 0, METRICS_HTTP_BACKOFF_MS * 1000 };

	if (loop_event_add(m->resume, &tv) < 0)
		return; /* without the timer, stopping could last for good */
	m->backing_off = true;
	evconnlistener_disable(m->listener);
	log_warn("metrics_listen: accept: %s; not accepting for %d ms", strerror(f->err),
		 METRICS_HTTP_BACKOFF_MS);
}

/* The listener's error callback, in the bracket; arg is evhttp's. */
static void metrics_http_accept_error(struct evconnlistener *l, void *arg)
{
	struct metrics_http_failed f = { metrics_http_current, errno };

	(void)l, (void)arg;
	if (f.m)
		loop_call(&f.m->d->loop, metrics_http_back_off, &f);
}

/* A listening socket on addr, or -1 with the reason logged. */
static int metrics_http_socket(const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	if (netaddr_parse(addr, &ss, &len) < 0) {
		log_err("metrics_listen: '%s' is not a numeric address and port such as "
			"127.0.0.1:9466 or [::1]:9466", addr);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_err("metrics_listen: socket: %s", strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int)) < 0 ||
	    (ss.ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int){ 1 }, sizeof(int)) < 0) ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, METRICS_HTTP_BACKLOG) < 0) {
		log_err("metrics_listen: cannot listen on %s: %s", addr, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* evhttp's limits: a scrape is a GET with a few headers and no body. */
static void metrics_http_limit(struct evhttp *http)
{
	evhttp_set_timeout(http, METRICS_HTTP_TIMEOUT_S);
	evhttp_set_max_headers_size(http, METRICS_HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(http, METRICS_HTTP_MAX_BODY);
	/* The methods that reach metrics_http_request(), to be told 405 there
	 * unless GET; evhttp answers the others (TRACE, CONNECT) 501. */
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
				   EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(http, "text/plain; charset=utf-8");
}

struct metrics_http *metrics_http_new(struct haspd *d, const char *addr)
{
	struct metrics_http *m = calloc(1, sizeof(*m));
	struct evhttp_bound_socket *bound;
	int fd;

	if (!m || !(m->http = evhttp_new(d->base)) ||
	    !(m->resume = loop_event_new(&d->loop, -1, 0, metrics_http_resume, m)) ||
	    !(m->sweep = loop_event_new(&d->loop, -1, 0, metrics_http_sweep, m))) {
		log_err("metrics_listen: out of memory");
		return metrics_http_free(m);
	}
	m->d = d;
	metrics_http_limit(m->http);
	evhttp_set_gencb(m->http, metrics_http_request, m);
	evhttp_set_bevcb(m->http, metrics_http_bev, m);
	fd = metrics_http_socket(addr);
	if (fd < 0)
		return metrics_http_free(m);
	bound = evhttp_accept_socket_with_handle(m->http, fd);
	if (!bound) {
		log_err("metrics_listen: cannot serve on %s: out of memory", addr);
		close(fd);
		return metrics_http_free(m);
	}
	m->listener = evhttp_bound_socket_get_listener(bound);
	evconnlistener_set_error_cb(m->listener, metrics_http_accept_error);
	metrics_http_current = m;
	/* The listening socket and its connections are the daemon's own
	 * descriptors (users.h). */
	d->users.fds_base += 1 + METRICS_HTTP_MAX_CONNECTIONS;
	return m;
}

struct metrics_http *metrics_http_free(struct metrics_http *m)
{
	if (!m)
		return NULL;
	if (m->listener)
		m->d->users.fds_base -= 1 + METRICS_HTTP_MAX_CONNECTIONS;
	if (metrics_http_current == m)
		metrics_http_current = NULL;
	if (m->http)
		evhttp_free(m->http); /* every connection: bufferevent_free() */
	for (size_t i = 0; i < m->nconns; i++)
		bufferevent_decref(m->conns[i]);
	loop_event_free(m->sweep);
	loop_event_free(m->resume);
	free(m);
	return NULL;
}
