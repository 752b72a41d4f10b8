/*
 * messaging_send.c — 1:1 sending: one ratchet copy per device of the peer and of our
 * other devices (sync copies), rounds that follow the server's STALE_DEVICES answer,
 * the resend of the same frame after a lost connection, and receipts (mark read).
 *
 * Invariants: sessions are saved before the copies leave (see messaging.c). A frame
 * that may have reached the server is only ever resent byte for byte (same message id,
 * same ciphertexts), so the server's DUPLICATE answer and the receivers' seen marks make
 * a retried message appear once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include <sodium.h>

#include "messaging_int.h"

enum parley_err send_add_devices(json_t *ct, const char *skip_did, struct target_dev **list,
                                 size_t *n)
{
    const char *uid = json_string_value(json_object_get(ct, "user_id"));
    const char *did;
    json_t *v;
    json_object_foreach(json_object_get(ct, "devices"), did, v)
    {
        if (skip_did && strcmp(did, skip_did) == 0)
            continue;
        if (!msg_id_ok(did) || !msg_id_ok(uid))
            continue;
        struct target_dev *nl = realloc(*list, (*n + 1) * sizeof **list);
        if (!nl)
            return PARLEY_ERR_NOMEM;
        *list = nl;
        snprintf(nl[*n].uid, sizeof nl[*n].uid, "%s", uid);
        snprintf(nl[*n].did, sizeof nl[*n].did, "%s", did);
        (*n)++;
    }
    return PARLEY_OK;
}

void send_free_copies(Parley__Stream__DeviceCiphertext **copies, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!copies[i])
            continue;
        free(copies[i]->device_id);
        free(copies[i]->ciphertext.data);
        free(copies[i]);
    }
    free(copies);
}

/* Apply a STALE_DEVICES answer: start sessions with the missing devices, forget the
 * extra ones. contacts: user id -> contact record of every recipient user (and us).
 * *dropped is set when a device was removed (groups then rotate their sender key). */
enum parley_err send_fix_devices(struct parley_messenger *m, const Parley__Stream__SendResult *r,
                                 json_t *contacts, bool *dropped)
{
    enum parley_err rc = PARLEY_OK;
    for (size_t i = 0; i < r->n_extra && !rc; i++) {
        const char *uid = r->extra[i]->user_id, *did = r->extra[i]->device_id;
        json_t *ct = json_object_get(contacts, uid ? uid : "");
        if (!ct || !msg_id_ok(did))
            continue;
        json_object_del(json_object_get(ct, "devices"), did);
        rc = session_drop(m, uid, did);
        if (!rc)
            rc = contact_save(m, ct);
        if (dropped)
            *dropped = true;
    }
    for (size_t i = 0; i < r->n_missing && !rc; i++) {
        const char *uid = r->missing[i]->user_id, *did = r->missing[i]->device_id;
        json_t *ct = json_object_get(contacts, uid ? uid : "");
        if (!ct) {
            client_set_error(m->c, 0, NULL, "the server named a device of an unexpected user");
            return PARLEY_ERR_PROTO;
        }
        const char *name = json_string_value(json_object_get(ct, "username"));
        json_t *ans = NULL;
        rc = session_fetch_bundles(m, name, did, &ans);
        if (rc == PARLEY_ERR_NOTFOUND) {
            rc = PARLEY_OK; /* gone meanwhile: the next round will tell */
            continue;
        }
        if (!rc)
            rc = session_start_all(m, ans, ct);
        json_decref(ans);
    }
    return rc;
}

/* Failures after which a Send frame may have reached the server and is worth resending
 * on a new connection (not: refusals, our own limits, memory). */
static bool in_doubt(enum parley_err rc)
{
    return rc != PARLEY_ERR_NOMEM && rc != PARLEY_ERR_LIMIT && rc != PARLEY_ERR_INVAL &&
           rc != PARLEY_ERR_DENIED;
}

static void pause_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

