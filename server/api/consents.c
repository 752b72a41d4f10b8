/*
 * consents.c — GET /v1/me/consents and PUT /v1/me/consents/{purpose}; see consents.h.
 *
 * A change is recorded (value + history row with the policy version in force) before
 * the answer, so it applies to the very next request (P12: withdrawal refuses at once).
 * A withdrawal then runs the purpose's hook (privacy/consent.c), which deletes what was
 * kept only for it; a hook failure is a 500 after the withdrawal itself was recorded,
 * and the hook runs again on a repeated withdrawal (hooks are idempotent).
 *
 * Grants are refused (403) for an account that needs a parent's consent and has none
 * recorded (P29), and while a material policy awaits acceptance (P30: this route is on
 * the gate's allow-list for withdrawals only).
 */
#include "consents.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "auth.h"
#include "body.h"
#include "clock.h"
#include "http_server.h"
#include "job.h"
#include "privacy/consent.h"
#include "respond.h"
#include "store/store.h"

struct consent_job {
    struct api_job base; /* app, who */
    const struct consent_purpose *purpose;
    bool granted;
    bool need_parent;
    enum parley_err err;
    struct store_consent *rows;
    size_t n_rows;
    struct store_consent one;
};

static void job_release(void *p)
{
    struct consent_job *j = p;
    free(j->rows);
    free(j);
}

static void job_start(struct http_request *req, struct app *app, const struct auth_info *who,
                      http_work_fn work, http_done_fn done, const struct consent_purpose *p,
                      bool granted)
{
    struct consent_job *j = api_job_new(req, sizeof *j, app, who, job_release);
    if (!j)
        return;
    j->purpose = p;
    j->granted = granted;
    api_job_start(req, j, work, done);
}

static json_t *consent_json(const char *purpose, const struct store_consent *c)
{
    if (!c)
        return json_pack("{s:s, s:b, s:n, s:n}", "purpose", purpose, "granted", 0, "updated_at",
                         "policy_version");
    return json_pack("{s:s, s:b, s:I, s:s?}", "purpose", purpose, "granted", c->granted,
                     "updated_at", (json_int_t)c->updated_at, "policy_version",
                     c->policy_version[0] ? c->policy_version : NULL);
}

/* ---- GET /v1/me/consents ---- */

static void list_work(void *p)
{
    struct consent_job *j = p;
    j->err = store_consent_list(j->base.app->store, j->base.who.user_id, &j->rows, &j->n_rows);
}

static void list_done(struct http_request *req, void *p)
{
    struct consent_job *j = p;
    size_t n = 0;
    const struct consent_purpose *ps = consent_purposes(&n);
    json_t *arr = NULL;
    if (j->err) {
        respond_failure(req, j->err);
        goto out;
    }
    arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        const struct store_consent *c = NULL;
        for (size_t k = 0; k < j->n_rows; k++)
            if (!strcmp(j->rows[k].purpose, ps[i].name))
                c = &j->rows[k];
        if (json_array_append_new(arr, consent_json(ps[i].name, c)) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    if (!arr)
        respond_failure(req, PARLEY_ERR_NOMEM);
    else
        respond_json(req, 200, json_pack("{s:o}", "consents", arr));
out:
    api_job_free(j);
}

static void list_authed(struct http_request *req, struct app *app, const struct auth_info *who,
                        void *arg)
{
    (void)arg;
    job_start(req, app, who, list_work, list_done, NULL, false);
}

static void h_list(struct http_request *req, void *ctx)
{
    auth_then(req, ctx, list_authed, NULL);
}

/* ---- PUT /v1/me/consents/{purpose} ---- */

static void put_work(void *p)
{
    struct consent_job *j = p;
    struct store *s = j->base.app->store;
    struct store_user u;
    struct store_policy_meta pol;
    const char *version = "";

    if (j->granted) {
        bool parent = false;
        j->err = store_user_get_by_id(s, j->base.who.user_id, &u);
        bool flagged = !j->err && u.parental_consent_required;
        sodium_memzero(&u, sizeof u);
        if (j->err)
            return;
        if (flagged) {
            if ((j->err = store_parental_get(s, j->base.who.user_id, &parent)))
                return;
            if (!parent) {
                j->need_parent = true;
                return;
            }
        }
    }
    j->err = store_policy_latest(s, false, &pol);
    if (j->err == PARLEY_OK)
        version = pol.version;
    else if (j->err != PARLEY_ERR_NOTFOUND)
        return;
    j->one.updated_at = clock_now_s();
    j->err = store_consent_set(s, j->base.who.user_id, j->purpose->name, j->granted, version,
                               j->one.updated_at);
    if (j->err)
        return;
    snprintf(j->one.purpose, sizeof j->one.purpose, "%s", j->purpose->name);
    snprintf(j->one.policy_version, sizeof j->one.policy_version, "%s", version);
    j->one.granted = j->granted;
    if (!j->granted && j->purpose->on_withdraw)
        j->err = j->purpose->on_withdraw(s, j->base.who.user_id);
}

static void put_done(struct http_request *req, void *p)
{
    struct consent_job *j = p;
    if (j->need_parent)
        http_respond_error(req, 403, "parental_consent_required",
                           "this account needs a parent's consent before any purpose can be "
                           "granted");
    else if (j->err == PARLEY_ERR_NOTFOUND)
        http_respond_error(req, 401, "unauthorized", "unknown or expired session");
    else if (j->err)
        respond_failure(req, j->err);
    else
        respond_json(req, 200, consent_json(j->one.purpose, &j->one));
    api_job_free(j);
}

static void put_authed(struct http_request *req, struct app *app, const struct auth_info *who,
                       void *arg)
{
    static const struct body_field fields[] = {{"granted", BODY_BOOL, true}};
    const char *name = req->n_params >= 1 ? req->params[0] : NULL;
    const struct consent_purpose *p = consent_purpose_find(name);
    struct json_input_error ierr;
    json_t *root = NULL, *v[1];
    enum parley_err err;

    (void)arg;
    if (!p) {
        http_respond_error(req, 404, "unknown_purpose",
                           "no such consent purpose (see GET /v1/me/consents)");
        return;
    }
    err = body_decode(req->body, req->body_len, fields, 1, &root, v, &ierr);
    if (err) {
        respond_decode_failure(req, err, &ierr);
        json_decref(root);
        return;
    }
    bool granted = json_is_true(v[0]);
    json_decref(root);
    if (granted && who->policy_pending) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "accept privacy policy version %s (POST /v1/policy/accept) before granting "
                 "a consent; withdrawing works without it",
                 who->policy_version);
        json_t *o = json_pack("{s:{s:s, s:s, s:s}}", "error", "code", "policy_consent_required",
                              "message", msg, "version", who->policy_version);
        respond_json(req, 403, o);
        return;
    }
    job_start(req, app, who, put_work, put_done, p, granted);
}

static void h_put(struct http_request *req, void *ctx)
{
    auth_then(req, ctx, put_authed, NULL);
}

enum parley_err consents_register_routes(struct http_server *srv, struct app *app)
{
    enum parley_err err = http_server_route(srv, "GET", "/v1/me/consents", h_list, app);
    if (!err)
        err = http_server_route(srv, "PUT", "/v1/me/consents/{purpose}", h_put, app);
    return err;
}
