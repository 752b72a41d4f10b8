/*
 * sqlite_privacy.c — consents, parental-consent records, policy versions, the audit log
 * and the retention purges in the SQLite backend (contracts in store_privacy.h; tables
 * from migration 3).
 *
 * Invariants: a consent's current value and its history row are written in one
 * transaction, so the history is never behind the value. An audit entry is hashed and
 * inserted in the BEGIN IMMEDIATE transaction that read its predecessor, so concurrent
 * appenders (parleyd, `parleyd admin`) cannot fork the chain.
 */
#include <stdlib.h>
#include <string.h>

#include "audit_chain.h"
#include "sqlite_int.h"

#define STR_(x) #x
#define STR(x) STR_(x)

static const char *const stmt_sql[ST__COUNT] = {
    [ST_P_CONSENT_LIST] = "SELECT purpose, granted, policy_version, updated_at FROM consents "
                          "WHERE user_id = ?1 ORDER BY purpose LIMIT " STR(STORE_CONSENTS_MAX),
    [ST_P_CONSENT_UPSERT] = "INSERT INTO consents (user_id, purpose, granted, policy_version, "
                            "updated_at) VALUES (?1, ?2, ?3, ?4, ?5) "
                            "ON CONFLICT (user_id, purpose) DO UPDATE SET "
                            "granted = excluded.granted, policy_version = excluded.policy_version, "
                            "updated_at = excluded.updated_at",
    [ST_P_CONSENT_HIST] = "INSERT INTO consent_history (user_id, purpose, granted, "
                          "policy_version, at) VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_P_CONSENT_GET] = "SELECT granted FROM consents WHERE user_id = ?1 AND purpose = ?2",
    [ST_P_PARENTAL_PUT] = "INSERT INTO parental_consents (user_id, reference, recorded_at) "
                          "VALUES (?1, ?2, ?3) ON CONFLICT (user_id) DO UPDATE SET "
                          "reference = excluded.reference, recorded_at = excluded.recorded_at",
    [ST_P_PARENTAL_GET] = "SELECT 1 FROM parental_consents WHERE user_id = ?1",
    [ST_P_POLICY_INSERT] = "INSERT INTO policies (version, material, text, published_at) "
                           "VALUES (?1, ?2, ?3, ?4)",
    [ST_P_POLICY_LATEST] = "SELECT seq, version, material, published_at FROM policies "
                           "WHERE material >= ?1 ORDER BY seq DESC LIMIT 1",
    [ST_P_POLICY_TEXT] = "SELECT text FROM policies WHERE seq = ?1",
    [ST_P_POLICY_ACCEPT] = "INSERT INTO policy_acceptances (user_id, policy_seq, accepted_at) "
                           "SELECT ?1, seq, ?3 FROM policies WHERE version = ?2 "
                           "ON CONFLICT (user_id, policy_seq) DO NOTHING",
    [ST_P_POLICY_SEQ] = "SELECT seq FROM policies WHERE version = ?1",
    [ST_P_POLICY_ACCEPTED] = "SELECT EXISTS (SELECT 1 FROM policy_acceptances "
                             "WHERE user_id = ?1 AND policy_seq >= ?2) OR EXISTS (SELECT 1 FROM "
                             "users WHERE id = ?1 AND created_at >= ?3)",
    [ST_P_AUDIT_LAST] = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
    [ST_P_AUDIT_INSERT] = "INSERT INTO audit_log (seq, at, actor, kind, subject, detail, "
                          "prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_P_AUDIT_LIST] = "SELECT seq, at, actor, kind, subject, detail, prev_hash, hash "
                        "FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    [ST_P_PURGE_CALLQ] = "DELETE FROM call_quality WHERE received_at <= ?1",
    [ST_P_PURGE_SECURITY] = "DELETE FROM security_events WHERE at <= ?1",
    [ST_P_PURGE_REPORTS] = "DELETE FROM reports WHERE created_at <= ?1",
    [ST_P_PURGE_PURCHASES] = "DELETE FROM purchases WHERE purchased_at <= ?1",
};

static enum parley_err stmt(struct sq_conn *c, enum sq_stmt_id id, sqlite3_stmt **out)
{
    return sq_stmt(c, id, stmt_sql[id], out);
}

