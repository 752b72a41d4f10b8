/*
 * parley/x3dh.h — device identity, prekeys, public prekey bundles and X3DH session set-up
 * (Signal's X3DH specification, revision 1, 2016-11-04).
 *
 * Identity: one Ed25519 key pair per device; its X25519 form (birational map, libsodium's
 * crypto_sign_ed25519_*_to_curve25519) is used for DH (spec Sec. 2.3 allows this in place
 * of XEdDSA). Signed prekey: an X25519 key pair with an id, its public key signed by the
 * identity key over "parley-spk-v1" || id (u32 BE) || pk; rotate by generating a new one
 * with a new id (keep the old private key until in-flight set-ups have landed). One-time
 * prekeys: X25519 key pairs with ids, each used at most once (the caller deletes the
 * private key after a successful respond).
 *
 * The structs holding private keys are plain, caller-owned memory: put them in
 * sodium_malloc'd memory (or wipe them with the *_wipe functions) and never log them.
 * Every function is thread-safe on distinct objects; parley_crypto_init() first. On any
 * failure outputs are zeroed; errors are PARLEY_ERR_INVAL (malformed input or argument),
 * PARLEY_ERR_CRYPTO (bad signature, invalid key, DH failure), PARLEY_ERR_NOMEM.
 *
 * Wire formats (all integers big-endian; see docs/crypto.md):
 *   bundle  = 0x01 || IK(32, Ed25519) || spk_id(4) || SPK(32) || sig(64) || has_opk(1)
 *             [ || opk_id(4) || OPK(32) ]                      (134 or 170 bytes)
 *   x3dh header (in the first messages) = 0x01 || IK_A(32, Ed25519) || EK_A(32) ||
 *             spk_id(4) || has_opk(1) || opk_id(4)              (74 bytes)
 */
#ifndef PARLEY_X3DH_H
#define PARLEY_X3DH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parley/err.h"

#define PARLEY_X3DH_VERSION 0x01U

#define PARLEY_IDENTITY_PUBLIC_BYTES 32U /* Ed25519 public key */
#define PARLEY_IDENTITY_SECRET_BYTES 64U /* libsodium Ed25519 secret key (seed || pk) */
#define PARLEY_IDENTITY_SEED_BYTES 32U
#define PARLEY_IDENTITY_SERIALIZED_BYTES (1U + 32U) /* version || seed */
#define PARLEY_DH_PUBLIC_BYTES 32U                  /* X25519 */
#define PARLEY_DH_SECRET_BYTES 32U
#define PARLEY_SIGNATURE_BYTES 64U
#define PARLEY_SIGNED_PREKEY_SERIALIZED_BYTES (1U + 4U + 32U + 32U + 64U)
#define PARLEY_PREKEY_SERIALIZED_BYTES (1U + 4U + 32U + 32U)
#define PARLEY_BUNDLE_MIN_BYTES (1U + 32U + 4U + 32U + 64U + 1U)
#define PARLEY_BUNDLE_MAX_BYTES (PARLEY_BUNDLE_MIN_BYTES + 4U + 32U)
#define PARLEY_X3DH_HEADER_BYTES (1U + 32U + 32U + 4U + 1U + 4U)
#define PARLEY_X3DH_SECRET_BYTES 32U

/* Device identity (private). */
struct parley_identity {
    uint8_t pk[PARLEY_IDENTITY_PUBLIC_BYTES];
    uint8_t sk[PARLEY_IDENTITY_SECRET_BYTES];
};

/* Signed prekey (private): id, X25519 pair, identity signature over the public key. */
struct parley_signed_prekey {
    uint32_t id;
    uint8_t pk[PARLEY_DH_PUBLIC_BYTES];
    uint8_t sk[PARLEY_DH_SECRET_BYTES];
    uint8_t sig[PARLEY_SIGNATURE_BYTES];
};

/* One-time prekey (private). */
struct parley_prekey {
    uint32_t id;
    uint8_t pk[PARLEY_DH_PUBLIC_BYTES];
    uint8_t sk[PARLEY_DH_SECRET_BYTES];
};

