/*
 * messaging_contacts.c — contact records in the local store
 * ({"user_id","username","devices":{device_id: identity key},"changed"}), trust on
 * first use of device identity keys, and safety numbers over a user's device keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <sodium.h>

#include "messaging_int.h"

/* Contact record: {"user_id","username","devices":{device_id: ik_b64},"changed":bool}. */
enum parley_err contact_get(struct parley_messenger *m, const char *uid, json_t **out)
{
    return msg_json_get(m, LS_CONTACT, uid, out);
}

enum parley_err contact_by_name(struct parley_messenger *m, const char *username, json_t **out)
{
    char uid[ID_MAX + 1];
    uint8_t *v = NULL;
    size_t n = 0;
    enum parley_err rc = local_store_get(m->ls, LS_USERNAME, username, &v, &n);
    if (rc)
        return rc;
    if (n > ID_MAX) {
        local_store_value_free(v, n);
        return PARLEY_ERR_STORE;
    }
    memcpy(uid, v, n);
    uid[n] = 0;
    local_store_value_free(v, n);
    return contact_get(m, uid, out);
}

enum parley_err contact_new(const char *uid, const char *username, json_t **out)
{
    *out = json_pack("{s:s, s:s, s:{}, s:b}", "user_id", uid, "username", username ? username : "",
                     "devices", "changed", 0);
    return *out ? PARLEY_OK : PARLEY_ERR_NOMEM;
}

enum parley_err contact_save(struct parley_messenger *m, json_t *ct)
{
    const char *uid = json_string_value(json_object_get(ct, "user_id"));
    const char *name = json_string_value(json_object_get(ct, "username"));
    if (!uid)
        return PARLEY_ERR_INVAL;
    enum parley_err rc = msg_json_put(m, LS_CONTACT, uid, ct);
    if (!rc && name && *name)
        rc = local_store_put(m->ls, LS_USERNAME, name, uid, strlen(uid));
    return rc;
}

/* The contact record for uid, or a new one (username may be NULL). */
enum parley_err contact_or_new(struct parley_messenger *m, const char *uid, const char *username,
                               json_t **out)
{
    enum parley_err rc = contact_get(m, uid, out);
    if (rc == PARLEY_ERR_NOTFOUND)
        rc = contact_new(uid, username, out);
    else if (!rc && username && *username)
        json_object_set_new(*out, "username", json_string(username));
    return rc;
}

/* Record the identity key of (contact, device). Trust on first use: a different key for
 * a known device sets "changed" and queues an IDENTITY_CHANGED event. */

void contact_note_identity(struct parley_messenger *m, json_t *ct, const char *did,
                           const uint8_t ik[PARLEY_IDENTITY_PUBLIC_BYTES])
{
    json_t *devs = json_object_get(ct, "devices");
    if (!json_is_object(devs)) {
        devs = json_object();
        json_object_set_new(ct, "devices", devs);
    }
    char *k = msg_b64(ik, PARLEY_IDENTITY_PUBLIC_BYTES);
    if (!k)
        return;
    const char *old = json_string_value(json_object_get(devs, did));
    if (old && strcmp(old, k) != 0) {
        json_object_set_new(ct, "changed", json_true());
        struct event_node *n = calloc(1, sizeof *n);
        if (n) {
            n->ev.kind = PARLEY_EVENT_IDENTITY_CHANGED;
            bool ok = true;
            n->ev.from_user_id =
                client_strdup(json_string_value(json_object_get(ct, "user_id")), &ok);
            n->ev.from_username =
                client_strdup(json_string_value(json_object_get(ct, "username")), &ok);
            n->ev.peer_username = client_strdup(n->ev.from_username, &ok);
            n->ev.from_device = client_strdup(did, &ok);
            recv_push_event(m, n);
        }
    }
    json_object_set_new(devs, did, json_string(k));
    free(k);
}

/* ------------------------------------------------------------------ safety numbers */

