/*
 * output.h — the CLI's two output modes: text for people, one JSON object per command
 * for scripts (--json). Commands decide the content; this module decides the form.
 *
 * Text written to a terminal passes through a filter that replaces control characters
 * (a server-chosen name must not move the cursor or fake a line). JSON is printed
 * compact, one object, one line, on stdout.
 */
#ifndef PARLEY_CLI_OUTPUT_H
#define PARLEY_CLI_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* Choose the mode once, at start. */
void out_init(bool json);
bool out_is_json(void);

/* Text mode (no-ops under --json): one "label: value" line; value NULL prints "-". */
void out_field(const char *label, const char *value);
/* Text mode: one line from a printf format; control characters in the result are
 * replaced, and a newline is added. */
void out_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Text mode: a table row of n columns, each padded to widths[i] (0 = no padding). */
void out_row(const char *const *cols, const int *widths, size_t n);

/* JSON mode: print obj on one line and release it (json_decref). Accepts NULL (prints
 * nothing). In text mode it just releases obj. */
void out_json(json_t *obj);
/* A JSON string or null for NULL (new reference; never fails silently: NULL on OOM). */
json_t *out_jstr(const char *s);

/* A timestamp (seconds since the epoch) as "YYYY-MM-DD HH:MM:SS UTC" in buf, or NULL
 * for 0 (unknown). */
const char *out_time(int64_t t, char *buf, size_t len);
/* JSON for a timestamp: the integer, or null for 0. */
json_t *out_jtime(int64_t t);

/* Errors: "parley: message (code)" on stderr (code omitted when NULL); under --json
 * also {"error":{"code","message","status"}} on stdout. */
void out_error(const char *message, const char *code, int status);

#endif
