/* buf.c — bounded growable buffer; see buf.h. */
#include "buf.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void buf_cleanup(struct buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void buf_cleanup_wipe(struct buf *b)
{
    if (!b)
        return;
    if (b->data)
        sodium_memzero(b->data, b->cap);
    buf_cleanup(b);
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = 0;
}

static enum parley_err reserve(struct buf *b, size_t extra)
{
    if (extra > b->max - b->len)
        return PARLEY_ERR_LIMIT;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return PARLEY_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return PARLEY_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return PARLEY_OK;
}

enum parley_err buf_append(struct buf *b, const void *p, size_t n)
{
    enum parley_err rc = reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return PARLEY_OK;
}

enum parley_err buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

enum parley_err buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return PARLEY_ERR_INVAL;
    enum parley_err rc = reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return PARLEY_OK;
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = 0;
}

void buf_move_memory(struct buf *dst, struct buf *src)
{
    dst->data = src->data;
    dst->cap = src->cap;
    buf_reset(dst);
    src->data = NULL;
    src->len = src->cap = 0;
}

uint8_t *buf_steal(struct buf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

const char *buf_str(const struct buf *b)
{
    return b->data ? (const char *)b->data : "";
}
