/*
 * crypto_int.h — helpers shared by the files of lib/crypto/ only (never installed):
 * big-endian wire integers and a few constant strings. Wire integers are big-endian,
 * like every length field in the RFCs we follow.
 */
#ifndef PARLEY_CRYPTO_INT_H
#define PARLEY_CRYPTO_INT_H

#include <stddef.h>
#include <stdint.h>

static inline void store32_be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t load32_be(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline void store16_be(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* AEAD key (the single-use message key) and nonce (a per-use constant) of one message. */
#define CRYPTO_MSG_KEY_BYTES 32U
#define CRYPTO_MSG_NONCE_BYTES 24U
#define CRYPTO_MSG_KEYS_BYTES (CRYPTO_MSG_KEY_BYTES + CRYPTO_MSG_NONCE_BYTES)

/* kdf.c: KDF_CK advancing ck in place (mk = HMAC(ck,1), ck = HMAC(ck,2)); cannot fail. */
void kdf_ck_step(uint8_t mk[32], uint8_t ck[32]);

/* oprf.c: DeriveKeyPair for any RFC 9497 mode byte (0 OPRF, 1 VOPRF, 2 POPRF); only mode
 * 0 is offered publicly, the others let the tests check ScalarMultGen against the
 * published pkSm of App. A.1.2 / A.1.3. */
enum parley_err oprf_derive_keypair_mode(uint8_t sk[32], uint8_t pk[32], const uint8_t seed[32],
                                         const uint8_t *info, size_t info_len, uint8_t mode);

/* ratchet.c: make an initiator session send prekey messages carrying this X3DH header
 * (PARLEY_X3DH_HEADER_BYTES bytes) until it first decrypts a reply. */
struct parley_ratchet;
void ratchet_set_prekey_header(struct parley_ratchet *s, const uint8_t *x3dh_hdr);
#endif
