/*
 * sessions.c — POST /v1/sessions (login: a new device and its session) and
 * DELETE /v1/sessions/current (logout; the device's open stream is closed with 4001).
 *
 * Login never says whether the username exists: an unknown or malformed username costs
 * an Argon2 verification against a dummy hash (password_verify_dummy) and gets the same
 * 401 invalid_credentials as a wrong password. The device limit is checked only after
 * the password, so it tells nothing to someone who does not know it.
 * Rate limits (in memory only): per client IP, then per account name.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts.h"
#include "app.h"
#include "auth.h"
#include "clock.h"
#include "http_server.h"
#include "job.h"
#include "json_input.h"
#include "password.h"
#include "ratelimit.h"
#include "respond.h"
#include "store/store.h"
#include "stream/stream.h"

/* ---- POST /v1/sessions ---- */

struct login_job {
    struct api_job base; /* app */
    struct json_session_create in;
    int64_t now;
    enum parley_err err;
    char user_id[STORE_ID_LEN + 1]; /* set when the username exists (for the log) */
    char device_id[STORE_ID_LEN + 1];
    char token[AUTH_TOKEN_TEXT_LEN + 1];
};

static void login_work(void *p)
{
    struct login_job *j = p;
    const struct config *cfg = j->base.app->cfg;
    struct store_user u;
    uint8_t hash[STORE_TOKEN_HASH_BYTES];
    enum parley_err err = PARLEY_ERR_NOTFOUND;

    memset(&u, 0, sizeof u);
    if (j->in.username_valid)
        err = store_user_get_by_username(j->base.app->store, j->in.username, &u);
    if (err == PARLEY_ERR_NOTFOUND) {
        password_verify_dummy(j->in.password, j->in.password_len, cfg->argon2_opslimit,
                              cfg->argon2_memlimit_kib);
        err = PARLEY_ERR_DENIED;
        goto out;
    }
    if (err)
        goto out;
    memcpy(j->user_id, u.id, sizeof u.id);
    bool ok = password_verify(u.password_hash, j->in.password, j->in.password_len);
    sodium_memzero(j->in.password, sizeof j->in.password);
    if (!ok) {
        err = PARLEY_ERR_DENIED;
        goto out;
    }
    auth_token_new(j->token, hash);
    struct store_session_new sn = {
        .user_id = u.id,
        .device_name = j->in.device_name,
        .token_hash = hash,
        .now = j->now,
        .expires_at = j->now + cfg->session_ttl_s,
        .max_devices = cfg->max_devices,
    };
    err = store_session_create(j->base.app->store, &sn, j->device_id);
out:
    if (err)
        sodium_memzero(j->token, sizeof j->token);
    sodium_memzero(hash, sizeof hash);
    sodium_memzero(&u, sizeof u);
    j->err = err;
}

static void login_done(struct http_request *req, void *p)
{
    struct login_job *j = p;
    const char *uid = j->user_id[0] ? j->user_id : NULL;
    if (j->err == PARLEY_ERR_DENIED) {
        accounts_log_event(LOG_INFO, "login_failed", uid, NULL, "invalid_credentials");
        http_respond_error(req, 401, "invalid_credentials", "wrong username or password");
    } else if (j->err == PARLEY_ERR_LIMIT) {
        accounts_log_event(LOG_INFO, "login_failed", uid, NULL, "device_limit");
        http_respond_error(req, 409, "device_limit",
                           "this account has the maximum number of devices; log out or "
                           "revoke one first");
    } else if (j->err) {
        respond_failure(req, j->err);
    } else {
        /* Built by hand so the token lands in exactly one buffer we wipe: ids are hex,
         * the token base64url, nothing to escape. */
        char body[256];
        int n = snprintf(body, sizeof body,
                         "{\"token\":\"%s\",\"user_id\":\"%s\",\"device_id\":\"%s\"}", j->token,
                         j->user_id, j->device_id);
        if (n > 0 && (size_t)n < sizeof body) {
            accounts_log_event(LOG_INFO, "login_ok", j->user_id, j->device_id, NULL);
            http_respond_json(req, 201, body);
        } else {
            respond_failure(req, PARLEY_ERR_LIMIT);
        }
        sodium_memzero(body, sizeof body);
    }
    api_job_free(j);
}

static void h_login(struct http_request *req, void *ctx)
{
    struct app *app = ctx;
    struct json_input_error ierr;
    uint32_t retry = 0;
    struct login_job *j = NULL;

    if (!ratelimit_take(app->rl_login_ip, req->remote_ip, &retry)) {
        respond_rate_limited(req, retry);
        return;
    }
    j = api_job_new(req, sizeof *j, app, NULL, api_job_release_wiped);
    if (!j)
        return;
    j->now = clock_now_s();
    enum parley_err err = json_input_session_create(req->body, req->body_len, &j->in, &ierr);
    if (err) {
        respond_decode_failure(req, err, &ierr);
        goto fail;
    }
    if (!ratelimit_take(app->rl_login_account, j->in.username, &retry)) {
        respond_rate_limited(req, retry);
        goto fail;
    }
    api_job_start(req, j, login_work, login_done);
    return;
fail:
    api_job_free(j);
}

/* ---- DELETE /v1/sessions/current ---- */

struct logout_job {
    struct api_job base; /* app, who */
    enum parley_err err;
};

static void logout_work(void *p)
{
    struct logout_job *j = p;
    j->err = store_session_delete(j->base.app->store, j->base.who.token_hash);
}

static void logout_done(struct http_request *req, void *p)
{
    struct logout_job *j = p;
    if (j->err == PARLEY_ERR_NOTFOUND) {
        /* Revoked meanwhile by another request: the token is no longer valid. */
        http_respond_error(req, 401, "unauthorized", "missing, invalid or expired token");
    } else if (j->err) {
        respond_failure(req, j->err);
    } else {
        accounts_log_event(LOG_INFO, "logout", j->base.who.user_id, j->base.who.device_id, NULL);
        (void)stream_disconnect_device(j->base.app->stream, j->base.who.device_id);
        respond_no_content(req);
    }
    api_job_free(j);
}

static void logout_authed(struct http_request *req, struct app *app, const struct auth_info *who,
                          void *arg)
{
    (void)arg;
    struct logout_job *j = api_job_new(req, sizeof *j, app, who, api_job_release_wiped);
    if (j)
        api_job_start(req, j, logout_work, logout_done);
}

static void h_logout(struct http_request *req, void *ctx)
{
    auth_then(req, ctx, logout_authed, NULL);
}

enum parley_err sessions_register_routes(struct http_server *srv, struct app *app)
{
    enum parley_err err = http_server_route(srv, "POST", "/v1/sessions", h_login, app);
    if (!err)
        err = http_server_route(srv, "DELETE", "/v1/sessions/current", h_logout, app);
    return err;
}
