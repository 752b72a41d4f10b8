/*
 * messaging_recv.c — receiving: frames pushed on the stream become events
 * (parley_messenger_next). A MESSAGE envelope is checked against the seen marks,
 * decrypted, and stored (session, seen mark, history, contact) in ONE local
 * transaction before it is acked; then the delivery receipt goes out. EXPIRED notices
 * mark the sender's history entry and are acked.
 *
 * Invariant: if the store fails, nothing is acked and the events of that envelope are
 * dropped; the server redelivers it later.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <sodium.h>

#include "messaging_int.h"

void recv_push_event(struct parley_messenger *m, struct event_node *n)
{
    n->next = NULL;
    if (m->eq_tail)
        m->eq_tail->next = n;
    else
        m->eq_head = n;
    m->eq_tail = n;
}

void parley_event_cleanup(struct parley_event *ev)
{
    if (!ev)
        return;
    free(ev->from_user_id);
    free(ev->from_username);
    free(ev->from_device);
    free(ev->peer_username);
    free(ev->group_id);
    if (ev->text) {
        sodium_memzero(ev->text, strlen(ev->text));
        free(ev->text);
    }
    memset(ev, 0, sizeof *ev);
}

struct event_node *recv_new_event(enum parley_event_kind kind, const Parley__Stream__Envelope *e)
{
    struct event_node *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->ev.kind = kind;
    bool ok = true;
    n->ev.from_user_id = client_strdup(e->sender_user, &ok);
    n->ev.from_username = client_strdup(e->sender_username, &ok);
    n->ev.from_device = client_strdup(e->sender_device, &ok);
    n->ev.server_time_ms = e->server_time_ms;
    if (e->client_message_id.len == MSGID_BYTES)
        msg_to_hex(n->ev.id, e->client_message_id.data, MSGID_BYTES);
    if (!ok) {
        parley_event_cleanup(&n->ev);
        free(n);
        return NULL;
    }
    return n;
}

enum parley_err recv_commit(struct parley_messenger *m, const Parley__Stream__Envelope *e,
                            const struct parley_ratchet *s, int slot, uint32_t used_opk,
                            const char *seen_key, json_t **sender)
{
    enum parley_err rc = contact_or_new(m, e->sender_user, e->sender_username, sender);
    if (!rc && s) {
        uint8_t ik[PARLEY_IDENTITY_PUBLIC_BYTES];
        if (parley_ratchet_peer_identity(s, ik) == PARLEY_OK)
            contact_note_identity(m, *sender, e->sender_device, ik);
        rc = session_commit(m, e->sender_user, e->sender_device, slot, s);
    }
    if (!rc)
        rc = contact_save(m, *sender);
    if (!rc)
        rc = keys_drop_opk(m, used_opk);
    if (!rc)
        rc = local_store_put(m->ls, LS_SEEN, seen_key, "1", 1);
    return rc;
}

enum parley_err recv_store_text(struct parley_messenger *m, const Parley__Stream__Envelope *e,
                                const Parley__Content__Content *ct, const char *peer,
                                const char *idhex, bool from_self, const char *peer_name,
                                struct event_node **ev)
{
    enum parley_err rc = history_add(m, peer, idhex, from_self, e->sender_username, ct->text->body,
                                     ct->sent_at_ms, from_self ? 0 : msg_now_ms(),
                                     ct->expire_after_s, from_self ? "sent" : "received");
    if (rc == PARLEY_ERR_EXISTS)
        rc = PARLEY_OK;
    struct event_node *n = recv_new_event(PARLEY_EVENT_MESSAGE, e);
    if (!n)
        return PARLEY_ERR_NOMEM;
    bool ok = true;
    n->ev.text = client_strdup(ct->text->body, &ok);
    n->ev.peer_username = client_strdup(peer_name, &ok);
    if (e->group_id && *e->group_id)
        n->ev.group_id = client_strdup(e->group_id, &ok);
    n->ev.outgoing = from_self;
    n->ev.sent_at_ms = ct->sent_at_ms;
    n->ev.expire_after_s = ct->expire_after_s;
    *ev = n;
    return ok ? rc : PARLEY_ERR_NOMEM;
}

enum parley_err recv_finish(struct parley_messenger *m, unsigned lvl, enum parley_err rc,
                            struct event_node *ev)
{
    rc = local_store_end(m->ls, lvl, rc);
    if (rc && ev) {
        parley_event_cleanup(&ev->ev);
        free(ev);
    } else if (ev) {
        recv_push_event(m, ev);
    }
    return rc;
}

/* A receipt Content from peer (or, from_self, from our other device): move the status
 * of the named messages forward; RECEIPT events for the peer's receipts. */
