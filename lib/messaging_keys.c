/*
 * messaging_keys.c — this device's keys: the identity key, the signed prekey and the
 * one-time prekeys; their generation (a new device id means new keys), their upload
 * (PUT /v1/keys) and the top-up when the server's stock runs low.
 *
 * Invariant: one-time prekeys are stored locally before they are uploaded; the range
 * still to upload is kept in META (up_lo, up_hi) so a failed upload is retried by the
 * next open. A used one-time prekey is deleted in the transaction that stores the
 * message it decrypted (keys_drop_opk).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <sodium.h>

#include "messaging_int.h"

static enum parley_err load_identity(struct parley_messenger *m)
{
    uint8_t *v = NULL;
    size_t n = 0;
    enum parley_err rc = local_store_get(m->ls, LS_META, "identity", &v, &n);
    if (rc)
        return rc;
    rc = parley_identity_deserialize(m->id, v, n);
    local_store_value_free(v, n);
    return rc ? PARLEY_ERR_STORE : PARLEY_OK;
}

static enum parley_err put_spk(struct parley_messenger *m, const struct parley_signed_prekey *spk)
{
    uint8_t b[PARLEY_SIGNED_PREKEY_SERIALIZED_BYTES];
    enum parley_err rc = parley_signed_prekey_serialize(spk, b);
    char k[16];
    snprintf(k, sizeof k, "%u", spk->id);
    if (!rc)
        rc = local_store_put(m->ls, LS_SPK, k, b, sizeof b);
    sodium_memzero(b, sizeof b);
    return rc;
}

enum parley_err keys_get_spk(struct parley_messenger *m, uint32_t id,
                             struct parley_signed_prekey *spk)
{
    char k[16];
    snprintf(k, sizeof k, "%u", id);
    uint8_t *v = NULL;
    size_t n = 0;
    enum parley_err rc = local_store_get(m->ls, LS_SPK, k, &v, &n);
    if (rc)
        return rc;
    rc = parley_signed_prekey_deserialize(spk, v, n);
    local_store_value_free(v, n);
    return rc ? PARLEY_ERR_STORE : PARLEY_OK;
}

enum parley_err keys_get_opk(struct parley_messenger *m, uint32_t id, struct parley_prekey *opk)
{
    char k[16];
    snprintf(k, sizeof k, "%u", id);
    uint8_t *v = NULL;
    size_t n = 0;
    enum parley_err rc = local_store_get(m->ls, LS_PREKEY, k, &v, &n);
    if (rc)
        return rc;
    rc = parley_prekey_deserialize(opk, v, n);
    local_store_value_free(v, n);
    return rc ? PARLEY_ERR_STORE : PARLEY_OK;
}

/* Generate one-time prekeys next..next+count-1 and remember the range as "to upload". */
static enum parley_err gen_opks(struct parley_messenger *m, uint32_t count)
{
    uint32_t next = 1;
    enum parley_err rc = msg_meta_get_u32(m, "opk_next", &next);
    if (rc == PARLEY_ERR_NOTFOUND)
        rc = PARLEY_OK;
    if (rc)
        return rc;
    struct parley_prekey *opk = sodium_malloc(sizeof *opk);
    if (!opk)
        return PARLEY_ERR_NOMEM;
    for (uint32_t i = 0; i < count && !rc; i++) {
        uint8_t b[PARLEY_PREKEY_SERIALIZED_BYTES];
        char k[16];
        rc = parley_prekey_generate(opk, next + i);
        if (!rc)
            rc = parley_prekey_serialize(opk, b);
        snprintf(k, sizeof k, "%u", next + i);
        if (!rc)
            rc = local_store_put(m->ls, LS_PREKEY, k, b, sizeof b);
        sodium_memzero(b, sizeof b);
    }
    sodium_free(opk);
    if (!rc)
        rc = msg_meta_put_u32(m, "up_lo", next);
    if (!rc)
        rc = msg_meta_put_u32(m, "up_hi", next + count);
    if (!rc)
        rc = msg_meta_put_u32(m, "opk_next", next + count);
    return rc;
}

