/*
 * keys.c — PUT /v1/keys (upload the caller device's public identity key, signed prekey
 * and one-time prekeys), GET /v1/keys (the device's one-time prekey stock) and
 * GET /v1/keys/{username}[?device=ID] (prekey bundles of another user's devices).
 *
 * Order of checks for an upload: body shape and encodings on the loop thread; on the
 * thread pool, the identity key (must map to X25519), the signed-prekey signature
 * (parley_bundle_verify), the X25519 keys (no small-order points), then the store,
 * which refuses a changed identity key and a stock above STORE_ONETIME_STOCK_MAX
 * atomically. Nothing is stored unless every check passed.
 *
 * A fetch consumes one one-time prekey per returned device in the store's transaction,
 * so concurrent fetches never get the same prekey. Fetches are rate limited per
 * requesting device (app->rl_key_fetch), charged before the lookup so that unknown
 * usernames cost the same as known ones; an unknown user and a user without keyed
 * devices give the same 404 no_keys.
 */
#include "keys.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts_validate.h"
#include "app.h"
#include "auth.h"
#include "body.h"
#include "clock.h"
#include "http_server.h"
#include "job.h"
#include "parley/x3dh.h"
#include "ratelimit.h"
#include "respond.h"
#include "store/store.h"

struct keys_job {
    struct api_job base; /* app, who */
    enum parley_err err;
    /* PUT: the decoded upload; bad_code set by the checks on the thread pool */
    struct store_keys_upload up;
    struct store_prekey_pub opks[STORE_ONETIME_PER_UPLOAD];
    const char *bad_code;
    const char *bad_msg;
    size_t stock;
    /* GET /v1/keys/{username} */
    char username[ACCOUNTS_USERNAME_MAX + 1];
    char device[STORE_ID_LEN + 1]; /* "" = every device */
    struct store_user user;        /* holds a password hash: wiped on free */
    struct store_bundle *bundles;
    size_t n_bundles;
};

static void job_release(void *p)
{
    struct keys_job *j = p;
    free(j->bundles);
    sodium_memzero(j, sizeof *j);
    free(j);
}

static json_t *stock_json(size_t stock)
{
    return json_pack("{s:I, s:b}", "one_time_prekeys", (json_int_t)stock, "low",
                     stock < KEYS_LOW_STOCK);
}

/* ---- PUT /v1/keys ---- */

/* Shape and encodings of the upload body into j->up. */
static enum parley_err decode_upload(const struct http_request *req, struct keys_job *j,
                                     struct json_input_error *err)
{
    static const struct body_field top[] = {
        {"identity_key", BODY_STRING, true},
        {"signed_prekey", BODY_OBJECT, false},
        {"one_time_prekeys", BODY_ARRAY, false},
    };
    static const struct body_field spk_fields[] = {
        {"id", BODY_U32, true},
        {"public_key", BODY_STRING, true},
        {"signature", BODY_STRING, true},
    };
    static const struct body_field opk_fields[] = {
        {"id", BODY_U32, true},
        {"public_key", BODY_STRING, true},
    };
    json_t *root = NULL, *v[3], *s[3], *o[2], *e;
    size_t i;
    enum parley_err rc = body_parse(req->body, req->body_len, &root, err);

