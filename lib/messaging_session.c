/*
 * messaging_session.c — pairwise sessions: X3DH as initiator from the server's key
 * bundles (first contact, new devices) or as responder from a prekey message, and the
 * Double Ratchet state of every peer device in the local store.
 *
 * Simultaneous start: both sides may start a session at the same time, so the current
 * session of a device (slot 0) keeps SESSION_ARCHIVE older ones; whichever decrypts
 * becomes current, and the two sides converge.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <sodium.h>

#include "messaging_int.h"

void session_key(char *out, size_t cap, const char *uid, const char *did)
{
    snprintf(out, cap, "%s/%s", uid, did);
}

/* Slot 0 is the current session of a device; 1..SESSION_ARCHIVE are older ones kept
 * because both sides may start a session at the same time (each sends a prekey message
 * before seeing the other's): a message for an archived session still decrypts, and
 * the session that last decrypted becomes current again, so the two sides converge. */
#define SESSION_ARCHIVE 4

static void slot_key(char *out, size_t cap, const char *uid, const char *did, int slot)
{
    if (slot == 0)
        session_key(out, cap, uid, did);
    else
        snprintf(out, cap, "%s/%s#%d", uid, did, slot);
}

/* Move the raw value of slot `from` to slot `to` (absent: `to` is deleted). */
static enum parley_err slot_move(struct parley_messenger *m, const char *uid, const char *did,
                                 int from, int to)
{
    char kf[2 * ID_MAX + 8], kt[2 * ID_MAX + 8];
    slot_key(kf, sizeof kf, uid, did, from);
    slot_key(kt, sizeof kt, uid, did, to);
    uint8_t *v = NULL;
    size_t n = 0;
    enum parley_err rc = local_store_get(m->ls, LS_SESSION, kf, &v, &n);
    if (rc == PARLEY_ERR_NOTFOUND)
        return local_store_del(m->ls, LS_SESSION, kt);
    if (!rc)
        rc = local_store_put(m->ls, LS_SESSION, kt, v, n);
    local_store_value_free(v, n);
    return rc;
}

static enum parley_err session_load_slot(struct parley_messenger *m, const char *uid,
                                         const char *did, int slot, struct parley_ratchet **out)
{
    char k[2 * ID_MAX + 8];
    slot_key(k, sizeof k, uid, did, slot);
    uint8_t *v = NULL;
    size_t n = 0;
    enum parley_err rc = local_store_get(m->ls, LS_SESSION, k, &v, &n);
    if (rc)
        return rc;
    rc = parley_ratchet_deserialize(out, v, n);
    local_store_value_free(v, n);
    return rc ? PARLEY_ERR_STORE : PARLEY_OK;
}

enum parley_err session_load(struct parley_messenger *m, const char *uid, const char *did,
                             struct parley_ratchet **out)
{
    return session_load_slot(m, uid, did, 0, out);
}

enum parley_err session_save(struct parley_messenger *m, const char *uid, const char *did,
                             const struct parley_ratchet *s)
{
    char k[2 * ID_MAX + 2];
    session_key(k, sizeof k, uid, did);
    size_t cap = parley_ratchet_serialized_len(s), n = 0;
    uint8_t *b = sodium_malloc(cap ? cap : 1);
    if (!b)
        return PARLEY_ERR_NOMEM;
    enum parley_err rc = parley_ratchet_serialize(s, b, cap, &n);
    if (!rc)
        rc = local_store_put(m->ls, LS_SESSION, k, b, n);
    sodium_free(b);
    return rc;
}

/* Store s as the current session after it decrypted from `slot` (0 current, k>0 an
 * archived one, -1 a new one from X3DH); the previous current one is archived. */
enum parley_err session_commit(struct parley_messenger *m, const char *uid, const char *did,
                               int slot, const struct parley_ratchet *s)
{
    enum parley_err rc = PARLEY_OK;
    if (slot > 0) {
        rc = slot_move(m, uid, did, 0, slot); /* swap: old current takes its place */
    } else if (slot < 0) {
        for (int k = SESSION_ARCHIVE - 1; k >= 0 && !rc; k--)
            rc = slot_move(m, uid, did, k, k + 1);
    }
    if (!rc)
        rc = session_save(m, uid, did, s);
    return rc;
}

