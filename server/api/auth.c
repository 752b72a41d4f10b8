/*
 * auth.c — bearer-token authentication and the policy gate (P30); see auth.h.
 */
#include "auth.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "clock.h"
#include "http_server.h"
#include "privacy/policy_cache.h"
#include "respond.h"

_Static_assert(STORE_TOKEN_HASH_BYTES == crypto_hash_sha256_BYTES, "token hash size");

void auth_token_new(char text[AUTH_TOKEN_TEXT_LEN + 1], uint8_t hash[STORE_TOKEN_HASH_BYTES])
{
    unsigned char raw[AUTH_TOKEN_BYTES];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(text, AUTH_TOKEN_TEXT_LEN + 1, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    crypto_hash_sha256(hash, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
}

enum parley_err auth_parse_header(const char *value, uint8_t hash[STORE_TOKEN_HASH_BYTES])
{
    unsigned char raw[AUTH_TOKEN_BYTES];
    size_t raw_len = 0;
    const char *end = NULL;
    if (!value || strncasecmp(value, "Bearer ", 7) != 0)
        return PARLEY_ERR_DENIED;
    const char *tok = value + 7;
    while (*tok == ' ')
        tok++;
    size_t n = strlen(tok);
    while (n > 0 && (tok[n - 1] == ' ' || tok[n - 1] == '\t'))
        n--;
    if (n != AUTH_TOKEN_TEXT_LEN)
        return PARLEY_ERR_DENIED;
    if (sodium_base642bin(raw, sizeof raw, tok, n, NULL, &raw_len, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        raw_len != sizeof raw || end != tok + n) {
        sodium_memzero(raw, sizeof raw);
        return PARLEY_ERR_DENIED;
    }
    crypto_hash_sha256(hash, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    return PARLEY_OK;
}

/* P30: the routes an account that has not accepted a material policy may still use,
 * by (method, route pattern). Reading the policy (GET /v1/policy) needs no token. */
static const struct {
    const char *method;
    const char *route;
} policy_allow[] = {
    {"POST", "/v1/policy/accept"},
    {"GET", "/v1/me/export"},
    {"DELETE", "/v1/me"},
    {"DELETE", "/v1/sessions/current"},
    {"GET", "/v1/me/consents"},
    {"PUT", "/v1/me/consents/{purpose}"}, /* withdrawals only: see api/consents.c */
};

static bool policy_allowed(const struct http_request *req)
{
    if (!req->route || !req->method)
        return false;
    for (size_t i = 0; i < sizeof policy_allow / sizeof policy_allow[0]; i++)
        if (!strcmp(req->method, policy_allow[i].method) &&
            !strcmp(req->route, policy_allow[i].route))
            return true;
    return false;
}

struct auth_job {
    struct app *app;
    auth_fn fn;
    void *arg;
    int64_t now;
    bool allowed; /* the route is on the policy allow-list */
    bool blocked; /* refuse with policy_consent_required */
    enum parley_err err;
    struct store_session sess;
    struct auth_info who;
};

static void auth_work(void *p)
{
    struct auth_job *j = p;
    struct store_policy_meta gate;
    bool have = false, ok = false;
    j->err = store_session_lookup(j->app->store, j->who.token_hash, j->now, &j->sess);
    if (j->err)
        return;
    j->err = policy_cache_gate(j->app->store, &gate, &have);
    if (j->err || !have)
        return;
    j->err = store_policy_accepted(j->app->store, j->sess.user_id, &gate, &ok);
    if (j->err || ok)
        return;
    memcpy(j->who.policy_version, gate.version, sizeof j->who.policy_version);
    if (j->allowed)
        j->who.policy_pending = true;
    else
        j->blocked = true;
}

static void respond_policy_required(struct http_request *req, const char *version)
{
    char msg[160];
    snprintf(msg, sizeof msg,
             "the privacy policy changed: read version %s (GET /v1/policy) and accept it "
             "(POST /v1/policy/accept) to continue",
             version);
    json_t *o = json_pack("{s:{s:s, s:s, s:s}}", "error", "code", "policy_consent_required",
                          "message", msg, "version", version);
    if (o)
        respond_json(req, 403, o);
    else
        http_respond_error(req, 403, "policy_consent_required", msg);
}

static void auth_done(struct http_request *req, void *p)
{
    struct auth_job *j = p;
    if (j->err == PARLEY_ERR_NOTFOUND) {
        http_respond_error(req, 401, "unauthorized", "missing, invalid or expired token");
    } else if (j->err) {
        respond_failure(req, j->err);
    } else if (j->blocked) {
        respond_policy_required(req, j->who.policy_version);
    } else {
        memcpy(j->who.user_id, j->sess.user_id, sizeof j->who.user_id);
        memcpy(j->who.device_id, j->sess.device_id, sizeof j->who.device_id);
        j->who.expires_at = j->sess.expires_at;
        j->fn(req, j->app, &j->who, j->arg);
    }
    sodium_memzero(j, sizeof *j);
    free(j);
}

void auth_then(struct http_request *req, struct app *app, auth_fn fn, void *arg)
{
    uint8_t hash[STORE_TOKEN_HASH_BYTES];
    if (auth_parse_header(http_request_header(req, "Authorization"), hash) != PARLEY_OK) {
        http_respond_error(req, 401, "unauthorized", "missing, invalid or expired token");
        return;
    }
    struct auth_job *j = calloc(1, sizeof *j);
    if (!j) {
        respond_failure(req, PARLEY_ERR_NOMEM);
        return;
    }
    j->app = app;
    j->fn = fn;
    j->arg = arg;
    j->now = clock_now_s();
    j->allowed = policy_allowed(req);
    memcpy(j->who.token_hash, hash, sizeof hash);
    enum parley_err err = http_request_work(req, auth_work, auth_done, j);
    if (err) {
        free(j);
        respond_failure(req, err);
    }
}