/* A device's public prekey bundle, as fetched from the server (public data only). */
struct parley_bundle {
    uint8_t identity_pk[PARLEY_IDENTITY_PUBLIC_BYTES];
    uint32_t spk_id;
    uint8_t spk_pk[PARLEY_DH_PUBLIC_BYTES];
    uint8_t spk_sig[PARLEY_SIGNATURE_BYTES];
    bool has_opk;
    uint32_t opk_id;
    uint8_t opk_pk[PARLEY_DH_PUBLIC_BYTES];
};

/* What the initiator sends with its first messages so the responder can run X3DH. */
struct parley_x3dh_header {
    uint8_t identity_pk[PARLEY_IDENTITY_PUBLIC_BYTES];
    uint8_t ephemeral_pk[PARLEY_DH_PUBLIC_BYTES];
    uint32_t spk_id;
    bool has_opk;
    uint32_t opk_id;
};

/*
 * X3DH KDF parameters (spec Sec. 2.2 and 2.5). info: the HKDF info string. key_prefix:
 * -1 if public keys are encoded as the raw 32 bytes, or the byte (0..255) that
 * Encode(PK) prepends (Signal: 0x05). parley's production values are
 * parley_x3dh_params_default (info "parley-x3dh-v1", raw keys).
 */
struct parley_x3dh_params {
    const uint8_t *info;
    size_t info_len;
    int key_prefix;
};
PARLEY_EXPORT extern const struct parley_x3dh_params parley_x3dh_params_default;

/* Identity: fresh random key pair (id is caller-owned; wipe with parley_identity_wipe). */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_identity_keygen(struct parley_identity *id);
/* Identity from a 32-byte seed (deterministic; for restore and tests). */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_identity_from_seed(struct parley_identity *id,
                          const uint8_t seed[PARLEY_IDENTITY_SEED_BYTES]);
/* Private serialisation for the device's local store: 0x01 || seed. out is secret. */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_identity_serialize(const struct parley_identity *id,
                          uint8_t out[PARLEY_IDENTITY_SERIALIZED_BYTES]);
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_identity_deserialize(struct parley_identity *id,
                                                                     const uint8_t *in, size_t len);
/* Zero the struct (sodium_memzero). NULL is accepted. */
PARLEY_EXPORT void parley_identity_wipe(struct parley_identity *id);

/* New signed prekey with the given id, signed by identity. */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_signed_prekey_generate(struct parley_signed_prekey *spk,
                              const struct parley_identity *identity, uint32_t id);
/* Private serialisation: 0x01 || id || pk || sk || sig. out is secret. */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_signed_prekey_serialize(const struct parley_signed_prekey *spk,
                               uint8_t out[PARLEY_SIGNED_PREKEY_SERIALIZED_BYTES]);
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_signed_prekey_deserialize(struct parley_signed_prekey *spk, const uint8_t *in, size_t len);
PARLEY_EXPORT void parley_signed_prekey_wipe(struct parley_signed_prekey *spk);

/* New one-time prekey with the given id. */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_prekey_generate(struct parley_prekey *opk,
                                                                uint32_t id);
/* Private serialisation: 0x01 || id || pk || sk. out is secret. */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_prekey_serialize(const struct parley_prekey *opk,
                        uint8_t out[PARLEY_PREKEY_SERIALIZED_BYTES]);
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_prekey_deserialize(struct parley_prekey *opk,
                                                                   const uint8_t *in, size_t len);
PARLEY_EXPORT void parley_prekey_wipe(struct parley_prekey *opk);

/* Public bundle from the device's own keys; opk may be NULL. Copies public parts only. */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_bundle_build(struct parley_bundle *bundle,
                                                             const struct parley_identity *identity,
                                                             const struct parley_signed_prekey *spk,
                                                             const struct parley_prekey *opk);
/* Serialise to out (capacity out_cap >= PARLEY_BUNDLE_MAX_BYTES is always enough). */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_bundle_serialize(const struct parley_bundle *bundle,
                                                                 uint8_t *out, size_t out_cap,
                                                                 size_t *out_len);
