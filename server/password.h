/*
 * password.h — password hashing for accounts (POLICY P2): Argon2id through libsodium's
 * crypto_pwhash_str_alg, self-describing "$argon2id$..." strings, verification with
 * crypto_pwhash_str_verify (constant time in the password).
 *
 * Every function here is slow on purpose (Argon2 takes tens to hundreds of ms and
 * memlimit bytes of memory): call them from a worker thread (http_request_work), never
 * from a loop thread. Thread-safe. Passwords are never logged, copied or kept.
 */
#ifndef PARLEY_SERVER_PASSWORD_H
#define PARLEY_SERVER_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "parley/err.h"

#define PASSWORD_HASH_MAX 128 /* crypto_pwhash_STRBYTES, including the NUL */

/* Hash pw[0..len) with Argon2id at opslimit / memlimit_kib KiB into out (NUL-terminated).
 * Limits below libsodium's minimums are raised to them. PARLEY_ERR_NOMEM when the memory
 * cannot be had, PARLEY_ERR_CRYPTO otherwise. */
PARLEY_WUR enum parley_err password_hash(const char *pw, size_t len, uint64_t opslimit,
                                         uint64_t memlimit_kib, char out[PASSWORD_HASH_MAX]);

/* True if pw matches hash. */
bool password_verify(const char *hash, const char *pw, size_t len);

/* Spend the time of a verification against a hash made with these parameters, for an
 * account that does not exist, so a login's timing does not tell whether the username
 * exists. The dummy hash is made once per parameter set and cached. Always "fails". */
void password_verify_dummy(const char *pw, size_t len, uint64_t opslimit, uint64_t memlimit_kib);

#endif
