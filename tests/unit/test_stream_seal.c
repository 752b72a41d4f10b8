/*
 * test_stream_seal.c — encryption at rest of queued envelopes (server/stream/seal.c):
 * round trip of both formats (v1 XChaCha20-Poly1305, v2 AES-256-GCM), either key opening
 * either version, fresh nonces, output lengths, and refusal of a body that was altered,
 * relabelled, moved to another recipient/sender/message, truncated, or sealed under
 * another master key. v2 tests are skipped (reported) where AES-256-GCM cannot run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "stream/seal.h"

static const char *R = "0123456789abcdef0123456789abcdef";
static const char *S = "fedcba9876543210fedcba9876543210";
static const char *X = "00000000000000000000000000000000";
static const uint8_t MID[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static struct seal_key *key_version(uint8_t fill, uint8_t version)
{
    unsigned char master[32];
    memset(master, fill, sizeof master);
    struct seal_key *k = NULL;
    assert_int_equal(seal_key_new_version(master, version, &k), PARLEY_OK);
    assert_int_equal(seal_key_version(k), version);
    return k;
}

static struct seal_key *key_from(uint8_t fill)
{
    unsigned char master[32];
    memset(master, fill, sizeof master);
    struct seal_key *k = NULL;
    assert_int_equal(seal_key_new(master, &k), PARLEY_OK);
    return k;
}

/* Skip (reported by cmocka, never a silent pass) where v2 cannot run. */
static void need_gcm(void)
{
    if (!crypto_aead_aes256gcm_is_available()) {
        print_message("AES-256-GCM unavailable on this CPU (no AES-NI/PCLMUL): v2 skipped\n");
        skip();
    }
}

static void test_default_version(void **state)
{
    (void)state;
    struct seal_key *k = key_from(7);
    assert_int_equal(seal_key_version(k), crypto_aead_aes256gcm_is_available() ? SEAL_V2 : SEAL_V1);
    seal_key_free(k);
    unsigned char master[32] = {0};
    struct seal_key *bad = NULL;
    assert_int_equal(seal_key_new_version(master, 0x03, &bad), PARLEY_ERR_INVAL);
    assert_null(bad);
    assert_int_equal(seal_key_new_version(NULL, SEAL_V1, &bad), PARLEY_ERR_INVAL);
    if (!crypto_aead_aes256gcm_is_available()) {
        assert_int_equal(seal_key_new_version(master, SEAL_V2, &bad), PARLEY_ERR_CRYPTO);
        /* A v2 body (from a host with AES-NI) cannot be opened here: refused, not a crash. */
        struct seal_key *k1 = key_version(7, SEAL_V1);
        uint8_t body[SEAL_V2_OVERHEAD + 8] = {SEAL_V2}, out[sizeof body];
        size_t olen = 99;
        memset(out, 0xAA, sizeof out);
        assert_int_equal(seal_open(k1, R, S, MID, body, sizeof body, out, &olen),
                         PARLEY_ERR_CRYPTO);
        assert_int_equal(olen, 0);
        assert_int_equal(out[0], 0);
        seal_key_free(k1);
    }
}

/* Seal pt with k and check version, length, absence of plaintext and the round trip. */
static void round_trip(uint8_t version)
{
    struct seal_key *k = key_version(7, version);
    const uint8_t pt[] = "opaque end-to-end ciphertext";
    size_t overhead = version == SEAL_V2 ? SEAL_V2_OVERHEAD : SEAL_V1_OVERHEAD;
    uint8_t a[sizeof pt + SEAL_OVERHEAD], b[sizeof pt + SEAL_OVERHEAD], out[sizeof a];
    size_t alen = 0, blen = 0, olen = 0;
    assert_int_equal(seal_envelope(k, R, S, MID, pt, sizeof pt, a, &alen), PARLEY_OK);
    assert_int_equal(seal_envelope(k, R, S, MID, pt, sizeof pt, b, &blen), PARLEY_OK);
    assert_int_equal(alen, sizeof pt + overhead);
    assert_int_equal(blen, sizeof pt + overhead);
    assert_int_equal(a[0], version);
    assert_memory_not_equal(a, b, alen); /* fresh nonce each time */
    assert_memory_not_equal(a + 1, b + 1, overhead - 1 - SEAL_TAG_BYTES);
    for (size_t i = 0; i + sizeof pt - 1 <= alen; i++)
        assert_memory_not_equal(a + i, pt, sizeof pt - 1); /* no plaintext inside */
    memset(out, 0xAA, sizeof out);
    assert_int_equal(seal_open(k, R, S, MID, a, alen, out, &olen), PARLEY_OK);
    assert_int_equal(olen, sizeof pt);
    assert_memory_equal(out, pt, sizeof pt);
    /* Empty plaintext too. */
    assert_int_equal(seal_envelope(k, R, S, MID, NULL, 0, a, &alen), PARLEY_OK);
    assert_int_equal(alen, overhead);
    assert_int_equal(seal_open(k, R, S, MID, a, alen, out, &olen), PARLEY_OK);
    assert_int_equal(olen, 0);
    seal_key_free(k);
}

