/*
 * messaging_history.c — the local history of a conversation (a peer user id, or
 * "g:<group id>"): records {"id","out","from","text","sent_at","recv_at","exp","status"},
 * status changes that never go back (read > delivered > sent), and disappearing
 * messages: a record past its timer is deleted when the history is read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <sodium.h>

#include "messaging_int.h"

/* Write record r of conversation peer: added (fresh) or replacing the stored one. */
static enum parley_err put_record(struct parley_messenger *m, const char *peer, const char *idhex,
                                  const json_t *r, bool fresh)
{
    struct buf b;
    buf_init(&b, LOCAL_STORE_MAX_VALUE);
    enum parley_err rc = client_json_text(r, JSON_COMPACT, &b);
    if (!rc)
        rc = fresh ? local_store_msg_add(m->ls, peer, idhex, b.data, b.len)
                   : local_store_msg_update(m->ls, peer, idhex, b.data, b.len);
    client_buf_wipe(&b);
    return rc;
}

/* A history record: {"id","out","from","text","sent_at","recv_at","exp","status"}. */
enum parley_err history_add(struct parley_messenger *m, const char *peer, const char *idhex,
                            bool out, const char *from, const char *text, int64_t sent_at,
                            int64_t recv_at, uint32_t exp, const char *status)
{
    json_t *r =
        json_pack("{s:s, s:b, s:s, s:s, s:I, s:I, s:I, s:s}", "id", idhex, "out", out, "from",
                  from ? from : "", "text", text ? text : "", "sent_at", (json_int_t)sent_at,
                  "recv_at", (json_int_t)recv_at, "exp", (json_int_t)exp, "status", status);
    if (!r)
        return PARLEY_ERR_NOMEM;
    enum parley_err rc = put_record(m, peer, idhex, r, true);
    json_decref(r);
    return rc;
}

enum parley_err history_add_sent(struct parley_messenger *m, const char *peer, const char *idhex,
                                 const char *text, int64_t sent_at, uint32_t exp)
{
    enum parley_err rc = history_add(m, peer, idhex, true, parley_client_username(m->c), text,
                                     sent_at, 0, exp, "sent");
    if (rc == PARLEY_ERR_EXISTS)
        rc = PARLEY_OK;
    if (rc)
        msg_fail(m, rc, "message sent but not saved in the local history");
    return rc;
}

enum parley_err history_set_status(struct parley_messenger *m, const char *peer, const char *idhex,
                                   const char *status, bool only_out)
{
    uint8_t *v = NULL;
    size_t n = 0;
    enum parley_err rc = local_store_msg_get(m->ls, peer, idhex, &v, &n);
    if (rc)
        return rc;
    json_t *r = json_loadb((const char *)v, n, 0, NULL);
    local_store_value_free(v, n);
    if (!json_is_object(r)) {
        json_decref(r);
        return PARLEY_ERR_STORE;
    }
    bool out = json_is_true(json_object_get(r, "out"));
    const char *old = json_string_value(json_object_get(r, "status"));
    /* Never go back: read beats delivered beats sent. */
    bool skip = (only_out && !out) || (old && strcmp(old, "read") == 0) ||
                (old && strcmp(old, "expired") == 0 && strcmp(status, "read") != 0);
    if (!skip) {
        json_object_set_new(r, "status", json_string(status));
        rc = put_record(m, peer, idhex, r, false);
    }
    json_decref(r);
    return rc;
}

static bool expired_now(json_t *r, int64_t now)
{
    json_int_t exp = json_integer_value(json_object_get(r, "exp"));
    if (exp <= 0)
        return false;
    json_int_t base = json_integer_value(json_object_get(r, "recv_at"));
    if (base <= 0)
        base = json_integer_value(json_object_get(r, "sent_at"));
    return base + exp * 1000 <= now;
}

void parley_history_cleanup(struct parley_history *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->count; i++) {
        free(h->items[i].from_username);
        if (h->items[i].text) {
            sodium_memzero(h->items[i].text, strlen(h->items[i].text));
            free(h->items[i].text);
        }
    }
    free(h->items);
    memset(h, 0, sizeof *h);
}

