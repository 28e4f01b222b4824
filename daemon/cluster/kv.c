#include "kv.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "etcd.h"

char *kv_lock_prefix(const char *key, size_t key_len, bool sep, size_t *len)
{
	char *p = malloc(KV_ROOT_LEN + key_len + 1);

	if (!p)
		return NULL;
	memcpy(p, KV_ROOT, KV_ROOT_LEN);
	memcpy(p + KV_ROOT_LEN, key, key_len);
	p[KV_ROOT_LEN + key_len] = '\0';
	*len = KV_ROOT_LEN + key_len + (sep ? 1 : 0);
	return p;
}

char *kv_range_end(const char *p, size_t n, size_t *len)
{
	char *end = malloc(n + 1);

	if (!end)
		return NULL;
	memcpy(end, p, n);
	/* The prefixes here never end in 0xff: they end in a NUL, or in a
	 * key's last byte, which UTF-8 never makes 0xff. */
	end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
	end[n] = '\0';
	*len = n;
	return end;
}

static int kv_parse_one(const json_t *kv, struct kv_req *r)
{
	const char *mode;
	size_t vlen;
	char *value, *nul;

	r->ekey = etcd_get_bytes(kv, "key", &r->ekey_len);
	if (!r->ekey || r->ekey_len <= KV_ROOT_LEN)
		return -1;
	nul = memchr(r->ekey + KV_ROOT_LEN, '\0', r->ekey_len - KV_ROOT_LEN);
	if (!nul)
		return -1;
	r->key = r->ekey + KV_ROOT_LEN;
	r->key_len = (size_t)(nul - r->key);
	r->rev = etcd_get_int(kv, "create_revision", 0);
	value = etcd_get_bytes(kv, "value", &vlen);
	r->value = value ? json_loadb(value, vlen, 0, NULL) : NULL;
	free(value);
	if (!json_is_object(r->value)) {
		json_decref(r->value);
		r->value = json_object();
	}
	mode = json_string_value(json_object_get(r->value, "mode"));
	r->shared = mode && strcmp(mode, "shared") == 0;
	return r->value ? 0 : -1;
}

static int by_lock_then_rev(const void *a, const void *b)
{
	const struct kv_req *x = a, *y = b;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(x->key, y->key, n);

	if (c)
		return c;
	if (x->key_len != y->key_len)
		return x->key_len < y->key_len ? -1 : 1;
	return x->rev < y->rev ? -1 : x->rev > y->rev;
}

long kv_parse(const json_t *range, struct kv_req **out)
{
	const json_t *kvs = json_object_get(range, "kvs"), *kv;
	size_t n = json_array_size(kvs), i;
	struct kv_req *v;

	*out = NULL;
	if (n == 0)
		return 0;
	v = calloc(n, sizeof(*v));
	if (!v)
		return -1;
	json_array_foreach(kvs, i, kv) {
		if (kv_parse_one(kv, &v[i]) < 0) {
			kv_free(v, i + 1);
			return -1;
		}
	}
	qsort(v, n, sizeof(*v), by_lock_then_rev);
	*out = v;
	return (long)n;
}

void kv_free(struct kv_req *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].ekey);
		json_decref(v[i].value);
	}
	free(v);
}

long kv_find(const struct kv_req *v, size_t n, const char *ekey, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].ekey_len == len && memcmp(v[i].ekey, ekey, len) == 0)
			return (long)i;
	return -1;
}

long kv_waits_for(const struct kv_req *v, size_t from, size_t i)
{
	if (!v[i].shared)
		return i > from ? (long)i - 1 : -1;
	for (size_t j = i; j-- > from;)
		if (!v[j].shared)
			return (long)j;
	return -1;
}

int kv_set_times(json_t *o, uint64_t since_us, uint64_t now_us, const char *age)
{
	time_t t = (time_t)(since_us / 1000000);
	json_int_t ms = since_us < now_us ? (json_int_t)((now_us - since_us) / 1000) : 0;
	char day[24], iso[40];
	struct tm tm;

	if (json_object_set_new(o, age, json_integer(ms)) < 0)
		return -1;
	if (!since_us || !gmtime_r(&t, &tm) || !strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	snprintf(iso, sizeof(iso), "%s.%03uZ", day, (unsigned)(since_us / 1000 % 1000));
	if (json_object_set_new(o, "since_ms", json_integer((json_int_t)(since_us / 1000))) < 0 ||
	    json_object_set_new(o, "since", json_string(iso)) < 0)
		return -1;
	return 0;
}

size_t kv_blockers(const struct kv_req *v, size_t from, size_t i)
{
	size_t n = 0;

	if (!v[i].shared)
		return i - from;
	for (size_t j = from; j < i; j++)
		n += !v[j].shared;
	return n;
}

/* One holder or waiter: its value, with its age and fence. */
static json_t *kv_shown(const struct kv_req *r, bool holds, uint64_t now_wall_us)
{
	json_t *o = json_deep_copy(r->value);
	json_int_t since = json_integer_value(json_object_get(o, "since_us"));

	if (!o)
		return NULL;
	json_object_del(o, "since_us");
	json_object_del(o, holds ? "request" : "lease");
	if ((holds && json_object_set_new(o, "fence", json_integer(r->rev)) < 0) ||
	    kv_set_times(o, since > 0 ? (uint64_t)since : 0, now_wall_us,
			 holds ? "held_ms" : "waiting_ms") < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *kv_some(const struct kv_req *v, size_t from, size_t to, uint64_t now_wall_us,
		       bool holders)
{
	json_t *a = json_array();

	for (size_t i = from; a && i < to; i++) {
		if ((kv_waits_for(v, from, i) < 0) != holders)
			continue;
		if (json_array_append_new(a, kv_shown(&v[i], holders, now_wall_us)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

json_t *kv_holders(const struct kv_req *v, size_t from, size_t to, uint64_t now_wall_us)
{
	return kv_some(v, from, to, now_wall_us, true);
}

json_t *kv_waiters(const struct kv_req *v, size_t from, size_t to, uint64_t now_wall_us)
{
	return kv_some(v, from, to, now_wall_us, false);
}
