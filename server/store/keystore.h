/*
 * keystore.h — the per-account data keys (POLICY P27 crypto-shredding), kept in their own
 * SQLite file (DATA/keys.db), apart from the main database.
 *
 * Each account gets a random 32-byte data key at registration. The key store holds it
 * wrapped (XChaCha20-Poly1305-IETF) with the server master key, the additional data
 * binding the wrap to the account's id, so a wrapped key cannot be moved to another
 * account. The account's personal profile fields are encrypted with its data key
 * (keystore_seal_field), the additional data binding user id and column name.
 *
 * Deleting the account destroys its key (keystore_destroy): the row is deleted with
 * secure_delete on, and the WAL is checkpointed and truncated, so the key is gone from
 * the files too. Copies of the main database in backups then hold only ciphertext that
 * nothing can open. The limit: a backup of keys.db taken before the deletion still
 * opens them, so key-store backups must be kept for a shorter time than database
 * backups (docs/operations.md).
 *
 * Threads: every call is thread-safe (one connection behind a mutex); calls block on
 * disk, so never call them on a loop thread. Several processes (parleyd and
 * `parleyd admin`) may open the same key store (WAL, busy timeout).
 */
#ifndef PARLEY_SERVER_STORE_KEYSTORE_H
#define PARLEY_SERVER_STORE_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>
#include "parley/err.h"

#define KEYSTORE_KEY_BYTES 32
/* Text of a sealed field of n plaintext bytes: base64url (no padding) of
 * nonce (24) || ciphertext (n) || tag (16), with its NUL. */
#define KEYSTORE_SEALED_TEXT_MAX(n) ((((n) + 40) * 4 + 2) / 3 + 1)

struct keystore;

/* Open (creating with mode 0600) the key store at path. master_key (32 bytes) is
 * borrowed and must outlive the key store. PARLEY_ERR_IO / STORE / NOMEM. */
PARLEY_WUR enum parley_err keystore_open(const char *path, const unsigned char *master_key,
                                         struct keystore **out);
/* Close; accepts NULL. No call may be in flight. */
void keystore_close(struct keystore *ks);

/* Make a fresh data key for user_id, store it wrapped, and copy it into key (which
 * the caller wipes with sodium_memzero). PARLEY_ERR_EXISTS if the user already has one. */
PARLEY_WUR enum parley_err keystore_create(struct keystore *ks, const char *user_id, int64_t now,
                                           uint8_t key[KEYSTORE_KEY_BYTES]);
/* Unwrap the data key of user_id into key (caller wipes). PARLEY_ERR_NOTFOUND when
 * there is none (never made, or destroyed: the account's data is shredded),
 * PARLEY_ERR_CRYPTO when it does not unwrap (another master key, tampering). */
PARLEY_WUR enum parley_err keystore_get(struct keystore *ks, const char *user_id,
                                        uint8_t key[KEYSTORE_KEY_BYTES]);
/* Destroy the data key of user_id (missing is fine), then checkpoint and truncate the
 * WAL so the wrapped key is gone from the files too. */
PARLEY_WUR enum parley_err keystore_destroy(struct keystore *ks, const char *user_id);
/* Call fn(ctx, user_id) for every key created before `before` (seconds), so the caller
 * can destroy keys left without an account (a crash between a deletion's commit and
 * its key's destruction, or between a registration's key and its row). */
typedef void (*keystore_each_fn)(void *ctx, const char *user_id);
PARLEY_WUR enum parley_err keystore_each_older(struct keystore *ks, int64_t before,
                                               keystore_each_fn fn, void *ctx);

/* Encrypt plain (NUL-terminated) for (user_id, column) into out (text, cap bytes;
 * KEYSTORE_SEALED_TEXT_MAX(strlen(plain)) is enough). PARLEY_ERR_LIMIT if cap is short. */
PARLEY_WUR enum parley_err keystore_seal_field(const uint8_t key[KEYSTORE_KEY_BYTES],
                                               const char *user_id, const char *column,
                                               const char *plain, char *out, size_t cap);
/* Decrypt text made by keystore_seal_field into out (cap bytes, NUL-terminated).
 * PARLEY_ERR_CRYPTO when it does not open (wrong key, account, column or tampering),
 * PARLEY_ERR_LIMIT when the plaintext does not fit. */
PARLEY_WUR enum parley_err keystore_open_field(const uint8_t key[KEYSTORE_KEY_BYTES],
                                               const char *user_id, const char *column,
                                               const char *text, char *out, size_t cap);

#endif
