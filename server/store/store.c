/*
 * store.c — the backend-independent part of the store: the store_<noun>_<verb> wrappers
 * over struct store_ops and the id helpers. The wrappers check arguments the backends
 * may then rely on (non-NULL, ids well-formed, counts within the STORE_* limits), so
 * every backend behaves the same on bad input. A malformed id that names something to
 * look up reads as "not found" (NOTFOUND, or an empty result), as it would for a
 * well-formed id nobody has.
 */
#include "store.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "str.h"

void store_id_new(char out[STORE_ID_LEN + 1])
{
    unsigned char raw[STORE_ID_LEN / 2];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(out, STORE_ID_LEN + 1, raw, sizeof raw);
}

bool store_id_valid(const char *s)
{
    return str_is_hex_id(s, STORE_ID_LEN);
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

enum parley_err store_user_delete(struct store *s, const char *user_id)
{
    if (!s || !user_id)
        return PARLEY_ERR_INVAL;
    if (!store_id_valid(user_id))
        return PARLEY_ERR_NOTFOUND;
    return s->ops->user_delete(s, user_id);
}

enum parley_err store_user_rows(struct store *s, const char *sql, const char *user_id,
                                store_row_fn fn, void *ctx)
{
    if (!s || !sql || !user_id || !fn)
        return PARLEY_ERR_INVAL;
    if (!store_id_valid(user_id))
        return PARLEY_ERR_NOTFOUND;
    return s->ops->user_rows(s, sql, user_id, fn, ctx);
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

/* ---- keys ---- */

enum parley_err store_keys_put(struct store *s, const struct store_keys_upload *in,
                               size_t *stock_out)
{
    if (!s || !in || !in->user_id || !in->device_id)
        return PARLEY_ERR_INVAL;
    if (in->n_onetime > 0 && !in->onetime)
        return PARLEY_ERR_INVAL;
    if (in->n_onetime > STORE_ONETIME_PER_UPLOAD)
        return PARLEY_ERR_LIMIT;
    if (!store_id_valid(in->user_id) || !store_id_valid(in->device_id))
        return PARLEY_ERR_NOTFOUND;
    return s->ops->keys_put(s, in, stock_out);
}

enum parley_err store_keys_take_bundles(struct store *s, const char *user_id, const char *device_id,
                                        const char *except_device, struct store_bundle **out,
                                        size_t *n_out)
{
    if (!s || !user_id || !out || !n_out)
        return PARLEY_ERR_INVAL;
    if (except_device && !store_id_valid(except_device))
        return PARLEY_ERR_INVAL;
    if (!store_id_valid(user_id) || (device_id && !store_id_valid(device_id)))
        return PARLEY_ERR_NOTFOUND;
    return s->ops->keys_take_bundles(s, user_id, device_id, except_device, out, n_out);
}

enum parley_err store_keys_stock(struct store *s, const char *device_id, size_t *n_out)
{
    if (!s || !device_id || !n_out)
        return PARLEY_ERR_INVAL;
    if (!store_id_valid(device_id)) {
        *n_out = 0;
        return PARLEY_OK;
    }
    return s->ops->keys_stock(s, device_id, n_out);
}

enum parley_err store_keyed_devices(struct store *s, const char *user_id,
                                    struct store_user_device **out, size_t *n_out)
{
    if (!s || !user_id || !out || !n_out)
        return PARLEY_ERR_INVAL;
    if (!store_id_valid(user_id)) {
        *out = NULL;
        *n_out = 0;
        return PARLEY_OK;
    }
    return s->ops->keyed_devices(s, user_id, out, n_out);
}

/* ---- groups ---- */

enum parley_err store_group_create(struct store *s, const struct store_group *g,
                                   const struct store_group_member *members, size_t n)
{
    if (!s || !g || !members || n == 0 || !store_id_valid(g->id))
        return PARLEY_ERR_INVAL;
    if (strnlen(g->name, sizeof g->name) > STORE_GROUP_NAME_MAX)
        return PARLEY_ERR_INVAL;
    if (n > STORE_GROUP_MEMBERS_MAX)
        return PARLEY_ERR_LIMIT;
    for (size_t i = 0; i < n; i++) {
        if (!store_id_valid(members[i].user_id))
            return PARLEY_ERR_NOTFOUND;
        for (size_t j = 0; j < i; j++) /* n <= 256: quadratic is fine */
            if (strcmp(members[i].user_id, members[j].user_id) == 0)
                return PARLEY_ERR_INVAL;
    }
    return s->ops->group_create(s, g, members, n);
}

enum parley_err store_group_get(struct store *s, const char *group_id, struct store_group *out,
                                struct store_group_member **members, size_t *n_members)
{
    if (!s || !group_id || !out || (members && !n_members))
        return PARLEY_ERR_INVAL;
    if (!store_id_valid(group_id))
        return PARLEY_ERR_NOTFOUND;
    return s->ops->group_get(s, group_id, out, members, n_members);
}

enum parley_err store_group_list(struct store *s, const char *user_id, struct store_group **out,
                                 size_t *n_out)
{
    if (!s || !user_id || !out || !n_out)
        return PARLEY_ERR_INVAL;
    if (!store_id_valid(user_id)) {
        *out = NULL;
        *n_out = 0;
        return PARLEY_OK;
    }
    return s->ops->group_list(s, user_id, out, n_out);
}

enum parley_err store_group_member_set(struct store *s, const char *group_id,
                                       const struct store_group_member *m, int64_t now)
{
    if (!s || !group_id || !m)
        return PARLEY_ERR_INVAL;
    if (!store_id_valid(group_id) || !store_id_valid(m->user_id))
        return PARLEY_ERR_NOTFOUND;
    return s->ops->group_member_set(s, group_id, m, now);
}

enum parley_err store_group_member_remove(struct store *s, const char *group_id,
                                          const char *user_id, int64_t now)
{
    if (!s || !group_id || !user_id)
        return PARLEY_ERR_INVAL;
    if (!store_id_valid(group_id) || !store_id_valid(user_id))
        return PARLEY_ERR_NOTFOUND;
    return s->ops->group_member_remove(s, group_id, user_id, now);
}

enum parley_err store_group_rename(struct store *s, const char *group_id, const char *name,
                                   int64_t now)
{
    if (!s || !group_id || !name)
        return PARLEY_ERR_INVAL;
    if (strnlen(name, STORE_GROUP_NAME_MAX + 1) > STORE_GROUP_NAME_MAX)
        return PARLEY_ERR_INVAL;
    if (!store_id_valid(group_id))
        return PARLEY_ERR_NOTFOUND;
    return s->ops->group_rename(s, group_id, name, now);
}

/* ---- queue ---- */

void store_envelopes_free(struct store_envelope *e, size_t n)
{
    if (!e)
        return;
    for (size_t i = 0; i < n; i++)
        free(e[i].body);
    free(e);
}

void store_queue_op_cleanup(struct store_queue_op *op)
{
    if (!op || op->kind != STORE_QOP_SEND)
        return;
    free(op->u.send.missing);
    free(op->u.send.extra);
    op->u.send.missing = op->u.send.extra = NULL;
    op->u.send.n_missing = op->u.send.n_extra = 0;
}

/* A send the backend can rely on: ids well-formed (the API layer produced or validated
 * them, so a bad one is a caller bug and fails the batch with INVAL), exactly one target,
 * copies present. An unknown target is not an argument error: it is NO_TARGET, per op. */
static bool send_valid(const struct store_queue_send *q, int64_t now)
{
    if (!store_id_valid(q->sender_user) || !store_id_valid(q->sender_device))
        return false;
    if ((q->to_user == NULL) == (q->group_id == NULL))
        return false;
    if (q->n_copies > 0 && !q->copies)
        return false;
    if (q->expires_at <= now || q->max_queue == 0)
        return false;
    for (size_t i = 0; i < q->n_copies; i++) {
        const struct store_copy *c = &q->copies[i];
        if (!store_id_valid(c->device_id) || (c->body_len > 0 && !c->body && !c->hold))
            return false;
    }
    return true;
}

/* A held copy to write: its id given out earlier, a message with its routing fields. */
static bool put_valid(const struct store_envelope *e)
{
    return e && e->id > 0 && e->id <= (uint64_t)INT64_MAX && e->kind == STORE_ENV_MESSAGE &&
           store_id_valid(e->device_id) && store_id_valid(e->user_id) &&
           store_id_valid(e->sender_user) && store_id_valid(e->sender_device) &&
           (e->body || e->body_len == 0);
}

enum parley_err store_queue_apply(struct store *s, struct store_queue_op *ops, size_t n,
                                  int64_t now)
{
    if (!s || (n > 0 && !ops))
        return PARLEY_ERR_INVAL;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind == STORE_QOP_SEND) {
            ops[i].u.send.missing = ops[i].u.send.extra = NULL;
            ops[i].u.send.n_missing = ops[i].u.send.n_extra = 0;
            if (!send_valid(&ops[i].u.send, now))
                return PARLEY_ERR_INVAL;
        } else if (ops[i].kind == STORE_QOP_ACK) {
            const struct store_queue_ack *a = &ops[i].u.ack;
            if (!store_id_valid(a->device_id) || (a->n_ids > 0 && !a->ids))
                return PARLEY_ERR_INVAL;
        } else if (ops[i].kind == STORE_QOP_PUT) {
            if (!put_valid(ops[i].u.put.env))
                return PARLEY_ERR_INVAL;
        } else {
            return PARLEY_ERR_INVAL;
        }
    }
    if (n == 0)
        return PARLEY_OK;
    return s->ops->queue_apply(s, ops, n, now);
}

