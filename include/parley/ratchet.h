/*
 * parley/ratchet.h — the Double Ratchet (Signal specification, revision 1, 2016-11-20) as
 * parley instantiates it:
 *   KDF_RK(rk, dh)  = HKDF-SHA256(salt = rk, ikm = dh, info = "parley-ratchet-root-v1", 64)
 *                     -> new rk || chain key                                  (Sec. 5.2)
 *   KDF_CK(ck)      = HMAC-SHA256(ck, 0x01) -> mk, HMAC-SHA256(ck, 0x02) -> next ck
 *   ENCRYPT(mk)     = XChaCha20-Poly1305 (IETF) with key = mk (used once) and the constant
 *                     nonce "parley-ratchet-msg-v1" (zero-padded to 24 bytes; Sec. 5.2 allows
 *                     a fixed nonce since each mk is used once),
 *                     AD = IK_A || IK_B || header || caller AD
 *
 * A session is an opaque heap object in sodium_malloc'd (guarded, mlocked) memory: create
 * it with parley_x3dh_initiate / parley_x3dh_respond (or the *_new_* functions below from
 * an already agreed secret), free it with parley_ratchet_free (which wipes it). A session
 * is not thread-safe: one thread at a time per session; distinct sessions are independent.
 *
 * Message wire format (one self-contained byte string; integers big-endian):
 *   0x01 (version) || type (0x00 normal, 0x01 prekey) || [x3dh header, 74 bytes, if
 *   prekey] || DHs (32) || PN (4) || N (4) || AEAD ciphertext (plaintext + 16-byte tag)
 *
 * Out-of-order delivery: message keys of skipped messages are kept, at most
 * PARLEY_RATCHET_MAX_SKIP per chain step (more is PARLEY_ERR_LIMIT) and at most
 * PARLEY_RATCHET_MAX_STORED_KEYS per session (the oldest are evicted first); keys stored
 * more than PARLEY_RATCHET_SKIPPED_MAX_AGE DH-ratchet steps ago are dropped. A message
 * key is deleted as soon as it has been used, so a replay fails with PARLEY_ERR_CRYPTO.
 * A failed decrypt leaves the session unchanged.
 */
#ifndef PARLEY_RATCHET_H
#define PARLEY_RATCHET_H

#include <stddef.h>
#include <stdint.h>

#include "parley/err.h"
#include "parley/x3dh.h"

#define PARLEY_RATCHET_VERSION 0x01U
#define PARLEY_RATCHET_TYPE_NORMAL 0x00U
#define PARLEY_RATCHET_TYPE_PREKEY 0x01U
#define PARLEY_RATCHET_HEADER_BYTES (32U + 4U + 4U)
#define PARLEY_RATCHET_TAG_BYTES 16U
/* Bytes added to the plaintext by a normal / a prekey message. */
#define PARLEY_RATCHET_OVERHEAD_BYTES (2U + PARLEY_RATCHET_HEADER_BYTES + PARLEY_RATCHET_TAG_BYTES)
#define PARLEY_RATCHET_PREKEY_OVERHEAD_BYTES                                                       \
    (PARLEY_RATCHET_OVERHEAD_BYTES + PARLEY_X3DH_HEADER_BYTES)
#define PARLEY_RATCHET_MAX_PLAINTEXT_BYTES (1U << 20)
#define PARLEY_RATCHET_MAX_AD_BYTES 256U
#define PARLEY_RATCHET_MAX_SKIP 1000U
#define PARLEY_RATCHET_MAX_STORED_KEYS 2000U
#define PARLEY_RATCHET_SKIPPED_MAX_AGE 20U
#define PARLEY_RATCHET_SECRET_BYTES 32U
#define PARLEY_RATCHET_SERIALIZED_MIN_BYTES                                                        \
    (1U + 1U + 6U * 32U + 64U + PARLEY_X3DH_HEADER_BYTES + 5U * 4U)
#define PARLEY_RATCHET_SKIPPED_ENTRY_BYTES (32U + 4U + 4U + 32U)
#define PARLEY_RATCHET_SERIALIZED_MAX_BYTES                                                        \
    (PARLEY_RATCHET_SERIALIZED_MIN_BYTES +                                                         \
     PARLEY_RATCHET_MAX_STORED_KEYS * PARLEY_RATCHET_SKIPPED_ENTRY_BYTES)

struct parley_ratchet;

