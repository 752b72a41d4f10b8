/*
 * parley/kdf.h — key-derivation primitives of the crypto core, written by hand over
 * libsodium 1.0.18 (which has no HKDF) and checked against published vectors:
 *   - HKDF-SHA256 (RFC 5869) over crypto_auth_hmacsha256, test cases 1-3;
 *   - expand_message_xmd with SHA-512 (RFC 9380 Sec. 5.3.1), App. K.3 vectors;
 *   - Signal's symmetric-key ratchet step KDF_CK (Double Ratchet rev. 1 Sec. 5.2):
 *     message key seed = HMAC-SHA256(ck, 0x01), next chain key = HMAC-SHA256(ck, 0x02).
 *
 * All functions are pure (no global state) and thread-safe; parley_crypto_init() must have
 * been called once before any of them. On failure every output buffer is zeroed first
 * (fail closed); the only error codes are listed per function.
 */
#ifndef PARLEY_KDF_H
#define PARLEY_KDF_H

#include <stddef.h>
#include <stdint.h>

#include "parley/err.h"

#define PARLEY_HKDF_SHA256_PRK_BYTES 32U
/* RFC 5869: L <= 255 * HashLen. */
#define PARLEY_HKDF_SHA256_MAX_BYTES (255U * 32U)

#define PARLEY_XMD_SHA512_MAX_BYTES (255U * 64U)
/* RFC 9380 Sec. 5.3.3: a longer DST is first hashed with "H2C-OVERSIZE-DST-". */
#define PARLEY_XMD_MAX_DST_BYTES 255U

#define PARLEY_KDF_CK_BYTES 32U

/*
 * Initialise the crypto core (calls sodium_init()). Call once from the main thread before
 * any other parley crypto function; further calls are harmless. Returns PARLEY_OK or
 * PARLEY_ERR_CRYPTO if libsodium cannot initialise.
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_crypto_init(void);

/*
 * HKDF-Extract (RFC 5869 Sec. 2.2): prk = HMAC-SHA256(salt, ikm). salt may be NULL or empty
 * (= 32 zero bytes). prk: 32 bytes, caller-owned. Errors: PARLEY_ERR_INVAL (NULL prk, or
 * NULL pointer with non-zero length).
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_hkdf_sha256_extract(uint8_t prk[PARLEY_HKDF_SHA256_PRK_BYTES], const uint8_t *salt,
                           size_t salt_len, const uint8_t *ikm, size_t ikm_len);

/*
 * HKDF-Expand (RFC 5869 Sec. 2.3): out_len bytes (1..PARLEY_HKDF_SHA256_MAX_BYTES) from a
 * 32-byte prk and info (NULL allowed when info_len is 0). out is caller-owned and may not
 * overlap prk. Errors: PARLEY_ERR_INVAL (bad length or NULL pointer).
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_hkdf_sha256_expand(uint8_t *out, size_t out_len,
                          const uint8_t prk[PARLEY_HKDF_SHA256_PRK_BYTES], const uint8_t *info,
                          size_t info_len);

/* Extract then expand. Same contract as the two functions above. */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_hkdf_sha256(uint8_t *out, size_t out_len,
                                                            const uint8_t *salt, size_t salt_len,
                                                            const uint8_t *ikm, size_t ikm_len,
                                                            const uint8_t *info, size_t info_len);

/*
 * expand_message_xmd with SHA-512 (RFC 9380 Sec. 5.3.1): out_len uniform bytes
 * (1..PARLEY_XMD_SHA512_MAX_BYTES) from msg and the domain separation tag dst (1..any
 * bytes; above 255 bytes it is reduced per Sec. 5.3.3). Errors: PARLEY_ERR_INVAL.
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_xmd_sha512_expand(uint8_t *out, size_t out_len, const uint8_t *msg, size_t msg_len,
                         const uint8_t *dst, size_t dst_len);

/*
 * One symmetric-ratchet step (Signal KDF_CK): mk_seed = HMAC-SHA256(ck, 0x01),
 * next_ck = HMAC-SHA256(ck, 0x02). next_ck may alias ck (the chain is advanced in place);
 * mk_seed must not alias either. Errors: PARLEY_ERR_INVAL (NULL pointer).
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_kdf_ck(uint8_t mk_seed[PARLEY_KDF_CK_BYTES],
                                                       uint8_t next_ck[PARLEY_KDF_CK_BYTES],
                                                       const uint8_t ck[PARLEY_KDF_CK_BYTES]);

#endif
