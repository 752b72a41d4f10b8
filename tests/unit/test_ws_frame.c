/*
 * test_ws_frame.c — RFC 6455 frame header parsing and unmasking (common/ws_frame.c):
 * the §5.7 examples (masked "Hello", 256-byte and 64 KiB length forms), every header
 * error (non-minimal 16/64-bit lengths, the 64-bit top bit, fragmented or long control
 * frames), NEED_MORE with the right byte count at every prefix length, and ws_unmask
 * against a byte-wise reference for every key offset, many lengths and every split; and
 * the server's header writer, read back by the parser at every length boundary.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <string.h>

#include "ws_frame.h"

/* Every proper prefix of a valid header is NEED_MORE with the full header's size (2
 * before the second byte is known); the whole header parses and reads nothing more. */
static void check_prefixes(const uint8_t *hdr, size_t hlen)
{
    for (size_t n = 0; n < hlen; n++) {
        struct ws_frame_hdr h;
        memset(&h, 0xee, sizeof h);
        assert_int_equal(ws_frame_header(n ? hdr : NULL, n, &h), WS_FRAME_NEED_MORE);
        assert_int_equal(h.header_len, n < 2 ? 2 : hlen);
        assert_true(h.header_len > n);
    }
}

static void test_rfc_hello(void **state)
{
    (void)state;
    /* §5.7: a single-frame masked text message "Hello". */
    static const uint8_t f[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    struct ws_frame_hdr h;
    assert_int_equal(ws_frame_header(f, sizeof f, &h), WS_FRAME_OK);
    assert_int_equal(h.header_len, 6);
    assert_int_equal(h.payload_len, 5);
    assert_true(h.fin);
    assert_true(h.masked);
    assert_int_equal(h.rsv, 0);
    assert_int_equal(h.opcode, WS_OP_TEXT);
    assert_memory_equal(h.mask, "\x37\xfa\x21\x3d", 4);
    uint8_t out[5];
    ws_unmask(out, f + 6, 5, h.mask, 0);
    assert_memory_equal(out, "Hello", 5);
    /* Split in two with the running offset, and in place. */
    uint8_t in[5];
    memcpy(in, f + 6, 5);
    ws_unmask(in, in, 2, h.mask, 0);
    ws_unmask(in + 2, in + 2, 3, h.mask, 2);
    assert_memory_equal(in, "Hello", 5);
    check_prefixes(f, 6);
    /* The same header is OK with any extra bytes after it (payload or next frame). */
    assert_int_equal(ws_frame_header(f, 6, &h), WS_FRAME_OK);

    /* §5.7: the unmasked "Hello" and an unmasked ping "Hello". */
    static const uint8_t u[] = {0x01, 0x03, 'H', 'e', 'l'};
    assert_int_equal(ws_frame_header(u, sizeof u, &h), WS_FRAME_OK);
    assert_int_equal(h.header_len, 2);
    assert_int_equal(h.payload_len, 3);
    assert_false(h.fin);
    assert_false(h.masked);
    assert_memory_equal(h.mask, "\0\0\0\0", 4);
    static const uint8_t ping[] = {0x89, 0x05, 'H', 'e', 'l', 'l', 'o'};
    assert_int_equal(ws_frame_header(ping, sizeof ping, &h), WS_FRAME_OK);
    assert_int_equal(h.opcode, WS_OP_PING);
    assert_int_equal(h.payload_len, 5);
}

static void test_rfc_lengths(void **state)
{
    (void)state;
    struct ws_frame_hdr h;
    /* §5.7: 256 bytes binary message in a single unmasked frame. */
    static const uint8_t f16[] = {0x82, 0x7e, 0x01, 0x00};
    assert_int_equal(ws_frame_header(f16, sizeof f16, &h), WS_FRAME_OK);
    assert_int_equal(h.header_len, 4);
    assert_int_equal(h.payload_len, 256);
    assert_int_equal(h.opcode, WS_OP_BINARY);
    check_prefixes(f16, sizeof f16);
    /* §5.7: 64 KiB binary message in a single unmasked frame. */
    static const uint8_t f64[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
    assert_int_equal(ws_frame_header(f64, sizeof f64, &h), WS_FRAME_OK);
    assert_int_equal(h.header_len, 10);
    assert_int_equal(h.payload_len, 65536);
    check_prefixes(f64, sizeof f64);
    /* The masked forms: 8 and 14 bytes, rsv bits reported. */
    static const uint8_t m16[] = {0xf2, 0xfe, 0xff, 0xff, 1, 2, 3, 4};
    assert_int_equal(ws_frame_header(m16, sizeof m16, &h), WS_FRAME_OK);
    assert_int_equal(h.header_len, 8);
    assert_int_equal(h.payload_len, 65535);
    assert_int_equal(h.rsv, 7);
    assert_memory_equal(h.mask, "\1\2\3\4", 4);
    check_prefixes(m16, sizeof m16);
    static const uint8_t m64[] = {0x80, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                  9, 8, 7, 6};
    assert_int_equal(ws_frame_header(m64, sizeof m64, &h), WS_FRAME_OK);
    assert_int_equal(h.header_len, WS_FRAME_MAX_HEADER);
    assert_true(h.payload_len == UINT64_MAX >> 1);
    assert_int_equal(h.opcode, WS_OP_CONT);
    assert_memory_equal(h.mask, "\x9\x8\x7\x6", 4);
    check_prefixes(m64, sizeof m64);
    /* Boundaries of each form. */
    static const uint8_t l125[] = {0x82, 125};
    assert_int_equal(ws_frame_header(l125, 2, &h), WS_FRAME_OK);
    assert_int_equal(h.payload_len, 125);
    static const uint8_t l126[] = {0x82, 126, 0, 126};
    assert_int_equal(ws_frame_header(l126, 4, &h), WS_FRAME_OK);
    assert_int_equal(h.payload_len, 126);
    static const uint8_t l0[] = {0x88, 0x80, 1, 2, 3, 4};
    assert_int_equal(ws_frame_header(l0, 6, &h), WS_FRAME_OK);
    assert_int_equal(h.payload_len, 0);
    assert_int_equal(h.opcode, WS_OP_CLOSE);
}

static void test_errors(void **state)
{
    (void)state;
    struct ws_frame_hdr h, keep;
    memset(&keep, 0x5a, sizeof keep);
    static const struct {
        uint8_t b[14];
        size_t n;
        enum ws_frame_status st;
    } cases[] = {
        /* 16-bit form carrying < 126 */
        {{0x82, 0xfe, 0x00, 0x7d, 1, 2, 3, 4}, 8, WS_FRAME_BAD_LENGTH},
        {{0x82, 0x7e, 0x00, 0x00}, 4, WS_FRAME_BAD_LENGTH},
        /* 64-bit form carrying < 65536 */
        {{0x82, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4}, 14, WS_FRAME_BAD_LENGTH},
        {{0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0, 5}, 10, WS_FRAME_BAD_LENGTH},
        /* 64-bit form with the top bit set */
        {{0x82, 0xff, 0x80, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4}, 14, WS_FRAME_BAD_LENGTH},
        {{0x82, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 10, WS_FRAME_BAD_LENGTH},
        /* control frames: no FIN, or over 125 (known from two bytes) */
        {{0x09, 0x80}, 2, WS_FRAME_BAD_CONTROL},
        {{0x0a, 0x80}, 2, WS_FRAME_BAD_CONTROL},
        {{0x08, 0x00}, 2, WS_FRAME_BAD_CONTROL},
        {{0x88, 0xfe}, 2, WS_FRAME_BAD_CONTROL},
        {{0x89, 0x7f}, 2, WS_FRAME_BAD_CONTROL},
        {{0x8b, 0xfe, 0x01, 0x00, 1, 2, 3, 4}, 8, WS_FRAME_BAD_CONTROL}, /* reserved control */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(&h, &keep, sizeof h);
        assert_int_equal(ws_frame_header(cases[i].b, cases[i].n, &h), cases[i].st);
        assert_memory_equal(&h, &keep, sizeof h); /* not written on error */
    }
    /* A length error shows only once the extended length is complete. */
    static const uint8_t part[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(ws_frame_header(part, sizeof part, &h), WS_FRAME_NEED_MORE);
    assert_int_equal(h.header_len, 10);
    /* Reserved data opcodes and RSV bits are reported, not rejected (the caller's call). */
    static const uint8_t odd[] = {0xb3, 0x81, 1, 2, 3, 4};
    assert_int_equal(ws_frame_header(odd, sizeof odd, &h), WS_FRAME_OK);
    assert_int_equal(h.opcode, 3);
    assert_int_equal(h.rsv, 3);
}

static void ref_unmask(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t mask[4],
                       uint64_t offset)
{
    for (size_t i = 0; i < len; i++)
        dst[i] = src[i] ^ mask[(offset + i) % 4];
}

/* The writer's headers: the RFC 6455 5.7 unmasked forms byte for byte, and at every
 * length boundary a header the parser reads back as written (shortest length form). */
static void test_header_write(void **state)
{
    (void)state;
    uint8_t out[WS_FRAME_MAX_HEADER];
    const uint8_t hello[] = {0x81, 0x05};
    assert_int_equal(ws_frame_header_write(out, 0x1, 5), 2);
    assert_memory_equal(out, hello, 2);
    const uint8_t b256[] = {0x82, 0x7E, 0x01, 0x00};
    assert_int_equal(ws_frame_header_write(out, 0x2, 256), 4);
    assert_memory_equal(out, b256, 4);
    const uint8_t b64k[] = {0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00};
    assert_int_equal(ws_frame_header_write(out, 0x2, 65536), 10);
    assert_memory_equal(out, b64k, 10);
    const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 1u << 24, (1ull << 40) + 3};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t n = ws_frame_header_write(out, 0x2, lens[i]);
        assert_int_equal(n, lens[i] < 126 ? 2 : lens[i] <= 65535 ? 4 : 10);
        struct ws_frame_hdr h;
        assert_int_equal(ws_frame_header(out, n, &h), WS_FRAME_OK);
        assert_int_equal(h.header_len, n);
        assert_int_equal(h.payload_len, lens[i]);
        assert_int_equal(h.opcode, 0x2);
        assert_true(h.fin);
        assert_false(h.masked);
        assert_int_equal(h.rsv, 0);
    }
}

static void test_unmask(void **state)
{
    (void)state;
    static const uint8_t mask[4] = {0xa1, 0x3c, 0x07, 0xfe};
    uint8_t src[48], want[48], got[48 + 2];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)(i * 37 + 11);
    for (uint64_t off = 0; off < 8; off++) {
        for (size_t len = 0; len <= 40; len++) {
            ref_unmask(want, src, len, mask, off);
            /* Whole, into a separate buffer (guard bytes stay untouched). */
            memset(got, 0xcc, sizeof got);
            ws_unmask(got + 1, src, len, mask, off);
            assert_memory_equal(got + 1, want, len);
            assert_int_equal(got[0], 0xcc);
            assert_int_equal(got[len + 1], 0xcc);
            /* In place, and split at every point with the running offset. */
            for (size_t cut = 0; cut <= len; cut++) {
                memcpy(got, src, len);
                ws_unmask(got, got, cut, mask, off);
                ws_unmask(got + cut, got + cut, len - cut, mask, off + cut);
                assert_memory_equal(got, want, len);
            }
            /* Unmasking twice gives the input back. */
            ws_unmask(got, want, len, mask, off);
            assert_memory_equal(got, src, len);
        }
    }
    /* A large offset only matters modulo 4. */
    ref_unmask(want, src, 40, mask, 3);
    ws_unmask(got, src, 40, mask, ((uint64_t)1 << 40) + 3);
    assert_memory_equal(got, want, 40);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_hello),
        cmocka_unit_test(test_rfc_lengths),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_unmask),
        cmocka_unit_test(test_header_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