static void test_v1_round_trip(void **state)
{
    (void)state;
    round_trip(SEAL_V1);
}

static void test_v2_round_trip(void **state)
{
    (void)state;
    need_gcm();
    round_trip(SEAL_V2);
}

/* Bodies sealed before the switch (v1) open with the new key, and back. */
static void test_versions_open_across_keys(void **state)
{
    (void)state;
    need_gcm();
    struct seal_key *k1 = key_version(7, SEAL_V1), *k2 = key_version(7, SEAL_V2);
    const uint8_t pt[] = "queued before the upgrade";
    uint8_t s1[sizeof pt + SEAL_OVERHEAD], s2[sizeof pt + SEAL_OVERHEAD], out[sizeof s1];
    size_t l1 = 0, l2 = 0, olen = 0;
    assert_int_equal(seal_envelope(k1, R, S, MID, pt, sizeof pt, s1, &l1), PARLEY_OK);
    assert_int_equal(seal_envelope(k2, R, S, MID, pt, sizeof pt, s2, &l2), PARLEY_OK);
    assert_int_equal(s1[0], SEAL_V1);
    assert_int_equal(s2[0], SEAL_V2);
    assert_int_equal(seal_open(k2, R, S, MID, s1, l1, out, &olen), PARLEY_OK);
    assert_int_equal(olen, sizeof pt);
    assert_memory_equal(out, pt, sizeof pt);
    assert_int_equal(seal_open(k1, R, S, MID, s2, l2, out, &olen), PARLEY_OK);
    assert_int_equal(olen, sizeof pt);
    assert_memory_equal(out, pt, sizeof pt);
    /* And with the production constructor. */
    struct seal_key *kd = key_from(7);
    assert_int_equal(seal_open(kd, R, S, MID, s1, l1, out, &olen), PARLEY_OK);
    assert_int_equal(seal_open(kd, R, S, MID, s2, l2, out, &olen), PARLEY_OK);
    seal_key_free(kd);
    seal_key_free(k1);
    seal_key_free(k2);
}

/* v2 nonces: prefix fixed per key, the counter part steps by one per seal. */
static void test_v2_nonces_distinct(void **state)
{
    (void)state;
    need_gcm();
    struct seal_key *k = key_version(7, SEAL_V2), *k2 = key_version(7, SEAL_V2);
    const uint8_t pt[] = "same plaintext";
    enum { N = 64 };
    uint8_t nonces[N][SEAL_V2_NONCE_BYTES];
    uint8_t sealed[sizeof pt + SEAL_OVERHEAD];
    size_t len = 0;
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(seal_envelope(k, R, S, MID, pt, sizeof pt, sealed, &len), PARLEY_OK);
        memcpy(nonces[i], sealed + 1, SEAL_V2_NONCE_BYTES);
    }
    for (size_t i = 0; i < N; i++)
        for (size_t j = i + 1; j < N; j++)
            assert_memory_not_equal(nonces[i], nonces[j], SEAL_V2_NONCE_BYTES);
    for (size_t i = 1; i < N; i++) {
        assert_memory_equal(nonces[i], nonces[0], 4); /* per-key random prefix */
        uint64_t a = 0, b = 0;
        for (size_t j = 4; j < SEAL_V2_NONCE_BYTES; j++) {
            a = a << 8 | nonces[i - 1][j];
            b = b << 8 | nonces[i][j];
        }
        assert_true(b == a + 1); /* big-endian counter, wrapping mod 2^64 */
    }
    /* Another key (a restart) starts elsewhere. */
    assert_int_equal(seal_envelope(k2, R, S, MID, pt, sizeof pt, sealed, &len), PARLEY_OK);
    for (size_t i = 0; i < N; i++)
        assert_memory_not_equal(sealed + 1, nonces[i], SEAL_V2_NONCE_BYTES);
    seal_key_free(k);
    seal_key_free(k2);
}

