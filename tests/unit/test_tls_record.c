/*
 * test_tls_record.c — the TLS 1.3 record layer against RFC 8448 §3 ("Simple 1-RTT
 * Handshake"): HKDF-Expand-Label, the application write keys and ivs, and the exact
 * protected application-data and close_notify records; then round trips with padding,
 * ChaCha20-Poly1305, tampering, bad headers, KeyUpdate derivation (checked against
 * OpenSSL's own HKDF) and the sequence-number limit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "tls_record.h"

/* Hex with any whitespace to bytes; returns the length. */
static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    unsigned v;
    while (*s) {
        if (*s == ' ' || *s == '\n') {
            s++;
            continue;
        }
        assert_true(n < cap);
        assert_int_equal(sscanf(s, "%2x", &v), 1);
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

/* RFC 8448 §3. */
static const char C_AP_SECRET[] = "9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52"
                                  "87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5";
static const char S_AP_SECRET[] = "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32"
                                  "82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43";
static const char C_AP_KEY[] = "17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51";
static const char C_AP_IV[] = "5b 78 92 3d ee 08 57 90 33 e5 23 d9";
static const char S_AP_KEY[] = "9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56";
static const char S_AP_IV[] = "cf 78 2b 88 dd 83 54 9a ad f1 e9 84";
/* {client} send application_data record (client seq 0). */
static const char C_APP_REC[] =
    "17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55"
    "cb ef ac ea 42 f9 14 aa 66 bc ab 3f 2b 98 19 a8 a5 b4 6b 39"
    "5b d5 4a 9a 20 44 1e 2b 62 97 4e 1f 5a 62 92 a2 97 70 14 bd"
    "1e 3d ea e6 3a ee bb 21 69 49 15 e4";
/* {server} send application_data record (server seq 1: a NewSessionTicket went first). */
static const char S_APP_REC[] =
    "17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad 36 00 5f c4"
    "a4 69 32 fc 32 25 d0 5f 82 aa 1b 36 e3 0e fa f9 7d 90 e6 df"
    "fc 60 2d cb 50 1a 59 a8 fc c4 9c 4b f2 e5 f0 a2 1c 00 47 c2"
    "ab f3 32 54 0d d0 32 e1 67 c2 95 5d";
/* {client} send alert record (close_notify, client seq 1) and {server} (server seq 2). */
static const char C_ALERT_REC[] = "17 03 03 00 13 c9 87 27 60 65 56 66 b7 4d 7f f1 15 3e fd"
                                  "6d b6 d0 b0 e3";
static const char S_ALERT_REC[] = "17 03 03 00 13 b5 8f d6 71 66 eb f5 99 d2 47 20 cf be 7e"
                                  "fa 7a 88 64 a9";

static uint8_t scratch[TLS_REC_MAX_PLAIN];

static void payload(uint8_t p[50])
{
    for (int i = 0; i < 50; i++)
        p[i] = (uint8_t)i;
}

static void dir_from(struct tls_rec_dir *d, const char *secret_hex, enum tls_rec_cipher c)
{
    uint8_t s[TLS_REC_SECRET_BYTES];
    assert_int_equal(unhex(secret_hex, s, sizeof s), sizeof s);
    assert_int_equal(tls_rec_dir_init(d, c, s), PARLEY_OK);
}

static void test_expand_label_rfc8448(void **state)
{
    (void)state;
    struct tls_rec_dir c, s;
    uint8_t want[16];
    dir_from(&c, C_AP_SECRET, TLS_REC_AES_128_GCM);
    dir_from(&s, S_AP_SECRET, TLS_REC_AES_128_GCM);
    assert_int_equal(unhex(C_AP_KEY, want, sizeof want), 16);
    assert_memory_equal(c.key, want, 16);
    assert_int_equal(unhex(C_AP_IV, want, sizeof want), 12);
    assert_memory_equal(c.iv, want, 12);
    assert_int_equal(unhex(S_AP_KEY, want, sizeof want), 16);
    assert_memory_equal(s.key, want, 16);
    assert_int_equal(unhex(S_AP_IV, want, sizeof want), 12);
    assert_memory_equal(s.iv, want, 12);
    assert_int_equal(c.seq, 0);
    /* Bad lengths are refused. */
    uint8_t out[8];
    assert_int_equal(tls_rec_expand_label(c.secret, 32, "key", NULL, 0, out, 0),
                     PARLEY_ERR_INVAL);
    tls_rec_dir_cleanup(&c);
    tls_rec_dir_cleanup(&s);
    static const uint8_t zero[sizeof c];
    assert_memory_equal(&c, zero, sizeof c);
}

static void check_seal(struct tls_rec_dir *d, uint8_t type, const uint8_t *in, size_t len,
                       const char *want_hex)
{
    uint8_t want[128], out[128];
    size_t n = unhex(want_hex, want, sizeof want);
    assert_int_equal(n, TLS_REC_WIRE_BYTES(len, 0));
    assert_int_equal(tls_rec_seal(d, type, in, len, 0, out), PARLEY_OK);
    assert_memory_equal(out, want, n);
}

static void check_open(struct tls_rec_dir *d, const char *rec_hex, uint8_t want_type,
                       const uint8_t *want, size_t want_len)
{
    uint8_t rec[128], type = 0;
    size_t n = unhex(rec_hex, rec, sizeof rec), got = 0, body;
    assert_int_equal(tls_rec_header_check(rec, &body), PARLEY_OK);
    assert_int_equal(body, n - TLS_REC_HEADER_BYTES);
    assert_int_equal(tls_rec_open(d, rec, rec + 5, body, scratch, sizeof scratch, &type, &got),
                     PARLEY_OK);
    assert_int_equal(type, want_type);
    assert_int_equal(got, want_len);
    assert_memory_equal(scratch, want, want_len);
}

/* Protecting the RFC's plaintexts under its keys gives its records byte for byte, and
 * unprotecting them gives the plaintexts back. */
static void test_records_rfc8448(void **state)
{
    (void)state;
    uint8_t p[50];
    static const uint8_t close_notify[2] = {1, 0};
    payload(p);
    struct tls_rec_dir cw, sw, cr, sr;
    dir_from(&cw, C_AP_SECRET, TLS_REC_AES_128_GCM);
    dir_from(&cr, C_AP_SECRET, TLS_REC_AES_128_GCM);
    dir_from(&sw, S_AP_SECRET, TLS_REC_AES_128_GCM);
    dir_from(&sr, S_AP_SECRET, TLS_REC_AES_128_GCM);
    check_seal(&cw, TLS_CT_APPLICATION_DATA, p, 50, C_APP_REC);
    check_seal(&cw, TLS_CT_ALERT, close_notify, 2, C_ALERT_REC);
    check_open(&cr, C_APP_REC, TLS_CT_APPLICATION_DATA, p, 50);
    check_open(&cr, C_ALERT_REC, TLS_CT_ALERT, close_notify, 2);
    assert_int_equal(cr.seq, 2);
    sw.seq = sr.seq = 1; /* the server's NewSessionTicket took seq 0 in the trace */
    check_seal(&sw, TLS_CT_APPLICATION_DATA, p, 50, S_APP_REC);
    check_seal(&sw, TLS_CT_ALERT, close_notify, 2, S_ALERT_REC);
    check_open(&sr, S_APP_REC, TLS_CT_APPLICATION_DATA, p, 50);
    check_open(&sr, S_ALERT_REC, TLS_CT_ALERT, close_notify, 2);
    /* Out of order (seq 0 again) fails. */
    struct tls_rec_dir again;
    dir_from(&again, C_AP_SECRET, TLS_REC_AES_128_GCM);
    again.seq = 1;
    uint8_t rec[128], type;
    size_t n = unhex(C_APP_REC, rec, sizeof rec), got;
    assert_int_equal(tls_rec_open(&again, rec, rec + 5, n - 5, scratch, sizeof scratch, &type,
                                  &got),
                     PARLEY_ERR_PROTO);
    assert_int_equal(again.seq, 1);
}

/* Every single-bit flip in header or body is refused, and the plaintext scratch holds no
 * unauthenticated bytes afterwards. */
static void test_tamper(void **state)
{
    (void)state;
    uint8_t rec[128], type;
    size_t n = unhex(C_APP_REC, rec, sizeof rec), got, body;
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            struct tls_rec_dir d;
            dir_from(&d, C_AP_SECRET, TLS_REC_AES_128_GCM);
            rec[i] ^= (uint8_t)(1u << bit);
            memset(scratch, 0xAA, 64);
            enum parley_err rc = tls_rec_header_check(rec, &body);
            if (rc == PARLEY_OK && body == n - 5)
                rc = tls_rec_open(&d, rec, rec + 5, body, scratch, sizeof scratch, &type, &got);
            else
                rc = PARLEY_ERR_PROTO;
            assert_int_equal(rc, PARLEY_ERR_PROTO);
            assert_int_equal(d.seq, 0);
            rec[i] ^= (uint8_t)(1u << bit);
        }
    }
    /* A truncated body (valid header claiming more) is refused by open. */
    struct tls_rec_dir d;
    dir_from(&d, C_AP_SECRET, TLS_REC_AES_128_GCM);
    assert_int_equal(tls_rec_open(&d, rec, rec + 5, n - 6, scratch, sizeof scratch, &type, &got),
                     PARLEY_ERR_PROTO);
    /* A tag failure wipes what the cipher wrote. */
    rec[n - 1] ^= 1;
    memset(scratch, 0xAA, 64);
    assert_int_equal(tls_rec_open(&d, rec, rec + 5, n - 5, scratch, sizeof scratch, &type, &got),
                     PARLEY_ERR_PROTO);
    for (int i = 0; i < 50; i++)
        assert_int_equal(scratch[i], 0);
}