enum parley_err store_queue_fetch(struct store *s, const char *device_id, uint64_t after_id,
                                  size_t limit, int64_t now, struct store_envelope **out,
                                  size_t *n_out)
{
    if (!s || !device_id || !out || !n_out)
        return PARLEY_ERR_INVAL;
    if (!store_id_valid(device_id) || limit == 0) {
        *out = NULL;
        *n_out = 0;
        return PARLEY_OK;
    }
    return s->ops->queue_fetch(s, device_id, after_id, limit, now, out, n_out);
}

enum parley_err store_queue_count(struct store *s, const char *device_id, size_t *n_out)
{
    if (!s || !device_id || !n_out)
        return PARLEY_ERR_INVAL;
    if (!store_id_valid(device_id)) {
        *n_out = 0;
        return PARLEY_OK;
    }
    return s->ops->queue_count(s, device_id, n_out);
}

enum parley_err store_queue_purge_expired(struct store *s, int64_t now, size_t limit,
                                          int64_t notice_ttl_s, struct store_envelope **notices,
                                          size_t *n_notices, size_t *n_purged)
{
    if (!s || !notices || !n_notices || limit == 0 || notice_ttl_s <= 0)
        return PARLEY_ERR_INVAL;
    return s->ops->queue_purge_expired(s, now, limit, notice_ttl_s, notices, n_notices, n_purged);
}
