/*
 * output.c — text vs --json output for the CLI; see output.h.
 */
#include "output.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool json_mode;

void out_init(bool json)
{
    json_mode = json;
}

bool out_is_json(void)
{
    return json_mode;
}

/* Write s with control characters (C0, DEL) shown as '?'. UTF-8 passes through. */
static void put_clean(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        fputc((*p < 0x20 || *p == 0x7f) ? '?' : *p, f);
}

void out_field(const char *label, const char *value)
{
    if (json_mode)
        return;
    fputs(label, stdout);
    fputs(": ", stdout);
    put_clean(stdout, value ? value : "-");
    fputc('\n', stdout);
}

void out_msg(const char *fmt, ...)
{
    if (json_mode)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    put_clean(stdout, line);
    fputc('\n', stdout);
}

void out_row(const char *const *cols, const int *widths, size_t n)
{
    if (json_mode)
        return;
    for (size_t i = 0; i < n; i++) {
        const char *c = cols[i] ? cols[i] : "-";
        put_clean(stdout, c);
        if (i + 1 < n) {
            int pad = widths[i] - (int)strlen(c);
            do
                fputc(' ', stdout);
            while (--pad > 0);
        }
    }
    fputc('\n', stdout);
}

void out_json(json_t *obj)
{
    if (!obj)
        return;
    if (json_mode && json_dumpf(obj, stdout, JSON_COMPACT | JSON_ENSURE_ASCII) == 0)
        fputc('\n', stdout);
    json_decref(obj);
}

json_t *out_jstr(const char *s)
{
    return s ? json_string(s) : json_null();
}

const char *out_time(int64_t t, char *buf, size_t len)
{
    if (t == 0)
        return NULL;
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, len, "%lld", (long long)t);
    return buf;
}

json_t *out_jtime(int64_t t)
{
    return t ? json_integer((json_int_t)t) : json_null();
}

void out_error(const char *message, const char *code, int status)
{
    fputs("parley: ", stderr);
    put_clean(stderr, message && *message ? message : "failed");
    if (code) {
        fputs(" (", stderr);
        put_clean(stderr, code);
        fputc(')', stderr);
    }
    fputc('\n', stderr);
    if (json_mode) {
        json_t *e = json_pack("{s:{s:o, s:s, s:i}}", "error", "code", out_jstr(code), "message",
                              message && *message ? message : "failed", "status", status);
        out_json(e);
    }
}