    if (rc)
        return rc;
    if ((rc = body_fields(root, NULL, top, 3, v, err)))
        goto out;
    rc = PARLEY_ERR_INVAL;
    if (!body_b64_exact(v[0], j->up.identity_key, STORE_KEY_BYTES)) {
        body_error(err, "invalid_key", "identity_key must be 32 bytes in unpadded base64url");
        goto out;
    }
    if (v[1]) {
        if (body_fields(v[1], "signed_prekey", spk_fields, 3, s, err))
            goto out;
        j->up.has_signed_prekey = true;
        j->up.spk_id = (uint32_t)json_integer_value(s[0]);
        if (!body_b64_exact(s[1], j->up.spk, STORE_KEY_BYTES)) {
            body_error(err, "invalid_key",
                       "signed_prekey.public_key must be 32 bytes in unpadded base64url");
            goto out;
        }
        if (!body_b64_exact(s[2], j->up.spk_sig, STORE_SIG_BYTES)) {
            body_error(err, "invalid_signature",
                       "signed_prekey.signature must be 64 bytes in unpadded base64url");
            goto out;
        }
    }
    if (v[2]) {
        if (json_array_size(v[2]) > STORE_ONETIME_PER_UPLOAD) {
            body_error(err, "too_many_prekeys", "at most %u one-time prekeys per upload",
                       (unsigned)STORE_ONETIME_PER_UPLOAD);
            goto out;
        }
        json_array_foreach(v[2], i, e)
        {
            if (body_fields(e, "one_time_prekeys[]", opk_fields, 2, o, err))
                goto out;
            j->opks[i].id = (uint32_t)json_integer_value(o[0]);
            if (!body_b64_exact(o[1], j->opks[i].pk, STORE_KEY_BYTES)) {
                body_error(err, "invalid_key",
                           "one_time_prekeys[%zu].public_key must be 32 bytes in unpadded "
                           "base64url",
                           i);
                goto out;
            }
            for (size_t k = 0; k < i; k++) {
                if (j->opks[k].id == j->opks[i].id) {
                    body_error(err, "duplicate_prekey_id", "one-time prekey id %lu appears twice",
                               (unsigned long)j->opks[i].id);
                    goto out;
                }
            }
        }
        j->up.n_onetime = json_array_size(v[2]);
    }
    rc = PARLEY_OK;
out:
    json_decref(root);
    return rc;
}

/* An X25519 public key the initiator can use: not of small order (the DH result with
 * any clamped scalar would be all zeros, which libsodium refuses). */
static bool x25519_usable(const uint8_t pk[STORE_KEY_BYTES])
{
    static const uint8_t scalar[crypto_scalarmult_SCALARBYTES] = {
        0x58, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
        0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
        0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x5f};
    uint8_t q[crypto_scalarmult_BYTES];
    return crypto_scalarmult(q, scalar, pk) == 0;
}

/* The cryptographic checks; sets j->bad_code and returns false on a bad key. */
static bool check_keys(struct keys_job *j)
{
    struct parley_bundle b;
    uint8_t wire[PARLEY_BUNDLE_MAX_BYTES];
    size_t len = 0;

    memset(&b, 0, sizeof b);
    memcpy(b.identity_pk, j->up.identity_key, STORE_KEY_BYTES);
    if (j->up.has_signed_prekey) {
        b.spk_id = j->up.spk_id;
        memcpy(b.spk_pk, j->up.spk, STORE_KEY_BYTES);
        memcpy(b.spk_sig, j->up.spk_sig, STORE_SIG_BYTES);
    }
    /* The bundle parser is the one place that decides whether an identity key is
     * acceptable (an Ed25519 point that maps to X25519). */
    if (parley_bundle_serialize(&b, wire, sizeof wire, &len) != PARLEY_OK ||
        parley_bundle_parse(&b, wire, len) != PARLEY_OK) {
        j->bad_code = "invalid_key";
        j->bad_msg = "identity_key is not a valid Ed25519 public key";
        return false;
    }
    if (j->up.has_signed_prekey) {
        if (!x25519_usable(j->up.spk)) {
            j->bad_code = "invalid_key";
            j->bad_msg = "signed_prekey.public_key is not a usable X25519 public key";
            return false;
        }
        if (parley_bundle_verify(&b) != PARLEY_OK) {
            j->bad_code = "invalid_signature";
            j->bad_msg = "signed_prekey.signature does not verify with identity_key";
            return false;
        }
    }
    for (size_t i = 0; i < j->up.n_onetime; i++) {
        if (!x25519_usable(j->opks[i].pk)) {
            j->bad_code = "invalid_key";
            j->bad_msg = "a one-time prekey is not a usable X25519 public key";
            return false;
        }
    }
    return true;
}

