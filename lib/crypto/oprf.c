/*
 * oprf.c — RFC 9497 OPRF mode 0x00, ristretto255-SHA512, over libsodium 1.0.18.
 *
 * Pitfalls handled here (see tests/data/vectors/README.md):
 *  - contextString = "OPRFV1-" || 0x00 || "-" || "ristretto255-SHA512" (raw mode byte);
 *  - HashToGroup = crypto_core_ristretto255_from_hash(expand_message_xmd(x, DST, 64));
 *  - HashToScalar (DeriveKeyPair only) = reduce(expand_message_xmd(x, DST, 64));
 *  - crypto_core_ristretto255_is_valid_point accepts the all-zero identity: we reject it;
 *  - crypto_scalarmult_ristretto255 clears the scalar's top bit: we only pass scalars
 *    that passed the canonical check (reduced, so the top bit is always clear).
 * Secret scalars live on the stack for one call and are wiped on every path.
 */
#include <string.h>

#include <sodium.h>

#include "crypto_int.h"
#include "parley/kdf.h"
#include "parley/oprf.h"

#define CTX "OPRFV1-\x00-ristretto255-SHA512"
#define CTX_LEN (sizeof CTX - 1)

static const uint8_t dst_h2g[] = "HashToGroup-" CTX;

int parley_oprf_scalar_is_valid(const uint8_t s[PARLEY_OPRF_SCALAR_BYTES])
{
    uint8_t wide[crypto_core_ristretto255_NONREDUCEDSCALARBYTES] = {0};
    uint8_t red[crypto_core_ristretto255_SCALARBYTES];
    int ok;

    if (!s)
        return 0;
    memcpy(wide, s, PARLEY_OPRF_SCALAR_BYTES);
    crypto_core_ristretto255_scalar_reduce(red, wide);
    ok = sodium_memcmp(red, s, sizeof red) == 0 && !sodium_is_zero(s, PARLEY_OPRF_SCALAR_BYTES);
    sodium_memzero(wide, sizeof wide);
    sodium_memzero(red, sizeof red);
    return ok;
}

int parley_oprf_element_is_valid(const uint8_t elem[PARLEY_OPRF_ELEMENT_BYTES])
{
    if (!elem)
        return 0;
    return crypto_core_ristretto255_is_valid_point(elem) == 1 &&
           !sodium_is_zero(elem, PARLEY_OPRF_ELEMENT_BYTES);
}

/* HashToGroup(input): rejects (returns -1) an identity result, as Blind/Evaluate must. */
static int hash_to_group(uint8_t p[32], const uint8_t *input, size_t input_len)
{
    uint8_t u[64];
    int rc = -1;

    if (parley_xmd_sha512_expand(u, sizeof u, input, input_len, dst_h2g, sizeof dst_h2g - 1) ==
            PARLEY_OK &&
        crypto_core_ristretto255_from_hash(p, u) == 0 && !sodium_is_zero(p, 32))
        rc = 0;
    sodium_memzero(u, sizeof u);
    return rc;
}

/* expand to 64 bytes and reduce mod L */
static int hash_to_scalar(uint8_t s[32], const uint8_t *msg, size_t msg_len, const uint8_t *dst,
                          size_t dst_len)
{
    uint8_t u[64];
    int rc = -1;

    if (parley_xmd_sha512_expand(u, sizeof u, msg, msg_len, dst, dst_len) == PARLEY_OK) {
        crypto_core_ristretto255_scalar_reduce(s, u);
        rc = 0;
    }
    sodium_memzero(u, sizeof u);
    return rc;
}

enum parley_err parley_oprf_keygen(uint8_t sk[PARLEY_OPRF_SCALAR_BYTES],
                                   uint8_t pk[PARLEY_OPRF_ELEMENT_BYTES])
{
    if (!sk || !pk) {
        if (sk)
            sodium_memzero(sk, PARLEY_OPRF_SCALAR_BYTES);
        if (pk)
            sodium_memzero(pk, PARLEY_OPRF_ELEMENT_BYTES);
        return PARLEY_ERR_INVAL;
    }
    do {
        crypto_core_ristretto255_scalar_random(sk);
    } while (!parley_oprf_scalar_is_valid(sk));
    if (crypto_scalarmult_ristretto255_base(pk, sk) != 0) {
        sodium_memzero(sk, PARLEY_OPRF_SCALAR_BYTES);
        sodium_memzero(pk, PARLEY_OPRF_ELEMENT_BYTES);
        return PARLEY_ERR_CRYPTO;
    }
    return PARLEY_OK;
}

enum parley_err parley_oprf_derive_keypair(uint8_t sk[PARLEY_OPRF_SCALAR_BYTES],
                                           uint8_t pk[PARLEY_OPRF_ELEMENT_BYTES],
                                           const uint8_t seed[PARLEY_OPRF_SEED_BYTES],
                                           const uint8_t *info, size_t info_len)
{
    return oprf_derive_keypair_mode(sk, pk, seed, info, info_len, 0x00);
}