/* ---- consents ---- */

/* Read a ST_P_CONSENT_LIST row into the zeroed consent; an sq_read_fn. */
static enum parley_err consent_read(sqlite3_stmt *st, void *elem)
{
    struct store_consent *e = elem;
    if (!sq_col_text(st, 0, e->purpose, sizeof e->purpose) ||
        !sq_col_text(st, 2, e->policy_version, sizeof e->policy_version))
        return PARLEY_ERR_STORE;
    e->granted = sqlite3_column_int(st, 1) != 0;
    e->updated_at = sqlite3_column_int64(st, 3);
    return PARLEY_OK;
}

/* At most STORE_CONSENTS_MAX rows: the query's LIMIT. */
static enum parley_err consent_list(struct store *s, const char *user_id,
                                    struct store_consent **out, size_t *n_out)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    void *v = NULL;
    size_t n = 0;
    enum parley_err err = stmt(c, ST_P_CONSENT_LIST, &st);
    if (!err)
        err = sq_collect(c, st, sq_bind_text(st, 1, user_id), sizeof **out, consent_read,
                         "consent_list", &v, &n);
    sq_conn_put(sq(s), c);
    if (err)
        return err;
    *out = v;
    *n_out = n;
    return PARLEY_OK;
}

static enum parley_err consent_row(struct sq_conn *c, enum sq_stmt_id id, const char *user_id,
                                   const char *purpose, bool granted, const char *version,
                                   int64_t now)
{
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, id, &st);
    if (err)
        return err;
    int rc = sq_bind_text(st, 1, user_id);
    if (rc == SQLITE_OK)
        rc = sq_bind_text(st, 2, purpose);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 3, granted ? 1 : 0);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 4, version, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 5, now);
    return sq_exec(c, st, rc, "consent_set");
}

static enum parley_err consent_set(struct store *s, const char *user_id, const char *purpose,
                                   bool granted, const char *policy_version, int64_t now)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    enum parley_err err = sq_begin(c);
    if (!err)
        err = consent_row(c, ST_P_CONSENT_UPSERT, user_id, purpose, granted, policy_version, now);
    if (!err)
        err = consent_row(c, ST_P_CONSENT_HIST, user_id, purpose, granted, policy_version, now);
    err = sq_end(c, err);
    sq_conn_put(sq(s), c);
    return err;
}

/* Run a one-row SELECT with text parameters a (and b when not NULL): *found, and the
 * first column in *col0 (may be NULL). */
static enum parley_err select_row(struct store *s, enum sq_stmt_id id, const char *a,
                                  const char *b, bool *found, int64_t *col0, const char *what)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, id, &st);
    if (!err)
        err = sq_query_int(c, st, sq_bind_text2(st, a, b), found, col0, what);
    sq_conn_put(sq(s), c);
    return err;
}

static enum parley_err consent_get(struct store *s, const char *user_id, const char *purpose,
                                   bool *granted)
{
    bool found = false;
    int64_t v = 0;
    enum parley_err err = select_row(s, ST_P_CONSENT_GET, user_id, purpose, &found, &v,
                                     "consent_get");
    if (!err)
        *granted = found && v != 0;
    return err;
}

static enum parley_err parental_record(struct store *s, const char *user_id,
                                       const char *reference, int64_t now)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, ST_P_PARENTAL_PUT, &st);
    if (!err) {
        int rc = sq_bind_text(st, 1, user_id);
        if (rc == SQLITE_OK)
            rc = sq_bind_text(st, 2, reference);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 3, now);
        err = sq_exec(c, st, rc, "parental_record");
    }
    sq_conn_put(sq(s), c);
    return err;
}

static enum parley_err parental_get(struct store *s, const char *user_id, bool *recorded)
{
    return select_row(s, ST_P_PARENTAL_GET, user_id, NULL, recorded, NULL, "parental_get");
}

/* ---- policies ---- */

static enum parley_err policy_publish(struct store *s, const char *version, bool material,
                                      const char *text, size_t len, int64_t now)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, ST_P_POLICY_INSERT, &st);
    if (!err) {
        int rc = sq_bind_text(st, 1, version);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int(st, 2, material ? 1 : 0);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_text(st, 3, text, (int)len, SQLITE_TRANSIENT);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 4, now);
        err = sq_exec(c, st, rc, "policy_publish");
    }
    sq_conn_put(sq(s), c);
    return err;
}