static void refuses_tampered_or_moved(uint8_t version)
{
    struct seal_key *k = key_version(7, version), *other = key_version(8, version);
    const uint8_t pt[] = "message of some length";
    uint8_t sealed[sizeof pt + SEAL_OVERHEAD], out[sizeof sealed];
    size_t len = 0, olen = 99;
    assert_int_equal(seal_envelope(k, R, S, MID, pt, sizeof pt, sealed, &len), PARLEY_OK);
    uint8_t mid2[16];
    memcpy(mid2, MID, 16);
    mid2[0] ^= 1;
    assert_int_equal(seal_open(k, X, S, MID, sealed, len, out, &olen), PARLEY_ERR_CRYPTO);
    assert_int_equal(olen, 0);
    assert_int_equal(seal_open(k, R, X, MID, sealed, len, out, &olen), PARLEY_ERR_CRYPTO);
    assert_int_equal(seal_open(k, R, S, mid2, sealed, len, out, &olen), PARLEY_ERR_CRYPTO);
    assert_int_equal(seal_open(other, R, S, MID, sealed, len, out, &olen), PARLEY_ERR_CRYPTO);
    /* Swapped recipient and sender. */
    assert_int_equal(seal_open(k, S, R, MID, sealed, len, out, &olen), PARLEY_ERR_CRYPTO);
    size_t overhead = version == SEAL_V2 ? SEAL_V2_OVERHEAD : SEAL_V1_OVERHEAD;
    uint8_t zero[sizeof out] = {0};
    for (size_t i = 0; i < len; i++) {
        sealed[i] ^= 0x40;
        memset(out, 0xAA, sizeof out);
        enum parley_err rc = seal_open(k, R, S, MID, sealed, len, out, &olen);
        assert_int_not_equal(rc, PARLEY_OK);
        if (rc == PARLEY_ERR_CRYPTO)
            assert_memory_equal(out, zero, len - overhead); /* out zeroed */
        sealed[i] ^= 0x40;
    }
    /* Every other bit of the first ciphertext byte and of the last tag byte too. */
    size_t ct0 = version == SEAL_V2 ? 1 + SEAL_V2_NONCE_BYTES : 1 + SEAL_V1_NONCE_BYTES;
    for (int bit = 0; bit < 8; bit++) {
        sealed[ct0] ^= (uint8_t)(1u << bit);
        assert_int_equal(seal_open(k, R, S, MID, sealed, len, out, &olen), PARLEY_ERR_CRYPTO);
        sealed[ct0] ^= (uint8_t)(1u << bit);
        sealed[len - 1] ^= (uint8_t)(1u << bit);
        assert_int_equal(seal_open(k, R, S, MID, sealed, len, out, &olen), PARLEY_ERR_CRYPTO);
        sealed[len - 1] ^= (uint8_t)(1u << bit);
    }
    /* Truncated: shorter than its version's overhead, or than any version's. */
    assert_int_equal(seal_open(k, R, S, MID, sealed, overhead - 1, out, &olen), PARLEY_ERR_INVAL);
    assert_int_equal(seal_open(k, R, S, MID, sealed, SEAL_MIN_OVERHEAD - 1, out, &olen),
                     PARLEY_ERR_INVAL);
    assert_int_equal(seal_open(k, R, S, MID, sealed, 0, out, &olen), PARLEY_ERR_INVAL);
    /* Cut short but still long enough: the tag no longer matches. */
    assert_int_equal(seal_open(k, R, S, MID, sealed, len - 1, out, &olen), PARLEY_ERR_CRYPTO);
    assert_int_equal(seal_open(k, "short", S, MID, sealed, len, out, &olen), PARLEY_ERR_INVAL);
    assert_int_equal(seal_open(k, R, S, MID, sealed, len, out, NULL), PARLEY_ERR_INVAL);
    assert_int_equal(seal_open(NULL, R, S, MID, sealed, len, out, &olen), PARLEY_ERR_INVAL);
    /* Unknown version: CRYPTO, out zeroed. */
    uint8_t saved = sealed[0];
    sealed[0] = 0x03;
    memset(out, 0xAA, sizeof out);
    assert_int_equal(seal_open(k, R, S, MID, sealed, len, out, &olen), PARLEY_ERR_CRYPTO);
    assert_memory_equal(out, zero, len - SEAL_MIN_OVERHEAD);
    sealed[0] = saved;
    /* Still intact after all that. */
    assert_int_equal(seal_open(k, R, S, MID, sealed, len, out, &olen), PARLEY_OK);
    assert_int_equal(olen, sizeof pt);
    assert_memory_equal(out, pt, sizeof pt);
    seal_key_free(k);
    seal_key_free(other);
}

