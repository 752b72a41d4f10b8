/*
 * export.c — the export registry and the streaming JSON writer (see export.h).
 *
 * Sections are written one row at a time through the caller's writer, so the document
 * is never held twice (the HTTP handler bounds what it collects; a file writer needs
 * no bound). Each section is read in its own read transaction: an export taken while
 * the account is in use can mix rows from moments a few milliseconds apart, which
 * is fine for access and portability.
 */
#include "export.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

/* ---- custom sections ---- */

static json_t *opt_str(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

static enum parley_err build_profile(struct store *s, const char *user_id, json_t **out)
{
    struct store_user u;
    enum parley_err err = store_user_get_by_id(s, user_id, &u);
    if (err)
        return err;
    json_t *o = json_object();
    int rc = o ? 0 : -1;
    if (o) {
        rc |= json_object_set_new(o, "user_id", json_string(u.id));
        rc |= json_object_set_new(o, "username", json_string(u.username));
        rc |= json_object_set_new(o, "name", json_string(u.name));
        rc |= json_object_set_new(o, "dob", json_string(u.dob));
        rc |= json_object_set_new(o, "region", opt_str(u.region));
        rc |= json_object_set_new(o, "gender", opt_str(u.gender));
        rc |= json_object_set_new(o, "parental_consent_required",
                                  json_boolean(u.parental_consent_required));
        rc |= json_object_set_new(o, "created_at", json_integer(u.created_at));
        rc |= json_object_set_new(o, "password",
                                  json_string("an Argon2id hash is held; it is not exported"));
    }
    sodium_memzero(&u, sizeof u);
    if (rc) {
        json_decref(o);
        return PARLEY_ERR_NOMEM;
    }
    *out = o;
    return PARLEY_OK;
}

/* ---- the registry ---- */

#define OWN_DEVICES "JOIN devices d ON d.id = "
#define SERVICE "running the service for you (contract)"
#define NOBODY "nobody outside the operator"

const struct export_section export_registry[] = {
    {"profile", "users", NULL, build_profile,
     "identifiers (user id, username); personal details (name, date of birth, region, "
     "gender); account flags",
     "you, at registration and profile edits", SERVICE "; age rules (P29)", NOBODY,
     "until you delete the account"},
    {"devices", "devices",
     "SELECT id, name, created_at, last_seen FROM devices WHERE user_id = ?1 "
     "ORDER BY created_at, id",
     NULL, "device identifiers, device names you gave, first and last use (to the minute)",
     "your devices when they log in", SERVICE "; device management", NOBODY,
     "while the device has a live session"},
    {"sessions", "sessions",
     "SELECT device_id, created_at, expires_at FROM sessions WHERE user_id = ?1 "
     "ORDER BY created_at",
     NULL, "login sessions (times only; the token's hash is never exported)",
     "your devices when they log in", SERVICE "; authentication", NOBODY,
     "until logout, revocation or expiry"},
    {"device_keys", "device_keys",
     "SELECT k.device_id, k.identity_key, k.spk_id, k.spk, k.spk_sig, k.updated_at "
     "FROM device_keys k " OWN_DEVICES "k.device_id WHERE d.user_id = ?1",
     NULL, "public keys of your devices (identity key, signed prekey)", "your devices",
     "end-to-end encryption", "people who message you (public keys only)",
     "while the device exists"},
    {"onetime_prekeys", "onetime_prekeys",
     "SELECT p.device_id, p.key_id, p.pk FROM onetime_prekeys p " OWN_DEVICES
     "p.device_id WHERE d.user_id = ?1 ORDER BY p.device_id, p.key_id",
     NULL, "public one-time prekeys not yet handed out", "your devices",
     "end-to-end encryption", "one person who starts a conversation with you, once per key",
     "until handed out, or while the device exists"},
    {"groups", "chat_groups",
     "SELECT g.id AS group_id, g.name, g.created_at, g.updated_at, m.admin, m.joined_at "
     "FROM group_members m JOIN chat_groups g ON g.id = m.group_id WHERE m.user_id = ?1 "
     "ORDER BY m.joined_at",
     NULL, "the groups you are in, their names, your role", "you and the groups' admins",
     "group message fan-out", "the groups' other members", "until you leave the group"},
    {"group_members", "group_members",
     "SELECT o.group_id, o.user_id, o.admin, o.joined_at FROM group_members m "
     "JOIN group_members o ON o.group_id = m.group_id WHERE m.user_id = ?1 "
     "ORDER BY o.group_id, o.joined_at",
     NULL, "memberships of the groups you are in (yours and the other members')",
     "the groups' admins", "group message fan-out", "the groups' other members",
     "until the member leaves"},
    {"envelopes_for_you", "envelopes",
     "SELECT id, device_id, kind, sender_user, sender_device, client_msg_id, group_id, "
     "peer_user, peer_devices, created_at_ms, expires_at, length(body) AS body_bytes "
     "FROM envelopes WHERE user_id = ?1 ORDER BY id",
     NULL,
     "messages waiting for your devices: metadata only (the bodies are end-to-end "
     "ciphertext the server cannot read and does not export)",
     "the people who wrote to you", "message delivery", NOBODY,
     "until your device acknowledges it, or its expiry (P9)"},
    {"envelopes_sent", "envelopes",
     "SELECT id, user_id AS recipient_user, device_id AS recipient_device, kind, "
     "sender_device, client_msg_id, group_id, created_at_ms, expires_at, "
     "length(body) AS body_bytes FROM envelopes WHERE sender_user = ?1 AND user_id <> ?1 "
     "ORDER BY id",
     NULL, "messages you sent that still wait for their recipients: metadata only",
     "your devices", "message delivery", "the recipients",
     "until delivered, or their expiry (P9)"},
    {"envelopes_naming_you", "envelopes",
     "SELECT id, user_id AS recipient_user, kind, created_at_ms, expires_at "
     "FROM envelopes WHERE peer_user = ?1 AND user_id <> ?1 AND sender_user <> ?1 "
     "ORDER BY id",
     NULL, "expiry notices for others that name you as the recipient who did not fetch",
     "the server", "telling senders a message expired undelivered (P9)", "those senders",
     "until fetched, or their expiry"},
    {"queue_depth", "queue_depth",
     "SELECT q.device_id, q.n AS queued FROM queue_depth q " OWN_DEVICES
     "q.device_id WHERE d.user_id = ?1",
     NULL, "count of messages queued per device", "the server", "queue limits", NOBODY,
     "while the device exists"},
    {"sent_message_ids", "sent_msg_ids",
     "SELECT s.sender_device, s.client_msg_id, s.expires_at FROM sent_msg_ids s " OWN_DEVICES
     "s.sender_device WHERE d.user_id = ?1 ORDER BY s.expires_at",
     NULL, "ids of messages you sent (random; no content)", "your devices",
     "sending each message once (idempotent retries)", NOBODY,
     "until the message could no longer be queued"},
    /* The rights tables (migration 3). */
    {"consents", "consents",
     "SELECT purpose, granted, policy_version, updated_at FROM consents WHERE user_id = ?1 "
     "ORDER BY purpose",
     NULL, "your current consent and objection choices, per purpose", "you",
     "honouring your choices (P12, P15, P22, P28)", NOBODY, "until you delete the account"},
    {"consent_history", "consent_history",
     "SELECT purpose, granted, policy_version, at FROM consent_history WHERE user_id = ?1 "
     "ORDER BY id",
     NULL, "every change of your consent choices", "you",
     "proof of consent (GDPR art. 7(1))", NOBODY, "until you delete the account"},
    {"parental_consents", "parental_consents",
     "SELECT reference, recorded_at FROM parental_consents WHERE user_id = ?1", NULL,
     "the record of a parent's consent (P29)", "an operator, from the parent",
     "features that need a parent's consent for users aged 13-16 in the EU", NOBODY,
     "until you delete the account"},
    {"policy_acceptances", "policy_acceptances,policies",
     "SELECT p.version, p.material, a.accepted_at FROM policy_acceptances a "
     "JOIN policies p ON p.seq = a.policy_seq WHERE a.user_id = ?1 ORDER BY a.accepted_at",
     NULL, "which privacy-policy versions you accepted, and when", "you",
     "proof of acceptance (P30)", NOBODY, "until you delete the account"},
    {"security_events", "security_events",
     "SELECT at, kind, network_origin FROM security_events WHERE user_id = ?1 ORDER BY at",
     NULL, "security events of your account (logins, lockouts) with their network origin",
     "the server, from your devices' connections", "protecting the account (P23)", NOBODY,
     "7 days"},
    {"reports_filed", "reports",
     "SELECT id, reported_user, created_at, status FROM reports WHERE reporter_user = ?1 "
     "ORDER BY created_at",
     NULL, "abuse reports you filed", "you", "moderation (P25)", "the operator's moderators",
     "1 year"},
    {"reports_about_you", "reports",
     "SELECT id, created_at, status FROM reports WHERE reported_user = ?1 ORDER BY created_at",
     NULL, "abuse reports about you (the reporter is not disclosed)", "other users",
     "moderation (P25)", "the operator's moderators", "1 year"},
    {"purchases", "purchases",
     "SELECT id, product, order_ref, purchased_at FROM purchases WHERE user_id = ?1 "
     "ORDER BY purchased_at",
     NULL, "in-app purchases (product, time, order reference; nothing about payment instruments)",
     "the app store's receipts", "entitlements; tax law (P4)", "tax authorities on request",
     "6 years, pseudonymised when the account is deleted"},
};
const size_t export_registry_count = sizeof export_registry / sizeof export_registry[0];

const struct export_no_user_data export_no_user_data[] = {
    {"schema_version", "migration bookkeeping: version numbers and times"},
    {"sqlite_sequence", "SQLite's AUTOINCREMENT counters"},
    {"policies", "the published policy texts, the same for everyone (acceptances are in "
                 "policy_acceptances)"},
    {"call_quality", "anonymous call diagnostics: no account, peer or address column (P22)"},
    {"audit_log", "operator actions; names accounts only by a keyed pseudonym the export "
                  "cannot compute without the audit key (P26)"},
};
const size_t export_no_user_data_count =
    sizeof export_no_user_data / sizeof export_no_user_data[0];

/* ---- writer ---- */

struct out {
    export_write_fn write;
    void *ctx;
    enum parley_err err;
    size_t rows;
};

static int dump_cb(const char *buf, size_t size, void *data)
{
    struct out *o = data;
    if (!o->err)
        o->err = o->write(o->ctx, buf, size);
    return o->err ? -1 : 0;
}

static enum parley_err put(struct out *o, const char *s)
{
    if (!o->err)
        o->err = o->write(o->ctx, s, strlen(s));
    return o->err;
}

static enum parley_err put_json(struct out *o, const json_t *v)
{
    if (!v)
        return o->err ? o->err : (o->err = PARLEY_ERR_NOMEM);
    if (json_dump_callback(v, dump_cb, o, JSON_COMPACT | JSON_ENCODE_ANY) != 0 && !o->err)
        o->err = PARLEY_ERR_NOMEM;
    return o->err;
}

/* Binary as unpadded base64url; text that is not UTF-8 too (never written by us). */
static json_t *b64(const void *p, size_t len)
{
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *t = malloc(cap);
    if (!t)
        return NULL;
    sodium_bin2base64(t, cap, p, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    json_t *j = json_string(t);
    free(t);
    return j;
}

static enum parley_err row_cb(void *ctx, size_t ncols, const char *const *names,
                              const struct store_value *vals)
{
    struct out *o = ctx;
    json_t *row = json_object();
    if (!row)
        return PARLEY_ERR_NOMEM;
    int rc = 0;
    for (size_t i = 0; i < ncols && !rc; i++) {
        const struct store_value *v = &vals[i];
        json_t *j = NULL;
        switch (v->type) {
        case STORE_V_INT: j = json_integer(v->i); break;
        case STORE_V_REAL: j = json_real(v->r); break;
        case STORE_V_TEXT:
            j = json_stringn(v->p ? v->p : "", v->len);
            if (!j)
                j = b64(v->p, v->len);
            break;
        case STORE_V_BLOB: j = b64(v->p, v->len); break;
        case STORE_V_NULL: j = json_null(); break;
        }
        rc = json_object_set_new(row, names[i], j);
    }
    if (rc) {
        json_decref(row);
        return PARLEY_ERR_NOMEM;
    }
    if (o->rows++ > 0)
        put(o, ",");
    put_json(o, row);
    json_decref(row);
    return o->err;
}

static json_t *report_json(void)
{
    json_t *r = json_object(), *list = json_array(), *not = json_array();
    if (!r || !list || !not) {
        json_decref(r);
        json_decref(list);
        json_decref(not);
        return NULL;
    }
    int rc = 0;
    for (size_t i = 0; i < export_registry_count && !rc; i++) {
        const struct export_section *x = &export_registry[i];
        rc = json_array_append_new(
            list, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "section", x->name, "tables",
                            x->tables, "categories", x->categories, "sources", x->sources,
                            "purposes", x->purposes, "recipients", x->recipients, "retention",
                            x->retention));
    }
    rc |= json_array_append_new(not, json_string("password (only an Argon2id hash is held)"));
    rc |= json_array_append_new(not, json_string("session token hashes"));
    rc |= json_array_append_new(
        not, json_string("message bodies: end-to-end ciphertext the server cannot read"));
    rc |= json_array_append_new(
        not, json_string("your data key (in the separate key store; it encrypts your "
                         "personal details at rest and is destroyed when you delete the account)"));
    rc |= json_object_set_new(r, "sections", list);
    rc |= json_object_set_new(r, "not_exported", not);
    rc |= json_object_set_new(r, "period", json_string("everything currently held (this covers "
                                                       "the CCPA's last 12 months)"));
    rc |= json_object_set_new(r, "sold_or_shared",
                              json_string("none: no data is sold or shared for advertising"));
    rc |= json_object_set_new(r, "not_collected",
                              json_string("IP addresses, contacts, message contents, location"));
    if (rc) {
        json_decref(r);
        return NULL;
    }
    return r;
}

enum parley_err export_user_json(struct store *s, const char *user_id, int64_t now,
                                 export_write_fn write, void *ctx)
{
    struct out o = {write, ctx, PARLEY_OK, 0};
    json_t *profile = NULL, *head = NULL, *report = NULL;
    char buf[160];
    if (!s || !user_id || !write)
        return PARLEY_ERR_INVAL;
    /* The profile first: it tells whether the account exists before anything is
     * written. */
    enum parley_err err = build_profile(s, user_id, &profile);
    if (err)
        return err;
    head = json_string(user_id);
    if (!head) {
        err = PARLEY_ERR_NOMEM;
        goto out;
    }
    snprintf(buf, sizeof buf,
             "{\"format\":\"parley-export\",\"version\":%d,\"generated_at\":%lld,\"user_id\":",
             EXPORT_FORMAT_VERSION, (long long)now);
    put(&o, buf);
    put_json(&o, head);
    put(&o, ",\"sections\":{");
    for (size_t i = 0; i < export_registry_count && !o.err; i++) {
        const struct export_section *x = &export_registry[i];
        json_t *name = json_string(x->name);
        if (i > 0)
            put(&o, ",");
        put_json(&o, name);
        json_decref(name);
        put(&o, ":");
        if (x->build == build_profile) {
            put_json(&o, profile);
        } else if (x->build) {
            json_t *v = NULL;
            err = x->build(s, user_id, &v);
            if (err)
                goto out;
            put_json(&o, v);
            json_decref(v);
        } else {
            put(&o, "[");
            o.rows = 0;
            if (!o.err) {
                err = store_user_rows(s, x->sql, user_id, row_cb, &o);
                if (err)
                    goto out;
            }
            put(&o, "]");
        }
    }
    put(&o, "},\"report\":");
    report = report_json();
    put_json(&o, report);
    put(&o, "}");
    err = o.err;
out:
    json_decref(profile);
    json_decref(head);
    json_decref(report);
    return err ? err : o.err;
}
