/*
 * devices.c — GET /v1/devices (the caller's devices) and DELETE /v1/devices/{id}
 * (revoke: the device and its sessions are deleted in one transaction, so its token
 * stops working at once, and its open stream, if any, is closed with 4001). A device id that is not the caller's is 404, never 403, so
 * ids of other accounts cannot be probed.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "accounts.h"
#include "app.h"
#include "auth.h"
#include "http_server.h"
#include "job.h"
#include "respond.h"
#include "store/store.h"
#include "stream/stream.h"

struct devices_job {
    struct api_job base; /* app, who */
    char target[STORE_ID_LEN + 1]; /* DELETE only */
    enum parley_err err;
    struct store_device *devs;
    size_t n;
};

static void job_release(void *p)
{
    struct devices_job *j = p;
    free(j->devs);
    free(j);
}

/* ---- GET /v1/devices ---- */

static void list_work(void *p)
{
    struct devices_job *j = p;
    j->err = store_device_list(j->base.app->store, j->base.who.user_id, &j->devs, &j->n);
}

static json_t *devices_json(const struct devices_job *j)
{
    json_t *arr = json_array();
    json_t *o = json_object();
    if (!arr || !o || json_object_set(o, "devices", arr) != 0)
        goto fail;
    for (size_t i = 0; i < j->n; i++) {
        const struct store_device *d = &j->devs[i];
        json_t *e = json_pack("{s:s, s:o, s:I, s:I, s:b}", "device_id", d->id, "name",
                              d->name[0] ? json_string(d->name) : json_null(), "created_at",
                              (json_int_t)d->created_at, "last_seen", (json_int_t)d->last_seen,
                              "current", strcmp(d->id, j->base.who.device_id) == 0);
        if (!e || json_array_append_new(arr, e) != 0)
            goto fail;
    }
    json_decref(arr);
    return o;
fail:
    json_decref(arr);
    json_decref(o);
    return NULL;
}

static void list_done(struct http_request *req, void *p)
{
    struct devices_job *j = p;
    if (j->err) {
        respond_failure(req, j->err);
    } else {
        json_t *o = devices_json(j);
        if (o)
            respond_json(req, 200, o);
        else
            respond_failure(req, PARLEY_ERR_NOMEM);
    }
    api_job_free(j);
}

static void list_authed(struct http_request *req, struct app *app, const struct auth_info *who,
                        void *arg)
{
    (void)arg;
    struct devices_job *j = api_job_new(req, sizeof *j, app, who, job_release);
    if (j)
        api_job_start(req, j, list_work, list_done);
}

static void h_list(struct http_request *req, void *ctx)
{
    auth_then(req, ctx, list_authed, NULL);
}

/* ---- DELETE /v1/devices/{id} ---- */

static void delete_work(void *p)
{
    struct devices_job *j = p;
    j->err = store_device_delete(j->base.app->store, j->base.who.user_id, j->target);
}

static void delete_done(struct http_request *req, void *p)
{
    struct devices_job *j = p;
    if (j->err == PARLEY_ERR_NOTFOUND) {
        http_respond_error(req, 404, "not_found", "no such device");
    } else if (j->err) {
        respond_failure(req, j->err);
    } else {
        accounts_log_event(LOG_INFO, "device_revoked", j->base.who.user_id, j->target,
                           strcmp(j->target, j->base.who.device_id) == 0 ? "self" : NULL);
        (void)stream_disconnect_device(j->base.app->stream, j->target); /* committed: P5 */
        respond_no_content(req);
    }
    api_job_free(j);
}

static void delete_authed(struct http_request *req, struct app *app, const struct auth_info *who,
                          void *arg)
{
    (void)arg;
    const char *id = req->n_params >= 1 ? req->params[0] : NULL;
    if (!store_id_valid(id)) {
        http_respond_error(req, 404, "not_found", "no such device");
        return;
    }
    struct devices_job *j = api_job_new(req, sizeof *j, app, who, job_release);
    if (!j)
        return;
    memcpy(j->target, id, STORE_ID_LEN + 1);
    api_job_start(req, j, delete_work, delete_done);
}

static void h_delete(struct http_request *req, void *ctx)
{
    auth_then(req, ctx, delete_authed, NULL);
}

enum parley_err devices_register_routes(struct http_server *srv, struct app *app)
{
    enum parley_err err = http_server_route(srv, "GET", "/v1/devices", h_list, app);
    if (!err)
        err = http_server_route(srv, "DELETE", "/v1/devices/{id}", h_delete, app);
    return err;
}
