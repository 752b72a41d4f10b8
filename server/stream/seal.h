/*
 * seal.h — encryption at rest of queued envelope bodies (POLICY P9: "kept encrypted",
 * on top of the end-to-end encryption the clients already apply).
 *
 * Key: the queue key is derived once from the server master key with
 * crypto_kdf_derive_from_key(subkey id 1, context "PQUEUE01") — a BLAKE2b-based KDF —
 * and lives in sodium_malloc'd memory, wiped on free. It never touches the disk.
 *
 * Format of a sealed body (SEAL_OVERHEAD bytes more than the ciphertext given):
 *   version (1 byte, 0x01) | nonce (24 random bytes) | XChaCha20-Poly1305 ciphertext+tag
 * Associated data binds the body to its row so a body cannot be moved to another
 * recipient, sender or message: "parley-queue-v1" | recipient device id (32 chars) |
 * sender device id (32 chars) | client message id (16 bytes). The version byte is
 * authenticated too (part of the AD).
 *
 * Threads: all functions may run on any thread; the key is read-only after seal_key_new.
 */
#ifndef PARLEY_SERVER_STREAM_SEAL_H
#define PARLEY_SERVER_STREAM_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "parley/err.h"

#define SEAL_KEY_BYTES 32
#define SEAL_NONCE_BYTES 24
#define SEAL_TAG_BYTES 16
#define SEAL_OVERHEAD (1 + SEAL_NONCE_BYTES + SEAL_TAG_BYTES)
#define SEAL_VERSION 0x01

struct seal_key;

/* Derive the queue key from master (MASTER_KEY_BYTES). Free with seal_key_free. */
PARLEY_WUR enum parley_err seal_key_new(const unsigned char *master, struct seal_key **out);
void seal_key_free(struct seal_key *k);

/* Seal pt (pt_len bytes) for the row (recipient_device, sender_device, msgid) into out,
 * which must hold pt_len + SEAL_OVERHEAD bytes. Ids are 32-character strings; msgid is
 * 16 bytes. Errors: INVAL (bad argument), CRYPTO. */
PARLEY_WUR enum parley_err seal_envelope(const struct seal_key *k, const char *recipient_device,
                                         const char *sender_device, const uint8_t msgid[16],
                                         const uint8_t *pt, size_t pt_len, uint8_t *out);
/* Open a sealed body into out (sealed_len - SEAL_OVERHEAD bytes). PARLEY_ERR_CRYPTO when
 * the body was altered, moved to another row or sealed with another key (out zeroed). */
PARLEY_WUR enum parley_err seal_open(const struct seal_key *k, const char *recipient_device,
                                     const char *sender_device, const uint8_t msgid[16],
                                     const uint8_t *sealed, size_t sealed_len, uint8_t *out);

#endif
