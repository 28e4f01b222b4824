#include "etcd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "base64.h"
#include "clock.h"
#include "list.h"
#include "loop.h"

/* One attempt on one endpoint waits this long at most, and half its call's
 * bound at most, but not under ATTEMPT_MIN_MS. */
#define ATTEMPT_MS 2000
#define ATTEMPT_MIN_MS 250
/* Calls at once (each on a connection of its own); the rest queue. The
 * lease's own calls may take a few more. */
#define BUSY_MAX 32
#define URGENT_RESERVE 4
/* After every endpoint failed in a row, the next round waits this long. */
#define ROUND_PAUSE_MS 100
/* Idle connections kept for the next calls; more are closed. */
#define IDLE_MAX 16
/* A watch is quiet while its key is held; evhttp's default would close it
 * after 50 s. A closed watch is opened again (its owner reads again). */
#define WATCH_TIMEOUT_S 3600

struct econn {
	struct evhttp_connection *evcon;
	size_t ep;                  /* the endpoint it is connected to */
	bool reused;                /* taken idle: the server may have closed it */
	struct list link;           /* in etcd.idle, or etcd.dead */
};

struct etcd_call {
	struct etcd *e;
	char *path;
	char *body;
	size_t len;
	etcd_done_fn cb;            /* NULL once forgotten */
	void *arg;
	uint64_t deadline_us;
	unsigned failures;          /* attempts failed in a row */
	char why[160];              /* the last failure */
	unsigned timeout_ms;        /* its bound, from its start */
	bool urgent;                /* ahead of the queue, with a reserve */
	bool started;               /* holds one of etcd.busy's places */
	bool sending;               /* inside evhttp_make_request() */
	bool failed_in_send;        /* and evhttp said it failed, from inside */
	bool stale_retried;         /* tried again after a kept-alive connection failed */
	struct econn *conn;         /* the attempt's, while it is made */
	struct loop_event *retry;
	struct list link;           /* in etcd.queue until started, then etcd.calls */
};

struct etcd_watch {
	struct etcd *e;
	struct evhttp_connection *evcon;
	char *key;                  /* what it watches, for the check */
	size_t len;
	int64_t since;
	struct etcd_call *check;    /* reading the key once the watch is made */
	struct evbuffer *acc;       /* the stream's bytes not yet a whole line */
	const struct etcd_watch_ops *ops;
	void *arg;
	bool done;                  /* told its end, or cancelled */
	bool sending;               /* inside evhttp_make_request() */
	bool failed_in_send;        /* and evhttp said it failed, from inside */
	struct list link;           /* in etcd.watches, then etcd.dead_watches */
	struct list end_link;       /* in etcd.ending: to be told it ended */
};

struct etcd {
	struct loop *loop;
	struct endpoint eps[ENDPOINTS_MAX];
	size_t n, cur;
	unsigned call_ms;
	struct list idle;           /* econn.link: connections to reuse */
	size_t nidle;
	struct list dead;           /* econn.link: to free outside their callbacks */
	struct list calls;          /* etcd_call.link: started */
	struct list queue;          /* etcd_call.link: waiting for a place */
	size_t busy;                /* calls started: each has a connection */
	struct list watches;        /* etcd_watch.link */
	struct list dead_watches;
	struct list ending;         /* etcd_watch.end_link: failed as they were made */
	struct evdns_base *dns;     /* for endpoints given by name, else NULL */
	struct loop_event *sweep;   /* frees the dead, tells the ending */
	uint64_t calls_total, errors_total;
};

static void set_timeout_ms(struct evhttp_connection *evcon, uint64_t ms)
{
	struct timeval tv = clock_timeval(ms * 1000);

	evhttp_connection_set_timeout_tv(evcon, &tv);
}

/* ---- connections ---- */

static struct evhttp_connection *evcon_new(struct etcd *e, size_t ep)
{
	struct evhttp_connection *evcon = evhttp_connection_base_new(
		e->loop->base, e->dns, e->eps[ep].host, e->eps[ep].port);

	if (evcon)
		evhttp_connection_set_retries(evcon, 0);
	return evcon;
}

static void sweep_soon(struct etcd *e)
{
	static const struct timeval now;

	if (!loop_event_pending(e->sweep))
		loop_event_add(e->sweep, &now);
}

static void econn_bury(struct etcd *e, struct econn *k)
{
	list_add_tail(&e->dead, &k->link);
	sweep_soon(e);
}