enum parley_err oprf_derive_keypair_mode(uint8_t sk[32], uint8_t pk[32], const uint8_t seed[32],
                                         const uint8_t *info, size_t info_len, uint8_t mode)
{
    /* "DeriveKeyPair" || "OPRFV1-" || mode || "-ristretto255-SHA512" */
    uint8_t dst_dkp[sizeof "DeriveKeyPair" - 1 + CTX_LEN];
    /* deriveInput = seed || I2OSP(len(info), 2) || info, then || I2OSP(counter, 1) */
    uint8_t *buf = NULL;
    size_t buf_len, pos = 0;
    unsigned counter;
    enum parley_err rc = PARLEY_ERR_CRYPTO;

    if (!sk)
        return PARLEY_ERR_INVAL;
    sodium_memzero(sk, PARLEY_OPRF_SCALAR_BYTES);
    if (pk)
        sodium_memzero(pk, PARLEY_OPRF_ELEMENT_BYTES);
    if (!seed || (!info && info_len) || info_len > PARLEY_OPRF_MAX_INFO_BYTES)
        return PARLEY_ERR_INVAL;

    memcpy(dst_dkp, "DeriveKeyPair", sizeof "DeriveKeyPair" - 1);
    memcpy(dst_dkp + sizeof "DeriveKeyPair" - 1, CTX, CTX_LEN);
    dst_dkp[sizeof "DeriveKeyPair" - 1 + 7] = mode; /* after "OPRFV1-" */

    buf_len = PARLEY_OPRF_SEED_BYTES + 2 + info_len + 1;
    buf = sodium_malloc(buf_len);
    if (!buf)
        return PARLEY_ERR_NOMEM;
    memcpy(buf, seed, PARLEY_OPRF_SEED_BYTES);
    pos = PARLEY_OPRF_SEED_BYTES;
    buf[pos++] = (uint8_t)(info_len >> 8);
    buf[pos++] = (uint8_t)info_len;
    if (info_len)
        memcpy(buf + pos, info, info_len);
    pos += info_len;

    for (counter = 0; counter <= 255; counter++) {
        buf[pos] = (uint8_t)counter;
        if (hash_to_scalar(sk, buf, buf_len, dst_dkp, sizeof dst_dkp) != 0)
            goto out;
        if (!sodium_is_zero(sk, PARLEY_OPRF_SCALAR_BYTES))
            break;
    }
    if (counter > 255)
        goto out;
    if (pk && crypto_scalarmult_ristretto255_base(pk, sk) != 0)
        goto out;
    rc = PARLEY_OK;
out:
    sodium_free(buf); /* sodium_free wipes */
    if (rc != PARLEY_OK) {
        sodium_memzero(sk, PARLEY_OPRF_SCALAR_BYTES);
        if (pk)
            sodium_memzero(pk, PARLEY_OPRF_ELEMENT_BYTES);
    }
    return rc;
}

enum parley_err parley_oprf_blind_with(uint8_t blinded[PARLEY_OPRF_ELEMENT_BYTES],
                                       const uint8_t blind[PARLEY_OPRF_SCALAR_BYTES],
                                       const uint8_t *input, size_t input_len)
{
    uint8_t p[32];
    enum parley_err rc = PARLEY_ERR_CRYPTO;

    if (!blinded)
        return PARLEY_ERR_INVAL;
    sodium_memzero(blinded, PARLEY_OPRF_ELEMENT_BYTES);
    if (!blind || (!input && input_len) || input_len > PARLEY_OPRF_MAX_INPUT_BYTES)
        return PARLEY_ERR_INVAL;
    if (!parley_oprf_scalar_is_valid(blind))
        return PARLEY_ERR_CRYPTO;
    if (hash_to_group(p, input, input_len) != 0)
        goto out;
    if (crypto_scalarmult_ristretto255(blinded, blind, p) != 0)
        goto out;
    rc = PARLEY_OK;
out:
    sodium_memzero(p, sizeof p);
    if (rc != PARLEY_OK)
        sodium_memzero(blinded, PARLEY_OPRF_ELEMENT_BYTES);
    return rc;
}

enum parley_err parley_oprf_blind(uint8_t blind[PARLEY_OPRF_SCALAR_BYTES],
                                  uint8_t blinded[PARLEY_OPRF_ELEMENT_BYTES], const uint8_t *input,
                                  size_t input_len)
{
    enum parley_err rc;

    if (!blind || !blinded) {
        if (blind)
            sodium_memzero(blind, PARLEY_OPRF_SCALAR_BYTES);
        if (blinded)
            sodium_memzero(blinded, PARLEY_OPRF_ELEMENT_BYTES);
        return PARLEY_ERR_INVAL;
    }
    do {
        crypto_core_ristretto255_scalar_random(blind);
    } while (!parley_oprf_scalar_is_valid(blind));
    rc = parley_oprf_blind_with(blinded, blind, input, input_len);
    if (rc != PARLEY_OK)
        sodium_memzero(blind, PARLEY_OPRF_SCALAR_BYTES);
    return rc;
}

