/*
 * str.h — the two string operations on the message path, without printf's machinery.
 *
 * str_copy is snprintf(dst, cap, "%s", src) at a tenth of the cost: the relay copies
 * several ids per message, and vfprintf was 6 % of its instructions (issue #5).
 * str_is_hex_id checks a lowercase hex id of exactly len characters, eight at a time.
 * str_hash hashes a string eight bytes at a time, for the hash tables keyed by ids.
 */
#ifndef PARLEY_COMMON_STR_H
#define PARLEY_COMMON_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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

/* Whether s is exactly len characters of [0-9a-f] (then the terminating NUL). Eight
 * characters per step (SWAR): a byte b < 0x80 plus (0x80 - lo) has its top bit set iff
 * b >= lo, with no carry into the next byte. */
static inline bool str_is_hex_id(const char *s, size_t len)
{
    const uint64_t ones = 0x0101010101010101u, top = 0x8080808080808080u;
    if (!s || strnlen(s, len + 1) != len)
        return false;
    size_t i = 0;
    for (; len - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & top)
            return false;
        uint64_t digit = (w + ones * (0x80 - '0')) & ~(w + ones * (0x80 - '9' - 1));
        uint64_t af = (w + ones * (0x80 - 'a')) & ~(w + ones * (0x80 - 'f' - 1));
        if (((digit | af) & top) != top)
            return false;
    }
    for (; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

#define STR_HASH_INIT 14695981039346656037u

/* FNV-1a over 8-byte words (then the tail byte by byte), chained from h (STR_HASH_INIT to
 * start): a byte at a time cost ~130 instructions for a 32-character id. For tables of
 * ids the server makes (random); a separator ends each string, so ("ab","c") and
 * ("a","bc") differ. */
static inline uint64_t str_hash(uint64_t h, const char *s)
{
    size_t n = s ? strlen(s) : 0, i = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 1099511628211u;
        h ^= h >> 29;
    }
    for (; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211u;
    return (h ^ 0xff) * 1099511628211u;
}

#endif
