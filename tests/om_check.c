#include "om_check.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

#define OM_MAX_SERIES 4096
#define OM_MAX_FAMILIES 512
#define OM_MAX_LABELS 16
#define OM_NAME_MAX 256
#define OM_SERIES_MAX 16384

/* One histogram series of the current family: its labels but le. */
struct om_group {
	char labels[OM_SERIES_MAX];
	double last_le, last_count, inf_count, count;
	bool any, inf, has_count;
};

struct om_state {
	char *why;
	size_t n;
	unsigned line;
	char family[OM_NAME_MAX], type[16];
	bool has_help, has_unit, has_family;
	char *families[OM_MAX_FAMILIES];
	size_t nfamilies;
	char *series[OM_MAX_SERIES];
	size_t nseries;
	struct om_group *groups;
	size_t ngroups;
};

struct om_label {
	char name[OM_NAME_MAX];
	char value[OM_SERIES_MAX];
};

struct om_sample {
	char name[OM_NAME_MAX];
	struct om_label labels[OM_MAX_LABELS];
	size_t nlabels;
	double value;
};

static bool om_fail(struct om_state *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool om_fail(struct om_state *s, const char *fmt, ...)
{
	va_list ap;
	int w = snprintf(s->why, s->n, "line %u: ", s->line);

	va_start(ap, fmt);
	if (w > 0 && (size_t)w < s->n)
		vsnprintf(s->why + w, s->n - (size_t)w, fmt, ap);
	va_end(ap);
	return false;
}

static bool om_name_ok(const char *p, size_t n, bool metric)
{
	const char *first = metric ? "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:" :
				     "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_";

	if (n == 0 || n >= OM_NAME_MAX || !strchr(first, p[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!strchr(first, p[i]) && !(p[i] >= '0' && p[i] <= '9'))
			return false;
	return true;
}

static bool om_ends(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* A number as OpenMetrics writes one: a float (strtod's whole string, no
 * hex), +Inf, -Inf or NaN. */
static bool om_number(const char *p, double *out)
{
	char *end;

	if (strcmp(p, "+Inf") == 0 || strcmp(p, "-Inf") == 0) {
		*out = p[0] == '+' ? INFINITY : -INFINITY;
		return true;
	}
	if (strcmp(p, "NaN") == 0) {
		*out = NAN;
		return true;
	}
	if (!*p || strpbrk(p, "xXiInN") || strchr(" \t", p[0]))
		return false;
	*out = strtod(p, &end);
	return *end == '\0';
}

/* Ends the current family: every histogram series had +Inf and _count. */
static bool om_end_family(struct om_state *s)
{
	for (size_t i = 0; i < s->ngroups; i++) {
		struct om_group *g = &s->groups[i];

		if (!g->inf)
			return om_fail(s, "%s{%s} has no +Inf bucket", s->family, g->labels);
		if (!g->has_count || g->count != g->inf_count)
			return om_fail(s, "%s{%s}: _count %g is not its +Inf bucket %g", s->family,
				       g->labels, g->count, g->inf_count);
	}
	free(s->groups);
	s->groups = NULL;
	s->ngroups = 0;
	return true;
}

static bool om_known_family(const struct om_state *s, const char *name)
{
	for (size_t i = 0; i < s->nfamilies; i++)
		if (strcmp(s->families[i], name) == 0)
			return true;
	return false;
}

/* "# TYPE name type", "# HELP name text", "# UNIT name unit". */
static bool om_comment(struct om_state *s, char *line)
{
	static const char *const types[] = { "counter", "gauge", "histogram", "gaugehistogram",
					     "stateset", "info", "summary", "unknown", NULL };
	char *kind = line + 2, *name, *rest;
	size_t nlen;

	if (strncmp(line, "# ", 2) != 0)
		return om_fail(s, "a comment that is not # TYPE, # HELP, # UNIT or # EOF");
	name = strchr(kind, ' ');
	if (!name)
		return om_fail(s, "a comment without a metric name");
	*name++ = '\0';
	rest = strchr(name, ' ');
	nlen = rest ? (size_t)(rest - name) : strlen(name);
	if (!om_name_ok(name, nlen, true))
		return om_fail(s, "bad metric name in # %s", kind);
	if (!rest)
		return om_fail(s, "# %s %s has nothing after the name", kind, name);
	*rest++ = '\0';
	if (strcmp(kind, "TYPE") == 0) {
		bool ok = false;

		for (size_t i = 0; types[i]; i++)
			ok |= strcmp(types[i], rest) == 0;
		if (!ok)
			return om_fail(s, "unknown type '%s'", rest);
		if (s->has_family && !om_end_family(s))
			return false;
		if (om_known_family(s, name) || s->nfamilies == OM_MAX_FAMILIES)
			return om_fail(s, "family %s declared twice", name);
		s->families[s->nfamilies++] = strdup(name);
		snprintf(s->family, sizeof(s->family), "%s", name);
		snprintf(s->type, sizeof(s->type), "%s", rest);
		s->has_family = true;
		s->has_help = s->has_unit = false;
		return true;
	}
	if (!s->has_family || strcmp(name, s->family) != 0)
		return om_fail(s, "# %s %s before its # TYPE", kind, name);
	if (strcmp(kind, "HELP") == 0) {
		if (s->has_help)
			return om_fail(s, "second # HELP for %s", name);
		s->has_help = true;
		return utf8_valid(rest, strlen(rest)) ? true : om_fail(s, "HELP is not UTF-8");
	}
	if (strcmp(kind, "UNIT") == 0) {
		char suffix[OM_NAME_MAX + 2];

		snprintf(suffix, sizeof(suffix), "_%s", rest);
		if (s->has_unit || !om_ends(name, suffix))
			return om_fail(s, "# UNIT %s of %s: twice, or not the end of its name", rest, name);
		s->has_unit = true;
		return true;
	}
	return om_fail(s, "unknown comment # %s", kind);
}

/* A label value after its opening quote, up to the closing one: only \\,
 * \" and \n escapes, UTF-8. Returns the end (past the quote), or NULL. */
static const char *om_label_value(const char *p, char *out, size_t size)
{
	size_t w = 0;

	for (; *p && *p != '"'; p++) {
		char c = *p;

		if (c == '\\') {
			p++;
			if (*p == 'n')
				c = '\n';
			else if (*p == '\\' || *p == '"')
				c = *p;
			else
				return NULL;
		}
		if (w + 1 >= size)
			return NULL;
		out[w++] = c;
	}
	out[w] = '\0';
	return *p == '"' && utf8_valid(out, w) ? p + 1 : NULL;
}

/* {name="value",...} at p; returns the end, or NULL. */
static const char *om_labels(struct om_state *s, const char *p, struct om_sample *x)
{
	p++; /* { */
	while (*p != '}') {
		struct om_label *l = &x->labels[x->nlabels];
		size_t n = strcspn(p, "=");

		if (x->nlabels == OM_MAX_LABELS || !om_name_ok(p, n, false) || p[n] != '=' ||
		    p[n + 1] != '"') {
			om_fail(s, "bad label syntax at '%.20s'", p);
			return NULL;
		}
		memcpy(l->name, p, n);
		l->name[n] = '\0';
		for (size_t i = 0; i < x->nlabels; i++)
			if (strcmp(x->labels[i].name, l->name) == 0) {
				om_fail(s, "label %s twice", l->name);
				return NULL;
			}
		p = om_label_value(p + n + 2, l->value, sizeof(l->value));
		if (!p) {
			om_fail(s, "bad label value of %s", l->name);
			return NULL;
		}
		x->nlabels++;
		if (*p == ',' && p[1] != '}')
			p++;
		else if (*p != '}') {
			om_fail(s, "expected , or } after a label");
			return NULL;
		}
	}
	return p + 1;
}

static bool om_parse_sample(struct om_state *s, const char *line, struct om_sample *x)
{
	size_t n = strcspn(line, "{ ");
	const char *p = line + n;
	char value[64];
	size_t vlen;

	memset(x, 0, sizeof(*x));
	if (!om_name_ok(line, n, true))
		return om_fail(s, "bad sample name in '%.40s'", line);
	memcpy(x->name, line, n);
	if (*p == '{' && !(p = om_labels(s, p, x)))
		return false;
	if (*p != ' ')
		return om_fail(s, "expected one space before the value");
	p++;
	vlen = strcspn(p, " ");
	if (vlen == 0 || vlen >= sizeof(value))
		return om_fail(s, "no value");
	memcpy(value, p, vlen);
	value[vlen] = '\0';
	if (!om_number(value, &x->value))
		return om_fail(s, "bad value '%s'", value);
	if (p[vlen] == ' ' && !om_number(p + vlen + 1, &(double){ 0 }))
		return om_fail(s, "bad timestamp");
	return true;
}

/* The sample's labels but le, sorted by name, as one string. */
static void om_series_key(const struct om_sample *x, bool without_le, char *out, size_t size)
{
	const struct om_label *order[OM_MAX_LABELS];
	size_t n = 0, w = 0;

	for (size_t i = 0; i < x->nlabels; i++)
		if (!without_le || strcmp(x->labels[i].name, "le") != 0)
			order[n++] = &x->labels[i];
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(order[j - 1]->name, order[j]->name) > 0; j--) {
			const struct om_label *t = order[j];

			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	out[0] = '\0';
	for (size_t i = 0; i < n && w < size; i++)
		w += (size_t)snprintf(out + w, size - w, "%s%s=\"%s\"", i ? "," : "", order[i]->name,
				      order[i]->value);
}

static const char *om_label(const struct om_sample *x, const char *name)
{
	for (size_t i = 0; i < x->nlabels; i++)
		if (strcmp(x->labels[i].name, name) == 0)
			return x->labels[i].value;
	return NULL;
}

static struct om_group *om_group(struct om_state *s, const char *labels)
{
	struct om_group *g;

	for (size_t i = 0; i < s->ngroups; i++)
		if (strcmp(s->groups[i].labels, labels) == 0)
			return &s->groups[i];
	g = realloc(s->groups, (s->ngroups + 1) * sizeof(*g));
	if (!g)
		return NULL;
	s->groups = g;
	g = &s->groups[s->ngroups++];
	memset(g, 0, sizeof(*g));
	snprintf(g->labels, sizeof(g->labels), "%s", labels);
	return g;
}

/* A histogram's sample: buckets by increasing le, cumulative, +Inf last,
 * then _count; _sum any time. */
static bool om_histogram(struct om_state *s, const char *suffix, const struct om_sample *x)
{
	const char *le = om_label(x, "le");
	char labels[OM_SERIES_MAX];
	struct om_group *g;
	double bound;

	om_series_key(x, true, labels, sizeof(labels));
	g = om_group(s, labels);
	if (!g)
		return om_fail(s, "out of memory");
	if (strcmp(suffix, "_bucket") != 0) {
		if (le)
			return om_fail(s, "le on %s", x->name);
		if (strcmp(suffix, "_count") == 0) {
			g->has_count = true;
			g->count = x->value;
		}
		return true;
	}
	if (!le || !om_number(le, &bound) || isnan(bound))
		return om_fail(s, "a bucket without a numeric le");
	if (g->inf || g->has_count || (g->any && bound <= g->last_le))
		return om_fail(s, "le=\"%s\" of %s{%s}: not increasing, or after +Inf or _count",
			       le, s->family, labels);
	if (g->any && x->value < g->last_count)
		return om_fail(s, "bucket le=\"%s\" of %s{%s} is %g, less than the one before (%g): "
			       "not cumulative", le, s->family, labels, x->value, g->last_count);
	g->any = true;
	g->last_le = bound;
	g->last_count = x->value;
	if (isinf(bound)) {
		if (strcmp(le, "+Inf") != 0)
			return om_fail(s, "+Inf written as '%s'", le);
		g->inf = true;
		g->inf_count = x->value;
	}
	return true;
}

/* The suffix of the sample's name after its family's, if its family's
 * type allows it; NULL if the sample is not of the current family. */
static const char *om_suffix(const struct om_state *s, const char *name)
{
	static const char *const counter[] = { "_total", "_created", NULL };
	static const char *const histogram[] = { "_bucket", "_count", "_sum", "_created", NULL };
	static const char *const plain[] = { "", NULL };
	const char *const *allowed = strcmp(s->type, "counter") == 0 ? counter :
				     strcmp(s->type, "histogram") == 0 ? histogram : plain;
	size_t n = strlen(s->family);

	if (!s->has_family || strncmp(name, s->family, n) != 0)
		return NULL;
	for (size_t i = 0; allowed[i]; i++)
		if (strcmp(name + n, allowed[i]) == 0)
			return allowed[i];
	return NULL;
}

static bool om_sample(struct om_state *s, const char *line)
{
	struct om_sample x;
	char key[OM_SERIES_MAX + OM_NAME_MAX];
	const char *suffix;
	size_t w;

	if (!om_parse_sample(s, line, &x))
		return false;
	suffix = om_suffix(s, x.name);
	if (!suffix)
		return om_fail(s, "sample %s is not of the family of the last # TYPE (%s %s)", x.name,
			       s->has_family ? s->family : "none", s->type);
	w = (size_t)snprintf(key, sizeof(key), "%s{", x.name);
	om_series_key(&x, false, key + w, sizeof(key) - w);
	for (size_t i = 0; i < s->nseries; i++)
		if (strcmp(s->series[i], key) == 0)
			return om_fail(s, "series %s} twice", key);
	if (s->nseries == OM_MAX_SERIES)
		return om_fail(s, "too many series");
	s->series[s->nseries++] = strdup(key);
	if (strcmp(s->type, "counter") == 0 && (isnan(x.value) || x.value < 0))
		return om_fail(s, "counter %s is %g", x.name, x.value);
	if (strcmp(s->type, "histogram") == 0)
		return om_histogram(s, suffix, &x);
	return true;
}

static bool om_lines(struct om_state *s, const char *text, size_t len)
{
	const char *p = text, *end = text + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		char *line;
		bool ok;

		s->line++;
		if (!nl)
			return om_fail(s, "the last line has no newline");
		if (nl == p)
			return om_fail(s, "a blank line");
		line = strndup(p, (size_t)(nl - p));
		if (!line || strlen(line) != (size_t)(nl - p) || strchr(line, '\r')) {
			free(line);
			return om_fail(s, "NUL or CR in a line");
		}
		if (strcmp(line, "# EOF") == 0)
			ok = nl + 1 == end ? (!s->has_family || om_end_family(s)) :
			     om_fail(s, "# EOF before the end");
		else
			ok = line[0] == '#' ? om_comment(s, line) : om_sample(s, line);
		free(line);
		if (!ok)
			return false;
		if (nl + 1 == end && strncmp(p, "# EOF\n", 6) != 0)
			return om_fail(s, "the text does not end with # EOF");
		p = nl + 1;
	}
	return len > 0 ? true : om_fail(s, "empty: no # EOF");
}

bool om_check(const char *text, size_t len, char *why, size_t n)
{
	struct om_state s = { .why = why, .n = n };
	bool ok = om_lines(&s, text, len);

	for (size_t i = 0; i < s.nfamilies; i++)
		free(s.families[i]);
	for (size_t i = 0; i < s.nseries; i++)
		free(s.series[i]);
	free(s.groups);
	if (ok)
		snprintf(why, n, "ok");
	return ok;
}

double om_value(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return -1;
}
