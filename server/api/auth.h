/*
 * auth.h — bearer-token authentication for every authenticated route.
 *
 * A session token is 32 random bytes sent as unpadded base64url in
 * "Authorization: Bearer <token>"; the store knows only its SHA-256 (POLICY P2).
 * auth_then() parses the header on the loop thread, looks the session up on the thread
 * pool (the store blocks), and back on the loop thread either calls fn with who the
 * caller is, or answers the request itself: 401 unauthorized when the header is missing
 * or malformed or the session unknown, expired or revoked; 500/503 on store failure.
 * In that case fn is not called, so per-request state should be made inside fn, not
 * before (arg is borrowed and must outlive the request: typically NULL or static).
 *
 * Policy gate (POLICY P30): when a material policy version exists that the account has
 * not accepted (policy_cache.h), every route answers 403 policy_consent_required, with
 * the version in the error body, except the allow-list in auth.c: accepting the policy,
 * the export, account deletion, logout, and reading or withdrawing consents.
 *
 * Threads: auth_then and fn run on the request's loop thread.
 */
#ifndef PARLEY_SERVER_API_AUTH_H
#define PARLEY_SERVER_API_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parley/err.h"
#include "store/store.h"

struct http_request;
struct app;

#define AUTH_TOKEN_BYTES 32
#define AUTH_TOKEN_TEXT_LEN 43 /* unpadded base64url of 32 bytes */

struct auth_info {
    char user_id[STORE_ID_LEN + 1];
    char device_id[STORE_ID_LEN + 1];
    uint8_t token_hash[STORE_TOKEN_HASH_BYTES]; /* of the presented token */
    int64_t expires_at;
    /* P30: a material policy version the account has not accepted yet. Only an
     * allow-listed route (auth.c) ever sees policy_pending set; every other route is
     * answered 403 policy_consent_required before its fn runs. */
    bool policy_pending;
    char policy_version[STORE_POLICY_VERSION_MAX + 1];
};

/* who is valid only during the call. */
typedef void (*auth_fn)(struct http_request *req, struct app *app, const struct auth_info *who,
                        void *arg);

void auth_then(struct http_request *req, struct app *app, auth_fn fn, void *arg);

/* Make a new token: text (AUTH_TOKEN_TEXT_LEN + 1 bytes, NUL-terminated) to hand to the
 * client once, and the hash to store. The caller wipes text after use. Any thread. */
void auth_token_new(char text[AUTH_TOKEN_TEXT_LEN + 1], uint8_t hash[STORE_TOKEN_HASH_BYTES]);

/* Parse an Authorization header value ("Bearer <token>", scheme case-insensitive) into
 * the token's hash. PARLEY_ERR_DENIED if absent or malformed. Pure; any thread. */
PARLEY_WUR enum parley_err auth_parse_header(const char *value,
                                             uint8_t hash[STORE_TOKEN_HASH_BYTES]);

#endif