static enum parley_err store_receipt(struct parley_messenger *m, const Parley__Stream__Envelope *e,
                                     const Parley__Content__Receipt *r, const char *peer_uid,
                                     bool from_self, const char *peer_name)
{
    enum parley_err rc = PARLEY_OK;
    bool read = r->type == PARLEY__CONTENT__RECEIPT__TYPE__READ;
    for (size_t i = 0; i < r->n_message_ids && !rc; i++) {
        if (r->message_ids[i].len != MSGID_BYTES)
            continue;
        char h[PARLEY_MESSAGE_ID_HEX_BYTES];
        msg_to_hex(h, r->message_ids[i].data, MSGID_BYTES);
        if (from_self) /* our other device read the peer's message */
            rc = read ? history_set_status(m, peer_uid, h, "read", false) : PARLEY_OK;
        else
            rc = history_set_status(m, peer_uid, h, read ? "read" : "delivered", true);
        if (rc == PARLEY_ERR_NOTFOUND)
            rc = PARLEY_OK;
        if (!rc && !from_self) {
            struct event_node *rn = recv_new_event(PARLEY_EVENT_RECEIPT, e);
            if (rn) {
                memcpy(rn->ev.id, h, sizeof h);
                rn->ev.read = read;
                bool ok = true;
                rn->ev.peer_username = client_strdup(peer_name, &ok);
                recv_push_event(m, rn);
            }
        }
    }
    return rc;
}

/* The name of the conversation's peer for a sync copy (our other device sent it): the
 * contact record of peer_uid, created or named from the Content when unknown. */
static enum parley_err sync_peer(struct parley_messenger *m, const Parley__Content__Content *ct,
                                 const char *peer_uid, json_t **contact)
{
    enum parley_err rc = contact_get(m, peer_uid, contact);
    const char *to_name = ct->to_username && *ct->to_username ? ct->to_username : NULL;
    if (rc == PARLEY_ERR_NOTFOUND)
        rc = contact_new(peer_uid, to_name, contact);
    const char *known = json_string_value(json_object_get(*contact, "username"));
    if (!rc && to_name && (!known || !*known)) /* our own device vouches for it */
        json_object_set_new(*contact, "username", json_string(to_name));
    if (!rc)
        rc = contact_save(m, *contact);
    return rc;
}

/* A pairwise (1:1) envelope whose seen mark is absent, inside the caller's transaction:
 * PARLEY_OK means "stored (or deliberately dropped): ack it". *receipt_to receives the
 * contact to send a delivery receipt to (or stays NULL). */
