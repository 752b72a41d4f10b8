/*
 * policy.c — GET /v1/policy and POST /v1/policy/accept; see policy.h.
 *
 * GET needs no token, so a client blocked by the gate (or not yet registered) can
 * always read what it is asked to accept. Accepting a version records (user, version,
 * time) once; accepting the gating version or any later one lifts the gate (auth.c).
 */
#include "policy.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "auth.h"
#include "body.h"
#include "clock.h"
#include "http_server.h"
#include "job.h"
#include "respond.h"
#include "store/store.h"

struct policy_job {
    struct api_job base; /* app, who (POST only) */
    enum parley_err err;
    struct store_policy_meta meta;
    char *text;
    size_t len;
    char version[STORE_POLICY_VERSION_MAX + 1];
    int64_t now;
};

static void job_release(void *p)
{
    struct policy_job *j = p;
    free(j->text);
    free(j);
}

/* ---- GET /v1/policy ---- */

static void get_work(void *p)
{
    struct policy_job *j = p;
    j->err = store_policy_latest(j->base.app->store, false, &j->meta);
    if (!j->err)
        j->err = store_policy_text(j->base.app->store, j->meta.seq, &j->text, &j->len);
}

static void get_done(struct http_request *req, void *p)
{
    struct policy_job *j = p;
    if (j->err == PARLEY_ERR_NOTFOUND)
        http_respond_error(req, 404, "no_policy", "no privacy policy has been published");
    else if (j->err)
        respond_failure(req, j->err);
    else
        respond_json(req, 200,
                     json_pack("{s:s, s:b, s:I, s:s%}", "version", j->meta.version, "material",
                               j->meta.material, "published_at", (json_int_t)j->meta.published_at,
                               "text", j->text, j->len));
    api_job_free(j);
}

static void h_get(struct http_request *req, void *ctx)
{
    struct policy_job *j = api_job_new(req, sizeof *j, ctx, NULL, job_release);
    if (j)
        api_job_start(req, j, get_work, get_done);
}

/* ---- POST /v1/policy/accept ---- */

static void accept_work(void *p)
{
    struct policy_job *j = p;
    j->now = clock_now_s();
    j->err = store_policy_accept(j->base.app->store, j->base.who.user_id, j->version, j->now);
}

static void accept_done(struct http_request *req, void *p)
{
    struct policy_job *j = p;
    if (j->err == PARLEY_ERR_NOTFOUND)
        http_respond_error(req, 404, "unknown_version", "no published policy has this version");
    else if (j->err)
        respond_failure(req, j->err);
    else
        respond_json(req, 200, json_pack("{s:s, s:I}", "version", j->version, "accepted_at",
                                         (json_int_t)j->now));
    api_job_free(j);
}

static void accept_authed(struct http_request *req, struct app *app, const struct auth_info *who,
                          void *arg)
{
    static const struct body_field fields[] = {{"version", BODY_STRING, true}};
    struct json_input_error ierr;
    json_t *root = NULL, *v[1];
    (void)arg;
    enum parley_err err =
        body_decode(req->body, req->body_len, fields, 1, &root, v, &ierr);
    if (err) {
        respond_decode_failure(req, err, &ierr);
        json_decref(root);
        return;
    }
    const char *ver = json_string_value(v[0]);
    size_t n = json_string_length(v[0]);
    if (n == 0 || n > STORE_POLICY_VERSION_MAX || strlen(ver) != n) {
        json_decref(root);
        http_respond_error(req, 400, "invalid_version", "version must be 1 to 32 bytes");
        return;
    }
    struct policy_job *j = api_job_new(req, sizeof *j, app, who, job_release);
    if (!j) {
        json_decref(root);
        return;
    }
    memcpy(j->version, ver, n + 1);
    json_decref(root);
    api_job_start(req, j, accept_work, accept_done);
}

static void h_accept(struct http_request *req, void *ctx)
{
    auth_then(req, ctx, accept_authed, NULL);
}

enum parley_err policy_register_routes(struct http_server *srv, struct app *app)
{
    enum parley_err err = http_server_route(srv, "GET", "/v1/policy", h_get, app);
    if (!err)
        err = http_server_route(srv, "POST", "/v1/policy/accept", h_accept, app);
    return err;
}
