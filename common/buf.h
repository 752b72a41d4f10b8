/*
 * buf.h — bounded growable byte buffer (curl's dynbuf idea).
 *
 * Every buffer has a hard maximum set at init; growing past it fails with
 * PARLEY_ERR_LIMIT and leaves the contents untouched. The data is always NUL-terminated
 * (one extra byte, not counted in len) so text can be used as a C string.
 * Not thread-safe: a buffer belongs to one owner.
 */
#ifndef PARLEY_BUF_H
#define PARLEY_BUF_H

#include <stddef.h>
#include <stdint.h>
#include "parley/err.h"

struct buf {
    uint8_t *data; /* NULL until the first append */
    size_t len;
    size_t cap;
    size_t max;    /* hard limit on len */
};

/* Prepare an empty buffer that may hold at most max bytes. Allocates nothing. */
void buf_init(struct buf *b, size_t max);
/* Release the memory; the buffer is empty and reusable afterwards. Accepts NULL. */
void buf_cleanup(struct buf *b);
/* Like buf_cleanup, but zeroes the whole allocation first: for buffers that held
 * secrets (request bodies with passwords, headers with tokens). Accepts NULL. */
void buf_cleanup_wipe(struct buf *b);
/* Empty the buffer but keep its memory. */
void buf_reset(struct buf *b);
/* Append n bytes. PARLEY_ERR_LIMIT past max, PARLEY_ERR_NOMEM on allocation failure. */
PARLEY_WUR enum parley_err buf_append(struct buf *b, const void *p, size_t n);
PARLEY_WUR enum parley_err buf_append_str(struct buf *b, const char *s);
/* printf-style append; fails like buf_append. */
PARLEY_WUR enum parley_err buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Drop the first n bytes (n <= len), moving the rest to the front. */
void buf_consume(struct buf *b, size_t n);
/* Give src's memory to dst, which has none: dst keeps its max and is empty, src is
 * left empty with no memory. For reusing an allocation rather than freeing it. */
void buf_move_memory(struct buf *dst, struct buf *src);
/* Hand the memory to the caller (free with free()); the buffer is left empty. */
uint8_t *buf_steal(struct buf *b, size_t *len);
/* The contents as a C string ("" when empty). Valid until the next change. */
const char *buf_str(const struct buf *b);

#endif