void parley_contact_info_cleanup(struct parley_contact_info *ci)
{
    if (!ci)
        return;
    free(ci->user_id);
    free(ci->username);
    memset(ci, 0, sizeof *ci);
}

static int cmp_key(const void *a, const void *b)
{
    return memcmp(a, b, PARLEY_IDENTITY_PUBLIC_BYTES);
}

/* One 32-byte fingerprint key for a user's set of device identity keys (sorted, so both
 * sides get the same value for the same set). extra: one more key (ours) or NULL. */
static enum parley_err user_key(json_t *ct, const uint8_t *extra, uint8_t out[32], size_t *ndev)
{
    json_t *devs = json_object_get(ct, "devices");
    size_t n = json_object_size(devs) + (extra ? 1 : 0);
    if (n == 0)
        return PARLEY_ERR_NOTFOUND;
    uint8_t(*keys)[PARLEY_IDENTITY_PUBLIC_BYTES] = calloc(n, PARLEY_IDENTITY_PUBLIC_BYTES);
    if (!keys)
        return PARLEY_ERR_NOMEM;
    size_t i = 0;
    const char *did;
    json_t *v;
    json_object_foreach(devs, did, v)
    {
        if (msg_unb64(keys[i], PARLEY_IDENTITY_PUBLIC_BYTES, json_string_value(v)))
            i++;
    }
    if (extra)
        memcpy(keys[i++], extra, PARLEY_IDENTITY_PUBLIC_BYTES);
    qsort(keys, i, PARLEY_IDENTITY_PUBLIC_BYTES, cmp_key);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)"parley-safety-v1", 16);
    crypto_generichash_update(&st, (const uint8_t *)keys, i * PARLEY_IDENTITY_PUBLIC_BYTES);
    crypto_generichash_final(&st, out, 32);
    free(keys);
    *ndev = i;
    return PARLEY_OK;
}

enum parley_err parley_messenger_safety_number(struct parley_messenger *m, const char *username,
                                               bool accept_changes,
                                               char out[PARLEY_SAFETY_NUMBER_TEXT_BYTES],
                                               struct parley_contact_info *info)
{
    if (!m || !username || !out)
        return PARLEY_ERR_INVAL;
    client_clear_error(m->c);
    out[0] = 0;
    json_t *peer = NULL, *self = NULL;
    enum parley_err rc = session_ensure_contact(m, username, &peer);
    if (rc) {
        if (rc == PARLEY_ERR_NOTFOUND)
            client_set_error(m->c, 404, "no_keys", "%s has no device keys", username);
        return rc;
    }
    rc = contact_or_new(m, parley_client_user_id(m->c), parley_client_username(m->c), &self);
    uint8_t kp[32], ks[32];
    size_t np = 0, ns = 0;
    const char *puid = json_string_value(json_object_get(peer, "user_id"));
    const char *suid = parley_client_user_id(m->c);
    if (!rc)
        rc = user_key(peer, NULL, kp, &np);
    if (!rc)
        rc = user_key(self, m->id->pk, ks, &ns);
    if (!rc)
        rc = parley_safety_number(out, ks, (const uint8_t *)suid, strlen(suid), kp,
                                  (const uint8_t *)puid, strlen(puid));
    if (!rc && info) {
        bool ok = true;
        info->user_id = client_strdup(puid, &ok);
        info->username = client_strdup(json_string_value(json_object_get(peer, "username")), &ok);
        info->devices = np;
        info->identity_changed = json_is_true(json_object_get(peer, "changed"));
        if (!ok) {
            parley_contact_info_cleanup(info);
            rc = PARLEY_ERR_NOMEM;
        }
    }
    if (!rc && accept_changes && json_is_true(json_object_get(peer, "changed"))) {
        json_object_set_new(peer, "changed", json_false());
        rc = contact_save(m, peer);
    }
    json_decref(peer);
    json_decref(self);
    return rc;
}
