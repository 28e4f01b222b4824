#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MAX_RESULTS 64

static struct result results[MAX_RESULTS];
static size_t nresults;

void samples_add(struct samples *s, double us)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		if (!s->v) {
			perror("hasp-bench: realloc");
			exit(1);
		}
	}
	s->v[s->n++] = us;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double samples_pct(struct samples *s, double pct)
{
	size_t i;

	if (s->n == 0)
		return -1;
	qsort(s->v, s->n, sizeof(*s->v), cmp_double);
	i = (size_t)(pct / 100.0 * (double)(s->n - 1) + 0.5);
	return s->v[i];
}

void samples_free(struct samples *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

struct result *result_add(const char *name)
{
	struct result *r;

	if (nresults == MAX_RESULTS) {
		fputs("hasp-bench: too many results\n", stderr);
		exit(1);
	}
	r = &results[nresults++];
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->median_us = r->p99_us = r->ops = r->ratio = -1;
	return r;
}

/* A column: "-" when not measured, else decimals digits after the point. */
static void print_num(double v, int decimals, const char *suffix)
{
	char buf[32];

	if (v < 0)
		snprintf(buf, sizeof(buf), "-");
	else
		snprintf(buf, sizeof(buf), "%.*f%s", decimals, v, suffix);
	printf(" %12s", buf);
}

static void print_json_num(const char *name, double v, bool comma)
{
	if (v < 0)
		printf("\"%s\":null%s", name, comma ? "," : "");
	else
		printf("\"%s\":%.3f%s", name, v, comma ? "," : "");
}

void results_print(bool json)
{
	if (json) {
		printf("[");
		for (size_t i = 0; i < nresults; i++) {
			const struct result *r = &results[i];

			printf("%s{\"name\":\"%s\",", i ? "," : "", r->name);
			print_json_num("median_us", r->median_us, true);
			print_json_num("p99_us", r->p99_us, true);
			print_json_num("ops_per_s", r->ops, true);
			if (r->unit) {
				print_json_num("value", r->value, true);
				printf("\"unit\":\"%s\",", r->unit);
			}
			printf("\"baseline\":\"%s\",", r->baseline);
			print_json_num("ratio", r->ratio, true);
			printf("\"note\":\"%s\"}", r->note);
		}
		printf("]\n");
		return;
	}
	printf("%-34s %12s %12s %12s %12s  %s\n", "measurement", "median µs", "p99 µs", "ops/s",
	       "ratio", "against / note");
	for (size_t i = 0; i < nresults; i++) {
		const struct result *r = &results[i];

		printf("%-34s", r->name);
		if (r->unit) {
			char v[48];

			snprintf(v, sizeof(v), "%.0f %s", r->value, r->unit);
			printf(" %38s", v);
		} else {
			print_num(r->median_us, 1, "");
			print_num(r->p99_us, 1, "");
			print_num(r->ops, 0, "");
		}
		print_num(r->ratio, 2, "x");
		printf("  %s%s%s\n", r->baseline, r->baseline[0] && r->note[0] ? "; " : "", r->note);
	}
}

struct result *result_latency(const char *name, struct samples *s, const char *base,
			      double base_us)
{
	struct result *r = result_add(name);

	r->median_us = samples_pct(s, 50);
	r->p99_us = samples_pct(s, 99);
	r->ops = 1e6 / r->median_us;
	if (base) {
		snprintf(r->baseline, sizeof(r->baseline), "%s", base);
		r->ratio = r->median_us / base_us;
	}
	samples_free(s);
	return r;
}