static void test_header_checks(void **state)
{
    (void)state;
    size_t body;
    uint8_t h[5] = {23, 3, 3, 0, 17};
    assert_int_equal(tls_rec_header_check(h, &body), PARLEY_OK);
    assert_int_equal(body, 17);
    h[4] = 16; /* no room for the content type */
    assert_int_equal(tls_rec_header_check(h, &body), PARLEY_ERR_PROTO);
    size_t max = TLS_REC_MAX_INNER + TLS_REC_TAG_BYTES;
    h[3] = (uint8_t)(max >> 8);
    h[4] = (uint8_t)max;
    assert_int_equal(tls_rec_header_check(h, &body), PARLEY_OK);
    h[4]++; /* one byte over: could only decrypt to an over-long inner plaintext */
    assert_int_equal(tls_rec_header_check(h, &body), PARLEY_ERR_PROTO);
    h[3] = 0x41;
    h[4] = 0x01; /* 2^14 + 257: over the wire limit */
    assert_int_equal(tls_rec_header_check(h, &body), PARLEY_ERR_PROTO);
    /* Plaintext record types and other versions are never accepted after the handshake. */
    static const uint8_t bad[][5] = {
        {22, 3, 3, 0, 20}, {21, 3, 3, 0, 20}, {20, 3, 3, 0, 20}, {23, 3, 1, 0, 20},
        {23, 3, 4, 0, 20}, {24, 3, 3, 0, 20},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(tls_rec_header_check(bad[i], &body), PARLEY_ERR_PROTO);
}

/* Round trips over both ciphers, sizes 0..2^14 and padding; the padding is stripped. */
static void roundtrip(enum tls_rec_cipher c)
{
    static uint8_t in[TLS_REC_MAX_PLAIN], rec[TLS_REC_WIRE_BYTES(TLS_REC_MAX_PLAIN, 0)];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)(i * 7 + 1);
    struct tls_rec_dir w, r;
    dir_from(&w, S_AP_SECRET, c);
    dir_from(&r, S_AP_SECRET, c);
    static const struct {
        size_t len, pad;
    } cases[] = {{0, 0}, {1, 0}, {50, 0}, {0, 300}, {10, 1000}, {TLS_REC_MAX_PLAIN - 1, 1},
                 {TLS_REC_MAX_PLAIN, 0}, {100, TLS_REC_MAX_PLAIN - 100}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = cases[i].len, pad = cases[i].pad, body, got;
        uint8_t type;
        static uint8_t padded[TLS_REC_WIRE_BYTES(0, TLS_REC_MAX_PLAIN)];
        uint8_t *buf = TLS_REC_WIRE_BYTES(len, pad) <= sizeof rec ? rec : padded;
        assert_int_equal(tls_rec_seal(&w, TLS_CT_APPLICATION_DATA, in, len, pad, buf), PARLEY_OK);
        assert_int_equal(tls_rec_header_check(buf, &body), PARLEY_OK);
        assert_int_equal(body, len + 1 + pad + TLS_REC_TAG_BYTES);
        assert_int_equal(tls_rec_open(&r, buf, buf + 5, body, scratch, sizeof scratch, &type, &got),
                         PARLEY_OK);
        assert_int_equal(type, TLS_CT_APPLICATION_DATA);
        assert_int_equal(got, len);
        if (len)
            assert_memory_equal(scratch, in, len);
    }
    assert_int_equal(w.seq, sizeof cases / sizeof cases[0]);
    /* Too much content or padding is refused when sealing. */
    assert_int_equal(tls_rec_seal(&w, TLS_CT_APPLICATION_DATA, in, TLS_REC_MAX_PLAIN, 1, rec),
                     PARLEY_ERR_INVAL);
    assert_int_equal(tls_rec_seal(&w, 0, in, 1, 0, rec), PARLEY_ERR_INVAL);
}

