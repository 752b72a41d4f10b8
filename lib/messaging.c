/*
 * messaging.c — parley/messaging.h: device keys, X3DH + Double Ratchet sessions per
 * peer device, the /v1/stream WebSocket (send, receive, ack), history and safety numbers.
 *
 * Invariants that matter for safety:
 *  - A ratchet session is written back to the local store BEFORE the ciphertexts it
 *    produced are sent: a crash can never make the device reuse a message key.
 *  - A received message is decrypted, then its session, its "seen" mark and its history
 *    record are committed in ONE local transaction, and only then acknowledged. Seen
 *    marks are checked before decryption, so a redelivery (ack lost) is acked silently.
 *  - Everything the server must not read (text, sender clock, message id, receipts,
 *    timers) is inside the ciphertext as a proto/content.proto Content (P10).
 * Local records (contacts, history) are small JSON documents, sealed by the local store.
 */
#include "parley/messaging.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include <sodium.h>

#include "client_int.h"
#include "http_client.h"
#include "local_store.h"
#include "parley/crypto.h"
#include "proto/content.pb-c.h"
#include "proto/stream.pb-c.h"

#define MSGID_BYTES 16
#define MAX_FRAME (8u << 20)
#define MAX_PENDING 100000u
#define MAX_SEND_ROUNDS 5
#define PAD_BLOCK 128
#define ID_MAX 64 /* user and device ids are 32 hex digits; allow some slack */

struct frame_node {
    Parley__Stream__ServerFrame *f;
    struct frame_node *next;
};

struct event_node {
    struct parley_event ev;
    struct event_node *next;
};

struct parley_messenger {
    struct parley_client *c;
    struct local_store *ls;
    struct parley_messenger_options o;
    struct parley_identity *id; /* sodium_malloc'd */
    struct ws_client *ws;
    uint64_t next_req;
    struct frame_node *fq_head, *fq_tail;
    size_t fq_len;
    struct event_node *eq_head, *eq_tail;
    unsigned acks_inflight;
};

/* ------------------------------------------------------------------ small helpers */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void to_hex(char *out, const uint8_t *in, size_t n)
{
    sodium_bin2hex(out, n * 2 + 1, in, n);
}

static bool from_hex(uint8_t *out, size_t n, const char *in)
{
    size_t got = 0;
    return strlen(in) == n * 2 &&
           sodium_hex2bin(out, n, in, n * 2, NULL, &got, NULL) == 0 && got == n;
}

static char *b64(const uint8_t *in, size_t n)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *s = malloc(cap);
    if (s)
        sodium_bin2base64(s, cap, in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return s;
}

static bool unb64(uint8_t *out, size_t n, const char *in)
{
    size_t got = 0;
    return in &&
           sodium_base642bin(out, n, in, strlen(in), NULL, &got, NULL,
                             sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
           got == n;
}

static bool id_ok(const char *s)
{
    if (!s || !*s || strlen(s) > ID_MAX)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              *p == '-' || *p == '_'))
            return false;
    return true;
}

/* Percent-encode one path segment. */
static enum parley_err seg(const char *in, char *out, size_t cap)
{
    static const char hexd[] = "0123456789ABCDEF";
    size_t o = 0;
    if (!in || !*in)
        return PARLEY_ERR_INVAL;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        bool plain = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
                     (*p >= 'A' && *p <= 'Z') || *p == '-' || *p == '_' || *p == '.' || *p == '~';
        if (o + 4 >= cap)
            return PARLEY_ERR_LIMIT;
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hexd[*p >> 4];
            out[o++] = hexd[*p & 15];
        }
    }
    out[o] = 0;
    return PARLEY_OK;
}

static enum parley_err fail(struct parley_messenger *m, enum parley_err rc, const char *what)
{
    client_set_error(m->c, 0, NULL, "%s: %s", what, parley_strerror(rc));
    return rc;
}

/* ------------------------------------------------------------------ local records */

static enum parley_err meta_get_str(struct parley_messenger *m, const char *k, char *out,
                                    size_t cap)
{
    uint8_t *v = NULL;
    size_t n = 0;
    enum parley_err rc = local_store_get(m->ls, LS_META, k, &v, &n);
    if (rc)
        return rc;
    if (n >= cap) {
        local_store_value_free(v, n);
        return PARLEY_ERR_STORE;
    }
    memcpy(out, v, n);
    out[n] = 0;
    local_store_value_free(v, n);
    return PARLEY_OK;
}

static enum parley_err meta_put_str(struct parley_messenger *m, const char *k, const char *v)
{
    return local_store_put(m->ls, LS_META, k, v, strlen(v));
}

static enum parley_err meta_get_u32(struct parley_messenger *m, const char *k, uint32_t *out)
{
    char b[16];
    enum parley_err rc = meta_get_str(m, k, b, sizeof b);
    if (rc)
        return rc;
    char *end = NULL;
    unsigned long v = strtoul(b, &end, 10);
    if (end == b || *end || v > UINT32_MAX)
        return PARLEY_ERR_STORE;
    *out = (uint32_t)v;
    return PARLEY_OK;
}

static enum parley_err meta_put_u32(struct parley_messenger *m, const char *k, uint32_t v)
{
    char b[16];
    snprintf(b, sizeof b, "%u", v);
    return meta_put_str(m, k, b);
}

static enum parley_err json_get(struct parley_messenger *m, enum ls_ns ns, const char *k,
                                json_t **out)
{
    uint8_t *v = NULL;
    size_t n = 0;
    enum parley_err rc = local_store_get(m->ls, ns, k, &v, &n);
    if (rc)
        return rc;
    *out = json_loadb((const char *)v, n, 0, NULL);
    local_store_value_free(v, n);
    return json_is_object(*out) ? PARLEY_OK : PARLEY_ERR_STORE;
}

static enum parley_err json_put(struct parley_messenger *m, enum ls_ns ns, const char *k,
                                const json_t *o)
{
    struct buf b;
    buf_init(&b, LOCAL_STORE_MAX_VALUE);
    enum parley_err rc = client_json_text(o, JSON_COMPACT, &b);
    if (!rc)
        rc = local_store_put(m->ls, ns, k, b.data, b.len);
    client_buf_wipe(&b);
    return rc;
}

/* Contact record: {"user_id","username","devices":{device_id: ik_b64},"changed":bool}. */
static enum parley_err contact_get(struct parley_messenger *m, const char *uid, json_t **out)
{
    return json_get(m, LS_CONTACT, uid, out);
}

static enum parley_err contact_by_name(struct parley_messenger *m, const char *username,
                                       json_t **out)
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

static enum parley_err contact_new(const char *uid, const char *username, json_t **out)
{
    *out = json_pack("{s:s, s:s, s:{}, s:b}", "user_id", uid, "username", username ? username : "",
                     "devices", "changed", 0);
    return *out ? PARLEY_OK : PARLEY_ERR_NOMEM;
}

static enum parley_err contact_save(struct parley_messenger *m, json_t *ct)
{
    const char *uid = json_string_value(json_object_get(ct, "user_id"));
    const char *name = json_string_value(json_object_get(ct, "username"));
    if (!uid)
        return PARLEY_ERR_INVAL;
    enum parley_err rc = json_put(m, LS_CONTACT, uid, ct);
    if (!rc && name && *name)
        rc = local_store_put(m->ls, LS_USERNAME, name, uid, strlen(uid));
    return rc;
}

/* Record the identity key of (contact, device). Trust on first use: a different key for
 * a known device sets "changed" and queues an IDENTITY_CHANGED event. */