static enum parley_err receive_pairwise(struct parley_messenger *m,
                                        const Parley__Stream__Envelope *e, const char *seen_key,
                                        const char *idhex, json_t **receipt_to)
{
    struct parley_ratchet *s = NULL;
    uint8_t *pt = NULL;
    size_t pt_len = 0;
    uint32_t used_opk = 0;
    Parley__Content__Content *ct = NULL;
    json_t *contact = NULL, *sender = NULL;
    struct event_node *ev = NULL;
    int slot = 0;
    enum parley_err rc = session_decrypt(m, e, e->ciphertext.data, e->ciphertext.len, &s, &slot,
                                         &used_opk, &pt, &pt_len);
    if (rc == PARLEY_OK && !(ct = payload_unpack(pt, pt_len, e)))
        rc = PARLEY_ERR_CRYPTO; /* authentic but inconsistent: drop it */
    if (rc == PARLEY_ERR_CRYPTO) {
        ev = recv_new_event(PARLEY_EVENT_UNDECRYPTABLE, e);
        if (ev)
            recv_push_event(m, ev);
        rc = PARLEY_OK;
        goto out;
    }
    if (rc)
        goto out;

    bool from_self = strcmp(e->sender_user, parley_client_user_id(m->c)) == 0;
    /* The conversation: the sender, or (sync copy from our other device) the recipient. */
    const char *peer_uid = from_self ? ct->to_user : e->sender_user;
    if (!msg_id_ok(peer_uid))
        goto out; /* rc is PARLEY_OK: nothing to keep */
    unsigned lvl = local_store_depth(m->ls);
    rc = local_store_begin(m->ls);
    if (rc)
        goto out;
    rc = recv_commit(m, e, s, slot, used_opk, seen_key, &sender);
    const char *peer_name = e->sender_username;
    if (!rc && from_self) {
        rc = sync_peer(m, ct, peer_uid, &contact);
        peer_name = json_string_value(json_object_get(contact, "username"));
    }
    if (!rc && ct->body_case == PARLEY__CONTENT__CONTENT__BODY_TEXT && ct->text->body)
        rc = recv_store_text(m, e, ct, peer_uid, idhex, from_self, peer_name, &ev);
    else if (!rc && ct->body_case == PARLEY__CONTENT__CONTENT__BODY_RECEIPT)
        rc = store_receipt(m, e, ct->receipt, peer_uid, from_self, peer_name);
    /* Not stored: leave the envelope on the server for a later attempt. Note the
     * session did not advance on disk, but the message key is now spent in memory
     * only; the stored session can still decrypt the redelivery. */
    rc = recv_finish(m, lvl, rc, ev);
    if (rc)
        goto out;
    if (!from_self && !m->o.no_receipts && ct->body_case == PARLEY__CONTENT__CONTENT__BODY_TEXT) {
        *receipt_to = sender; /* the caller sends it after the commit */
        sender = NULL;
    }
out:
    json_decref(sender);
    json_decref(contact);
    if (ct)
        parley__content__content__free_unpacked(ct, NULL);
    parley_ratchet_free(s);
    if (pt)
        sodium_free(pt);
    return rc;
}

/* Process a MESSAGE envelope inside the caller's transaction: malformed ones and
 * redeliveries (seen mark present) are acked without decrypting. */
static enum parley_err process_message(struct parley_messenger *m,
                                       const Parley__Stream__Envelope *e, json_t **receipt_to)
{
    char seen_key[2 * ID_MAX + 40];
    char idhex[PARLEY_MESSAGE_ID_HEX_BYTES] = "";
    if (!msg_id_ok(e->sender_user) || !msg_id_ok(e->sender_device) ||
        e->client_message_id.len != MSGID_BYTES) {
        return PARLEY_OK; /* malformed: nothing to keep */
    }
    msg_to_hex(idhex, e->client_message_id.data, MSGID_BYTES);
    snprintf(seen_key, sizeof seen_key, "%s/%s", e->sender_user, idhex);
    uint8_t *v = NULL;
    size_t vl = 0;
    enum parley_err rc = local_store_get(m->ls, LS_SEEN, seen_key, &v, &vl);
    local_store_value_free(v, vl);
    if (rc == PARLEY_OK)
        return PARLEY_OK; /* a redelivery: already stored */
    if (rc != PARLEY_ERR_NOTFOUND)
        return rc;
    if (e->group_id && *e->group_id)
        return skey_receive(m, e, seen_key, idhex);
    return receive_pairwise(m, e, seen_key, idhex, receipt_to);
}

/* One MESSAGE envelope: decrypt and store in ONE write transaction (taken before the
 * session is read, see local_store_begin), then ack, then the delivery receipt. */
static enum parley_err handle_message(struct parley_messenger *m, const Parley__Stream__Envelope *e)
{
    json_t *receipt_to = NULL;
    struct event_node *last = m->eq_tail;
    unsigned lvl5 = local_store_depth(m->ls);
    enum parley_err rc = local_store_begin(m->ls);
    if (!rc)
        rc = process_message(m, e, &receipt_to);
    rc = local_store_end(m->ls, lvl5, rc);
    if (rc) {
        /* Nothing was stored: drop the events this envelope produced. */
        struct event_node *n = last ? last->next : m->eq_head;
        if (last)
            last->next = NULL;
        else
            m->eq_head = NULL;
        m->eq_tail = last;
        while (n) {
            struct event_node *next = n->next;
            parley_event_cleanup(&n->ev);
            free(n);
            n = next;
        }
        json_decref(receipt_to);
        return rc;
    }
    rc = stream_send_ack(m, e->envelope_id);
    if (!rc && receipt_to) {
        ProtobufCBinaryData id = {MSGID_BYTES, e->client_message_id.data};
        /* Best effort: a failed receipt never loses the message, which is stored. */
        if (send_receipt(m, receipt_to, false, &id, 1) != PARLEY_OK)
            client_clear_error(m->c);
    }
    json_decref(receipt_to);
    return rc;
}