static void test_roundtrip_aes(void **state)
{
    (void)state;
    roundtrip(TLS_REC_AES_128_GCM);
}

static void test_roundtrip_chacha(void **state)
{
    (void)state;
    roundtrip(TLS_REC_CHACHA20_POLY1305);
    /* The two ciphers do not open each other's records. */
    struct tls_rec_dir w, r;
    uint8_t rec[64], type;
    size_t got;
    dir_from(&w, S_AP_SECRET, TLS_REC_CHACHA20_POLY1305);
    dir_from(&r, S_AP_SECRET, TLS_REC_AES_128_GCM);
    assert_int_equal(tls_rec_seal(&w, TLS_CT_APPLICATION_DATA, (const uint8_t *)"hi", 2, 0, rec),
                     PARLEY_OK);
    assert_int_equal(tls_rec_open(&r, rec, rec + 5, TLS_REC_WIRE_BYTES(2, 0) - 5, scratch,
                                  sizeof scratch, &type, &got),
                     PARLEY_ERR_PROTO);
}

/* A record built here with EVP directly (AES-128-GCM, nonce = iv for seq 0, header as
 * AAD) from a given inner plaintext: an independent check of framing and padding. */
static size_t seal_raw(const struct tls_rec_dir *d, const uint8_t *inner, size_t n,
                       uint8_t *out)
{
    size_t body = n + TLS_REC_TAG_BYTES;
    int len;
    out[0] = 23, out[1] = 3, out[2] = 3, out[3] = (uint8_t)(body >> 8), out[4] = (uint8_t)body;
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    assert_non_null(x);
    assert_int_equal(EVP_EncryptInit_ex(x, EVP_aes_128_gcm(), NULL, d->key, d->iv), 1);
    assert_int_equal(EVP_EncryptUpdate(x, NULL, &len, out, 5), 1);
    assert_int_equal(EVP_EncryptUpdate(x, out + 5, &len, inner, (int)n), 1);
    assert_int_equal(EVP_EncryptFinal_ex(x, out + 5 + n, &len), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, out + 5 + n), 1);
    EVP_CIPHER_CTX_free(x);
    return 5 + body;
}

