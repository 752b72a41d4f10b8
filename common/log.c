/* log.c — JSON-lines logger; see log.h. */
#include "log.h"

#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

static int log_fd = 2;
static enum log_level log_min = LOG_INFO;
static unsigned char pseudo_key[crypto_generichash_KEYBYTES];
static pthread_once_t pseudo_once = PTHREAD_ONCE_INIT;
static int pseudo_key_set;

void log_init(enum log_level min_level, int fd)
{
    log_min = min_level;
    log_fd = fd;
}

int log_level_parse(const char *s)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static void pseudo_init(void)
{
    if (!pseudo_key_set)
        randombytes_buf(pseudo_key, sizeof pseudo_key);
}

void log_set_pseudonym_key(const unsigned char key[32])
{
    memcpy(pseudo_key, key, sizeof pseudo_key);
    pseudo_key_set = 1;
}

void log_pseudonym(const char *id, char out[17])
{
    unsigned char h[8];
    pthread_once(&pseudo_once, pseudo_init);
    crypto_generichash(h, sizeof h, (const unsigned char *)id, strlen(id), pseudo_key,
                       sizeof pseudo_key);
    sodium_bin2hex(out, 17, h, sizeof h);
}

static void append_escaped(struct buf *b, const char *s)
{
    (void)!buf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char tmp[8];
        switch (*p) {
        case '"': (void)!buf_append(b, "\\\"", 2); break;
        case '\\': (void)!buf_append(b, "\\\\", 2); break;
        case '\n': (void)!buf_append(b, "\\n", 2); break;
        case '\r': (void)!buf_append(b, "\\r", 2); break;
        case '\t': (void)!buf_append(b, "\\t", 2); break;
        default:
            if (*p < 0x20) {
                snprintf(tmp, sizeof tmp, "\\u%04x", *p);
                (void)!buf_append(b, tmp, 6);
            } else {
                (void)!buf_append(b, p, 1);
            }
        }
    }
    (void)!buf_append(b, "\"", 1);
}

void log_event(enum log_level level, const char *event, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if (level < log_min)
        return;
    struct buf b;
    buf_init(&b, 8192);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    (void)!buf_printf(&b, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"event\":", when,
                      ts.tv_nsec / 1000000, names[level]);
    append_escaped(&b, event);
    va_list ap;
    va_start(ap, event);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        (void)!buf_append(&b, ",", 1);
        append_escaped(&b, k);
        (void)!buf_append(&b, ":", 1);
        append_escaped(&b, v ? v : "");
    }
    va_end(ap);
    if (buf_append(&b, "}\n", 2) == PARLEY_OK) {
        ssize_t n = write(log_fd, b.data, b.len);
        (void)n;
    }
    buf_cleanup(&b);
}