static enum parley_err policy_latest(struct store *s, bool material_only,
                                     struct store_policy_meta *out)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    bool found = false;
    enum parley_err err = stmt(c, ST_P_POLICY_LATEST, &st);
    if (!err)
        err = sq_step_row(c, st, sqlite3_bind_int(st, 1, material_only ? 1 : 0), &found,
                          "policy_latest");
    if (!err && !found)
        err = PARLEY_ERR_NOTFOUND;
    if (!err) {
        memset(out, 0, sizeof *out);
        out->seq = sqlite3_column_int64(st, 0);
        if (!sq_col_text(st, 1, out->version, sizeof out->version))
            err = PARLEY_ERR_STORE;
        out->material = sqlite3_column_int(st, 2) != 0;
        out->published_at = sqlite3_column_int64(st, 3);
    }
    sq_stmt_done(st);
    sq_conn_put(sq(s), c);
    return err;
}

static enum parley_err policy_text(struct store *s, int64_t seq, char **text, size_t *len)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    bool found = false;
    enum parley_err err = stmt(c, ST_P_POLICY_TEXT, &st);
    if (!err)
        err = sq_step_row(c, st, sqlite3_bind_int64(st, 1, seq), &found, "policy_text");
    if (!err && !found)
        err = PARLEY_ERR_NOTFOUND;
    if (!err) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        char *copy = t ? malloc(n + 1) : NULL;
        if (!copy) {
            err = PARLEY_ERR_NOMEM;
        } else {
            memcpy(copy, t, n);
            copy[n] = '\0';
            *text = copy;
            *len = n;
        }
    }
    sq_stmt_done(st);
    sq_conn_put(sq(s), c);
    return err;
}

static enum parley_err policy_accept(struct store *s, const char *user_id, const char *version,
                                     int64_t now)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, ST_P_POLICY_ACCEPT, &st);
    int changes = 0;
    if (!err) {
        int rc = sq_bind_text(st, 1, user_id);
        if (rc == SQLITE_OK)
            rc = sq_bind_text(st, 2, version);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 3, now);
        err = sq_exec(c, st, rc, "policy_accept");
        changes = sqlite3_changes(c->db);
    }
    sq_conn_put(sq(s), c);
    if (!err && changes == 0) { /* already accepted, or no such version */
        bool found = false;
        err = select_row(s, ST_P_POLICY_SEQ, version, NULL, &found, NULL, "policy_accept");
        if (!err && !found)
            err = PARLEY_ERR_NOTFOUND;
    }
    return err;
}

static enum parley_err policy_accepted(struct store *s, const char *user_id,
                                       const struct store_policy_meta *gate, bool *ok)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    int64_t v = 0;
    enum parley_err err = stmt(c, ST_P_POLICY_ACCEPTED, &st);
    if (!err) {
        int rc = sq_bind_text(st, 1, user_id);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 2, gate->seq);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 3, gate->published_at);
        err = sq_query_int(c, st, rc, NULL, &v, "policy_accepted");
    }
    sq_conn_put(sq(s), c);
    if (!err)
        *ok = v != 0;
    return err;
}

/* ---- audit log ---- */

static enum parley_err audit_append(struct store *s, struct store_audit_entry *e)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    bool found = false;
    enum parley_err err = sq_begin(c);
    int rc;
    if (err)
        goto out;
    memset(e->prev_hash, 0, sizeof e->prev_hash);
    e->seq = 1;
    if ((err = stmt(c, ST_P_AUDIT_LAST, &st)))
        goto out;
    err = sq_step_row(c, st, SQLITE_OK, &found, "audit_append");
    if (!err && found) {
        e->seq = sqlite3_column_int64(st, 0) + 1;
        if (!sq_col_blob(st, 1, e->prev_hash, sizeof e->prev_hash))
            err = PARLEY_ERR_STORE;
    }
    sq_stmt_done(st);
    if (err)
        goto out;
    audit_chain_hash(e->prev_hash, e, e->hash);
    if ((err = stmt(c, ST_P_AUDIT_INSERT, &st)))
        goto out;
    rc = sqlite3_bind_int64(st, 1, e->seq);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, e->at);
    if (rc == SQLITE_OK)
        rc = sq_bind_text(st, 3, e->actor);
    if (rc == SQLITE_OK)
        rc = sq_bind_text(st, 4, e->kind);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 5, e->subject, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 6, e->detail, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(st, 7, e->prev_hash, sizeof e->prev_hash, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(st, 8, e->hash, sizeof e->hash, SQLITE_TRANSIENT);
    err = sq_exec(c, st, rc, "audit_append");
out:
    err = sq_end(c, err);
    sq_conn_put(sq(s), c);
    return err;
}

