/*
 * messaging_sender_keys.c — group messages with Sender Keys: one sender-key ciphertext
 * per message, plus a pairwise (ratchet) copy of our key's distribution message for each
 * member device that does not have it yet; and the receiving side of the same.
 *
 * Invariants: our chain is re-read under the local write lock and saved before sending
 * (never reuse a message key); a new key is made whenever a member or device left.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <sodium.h>

#include "messaging_int.h"

/* A group copy (one per member device) is either
 *   0x00 || sender-key message                                   (device has our key)
 *   0x01 || len (4, BE) || Double Ratchet message || sender-key message
 * where the ratchet message carries a Content with our current sender key's
 * distribution message (and the same message id and group id). */
#define GROUP_COPY_KEY_ONLY 0x00
#define GROUP_COPY_WITH_KEY 0x01

/* Forget our sender key for the group: the next send starts a new one. */
enum parley_err skey_forget_own(struct parley_messenger *m, const char *gid)
{
    char k[ID_MAX + 16];
    snprintf(k, sizeof k, "own/%s", gid);
    enum parley_err rc = local_store_del(m->ls, LS_SENDER_KEY, k);
    snprintf(k, sizeof k, "own/%s/meta", gid);
    if (!rc)
        rc = local_store_del(m->ls, LS_SENDER_KEY, k);
    return rc;
}

static enum parley_err skey_save(struct parley_messenger *m, const char *key,
                                 const struct parley_sender_key *sk)
{
    size_t cap = parley_sender_key_serialized_len(sk), n = 0;
    uint8_t *b = sodium_malloc(cap ? cap : 1);
    if (!b)
        return PARLEY_ERR_NOMEM;
    enum parley_err rc = parley_sender_key_serialize(sk, b, cap, &n);
    if (!rc)
        rc = local_store_put(m->ls, LS_SENDER_KEY, key, b, n);
    sodium_free(b);
    return rc;
}

static enum parley_err skey_load(struct parley_messenger *m, const char *key,
                                 struct parley_sender_key **out)
{
    uint8_t *v = NULL;
    size_t n = 0;
    enum parley_err rc = local_store_get(m->ls, LS_SENDER_KEY, key, &v, &n);
    if (rc)
        return rc;
    rc = parley_sender_key_deserialize(out, v, n);
    local_store_value_free(v, n);
    return rc ? PARLEY_ERR_STORE : PARLEY_OK;
}

/* The contacts (user id -> record) of every member, sessions started on first contact. */
static enum parley_err group_contacts(struct parley_messenger *m, const struct parley_group *g,
                                      json_t **out)
{
    const char *self_uid = parley_client_user_id(m->c);
    json_t *map = json_object();
    enum parley_err rc = map ? PARLEY_OK : PARLEY_ERR_NOMEM;
    bool member = false;
    for (size_t i = 0; i < g->member_count && !rc; i++) {
        const struct parley_group_member *gm = &g->members[i];
        json_t *ct = NULL;
        if (strcmp(gm->user_id, self_uid) == 0) {
            member = true;
            rc = contact_or_new(m, self_uid, parley_client_username(m->c), &ct);
        } else {
            rc = contact_get(m, gm->user_id, &ct);
            if (rc == PARLEY_ERR_NOTFOUND) {
                rc = session_ensure_contact(m, gm->username, &ct);
                if (rc == PARLEY_ERR_NOTFOUND) { /* no keyed device: nothing to send to */
                    client_clear_error(m->c);
                    rc = contact_new(gm->user_id, gm->username, &ct);
                }
            }
        }
        if (!rc)
            rc = json_object_set_new(map, gm->user_id, ct) == 0 ? PARLEY_OK : PARLEY_ERR_NOMEM;
    }
    if (!rc && !member) {
        client_set_error(m->c, 0, NULL, "you are not a member of this group");
        rc = PARLEY_ERR_DENIED;
    }
    if (rc) {
        json_decref(map);
        return rc;
    }
    *out = map;
    return PARLEY_OK;
}