/* An idle connection to the current endpoint, or NULL. */
static struct econn *econn_idle(struct etcd *e)
{
	struct list *pos, *tmp;

	list_foreach_safe(pos, tmp, &e->idle) {
		struct econn *k = container_of(pos, struct econn, link);

		list_del(&k->link);
		e->nidle--;
		if (k->ep == e->cur) {
			k->reused = true;
			return k;
		}
		econn_bury(e, k); /* to an endpoint no longer used */
	}
	return NULL;
}

/* An idle connection to the current endpoint (unless fresh), or a new one. */
static struct econn *econn_take(struct etcd *e, bool fresh)
{
	struct econn *k = fresh ? NULL : econn_idle(e);

	if (k)
		return k;
	k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->ep = e->cur;
	k->evcon = evcon_new(e, e->cur);
	if (!k->evcon) {
		free(k);
		return NULL;
	}
	return k;
}

static void watch_free(struct etcd_watch *w)
{
	if (w->evcon)
		evhttp_connection_free(w->evcon);
	if (w->acc)
		evbuffer_free(w->acc);
	free(w->key);
	free(w);
}

static void watch_end(struct etcd_watch *w, const char *why);

static void sweep(void *arg)
{
	struct etcd *e = arg;
	struct list *pos, *tmp;

	while (!list_empty(&e->ending)) {
		struct etcd_watch *w = container_of(e->ending.next, struct etcd_watch, end_link);

		list_del(&w->end_link);
		list_init(&w->end_link);
		watch_end(w, "the watch's connection could not be made");
	}
	list_foreach_safe(pos, tmp, &e->dead) {
		struct econn *k = container_of(pos, struct econn, link);

		list_del(&k->link);
		evhttp_connection_free(k->evcon);
		free(k);
	}
	list_foreach_safe(pos, tmp, &e->dead_watches) {
		struct etcd_watch *w = container_of(pos, struct etcd_watch, link);

		list_del(&w->link);
		watch_free(w);
	}
}

/* ---- unary calls ---- */

static void call_next(struct etcd *e);

static void call_free(struct etcd_call *c)
{
	struct etcd *e = c->e;

	list_del(&c->link);
	loop_event_free(c->retry);
	free(c->path);
	free(c->body);
	if (c->started) {
		e->busy--;
		call_next(e);
	}
	free(c);
}

static void call_finish(struct etcd_call *c, json_t *reply, const char *error)
{
	if (error)
		c->e->errors_total++;
	if (c->cb)
		c->cb(c->arg, reply, error);
	call_free(c);
}

static void on_call_reply(struct evhttp_request *req, void *arg);

static void add_headers(struct evhttp_request *req, const struct endpoint *ep)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char host[sizeof(ep->host) + 8];

	snprintf(host, sizeof(host), "%s:%u", ep->host, (unsigned)ep->port);
	evhttp_add_header(h, "Host", host);
	evhttp_add_header(h, "Content-Type", "application/json");
}

static void call_failed(struct etcd_call *c, size_t ep, const char *why);

/* One attempt's bound: half the call's at most (so that a member that
 * hangs leaves time for another), at least ATTEMPT_MIN_MS. */
static uint64_t attempt_ms(const struct etcd_call *c)
{
	uint64_t half = c->timeout_ms / 2;

	if (half < ATTEMPT_MIN_MS)
		half = ATTEMPT_MIN_MS;
	return half < ATTEMPT_MS ? half : ATTEMPT_MS;
}

/* One attempt on the current endpoint. evhttp may fail it from inside
 * evhttp_make_request() (a connect that fails at once): then, as when it
 * cannot be made, it fails here, once, and is tried again later. */
static void call_send(struct etcd_call *c)
{
	struct etcd *e = c->e;
	uint64_t now = clock_us(CLOCK_MONOTONIC);
	uint64_t left = c->deadline_us > now ? (c->deadline_us - now) / 1000 : 1;
	uint64_t attempt = attempt_ms(c);
	struct econn *k = econn_take(e, c->stale_retried);
	struct evhttp_request *req = k ? evhttp_request_new(on_call_reply, c) : NULL;
	size_t ep = k ? k->ep : e->cur;
	int r = -1;

	if (req) {
		add_headers(req, &e->eps[k->ep]);
		set_timeout_ms(k->evcon, left < attempt ? (left ? left : 1) : attempt);
		if (evbuffer_add(evhttp_request_get_output_buffer(req), c->body, c->len) < 0) {
			evhttp_request_free(req);
		} else {
			c->conn = k;
			c->sending = true;
			r = evhttp_make_request(k->evcon, req, EVHTTP_REQ_POST, c->path);
			c->sending = false;
		}
	}
	if (r == 0 && !c->failed_in_send)
		return;
	c->failed_in_send = false;
	c->conn = NULL;
	if (k)
		econn_bury(e, k);
	call_failed(c, ep, k ? "could not connect" : "out of memory or descriptors");
}