/* PUT /v1/keys with the identity, the current signed prekey and the pending one-time
 * prekeys. *stock and *low from the answer. */
static enum parley_err upload_keys(struct parley_messenger *m, unsigned *stock, bool *low)
{
    enum parley_err rc;
    uint32_t spk_id = 0, lo = 0, hi = 0;
    struct parley_signed_prekey *spk = sodium_malloc(sizeof *spk);
    struct parley_prekey *opk = sodium_malloc(sizeof *opk);
    json_t *body = NULL, *ans = NULL;
    char *s1 = NULL, *s2 = NULL, *s3 = NULL;
    if (!spk || !opk) {
        rc = PARLEY_ERR_NOMEM;
        goto out;
    }
    rc = msg_meta_get_u32(m, "spk_cur", &spk_id);
    if (!rc)
        rc = keys_get_spk(m, spk_id, spk);
    if (rc)
        goto out;
    if (msg_meta_get_u32(m, "up_lo", &lo) != PARLEY_OK ||
        msg_meta_get_u32(m, "up_hi", &hi) != PARLEY_OK)
        lo = hi = 0;
    if (hi < lo || hi - lo > PARLEY_PREKEY_BATCH)
        lo = hi = 0;
    s1 = msg_b64(m->id->pk, sizeof m->id->pk);
    s2 = msg_b64(spk->pk, sizeof spk->pk);
    s3 = msg_b64(spk->sig, sizeof spk->sig);
    json_t *list = json_array();
    body =
        json_pack("{s:s?, s:{s:I, s:s?, s:s?}, s:o}", "identity_key", s1, "signed_prekey", "id",
                  (json_int_t)spk->id, "public_key", s2, "signature", s3, "one_time_prekeys", list);
    if (!s1 || !s2 || !s3 || !body) {
        rc = PARLEY_ERR_NOMEM;
        goto out;
    }
    for (uint32_t i = lo; i < hi; i++) {
        if (keys_get_opk(m, i, opk) != PARLEY_OK)
            continue; /* already used */
        char *pk = msg_b64(opk->pk, sizeof opk->pk);
        if (!pk || json_array_append_new(
                       list, json_pack("{s:I, s:s}", "id", (json_int_t)i, "public_key", pk)) != 0) {
            free(pk);
            rc = PARLEY_ERR_NOMEM;
            goto out;
        }
        free(pk);
    }
    int status = 0;
    rc = client_call(m->c, "PUT", "/v1/keys", body, false, true, &status, &ans);
    if (rc)
        goto out;
    json_t *st = json_object_get(ans, "one_time_prekeys");
    if (!json_is_integer(st) || json_integer_value(st) < 0) {
        client_set_error(m->c, status, NULL, "malformed answer to PUT /v1/keys");
        rc = PARLEY_ERR_PROTO;
        goto out;
    }
    *stock = (unsigned)json_integer_value(st);
    *low = json_is_true(json_object_get(ans, "low"));
    rc = msg_meta_put_u32(m, "up_lo", 0);
    if (!rc)
        rc = msg_meta_put_u32(m, "up_hi", 0);
    if (!rc)
        rc = msg_meta_put_str(m, "uploaded", "1");
out:
    free(s1);
    free(s2);
    free(s3);
    json_decref(body);
    json_decref(ans);
    if (spk)
        sodium_free(spk);
    if (opk)
        sodium_free(opk);
    return rc;
}

/* Make sure the store holds keys for the client's current device; create them when
 * missing (a new device id means a new device: old keys and sessions are dropped). */