/*
 * Sessions from an agreed 32-byte secret sk (spec Sec. 3.3, RatchetInitAlice/Bob).
 * ik_initiator / ik_responder: the two identity public keys (Ed25519, 32 bytes) in that
 * fixed order (they form the AD prefix on both sides). Initiator: peer_ratchet_pk is the
 * responder's signed prekey. Responder: own_ratchet_sk/pk is its signed prekey pair; it
 * cannot encrypt before it has decrypted a first message. *out receives a new session
 * owned by the caller (free with parley_ratchet_free). Errors: PARLEY_ERR_INVAL,
 * PARLEY_ERR_CRYPTO (invalid peer key), PARLEY_ERR_NOMEM.
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_ratchet_new_initiator(struct parley_ratchet **out,
                             const uint8_t sk[PARLEY_RATCHET_SECRET_BYTES],
                             const uint8_t ik_initiator[PARLEY_IDENTITY_PUBLIC_BYTES],
                             const uint8_t ik_responder[PARLEY_IDENTITY_PUBLIC_BYTES],
                             const uint8_t peer_ratchet_pk[PARLEY_DH_PUBLIC_BYTES]);
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_ratchet_new_responder(struct parley_ratchet **out,
                             const uint8_t sk[PARLEY_RATCHET_SECRET_BYTES],
                             const uint8_t ik_initiator[PARLEY_IDENTITY_PUBLIC_BYTES],
                             const uint8_t ik_responder[PARLEY_IDENTITY_PUBLIC_BYTES],
                             const uint8_t own_ratchet_sk[PARLEY_DH_SECRET_BYTES],
                             const uint8_t own_ratchet_pk[PARLEY_DH_PUBLIC_BYTES]);

/* Wipe and free a session. NULL is accepted. */
PARLEY_EXPORT void parley_ratchet_free(struct parley_ratchet *s);

/* Exact ciphertext length that parley_ratchet_encrypt will produce now for pt_len bytes
 * (0 if s is NULL or pt_len exceeds PARLEY_RATCHET_MAX_PLAINTEXT_BYTES). */
PARLEY_EXPORT size_t parley_ratchet_ciphertext_len(const struct parley_ratchet *s, size_t pt_len);

/*
 * Encrypt pt (pt_len <= PARLEY_RATCHET_MAX_PLAINTEXT_BYTES) with caller AD (ad_len <=
 * PARLEY_RATCHET_MAX_AD_BYTES; NULL if 0, e.g. envelope metadata) into out (capacity
 * out_cap >= parley_ratchet_ciphertext_len(); must not overlap pt); *out_len = bytes
 * written. Advances the sending chain. Errors: PARLEY_ERR_INVAL (arguments, or a responder
 * session that has not received yet), PARLEY_ERR_LIMIT (chain counter exhausted).
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_ratchet_encrypt(struct parley_ratchet *s, uint8_t *out, size_t out_cap, size_t *out_len,
                       const uint8_t *pt, size_t pt_len, const uint8_t *ad, size_t ad_len);

/*
 * Decrypt an untrusted message. out (capacity out_cap >= ct_len -
 * PARLEY_RATCHET_OVERHEAD_BYTES is always enough; must not overlap ct) receives the
 * plaintext, *out_len its length. On any failure out is zeroed and the session is
 * unchanged. Errors: PARLEY_ERR_INVAL (malformed message or arguments), PARLEY_ERR_CRYPTO
 * (authentication failed, replay, unknown or expired key), PARLEY_ERR_LIMIT (too many
 * skipped messages), PARLEY_ERR_NOMEM.
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_ratchet_decrypt(struct parley_ratchet *s, uint8_t *out, size_t out_cap, size_t *out_len,
                       const uint8_t *ct, size_t ct_len, const uint8_t *ad, size_t ad_len);

/*
 * If msg is a prekey message, parse its X3DH header into *hdr (no cryptographic check:
 * the header is authenticated when the message is decrypted). PARLEY_ERR_INVAL if msg is
 * not a well-formed prekey message. Pure, thread-safe.
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_ratchet_prekey_header(struct parley_x3dh_header *hdr, const uint8_t *msg, size_t len);

/* The peer's identity public key (Ed25519) of a session. */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_ratchet_peer_identity(const struct parley_ratchet *s,
                             uint8_t out[PARLEY_IDENTITY_PUBLIC_BYTES]);

/* Serialised length of the session now (between the MIN and MAX macros). */
PARLEY_EXPORT size_t parley_ratchet_serialized_len(const struct parley_ratchet *s);
/*
 * Serialise the full session state (secret! for the device's encrypted local store only)
 * into out (capacity out_cap >= parley_ratchet_serialized_len(s); put it in sodium_malloc'd
 * memory and wipe it after use). Errors: PARLEY_ERR_INVAL.
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_ratchet_serialize(const struct parley_ratchet *s,
                                                                  uint8_t *out, size_t out_cap,
                                                                  size_t *out_len);
/*
 * Rebuild a session from untrusted bytes (all lengths, counts, flags and the key pair's
 * consistency are checked). *out receives a new session owned by the caller. Errors:
 * PARLEY_ERR_INVAL, PARLEY_ERR_NOMEM.
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_ratchet_deserialize(struct parley_ratchet **out,
                                                                    const uint8_t *in, size_t len);

#endif