/* Padding is stripped back to the last non-zero byte (the type); an inner plaintext of
 * only zeros has no type and is refused; the longest inner plaintext (2^14 + 1, with the
 * type byte past a 2^14 scratch) opens. */
static void test_inner_plaintext(void **state)
{
    (void)state;
    static uint8_t inner[TLS_REC_MAX_INNER], rec[TLS_REC_WIRE_BYTES(TLS_REC_MAX_PLAIN, 0)];
    struct tls_rec_dir d;
    uint8_t type;
    size_t got, n;
    dir_from(&d, C_AP_SECRET, TLS_REC_AES_128_GCM);
    memcpy(inner, "a\0c\x17\0\0\0\0", 8); /* content "a\0c", type 23, 4 zeros of padding */
    n = seal_raw(&d, inner, 8, rec);
    assert_int_equal(tls_rec_open(&d, rec, rec + 5, n - 5, scratch, sizeof scratch, &type, &got),
                     PARLEY_OK);
    assert_int_equal(type, TLS_CT_APPLICATION_DATA);
    assert_int_equal(got, 3);
    assert_memory_equal(scratch, "a\0c", 3);

    dir_from(&d, C_AP_SECRET, TLS_REC_AES_128_GCM);
    memset(inner, 0, 40);
    n = seal_raw(&d, inner, 40, rec);
    assert_int_equal(tls_rec_open(&d, rec, rec + 5, n - 5, scratch, sizeof scratch, &type, &got),
                     PARLEY_ERR_PROTO);

    dir_from(&d, C_AP_SECRET, TLS_REC_AES_128_GCM);
    memset(inner, 'z', TLS_REC_MAX_PLAIN);
    inner[TLS_REC_MAX_PLAIN] = TLS_CT_ALERT;
    n = seal_raw(&d, inner, TLS_REC_MAX_INNER, rec);
    assert_int_equal(tls_rec_open(&d, rec, rec + 5, n - 5, scratch, sizeof scratch, &type, &got),
                     PARLEY_OK);
    assert_int_equal(type, TLS_CT_ALERT);
    assert_int_equal(got, TLS_REC_MAX_PLAIN);
    assert_memory_equal(scratch, inner, TLS_REC_MAX_PLAIN);
}

