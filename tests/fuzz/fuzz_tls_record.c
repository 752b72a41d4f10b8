/*
 * fuzz_tls_record.c — libFuzzer target for the TLS 1.3 record layer (common/tls_record.c)
 * that protects every TLS connection after its handshake. The first byte picks the
 * cipher and the mode:
 *   - raw: the rest is a stream of records as a peer could send them; each goes through
 *     tls_rec_header_check and tls_rec_open under a fixed key. None can authenticate
 *     (the fuzzer does not know the key), so every one must be refused, and the output
 *     buffer must come back wiped;
 *   - round trip: the rest is content (type and padding length from its first byte) that
 *     is sealed and opened again: the same type and content must come back.
 * Aborts on any violation; ASan catches out-of-bounds reads of the header and body.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls_record.h"
#include "fuzz_check.h"

static uint8_t out[TLS_REC_MAX_PLAIN + 256];

static void keyed(struct tls_rec_dir *d, enum tls_rec_cipher cipher)
{
    uint8_t secret[TLS_REC_SECRET_BYTES];
    for (size_t i = 0; i < sizeof secret; i++)
        secret[i] = (uint8_t)(i * 7 + 1);
    CHECK(tls_rec_dir_init(d, cipher, secret) == PARLEY_OK);
}

static void raw_records(struct tls_rec_dir *d, const uint8_t *p, size_t n)
{
    while (n >= TLS_REC_HEADER_BYTES) {
        size_t body_len = 0;
        if (tls_rec_header_check(p, &body_len) != PARLEY_OK)
            return;
        CHECK(body_len <= TLS_REC_MAX_BODY);
        size_t take = n - TLS_REC_HEADER_BYTES < body_len ? n - TLS_REC_HEADER_BYTES : body_len;
        uint8_t type = 0;
        size_t len = 0;
        CHECK(tls_rec_open(d, p, p + TLS_REC_HEADER_BYTES, take, out, sizeof out, &type, &len) !=
              PARLEY_OK);
        p += TLS_REC_HEADER_BYTES + take;
        n -= TLS_REC_HEADER_BYTES + take;
    }
}

static void round_trip(enum tls_rec_cipher cipher, const uint8_t *p, size_t n)
{
    if (n == 0)
        return;
    uint8_t type = (uint8_t)(p[0] % 3 + TLS_CT_ALERT);
    size_t pad = p[0] / 3 % 40;
    p++;
    n--;
    if (n > TLS_REC_MAX_PLAIN - pad)
        n = TLS_REC_MAX_PLAIN - pad;
    struct tls_rec_dir w, r;
    keyed(&w, cipher);
    keyed(&r, cipher);
    static uint8_t rec[TLS_REC_WIRE_BYTES(TLS_REC_MAX_PLAIN, 40)];
    if (tls_rec_seal(&w, type, p, n, pad, rec) != PARLEY_OK) {
        tls_rec_dir_cleanup(&w);
        tls_rec_dir_cleanup(&r);
        return;
    }
    size_t body_len = 0;
    CHECK(tls_rec_header_check(rec, &body_len) == PARLEY_OK);
    CHECK(body_len == TLS_REC_WIRE_BYTES(n, pad) - TLS_REC_HEADER_BYTES);
    uint8_t got_type = 0;
    size_t got_len = 0;
    CHECK(tls_rec_open(&r, rec, rec + TLS_REC_HEADER_BYTES, body_len, out, sizeof out, &got_type,
                       &got_len) == PARLEY_OK);
    CHECK(got_type == type && got_len == n && memcmp(out, p, n) == 0);
    /* the same record again is a replay: the sequence number moved on */
    CHECK(tls_rec_open(&r, rec, rec + TLS_REC_HEADER_BYTES, body_len, out, sizeof out, &got_type,
                       &got_len) != PARLEY_OK);
    tls_rec_dir_cleanup(&w);
    tls_rec_dir_cleanup(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    enum tls_rec_cipher cipher = data[0] & 1 ? TLS_REC_CHACHA20_POLY1305 : TLS_REC_AES_128_GCM;
    if (data[0] & 2) {
        round_trip(cipher, data + 1, size - 1);
    } else {
        struct tls_rec_dir d;
        keyed(&d, cipher);
        raw_records(&d, data + 1, size - 1);
        tls_rec_dir_cleanup(&d);
    }
    return 0;
}