static void push_event(struct parley_messenger *m, struct event_node *n);
static void note_identity(struct parley_messenger *m, json_t *ct, const char *did,
                          const uint8_t ik[PARLEY_IDENTITY_PUBLIC_BYTES])
{
    json_t *devs = json_object_get(ct, "devices");
    if (!json_is_object(devs)) {
        devs = json_object();
        json_object_set_new(ct, "devices", devs);
    }
    char *k = b64(ik, PARLEY_IDENTITY_PUBLIC_BYTES);
    if (!k)
        return;
    const char *old = json_string_value(json_object_get(devs, did));
    if (old && strcmp(old, k) != 0) {
        json_object_set_new(ct, "changed", json_true());
        struct event_node *n = calloc(1, sizeof *n);
        if (n) {
            n->ev.kind = PARLEY_EVENT_IDENTITY_CHANGED;
            bool ok = true;
            n->ev.from_user_id = client_strdup(json_string_value(json_object_get(ct, "user_id")), &ok);
            n->ev.from_username =
                client_strdup(json_string_value(json_object_get(ct, "username")), &ok);
            n->ev.peer_username = client_strdup(n->ev.from_username, &ok);
            n->ev.from_device = client_strdup(did, &ok);
            push_event(m, n);
        }
    }
    json_object_set_new(devs, did, json_string(k));
    free(k);
}

static void session_key(char *out, size_t cap, const char *uid, const char *did)
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

static enum parley_err session_load(struct parley_messenger *m, const char *uid, const char *did,
                                    struct parley_ratchet **out)
{
    return session_load_slot(m, uid, did, 0, out);
}

static enum parley_err session_save(struct parley_messenger *m, const char *uid, const char *did,
                                    const struct parley_ratchet *s);

/* Store s as the current session after it decrypted from `slot` (0 current, k>0 an
 * archived one, -1 a new one from X3DH); the previous current one is archived. */
static enum parley_err session_commit(struct parley_messenger *m, const char *uid,
                                      const char *did, int slot, const struct parley_ratchet *s)
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

static enum parley_err session_drop(struct parley_messenger *m, const char *uid, const char *did)
{
    enum parley_err rc = PARLEY_OK;
    for (int k = 0; k <= SESSION_ARCHIVE && !rc; k++) {
        char key[2 * ID_MAX + 8];
        slot_key(key, sizeof key, uid, did, k);
        rc = local_store_del(m->ls, LS_SESSION, key);
    }
    return rc;
}

