/*
 * local_store.h — the device's encrypted local store (private to libparley): one SQLite
 * file <home>/local.db holding the device's private keys, ratchet sessions, contacts,
 * message history and the ids of messages already seen.
 *
 * Encryption at rest: every value is sealed with XChaCha20-Poly1305 (random 24-byte
 * nonce, stored in front) under a subkey of the store key; the AD binds the value to its
 * row (namespace and lookup key), so values cannot be swapped between rows. Lookup keys
 * are BLAKE2b-256 keyed hashes (another subkey) of the logical key (user id, device id,
 * message id...), never the plaintext. The store key is 32 random bytes in
 * <home>/local.key (0600, created on first use), or, when PARLEY_PASSPHRASE is set in the
 * environment, Argon2id(passphrase, salt) with the salt and limits in <home>/local.salt.
 * A check value sealed at creation detects a wrong key (PARLEY_ERR_DENIED). SQLite runs
 * with secure_delete=ON so freed pages are zeroed.
 *
 * Values handed out are malloc'd copies that may hold secrets: release them with
 * local_store_value_free (wipes). One handle per thread; not thread-safe.
 */
#ifndef PARLEY_LOCAL_STORE_H
#define PARLEY_LOCAL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "parley/err.h"

#define LOCAL_STORE_FILE "local.db"
#define LOCAL_STORE_KEY_FILE "local.key"
#define LOCAL_STORE_SALT_FILE "local.salt"
#define LOCAL_STORE_MAX_VALUE (1u << 22) /* largest value (a full ratchet fits) */
#define LOCAL_STORE_MAX_KEY 1024u        /* largest logical lookup key */

/* Namespaces of the key/value table. The number is part of the AD and of the hash. */
enum ls_ns {
    LS_META = 1,       /* fixed names: "check", "identity", "spk", "device", ... */
    LS_PREKEY = 2,     /* one-time prekey private parts, key = id (decimal) */
    LS_SPK = 3,        /* signed prekeys (current and previous), key = id (decimal) */
    LS_SESSION = 4,    /* ratchet sessions, key = "user_id/device_id" */
    LS_CONTACT = 5,    /* contact records (JSON), key = user id */
    LS_USERNAME = 6,   /* username -> user id, key = username */
    LS_SEEN = 7,       /* message ids already processed, key = sender user id || msg id */
    LS_SENDER_KEY = 8, /* sender keys (groups) */
};

struct local_store;

/* Open (creating when missing) <home>/local.db with its key. home must exist or be
 * creatable (0700). Errors: PARLEY_ERR_DENIED (wrong passphrase or key file), STORE,
 * IO, NOMEM. *out only on success; close with local_store_close. */
PARLEY_WUR enum parley_err local_store_open(const char *home, struct local_store **out);
/* Close and wipe the keys. Accepts NULL. */
void local_store_close(struct local_store *ls);

/* Transactions. The outermost is BEGIN IMMEDIATE: it takes the database's write lock
 * before anything is read, so two processes on the same home (listen + send) can never
 * both load the same ratchet state and use its next message key. Inner levels are
 * savepoints (at most 8 levels). rollback undoes the innermost level only. Every write
 * outside a transaction is its own transaction. */
PARLEY_WUR enum parley_err local_store_begin(struct local_store *ls);
/* The number of open levels (take it before local_store_begin). */
unsigned local_store_depth(const struct local_store *ls);
/* End the level opened after `level` was taken: commit it when rc is PARLEY_OK, else
 * roll back to `level` (also when local_store_begin itself failed). Returns the
 * outcome. The one safe way to close a level when transactions nest. */
PARLEY_WUR enum parley_err local_store_end(struct local_store *ls, unsigned level,
                                           enum parley_err rc);
PARLEY_WUR enum parley_err local_store_commit(struct local_store *ls);
void local_store_rollback(struct local_store *ls);

/* Put (insert or replace) a value under (ns, key). Borrowed inputs. */
PARLEY_WUR enum parley_err local_store_put(struct local_store *ls, enum ls_ns ns,
                                           const char *key, const void *val, size_t len);
/* Get a copy of the value (malloc'd, NUL-terminated past len for convenience; free with
 * local_store_value_free). PARLEY_ERR_NOTFOUND when absent; PARLEY_ERR_CRYPTO when the
 * value fails authentication (tampered file). */
PARLEY_WUR enum parley_err local_store_get(struct local_store *ls, enum ls_ns ns,
                                           const char *key, uint8_t **val, size_t *len);
/* Delete (absent is fine). */
PARLEY_WUR enum parley_err local_store_del(struct local_store *ls, enum ls_ns ns,
                                           const char *key);
/* Number of rows in a namespace. */
PARLEY_WUR enum parley_err local_store_count(struct local_store *ls, enum ls_ns ns,
                                             size_t *out);
/* Delete every row of a namespace. */
PARLEY_WUR enum parley_err local_store_clear(struct local_store *ls, enum ls_ns ns);
/* Wipe and free a value from local_store_get / local_store_msg_*. Accepts NULL. */
void local_store_value_free(uint8_t *val, size_t len);

/* ---- message history: one encrypted record per message, ordered by insertion ---- */

/* Add a record for conversation `peer` (user id or "g:" group id) with message id
 * msg_id (any bytes). PARLEY_ERR_EXISTS when that id is already stored for the peer. */
PARLEY_WUR enum parley_err local_store_msg_add(struct local_store *ls, const char *peer,
                                               const char *msg_id, const void *rec,
                                               size_t len);
/* Replace the record of (peer, msg_id). PARLEY_ERR_NOTFOUND when absent. */
PARLEY_WUR enum parley_err local_store_msg_update(struct local_store *ls, const char *peer,
                                                  const char *msg_id, const void *rec,
                                                  size_t len);
/* The record of (peer, msg_id) (free with local_store_value_free). */
PARLEY_WUR enum parley_err local_store_msg_get(struct local_store *ls, const char *peer,
                                               const char *msg_id, uint8_t **rec,
                                               size_t *len);
/* Delete one record (absent is fine). */
PARLEY_WUR enum parley_err local_store_msg_del(struct local_store *ls, const char *peer,
                                               const char *msg_id);
/* Call fn for the records of peer, oldest first, at most `limit` newest ones (0 = all).
 * The record is only borrowed for the call. A non-zero return of fn stops the walk and
 * is returned. */
typedef int (*local_store_msg_fn)(const uint8_t *rec, size_t len, void *ud);
PARLEY_WUR enum parley_err local_store_msg_list(struct local_store *ls, const char *peer,
                                                size_t limit, local_store_msg_fn fn,
                                                void *ud);

#endif