/* Sender-key encrypt content for the group and send it to every member device. */
static enum parley_err group_send_content(struct parley_messenger *m, const struct parley_group *g,
                                          Parley__Content__Content *content)
{
    const char *gid = g->group_id;
    const char *self_did = parley_client_device_id(m->c);
    char kown[ID_MAX + 16], kmeta[ID_MAX + 24];
    snprintf(kown, sizeof kown, "own/%s", gid);
    snprintf(kmeta, sizeof kmeta, "own/%s/meta", gid);
    json_t *map = NULL, *meta = NULL;
    struct parley_sender_key *own = NULL;
    uint8_t *pt = NULL, *dist_pt = NULL;
    size_t pt_len = 0, dist_len = 0;
    enum parley_err rc = group_contacts(m, g, &map);
    if (rc)
        return rc;

    /* Our sender key: new when missing or when someone left since it was made. */
    bool fresh = false;
    rc = skey_load(m, kown, &own);
    if (!rc)
        rc = msg_json_get(m, LS_SENDER_KEY, kmeta, &meta);
    if (!rc) {
        size_t i;
        json_t *u;
        json_array_foreach(json_object_get(meta, "members"), i, u)
        {
            if (!json_object_get(map, json_string_value(u) ? json_string_value(u) : ""))
                fresh = true; /* a member left: they must not read what follows */
        }
    } else if (rc == PARLEY_ERR_NOTFOUND) {
        fresh = true;
        rc = PARLEY_OK;
    }
    if (rc)
        goto out;
    bool own_stored = !fresh;
    if (fresh) {
        parley_sender_key_free(own);
        own = NULL;
        json_decref(meta);
        meta = json_pack("{s:[], s:{}}", "members", "have");
        rc = meta ? parley_sender_key_new(&own) : PARLEY_ERR_NOMEM;
        if (rc)
            goto out;
    }
    json_t *mem = json_array();
    const char *uid;
    json_t *v;
    json_object_foreach(map, uid, v)
    {
        json_array_append_new(mem, json_string(uid));
    }
    json_object_set_new(meta, "members", mem);
    json_t *have = json_object_get(meta, "have");
    if (!json_is_object(have)) {
        have = json_object();
        json_object_set_new(meta, "have", have);
    }

    ProtobufCBinaryData saved_pad = content->padding;
    rc = payload_pack(content, &pt, &pt_len);
    content->padding = saved_pad;
    if (!rc)
        rc = parley_messenger_connect(m);
    if (rc)
        goto out;
    for (int round = 0; round < MAX_SEND_ROUNDS; round++) {
        /* The distribution Content for devices that lack our current key. */
        uint8_t dist[PARLEY_SENDER_KEY_DISTRIBUTION_BYTES];
        Parley__Content__Content dc = PARLEY__CONTENT__CONTENT__INIT;
        dc.version = 1;
        dc.message_id = content->message_id;
        dc.sent_at_ms = content->sent_at_ms;
        dc.group_id = (char *)gid;
        rc = parley_sender_key_distribution(own, dist);
        dc.sender_key.data = dist;
        dc.sender_key.len = sizeof dist;
        if (dist_pt) {
            sodium_free(dist_pt);
            dist_pt = NULL;
        }
        if (!rc)
            rc = payload_pack(&dc, &dist_pt, &dist_len);
        sodium_memzero(dist, sizeof dist);
        if (rc)
            goto out;

        struct target_dev *devs = NULL;
        size_t nd = 0;
        json_object_foreach(map, uid, v)
        {
            if (!rc)
                rc = send_add_devices(
                    v, strcmp(uid, parley_client_user_id(m->c)) == 0 ? self_did : NULL, &devs, &nd);
        }
        Parley__Stream__DeviceCiphertext **copies = calloc(nd ? nd : 1, sizeof *copies);
        json_t *got_key = json_array();
        size_t nc = 0;
        size_t gcap = pt_len + PARLEY_SENDER_KEY_OVERHEAD_BYTES, glen = 0;
        uint8_t *gct = malloc(gcap);
        if (!rc && (!copies || !got_key || !gct))
            rc = PARLEY_ERR_NOMEM;
        unsigned lvl6 = local_store_depth(m->ls);
        if (!rc)
            rc = local_store_begin(m->ls);
        if (!rc && own_stored) {
            /* Re-read under the write lock: another process of this device may have
             * advanced the chain since (never use a message key twice). */
            struct parley_sender_key *cur = NULL;
            rc = skey_load(m, kown, &cur);
            if (!rc) {
                parley_sender_key_free(own);
                own = cur;
            }
        }
        if (!rc)
            rc = parley_sender_key_encrypt(own, gct, gcap, &glen, pt, pt_len);
        if (!rc)
            rc = skey_save(m, kown, own); /* before sending, like ratchet sessions */
        if (!rc && !own_stored)           /* a new key: nobody has it yet, on disk too */
            rc = msg_json_put(m, LS_SENDER_KEY, kmeta, meta);
        if (!rc)
            own_stored = true;
        for (size_t i = 0; i < nd && !rc; i++) {
            char dk[2 * ID_MAX + 2];
            session_key(dk, sizeof dk, devs[i].uid, devs[i].did);
            Parley__Stream__DeviceCiphertext *c = calloc(1, sizeof *c);
            if (!c) {
                rc = PARLEY_ERR_NOMEM;
                break;
            }
            parley__stream__device_ciphertext__init(c);
            c->device_id = strdup(devs[i].did);
            copies[nc++] = c;
            if (!c->device_id) {
                rc = PARLEY_ERR_NOMEM;
                break;
            }
            if (json_is_true(json_object_get(have, dk))) {
                c->ciphertext.data = malloc(1 + glen);
                if (!c->ciphertext.data) {
                    rc = PARLEY_ERR_NOMEM;
                    break;
                }
                c->ciphertext.data[0] = GROUP_COPY_KEY_ONLY;
                memcpy(c->ciphertext.data + 1, gct, glen);
                c->ciphertext.len = 1 + glen;
                continue;
            }
            struct parley_ratchet *s = NULL;
            rc = session_load(m, devs[i].uid, devs[i].did, &s);
            if (rc == PARLEY_ERR_NOTFOUND) {
                rc = PARLEY_OK; /* the server will list it as missing */
                free(c->device_id);
                free(c);
                copies[--nc] = NULL;
                continue;
            }
            if (rc)
                break;
            uint8_t ad[200];
            size_t adl = payload_ad(ad, sizeof ad, self_did, devs[i].did);
            size_t rcap = parley_ratchet_ciphertext_len(s, dist_len), rl = 0;
            c->ciphertext.data = malloc(5 + rcap + glen);
            if (!c->ciphertext.data || !adl || !rcap) {
                parley_ratchet_free(s);
                rc = PARLEY_ERR_NOMEM;
                break;
            }
            rc = parley_ratchet_encrypt(s, c->ciphertext.data + 5, rcap, &rl, dist_pt, dist_len, ad,
                                        adl);
            if (!rc)
                rc = session_save(m, devs[i].uid, devs[i].did, s);
            parley_ratchet_free(s);
            if (rc)
                break;
            uint8_t *p = c->ciphertext.data;
            p[0] = GROUP_COPY_WITH_KEY;
            p[1] = (uint8_t)(rl >> 24);
            p[2] = (uint8_t)(rl >> 16);
            p[3] = (uint8_t)(rl >> 8);
            p[4] = (uint8_t)rl;
            memcpy(p + 5 + rl, gct, glen);
            c->ciphertext.len = 5 + rl + glen;
            json_array_append_new(got_key, json_string(dk));
        }
        free(devs);
        free(gct);
        rc = local_store_end(m->ls, lvl6, rc);
        if (rc) {
            send_free_copies(copies, nc);
            json_decref(got_key);
            msg_fail(m, rc, "encrypting");
            goto out;
        }
        Parley__Stream__ServerFrame *ans = NULL;
        rc = send_copies(m, &content->message_id, NULL, gid, copies, nc, &ans);
        if (rc) {
            json_decref(got_key);
            goto out;
        }
        if (ans->send_result->status == PARLEY__STREAM__SEND_RESULT__STATUS__STALE_DEVICES) {
            bool dropped = false;
            rc = send_fix_devices(m, ans->send_result, map, &dropped);
            if (!rc && dropped) {
                /* A device is gone: it must not read what follows. */
                parley_sender_key_free(own);
                own = NULL;
                json_object_set_new(meta, "have", json_object());
                have = json_object_get(meta, "have");
                rc = parley_sender_key_new(&own);
                own_stored = false;
            }
            parley__stream__server_frame__free_unpacked(ans, NULL);
            json_decref(got_key);
            if (rc)
                goto out;
            continue;
        } else {
            /* Stored: those devices now hold our current key. */
            size_t i;
            json_t *k;
            json_array_foreach(got_key, i, k)
            {
                json_object_set_new(have, json_string_value(k), json_true());
            }
            rc = msg_json_put(m, LS_SENDER_KEY, kmeta, meta);
        }
        parley__stream__server_frame__free_unpacked(ans, NULL);
        json_decref(got_key);
        goto out;
    }
    client_set_error(m->c, 0, NULL, "the group's device list kept changing; try again");
    rc = PARLEY_ERR_LIMIT;
out:
    if (pt)
        sodium_free(pt);
    if (dist_pt)
        sodium_free(dist_pt);
    parley_sender_key_free(own);
    json_decref(meta);
    json_decref(map);
    return rc;
}