enum parley_err keys_ensure(struct parley_messenger *m, bool *fresh)
{
    char dev[ID_MAX + 1];
    const char *cur = parley_client_device_id(m->c);
    enum parley_err rc = msg_meta_get_str(m, "device", dev, sizeof dev);
    *fresh = false;
    if (rc && rc != PARLEY_ERR_NOTFOUND)
        return rc;
    if (rc == PARLEY_OK && strcmp(dev, cur) == 0) {
        rc = load_identity(m);
        if (rc != PARLEY_ERR_NOTFOUND)
            return rc;
    }
    /* New device: fresh keys. History and contacts stay (they belong to the user). */
    struct parley_signed_prekey *spk = sodium_malloc(sizeof *spk);
    if (!spk)
        return PARLEY_ERR_NOMEM;
    unsigned lvl0 = local_store_depth(m->ls);
    rc = local_store_begin(m->ls);
    if (rc)
        goto out;
    const enum ls_ns drop[] = {LS_PREKEY, LS_SPK, LS_SESSION, LS_SENDER_KEY};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0] && !rc; i++)
        rc = local_store_clear(m->ls, drop[i]);
    uint8_t ser[PARLEY_IDENTITY_SERIALIZED_BYTES];
    if (!rc)
        rc = parley_identity_keygen(m->id);
    if (!rc)
        rc = parley_identity_serialize(m->id, ser);
    if (!rc)
        rc = local_store_put(m->ls, LS_META, "identity", ser, sizeof ser);
    sodium_memzero(ser, sizeof ser);
    if (!rc)
        rc = parley_signed_prekey_generate(spk, m->id, 1);
    if (!rc)
        rc = put_spk(m, spk);
    if (!rc)
        rc = msg_meta_put_u32(m, "spk_cur", 1);
    if (!rc)
        rc = msg_meta_put_u32(m, "opk_next", 1);
    if (!rc)
        rc = gen_opks(m, PARLEY_PREKEY_BATCH);
    if (!rc)
        rc = msg_meta_put_str(m, "uploaded", "0");
    if (!rc)
        rc = msg_meta_put_str(m, "device", cur);
out:
    rc = local_store_end(m->ls, lvl0, rc);
    if (!rc)
        *fresh = true;
    sodium_free(spk);
    return rc;
}

enum parley_err parley_messenger_refill_keys(struct parley_messenger *m, unsigned *stock)
{
    if (!m)
        return PARLEY_ERR_INVAL;
    client_clear_error(m->c);
    unsigned have = 0;
    bool low = false;
    char up[4] = "";
    enum parley_err rc = msg_meta_get_str(m, "uploaded", up, sizeof up);
    if (rc == PARLEY_ERR_NOTFOUND || (rc == PARLEY_OK && strcmp(up, "1") != 0)) {
        rc = upload_keys(m, &have, &low);
    } else if (rc == PARLEY_OK) {
        json_t *ans = NULL;
        rc = client_call(m->c, "GET", "/v1/keys", NULL, false, true, NULL, &ans);
        json_t *st = json_object_get(ans, "one_time_prekeys");
        if (!rc && !json_is_integer(st)) {
            client_set_error(m->c, 200, NULL, "malformed answer to GET /v1/keys");
            rc = PARLEY_ERR_PROTO;
        }
        if (!rc) {
            json_int_t v = json_integer_value(st);
            have = v < 0 ? 0 : (unsigned)v;
            low = have < PARLEY_PREKEY_LOW;
        }
        json_decref(ans);
    }
    if (!rc && low) {
        unsigned lvl1 = local_store_depth(m->ls);
        rc = local_store_begin(m->ls);
        if (!rc)
            rc = gen_opks(m, PARLEY_PREKEY_BATCH);
        rc = local_store_end(m->ls, lvl1, rc);
        if (!rc)
            rc = upload_keys(m, &have, &low);
    }
    if (!rc && stock)
        *stock = have;
    return rc;
}

enum parley_err keys_drop_opk(struct parley_messenger *m, uint32_t id)
{
    if (id == 0)
        return PARLEY_OK;
    char k[16];
    snprintf(k, sizeof k, "%u", id);
    return local_store_del(m->ls, LS_PREKEY, k);
}
