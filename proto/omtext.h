/* Writing OpenMetrics text (application/openmetrics-text 1.0.0): a growing
 * buffer, exact decimal numbers, label values escaped, each family named
 * once with its TYPE, UNIT and HELP lines, and samples' names and labels.
 * What it writes is OpenMetrics' syntax; which families and samples, from
 * the stats object, is openmetrics.c's. No allocation failure is lost: it
 * sticks in failed, and omtext_finish() says so. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* The longest number omtext_scaled() writes: a sign, 20 digits, a point,
 * 20 digits, the NUL. */
#define OMTEXT_NUMBER_MAX 48

/* The text so far and the families it names (OpenMetrics allows each name
 * once); zeroed to start. */
struct omtext {
	char *text;
	size_t len, cap;
	char **families;
	size_t nfamilies, capfamilies;
	bool failed;
};

void omtext_put(struct omtext *om, const char *s, size_t n);
void omtext_puts(struct omtext *om, const char *s);
void omtext_printf(struct omtext *om, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* v / 10^digits, exactly, as a decimal with at least one digit after the
 * point ("0.0", "12.345", "0.00001"), into buf; v itself when digits is 0. */
void omtext_scaled(char buf[OMTEXT_NUMBER_MAX], json_int_t v, unsigned digits);
void omtext_put_scaled(struct omtext *om, json_int_t v, unsigned digits);
/* A label's value (n bytes), escaped: \\, \" and \n; a sequence that is
 * not UTF-8, and NUL, as U+FFFD. */
void omtext_put_label_value(struct omtext *om, const char *s, size_t n);
/* Takes name for a family; false if it is taken already (or for want of
 * memory). */
bool omtext_claim(struct omtext *om, const char *name);
/* The TYPE, UNIT (if not NULL) and HELP lines of a family. */
void omtext_put_family(struct omtext *om, const char *name, const char *type, const char *unit,
		       const char *help);
/* name suffix{labels,le="le"} (labels written as they are; either may be
 * NULL, and the braces go with both), without the value. */
void omtext_put_sample(struct omtext *om, const char *name, const char *suffix,
		       const char *labels, const char *le);
/* The text in *ret_text (malloc'ed, NUL-terminated) of *ret_len bytes, or
 * -ENOMEM (the text freed) if anything failed; the families are freed
 * either way. ret_* are written only on success. */
int omtext_finish(struct omtext *om, char **ret_text, size_t *ret_len);
