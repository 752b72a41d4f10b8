/*
 * kdf.c — HKDF-SHA256 (RFC 5869), expand_message_xmd/SHA-512 (RFC 9380 Sec. 5.3.1) and the
 * Signal chain step KDF_CK. libsodium 1.0.18 has HMAC-SHA256 and SHA-512 but not HKDF, so
 * both expanders are written here over its incremental hash states.
 *
 * Invariants: every intermediate (HMAC states, PRK, b_0, b_i) lives on the stack only for
 * the duration of the call and is wiped with sodium_memzero on every return path; outputs
 * are zeroed before any failure return.
 */
#include <string.h>

#include <sodium.h>

#include "crypto_int.h"
#include "parley/kdf.h"

enum parley_err parley_crypto_init(void)
{
    return sodium_init() < 0 ? PARLEY_ERR_CRYPTO : PARLEY_OK;
}

enum parley_err parley_hkdf_sha256_extract(uint8_t prk[PARLEY_HKDF_SHA256_PRK_BYTES],
                                           const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
                                           size_t ikm_len)
{
    static const uint8_t zero_salt[crypto_auth_hmacsha256_BYTES] = {0};
    crypto_auth_hmacsha256_state st;

    if (!prk)
        return PARLEY_ERR_INVAL;
    sodium_memzero(prk, PARLEY_HKDF_SHA256_PRK_BYTES);
    if ((!salt && salt_len) || (!ikm && ikm_len))
        return PARLEY_ERR_INVAL;
    if (!salt_len) {
        salt = zero_salt;
        salt_len = sizeof zero_salt;
    }
    crypto_auth_hmacsha256_init(&st, salt, salt_len);
    if (ikm_len)
        crypto_auth_hmacsha256_update(&st, ikm, ikm_len);
    crypto_auth_hmacsha256_final(&st, prk);
    sodium_memzero(&st, sizeof st);
    return PARLEY_OK;
}

enum parley_err parley_hkdf_sha256_expand(uint8_t *out, size_t out_len,
                                          const uint8_t prk[PARLEY_HKDF_SHA256_PRK_BYTES],
                                          const uint8_t *info, size_t info_len)
{
    crypto_auth_hmacsha256_state base, st;
    uint8_t t[crypto_auth_hmacsha256_BYTES];
    size_t done = 0;
    uint8_t counter = 1;

    /* an out-of-range length is never written through (the buffer may be smaller) */
    if (!out || !out_len || out_len > PARLEY_HKDF_SHA256_MAX_BYTES)
        return PARLEY_ERR_INVAL;
    sodium_memzero(out, out_len);
    if (!prk || (!info && info_len))
        return PARLEY_ERR_INVAL;

    /* The keyed state is computed once and copied per block: T(i) = HMAC(prk, T(i-1)|info|i). */
    crypto_auth_hmacsha256_init(&base, prk, PARLEY_HKDF_SHA256_PRK_BYTES);
    while (done < out_len) {
        size_t n = out_len - done;
        memcpy(&st, &base, sizeof st);
        if (counter > 1)
            crypto_auth_hmacsha256_update(&st, t, sizeof t);
        if (info_len)
            crypto_auth_hmacsha256_update(&st, info, info_len);
        crypto_auth_hmacsha256_update(&st, &counter, 1);
        crypto_auth_hmacsha256_final(&st, t);
        if (n > sizeof t)
            n = sizeof t;
        memcpy(out + done, t, n);
        done += n;
        counter++;
    }
    sodium_memzero(&base, sizeof base);
    sodium_memzero(&st, sizeof st);
    sodium_memzero(t, sizeof t);
    return PARLEY_OK;
}

enum parley_err parley_hkdf_sha256(uint8_t *out, size_t out_len, const uint8_t *salt,
                                   size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                                   const uint8_t *info, size_t info_len)
{
    uint8_t prk[PARLEY_HKDF_SHA256_PRK_BYTES];
    enum parley_err rc;

    if (!out || !out_len || out_len > PARLEY_HKDF_SHA256_MAX_BYTES)
        return PARLEY_ERR_INVAL;
    sodium_memzero(out, out_len);
    rc = parley_hkdf_sha256_extract(prk, salt, salt_len, ikm, ikm_len);
    if (rc == PARLEY_OK)
        rc = parley_hkdf_sha256_expand(out, out_len, prk, info, info_len);
    sodium_memzero(prk, sizeof prk);
    return rc;
}