enum parley_err parley_messenger_group_send_text(struct parley_messenger *m, const char *group_id,
                                                 const char *text, uint32_t expire_after_s,
                                                 char msg_id[PARLEY_MESSAGE_ID_HEX_BYTES])
{
    if (!m || !group_id || !text)
        return PARLEY_ERR_INVAL;
    client_clear_error(m->c);
    size_t tl = strlen(text);
    if (tl == 0 || tl > PARLEY_MESSAGE_MAX_TEXT) {
        client_set_error(m->c, 0, NULL, "message empty or longer than %u bytes",
                         PARLEY_MESSAGE_MAX_TEXT);
        return tl ? PARLEY_ERR_LIMIT : PARLEY_ERR_INVAL;
    }
    struct parley_group g;
    enum parley_err rc = parley_messenger_group_get(m, group_id, &g);
    if (rc)
        return rc;
    uint8_t mid[MSGID_BYTES];
    char hex[PARLEY_MESSAGE_ID_HEX_BYTES], peer[ID_MAX + 4];
    int64_t sent = 0;
    Parley__Content__Content ct;
    Parley__Content__Text tx;
    payload_text(&ct, &tx, text, expire_after_s, mid, hex, &sent);
    ct.group_id = g.group_id;
    rc = group_send_content(m, &g, &ct);
    if (!rc) {
        group_peer(peer, sizeof peer, g.group_id);
        rc = history_add_sent(m, peer, hex, text, sent, expire_after_s);
    }
    if (!rc && msg_id)
        memcpy(msg_id, hex, sizeof hex);
    parley_group_cleanup(&g);
    return rc;
}

