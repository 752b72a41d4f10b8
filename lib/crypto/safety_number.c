/*
 * safety_number.c — 60-digit safety numbers (see parley/safety_number.h). Only public
 * values are hashed; the output is for display. Sorting the two halves makes the number
 * identical on both devices.
 */
#include <string.h>

#include <sodium.h>

#include "parley/safety_number.h"

#define HALF 30U

static void half(char out[HALF], const uint8_t ik[32], const uint8_t *id, size_t id_len)
{
    static const uint8_t version[2] = {0x00, 0x01};
    crypto_hash_sha512_state st;
    uint8_t h[crypto_hash_sha512_BYTES];
    unsigned i, j;

    crypto_hash_sha512_init(&st);
    crypto_hash_sha512_update(&st, version, sizeof version);
    crypto_hash_sha512_update(&st, ik, 32);
    if (id_len)
        crypto_hash_sha512_update(&st, id, id_len);
    crypto_hash_sha512_final(&st, h);
    for (i = 0; i < PARLEY_SAFETY_NUMBER_ITERATIONS; i++) {
        crypto_hash_sha512_init(&st);
        crypto_hash_sha512_update(&st, h, sizeof h);
        crypto_hash_sha512_update(&st, ik, 32);
        crypto_hash_sha512_final(&st, h);
    }
    for (i = 0; i < 6; i++) {
        uint64_t v = 0;
        for (j = 0; j < 5; j++)
            v = (v << 8) | h[5 * i + j];
        v %= 100000U;
        for (j = 0; j < 5; j++) {
            out[5 * i + 4 - j] = (char)('0' + (int)(v % 10U));
            v /= 10U;
        }
    }
}

enum parley_err parley_safety_number(char out[PARLEY_SAFETY_NUMBER_BYTES], const uint8_t ik_a[32],
                                     const uint8_t *id_a, size_t id_a_len, const uint8_t ik_b[32],
                                     const uint8_t *id_b, size_t id_b_len)
{
    char a[HALF], b[HALF];

    if (!out)
        return PARLEY_ERR_INVAL;
    memset(out, 0, PARLEY_SAFETY_NUMBER_BYTES);
    if (!ik_a || !ik_b || (!id_a && id_a_len) || (!id_b && id_b_len) ||
        id_a_len > PARLEY_SAFETY_NUMBER_MAX_ID_BYTES ||
        id_b_len > PARLEY_SAFETY_NUMBER_MAX_ID_BYTES)
        return PARLEY_ERR_INVAL;
    half(a, ik_a, id_a, id_a_len);
    half(b, ik_b, id_b, id_b_len);
    if (memcmp(a, b, HALF) <= 0) {
        memcpy(out, a, HALF);
        memcpy(out + HALF, b, HALF);
    } else {
        memcpy(out, b, HALF);
        memcpy(out + HALF, a, HALF);
    }
    out[PARLEY_SAFETY_NUMBER_DIGITS] = '\0';
    return PARLEY_OK;
}