enum parley_err session_drop(struct parley_messenger *m, const char *uid, const char *did)
{
    enum parley_err rc = PARLEY_OK;
    for (int k = 0; k <= SESSION_ARCHIVE && !rc; k++) {
        char key[2 * ID_MAX + 8];
        slot_key(key, sizeof key, uid, did, k);
        rc = local_store_del(m->ls, LS_SESSION, key);
    }
    return rc;
}

enum parley_err session_fetch_bundles(struct parley_messenger *m, const char *username,
                                      const char *device, json_t **out)
{
    char name[512], path[700];
    enum parley_err rc = client_path_segment(username, name, sizeof name);
    if (rc)
        return rc;
    if (device && !msg_id_ok(device)) {
        client_set_error(m->c, 0, NULL, "malformed device id from the server");
        return PARLEY_ERR_PROTO;
    }
    int n = snprintf(path, sizeof path, "/v1/keys/%s%s%s", name, device ? "?device=" : "",
                     device ? device : "");
    if (n < 0 || (size_t)n >= sizeof path)
        return PARLEY_ERR_LIMIT;
    int status = 0;
    rc = client_call(m->c, "GET", path, NULL, false, true, &status, out);
    if (rc == PARLEY_ERR_SERVER && status == 404)
        rc = PARLEY_ERR_NOTFOUND;
    if (!rc && (!*out || !json_is_string(json_object_get(*out, "user_id")) ||
                !json_is_array(json_object_get(*out, "devices")))) {
        json_decref(*out);
        *out = NULL;
        client_set_error(m->c, status, NULL, "malformed key bundle answer");
        rc = PARLEY_ERR_PROTO;
    }
    return rc;
}

static bool parse_bundle(json_t *d, struct parley_bundle *b)
{
    memset(b, 0, sizeof *b);
    json_t *spk = json_object_get(d, "signed_prekey");
    json_t *opk = json_object_get(d, "one_time_prekey");
    json_t *spk_id = json_object_get(spk, "id");
    if (!msg_unb64(b->identity_pk, sizeof b->identity_pk,
                   json_string_value(json_object_get(d, "identity_key"))) ||
        !json_is_integer(spk_id) || json_integer_value(spk_id) < 0 ||
        json_integer_value(spk_id) > UINT32_MAX ||
        !msg_unb64(b->spk_pk, sizeof b->spk_pk,
                   json_string_value(json_object_get(spk, "public_key"))) ||
        !msg_unb64(b->spk_sig, sizeof b->spk_sig,
                   json_string_value(json_object_get(spk, "signature"))))
        return false;
    b->spk_id = (uint32_t)json_integer_value(spk_id);
    if (json_is_object(opk)) {
        json_t *oid = json_object_get(opk, "id");
        if (!json_is_integer(oid) || json_integer_value(oid) < 0 ||
            json_integer_value(oid) > UINT32_MAX ||
            !msg_unb64(b->opk_pk, sizeof b->opk_pk,
                       json_string_value(json_object_get(opk, "public_key"))))
            return false;
        b->has_opk = true;
        b->opk_id = (uint32_t)json_integer_value(oid);
    }
    return true;
}

/* Start sessions (X3DH as initiator) with every device in a GET /v1/keys/... answer and
 * record them in the contact. Our own device is skipped. */
enum parley_err session_start_all(struct parley_messenger *m, json_t *ans, json_t *ct)
{
    const char *uid = json_string_value(json_object_get(ans, "user_id"));
    json_t *devs = json_object_get(ans, "devices");
    size_t i;
    json_t *d;
    unsigned lvl2 = local_store_depth(m->ls);
    enum parley_err rc = local_store_begin(m->ls);
    if (rc)
        return rc;
    json_array_foreach(devs, i, d)
    {
        const char *did = json_string_value(json_object_get(d, "device_id"));
        if (!msg_id_ok(did) || !msg_id_ok(uid)) {
            rc = PARLEY_ERR_PROTO;
            break;
        }
        if (strcmp(uid, parley_client_user_id(m->c)) == 0 &&
            strcmp(did, parley_client_device_id(m->c)) == 0)
            continue;
        struct parley_bundle b;
        struct parley_ratchet *s = NULL;
        if (!parse_bundle(d, &b)) {
            rc = PARLEY_ERR_PROTO;
            break;
        }
        rc = parley_x3dh_initiate(&s, m->id, &b);
        if (rc) {
            /* A bad signature: skip this device (the server will call it missing, and
             * the send fails rather than going to a forged key). */
            rc = PARLEY_OK;
            continue;
        }
        contact_note_identity(m, ct, did, b.identity_pk);
        rc = session_save(m, uid, did, s);
        parley_ratchet_free(s);
        if (rc)
            break;
    }
    if (!rc)
        rc = contact_save(m, ct);
    rc = local_store_end(m->ls, lvl2, rc);
    if (rc == PARLEY_ERR_PROTO)
        client_set_error(m->c, 0, NULL, "malformed key bundle from the server");
    return rc;
}