enum parley_err send_copies(struct parley_messenger *m, const ProtobufCBinaryData *message_id,
                            const char *to_user, const char *group_id,
                            Parley__Stream__DeviceCiphertext **copies, size_t nc,
                            Parley__Stream__ServerFrame **ans)
{
    Parley__Stream__ClientFrame f = PARLEY__STREAM__CLIENT_FRAME__INIT;
    Parley__Stream__Send snd = PARLEY__STREAM__SEND__INIT;
    snd.client_message_id = *message_id;
    if (group_id) {
        snd.target_case = PARLEY__STREAM__SEND__TARGET_GROUP_ID;
        snd.group_id = (char *)group_id;
    } else {
        snd.target_case = PARLEY__STREAM__SEND__TARGET_TO_USER;
        snd.to_user = (char *)to_user;
    }
    snd.n_copies = nc;
    snd.copies = copies;
    f.body_case = PARLEY__STREAM__CLIENT_FRAME__BODY_SEND;
    f.send = &snd;
    uint32_t wait = m->c->timeout_ms ? m->c->timeout_ms : 30000;
    int64_t deadline = 0; /* set once the frame may have left */
    unsigned backoff = 50;
    Parley__Stream__ServerFrame *a = NULL;
    enum parley_err rc;
    for (;;) {
        rc = parley_messenger_connect(m);
        if (!rc) {
            f.id = m->next_req++;
            if (!deadline)
                deadline = msg_now_ms() + wait;
            rc = stream_send_frame(m, &f);
            if (!rc)
                rc = stream_await_answer(m, f.id, &a);
        }
        /* Before the first frame left nothing is in doubt: the caller hears at once. */
        if (!rc || !deadline || !in_doubt(rc) || msg_now_ms() + backoff >= deadline)
            break;
        /* In doubt (stored or not?): resend the same bytes on a new connection; the
         * server answers DUPLICATE if it has them. */
        stream_close(m);
        pause_ms(backoff);
        backoff = backoff < 1000 ? backoff * 2 : 1000;
    }
    send_free_copies(copies, nc);
    if (rc)
        return rc;
    if (a->body_case == PARLEY__STREAM__SERVER_FRAME__BODY_ERROR) {
        client_set_error(m->c, 0, a->error->code, "send refused: %s", a->error->message);
        rc = PARLEY_ERR_SERVER;
    } else if (a->body_case != PARLEY__STREAM__SERVER_FRAME__BODY_SEND_RESULT) {
        client_set_error(m->c, 0, NULL, "unexpected answer to a send");
        rc = PARLEY_ERR_PROTO;
    }
    if (rc) {
        parley__stream__server_frame__free_unpacked(a, NULL);
        return rc;
    }
    *ans = a;
    return PARLEY_OK;
}

