/*
 * seal.h — encryption at rest of queued envelope bodies (POLICY P9: "kept encrypted",
 * on top of the end-to-end encryption the clients already apply).
 *
 * Two formats, told apart by the first byte; seal_open opens both, so bodies sealed
 * before the switch stay readable:
 *   v1 (0x01): version | nonce (24 random bytes) | XChaCha20-Poly1305 ct | tag (16)
 *              = 41 bytes of overhead
 *   v2 (0x02): version | nonce (12 bytes, below) | AES-256-GCM ct | tag (16)
 *              = 29 bytes of overhead
 * New bodies are sealed as v2 when libsodium's AES-256-GCM can run on this CPU
 * (crypto_aead_aes256gcm_is_available(): AES-NI + PCLMUL), as v1 otherwise. AES-GCM
 * opens a 200-byte body in a fraction of XChaCha20-Poly1305's instructions. libsodium
 * has no portable AES-GCM: a v2 body can only be opened on such a CPU (elsewhere it
 * fails like a wrong-key body).
 *
 * Keys: both derived once from the server master key with crypto_kdf_derive_from_key
 * (BLAKE2b), context "PQUEUE01": subkey id 1 = the XChaCha20-Poly1305 key (unchanged
 * since v1, so old bodies open), subkey id 2 = the AES-256-GCM key, expanded at once
 * into libsodium's precomputed state (crypto_aead_aes256gcm_beforenm). Keys and state
 * live in sodium_malloc'd memory, read-only after seal_key_new, wiped on free. They
 * never touch the disk.
 *
 * v2 nonces (96 bits) must never repeat under the AES key. seal_key_new draws a random
 * 4-byte prefix P and a random 64-bit start S; the n-th seal of that key (n from a
 * 64-bit atomic counter) uses P || big-endian(S + n mod 2^64). Why that is safe:
 *   - within a process every seal takes a distinct n (atomic fetch-add, whatever the
 *     thread), so nonces repeat only after 2^64 seals: never;
 *   - a restart (or a second process with the same master key) starts from a fresh
 *     random 96-bit point. Two processes' runs of n1 and n2 nonces overlap only if the
 *     prefixes match (2^-32) and the starts fall within n1 + n2 of each other
 *     ((n1 + n2) / 2^64): about (n1 + n2) / 2^96 per pair of processes; a million
 *     restarts of a billion seals each stay below 2^-25 in all. (Purely random 96-bit
 *     nonces would instead pass the 2^-32 collision bound after ~2^32 seals.)
 * v1 nonces are simply random: at 192 bits no counter is needed.
 *
 * Associated data binds a body to its row so it cannot be moved to another recipient,
 * sender or message, nor relabelled as the other version: "parley-queue-v1" | the
 * body's own version byte | recipient device id (32 chars) | sender device id
 * (32 chars) | client message id (16 bytes).
 *
 * Threads: all functions may run on any thread at once on one key; the keys are
 * read-only after seal_key_new, the nonce counter is atomic (and kept outside the
 * read-only memory).
 */
#ifndef PARLEY_SERVER_STREAM_SEAL_H
#define PARLEY_SERVER_STREAM_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "parley/err.h"

#define SEAL_KEY_BYTES 32
#define SEAL_TAG_BYTES 16

#define SEAL_V1 0x01 /* XChaCha20-Poly1305, random 24-byte nonce */
#define SEAL_V1_NONCE_BYTES 24
#define SEAL_V1_OVERHEAD (1 + SEAL_V1_NONCE_BYTES + SEAL_TAG_BYTES) /* 41 */

#define SEAL_V2 0x02 /* AES-256-GCM, 12-byte prefix || counter nonce */
#define SEAL_V2_NONCE_BYTES 12
#define SEAL_V2_OVERHEAD (1 + SEAL_V2_NONCE_BYTES + SEAL_TAG_BYTES) /* 29 */

/* The largest overhead of any version: allocate pt_len + SEAL_OVERHEAD to seal. */
#define SEAL_OVERHEAD SEAL_V1_OVERHEAD
/* The smallest: no valid sealed body is shorter. */
#define SEAL_MIN_OVERHEAD SEAL_V2_OVERHEAD

struct seal_key;

/* Derive the queue keys from master (MASTER_KEY_BYTES). New seals use v2 when AES-256-GCM
 * is available on this CPU, v1 otherwise. Free with seal_key_free. */
PARLEY_WUR enum parley_err seal_key_new(const unsigned char *master, struct seal_key **out);
/* Tests and benchmarks: the same keys, but new seals use version (SEAL_V1 or SEAL_V2).
 * INVAL for another version; CRYPTO for SEAL_V2 when AES-256-GCM is unavailable. Either
 * key opens both versions. */
PARLEY_WUR enum parley_err seal_key_new_version(const unsigned char *master, uint8_t version,
                                                struct seal_key **out);
/* The version new seals get (SEAL_V1 or SEAL_V2). */
uint8_t seal_key_version(const struct seal_key *k);
void seal_key_free(struct seal_key *k);

/* Seal pt (pt_len bytes) for the row (recipient_device, sender_device, msgid) into out,
 * which must hold pt_len + SEAL_OVERHEAD bytes; *sealed_len gets the length written
 * (pt_len + SEAL_V1_OVERHEAD or pt_len + SEAL_V2_OVERHEAD). Ids are 32-character strings;
 * msgid is 16 bytes. Errors: INVAL (bad argument), CRYPTO. */
PARLEY_WUR enum parley_err seal_envelope(const struct seal_key *k, const char *recipient_device,
                                         const char *sender_device, const uint8_t msgid[16],
                                         const uint8_t *pt, size_t pt_len, uint8_t *out,
                                         size_t *sealed_len);
/* Open a sealed body of either version into out, which must hold
 * sealed_len - SEAL_MIN_OVERHEAD bytes (sealed_len bytes is always enough); *pt_len gets
 * the plaintext length. Errors: INVAL for a bad argument or a body too short for its
 * version; CRYPTO when the body was altered, moved to another row, sealed with another
 * key or has an unknown version (out zeroed, *pt_len 0). */
PARLEY_WUR enum parley_err seal_open(const struct seal_key *k, const char *recipient_device,
                                     const char *sender_device, const uint8_t msgid[16],
                                     const uint8_t *sealed, size_t sealed_len, uint8_t *out,
                                     size_t *pt_len);

#endif
