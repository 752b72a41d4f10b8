/*
 * store.c — the backend-independent part of the store: the store_<noun>_<verb> wrappers
 * over struct store_ops and the id helpers. The wrappers check arguments the backends
 * may then rely on (non-NULL, ids well-formed), so every backend behaves the same on
 * bad input.
 */
#include "store.h"

#include <sodium.h>
#include <string.h>

void store_id_new(char out[STORE_ID_LEN + 1])
{
    unsigned char raw[STORE_ID_LEN / 2];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(out, STORE_ID_LEN + 1, raw, sizeof raw);
}

bool store_id_valid(const char *s)
{
    if (!s)
        return false;
    size_t i = 0;
    for (; s[i]; i++) {
        if (i >= STORE_ID_LEN)
            return false;
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return i == STORE_ID_LEN;
}

void store_close(struct store *s)
{
    if (s)
        s->ops->close(s);
}

enum parley_err store_user_create(struct store *s, const struct store_user *u)
{
    if (!s || !u || !store_id_valid(u->id) || !u->username[0])
        return PARLEY_ERR_INVAL;
    return s->ops->user_create(s, u);
}

enum parley_err store_user_get_by_id(struct store *s, const char *id, struct store_user *out)
{
    if (!s || !out || !id)
        return PARLEY_ERR_INVAL;
    if (!store_id_valid(id))
        return PARLEY_ERR_NOTFOUND;
    return s->ops->user_get_by_id(s, id, out);
}

enum parley_err store_user_get_by_username(struct store *s, const char *username,
                                           struct store_user *out)
{
    if (!s || !out || !username)
        return PARLEY_ERR_INVAL;
    if (!username[0] || strlen(username) > STORE_USERNAME_MAX)
        return PARLEY_ERR_NOTFOUND;
    return s->ops->user_get_by_username(s, username, out);
}

enum parley_err store_user_update_profile(struct store *s, const char *id,
                                          const struct store_profile_patch *p,
                                          struct store_user *out)
{
    if (!s || !id || !p)
        return PARLEY_ERR_INVAL;
    if (!store_id_valid(id))
        return PARLEY_ERR_NOTFOUND;
    return s->ops->user_update_profile(s, id, p, out);
}

enum parley_err store_session_create(struct store *s, const struct store_session_new *in,
                                     char device_id_out[STORE_ID_LEN + 1])
{
    if (!s || !in || !in->token_hash || !device_id_out || !in->user_id)
        return PARLEY_ERR_INVAL;
    if (in->device_name && strlen(in->device_name) > STORE_DEVICE_NAME_MAX)
        return PARLEY_ERR_INVAL;
    if (!store_id_valid(in->user_id))
        return PARLEY_ERR_NOTFOUND;
    return s->ops->session_create(s, in, device_id_out);
}

enum parley_err store_session_lookup(struct store *s, const uint8_t *token_hash, int64_t now,
                                     struct store_session *out)
{
    if (!s || !token_hash || !out)
        return PARLEY_ERR_INVAL;
    return s->ops->session_lookup(s, token_hash, now, out);
}

enum parley_err store_session_delete(struct store *s, const uint8_t *token_hash)
{
    if (!s || !token_hash)
        return PARLEY_ERR_INVAL;
    return s->ops->session_delete(s, token_hash);
}

enum parley_err store_session_purge_expired(struct store *s, int64_t now, size_t *n_out)
{
    if (!s)
        return PARLEY_ERR_INVAL;
    return s->ops->session_purge_expired(s, now, n_out);
}

enum parley_err store_device_list(struct store *s, const char *user_id, struct store_device **out,
                                  size_t *n_out)
{
    if (!s || !user_id || !out || !n_out)
        return PARLEY_ERR_INVAL;
    if (!store_id_valid(user_id)) {
        *out = NULL;
        *n_out = 0;
        return PARLEY_OK;
    }
    return s->ops->device_list(s, user_id, out, n_out);
}

enum parley_err store_device_delete(struct store *s, const char *user_id, const char *device_id)
{
    if (!s || !user_id || !device_id)
        return PARLEY_ERR_INVAL;
    if (!store_id_valid(user_id) || !store_id_valid(device_id))
        return PARLEY_ERR_NOTFOUND;
    return s->ops->device_delete(s, user_id, device_id);
}