enum parley_err parley_oprf_blind_evaluate(uint8_t evaluated[PARLEY_OPRF_ELEMENT_BYTES],
                                           const uint8_t sk[PARLEY_OPRF_SCALAR_BYTES],
                                           const uint8_t blinded[PARLEY_OPRF_ELEMENT_BYTES])
{
    if (!evaluated)
        return PARLEY_ERR_INVAL;
    sodium_memzero(evaluated, PARLEY_OPRF_ELEMENT_BYTES);
    if (!sk || !blinded)
        return PARLEY_ERR_INVAL;
    if (!parley_oprf_scalar_is_valid(sk) || !parley_oprf_element_is_valid(blinded))
        return PARLEY_ERR_CRYPTO;
    if (crypto_scalarmult_ristretto255(evaluated, sk, blinded) != 0) {
        sodium_memzero(evaluated, PARLEY_OPRF_ELEMENT_BYTES);
        return PARLEY_ERR_CRYPTO;
    }
    return PARLEY_OK;
}

/* SHA-512(I2OSP(len(input),2) || input || I2OSP(32,2) || elem || "Finalize") */
static void finalize_hash(uint8_t out[64], const uint8_t *input, size_t input_len,
                          const uint8_t elem[32])
{
    static const uint8_t fin[] = "Finalize";
    crypto_hash_sha512_state st;
    uint8_t len2[2];

    crypto_hash_sha512_init(&st);
    len2[0] = (uint8_t)(input_len >> 8);
    len2[1] = (uint8_t)input_len;
    crypto_hash_sha512_update(&st, len2, 2);
    if (input_len)
        crypto_hash_sha512_update(&st, input, input_len);
    len2[0] = 0;
    len2[1] = 32;
    crypto_hash_sha512_update(&st, len2, 2);
    crypto_hash_sha512_update(&st, elem, 32);
    crypto_hash_sha512_update(&st, fin, sizeof fin - 1);
    crypto_hash_sha512_final(&st, out);
    sodium_memzero(&st, sizeof st);
}

enum parley_err parley_oprf_finalize(uint8_t output[PARLEY_OPRF_OUTPUT_BYTES], const uint8_t *input,
                                     size_t input_len,
                                     const uint8_t blind[PARLEY_OPRF_SCALAR_BYTES],
                                     const uint8_t evaluated[PARLEY_OPRF_ELEMENT_BYTES])
{
    uint8_t inv[32], n[32];
    enum parley_err rc = PARLEY_ERR_CRYPTO;

    if (!output)
        return PARLEY_ERR_INVAL;
    sodium_memzero(output, PARLEY_OPRF_OUTPUT_BYTES);
    if (!blind || !evaluated || (!input && input_len) || input_len > PARLEY_OPRF_MAX_INPUT_BYTES)
        return PARLEY_ERR_INVAL;
    if (!parley_oprf_scalar_is_valid(blind) || !parley_oprf_element_is_valid(evaluated))
        return PARLEY_ERR_CRYPTO;
    if (crypto_core_ristretto255_scalar_invert(inv, blind) != 0)
        goto out;
    if (crypto_scalarmult_ristretto255(n, inv, evaluated) != 0)
        goto out;
    finalize_hash(output, input, input_len, n);
    rc = PARLEY_OK;
out:
    sodium_memzero(inv, sizeof inv);
    sodium_memzero(n, sizeof n);
    return rc;
}

enum parley_err parley_oprf_evaluate(uint8_t output[PARLEY_OPRF_OUTPUT_BYTES],
                                     const uint8_t sk[PARLEY_OPRF_SCALAR_BYTES],
                                     const uint8_t *input, size_t input_len)
{
    uint8_t p[32], e[32];
    enum parley_err rc = PARLEY_ERR_CRYPTO;

    if (!output)
        return PARLEY_ERR_INVAL;
    sodium_memzero(output, PARLEY_OPRF_OUTPUT_BYTES);
    if (!sk || (!input && input_len) || input_len > PARLEY_OPRF_MAX_INPUT_BYTES)
        return PARLEY_ERR_INVAL;
    if (!parley_oprf_scalar_is_valid(sk))
        return PARLEY_ERR_CRYPTO;
    if (hash_to_group(p, input, input_len) != 0)
        goto out;
    if (crypto_scalarmult_ristretto255(e, sk, p) != 0)
        goto out;
    finalize_hash(output, input, input_len, e);
    rc = PARLEY_OK;
out:
    sodium_memzero(p, sizeof p);
    sodium_memzero(e, sizeof e);
    return rc;
}
