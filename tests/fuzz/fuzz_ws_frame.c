/*
 * fuzz_ws_frame.c — libFuzzer target for the WebSocket frame reader primitives
 * (common/ws_frame.c). Arbitrary bytes go to ws_frame_header from an allocation of
 * exactly their size (so ASan catches any read past len); the result must obey the
 * RFC rules the server relies on (header_len <= 14, minimal length forms, control
 * frames FIN and <= 125, NEED_MORE asks for more than it got), every prefix must agree
 * with the whole, and ws_unmask of the bytes after the header, split at a point the
 * input picks, must equal unmasking them whole and a byte-wise reference.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws_frame.h"
#include "fuzz_check.h"

/* The header rules an OK result must satisfy. */
static void check_ok(const uint8_t *p, const struct ws_frame_hdr *h)
{
    CHECK(h->header_len >= 2 && h->header_len <= WS_FRAME_MAX_HEADER);
    CHECK(h->fin == ((p[0] & 0x80) != 0) && h->opcode == (p[0] & 0x0f));
    CHECK(h->rsv == ((p[0] >> 4) & 7) && h->masked == ((p[1] & 0x80) != 0));
    size_t lenbytes = h->header_len - 2u - (h->masked ? 4u : 0u);
    if (lenbytes == 0)
        CHECK(h->payload_len < 126);
    else if (lenbytes == 2)
        CHECK(h->payload_len >= 126 && h->payload_len < 65536);
    else
        CHECK(lenbytes == 8 && h->payload_len >= 65536 && !(h->payload_len >> 63));
    if (h->opcode & 8)
        CHECK(h->fin && h->payload_len <= 125);
    if (h->masked)
        CHECK(memcmp(h->mask, p + h->header_len - 4, 4) == 0);
    else
        CHECK(memcmp(h->mask, "\0\0\0\0", 4) == 0);
}

static void check_unmask(const uint8_t *src, size_t len, const uint8_t mask[4],
                         uint64_t offset, size_t cut)
{
    uint8_t *whole = malloc(len ? len : 1), *split = malloc(len ? len : 1);
    CHECK(whole && split);
    ws_unmask(whole, src, len, mask, offset);
    for (size_t i = 0; i < len; i++)
        CHECK(whole[i] == (src[i] ^ mask[(offset + i) % 4]));
    memcpy(split, src, len);
    ws_unmask(split, split, cut, mask, offset);
    ws_unmask(split + cut, split + cut, len - cut, mask, offset + cut);
    CHECK(memcmp(whole, split, len) == 0);
    free(whole);
    free(split);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size ? size : 1); /* exactly size bytes readable */
    CHECK(p);
    if (size)
        memcpy(p, data, size);
    struct ws_frame_hdr h;
    enum ws_frame_status st = ws_frame_header(size ? p : NULL, size, &h);
    CHECK(st == WS_FRAME_OK || st == WS_FRAME_NEED_MORE || st == WS_FRAME_BAD_LENGTH ||
          st == WS_FRAME_BAD_CONTROL);
    size_t hl = 0;
    if (st == WS_FRAME_OK) {
        check_ok(p, &h);
        hl = h.header_len;
        CHECK(hl <= size);
    } else if (st == WS_FRAME_NEED_MORE) {
        CHECK(h.header_len > size && h.header_len <= WS_FRAME_MAX_HEADER);
    }
    /* Every prefix: the same verdict once it holds the header (errors may show early:
     * a bad control frame is known from two bytes), NEED_MORE before. */
    size_t upto = size < WS_FRAME_MAX_HEADER ? size : WS_FRAME_MAX_HEADER;
    for (size_t n = 0; n < upto; n++) {
        struct ws_frame_hdr q;
        enum ws_frame_status sq = ws_frame_header(n ? p : NULL, n, &q);
        if (st == WS_FRAME_OK && n >= hl)
            CHECK(sq == WS_FRAME_OK && memcmp(&q.payload_len, &h.payload_len, 8) == 0 &&
                  q.header_len == hl && memcmp(q.mask, h.mask, 4) == 0);
        else if (st == WS_FRAME_OK || st == WS_FRAME_NEED_MORE)
            CHECK(sq == WS_FRAME_NEED_MORE && q.header_len > n);
        else
            CHECK(sq == WS_FRAME_NEED_MORE || sq == st);
    }
    /* Unmask what follows the header (or everything after 6 bytes otherwise), with an
     * offset and split point taken from the input. */
    if (size >= 6) {
        const uint8_t *mask = st == WS_FRAME_OK && h.masked ? h.mask : p + 2;
        size_t from = st == WS_FRAME_OK ? hl : 6;
        size_t len = size - from;
        uint64_t offset = p[0] * 0x0101010101ull + p[1];
        size_t cut = len ? p[size - 1] % (len + 1) : 0;
        check_unmask(p + from, len, mask, offset, cut);
    }
    free(p);
    return 0;
}
