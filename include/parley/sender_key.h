/*
 * parley/sender_key.h — Sender Keys for group messages (the construction of Signal's
 * group messaging; no formal spec revision). Each member has, per group, its own sending
 * state: a random 32-bit key id, a symmetric chain key advanced with KDF_CK (as in the
 * Double Ratchet: HMAC-SHA256 with 0x01 / 0x02) and an Ed25519 signing key pair. The
 * sender hands every other member a distribution message (key id, iteration, chain key,
 * signing public key) over the pairwise Double Ratchet sessions; members then decrypt and
 * verify the sender's group messages with a receiving copy of that state.
 *
 * When membership changes (anyone leaves or is removed) every remaining member creates a
 * NEW sender key (parley_sender_key_new) and distributes it to the remaining members
 * only: a removed member keeps the old chain but never learns the new one, so it cannot
 * read later messages. Chains only move forward: holding iteration i reveals nothing about
 * keys before i.
 *
 * Message wire format: 0x01 || key_id (4) || iteration (4) || XChaCha20-Poly1305(key = mk,
 * nonce = "parley-sender-key-v1" zero-padded to 24 bytes, plaintext, AD = the 9 preceding
 * bytes) || Ed25519 signature (64) over everything before it. mk = HMAC-SHA256(ck, 0x01),
 * used for exactly one message.
 * Distribution wire format: 0x01 || key_id (4) || iteration (4) || chain key (32) ||
 * signing public key (32) — secret: send it only inside a pairwise session.
 *
 * States are opaque heap objects in sodium_malloc'd memory (wiped on free). One thread at a
 * time per state. Errors: PARLEY_ERR_INVAL (malformed input/arguments, wrong key id),
 * PARLEY_ERR_CRYPTO (bad signature or tag, replay, expired key), PARLEY_ERR_LIMIT (too many
 * skipped messages, chain exhausted), PARLEY_ERR_NOMEM. Outputs are zeroed on failure and
 * a failed decrypt leaves the state unchanged.
 */
#ifndef PARLEY_SENDER_KEY_H
#define PARLEY_SENDER_KEY_H

#include <stddef.h>
#include <stdint.h>

#include "parley/err.h"

#define PARLEY_SENDER_KEY_VERSION 0x01U
#define PARLEY_SENDER_KEY_DISTRIBUTION_BYTES (1U + 4U + 4U + 32U + 32U)
#define PARLEY_SENDER_KEY_OVERHEAD_BYTES (1U + 4U + 4U + 16U + 64U)
#define PARLEY_SENDER_KEY_MAX_PLAINTEXT_BYTES (1U << 20)
#define PARLEY_SENDER_KEY_MAX_SKIP 1000U
#define PARLEY_SENDER_KEY_MAX_STORED_KEYS 2000U
#define PARLEY_SENDER_KEY_SERIALIZED_MIN_BYTES (1U + 1U + 4U + 4U + 32U + 32U + 64U + 4U)
#define PARLEY_SENDER_KEY_SKIPPED_ENTRY_BYTES (4U + 32U)

struct parley_sender_key;

/* A new own (sending) sender key: random id, chain key and signing pair. */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_sender_key_new(struct parley_sender_key **out);

/* Wipe and free. NULL accepted. */
PARLEY_EXPORT void parley_sender_key_free(struct parley_sender_key *sk);

/* The key id (public; used to pick the state for an incoming message). */
PARLEY_EXPORT uint32_t parley_sender_key_id(const struct parley_sender_key *sk);

/*
 * The distribution message for the state's current iteration (works on own and received
 * states). out is secret. Errors: PARLEY_ERR_INVAL.
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_sender_key_distribution(const struct parley_sender_key *sk,
                               uint8_t out[PARLEY_SENDER_KEY_DISTRIBUTION_BYTES]);

/*
 * A receiving state from an untrusted distribution message (exact length, version, valid
 * signing key). *out is a new state owned by the caller; it can decrypt, not encrypt.
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_sender_key_from_distribution(struct parley_sender_key **out, const uint8_t *in, size_t len);

/*
 * Encrypt and sign pt (<= PARLEY_SENDER_KEY_MAX_PLAINTEXT_BYTES) into out (capacity >= pt_len
 * + PARLEY_SENDER_KEY_OVERHEAD_BYTES, not overlapping pt). Own states only (INVAL for a
 * receiving state). Advances the chain.
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_sender_key_encrypt(struct parley_sender_key *sk, uint8_t *out, size_t out_cap,
                          size_t *out_len, const uint8_t *pt, size_t pt_len);

/*
 * Verify and decrypt an untrusted group message into out (capacity >= ct_len -
 * PARLEY_SENDER_KEY_OVERHEAD_BYTES). Out-of-order messages are accepted within the skip
 * limits; each message key is deleted after use (replays fail).
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_sender_key_decrypt(struct parley_sender_key *sk, uint8_t *out, size_t out_cap,
                          size_t *out_len, const uint8_t *ct, size_t ct_len);

/* Key id of a group message without verifying it (to select the state); INVAL if malformed. */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_sender_key_message_id(uint32_t *key_id, const uint8_t *ct, size_t ct_len);

/* Local-store serialisation (secret). Same contract as parley_ratchet_serialize. */
PARLEY_EXPORT size_t parley_sender_key_serialized_len(const struct parley_sender_key *sk);
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_sender_key_serialize(const struct parley_sender_key *sk, uint8_t *out, size_t out_cap,
                            size_t *out_len);
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_sender_key_deserialize(struct parley_sender_key **out, const uint8_t *in, size_t len);

#endif
