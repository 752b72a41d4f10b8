/*
 * test_stream_seal.c — encryption at rest of queued envelopes (server/stream/seal.c):
 * round trip, random nonces, and refusal of a body that was altered, moved to another
 * recipient/sender/message, or sealed under another master key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "stream/seal.h"

static const char *R = "0123456789abcdef0123456789abcdef";
static const char *S = "fedcba9876543210fedcba9876543210";
static const char *X = "00000000000000000000000000000000";
static const uint8_t MID[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static struct seal_key *key_from(uint8_t fill)
{
    unsigned char master[32];
    memset(master, fill, sizeof master);
    struct seal_key *k = NULL;
    assert_int_equal(seal_key_new(master, &k), PARLEY_OK);
    return k;
}

static void test_round_trip_and_fresh_nonces(void **state)
{
    (void)state;
    struct seal_key *k = key_from(7);
    const uint8_t pt[] = "opaque end-to-end ciphertext";
    uint8_t a[sizeof pt + SEAL_OVERHEAD], b[sizeof pt + SEAL_OVERHEAD], out[sizeof pt];
    assert_int_equal(seal_envelope(k, R, S, MID, pt, sizeof pt, a), PARLEY_OK);
    assert_int_equal(seal_envelope(k, R, S, MID, pt, sizeof pt, b), PARLEY_OK);
    assert_int_equal(a[0], SEAL_VERSION);
    assert_memory_not_equal(a, b, sizeof a); /* random nonce each time */
    for (size_t i = 0; i + sizeof pt - 1 <= sizeof a; i++)
        assert_memory_not_equal(a + i, pt, sizeof pt - 1); /* no plaintext inside */
    assert_int_equal(seal_open(k, R, S, MID, a, sizeof a, out), PARLEY_OK);
    assert_memory_equal(out, pt, sizeof pt);
    seal_key_free(k);
}

static void test_refuses_tampered_or_moved(void **state)
{
    (void)state;
    struct seal_key *k = key_from(7), *other = key_from(8);
    const uint8_t pt[] = "message";
    uint8_t sealed[sizeof pt + SEAL_OVERHEAD], out[sizeof pt];
    assert_int_equal(seal_envelope(k, R, S, MID, pt, sizeof pt, sealed), PARLEY_OK);
    uint8_t mid2[16];
    memcpy(mid2, MID, 16);
    mid2[0] ^= 1;
    assert_int_equal(seal_open(k, X, S, MID, sealed, sizeof sealed, out), PARLEY_ERR_CRYPTO);
    assert_int_equal(seal_open(k, R, X, MID, sealed, sizeof sealed, out), PARLEY_ERR_CRYPTO);
    assert_int_equal(seal_open(k, R, S, mid2, sealed, sizeof sealed, out), PARLEY_ERR_CRYPTO);
    assert_int_equal(seal_open(other, R, S, MID, sealed, sizeof sealed, out), PARLEY_ERR_CRYPTO);
    for (size_t i = 0; i < sizeof sealed; i++) {
        sealed[i] ^= 0x40;
        assert_int_not_equal(seal_open(k, R, S, MID, sealed, sizeof sealed, out), PARLEY_OK);
        sealed[i] ^= 0x40;
    }
    assert_int_equal(seal_open(k, R, S, MID, sealed, SEAL_OVERHEAD - 1, out), PARLEY_ERR_INVAL);
    assert_int_equal(seal_open(k, "short", S, MID, sealed, sizeof sealed, out), PARLEY_ERR_INVAL);
    assert_int_equal(seal_open(k, R, S, MID, sealed, sizeof sealed, out), PARLEY_OK);
    seal_key_free(k);
    seal_key_free(other);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_fresh_nonces),
        cmocka_unit_test(test_refuses_tampered_or_moved),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