/* traffic_secret_N+1 = HKDF-Expand-Label(secret, "traffic upd", "", 32), checked against
 * OpenSSL's TLS 1.3 KDF; key and iv follow, and seq restarts. */
static void test_key_update(void **state)
{
    (void)state;
    struct tls_rec_dir d;
    dir_from(&d, S_AP_SECRET, TLS_REC_AES_128_GCM);
    uint8_t before[TLS_REC_SECRET_BYTES], want[TLS_REC_SECRET_BYTES], key[16];
    memcpy(before, d.secret, sizeof before);
    d.seq = 5;
    assert_int_equal(tls_rec_dir_update(&d), PARLEY_OK);
    assert_int_equal(d.seq, 0);

    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "TLS13-KDF", NULL);
    assert_non_null(kdf);
    EVP_KDF_CTX *kc = EVP_KDF_CTX_new(kdf);
    assert_non_null(kc);
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, before, sizeof before),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PREFIX, (char *)"tls13 ", 6),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL, (char *)"traffic upd", 11),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_DATA, (char *)"", 0),
        OSSL_PARAM_construct_end(),
    };
    assert_int_equal(EVP_KDF_derive(kc, want, sizeof want, params), 1);
    assert_memory_equal(d.secret, want, sizeof want);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, want, sizeof want);
    params[4] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL, (char *)"key", 3);
    assert_int_equal(EVP_KDF_derive(kc, key, sizeof key, params), 1);
    assert_memory_equal(d.key, key, sizeof key);
    EVP_KDF_CTX_free(kc);
    EVP_KDF_free(kdf);

    /* Both sides updated: records still flow; one side updated: they do not. */
    struct tls_rec_dir r, stale;
    dir_from(&r, S_AP_SECRET, TLS_REC_AES_128_GCM);
    dir_from(&stale, S_AP_SECRET, TLS_REC_AES_128_GCM);
    assert_int_equal(tls_rec_dir_update(&r), PARLEY_OK);
    uint8_t rec[64], type;
    size_t got;
    assert_int_equal(tls_rec_seal(&d, TLS_CT_APPLICATION_DATA, (const uint8_t *)"x", 1, 0, rec),
                     PARLEY_OK);
    assert_int_equal(tls_rec_open(&stale, rec, rec + 5, TLS_REC_WIRE_BYTES(1, 0) - 5, scratch,
                                  sizeof scratch, &type, &got),
                     PARLEY_ERR_PROTO);
    assert_int_equal(tls_rec_open(&r, rec, rec + 5, TLS_REC_WIRE_BYTES(1, 0) - 5, scratch,
                                  sizeof scratch, &type, &got),
                     PARLEY_OK);
    assert_int_equal(got, 1);
    assert_int_equal(scratch[0], 'x');
}