static void put_work(void *p)
{
    struct keys_job *j = p;

    if (!check_keys(j))
        return;
    j->up.user_id = j->base.who.user_id;
    j->up.device_id = j->base.who.device_id;
    j->up.onetime = j->opks;
    j->up.now = clock_now_s();
    j->err = store_keys_put(j->base.app->store, &j->up, &j->stock);
}

static void put_done(struct http_request *req, void *p)
{
    struct keys_job *j = p;

    if (j->bad_code)
        http_respond_error(req, 400, j->bad_code, j->bad_msg);
    else if (j->err == PARLEY_ERR_EXISTS)
        http_respond_error(req, 409, "identity_changed",
                           "this device already has another identity key; a new identity "
                           "needs a new device (log in again)");
    else if (j->err == PARLEY_ERR_LIMIT)
        http_respond_error(req, 409, "prekey_stock_full",
                           "the device would hold more one-time prekeys than allowed");
    else if (j->err == PARLEY_ERR_INVAL)
        http_respond_error(req, 400, "missing_signed_prekey",
                           "the first upload of a device needs a signed_prekey");
    else if (j->err == PARLEY_ERR_NOTFOUND) /* the device was revoked meanwhile */
        http_respond_error(req, 401, "unauthorized", "unknown or expired session");
    else if (j->err)
        respond_failure(req, j->err);
    else
        respond_json(req, 200, stock_json(j->stock));
    api_job_free(j);
}

static void put_authed(struct http_request *req, struct app *app, const struct auth_info *who,
                       void *arg)
{
    struct json_input_error ierr;
    enum parley_err err;
    struct keys_job *j = api_job_new(req, sizeof *j, app, who, job_release);

    (void)arg;
    if (!j)
        return;
    err = decode_upload(req, j, &ierr);
    if (err) {
        respond_decode_failure(req, err, &ierr);
        api_job_free(j);
        return;
    }
    api_job_start(req, j, put_work, put_done);
}

static void h_put(struct http_request *req, void *ctx)
{
    auth_then(req, ctx, put_authed, NULL);
}

/* ---- GET /v1/keys ---- */

static void stock_work(void *p)
{
    struct keys_job *j = p;
    j->err = store_keys_stock(j->base.app->store, j->base.who.device_id, &j->stock);
}

static void stock_done(struct http_request *req, void *p)
{
    struct keys_job *j = p;
    if (j->err)
        respond_failure(req, j->err);
    else
        respond_json(req, 200, stock_json(j->stock));
    api_job_free(j);
}

static void stock_authed(struct http_request *req, struct app *app, const struct auth_info *who,
                         void *arg)
{
    struct keys_job *j = api_job_new(req, sizeof *j, app, who, job_release);
    (void)arg;
    if (j)
        api_job_start(req, j, stock_work, stock_done);
}

static void h_stock(struct http_request *req, void *ctx)
{
    auth_then(req, ctx, stock_authed, NULL);
}

/* ---- GET /v1/keys/{username} ---- */

static void fetch_work(void *p)
{
    struct keys_job *j = p;

    j->err = store_user_get_by_username(j->base.app->store, j->username, &j->user);
    if (j->err)
        return;
    /* The asking device is never sent its own bundle (nor uses up its prekeys). */
    j->err =
        store_keys_take_bundles(j->base.app->store, j->user.id, j->device[0] ? j->device : NULL,
                                j->base.who.device_id, &j->bundles, &j->n_bundles);
}