enum parley_err parley_xmd_sha512_expand(uint8_t *out, size_t out_len, const uint8_t *msg,
                                         size_t msg_len, const uint8_t *dst, size_t dst_len)
{
    static const uint8_t z_pad[128] = {0};
    static const char oversize[] = "H2C-OVERSIZE-DST-";
    crypto_hash_sha512_state st;
    uint8_t b0[crypto_hash_sha512_BYTES], bi[crypto_hash_sha512_BYTES];
    uint8_t dst_short[crypto_hash_sha512_BYTES];
    uint8_t lib[2], dst_len_byte, i_byte;
    size_t ell, done = 0;
    unsigned i, j;

    if (!out || !out_len || out_len > PARLEY_XMD_SHA512_MAX_BYTES)
        return PARLEY_ERR_INVAL;
    sodium_memzero(out, out_len);
    if ((!msg && msg_len) || !dst || !dst_len)
        return PARLEY_ERR_INVAL;

    if (dst_len > PARLEY_XMD_MAX_DST_BYTES) {
        crypto_hash_sha512_init(&st);
        crypto_hash_sha512_update(&st, (const uint8_t *)oversize, sizeof oversize - 1);
        crypto_hash_sha512_update(&st, dst, dst_len);
        crypto_hash_sha512_final(&st, dst_short);
        dst = dst_short;
        dst_len = sizeof dst_short;
    }
    dst_len_byte = (uint8_t)dst_len;
    ell = (out_len + sizeof b0 - 1) / sizeof b0;
    lib[0] = (uint8_t)(out_len >> 8);
    lib[1] = (uint8_t)out_len;

    /* b_0 = H(Z_pad || msg || I2OSP(len, 2) || I2OSP(0, 1) || DST_prime) */
    crypto_hash_sha512_init(&st);
    crypto_hash_sha512_update(&st, z_pad, sizeof z_pad);
    if (msg_len)
        crypto_hash_sha512_update(&st, msg, msg_len);
    crypto_hash_sha512_update(&st, lib, sizeof lib);
    i_byte = 0;
    crypto_hash_sha512_update(&st, &i_byte, 1);
    crypto_hash_sha512_update(&st, dst, dst_len);
    crypto_hash_sha512_update(&st, &dst_len_byte, 1);
    crypto_hash_sha512_final(&st, b0);

    /* b_1 = H(b_0 || 1 || DST'); b_i = H((b_0 XOR b_(i-1)) || i || DST') */
    memset(bi, 0, sizeof bi);
    for (i = 1; i <= ell; i++) {
        for (j = 0; j < sizeof bi; j++)
            bi[j] ^= b0[j];
        i_byte = (uint8_t)i;
        crypto_hash_sha512_init(&st);
        crypto_hash_sha512_update(&st, bi, sizeof bi);
        crypto_hash_sha512_update(&st, &i_byte, 1);
        crypto_hash_sha512_update(&st, dst, dst_len);
        crypto_hash_sha512_update(&st, &dst_len_byte, 1);
        crypto_hash_sha512_final(&st, bi);
        {
            size_t n = out_len - done;
            if (n > sizeof bi)
                n = sizeof bi;
            memcpy(out + done, bi, n);
            done += n;
        }
    }
    sodium_memzero(&st, sizeof st);
    sodium_memzero(b0, sizeof b0);
    sodium_memzero(bi, sizeof bi);
    return PARLEY_OK;
}

enum parley_err parley_kdf_ck(uint8_t mk_seed[PARLEY_KDF_CK_BYTES],
                              uint8_t next_ck[PARLEY_KDF_CK_BYTES],
                              const uint8_t ck[PARLEY_KDF_CK_BYTES])
{
    uint8_t tmp[PARLEY_KDF_CK_BYTES];

    if (!mk_seed || !next_ck || !ck) {
        if (mk_seed)
            sodium_memzero(mk_seed, PARLEY_KDF_CK_BYTES);
        return PARLEY_ERR_INVAL;
    }
    /* Through a temporary so that next_ck may alias ck. */
    memcpy(tmp, ck, sizeof tmp);
    kdf_ck_step(mk_seed, tmp);
    memcpy(next_ck, tmp, sizeof tmp);
    sodium_memzero(tmp, sizeof tmp);
    return PARLEY_OK;
}

void kdf_ck_step(uint8_t mk[32], uint8_t ck[32])
{
    static const uint8_t one = 0x01, two = 0x02;
    crypto_auth_hmacsha256_state keyed, st;

    /* both HMACs share the key: pad it once, copy the keyed state (2 compressions saved) */
    crypto_auth_hmacsha256_init(&keyed, ck, 32);
    memcpy(&st, &keyed, sizeof st);
    crypto_auth_hmacsha256_update(&st, &one, 1);
    crypto_auth_hmacsha256_final(&st, mk);
    crypto_auth_hmacsha256_update(&keyed, &two, 1);
    crypto_auth_hmacsha256_final(&keyed, ck);
    sodium_memzero(&st, sizeof st);
    sodium_memzero(&keyed, sizeof keyed);
}