static enum parley_err handle_expired(struct parley_messenger *m, const Parley__Stream__Envelope *e)
{
    const Parley__Stream__ExpiredNotice *x = e->expired;
    if (x && x->client_message_id.len == MSGID_BYTES && msg_id_ok(x->recipient_user)) {
        char h[PARLEY_MESSAGE_ID_HEX_BYTES];
        msg_to_hex(h, x->client_message_id.data, MSGID_BYTES);
        enum parley_err rc = history_set_status(m, x->recipient_user, h, "expired", true);
        if (rc && rc != PARLEY_ERR_NOTFOUND)
            return rc;
        struct event_node *n = calloc(1, sizeof *n);
        if (n) {
            n->ev.kind = PARLEY_EVENT_EXPIRED;
            memcpy(n->ev.id, h, sizeof h);
            bool ok = true;
            json_t *ct = NULL;
            n->ev.from_user_id = client_strdup(x->recipient_user, &ok);
            if (contact_get(m, x->recipient_user, &ct) == PARLEY_OK)
                n->ev.peer_username =
                    client_strdup(json_string_value(json_object_get(ct, "username")), &ok);
            json_decref(ct);
            n->ev.count = x->devices;
            n->ev.server_time_ms = e->server_time_ms;
            recv_push_event(m, n);
        }
    }
    return stream_send_ack(m, e->envelope_id);
}

static enum parley_err handle_frame(struct parley_messenger *m, Parley__Stream__ServerFrame *f)
{
    enum parley_err rc = PARLEY_OK;
    switch (f->body_case) {
    case PARLEY__STREAM__SERVER_FRAME__BODY_ENVELOPE:
        if (f->envelope->kind == PARLEY__STREAM__ENVELOPE__KIND__EXPIRED)
            rc = handle_expired(m, f->envelope);
        else
            rc = handle_message(m, f->envelope);
        break;
    case PARLEY__STREAM__SERVER_FRAME__BODY_DRAINED: {
        struct event_node *n = calloc(1, sizeof *n);
        if (!n)
            return PARLEY_ERR_NOMEM;
        n->ev.kind = PARLEY_EVENT_DRAINED;
        n->ev.count = f->drained->delivered;
        recv_push_event(m, n);
        break;
    }
    case PARLEY__STREAM__SERVER_FRAME__BODY_ACK_RESULT:
        if (m->acks_inflight)
            m->acks_inflight--;
        break;
    case PARLEY__STREAM__SERVER_FRAME__BODY_ERROR:
        client_set_error(m->c, 0, f->error->code, "stream error: %s", f->error->message);
        rc = f->id == 0 ? PARLEY_ERR_SERVER : PARLEY_OK;
        break;
    default: break;
    }
    return rc;
}

enum parley_err parley_messenger_next(struct parley_messenger *m, uint32_t timeout_ms,
                                      struct parley_event *ev)
{
    if (!m || !ev)
        return PARLEY_ERR_INVAL;
    memset(ev, 0, sizeof *ev);
    client_clear_error(m->c);
    int64_t deadline = msg_now_ms() + timeout_ms;
    for (;;) {
        if (m->eq_head) {
            struct event_node *n = m->eq_head;
            m->eq_head = n->next;
            if (!m->eq_head)
                m->eq_tail = NULL;
            *ev = n->ev;
            free(n);
            return PARLEY_OK;
        }
        Parley__Stream__ServerFrame *f = stream_pop_frame(m);
        if (!f) {
            enum parley_err rc = parley_messenger_connect(m);
            if (rc)
                return rc;
            int64_t left = deadline - msg_now_ms();
            rc = stream_read_frame(m, left > 0 ? (uint32_t)left : 0, &f);
            if (rc)
                return rc;
        }
        enum parley_err rc = handle_frame(m, f);
        parley__stream__server_frame__free_unpacked(f, NULL);
        if (rc)
            return rc;
    }
}
