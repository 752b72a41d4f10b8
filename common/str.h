/*
 * str.h — the two string operations on the message path, without printf's machinery.
 *
 * str_copy is snprintf(dst, cap, "%s", src) at a tenth of the cost: the relay copies
 * several ids per message, and vfprintf was 6 % of its instructions (issue #5).
 * str_is_hex_id checks a lowercase hex id of exactly len characters by table lookup.
 */
#ifndef PARLEY_COMMON_STR_H
#define PARLEY_COMMON_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Copies src (NULL: "") into dst, truncated to cap - 1 bytes and terminated (cap > 0).
 * Returns the bytes copied. */
static inline size_t str_copy(char *dst, size_t cap, const char *src)
{
    if (cap == 0)
        return 0;
    size_t n = src ? strnlen(src, cap - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
    return n;
}

/* Whether s is exactly len characters of [0-9a-f] (then the terminating NUL). */
static inline bool str_is_hex_id(const char *s, size_t len)
{
    static const bool hex[256] = {
        ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
        ['8'] = 1, ['9'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    };
    if (!s)
        return false;
    bool ok = true;
    size_t i = 0;
    for (; i < len; i++) { /* no early exit but at the NUL: a fixed, short loop */
        unsigned char c = (unsigned char)s[i];
        if (!c)
            return false;
        ok &= hex[c];
    }
    return ok && s[i] == '\0';
}

#endif
