/*
 * accounts.c — POST /v1/accounts (registration), GET and PATCH /v1/me (access and
 * rectification of the profile), and the accounts rate limiters.
 *
 * Registration order: body decoding and validation, the age gate (P29: under 13 is
 * refused before anything is stored or logged with an identifier), the per-IP rate
 * limit, then on the thread pool: username check, Argon2id hash, insert.
 */
#include "accounts.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts_validate.h"
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

void accounts_log_event(enum log_level level, const char *event, const char *user_id,
                        const char *device_id, const char *reason)
{
    char u[17] = "", d[17] = "";
    if (user_id)
        log_pseudonym(user_id, u);
    if (device_id)
        log_pseudonym(device_id, d);
    if (user_id && device_id)
        log_event(level, event, "user", u, "device", d, reason ? "reason" : NULL, reason, NULL);
    else if (user_id)
        log_event(level, event, "user", u, reason ? "reason" : NULL, reason, NULL);
    else
        log_event(level, event, reason ? "reason" : NULL, reason, NULL);
}

/* ---- the profile as JSON (GET/PATCH /v1/me) ---- */

static json_t *opt_str(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

static json_t *profile_json(const struct store_user *u)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int rc = json_object_set_new(o, "user_id", json_string(u->id));
    rc |= json_object_set_new(o, "username", json_string(u->username));
    rc |= json_object_set_new(o, "name", json_string(u->name));
    rc |= json_object_set_new(o, "dob", json_string(u->dob));
    rc |= json_object_set_new(o, "region", opt_str(u->region));
    rc |= json_object_set_new(o, "gender", opt_str(u->gender));
    rc |= json_object_set_new(o, "parental_consent_required",
                              json_boolean(u->parental_consent_required));
    rc |= json_object_set_new(o, "created_at", json_integer(u->created_at));
    if (rc) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- POST /v1/accounts ---- */

struct register_job {
    struct api_job base; /* app */
    struct json_account_create in;
    bool consent;
    int64_t now;
    enum parley_err err;
    char user_id[STORE_ID_LEN + 1];
};

static void register_work(void *p)
{
    struct register_job *j = p;
    const struct config *cfg = j->base.app->cfg;
    struct store_user u;
    /* Cheap check first, so a taken username does not cost an Argon2 run. The insert
     * below still decides races (UNIQUE). */
    enum parley_err err = store_user_get_by_username(j->base.app->store, j->in.username, &u);
    if (err == PARLEY_OK) {
        err = PARLEY_ERR_EXISTS;
        goto out;
    }
    if (err != PARLEY_ERR_NOTFOUND)
        goto out;
    memset(&u, 0, sizeof u);
    store_id_new(u.id);
    snprintf(u.username, sizeof u.username, "%s", j->in.username);
    snprintf(u.name, sizeof u.name, "%s", j->in.name);
    snprintf(u.dob, sizeof u.dob, "%s", j->in.dob);
    snprintf(u.region, sizeof u.region, "%s", j->in.region);
    snprintf(u.gender, sizeof u.gender, "%s", j->in.gender);
    u.parental_consent_required = j->consent;
    u.created_at = j->now;
    err = password_hash(j->in.password, j->in.password_len, cfg->argon2_opslimit,
                        cfg->argon2_memlimit_kib, u.password_hash);
    sodium_memzero(j->in.password, sizeof j->in.password);
    if (err)
        goto out;
    err = store_user_create(j->base.app->store, &u);
    if (err == PARLEY_OK)
        memcpy(j->user_id, u.id, sizeof u.id);
out:
    sodium_memzero(&u, sizeof u);
    j->err = err;
}

static void register_done(struct http_request *req, void *p)
{
    struct register_job *j = p;
    if (j->err == PARLEY_ERR_EXISTS) {
        http_respond_error(req, 409, "username_taken", "this username is taken");
    } else if (j->err) {
        respond_failure(req, j->err);
    } else {
        accounts_log_event(LOG_INFO, "account_created", j->user_id, NULL, NULL);
        respond_json(req, 201, json_pack("{s:s}", "user_id", j->user_id));
    }
    api_job_free(j);
}

static void h_register(struct http_request *req, void *ctx)
{
    struct app *app = ctx;
    struct json_input_error ierr;
    uint32_t retry = 0;
    struct register_job *j = NULL;

    j = api_job_new(req, sizeof *j, app, NULL, api_job_release_wiped);
    if (!j)
        return;
    j->now = clock_now_s();
    enum parley_err err =
        json_input_account_create(req->body, req->body_len, j->now, &j->in, &ierr);
    if (err) {
        respond_decode_failure(req, err, &ierr);
        goto fail;
    }
    switch (accounts_age_gate(&j->in.dob_date, j->in.region, j->now)) {
    case ACCOUNTS_AGE_REFUSED:
        /* P29: nothing stored, nothing logged that names the person. */
        http_respond_error(req, 403, "age_restricted",
                           "parley is not available to people under 13");
        goto fail;
    case ACCOUNTS_AGE_CONSENT: j->consent = true; break;
    case ACCOUNTS_AGE_OK: break;
    }
    /* Charged only for registrations that will cost an Argon2 run and a write:
     * rejected bodies are cheap and must not lock a whole network out. */
    if (!ratelimit_take(app->rl_register_ip, req->remote_ip, &retry)) {
        respond_rate_limited(req, retry);
        goto fail;
    }
    api_job_start(req, j, register_work, register_done);
    return;
fail:
    api_job_free(j);
}

/* ---- GET /v1/me ---- */

struct me_job {
    struct api_job base;        /* app, who */
    struct json_me_patch patch; /* PATCH only */
    int64_t now;
    enum parley_err err;
    struct store_user user;
};

static void me_done(struct http_request *req, void *p)
{
    struct me_job *j = p;
    if (j->err == PARLEY_ERR_NOTFOUND) {
        http_respond_error(req, 404, "not_found", "no such account");
    } else if (j->err) {
        respond_failure(req, j->err);
    } else {
        json_t *o = profile_json(&j->user);
        if (o)
            respond_json(req, 200, o);
        else
            respond_failure(req, PARLEY_ERR_NOMEM);
    }
    api_job_free(j);
}

static void me_get_work(void *p)
{
    struct me_job *j = p;
    j->err = store_user_get_by_id(j->base.app->store, j->base.who.user_id, &j->user);
}

static struct me_job *me_job_new(struct http_request *req, struct app *app,
                                 const struct auth_info *who)
{
    /* Wiped on release: the row holds the password hash. */
    struct me_job *j = api_job_new(req, sizeof *j, app, who, api_job_release_wiped);
    if (j)
        j->now = clock_now_s();
    return j;
}

static void me_get_authed(struct http_request *req, struct app *app, const struct auth_info *who,
                          void *arg)
{
    (void)arg;
    struct me_job *j = me_job_new(req, app, who);
    if (j)
        api_job_start(req, j, me_get_work, me_done);
}

static void h_me_get(struct http_request *req, void *ctx)
{
    auth_then(req, ctx, me_get_authed, NULL);
}

/* ---- PATCH /v1/me ---- */

static void me_patch_work(void *p)
{
    struct me_job *j = p;
    struct store_user cur;
    struct accounts_date dob;
    struct store_profile_patch patch;
    memset(&patch, 0, sizeof patch);
    patch.fields = j->patch.fields;
    snprintf(patch.name, sizeof patch.name, "%s", j->patch.name);
    snprintf(patch.region, sizeof patch.region, "%s", j->patch.region);
    snprintf(patch.gender, sizeof patch.gender, "%s", j->patch.gender);
    enum parley_err err = store_user_get_by_id(j->base.app->store, j->base.who.user_id, &cur);
    if (err)
        goto out;
    /* Moving into the EU/EEA while under 16 brings the consent requirement (P29). The
     * flag is never cleared here: that needs a parental-consent record, or age. */
    if ((j->patch.fields & STORE_PATCH_REGION) && accounts_region_is_eea(j->patch.region) &&
        accounts_date_parse(cur.dob, strlen(cur.dob), &dob) &&
        accounts_age_years(&dob, j->now) < ACCOUNTS_CONSENT_AGE)
        patch.fields |= STORE_PATCH_CONSENT;
    err = store_user_update_profile(j->base.app->store, j->base.who.user_id, &patch, &j->user);
out:
    sodium_memzero(&cur, sizeof cur);
    j->err = err;
}

static void me_patch_authed(struct http_request *req, struct app *app, const struct auth_info *who,
                            void *arg)
{
    (void)arg;
    struct json_input_error ierr;
    struct me_job *j = me_job_new(req, app, who);
    if (!j)
        return;
    enum parley_err err = json_input_me_patch(req->body, req->body_len, &j->patch, &ierr);
    if (err) {
        respond_decode_failure(req, err, &ierr);
        api_job_free(j);
        return;
    }
    api_job_start(req, j, me_patch_work, me_done);
}

static void h_me_patch(struct http_request *req, void *ctx)
{
    auth_then(req, ctx, me_patch_authed, NULL);
}

/* ---- routes ---- */

enum parley_err accounts_register_routes(struct http_server *srv, struct app *app)
{
    enum parley_err err = http_server_route(srv, "POST", "/v1/accounts", h_register, app);
    if (!err)
        err = http_server_route(srv, "GET", "/v1/me", h_me_get, app);
    if (!err)
        err = http_server_route(srv, "PATCH", "/v1/me", h_me_patch, app);
    if (!err)
        err = sessions_register_routes(srv, app);
    if (!err)
        err = devices_register_routes(srv, app);
    return err;
}