/* A group envelope (seen-check done by the caller): optional pairwise part with the
 * sender's key, then the sender-key message. Stored, then acked. */
enum parley_err skey_receive(struct parley_messenger *m, const Parley__Stream__Envelope *e,
                             const char *seen_key, const char *idhex)
{
    const uint8_t *d = e->ciphertext.data;
    size_t len = e->ciphertext.len;
    const char *self_uid = parley_client_user_id(m->c);
    struct parley_ratchet *s = NULL;
    struct parley_sender_key *rk = NULL;
    Parley__Content__Content *dc = NULL, *ct = NULL;
    uint8_t *dpt = NULL, *pt = NULL;
    size_t dpt_len = 0, pt_len = 0;
    int slot = 0;
    uint32_t used_opk = 0;
    json_t *sender = NULL;
    struct event_node *ev = NULL;
    const uint8_t *gct = NULL;
    size_t gct_len = 0;
    enum parley_err rc = PARLEY_ERR_CRYPTO;
    if (!msg_id_ok(e->group_id) || len < 1)
        goto undecryptable;
    if (d[0] == GROUP_COPY_WITH_KEY) {
        if (len < 5)
            goto undecryptable;
        size_t rl = ((size_t)d[1] << 24) | ((size_t)d[2] << 16) | ((size_t)d[3] << 8) | d[4];
        if (rl > len - 5)
            goto undecryptable;
        rc = session_decrypt(m, e, d + 5, rl, &s, &slot, &used_opk, &dpt, &dpt_len);
        if (rc == PARLEY_ERR_NOMEM)
            goto out;
        if (rc)
            goto undecryptable;
        dc = payload_unpack(dpt, dpt_len, e);
        if (!dc || parley_sender_key_from_distribution(&rk, dc->sender_key.data,
                                                       dc->sender_key.len) != PARLEY_OK)
            goto undecryptable;
        gct = d + 5 + rl;
        gct_len = len - 5 - rl;
    } else if (d[0] == GROUP_COPY_KEY_ONLY) {
        gct = d + 1;
        gct_len = len - 1;
    } else {
        goto undecryptable;
    }
    uint32_t key_id = 0;
    if (parley_sender_key_message_id(&key_id, gct, gct_len) != PARLEY_OK)
        goto undecryptable;
    char rkey[3 * ID_MAX + 32];
    snprintf(rkey, sizeof rkey, "in/%s/%s/%s/%u", e->group_id, e->sender_user, e->sender_device,
             key_id);
    if (!rk || parley_sender_key_id(rk) != key_id) {
        parley_sender_key_free(rk);
        rk = NULL;
        if (skey_load(m, rkey, &rk) != PARLEY_OK)
            goto undecryptable;
    }
    pt = sodium_malloc(gct_len ? gct_len : 1);
    if (!pt) {
        rc = PARLEY_ERR_NOMEM;
        goto out;
    }
    if (parley_sender_key_decrypt(rk, pt, gct_len, &pt_len, gct, gct_len) != PARLEY_OK)
        goto undecryptable;
    ct = payload_unpack(pt, pt_len, e);
    if (!ct)
        goto undecryptable;

    bool from_self = strcmp(e->sender_user, self_uid) == 0;
    char peer[ID_MAX + 4];
    group_peer(peer, sizeof peer, e->group_id);
    unsigned lvl7 = local_store_depth(m->ls);
    rc = local_store_begin(m->ls);
    if (rc)
        goto out;
    rc = recv_commit(m, e, s, slot, used_opk, seen_key, &sender);
    if (!rc)
        rc = skey_save(m, rkey, rk);
    if (!rc && ct->body_case == PARLEY__CONTENT__CONTENT__BODY_TEXT && ct->text->body)
        rc = recv_store_text(m, e, ct, peer, idhex, from_self, NULL, &ev);
    rc = recv_finish(m, lvl7, rc, ev);
    goto out;
undecryptable:
    ev = recv_new_event(PARLEY_EVENT_UNDECRYPTABLE, e);
    if (ev)
        recv_push_event(m, ev);
    rc = PARLEY_OK; /* dropped: ack it */
out:
    json_decref(sender);
    if (dc)
        parley__content__content__free_unpacked(dc, NULL);
    if (ct)
        parley__content__content__free_unpacked(ct, NULL);
    parley_ratchet_free(s);
    parley_sender_key_free(rk);
    if (dpt)
        sodium_free(dpt);
    if (pt)
        sodium_free(pt);
    return rc;
}