static enum parley_err session_save(struct parley_messenger *m, const char *uid, const char *did,
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

/* ------------------------------------------------------------------ device keys */

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

static enum parley_err get_spk(struct parley_messenger *m, uint32_t id,
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

static enum parley_err get_opk(struct parley_messenger *m, uint32_t id, struct parley_prekey *opk)
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
    enum parley_err rc = meta_get_u32(m, "opk_next", &next);
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
        rc = meta_put_u32(m, "up_lo", next);
    if (!rc)
        rc = meta_put_u32(m, "up_hi", next + count);
    if (!rc)
        rc = meta_put_u32(m, "opk_next", next + count);
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
    rc = meta_get_u32(m, "spk_cur", &spk_id);
    if (!rc)
        rc = get_spk(m, spk_id, spk);
    if (rc)
        goto out;
    if (meta_get_u32(m, "up_lo", &lo) != PARLEY_OK || meta_get_u32(m, "up_hi", &hi) != PARLEY_OK)
        lo = hi = 0;
    if (hi < lo || hi - lo > PARLEY_PREKEY_BATCH)
        lo = hi = 0;
    s1 = b64(m->id->pk, sizeof m->id->pk);
    s2 = b64(spk->pk, sizeof spk->pk);
    s3 = b64(spk->sig, sizeof spk->sig);
    json_t *list = json_array();
    body = json_pack("{s:s?, s:{s:I, s:s?, s:s?}, s:o}", "identity_key", s1, "signed_prekey", "id",
                     (json_int_t)spk->id, "public_key", s2, "signature", s3, "one_time_prekeys",
                     list);
    if (!s1 || !s2 || !s3 || !body) {
        rc = PARLEY_ERR_NOMEM;
        goto out;
    }
    for (uint32_t i = lo; i < hi; i++) {
        if (get_opk(m, i, opk) != PARLEY_OK)
            continue; /* already used */
        char *pk = b64(opk->pk, sizeof opk->pk);
        if (!pk || json_array_append_new(list, json_pack("{s:I, s:s}", "id", (json_int_t)i,
                                                         "public_key", pk)) != 0) {
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
    rc = meta_put_u32(m, "up_lo", 0);
    if (!rc)
        rc = meta_put_u32(m, "up_hi", 0);
    if (!rc)
        rc = meta_put_str(m, "uploaded", "1");
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
static enum parley_err ensure_keys(struct parley_messenger *m, bool *fresh)
{
    char dev[ID_MAX + 1];
    const char *cur = parley_client_device_id(m->c);
    enum parley_err rc = meta_get_str(m, "device", dev, sizeof dev);
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
        rc = meta_put_u32(m, "spk_cur", 1);
    if (!rc)
        rc = meta_put_u32(m, "opk_next", 1);
    if (!rc)
        rc = gen_opks(m, PARLEY_PREKEY_BATCH);
    if (!rc)
        rc = meta_put_str(m, "uploaded", "0");
    if (!rc)
        rc = meta_put_str(m, "device", cur);
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
    enum parley_err rc = meta_get_str(m, "uploaded", up, sizeof up);
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

enum parley_err parley_messenger_open(struct parley_client *c,
                                      const struct parley_messenger_options *opts,
                                      struct parley_messenger **out)
{
    if (!c || !out)
        return PARLEY_ERR_INVAL;
    client_clear_error(c);
    if (!parley_client_logged_in(c)) {
        client_set_error(c, 0, NULL, "not logged in");
        return PARLEY_ERR_DENIED;
    }
    if (parley_crypto_init() != PARLEY_OK)
        return PARLEY_ERR_CRYPTO;
    enum parley_err rc = PARLEY_ERR_NOMEM;
    struct parley_messenger *m = calloc(1, sizeof *m);
    if (!m)
        goto out;
    m->c = c;
    if (opts)
        m->o = *opts;
    m->next_req = 1;
    m->id = sodium_malloc(sizeof *m->id);
    if (!m->id)
        goto out;
    rc = local_store_open(parley_client_home(c), &m->ls);
    if (rc) {
        client_set_error(c, 0, NULL, "cannot open the local store in %s: %s",
                         parley_client_home(c),
                         rc == PARLEY_ERR_DENIED ? "wrong key or passphrase" : parley_strerror(rc));
        goto out;
    }
    bool fresh = false;
    rc = ensure_keys(m, &fresh);
    if (rc) {
        fail(m, rc, "device keys");
        goto out;
    }
    rc = parley_messenger_refill_keys(m, NULL);
    if (rc)
        goto out;
    *out = m;
    m = NULL;
out:
    parley_messenger_free(m);
    return rc;
}

/* ------------------------------------------------------------------ stream */

static void push_event(struct parley_messenger *m, struct event_node *n)
{
    n->next = NULL;
    if (m->eq_tail)
        m->eq_tail->next = n;
    else
        m->eq_head = n;
    m->eq_tail = n;
}

static void close_stream(struct parley_messenger *m)
{
    if (m->ws) {
        ws_client_free(m->ws);
        m->ws = NULL;
    }
    m->acks_inflight = 0;
}

enum parley_err parley_messenger_connect(struct parley_messenger *m)
{
    if (!m)
        return PARLEY_ERR_INVAL;
    if (m->ws)
        return PARLEY_OK;
    struct parley_client *c = m->c;
    if (!c->s.token) {
        client_set_error(c, 0, NULL, "not logged in");
        return PARLEY_ERR_DENIED;
    }
    char hdr[4200];
    int n = snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", c->s.token);
    if (n < 0 || (size_t)n >= sizeof hdr) {
        sodium_memzero(hdr, sizeof hdr);
        return PARLEY_ERR_LIMIT;
    }
    struct http_client_config cfg = {.url = c->server,
                                     .ca_file = c->ca_file,
                                     .insecure_skip_verify = c->insecure_skip_verify,
                                     .timeout_ms = c->timeout_ms,
                                     .max_response = MAX_FRAME};
    int status = 0;
    enum parley_err rc = ws_client_connect(&cfg, "/v1/stream", hdr, &status, &m->ws);
    sodium_memzero(hdr, sizeof hdr);
    if (rc == PARLEY_ERR_SERVER)
        client_set_error(c, status, NULL, "the server refused the stream (HTTP %d)", status);
    else if (rc)
        client_set_error(c, 0, NULL, "cannot open the stream: %s", parley_strerror(rc));
    return rc;
}

int parley_messenger_fd(const struct parley_messenger *m)
{
    return m && m->ws ? ws_client_fd(m->ws) : -1;
}

static enum parley_err send_frame(struct parley_messenger *m, Parley__Stream__ClientFrame *f)
{
    size_t n = parley__stream__client_frame__get_packed_size(f);
    if (n > MAX_FRAME)
        return PARLEY_ERR_LIMIT;
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return PARLEY_ERR_NOMEM;
    parley__stream__client_frame__pack(f, b);
    enum parley_err rc = ws_client_send(m->ws, true, b, n);
    free(b);
    if (rc) {
        client_set_error(m->c, 0, NULL, "stream: %s", ws_client_error(m->ws));
        close_stream(m);
    }
    return rc;
}

/* Read one frame from the socket (waiting up to timeout_ms). */
static enum parley_err read_frame(struct parley_messenger *m, uint32_t timeout_ms,
                                  Parley__Stream__ServerFrame **out)
{
    struct buf b;
    buf_init(&b, MAX_FRAME);
    bool bin = false;
    uint16_t code = 0;
    enum parley_err rc = ws_client_recv(m->ws, timeout_ms, &bin, &b, &code);
    if (rc == PARLEY_OK) {
        *out = parley__stream__server_frame__unpack(NULL, b.len, b.data);
        if (!*out || !bin) {
            if (*out)
                parley__stream__server_frame__free_unpacked(*out, NULL);
            *out = NULL;
            client_set_error(m->c, 0, NULL, "stream: undecodable frame from the server");
            rc = PARLEY_ERR_PROTO;
            close_stream(m);
        }
    } else if (rc != PARLEY_ERR_TIMEOUT) {
        if (rc == PARLEY_ERR_CLOSED)
            client_set_error(m->c, 0, NULL, "stream closed by the server (code %u)", code);
        else
            client_set_error(m->c, 0, NULL, "stream: %s", ws_client_error(m->ws));
        close_stream(m);
    }
    buf_cleanup(&b);
    return rc;
}

/* Keep a pushed frame for parley_messenger_next. */
static enum parley_err queue_frame(struct parley_messenger *m, Parley__Stream__ServerFrame *f)
{
    struct frame_node *n = malloc(sizeof *n);
    if (!n || m->fq_len >= MAX_PENDING) {
        free(n);
        parley__stream__server_frame__free_unpacked(f, NULL);
        return PARLEY_ERR_LIMIT;
    }
    n->f = f;
    n->next = NULL;
    if (m->fq_tail)
        m->fq_tail->next = n;
    else
        m->fq_head = n;
    m->fq_tail = n;
    m->fq_len++;
    return PARLEY_OK;
}

/* Wait for the answer to request `req`; pushes that arrive meanwhile are queued. */
static enum parley_err await_answer(struct parley_messenger *m, uint64_t req,
                                    Parley__Stream__ServerFrame **out)
{
    uint32_t t = m->c->timeout_ms ? m->c->timeout_ms : 30000;
    int64_t deadline = now_ms() + t;
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            client_set_error(m->c, 0, NULL, "no answer from the server in time");
            return PARLEY_ERR_TIMEOUT;
        }
        Parley__Stream__ServerFrame *f = NULL;
        enum parley_err rc = read_frame(m, (uint32_t)left, &f);
        if (rc == PARLEY_ERR_TIMEOUT)
            continue;
        if (rc)
            return rc;
        if (f->id == req) {
            *out = f;
            return PARLEY_OK;
        }
        if (f->id == 0 && f->body_case == PARLEY__STREAM__SERVER_FRAME__BODY_ERROR) {
            client_set_error(m->c, 0, f->error->code, "stream error: %s", f->error->message);
            parley__stream__server_frame__free_unpacked(f, NULL);
            return PARLEY_ERR_SERVER;
        }
        if (f->id == 0) {
            rc = queue_frame(m, f);
            if (rc)
                return rc;
            continue;
        }
        if (f->body_case == PARLEY__STREAM__SERVER_FRAME__BODY_ACK_RESULT && m->acks_inflight)
            m->acks_inflight--;
        parley__stream__server_frame__free_unpacked(f, NULL);
    }
}

static enum parley_err send_ack(struct parley_messenger *m, uint64_t envelope_id)
{
    if (m->o.no_ack || !m->ws)
        return PARLEY_OK;
    Parley__Stream__ClientFrame f = PARLEY__STREAM__CLIENT_FRAME__INIT;
    Parley__Stream__Ack a = PARLEY__STREAM__ACK__INIT;
    a.n_envelope_ids = 1;
    a.envelope_ids = &envelope_id;
    f.id = m->next_req++;
    f.body_case = PARLEY__STREAM__CLIENT_FRAME__BODY_ACK;
    f.ack = &a;
    enum parley_err rc = send_frame(m, &f);
    if (!rc)
        m->acks_inflight++;
    return rc;
}

/* ------------------------------------------------------------------ sessions */

static enum parley_err fetch_bundles(struct parley_messenger *m, const char *username,
                                     const char *device, json_t **out)
{
    char name[512], path[700];
    enum parley_err rc = seg(username, name, sizeof name);
    if (rc)
        return rc;
    if (device && !id_ok(device)) {
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
    if (!unb64(b->identity_pk, sizeof b->identity_pk,
               json_string_value(json_object_get(d, "identity_key"))) ||
        !json_is_integer(spk_id) || json_integer_value(spk_id) < 0 ||
        json_integer_value(spk_id) > UINT32_MAX ||
        !unb64(b->spk_pk, sizeof b->spk_pk, json_string_value(json_object_get(spk, "public_key"))) ||
        !unb64(b->spk_sig, sizeof b->spk_sig,
               json_string_value(json_object_get(spk, "signature"))))
        return false;
    b->spk_id = (uint32_t)json_integer_value(spk_id);
    if (json_is_object(opk)) {
        json_t *oid = json_object_get(opk, "id");
        if (!json_is_integer(oid) || json_integer_value(oid) < 0 ||
            json_integer_value(oid) > UINT32_MAX ||
            !unb64(b->opk_pk, sizeof b->opk_pk,
                   json_string_value(json_object_get(opk, "public_key"))))
            return false;
        b->has_opk = true;
        b->opk_id = (uint32_t)json_integer_value(oid);
    }
    return true;
}

/* Start sessions (X3DH as initiator) with every device in a GET /v1/keys/... answer and
 * record them in the contact. Our own device is skipped. */
static enum parley_err start_sessions(struct parley_messenger *m, json_t *ans, json_t *ct)
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
        if (!id_ok(did) || !id_ok(uid)) {
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
        note_identity(m, ct, did, b.identity_pk);
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
static enum parley_err ensure_contact(struct parley_messenger *m, const char *username,
                                      json_t **out)
{
    enum parley_err rc = contact_by_name(m, username, out);
    if (rc != PARLEY_ERR_NOTFOUND)
        return rc;
    json_t *ans = NULL, *ct = NULL;
    rc = fetch_bundles(m, username, NULL, &ans);
    if (rc)
        return rc;
    const char *uid = json_string_value(json_object_get(ans, "user_id"));
    const char *name = json_string_value(json_object_get(ans, "username"));
    rc = contact_get(m, uid, &ct); /* known by id under another name (renamed)? */
    if (rc == PARLEY_ERR_NOTFOUND)
        rc = contact_new(uid, name ? name : username, &ct);
    if (!rc) {
        json_object_set_new(ct, "username", json_string(name ? name : username));
        rc = start_sessions(m, ans, ct);
    }
    json_decref(ans);
    if (rc) {
        json_decref(ct);
        return rc;
    }
    *out = ct;
    return PARLEY_OK;
}

/* The contact record for uid, or a new one (username may be NULL). */
static enum parley_err contact_or_new(struct parley_messenger *m, const char *uid,
                                      const char *username, json_t **out)
{
    enum parley_err rc = contact_get(m, uid, out);
    if (rc == PARLEY_ERR_NOTFOUND)
        rc = contact_new(uid, username, out);
    else if (!rc && username && *username)
        json_object_set_new(*out, "username", json_string(username));
    return rc;
}

/* ------------------------------------------------------------------ sending */

struct target_dev {
    char uid[ID_MAX + 1];
    char did[ID_MAX + 1];
};

static enum parley_err add_devices(json_t *ct, const char *skip_did, struct target_dev **list,
                                   size_t *n)
{
    const char *uid = json_string_value(json_object_get(ct, "user_id"));
    const char *did;
    json_t *v;
    json_object_foreach(json_object_get(ct, "devices"), did, v)
    {
        if (skip_did && strcmp(did, skip_did) == 0)
            continue;
        if (!id_ok(did) || !id_ok(uid))
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

static size_t make_ad(uint8_t *ad, size_t cap, const char *sender_dev, const char *recip_dev)
{
    int n = snprintf((char *)ad, cap, "parley-msg-v1:%s:%s", sender_dev, recip_dev);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* Pack a Content with padding to a multiple of PAD_BLOCK. Secret output (sodium). */
static enum parley_err pack_content(Parley__Content__Content *ct, uint8_t **out, size_t *len)
{
    uint8_t zeros[PAD_BLOCK];
    memset(zeros, 0, sizeof zeros);
    ct->padding.data = NULL;
    ct->padding.len = 0;
    size_t n = parley__content__content__get_packed_size(ct);
    size_t pad = PAD_BLOCK - (n % PAD_BLOCK);
    ct->padding.data = zeros;
    ct->padding.len = pad;
    n = parley__content__content__get_packed_size(ct);
    if (n > PARLEY_RATCHET_MAX_PLAINTEXT_BYTES)
        return PARLEY_ERR_LIMIT;
    uint8_t *b = sodium_malloc(n ? n : 1);
    if (!b)
        return PARLEY_ERR_NOMEM;
    parley__content__content__pack(ct, b);
    *out = b;
    *len = n;
    return PARLEY_OK;
}

static void free_copies(Parley__Stream__DeviceCiphertext **copies, size_t n)
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
static enum parley_err fix_devices(struct parley_messenger *m, const Parley__Stream__SendResult *r,
                                   json_t *contacts, bool *dropped)
{
    enum parley_err rc = PARLEY_OK;
    for (size_t i = 0; i < r->n_extra && !rc; i++) {
        const char *uid = r->extra[i]->user_id, *did = r->extra[i]->device_id;
        json_t *ct = json_object_get(contacts, uid ? uid : "");
        if (!ct || !id_ok(did))
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
        rc = fetch_bundles(m, name, did, &ans);
        if (rc == PARLEY_ERR_NOTFOUND) {
            rc = PARLEY_OK; /* gone meanwhile: the next round will tell */
            continue;
        }
        if (!rc)
            rc = start_sessions(m, ans, ct);
        json_decref(ans);
    }
    return rc;
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
    rc = pack_content(content, &pt, &pt_len);
    if (rc)
        goto out;
    rc = parley_messenger_connect(m);
    if (rc)
        goto out;
    for (int round = 0; round < MAX_SEND_ROUNDS; round++) {
        struct target_dev *devs = NULL;
        size_t nd = 0;
        rc = add_devices(peer, NULL, &devs, &nd);
        if (!rc)
            rc = add_devices(self, self_did, &devs, &nd);
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
            size_t adl = make_ad(ad, sizeof ad, self_did, devs[i].did);
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
            free_copies(copies, nc);
            fail(m, rc, "encrypting");
            goto out;
        }

        Parley__Stream__ClientFrame f = PARLEY__STREAM__CLIENT_FRAME__INIT;
        Parley__Stream__Send snd = PARLEY__STREAM__SEND__INIT;
        snd.client_message_id = content->message_id;
        snd.target_case = PARLEY__STREAM__SEND__TARGET_TO_USER;
        snd.to_user = (char *)peer_uid;
        snd.n_copies = nc;
        snd.copies = copies;
        f.id = m->next_req++;
        f.body_case = PARLEY__STREAM__CLIENT_FRAME__BODY_SEND;
        f.send = &snd;
        rc = send_frame(m, &f);
        free_copies(copies, nc);
        if (rc)
            goto out;
        Parley__Stream__ServerFrame *ans = NULL;
        rc = await_answer(m, f.id, &ans);
        if (rc)
            goto out;
        if (ans->body_case == PARLEY__STREAM__SERVER_FRAME__BODY_ERROR) {
            client_set_error(m->c, 0, ans->error->code, "send refused: %s", ans->error->message);
            rc = PARLEY_ERR_SERVER;
        } else if (ans->body_case != PARLEY__STREAM__SERVER_FRAME__BODY_SEND_RESULT) {
            client_set_error(m->c, 0, NULL, "unexpected answer to a send");
            rc = PARLEY_ERR_PROTO;
        } else if (ans->send_result->status ==
                       PARLEY__STREAM__SEND_RESULT__STATUS__STALE_DEVICES) {
            /* Each change commits on its own (start_sessions is a transaction). */
            json_t *map = json_object();
            if (!map) {
                rc = PARLEY_ERR_NOMEM;
            } else {
                json_object_set(map, peer_uid, peer);
                json_object_set(map, self_uid, self);
                rc = fix_devices(m, ans->send_result, map, NULL);
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

/* A history record: {"id","out","from","text","sent_at","recv_at","exp","status"}. */
static enum parley_err history_add(struct parley_messenger *m, const char *peer_uid,
                                   const char *idhex, bool out, const char *from,
                                   const char *text, int64_t sent_at, int64_t recv_at,
                                   uint32_t exp, const char *status)
{
    json_t *r = json_pack("{s:s, s:b, s:s, s:s, s:I, s:I, s:I, s:s}", "id", idhex, "out", out,
                          "from", from ? from : "", "text", text ? text : "", "sent_at",
                          (json_int_t)sent_at, "recv_at", (json_int_t)recv_at, "exp",
                          (json_int_t)exp, "status", status);
    if (!r)
        return PARLEY_ERR_NOMEM;
    struct buf b;
    buf_init(&b, LOCAL_STORE_MAX_VALUE);
    enum parley_err rc = client_json_text(r, JSON_COMPACT, &b);
    if (!rc)
        rc = local_store_msg_add(m->ls, peer_uid, idhex, b.data, b.len);
    client_buf_wipe(&b);
    json_decref(r);
    return rc;
}

static enum parley_err history_set_status(struct parley_messenger *m, const char *peer_uid,
                                          const char *idhex, const char *status, bool only_out)
{
    uint8_t *v = NULL;
    size_t n = 0;
    enum parley_err rc = local_store_msg_get(m->ls, peer_uid, idhex, &v, &n);
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
        struct buf b;
        buf_init(&b, LOCAL_STORE_MAX_VALUE);
        rc = client_json_text(r, JSON_COMPACT, &b);
        if (!rc)
            rc = local_store_msg_update(m->ls, peer_uid, idhex, b.data, b.len);
        client_buf_wipe(&b);
    }
    json_decref(r);
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
    enum parley_err rc = ensure_contact(m, username, &peer);
    if (rc) {
        if (rc == PARLEY_ERR_NOTFOUND)
            client_set_error(m->c, 404, "no_keys", "%s has no device that can receive messages",
                             username);
        return rc;
    }
    uint8_t mid[MSGID_BYTES];
    char hex[PARLEY_MESSAGE_ID_HEX_BYTES];
    randombytes_buf(mid, sizeof mid);
    to_hex(hex, mid, sizeof mid);
    int64_t sent = now_ms();
    Parley__Content__Content ct = PARLEY__CONTENT__CONTENT__INIT;
    Parley__Content__Text tx = PARLEY__CONTENT__TEXT__INIT;
    tx.body = (char *)text;
    ct.version = 1;
    ct.message_id.data = mid;
    ct.message_id.len = sizeof mid;
    ct.sent_at_ms = sent;
    ct.body_case = PARLEY__CONTENT__CONTENT__BODY_TEXT;
    ct.text = &tx;
    ct.expire_after_s = expire_after_s;
    ct.to_user = (char *)json_string_value(json_object_get(peer, "user_id"));
    ct.to_username = (char *)json_string_value(json_object_get(peer, "username"));
    rc = send_content(m, peer, &ct);
    if (!rc) {
        rc = history_add(m, ct.to_user, hex, true, parley_client_username(m->c), text, sent, 0,
                         expire_after_s, "sent");
        if (rc == PARLEY_ERR_EXISTS)
            rc = PARLEY_OK;
        if (rc)
            fail(m, rc, "message sent but not saved in the local history");
    }
    if (!rc && msg_id)
        memcpy(msg_id, hex, sizeof hex);
    json_decref(peer);
    return rc;
}

static enum parley_err send_receipt(struct parley_messenger *m, json_t *peer, bool read,
                                    ProtobufCBinaryData *ids, size_t n)
{
    uint8_t mid[MSGID_BYTES];
    randombytes_buf(mid, sizeof mid);
    Parley__Content__Content ct = PARLEY__CONTENT__CONTENT__INIT;
    Parley__Content__Receipt r = PARLEY__CONTENT__RECEIPT__INIT;
    r.type = read ? PARLEY__CONTENT__RECEIPT__TYPE__READ : PARLEY__CONTENT__RECEIPT__TYPE__DELIVERED;
    r.n_message_ids = n;
    r.message_ids = ids;
    ct.version = 1;
    ct.message_id.data = mid;
    ct.message_id.len = sizeof mid;
    ct.sent_at_ms = now_ms();
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
        if (!from_hex(raw[i], MSGID_BYTES, u.ids[i]))
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

/* ------------------------------------------------------------------ receiving */

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

static struct event_node *new_event(enum parley_event_kind kind, const Parley__Stream__Envelope *e)
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
        to_hex(n->ev.id, e->client_message_id.data, MSGID_BYTES);
    if (!ok) {
        parley_event_cleanup(&n->ev);
        free(n);
        return NULL;
    }
    return n;
}

/* Decrypt with the stored session or, for a prekey message, a new one from X3DH.
 * On success *sess is the advanced session and *used_opk the one-time prekey to delete
 * (0 = none). */
static enum parley_err decrypt_env(struct parley_messenger *m, const Parley__Stream__Envelope *e,
                                   const uint8_t *ctx, size_t ctx_len,
                                   struct parley_ratchet **sess, int *slot, uint32_t *used_opk,
                                   uint8_t **pt, size_t *pt_len)
{
    uint8_t ad[200];
    size_t adl = make_ad(ad, sizeof ad, e->sender_device, parley_client_device_id(m->c));
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
        rc = parley_ratchet_decrypt(s, out, cap, pt_len, ctx, ctx_len,
                                    ad, adl);
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
    rc = spk && opk ? get_spk(m, hdr.spk_id, spk) : PARLEY_ERR_NOMEM;
    if (!rc && hdr.has_opk)
        rc = get_opk(m, hdr.opk_id, opk);
    if (!rc)
        rc = parley_x3dh_respond(&s, m->id, spk, hdr.has_opk ? opk : NULL, &hdr);
    if (spk)
        sodium_free(spk);
    if (opk)
        sodium_free(opk);
    if (rc)
        goto fail;
    rc = parley_ratchet_decrypt(s, out, cap, pt_len, ctx, ctx_len, ad,
                                adl);
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

static enum parley_err handle_group(struct parley_messenger *m, const Parley__Stream__Envelope *e,
                                    const char *seen_key, const char *idhex);

/* Process a MESSAGE envelope inside the caller's transaction: PARLEY_OK means "stored
 * (or deliberately dropped): ack it". *receipt_to receives the contact to send a
 * delivery receipt to (or stays NULL). */
static enum parley_err process_message(struct parley_messenger *m,
                                       const Parley__Stream__Envelope *e, json_t **receipt_to)
{
    const char *self_uid = parley_client_user_id(m->c);
    char seen_key[2 * ID_MAX + 40];
    char idhex[PARLEY_MESSAGE_ID_HEX_BYTES] = "";
    if (!id_ok(e->sender_user) || !id_ok(e->sender_device) ||
        e->client_message_id.len != MSGID_BYTES) {
        return PARLEY_OK; /* malformed: nothing to keep */
    }
    to_hex(idhex, e->client_message_id.data, MSGID_BYTES);
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
        return handle_group(m, e, seen_key, idhex);

    struct parley_ratchet *s = NULL;
    uint8_t *pt = NULL;
    size_t pt_len = 0;
    uint32_t used_opk = 0;
    Parley__Content__Content *ct = NULL;
    json_t *contact = NULL;
    struct event_node *ev = NULL;
    int slot = 0;
    rc = decrypt_env(m, e, e->ciphertext.data, e->ciphertext.len, &s, &slot, &used_opk, &pt,
                     &pt_len);
    if (rc == PARLEY_OK) {
        ct = parley__content__content__unpack(NULL, pt_len, pt);
        if (!ct || ct->message_id.len != MSGID_BYTES ||
            memcmp(ct->message_id.data, e->client_message_id.data, MSGID_BYTES) != 0)
            rc = PARLEY_ERR_CRYPTO; /* authentic but inconsistent: drop it */
    }
    if (rc == PARLEY_ERR_CRYPTO) {
        ev = new_event(PARLEY_EVENT_UNDECRYPTABLE, e);
        if (ev)
            push_event(m, ev);
        rc = PARLEY_OK;
        goto out;
    }
    if (rc)
        goto out;

    bool from_self = strcmp(e->sender_user, self_uid) == 0;
    /* The conversation: the sender, or (sync copy from our other device) the recipient. */
    const char *peer_uid = from_self ? ct->to_user : e->sender_user;
    if (!id_ok(peer_uid)) {
        rc = PARLEY_OK;
        goto out;
    }
    unsigned lvl4 = local_store_depth(m->ls);
    rc = local_store_begin(m->ls);
    if (rc)
        goto out;
    json_t *sender = NULL;
    rc = contact_or_new(m, e->sender_user, e->sender_username, &sender);
    if (!rc) {
        uint8_t ik[PARLEY_IDENTITY_PUBLIC_BYTES];
        if (parley_ratchet_peer_identity(s, ik) == PARLEY_OK)
            note_identity(m, sender, e->sender_device, ik);
        rc = contact_save(m, sender);
    }
    if (!rc)
        rc = session_commit(m, e->sender_user, e->sender_device, slot, s);
    if (!rc && used_opk) {
        char k[16];
        snprintf(k, sizeof k, "%u", used_opk);
        rc = local_store_del(m->ls, LS_PREKEY, k);
    }
    if (!rc)
        rc = local_store_put(m->ls, LS_SEEN, seen_key, "1", 1);
    const char *peer_name = NULL;
    if (!rc) {
        if (from_self) {
            rc = contact_get(m, peer_uid, &contact);
            const char *to_name = ct->to_username && *ct->to_username ? ct->to_username : NULL;
            if (rc == PARLEY_ERR_NOTFOUND)
                rc = contact_new(peer_uid, to_name, &contact);
            const char *known = json_string_value(json_object_get(contact, "username"));
            if (!rc && to_name && (!known || !*known)) /* our own device vouches for it */
                json_object_set_new(contact, "username", json_string(to_name));
            if (!rc)
                rc = contact_save(m, contact);
            peer_name = json_string_value(json_object_get(contact, "username"));
        } else {
            peer_name = e->sender_username;
        }
    }
    int64_t now = now_ms();
    if (!rc && ct->body_case == PARLEY__CONTENT__CONTENT__BODY_TEXT && ct->text->body) {
        rc = history_add(m, peer_uid, idhex, from_self, e->sender_username, ct->text->body,
                         ct->sent_at_ms, from_self ? 0 : now, ct->expire_after_s,
                         from_self ? "sent" : "received");
        if (rc == PARLEY_ERR_EXISTS)
            rc = PARLEY_OK;
        ev = new_event(PARLEY_EVENT_MESSAGE, e);
        if (!ev) {
            rc = PARLEY_ERR_NOMEM;
        } else {
            bool ok = true;
            ev->ev.text = client_strdup(ct->text->body, &ok);
            ev->ev.peer_username = client_strdup(peer_name, &ok);
            ev->ev.outgoing = from_self;
            ev->ev.sent_at_ms = ct->sent_at_ms;
            ev->ev.expire_after_s = ct->expire_after_s;
            if (!ok)
                rc = PARLEY_ERR_NOMEM;
        }
    } else if (!rc && ct->body_case == PARLEY__CONTENT__CONTENT__BODY_RECEIPT) {
        bool read = ct->receipt->type == PARLEY__CONTENT__RECEIPT__TYPE__READ;
        for (size_t i = 0; i < ct->receipt->n_message_ids && !rc; i++) {
            if (ct->receipt->message_ids[i].len != MSGID_BYTES)
                continue;
            char h[PARLEY_MESSAGE_ID_HEX_BYTES];
            to_hex(h, ct->receipt->message_ids[i].data, MSGID_BYTES);
            if (from_self) /* our other device read the peer's message */
                rc = read ? history_set_status(m, peer_uid, h, "read", false) : PARLEY_OK;
            else
                rc = history_set_status(m, peer_uid, h, read ? "read" : "delivered", true);
            if (rc == PARLEY_ERR_NOTFOUND)
                rc = PARLEY_OK;
            if (!rc && !from_self) {
                struct event_node *rn = new_event(PARLEY_EVENT_RECEIPT, e);
                if (rn) {
                    memcpy(rn->ev.id, h, sizeof h);
                    rn->ev.read = read;
                    bool ok = true;
                    rn->ev.peer_username = client_strdup(peer_name, &ok);
                    push_event(m, rn);
                }
            }
        }
    }
    rc = local_store_end(m->ls, lvl4, rc);
    if (rc) {
        if (ev) {
            parley_event_cleanup(&ev->ev);
            free(ev);
            ev = NULL;
        }
        /* Not stored: leave the envelope on the server for a later attempt. Note the
         * session did not advance on disk, but the message key is now spent in memory
         * only; the stored session can still decrypt the redelivery. */
        json_decref(sender);
        goto out;
    }
    if (ev)
        push_event(m, ev);
    if (!from_self && !m->o.no_receipts && ct->body_case == PARLEY__CONTENT__CONTENT__BODY_TEXT)
        *receipt_to = sender; /* the caller sends it after the commit */
    else
        json_decref(sender);
    (void)now;
out:
    json_decref(contact);
    if (ct)
        parley__content__content__free_unpacked(ct, NULL);
    parley_ratchet_free(s);
    if (pt)
        sodium_free(pt);
    return rc;
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
    rc = send_ack(m, e->envelope_id);
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
    if (x && x->client_message_id.len == MSGID_BYTES && id_ok(x->recipient_user)) {
        char h[PARLEY_MESSAGE_ID_HEX_BYTES];
        to_hex(h, x->client_message_id.data, MSGID_BYTES);
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
            push_event(m, n);
        }
    }
    return send_ack(m, e->envelope_id);
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
        push_event(m, n);
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
    default:
        break;
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
    int64_t deadline = now_ms() + timeout_ms;
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
        Parley__Stream__ServerFrame *f = NULL;
        if (m->fq_head) {
            struct frame_node *n = m->fq_head;
            m->fq_head = n->next;
            if (!m->fq_head)
                m->fq_tail = NULL;
            m->fq_len--;
            f = n->f;
            free(n);
        } else {
            enum parley_err rc = parley_messenger_connect(m);
            if (rc)
                return rc;
            int64_t left = deadline - now_ms();
            rc = read_frame(m, left > 0 ? (uint32_t)left : 0, &f);
            if (rc)
                return rc;
        }
        enum parley_err rc = handle_frame(m, f);
        parley__stream__server_frame__free_unpacked(f, NULL);
        if (rc)
            return rc;
    }
}

/* ------------------------------------------------------------------ history */

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
    const char *uid = json_string_value(json_object_get(ct, "user_id"));
    struct hist_walk w = {out, NULL, 0, now_ms()};
    rc = local_store_msg_list(m->ls, uid, limit, hist_item, &w);
    for (size_t i = 0; i < w.ngone && !rc; i++)
        rc = local_store_msg_del(m->ls, uid, w.gone[i]); /* disappearing messages */
    free(w.gone);
    json_decref(ct);
    if (rc)
        parley_history_cleanup(out);
    return rc;
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
        if (unb64(keys[i], PARLEY_IDENTITY_PUBLIC_BYTES, json_string_value(v)))
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
    enum parley_err rc = ensure_contact(m, username, &peer);
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

void parley_messenger_free(struct parley_messenger *m)
{
    if (!m)
        return;
    if (m->ws) {
        /* Give outstanding acks a moment to be confirmed, so the server deletes them. */
        int64_t deadline = now_ms() + 2000;
        while (m->acks_inflight && m->ws && now_ms() < deadline) {
            Parley__Stream__ServerFrame *f = NULL;
            if (read_frame(m, (uint32_t)(deadline - now_ms()), &f) != PARLEY_OK)
                break;
            if (f->body_case == PARLEY__STREAM__SERVER_FRAME__BODY_ACK_RESULT)
                m->acks_inflight--;
            parley__stream__server_frame__free_unpacked(f, NULL);
        }
        if (m->ws)
            ws_client_close(m->ws, 1000);
        close_stream(m);
    }
    while (m->fq_head) {
        struct frame_node *n = m->fq_head;
        m->fq_head = n->next;
        parley__stream__server_frame__free_unpacked(n->f, NULL);
        free(n);
    }
    while (m->eq_head) {
        struct event_node *n = m->eq_head;
        m->eq_head = n->next;
        parley_event_cleanup(&n->ev);
        free(n);
    }
    local_store_close(m->ls);
    if (m->id)
        sodium_free(m->id);
    free(m);
}

/* ------------------------------------------------------------------ groups */

/* A group copy (one per member device) is either
 *   0x00 || sender-key message                                   (device has our key)
 *   0x01 || len (4, BE) || Double Ratchet message || sender-key message
 * where the ratchet message carries a Content with our current sender key's
 * distribution message (and the same message id and group id). */
#define GROUP_COPY_KEY_ONLY 0x00
#define GROUP_COPY_WITH_KEY 0x01

void parley_group_cleanup(struct parley_group *g)
{
    if (!g)
        return;
    free(g->group_id);
    free(g->name);
    for (size_t i = 0; i < g->member_count; i++) {
        free(g->members[i].user_id);
        free(g->members[i].username);
    }
    free(g->members);
    memset(g, 0, sizeof *g);
}

void parley_group_list_cleanup(struct parley_group_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        parley_group_cleanup(&l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

static enum parley_err parse_group(json_t *o, struct parley_group *g)
{
    memset(g, 0, sizeof *g);
    json_t *mem = json_object_get(o, "members");
    const char *id = json_string_value(json_object_get(o, "group_id"));
    const char *name = json_string_value(json_object_get(o, "name"));
    if (!id_ok(id) || !name || !json_is_array(mem))
        return PARLEY_ERR_PROTO;
    bool ok = true;
    g->group_id = client_strdup(id, &ok);
    g->name = client_strdup(name, &ok);
    g->created_at = json_integer_value(json_object_get(o, "created_at"));
    g->updated_at = json_integer_value(json_object_get(o, "updated_at"));
    g->members = calloc(json_array_size(mem) + 1, sizeof *g->members);
    if (!g->members)
        ok = false;
    size_t i;
    json_t *e;
    json_array_foreach(mem, i, e)
    {
        if (!ok)
            break;
        const char *uid = json_string_value(json_object_get(e, "user_id"));
        const char *un = json_string_value(json_object_get(e, "username"));
        if (!id_ok(uid) || !un) {
            parley_group_cleanup(g);
            return PARLEY_ERR_PROTO;
        }
        struct parley_group_member *gm = &g->members[g->member_count++];
        gm->user_id = client_strdup(uid, &ok);
        gm->username = client_strdup(un, &ok);
        gm->admin = json_is_true(json_object_get(e, "admin"));
        gm->joined_at = json_integer_value(json_object_get(e, "joined_at"));
    }
    if (!ok) {
        parley_group_cleanup(g);
        return PARLEY_ERR_NOMEM;
    }
    return PARLEY_OK;
}

static enum parley_err group_answer(struct parley_messenger *m, json_t *ans, int status,
                                    struct parley_group *out)
{
    if (!out)
        return PARLEY_OK;
    enum parley_err rc = ans ? parse_group(ans, out) : PARLEY_ERR_PROTO;
    if (rc == PARLEY_ERR_PROTO)
        client_set_error(m->c, status, NULL, "malformed group answer from the server");
    return rc;
}

static enum parley_err group_path(struct parley_messenger *m, char *out, size_t cap,
                                  const char *gid, const char *suffix)
{
    if (!id_ok(gid)) {
        client_set_error(m->c, 0, NULL, "invalid group id");
        return PARLEY_ERR_INVAL;
    }
    int n = snprintf(out, cap, "/v1/groups/%s%s", gid, suffix ? suffix : "");
    return n < 0 || (size_t)n >= cap ? PARLEY_ERR_LIMIT : PARLEY_OK;
}

enum parley_err parley_messenger_group_create(struct parley_messenger *m, const char *name,
                                              const char *const *usernames, size_t n,
                                              struct parley_group *out)
{
    if (!m || !name || (n && !usernames))
        return PARLEY_ERR_INVAL;
    client_clear_error(m->c);
    json_t *arr = json_array();
    json_t *body = json_pack("{s:s, s:o}", "name", name, "members", arr);
    json_t *ans = NULL;
    enum parley_err rc = body ? PARLEY_OK : PARLEY_ERR_NOMEM;
    for (size_t i = 0; i < n && !rc; i++)
        if (!usernames[i] || json_array_append_new(arr, json_string(usernames[i])) != 0)
            rc = PARLEY_ERR_INVAL;
    int status = 0;
    if (!rc)
        rc = client_call(m->c, "POST", "/v1/groups", body, false, true, &status, &ans);
    if (!rc)
        rc = group_answer(m, ans, status, out);
    json_decref(body);
    json_decref(ans);
    return rc;
}

enum parley_err parley_messenger_group_get(struct parley_messenger *m, const char *group_id,
                                           struct parley_group *out)
{
    if (!m || !out)
        return PARLEY_ERR_INVAL;
    client_clear_error(m->c);
    char path[200];
    enum parley_err rc = group_path(m, path, sizeof path, group_id, NULL);
    json_t *ans = NULL;
    int status = 0;
    if (!rc)
        rc = client_call(m->c, "GET", path, NULL, false, true, &status, &ans);
    if (rc == PARLEY_ERR_SERVER && status == 404)
        rc = PARLEY_ERR_NOTFOUND;
    if (!rc)
        rc = group_answer(m, ans, status, out);
    json_decref(ans);
    return rc;
}

enum parley_err parley_messenger_group_list(struct parley_messenger *m,
                                            struct parley_group_list *out)
{
    if (!m || !out)
        return PARLEY_ERR_INVAL;
    client_clear_error(m->c);
    memset(out, 0, sizeof *out);
    json_t *ans = NULL;
    int status = 0;
    enum parley_err rc = client_call(m->c, "GET", "/v1/groups", NULL, false, true, &status, &ans);
    json_t *arr = json_object_get(ans, "groups");
    if (!rc && !json_is_array(arr)) {
        client_set_error(m->c, status, NULL, "malformed group list from the server");
        rc = PARLEY_ERR_PROTO;
    }
    if (!rc) {
        out->items = calloc(json_array_size(arr) + 1, sizeof *out->items);
        if (!out->items)
            rc = PARLEY_ERR_NOMEM;
    }
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (rc)
            break;
        rc = parse_group(e, &out->items[out->count]);
        if (!rc)
            out->count++;
    }
    if (rc)
        parley_group_list_cleanup(out);
    json_decref(ans);
    return rc;
}

/* Forget our sender key for the group: the next send starts a new one. */
static enum parley_err group_rotate(struct parley_messenger *m, const char *gid)
{
    char k[ID_MAX + 16];
    snprintf(k, sizeof k, "own/%s", gid);
    enum parley_err rc = local_store_del(m->ls, LS_SENDER_KEY, k);
    snprintf(k, sizeof k, "own/%s/meta", gid);
    if (!rc)
        rc = local_store_del(m->ls, LS_SENDER_KEY, k);
    return rc;
}

enum parley_err parley_messenger_group_add(struct parley_messenger *m, const char *group_id,
                                           const char *username, bool admin)
{
    if (!m || !username)
        return PARLEY_ERR_INVAL;
    client_clear_error(m->c);
    char path[200];
    enum parley_err rc = group_path(m, path, sizeof path, group_id, "/members");
    json_t *body = json_pack("{s:s, s:b}", "username", username, "admin", admin);
    if (!rc && !body)
        rc = PARLEY_ERR_NOMEM;
    int status = 0;
    if (!rc)
        rc = client_call(m->c, "POST", path, body, false, true, &status, NULL);
    if (rc == PARLEY_ERR_SERVER && status == 404)
        rc = PARLEY_ERR_NOTFOUND;
    json_decref(body);
    return rc;
}

enum parley_err parley_messenger_group_remove(struct parley_messenger *m, const char *group_id,
                                              const char *username)
{
    if (!m || !username)
        return PARLEY_ERR_INVAL;
    client_clear_error(m->c);
    char path[800], name[512], suffix[530];
    enum parley_err rc = seg(username, name, sizeof name);
    if (!rc) {
        snprintf(suffix, sizeof suffix, "/members/%s", name);
        rc = group_path(m, path, sizeof path, group_id, suffix);
    }
    int status = 0;
    if (!rc)
        rc = client_call(m->c, "DELETE", path, NULL, false, true, &status, NULL);
    if (rc == PARLEY_ERR_SERVER && status == 404)
        rc = PARLEY_ERR_NOTFOUND;
    if (!rc)
        rc = group_rotate(m, group_id);
    return rc;
}

static enum parley_err sk_save(struct parley_messenger *m, const char *key,
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

static enum parley_err sk_load(struct parley_messenger *m, const char *key,
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
                rc = ensure_contact(m, gm->username, &ct);
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
    rc = sk_load(m, kown, &own);
    if (!rc)
        rc = json_get(m, LS_SENDER_KEY, kmeta, &meta);
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
    rc = pack_content(content, &pt, &pt_len);
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
            rc = pack_content(&dc, &dist_pt, &dist_len);
        sodium_memzero(dist, sizeof dist);
        if (rc)
            goto out;

        struct target_dev *devs = NULL;
        size_t nd = 0;
        json_object_foreach(map, uid, v)
        {
            if (!rc)
                rc = add_devices(v, strcmp(uid, parley_client_user_id(m->c)) == 0 ? self_did : NULL,
                                 &devs, &nd);
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
            rc = sk_load(m, kown, &cur);
            if (!rc) {
                parley_sender_key_free(own);
                own = cur;
            }
        }
        if (!rc)
            rc = parley_sender_key_encrypt(own, gct, gcap, &glen, pt, pt_len);
        if (!rc)
            rc = sk_save(m, kown, own); /* before sending, like ratchet sessions */
        if (!rc && !own_stored) /* a new key: nobody has it yet, on disk too */
            rc = json_put(m, LS_SENDER_KEY, kmeta, meta);
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
            size_t adl = make_ad(ad, sizeof ad, self_did, devs[i].did);
            size_t rcap = parley_ratchet_ciphertext_len(s, dist_len), rl = 0;
            c->ciphertext.data = malloc(5 + rcap + glen);
            if (!c->ciphertext.data || !adl || !rcap) {
                parley_ratchet_free(s);
                rc = PARLEY_ERR_NOMEM;
                break;
            }
            rc = parley_ratchet_encrypt(s, c->ciphertext.data + 5, rcap, &rl, dist_pt, dist_len,
                                        ad, adl);
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
            free_copies(copies, nc);
            json_decref(got_key);
            fail(m, rc, "encrypting");
            goto out;
        }
        Parley__Stream__ClientFrame f = PARLEY__STREAM__CLIENT_FRAME__INIT;
        Parley__Stream__Send snd = PARLEY__STREAM__SEND__INIT;
        snd.client_message_id = content->message_id;
        snd.target_case = PARLEY__STREAM__SEND__TARGET_GROUP_ID;
        snd.group_id = (char *)gid;
        snd.n_copies = nc;
        snd.copies = copies;
        f.id = m->next_req++;
        f.body_case = PARLEY__STREAM__CLIENT_FRAME__BODY_SEND;
        f.send = &snd;
        rc = send_frame(m, &f);
        free_copies(copies, nc);
        Parley__Stream__ServerFrame *ans = NULL;
        if (!rc)
            rc = await_answer(m, f.id, &ans);
        if (rc) {
            json_decref(got_key);
            goto out;
        }
        if (ans->body_case == PARLEY__STREAM__SERVER_FRAME__BODY_ERROR) {
            client_set_error(m->c, 0, ans->error->code, "send refused: %s", ans->error->message);
            rc = PARLEY_ERR_SERVER;
        } else if (ans->body_case != PARLEY__STREAM__SERVER_FRAME__BODY_SEND_RESULT) {
            client_set_error(m->c, 0, NULL, "unexpected answer to a send");
            rc = PARLEY_ERR_PROTO;
        } else if (ans->send_result->status ==
                   PARLEY__STREAM__SEND_RESULT__STATUS__STALE_DEVICES) {
            bool dropped = false;
            rc = fix_devices(m, ans->send_result, map, &dropped);
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
            rc = json_put(m, LS_SENDER_KEY, kmeta, meta);
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

static void group_peer(char *out, size_t cap, const char *gid)
{
    snprintf(out, cap, "g:%s", gid);
}

enum parley_err parley_messenger_group_send_text(struct parley_messenger *m,
                                                 const char *group_id, const char *text,
                                                 uint32_t expire_after_s,
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
    randombytes_buf(mid, sizeof mid);
    to_hex(hex, mid, sizeof mid);
    int64_t sent = now_ms();
    Parley__Content__Content ct = PARLEY__CONTENT__CONTENT__INIT;
    Parley__Content__Text tx = PARLEY__CONTENT__TEXT__INIT;
    tx.body = (char *)text;
    ct.version = 1;
    ct.message_id.data = mid;
    ct.message_id.len = sizeof mid;
    ct.sent_at_ms = sent;
    ct.body_case = PARLEY__CONTENT__CONTENT__BODY_TEXT;
    ct.text = &tx;
    ct.expire_after_s = expire_after_s;
    ct.group_id = g.group_id;
    rc = group_send_content(m, &g, &ct);
    if (!rc) {
        group_peer(peer, sizeof peer, g.group_id);
        rc = history_add(m, peer, hex, true, parley_client_username(m->c), text, sent, 0,
                         expire_after_s, "sent");
        if (rc == PARLEY_ERR_EXISTS)
            rc = PARLEY_OK;
        if (rc)
            fail(m, rc, "message sent but not saved in the local history");
    }
    if (!rc && msg_id)
        memcpy(msg_id, hex, sizeof hex);
    parley_group_cleanup(&g);
    return rc;
}

enum parley_err parley_messenger_group_history(struct parley_messenger *m, const char *group_id,
                                               size_t limit, struct parley_history *out)
{
    if (!m || !out || !id_ok(group_id))
        return PARLEY_ERR_INVAL;
    client_clear_error(m->c);
    memset(out, 0, sizeof *out);
    char peer[ID_MAX + 4];
    group_peer(peer, sizeof peer, group_id);
    struct hist_walk w = {out, NULL, 0, now_ms()};
    enum parley_err rc = local_store_msg_list(m->ls, peer, limit, hist_item, &w);
    for (size_t i = 0; i < w.ngone && !rc; i++)
        rc = local_store_msg_del(m->ls, peer, w.gone[i]);
    free(w.gone);
    if (rc)
        parley_history_cleanup(out);
    return rc;
}

/* A group envelope (seen-check done by the caller): optional pairwise part with the
 * sender's key, then the sender-key message. Stored, then acked. */
static enum parley_err handle_group(struct parley_messenger *m, const Parley__Stream__Envelope *e,
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
    if (!id_ok(e->group_id) || len < 1)
        goto undecryptable;
    if (d[0] == GROUP_COPY_WITH_KEY) {
        if (len < 5)
            goto undecryptable;
        size_t rl = ((size_t)d[1] << 24) | ((size_t)d[2] << 16) | ((size_t)d[3] << 8) | d[4];
        if (rl > len - 5)
            goto undecryptable;
        rc = decrypt_env(m, e, d + 5, rl, &s, &slot, &used_opk, &dpt, &dpt_len);
        if (rc == PARLEY_ERR_NOMEM)
            goto out;
        if (rc)
            goto undecryptable;
        dc = parley__content__content__unpack(NULL, dpt_len, dpt);
        if (!dc || dc->message_id.len != MSGID_BYTES ||
            memcmp(dc->message_id.data, e->client_message_id.data, MSGID_BYTES) != 0 ||
            !dc->group_id || strcmp(dc->group_id, e->group_id) != 0 ||
            parley_sender_key_from_distribution(&rk, dc->sender_key.data, dc->sender_key.len) !=
                PARLEY_OK)
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
        if (sk_load(m, rkey, &rk) != PARLEY_OK)
            goto undecryptable;
    }
    pt = sodium_malloc(gct_len ? gct_len : 1);
    if (!pt) {
        rc = PARLEY_ERR_NOMEM;
        goto out;
    }
    if (parley_sender_key_decrypt(rk, pt, gct_len, &pt_len, gct, gct_len) != PARLEY_OK)
        goto undecryptable;
    ct = parley__content__content__unpack(NULL, pt_len, pt);
    if (!ct || ct->message_id.len != MSGID_BYTES ||
        memcmp(ct->message_id.data, e->client_message_id.data, MSGID_BYTES) != 0 ||
        !ct->group_id || strcmp(ct->group_id, e->group_id) != 0)
        goto undecryptable;

    bool from_self = strcmp(e->sender_user, self_uid) == 0;
    char peer[ID_MAX + 4];
    group_peer(peer, sizeof peer, e->group_id);
    unsigned lvl7 = local_store_depth(m->ls);
    rc = local_store_begin(m->ls);
    if (rc)
        goto out;
    rc = contact_or_new(m, e->sender_user, e->sender_username, &sender);
    if (!rc && s) {
        uint8_t ik[PARLEY_IDENTITY_PUBLIC_BYTES];
        if (parley_ratchet_peer_identity(s, ik) == PARLEY_OK)
            note_identity(m, sender, e->sender_device, ik);
        rc = session_commit(m, e->sender_user, e->sender_device, slot, s);
    }
    if (!rc)
        rc = contact_save(m, sender);
    if (!rc && used_opk) {
        char k[16];
        snprintf(k, sizeof k, "%u", used_opk);
        rc = local_store_del(m->ls, LS_PREKEY, k);
    }
    if (!rc)
        rc = sk_save(m, rkey, rk);
    if (!rc)
        rc = local_store_put(m->ls, LS_SEEN, seen_key, "1", 1);
    if (!rc && ct->body_case == PARLEY__CONTENT__CONTENT__BODY_TEXT && ct->text->body) {
        rc = history_add(m, peer, idhex, from_self, e->sender_username, ct->text->body,
                         ct->sent_at_ms, from_self ? 0 : now_ms(), ct->expire_after_s,
                         from_self ? "sent" : "received");
        if (rc == PARLEY_ERR_EXISTS)
            rc = PARLEY_OK;
        ev = new_event(PARLEY_EVENT_MESSAGE, e);
        if (!ev) {
            rc = PARLEY_ERR_NOMEM;
        } else {
            bool ok = true;
            ev->ev.text = client_strdup(ct->text->body, &ok);
            ev->ev.group_id = client_strdup(e->group_id, &ok);
            ev->ev.outgoing = from_self;
            ev->ev.sent_at_ms = ct->sent_at_ms;
            ev->ev.expire_after_s = ct->expire_after_s;
            if (!ok)
                rc = PARLEY_ERR_NOMEM;
        }
    }
    rc = local_store_end(m->ls, lvl7, rc);
    if (rc) {
        if (ev) {
            parley_event_cleanup(&ev->ev);
            free(ev);
        }
        goto out;
    }
    if (ev)
        push_event(m, ev);
    goto out;
undecryptable:
    ev = new_event(PARLEY_EVENT_UNDECRYPTABLE, e);
    if (ev)
        push_event(m, ev);
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