static void call_retry(void *arg)
{
	struct etcd_call *c = arg;
	char msg[256];

	if (clock_us(CLOCK_MONOTONIC) < c->deadline_us) {
		call_send(c);
		return;
	}
	snprintf(msg, sizeof(msg), "unavailable: no etcd endpoint answered within %u ms (last: %s)",
		 c->timeout_ms, c->why);
	call_finish(c, NULL, msg);
}

/* The attempt failed on the current endpoint: the next, a moment later
 * (after a whole round, a little more), or the end when time is up. */
static void call_failed(struct etcd_call *c, size_t ep, const char *why)
{
	struct etcd *e = c->e;
	uint64_t now = clock_us(CLOCK_MONOTONIC), pause = 0;
	struct timeval tv;

	snprintf(c->why, sizeof(c->why), "%s", why);
	if (ep == e->cur)
		e->cur = (e->cur + 1) % e->n;
	c->conn = NULL;
	if (++c->failures % e->n == 0)
		pause = ROUND_PAUSE_MS * 1000;
	if (now + pause >= c->deadline_us) /* the end, told by call_retry() */
		pause = c->deadline_us > now ? c->deadline_us - now : 0;
	/* Never at once: call_send() may be inside etcd_post(). */
	tv = clock_timeval(pause);
	if (loop_event_add(c->retry, &tv) < 0)
		call_finish(c, NULL, "unavailable: out of memory for a call to etcd");
}

/* etcd's message in an error reply, else the HTTP status. */
static void error_text(json_t *body, int code, char *buf, size_t size)
{
	const char *m = json_string_value(json_object_get(body, "message"));

	if (!m)
		m = json_string_value(json_object_get(body, "error"));
	if (m)
		snprintf(buf, size, "etcd: %.200s", m);
	else
		snprintf(buf, size, "etcd answered HTTP %d", code);
}

struct reply_ctx {
	struct etcd_call *c;
	struct evhttp_request *req;
};

static void call_replied(void *arg)
{
	struct reply_ctx *r = arg;
	struct etcd_call *c = r->c;
	struct etcd *e = c->e;
	struct econn *k = c->conn;
	int code = r->req ? evhttp_request_get_response_code(r->req) : 0;
	struct evbuffer *in;
	json_t *body = NULL;
	char why[256];

	c->conn = NULL;
	if (code == 0) {
		econn_bury(e, k);
		/* A kept-alive connection the server had closed: at once, on a
		 * new one, once. */
		if (k->reused && !c->stale_retried &&
		    loop_event_add(c->retry, &(struct timeval){ 0, 0 }) == 0) {
			c->stale_retried = true;
			return;
		}
		call_failed(c, k->ep, "no reply (refused, reset or timed out)");
		return;
	}
	in = evhttp_request_get_input_buffer(r->req);
	body = json_loadb((const char *)evbuffer_pullup(in, -1), evbuffer_get_length(in), 0, NULL);
	if (e->nidle < IDLE_MAX) {
		list_add_tail(&e->idle, &k->link);
		e->nidle++;
	} else {
		econn_bury(e, k);
	}
	if (code == 200 && json_is_object(body)) {
		call_finish(c, body, NULL);
	} else {
		error_text(body, code, why, sizeof(why));
		if (code >= 500)
			call_failed(c, k->ep, why);
		else
			call_finish(c, NULL, why);
	}
	json_decref(body);
}

static void on_call_reply(struct evhttp_request *req, void *arg)
{
	struct etcd_call *c = arg;
	struct reply_ctx r = { c, req };

	if (c->sending) {
		c->failed_in_send = true; /* call_send() goes on */
		return;
	}
	loop_call(c->e->loop, call_replied, &r);
}