/* Send one Content to peer's devices and our other devices, until the server stores it. */
static enum parley_err send_content(struct parley_messenger *m, json_t *peer,
                                    Parley__Content__Content *content)
{
    const char *self_uid = parley_client_user_id(m->c);
    const char *self_did = parley_client_device_id(m->c);
    const char *peer_uid = json_string_value(json_object_get(peer, "user_id"));
    json_t *self = NULL;
    uint8_t *pt = NULL;
    size_t pt_len = 0;
    enum parley_err rc = contact_or_new(m, self_uid, parley_client_username(m->c), &self);
    if (rc)
        return rc;
    rc = payload_pack(content, &pt, &pt_len);
    if (rc)
        goto out;
    rc = parley_messenger_connect(m);
    if (rc)
        goto out;
    for (int round = 0; round < MAX_SEND_ROUNDS; round++) {
        struct target_dev *devs = NULL;
        size_t nd = 0;
        rc = send_add_devices(peer, NULL, &devs, &nd);
        if (!rc)
            rc = send_add_devices(self, self_did, &devs, &nd);
        Parley__Stream__DeviceCiphertext **copies = calloc(nd ? nd : 1, sizeof *copies);
        if (!rc && !copies)
            rc = PARLEY_ERR_NOMEM;
        size_t nc = 0;
        unsigned lvl3 = local_store_depth(m->ls);
        if (!rc)
            rc = local_store_begin(m->ls);
        for (size_t i = 0; i < nd && !rc; i++) {
            struct parley_ratchet *s = NULL;
            rc = session_load(m, devs[i].uid, devs[i].did, &s);
            if (rc == PARLEY_ERR_NOTFOUND) {
                rc = PARLEY_OK; /* no session: the server will list it as missing */
                continue;
            }
            if (rc)
                break;
            uint8_t ad[200];
            size_t adl = payload_ad(ad, sizeof ad, self_did, devs[i].did);
            size_t cap = parley_ratchet_ciphertext_len(s, pt_len), cl = 0;
            Parley__Stream__DeviceCiphertext *dc = calloc(1, sizeof *dc);
            uint8_t *cbuf = cap ? malloc(cap) : NULL;
            if (!dc || !cbuf || !adl) {
                free(dc);
                free(cbuf);
                parley_ratchet_free(s);
                rc = adl ? PARLEY_ERR_NOMEM : PARLEY_ERR_LIMIT;
                break;
            }
            parley__stream__device_ciphertext__init(dc);
            rc = parley_ratchet_encrypt(s, cbuf, cap, &cl, pt, pt_len, ad, adl);
            if (!rc)
                rc = session_save(m, devs[i].uid, devs[i].did, s); /* before sending */
            parley_ratchet_free(s);
            dc->device_id = strdup(devs[i].did);
            dc->ciphertext.data = cbuf;
            dc->ciphertext.len = cl;
            copies[nc++] = dc;
            if (!rc && !dc->device_id)
                rc = PARLEY_ERR_NOMEM;
        }
        free(devs);
        rc = local_store_end(m->ls, lvl3, rc);
        if (rc) {
            send_free_copies(copies, nc);
            msg_fail(m, rc, "encrypting");
            goto out;
        }

        Parley__Stream__ServerFrame *ans = NULL;
        rc = send_copies(m, &content->message_id, peer_uid, NULL, copies, nc, &ans);
        if (rc)
            goto out;
        if (ans->send_result->status == PARLEY__STREAM__SEND_RESULT__STATUS__STALE_DEVICES) {
            /* Each change commits on its own (start_sessions is a transaction). */
            json_t *map = json_object();
            if (!map) {
                rc = PARLEY_ERR_NOMEM;
            } else {
                json_object_set(map, peer_uid, peer);
                json_object_set(map, self_uid, self);
                rc = send_fix_devices(m, ans->send_result, map, NULL);
                json_decref(map);
            }
            parley__stream__server_frame__free_unpacked(ans, NULL);
            if (rc)
                goto out;
            continue;
        }
        parley__stream__server_frame__free_unpacked(ans, NULL);
        goto out; /* OK, DUPLICATE, or an error */
    }
    client_set_error(m->c, 0, NULL, "the recipient's device list kept changing; try again");
    rc = PARLEY_ERR_LIMIT;
out:
    if (pt)
        sodium_free(pt);
    json_decref(self);
    return rc;
}

enum parley_err parley_messenger_send_text(struct parley_messenger *m, const char *username,
                                           const char *text, uint32_t expire_after_s,
                                           char msg_id[PARLEY_MESSAGE_ID_HEX_BYTES])
{
    if (!m || !username || !text)
        return PARLEY_ERR_INVAL;
    client_clear_error(m->c);
    size_t tl = strlen(text);
    if (tl == 0) {
        client_set_error(m->c, 0, NULL, "empty message");
        return PARLEY_ERR_INVAL;
    }
    if (tl > PARLEY_MESSAGE_MAX_TEXT) {
        client_set_error(m->c, 0, NULL, "message longer than %u bytes", PARLEY_MESSAGE_MAX_TEXT);
        return PARLEY_ERR_LIMIT;
    }
    if (strcmp(username, parley_client_username(m->c)) == 0) {
        client_set_error(m->c, 0, NULL, "cannot send a message to yourself");
        return PARLEY_ERR_INVAL;
    }
    json_t *peer = NULL;
    enum parley_err rc = session_ensure_contact(m, username, &peer);
    if (rc) {
        if (rc == PARLEY_ERR_NOTFOUND)
            client_set_error(m->c, 404, "no_keys", "%s has no device that can receive messages",
                             username);
        return rc;
    }
    uint8_t mid[MSGID_BYTES];
    char hex[PARLEY_MESSAGE_ID_HEX_BYTES];
    int64_t sent = 0;
    Parley__Content__Content ct;
    Parley__Content__Text tx;
    payload_text(&ct, &tx, text, expire_after_s, mid, hex, &sent);
    ct.to_user = (char *)json_string_value(json_object_get(peer, "user_id"));
    ct.to_username = (char *)json_string_value(json_object_get(peer, "username"));
    rc = send_content(m, peer, &ct);
    if (!rc)
        rc = history_add_sent(m, ct.to_user, hex, text, sent, expire_after_s);
    if (!rc && msg_id)
        memcpy(msg_id, hex, sizeof hex);
    json_decref(peer);
    return rc;
}

