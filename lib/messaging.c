/*
 * messaging.c — parley/messaging.h: the messenger handle (open, free) and the small
 * helpers every messaging_*.c file shares: hex/base64, id checks, path segments, the
 * error helper and the local store's META and JSON records.
 *
 * The module (SQLite's x.h / xInt.h model; messaging_int.h holds the inside):
 *   messaging.c             handle, helpers, local META/JSON records
 *   messaging_keys.c        device keys: generation, upload, one-time prekey top-up
 *   messaging_stream.c      the /v1/stream WebSocket: frames, answers, acks
 *   messaging_session.c     X3DH set-up, ratchet sessions per peer device (archive slots)
 *   messaging_payload.c     proto/content.proto Content: padding, building, checking
 *   messaging_send.c        1:1 send, stale-device rounds, in-doubt resend, receipts
 *   messaging_recv.c        stream events: decrypt, dedup, store, ack, receipts, expiry
 *   messaging_contacts.c    contact records, trust on first use, safety numbers
 *   messaging_history.c     local history records, disappearing-message timers
 *   messaging_groups.c      group membership calls (/v1/groups)
 *   messaging_sender_keys.c group messages with Sender Keys (send and receive)
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
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <sodium.h>

#include "messaging_int.h"

/* ------------------------------------------------------------------ small helpers */

int64_t msg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void msg_to_hex(char *out, const uint8_t *in, size_t n)
{
    sodium_bin2hex(out, n * 2 + 1, in, n);
}

bool msg_from_hex(uint8_t *out, size_t n, const char *in)
{
    size_t got = 0;
    return strlen(in) == n * 2 && sodium_hex2bin(out, n, in, n * 2, NULL, &got, NULL) == 0 &&
           got == n;
}

char *msg_b64(const uint8_t *in, size_t n)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *s = malloc(cap);
    if (s)
        sodium_bin2base64(s, cap, in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return s;
}

bool msg_unb64(uint8_t *out, size_t n, const char *in)
{
    size_t got = 0;
    return in &&
           sodium_base642bin(out, n, in, strlen(in), NULL, &got, NULL,
                             sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
           got == n;
}

bool msg_id_ok(const char *s)
{
    if (!s || !*s || strlen(s) > ID_MAX)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              *p == '-' || *p == '_'))
            return false;
    return true;
}

enum parley_err msg_fail(struct parley_messenger *m, enum parley_err rc, const char *what)
{
    client_set_error(m->c, 0, NULL, "%s: %s", what, parley_strerror(rc));
    return rc;
}

/* ------------------------------------------------------------------ local records */

enum parley_err msg_meta_get_str(struct parley_messenger *m, const char *k, char *out, size_t cap)
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

enum parley_err msg_meta_put_str(struct parley_messenger *m, const char *k, const char *v)
{
    return local_store_put(m->ls, LS_META, k, v, strlen(v));
}

enum parley_err msg_meta_get_u32(struct parley_messenger *m, const char *k, uint32_t *out)
{
    char b[16];
    enum parley_err rc = msg_meta_get_str(m, k, b, sizeof b);
    if (rc)
        return rc;
    char *end = NULL;
    unsigned long v = strtoul(b, &end, 10);
    if (end == b || *end || v > UINT32_MAX)
        return PARLEY_ERR_STORE;
    *out = (uint32_t)v;
    return PARLEY_OK;
}

enum parley_err msg_meta_put_u32(struct parley_messenger *m, const char *k, uint32_t v)
{
    char b[16];
    snprintf(b, sizeof b, "%u", v);
    return msg_meta_put_str(m, k, b);
}

enum parley_err msg_json_get(struct parley_messenger *m, enum ls_ns ns, const char *k, json_t **out)
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

enum parley_err msg_json_put(struct parley_messenger *m, enum ls_ns ns, const char *k,
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
        client_set_error(c, 0, NULL, "cannot open the local store in %s: %s", parley_client_home(c),
                         rc == PARLEY_ERR_DENIED ? "wrong key or passphrase" : parley_strerror(rc));
        goto out;
    }
    bool fresh = false;
    rc = keys_ensure(m, &fresh);
    if (rc) {
        msg_fail(m, rc, "device keys");
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

void parley_messenger_free(struct parley_messenger *m)
{
    if (!m)
        return;
    stream_shutdown(m);
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