/* Starts c: it takes a place and its first attempt is made. */
static void call_start(struct etcd_call *c)
{
	struct etcd *e = c->e;

	list_del(&c->link);
	list_add_tail(&e->calls, &c->link);
	c->started = true;
	e->busy++;
	e->calls_total++;
	/* Its bound counts from when it was asked for, queued or not. */
	if (clock_us(CLOCK_MONOTONIC) >= c->deadline_us)
		loop_event_add(c->retry, &(struct timeval){ 0, 0 }); /* its end */
	else
		call_send(c);
}

/* The queue's first call, if a place is free. */
static void call_next(struct etcd *e)
{
	struct etcd_call *c;

	if (list_empty(&e->queue))
		return;
	c = container_of(e->queue.next, struct etcd_call, link);
	if (e->busy < BUSY_MAX || (c->urgent && e->busy < BUSY_MAX + URGENT_RESERVE))
		call_start(c);
}

static struct etcd_call *call_new(struct etcd *e, const char *path, json_t *body,
				  unsigned timeout_ms, bool urgent, etcd_done_fn cb, void *arg)
{
	struct etcd_call *c = calloc(1, sizeof(*c));

	if (!c) {
		json_decref(body);
		return NULL;
	}
	c->e = e;
	c->cb = cb;
	c->arg = arg;
	c->timeout_ms = timeout_ms;
	c->urgent = urgent;
	c->path = strdup(path);
	c->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!c->path || !c->body) {
		free(c->path);
		free(c->body);
		free(c);
		return NULL;
	}
	c->len = strlen(c->body);
	c->deadline_us = clock_us(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000;
	/* Queued (an urgent one first); started now if a place is free. The
	 * first attempt is made from here: its callback comes later. */
	c->retry = loop_event_new(e->loop, -1, 0, call_retry, c);
	if (!c->retry) {
		free(c->path);
		free(c->body);
		free(c);
		return NULL;
	}
	if (urgent)
		list_add_tail(e->queue.next, &c->link);
	else
		list_add_tail(&e->queue, &c->link);
	call_next(e);
	return c;
}

struct etcd_call *etcd_post(struct etcd *e, const char *path, json_t *body, etcd_done_fn cb,
			    void *arg)
{
	return call_new(e, path, body, e->call_ms, false, cb, arg);
}

struct etcd_call *etcd_post_urgent(struct etcd *e, const char *path, json_t *body,
				   unsigned timeout_ms, etcd_done_fn cb, void *arg)
{
	return call_new(e, path, body, timeout_ms, true, cb, arg);
}

void etcd_call_forget(struct etcd_call *c)
{
	c->cb = NULL;
	if (!c->started)
		call_free(c); /* still queued: never made */
}

/* ---- watches ---- */

static void watch_end(struct etcd_watch *w, const char *why)
{
	if (w->done)
		return;
	w->done = true;
	w->ops->ended(w->arg, why);
}

static void watch_checked(void *arg, json_t *reply, const char *error)
{
	struct etcd_watch *w = arg;

	w->check = NULL;
	if (w->done)
		return;
	if (error) {
		watch_end(w, error);
	} else if (etcd_get_int(reply, "count", 0) == 0) {
		w->done = true;
		w->ops->deleted(w->arg, etcd_get_int(json_object_get(reply, "header"), "revision", 0));
	}
}

/* The watch is made, from revision rev on: a deletion at or before it is
 * found by reading the key. */
static void watch_created(struct etcd_watch *w, int64_t rev)
{
	json_t *body;

	if (rev <= w->since)
		return;
	body = json_pack("{s:o,s:b}", "key", etcd_bytes(w->key, w->len), "count_only", 1);
	w->check = body ? etcd_post(w->e, "/v3/kv/range", body, watch_checked, w) : NULL;
	if (!w->check)
		watch_end(w, "out of memory");
}

/* One message of the stream. */
static void watch_message(struct etcd_watch *w, json_t *msg)
{
	json_t *result = json_object_get(msg, "result"), *events, *ev;
	char why[256];
	size_t i;

	if (!json_is_object(result)) {
		error_text(json_object_get(msg, "error"), 0, why, sizeof(why));
		watch_end(w, why);
		return;
	}
	if (json_is_true(json_object_get(result, "canceled"))) {
		if (etcd_get_int(result, "compact_revision", 0) > 0)
			watch_end(w, "compacted");
		else
			watch_end(w, "cancelled by etcd");
		return;
	}
	if (json_is_true(json_object_get(result, "created")))
		watch_created(w, etcd_get_int(json_object_get(result, "header"), "revision", 0));
	events = json_object_get(result, "events");
	json_array_foreach(events, i, ev) {
		const char *type = json_string_value(json_object_get(ev, "type"));

		if (type && strcmp(type, "DELETE") == 0 && !w->done) {
			w->done = true;
			w->ops->deleted(w->arg, etcd_get_int(json_object_get(ev, "kv"),
							     "mod_revision", 0));
			return;
		}
	}
}