/* The contact for username, fetching keys and starting sessions on first contact. */
enum parley_err session_ensure_contact(struct parley_messenger *m, const char *username,
                                       json_t **out)
{
    enum parley_err rc = contact_by_name(m, username, out);
    if (rc != PARLEY_ERR_NOTFOUND)
        return rc;
    json_t *ans = NULL, *ct = NULL;
    rc = session_fetch_bundles(m, username, NULL, &ans);
    if (rc)
        return rc;
    const char *uid = json_string_value(json_object_get(ans, "user_id"));
    const char *name = json_string_value(json_object_get(ans, "username"));
    rc = contact_get(m, uid, &ct); /* known by id under another name (renamed)? */
    if (rc == PARLEY_ERR_NOTFOUND)
        rc = contact_new(uid, name ? name : username, &ct);
    if (!rc) {
        json_object_set_new(ct, "username", json_string(name ? name : username));
        rc = session_start_all(m, ans, ct);
    }
    json_decref(ans);
    if (rc) {
        json_decref(ct);
        return rc;
    }
    *out = ct;
    return PARLEY_OK;
}

/* Decrypt with the stored session or, for a prekey message, a new one from X3DH.
 * On success *sess is the advanced session and *used_opk the one-time prekey to delete
 * (0 = none). */
enum parley_err session_decrypt(struct parley_messenger *m, const Parley__Stream__Envelope *e,
                                const uint8_t *ctx, size_t ctx_len, struct parley_ratchet **sess,
                                int *slot, uint32_t *used_opk, uint8_t **pt, size_t *pt_len)
{
    uint8_t ad[200];
    size_t adl = payload_ad(ad, sizeof ad, e->sender_device, parley_client_device_id(m->c));
    size_t cap = ctx_len;
    uint8_t *out = sodium_malloc(cap ? cap : 1);
    struct parley_ratchet *s = NULL;
    enum parley_err rc = PARLEY_ERR_NOMEM;
    *used_opk = 0;
    if (!out || !adl)
        goto fail;
    for (int k = 0; k <= SESSION_ARCHIVE; k++) {
        rc = session_load_slot(m, e->sender_user, e->sender_device, k, &s);
        if (rc == PARLEY_ERR_NOTFOUND)
            continue;
        if (rc)
            goto fail;
        rc = parley_ratchet_decrypt(s, out, cap, pt_len, ctx, ctx_len, ad, adl);
        if (rc == PARLEY_OK) {
            *slot = k;
            goto done;
        }
        parley_ratchet_free(s);
        s = NULL;
    }
    *slot = -1;
    struct parley_x3dh_header hdr;
    rc = parley_ratchet_prekey_header(&hdr, ctx, ctx_len);
    if (rc)
        goto fail; /* not a prekey message and no working session */
    struct parley_signed_prekey *spk = sodium_malloc(sizeof *spk);
    struct parley_prekey *opk = sodium_malloc(sizeof *opk);
    rc = spk && opk ? keys_get_spk(m, hdr.spk_id, spk) : PARLEY_ERR_NOMEM;
    if (!rc && hdr.has_opk)
        rc = keys_get_opk(m, hdr.opk_id, opk);
    if (!rc)
        rc = parley_x3dh_respond(&s, m->id, spk, hdr.has_opk ? opk : NULL, &hdr);
    if (spk)
        sodium_free(spk);
    if (opk)
        sodium_free(opk);
    if (rc)
        goto fail;
    rc = parley_ratchet_decrypt(s, out, cap, pt_len, ctx, ctx_len, ad, adl);
    if (rc)
        goto fail;
    if (hdr.has_opk)
        *used_opk = hdr.opk_id;
done:
    *sess = s;
    *pt = out;
    return PARLEY_OK;
fail:
    parley_ratchet_free(s);
    if (out)
        sodium_free(out);
    return rc == PARLEY_ERR_NOMEM ? rc : PARLEY_ERR_CRYPTO;
}