enum parley_err send_receipt(struct parley_messenger *m, json_t *peer, bool read,
                             ProtobufCBinaryData *ids, size_t n)
{
    uint8_t mid[MSGID_BYTES];
    randombytes_buf(mid, sizeof mid);
    Parley__Content__Content ct = PARLEY__CONTENT__CONTENT__INIT;
    Parley__Content__Receipt r = PARLEY__CONTENT__RECEIPT__INIT;
    r.type =
        read ? PARLEY__CONTENT__RECEIPT__TYPE__READ : PARLEY__CONTENT__RECEIPT__TYPE__DELIVERED;
    r.n_message_ids = n;
    r.message_ids = ids;
    ct.version = 1;
    ct.message_id.data = mid;
    ct.message_id.len = sizeof mid;
    ct.sent_at_ms = msg_now_ms();
    ct.body_case = PARLEY__CONTENT__CONTENT__BODY_RECEIPT;
    ct.receipt = &r;
    ct.to_user = (char *)json_string_value(json_object_get(peer, "user_id"));
    return send_content(m, peer, &ct);
}

struct unread {
    char (*ids)[PARLEY_MESSAGE_ID_HEX_BYTES];
    size_t n;
};

static int collect_unread(const uint8_t *rec, size_t len, void *ud)
{
    struct unread *u = ud;
    json_t *r = json_loadb((const char *)rec, len, 0, NULL);
    const char *st = json_string_value(json_object_get(r, "status"));
    const char *id = json_string_value(json_object_get(r, "id"));
    if (!json_is_true(json_object_get(r, "out")) && st && strcmp(st, "received") == 0 && id &&
        strlen(id) == 32 && u->n < 1000) {
        void *nl = realloc(u->ids, (u->n + 1) * sizeof *u->ids);
        if (nl) {
            u->ids = nl;
            memcpy(u->ids[u->n++], id, PARLEY_MESSAGE_ID_HEX_BYTES);
        }
    }
    json_decref(r);
    return 0;
}

enum parley_err parley_messenger_mark_read(struct parley_messenger *m, const char *username,
                                           size_t *count)
{
    if (!m || !username)
        return PARLEY_ERR_INVAL;
    client_clear_error(m->c);
    json_t *peer = NULL;
    enum parley_err rc = contact_by_name(m, username, &peer);
    if (rc) {
        client_set_error(m->c, 0, NULL, "no conversation with %s", username);
        return rc;
    }
    const char *uid = json_string_value(json_object_get(peer, "user_id"));
    struct unread u = {NULL, 0};
    rc = local_store_msg_list(m->ls, uid, 0, collect_unread, &u);
    ProtobufCBinaryData *ids = calloc(u.n ? u.n : 1, sizeof *ids);
    uint8_t(*raw)[MSGID_BYTES] = calloc(u.n ? u.n : 1, MSGID_BYTES);
    if (!rc && (!ids || !raw))
        rc = PARLEY_ERR_NOMEM;
    for (size_t i = 0; i < u.n && !rc; i++) {
        if (!msg_from_hex(raw[i], MSGID_BYTES, u.ids[i]))
            rc = PARLEY_ERR_STORE;
        ids[i].data = raw[i];
        ids[i].len = MSGID_BYTES;
    }
    if (!rc && u.n)
        rc = send_receipt(m, peer, true, ids, u.n);
    for (size_t i = 0; i < u.n && !rc; i++)
        rc = history_set_status(m, uid, u.ids[i], "read", false);
    if (!rc && count)
        *count = u.n;
    free(ids);
    free(raw);
    free(u.ids);
    json_decref(peer);
    return rc;
}