struct chunk_ctx {
	struct etcd_watch *w;
	struct evhttp_request *req;
};

static void watch_chunk(void *arg)
{
	struct chunk_ctx *ctx = arg;
	struct etcd_watch *w = ctx->w;
	size_t n;

	evbuffer_add_buffer(w->acc, evhttp_request_get_input_buffer(ctx->req));
	while (!w->done) {
		struct evbuffer_ptr eol = evbuffer_search_eol(w->acc, NULL, &n, EVBUFFER_EOL_LF);
		json_t *msg;

		if (eol.pos < 0)
			break;
		msg = json_loadb((const char *)evbuffer_pullup(w->acc, eol.pos), (size_t)eol.pos, 0,
				 NULL);
		evbuffer_drain(w->acc, (size_t)eol.pos + n);
		if (msg)
			watch_message(w, msg);
		else
			watch_end(w, "etcd sent a watch message that is not JSON");
		json_decref(msg);
	}
}

static void on_watch_chunk(struct evhttp_request *req, void *arg)
{
	struct chunk_ctx ctx = { arg, req };

	if (!ctx.w->done)
		loop_call(ctx.w->e->loop, watch_chunk, &ctx);
}

static void watch_closed(void *arg)
{
	struct chunk_ctx *ctx = arg;
	int code = ctx->req ? evhttp_request_get_response_code(ctx->req) : 0;
	char why[64];

	if (ctx->req && code == 200)
		watch_chunk(ctx); /* a last message with the end */
	snprintf(why, sizeof(why), code ? "the watch's stream ended (HTTP %d)" :
		 "the watch's connection failed", code);
	watch_end(ctx->w, why);
}

static void on_watch_done(struct evhttp_request *req, void *arg)
{
	struct chunk_ctx ctx = { arg, req };

	if (ctx.w->sending) {
		ctx.w->failed_in_send = true; /* etcd_watch() goes on */
		return;
	}
	if (!ctx.w->done)
		loop_call(ctx.w->e->loop, watch_closed, &ctx);
}

static int watch_send(struct etcd_watch *w)
{
	struct etcd *e = w->e;
	json_t *body = json_pack("{s:{s:o,s:[s]}}", "create_request", "key",
				 etcd_bytes(w->key, w->len), "filters", "NOPUT");
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct evhttp_request *req = text ? evhttp_request_new(on_watch_done, w) : NULL;
	int r = -1;

	json_decref(body);
	if (req) {
		add_headers(req, &e->eps[e->cur]);
		/* Without it a member that lost its leader keeps the watch,
		 * silent, forever. */
		evhttp_add_header(evhttp_request_get_output_headers(req), "Grpc-Metadata-hasleader",
				  "true");
		evhttp_request_set_chunked_cb(req, on_watch_chunk);
		if (evbuffer_add(evhttp_request_get_output_buffer(req), text, strlen(text)) == 0) {
			w->sending = true;
			r = evhttp_make_request(w->evcon, req, EVHTTP_REQ_POST, "/v3/watch");
			w->sending = false;
			r = r < 0 || w->failed_in_send ? -1 : 0;
		} else {
			evhttp_request_free(req);
		}
	}
	free(text);
	return r;
}

struct etcd_watch *etcd_watch(struct etcd *e, const void *key, size_t len, int64_t since,
			      const struct etcd_watch_ops *ops, void *arg)
{
	struct etcd_watch *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->e = e;
	w->ops = ops;
	w->arg = arg;
	w->since = since;
	list_init(&w->end_link);
	w->len = len;
	w->key = malloc(len ? len : 1);
	if (w->key)
		memcpy(w->key, key, len);
	w->acc = evbuffer_new();
	w->evcon = evcon_new(e, e->cur);
	list_add_tail(&e->watches, &w->link);
	if (w->evcon)
		evhttp_connection_set_timeout(w->evcon, WATCH_TIMEOUT_S);
	if (!w->key || !w->acc || !w->evcon) {
		list_del(&w->link);
		watch_free(w);
		return NULL;
	}
	if (watch_send(w) < 0) {
		/* Told later, never from inside this call. */
		list_add_tail(&e->ending, &w->end_link);
		sweep_soon(e);
	}
	return w;
}