static json_t *bundle_json(const struct store_bundle *b)
{
    json_t *opk = json_null();

    if (b->has_opk)
        opk = json_pack("{s:I, s:o}", "id", (json_int_t)b->opk_id, "public_key",
                        body_b64_json(b->opk, STORE_KEY_BYTES));
    return json_pack("{s:s, s:o, s:{s:I, s:o, s:o}, s:o}", "device_id", b->device_id,
                     "identity_key", body_b64_json(b->identity_key, STORE_KEY_BYTES),
                     "signed_prekey", "id", (json_int_t)b->spk_id, "public_key",
                     body_b64_json(b->spk, STORE_KEY_BYTES), "signature",
                     body_b64_json(b->spk_sig, STORE_SIG_BYTES), "one_time_prekey", opk);
}

static json_t *fetch_json(const struct keys_job *j)
{
    json_t *devs = json_array();
    json_t *o = json_pack("{s:s, s:s, s:O}", "user_id", j->user.id, "username", j->user.username,
                          "devices", devs);
    if (!devs || !o)
        goto fail;
    for (size_t i = 0; i < j->n_bundles; i++)
        if (json_array_append_new(devs, bundle_json(&j->bundles[i])) != 0)
            goto fail;
    json_decref(devs);
    return o;
fail:
    json_decref(devs);
    json_decref(o);
    return NULL;
}

static void fetch_done(struct http_request *req, void *p)
{
    struct keys_job *j = p;
    if (j->err == PARLEY_ERR_NOTFOUND) {
        http_respond_error(req, 404, "no_keys", "no keys for this user or device");
    } else if (j->err) {
        respond_failure(req, j->err);
    } else {
        json_t *o = fetch_json(j);
        if (o)
            respond_json(req, 200, o);
        else
            respond_failure(req, PARLEY_ERR_NOMEM);
    }
    api_job_free(j);
}

/* The query: nothing, or exactly "device=<id>". 0, or -1 (unknown parameter) or -2 (bad
 * device id). */
static int parse_fetch_query(const char *q, char device[STORE_ID_LEN + 1])
{
    static const char key[] = "device=";

    device[0] = '\0';
    if (!q || !q[0])
        return 0;
    if (strncmp(q, key, sizeof key - 1) != 0 || strchr(q, '&'))
        return -1;
    q += sizeof key - 1;
    if (!store_id_valid(q))
        return -2;
    memcpy(device, q, STORE_ID_LEN + 1);
    return 0;
}

static void fetch_authed(struct http_request *req, struct app *app, const struct auth_info *who,
                         void *arg)
{
    const char *name = req->n_params >= 1 ? req->params[0] : NULL;
    char device[STORE_ID_LEN + 1];
    uint32_t retry = 0;
    struct keys_job *j;
    int q;

    (void)arg;
    q = parse_fetch_query(req->query, device);
    if (q == -1) {
        http_respond_error(req, 400, "unknown_parameter", "the only query parameter is device");
        return;
    }
    if (q == -2) {
        http_respond_error(req, 400, "invalid_device", "device must be a device id");
        return;
    }
    /* Charged before the lookup: probing unknown usernames costs the same. */
    if (!ratelimit_take(app->rl_key_fetch, who->device_id, &retry)) {
        respond_rate_limited(req, retry);
        return;
    }
    if (!name || !accounts_validate_username(name, strlen(name))) {
        http_respond_error(req, 404, "no_keys", "no keys for this user or device");
        return;
    }
    j = api_job_new(req, sizeof *j, app, who, job_release);
    if (!j)
        return;
    snprintf(j->username, sizeof j->username, "%s", name);
    memcpy(j->device, device, sizeof device);
    api_job_start(req, j, fetch_work, fetch_done);
}

static void h_fetch(struct http_request *req, void *ctx)
{
    auth_then(req, ctx, fetch_authed, NULL);
}

enum parley_err keys_register_routes(struct http_server *srv, struct app *app)
{
    enum parley_err err = http_server_route(srv, "PUT", "/v1/keys", h_put, app);
    if (!err)
        err = http_server_route(srv, "GET", "/v1/keys", h_stock, app);
    if (!err)
        err = http_server_route(srv, "GET", "/v1/keys/{username}", h_fetch, app);
    return err;
}