/*
 * Parse untrusted bytes: exact length, version, flag byte 0/1, and identity key convertible
 * to X25519. Does NOT verify the signature (parley_bundle_verify, or parley_x3dh_initiate,
 * which always verifies). Errors: PARLEY_ERR_INVAL.
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_bundle_parse(struct parley_bundle *bundle,
                                                             const uint8_t *in, size_t len);
/* Verify the signed prekey signature. PARLEY_OK or PARLEY_ERR_CRYPTO. */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_bundle_verify(const struct parley_bundle *bundle);

PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_x3dh_header_serialize(const struct parley_x3dh_header *hdr,
                             uint8_t out[PARLEY_X3DH_HEADER_BYTES]);
/* Parse untrusted bytes (exact length, version, flag). Errors: PARLEY_ERR_INVAL. */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_x3dh_header_parse(struct parley_x3dh_header *hdr,
                                                                  const uint8_t *in, size_t len);

struct parley_ratchet;

/*
 * Initiator side of X3DH (spec Sec. 3.3): verifies the bundle's signed-prekey signature
 * (PARLEY_ERR_CRYPTO if bad), draws an ephemeral key, computes SK from DH1..DH3 (and DH4
 * when the bundle has a one-time prekey), wipes the ephemeral secret and every DH output,
 * and returns a new Double Ratchet session in *out (caller frees with
 * parley_ratchet_free). Until the first message from the peer is decrypted, every
 * message the session encrypts carries the X3DH header (a "prekey message"). AD =
 * IK_A || IK_B (Ed25519 public keys).
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_x3dh_initiate(struct parley_ratchet **out,
                                                              const struct parley_identity *self,
                                                              const struct parley_bundle *peer);

/*
 * Responder side: given the header from a prekey message (see
 * parley_ratchet_prekey_header), the device's identity, the signed prekey named by
 * hdr->spk_id and the one-time prekey named by hdr->opk_id (NULL iff !hdr->has_opk;
 * PARLEY_ERR_INVAL on mismatch of ids), returns a session in *out that can decrypt the
 * prekey message. The caller then deletes the one-time prekey. Errors:
 * PARLEY_ERR_INVAL, PARLEY_ERR_CRYPTO (invalid keys), PARLEY_ERR_NOMEM.
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_x3dh_respond(struct parley_ratchet **out,
                                                             const struct parley_identity *self,
                                                             const struct parley_signed_prekey *spk,
                                                             const struct parley_prekey *opk,
                                                             const struct parley_x3dh_header *hdr);

/*
 * The X3DH KDF (spec Sec. 2.2): HKDF-SHA256(salt = 32 zero bytes, IKM = 0xFF*32 || km,
 * info) -> out_len bytes (1..PARLEY_HKDF_SHA256_MAX_BYTES). km = DH1 || DH2 || DH3 [|| DH4].
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_x3dh_kdf(uint8_t *out, size_t out_len,
                                                         const struct parley_x3dh_params *params,
                                                         const uint8_t *km, size_t km_len);

/*
 * Raw X3DH agreement over X25519 keys, for interoperability tests (the libsignal vector)
 * and tools; production code uses parley_x3dh_initiate/respond. Public keys are
 * Encode(PK) per params (pub_len = 32, or 33 with a prefix byte that must match). opk
 * arguments may be NULL (no DH4). Initiator: DH(IK_A,SPK_B) || DH(EK_A,IK_B) ||
 * DH(EK_A,SPK_B) [|| DH(EK_A,OPK_B)]; the responder computes the same values from its
 * side. All DH outputs are wiped.
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_x3dh_agree_initiator_raw(
    uint8_t *out, size_t out_len, const struct parley_x3dh_params *params,
    const uint8_t ik_a_sk[PARLEY_DH_SECRET_BYTES], const uint8_t ek_a_sk[PARLEY_DH_SECRET_BYTES],
    const uint8_t *ik_b_pub, const uint8_t *spk_b_pub, const uint8_t *opk_b_pub, size_t pub_len);
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_x3dh_agree_responder_raw(
    uint8_t *out, size_t out_len, const struct parley_x3dh_params *params,
    const uint8_t ik_b_sk[PARLEY_DH_SECRET_BYTES], const uint8_t spk_b_sk[PARLEY_DH_SECRET_BYTES],
    const uint8_t *opk_b_sk, const uint8_t *ik_a_pub, const uint8_t *ek_a_pub, size_t pub_len);

#endif