/* The sequence number never wraps: the last value is refused in both directions. */
static void test_seq_limit(void **state)
{
    (void)state;
    struct tls_rec_dir w, r;
    uint8_t rec[64], type;
    size_t got;
    dir_from(&w, S_AP_SECRET, TLS_REC_AES_128_GCM);
    dir_from(&r, S_AP_SECRET, TLS_REC_AES_128_GCM);
    w.seq = r.seq = UINT64_MAX - 1;
    assert_int_equal(tls_rec_seal(&w, TLS_CT_APPLICATION_DATA, (const uint8_t *)"a", 1, 0, rec),
                     PARLEY_OK);
    assert_int_equal(tls_rec_open(&r, rec, rec + 5, TLS_REC_WIRE_BYTES(1, 0) - 5, scratch,
                                  sizeof scratch, &type, &got),
                     PARLEY_OK);
    assert_int_equal(w.seq, UINT64_MAX);
    assert_int_equal(tls_rec_seal(&w, TLS_CT_APPLICATION_DATA, (const uint8_t *)"a", 1, 0, rec),
                     PARLEY_ERR_LIMIT);
    assert_int_equal(tls_rec_open(&r, rec, rec + 5, TLS_REC_WIRE_BYTES(1, 0) - 5, scratch,
                                  sizeof scratch, &type, &got),
                     PARLEY_ERR_LIMIT);
    /* A scratch buffer below 2^14 is refused rather than overrun. */
    assert_int_equal(tls_rec_open(&r, rec, rec + 5, TLS_REC_WIRE_BYTES(1, 0) - 5, scratch, 100,
                                  &type, &got),
                     PARLEY_ERR_INVAL);
    assert_int_equal(tls_rec_cipher_from_suite(0x1302), 0);
    assert_int_equal(tls_rec_cipher_from_suite(0x1301), TLS_REC_AES_128_GCM);
    assert_int_equal(tls_rec_cipher_from_suite(0x1303), TLS_REC_CHACHA20_POLY1305);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand_label_rfc8448), cmocka_unit_test(test_records_rfc8448),
        cmocka_unit_test(test_tamper),               cmocka_unit_test(test_header_checks),
        cmocka_unit_test(test_roundtrip_aes),        cmocka_unit_test(test_roundtrip_chacha),
        cmocka_unit_test(test_inner_plaintext),      cmocka_unit_test(test_key_update),
        cmocka_unit_test(test_seq_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
