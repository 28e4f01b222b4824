#include "omtext.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

static bool omtext_reserve(struct omtext *om, size_t more)
{
	size_t cap = om->cap ? om->cap : 4096;
	char *p;

	if (om->failed)
		return false;
	while (cap - om->len <= more) {
		if (cap > SIZE_MAX / 2) {
			om->failed = true;
			return false;
		}
		cap *= 2;
	}
	if (cap != om->cap) {
		p = realloc(om->text, cap);
		if (!p) {
			om->failed = true;
			return false;
		}
		om->text = p;
		om->cap = cap;
	}
	return true;
}

void omtext_put(struct omtext *om, const char *s, size_t n)
{
	if (!omtext_reserve(om, n))
		return;
	memcpy(om->text + om->len, s, n);
	om->len += n;
	om->text[om->len] = '\0';
}

void omtext_puts(struct omtext *om, const char *s)
{
	omtext_put(om, s, strlen(s));
}

void omtext_printf(struct omtext *om, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		om->failed = true;
	if (n < 0 || !omtext_reserve(om, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(om->text + om->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	om->len += (size_t)n;
}

/* v / 10^digits, exactly, as a decimal with at least one digit after the
 * point ("0.0", "12.345", "0.00001"), into buf; v itself when digits is 0. */
void omtext_scaled(char buf[OMTEXT_NUMBER_MAX], json_int_t v, unsigned digits)
{
	unsigned long long mag = v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;
	unsigned long long div = 1;
	char frac[24];
	int n;

	if (digits == 0) {
		snprintf(buf, OMTEXT_NUMBER_MAX, "%lld", (long long)v);
		return;
	}
	for (unsigned i = 0; i < digits; i++)
		div *= 10;
	n = snprintf(frac, sizeof(frac), "%0*llu", (int)digits, mag % div);
	while (n > 1 && frac[n - 1] == '0')
		frac[--n] = '\0';
	snprintf(buf, OMTEXT_NUMBER_MAX, "%s%llu.%s", v < 0 ? "-" : "", mag / div, frac);
}

void omtext_put_scaled(struct omtext *om, json_int_t v, unsigned digits)
{
	char buf[OMTEXT_NUMBER_MAX];

	omtext_scaled(buf, v, digits);
	omtext_puts(om, buf);
}

/* A label's value, escaped: \\, \" and \n; a sequence that is not UTF-8,
 * and NUL, as U+FFFD. */
void omtext_put_label_value(struct omtext *om, const char *s, size_t n)
{
	while (n > 0) {
		const char *chunk;
		size_t chunk_len, used = utf8_shown_chunk(s, n, &chunk, &chunk_len);

		if (chunk_len == 1 && chunk[0] == '\\')
			omtext_puts(om, "\\\\");
		else if (chunk_len == 1 && chunk[0] == '"')
			omtext_puts(om, "\\\"");
		else if (chunk_len == 1 && chunk[0] == '\n')
			omtext_puts(om, "\\n");
		else if (chunk_len == 1 && chunk[0] == '\0')
			omtext_puts(om, "\xef\xbf\xbd");
		else
			omtext_put(om, chunk, chunk_len);
		s += used;
		n -= used;
	}
}

static bool omtext_named(const struct omtext *om, const char *name)
{
	for (size_t i = 0; i < om->nfamilies; i++)
		if (strcmp(om->families[i], name) == 0)
			return true;
	return false;
}

/* Takes name for a family; false if it is taken already (or for want of
 * memory). */
bool omtext_claim(struct omtext *om, const char *name)
{
	char *copy;

	if (om->failed || omtext_named(om, name))
		return false;
	if (om->nfamilies == om->capfamilies) {
		size_t cap = om->capfamilies ? 2 * om->capfamilies : 64;
		char **f = realloc(om->families, cap * sizeof(*f));

		if (!f) {
			om->failed = true;
			return false;
		}
		om->families = f;
		om->capfamilies = cap;
	}
	copy = strdup(name);
	if (!copy) {
		om->failed = true;
		return false;
	}
	om->families[om->nfamilies++] = copy;
	return true;
}

/* The TYPE, UNIT (if any) and HELP lines of a family. */
void omtext_put_family(struct omtext *om, const char *name, const char *type, const char *unit,
		       const char *help)
{
	omtext_printf(om, "# TYPE %s %s\n", name, type);
	if (unit)
		omtext_printf(om, "# UNIT %s %s\n", name, unit);
	omtext_printf(om, "# HELP %s ", name);
	omtext_puts(om, help);
	omtext_puts(om, "\n");
}

/* name{labels,le="..."}, name{labels}, name{le="..."} or name, without the
 * value; labels is written as it is. */
void omtext_put_sample(struct omtext *om, const char *name, const char *suffix,
		       const char *labels, const char *le)
{
	omtext_printf(om, "%s%s", name, suffix);
	if (!labels && !le)
		return;
	omtext_puts(om, "{");
	if (labels)
		omtext_puts(om, labels);
	if (labels && le)
		omtext_puts(om, ",");
	if (le)
		omtext_printf(om, "le=\"%s\"", le);
	omtext_puts(om, "}");
}

int omtext_finish(struct omtext *om, char **ret_text, size_t *ret_len)
{
	for (size_t i = 0; i < om->nfamilies; i++)
		free(om->families[i]);
	free(om->families);
	om->families = NULL;
	if (om->failed || !om->text) {
		free(om->text);
		return -ENOMEM;
	}
	*ret_text = om->text;
	*ret_len = om->len;
	return 0;
}