struct etcd_watch *etcd_watch_cancel(struct etcd_watch *w)
{
	if (!w)
		return NULL;
	if (!list_empty(&w->end_link))
		list_del(&w->end_link);
	w->done = true;
	if (w->check)
		etcd_call_forget(w->check);
	list_del(&w->link);
	list_add_tail(&w->e->dead_watches, &w->link);
	sweep_soon(w->e);
	return NULL;
}

/* ---- the client ---- */

static bool numeric_endpoints(const struct etcd *e)
{
	unsigned char addr[16];

	for (size_t i = 0; i < e->n; i++)
		if (inet_pton(AF_INET, e->eps[i].host, addr) != 1 &&
		    inet_pton(AF_INET6, e->eps[i].host, addr) != 1)
			return false;
	return true;
}

struct etcd *etcd_new(struct loop *loop, const struct endpoint *eps, size_t n, unsigned ttl_s)
{
	struct etcd *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->loop = loop;
	memcpy(e->eps, eps, n * sizeof(*eps));
	e->n = n;
	e->call_ms = ttl_s > 2 ? ttl_s * 500 : 1000;
	list_init(&e->idle);
	list_init(&e->dead);
	list_init(&e->calls);
	list_init(&e->queue);
	list_init(&e->ending);
	list_init(&e->watches);
	list_init(&e->dead_watches);
	e->sweep = loop_event_new(loop, -1, 0, sweep, e);
	if (!e->sweep) {
		free(e);
		return NULL;
	}
	/* A name is looked up without blocking the loop; a numeric address
	 * needs no resolver. */
	if (!numeric_endpoints(e))
		e->dns = evdns_base_new(loop->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	return e;
}

void etcd_free(struct etcd *e)
{
	struct list *pos, *tmp;

	if (!e)
		return;
	list_foreach_safe(pos, tmp, &e->watches)
		etcd_watch_cancel(container_of(pos, struct etcd_watch, link));
	list_foreach_safe(pos, tmp, &e->queue)
		call_free(container_of(pos, struct etcd_call, link));
	list_foreach_safe(pos, tmp, &e->calls) {
		struct etcd_call *c = container_of(pos, struct etcd_call, link);

		if (c->conn)
			econn_bury(e, c->conn);
		c->started = false; /* no next to start */
		call_free(c);
	}
	list_foreach_safe(pos, tmp, &e->idle) {
		list_del(pos);
		list_add_tail(&e->dead, pos);
	}
	sweep(e);
	loop_event_free(e->sweep);
	if (e->dns)
		evdns_base_free(e->dns, 0);
	free(e);
}

void etcd_endpoint(const struct etcd *e, char *buf, size_t size)
{
	snprintf(buf, size, "http://%s:%u", e->eps[e->cur].host, (unsigned)e->eps[e->cur].port);
}

void etcd_counts(const struct etcd *e, uint64_t *calls, uint64_t *errors)
{
	*calls = e->calls_total;
	*errors = e->errors_total;
}

/* ---- the gateway's encoding ---- */

json_t *etcd_bytes(const void *p, size_t len)
{
	char *text = malloc(BASE64_LEN(len) + 1);
	json_t *v;

	if (!text)
		return NULL;
	base64_encode(p, len, text);
	v = json_string(text);
	free(text);
	return v;
}

json_t *etcd_int(int64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRId64, v);
	return json_string(buf);
}

int64_t etcd_get_int(const json_t *obj, const char *name, int64_t def)
{
	const json_t *v = json_object_get(obj, name);

	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_string(v))
		return strtoll(json_string_value(v), NULL, 10);
	return def;
}

char *etcd_get_bytes(const json_t *obj, const char *name, size_t *len)
{
	const char *text = json_string_value(json_object_get(obj, name));
	size_t n = text ? strlen(text) : 0;
	unsigned char *out;
	long got;

	if (!text)
		return NULL;
	out = malloc(n / 4 * 3 + 1);
	if (!out)
		return NULL;
	got = base64_decode(text, n, out);
	if (got < 0) {
		free(out);
		return NULL;
	}
	out[got] = '\0';
	*len = (size_t)got;
	return (char *)out;
}