struct hist_walk {
    struct parley_history *h;
    char (*gone)[PARLEY_MESSAGE_ID_HEX_BYTES];
    size_t ngone;
    int64_t now;
};

static int hist_item(const uint8_t *rec, size_t len, void *ud)
{
    struct hist_walk *w = ud;
    json_t *r = json_loadb((const char *)rec, len, 0, NULL);
    const char *id = json_string_value(json_object_get(r, "id"));
    if (!json_is_object(r) || !id || strlen(id) != 32) {
        json_decref(r);
        return 0;
    }
    if (expired_now(r, w->now)) {
        void *nl = realloc(w->gone, (w->ngone + 1) * sizeof *w->gone);
        if (nl) {
            w->gone = nl;
            memcpy(w->gone[w->ngone++], id, PARLEY_MESSAGE_ID_HEX_BYTES);
        }
        json_decref(r);
        return 0;
    }
    struct parley_history *h = w->h;
    void *nl = realloc(h->items, (h->count + 1) * sizeof *h->items);
    if (!nl) {
        json_decref(r);
        return PARLEY_ERR_NOMEM;
    }
    h->items = nl;
    struct parley_history_item *it = &h->items[h->count];
    memset(it, 0, sizeof *it);
    memcpy(it->id, id, PARLEY_MESSAGE_ID_HEX_BYTES);
    it->outgoing = json_is_true(json_object_get(r, "out"));
    bool ok = true;
    it->from_username = client_strdup(json_string_value(json_object_get(r, "from")), &ok);
    it->text = client_strdup(json_string_value(json_object_get(r, "text")), &ok);
    it->sent_at_ms = json_integer_value(json_object_get(r, "sent_at"));
    it->received_at_ms = json_integer_value(json_object_get(r, "recv_at"));
    it->expire_after_s = (uint32_t)json_integer_value(json_object_get(r, "exp"));
    const char *st = json_string_value(json_object_get(r, "status"));
    snprintf(it->status, sizeof it->status, "%s", st ? st : "");
    h->count++;
    json_decref(r);
    return ok ? 0 : PARLEY_ERR_NOMEM;
}

/* Read up to limit records of conversation peer into out, deleting those past their
 * disappearing timer (they are not returned). */
static enum parley_err history_list(struct parley_messenger *m, const char *peer, size_t limit,
                                    struct parley_history *out)
{
    struct hist_walk w = {out, NULL, 0, msg_now_ms()};
    enum parley_err rc = local_store_msg_list(m->ls, peer, limit, hist_item, &w);
    for (size_t i = 0; i < w.ngone && !rc; i++)
        rc = local_store_msg_del(m->ls, peer, w.gone[i]); /* disappearing messages */
    free(w.gone);
    if (rc)
        parley_history_cleanup(out);
    return rc;
}

enum parley_err parley_messenger_history(struct parley_messenger *m, const char *username,
                                         size_t limit, struct parley_history *out)
{
    if (!m || !username || !out)
        return PARLEY_ERR_INVAL;
    client_clear_error(m->c);
    memset(out, 0, sizeof *out);
    json_t *ct = NULL;
    enum parley_err rc = contact_by_name(m, username, &ct);
    if (rc) {
        if (rc == PARLEY_ERR_NOTFOUND)
            client_set_error(m->c, 0, NULL, "no conversation with %s", username);
        return rc;
    }
    rc = history_list(m, json_string_value(json_object_get(ct, "user_id")), limit, out);
    json_decref(ct);
    return rc;
}

enum parley_err parley_messenger_group_history(struct parley_messenger *m, const char *group_id,
                                               size_t limit, struct parley_history *out)
{
    if (!m || !out || !msg_id_ok(group_id))
        return PARLEY_ERR_INVAL;
    client_clear_error(m->c);
    memset(out, 0, sizeof *out);
    char peer[ID_MAX + 4];
    group_peer(peer, sizeof peer, group_id);
    return history_list(m, peer, limit, out);
}