static void test_v1_refuses_tampered_or_moved(void **state)
{
    (void)state;
    refuses_tampered_or_moved(SEAL_V1);
}

static void test_v2_refuses_tampered_or_moved(void **state)
{
    (void)state;
    need_gcm();
    refuses_tampered_or_moved(SEAL_V2);
}

/* The version byte is in the AD: a body cannot be passed off as the other version. */
static void test_relabelled_version_refused(void **state)
{
    (void)state;
    need_gcm();
    struct seal_key *k = key_version(7, SEAL_V2);
    const uint8_t pt[] = "long enough to be a plausible v1 body";
    uint8_t sealed[sizeof pt + SEAL_OVERHEAD], out[sizeof sealed];
    size_t len = 0, olen = 0;
    assert_int_equal(seal_envelope(k, R, S, MID, pt, sizeof pt, sealed, &len), PARLEY_OK);
    sealed[0] = SEAL_V1;
    assert_int_equal(seal_open(k, R, S, MID, sealed, len, out, &olen), PARLEY_ERR_CRYPTO);
    seal_key_free(k);

    k = key_version(7, SEAL_V1);
    assert_int_equal(seal_envelope(k, R, S, MID, pt, sizeof pt, sealed, &len), PARLEY_OK);
    sealed[0] = SEAL_V2;
    assert_int_equal(seal_open(k, R, S, MID, sealed, len, out, &olen), PARLEY_ERR_CRYPTO);
    seal_key_free(k);
}

static void test_seal_bad_args(void **state)
{
    (void)state;
    struct seal_key *k = key_version(7, SEAL_V1);
    uint8_t pt[4] = {0}, out[4 + SEAL_OVERHEAD];
    size_t len = 99;
    assert_int_equal(seal_envelope(k, R, S, MID, pt, sizeof pt, out, NULL), PARLEY_ERR_INVAL);
    assert_int_equal(seal_envelope(k, "short", S, MID, pt, sizeof pt, out, &len), PARLEY_ERR_INVAL);
    assert_int_equal(len, 0);
    assert_int_equal(seal_envelope(k, R, S, MID, NULL, 1, out, &len), PARLEY_ERR_INVAL);
    assert_int_equal(seal_envelope(NULL, R, S, MID, pt, sizeof pt, out, &len), PARLEY_ERR_INVAL);
    seal_key_free(k);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    if (!crypto_aead_aes256gcm_is_available())
        fprintf(stderr, "test_stream_seal: AES-256-GCM unavailable, v2 tests will be skipped\n");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_version),
        cmocka_unit_test(test_v1_round_trip),
        cmocka_unit_test(test_v2_round_trip),
        cmocka_unit_test(test_versions_open_across_keys),
        cmocka_unit_test(test_v2_nonces_distinct),
        cmocka_unit_test(test_v1_refuses_tampered_or_moved),
        cmocka_unit_test(test_v2_refuses_tampered_or_moved),
        cmocka_unit_test(test_relabelled_version_refused),
        cmocka_unit_test(test_seal_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
