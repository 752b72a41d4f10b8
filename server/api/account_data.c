/*
 * account_data.c — GET /v1/me/export and DELETE /v1/me (see account_data.h).
 *
 * Both follow the handler pattern: auth_then (the session), then the work on the
 * thread pool (the store blocks; Argon2 is slow on purpose), then the answer on the loop
 * thread. Deletion re-checks the password so a stolen token alone cannot erase an
 * account; wrong passwords are rate-limited per account with the login limiter. Once
 * store_user_delete has committed, every session of the account is gone, so its tokens
 * are refused from the next request on, and its open streams are closed at once (4001).
 */
#include "account_data.h"

#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "accounts.h"
#include "accounts_validate.h"
#include "app.h"
#include "auth.h"
#include "body.h"
#include "buf.h"
#include "clock.h"
#include "export.h"
#include "http_server.h"
#include "job.h"
#include "log.h"
#include "password.h"
#include "ratelimit.h"
#include "respond.h"
#include "store/store.h"
#include "stream/stream.h"

/* ---- GET /v1/me/export ---- */

struct export_job {
    struct api_job base; /* app, who */
    struct buf out;
    enum parley_err err;
};

static enum parley_err to_buf(void *ctx, const char *data, size_t len)
{
    return buf_append(ctx, data, len);
}

static void export_release(void *p)
{
    struct export_job *j = p;
    buf_cleanup_wipe(&j->out);
    free(j);
}

static void export_work(void *p)
{
    struct export_job *j = p;
    j->err = export_user_json(j->base.app->store, j->base.who.user_id, clock_now_s(), to_buf,
                              &j->out);
}

static void export_done(struct http_request *req, void *p)
{
    struct export_job *j = p;
    if (j->err == PARLEY_ERR_NOTFOUND) {
        http_respond_error(req, 404, "not_found", "no such account");
    } else if (j->err == PARLEY_ERR_LIMIT) {
        http_respond_error(req, 507, "export_too_large",
                           "the export is larger than this server sends over HTTP; ask the "
                           "operator for it");
    } else if (j->err) {
        respond_failure(req, j->err);
    } else {
        accounts_log_event(LOG_INFO, "account_exported", j->base.who.user_id, NULL, NULL);
        http_respond(req, 200, "application/json", j->out.data, j->out.len,
                     "Content-Disposition: attachment; filename=\"parley-export.json\"\r\n"
                     "Cache-Control: no-store\r\n");
    }
    api_job_free(j);
}

static void export_authed(struct http_request *req, struct app *app, const struct auth_info *who,
                          void *arg)
{
    (void)arg;
    struct export_job *j = api_job_new(req, sizeof *j, app, who, export_release);
    if (!j)
        return;
    buf_init(&j->out, ACCOUNT_DATA_EXPORT_MAX);
    api_job_start(req, j, export_work, export_done);
}

static void h_export(struct http_request *req, void *ctx)
{
    auth_then(req, ctx, export_authed, NULL);
}

/* ---- DELETE /v1/me ---- */

struct delete_job {
    struct api_job base; /* app, who */
    char password[ACCOUNTS_PASSWORD_MAX + 1];
    size_t password_len;
    enum parley_err err; /* DENIED: wrong password */
};

static void delete_work(void *p)
{
    struct delete_job *j = p;
    struct store_user u;
    enum parley_err err = store_user_get_by_id(j->base.app->store, j->base.who.user_id, &u);
    if (err == PARLEY_OK && !password_verify(u.password_hash, j->password, j->password_len))
        err = PARLEY_ERR_DENIED;
    sodium_memzero(&u, sizeof u);
    sodium_memzero(j->password, sizeof j->password);
    if (err == PARLEY_OK)
        err = store_user_delete(j->base.app->store, j->base.who.user_id);
    j->err = err;
}

static void delete_done(struct http_request *req, void *p)
{
    struct delete_job *j = p;
    if (j->err == PARLEY_ERR_DENIED) {
        accounts_log_event(LOG_INFO, "account_delete_refused", j->base.who.user_id, NULL,
                           "wrong_password");
        http_respond_error(req, 401, "wrong_password", "the password is not correct");
    } else if (j->err == PARLEY_ERR_NOTFOUND) {
        http_respond_error(req, 404, "not_found", "no such account");
    } else if (j->err) {
        respond_failure(req, j->err);
    } else {
        accounts_log_event(LOG_INFO, "account_deleted", j->base.who.user_id, NULL, "self_service");
        (void)stream_disconnect_user(j->base.app->stream, j->base.who.user_id); /* committed: P27 */
        respond_no_content(req);
    }
    api_job_free(j);
}

static void delete_authed(struct http_request *req, struct app *app, const struct auth_info *who,
                          void *arg)
{
    (void)arg;
    static const struct body_field fields[] = {{"password", BODY_STRING, true}};
    struct json_input_error ierr;
    json_t *root = NULL, *vals[1] = {NULL};
    uint32_t retry = 0;
    struct delete_job *j = NULL;
    enum parley_err err =
        body_decode(req->body, req->body_len, fields, 1, &root, vals, &ierr);
    if (!err) {
        size_t n = json_string_length(vals[0]);
        if (n == 0 || n > ACCOUNTS_PASSWORD_MAX) {
            body_error(&ierr, "invalid_password", "password must be 1 to %d bytes",
                       ACCOUNTS_PASSWORD_MAX);
            err = PARLEY_ERR_INVAL;
        }
    }
    if (err) {
        respond_decode_failure(req, err, &ierr);
        goto out;
    }
    /* Each attempt costs an Argon2 run: the login limiter, per account. */
    if (!ratelimit_take(app->rl_login_account, who->user_id, &retry)) {
        respond_rate_limited(req, retry);
        goto out;
    }
    j = api_job_new(req, sizeof *j, app, who, api_job_release_wiped);
    if (!j)
        goto out;
    j->password_len = json_string_length(vals[0]);
    memcpy(j->password, json_string_value(vals[0]), j->password_len);
    api_job_start(req, j, delete_work, delete_done);
out:
    if (root) {
        /* jansson's copy of the password */
        if (vals[0])
            sodium_memzero((void *)json_string_value(vals[0]), json_string_length(vals[0]));
        json_decref(root);
    }
}

static void h_delete(struct http_request *req, void *ctx)
{
    auth_then(req, ctx, delete_authed, NULL);
}

enum parley_err account_data_register_routes(struct http_server *srv, struct app *app)
{
    enum parley_err err = http_server_route(srv, "GET", "/v1/me/export", h_export, app);
    if (!err)
        err = http_server_route(srv, "DELETE", "/v1/me", h_delete, app);
    return err;
}