/* Read a ST_P_AUDIT_LIST row into the zeroed entry; an sq_read_fn that never fails: a
 * field too long or a hash of the wrong size is kept visibly wrong, so the verifier
 * reports the entry instead of the listing failing. */
static enum parley_err audit_read(sqlite3_stmt *st, void *elem)
{
    struct store_audit_entry *e = elem;
    e->seq = sqlite3_column_int64(st, 0);
    e->at = sqlite3_column_int64(st, 1);
    if (!sq_col_text(st, 2, e->actor, sizeof e->actor))
        e->actor[0] = '\0';
    if (!sq_col_text(st, 3, e->kind, sizeof e->kind))
        e->kind[0] = '\0';
    if (!sq_col_text(st, 4, e->subject, sizeof e->subject))
        e->subject[0] = '\0';
    if (!sq_col_text(st, 5, e->detail, sizeof e->detail))
        e->detail[0] = '\0';
    if (!sq_col_blob(st, 6, e->prev_hash, sizeof e->prev_hash))
        memset(e->prev_hash, 0xff, sizeof e->prev_hash);
    if (!sq_col_blob(st, 7, e->hash, sizeof e->hash))
        memset(e->hash, 0xff, sizeof e->hash);
    return PARLEY_OK;
}

/* At most limit rows (store.c bounds it): the query's LIMIT ?2. */
static enum parley_err audit_list(struct store *s, int64_t after_seq, size_t limit,
                                  struct store_audit_entry **out, size_t *n_out)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    void *v = NULL;
    size_t n = 0;
    enum parley_err err = stmt(c, ST_P_AUDIT_LIST, &st);
    if (!err) {
        int rc = sqlite3_bind_int64(st, 1, after_seq);
        if (rc == SQLITE_OK)
            rc = sq_bind_size(st, 2, limit);
        err = sq_collect(c, st, rc, sizeof **out, audit_read, "audit_list", &v, &n);
    }
    sq_conn_put(sq(s), c);
    if (err)
        return err;
    *out = v;
    *n_out = n;
    return PARLEY_OK;
}

/* ---- retention ---- */

static enum parley_err retention_purge(struct store *s, enum store_retention_cat cat,
                                       int64_t cutoff, size_t *n_out)
{
    static const enum sq_stmt_id ids[STORE_RET__COUNT] = {
        [STORE_RET_CALL_QUALITY] = ST_P_PURGE_CALLQ,
        [STORE_RET_SECURITY_EVENTS] = ST_P_PURGE_SECURITY,
        [STORE_RET_REPORTS] = ST_P_PURGE_REPORTS,
        [STORE_RET_PURCHASES] = ST_P_PURGE_PURCHASES,
    };
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, ids[cat], &st);
    if (!err)
        err = sq_exec(c, st, sqlite3_bind_int64(st, 1, cutoff), "retention_purge");
    if (!err)
        *n_out = (size_t)sqlite3_changes(c->db);
    sq_conn_put(sq(s), c);
    return err;
}

const struct store_privacy_ops sq_privacy_ops = {
    .consent_list = consent_list,
    .consent_set = consent_set,
    .consent_get = consent_get,
    .parental_record = parental_record,
    .parental_get = parental_get,
    .policy_publish = policy_publish,
    .policy_latest = policy_latest,
    .policy_text = policy_text,
    .policy_accept = policy_accept,
    .policy_accepted = policy_accepted,
    .audit_append = audit_append,
    .audit_list = audit_list,
    .retention_purge = retention_purge,
};
