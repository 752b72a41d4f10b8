/*
 * sqlite.c — the SQLite backend of the store (the embedded default).
 *
 * Durability and deletion: WAL journal, synchronous=FULL (a commit is on disk before
 * the call returns: acknowledgements will rely on it), secure_delete=ON (deleted rows are
 * overwritten, not left in free pages), foreign_keys=ON. The database file is created
 * with mode 0600 (SQLite gives its -wal and -shm files the database file's mode).
 *
 * Threads: the store owns a small pool of connections (SQ_POOL_SIZE). Each operation
 * borrows one connection for its duration (waiting on a condition variable when all are
 * busy), so a connection is only ever used by one thread at a time and is opened with
 * SQLITE_OPEN_NOMUTEX. WAL lets readers run beside the one writer; write transactions
 * start with BEGIN IMMEDIATE so they queue on the busy handler (busy_timeout) instead of
 * failing on a read-to-write upgrade. Prepared statements are cached per connection.
 *
 * Personal profile fields (name, dob, region, gender) are bound and read only by
 * profile_bind() and profile_read(): with a key store (store_open_sqlite_keyed) they are
 * stored as XChaCha20-Poly1305 ciphertext under the account's data key (keystore.h),
 * the additional data binding user id and column, and users.profile_enc = 1 (migration
 * 4). Rows with profile_enc = 0 (written before, or by a store opened without keys) are
 * read as plaintext and encrypted in place at the next keyed open. The username stays
 * plaintext: it is the unique login handle, looked up by equality.
 *
 * This file holds accounts, sessions, devices, open/close and migrations; the pool and
 * statement helpers are in sqlite_conn.c (sqlite_int.h), the messaging ops in
 * sqlite_keys.c, sqlite_groups.c and sqlite_queue.c. Deleting a device (revocation,
 * logout, session expiry) also deletes its keys, queued envelopes and remembered
 * message ids through ON DELETE CASCADE (migration 2).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "clock.h"
#include "keystore.h"
#include "log.h"
#include "migrations.h"
#include "sqlite_int.h"
#include "store.h"

#define TOUCH_INTERVAL_S 60

#define USER_COLS                                                                                  \
    "id, username, name, dob, region, gender, password_hash, parental_consent_required, "          \
    "created_at, profile_enc"

static const char *const stmt_sql[ST__COUNT] = {
    [ST_USER_INSERT] = "INSERT INTO users (" USER_COLS ") VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
    [ST_USER_BY_ID] = "SELECT " USER_COLS " FROM users WHERE id = ?1",
    [ST_USER_BY_NAME] = "SELECT " USER_COLS " FROM users WHERE username = ?1",
    [ST_USER_UPDATE] = "UPDATE users SET username = ?2, name = ?3, dob = ?4, region = ?5, "
                       "gender = ?6, password_hash = ?7, parental_consent_required = ?8, "
                       "created_at = ?9, profile_enc = ?10 WHERE id = ?1",
    [ST_USER_EXISTS] = "SELECT 1 FROM users WHERE id = ?1",
    [ST_SESS_DEL_EXPIRED_USER] = "DELETE FROM sessions WHERE user_id = ?1 AND expires_at <= ?2",
    [ST_DEV_DEL_ORPHANS_USER] = "DELETE FROM devices WHERE user_id = ?1 AND NOT EXISTS "
                                "(SELECT 1 FROM sessions s WHERE s.device_id = devices.id)",
    [ST_DEV_COUNT] = "SELECT count(*) FROM devices WHERE user_id = ?1",
    [ST_DEV_INSERT] = "INSERT INTO devices (id, user_id, name, created_at, last_seen) "
                      "VALUES (?1, ?2, ?3, ?4, ?4)",
    [ST_SESS_INSERT] = "INSERT INTO sessions (token_hash, user_id, device_id, created_at, "
                       "expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_SESS_LOOKUP] = "SELECT s.user_id, s.device_id, s.expires_at, d.last_seen "
                       "FROM sessions s JOIN devices d ON d.id = s.device_id "
                       "WHERE s.token_hash = ?1 AND s.expires_at > ?2",
    [ST_DEV_TOUCH] = "UPDATE devices SET last_seen = ?2 WHERE id = ?1 AND last_seen <= ?3",
    [ST_SESS_DEVICE] = "SELECT device_id FROM sessions WHERE token_hash = ?1",
    [ST_SESS_DELETE] = "DELETE FROM sessions WHERE token_hash = ?1",
    [ST_DEV_DEL_IF_EMPTY] = "DELETE FROM devices WHERE id = ?1 AND NOT EXISTS "
                            "(SELECT 1 FROM sessions s WHERE s.device_id = ?1)",
    [ST_SESS_PURGE] = "DELETE FROM sessions WHERE expires_at <= ?1",
    [ST_DEV_DEL_ORPHANS_ALL] = "DELETE FROM devices WHERE NOT EXISTS "
                               "(SELECT 1 FROM sessions s WHERE s.device_id = devices.id)",
    [ST_DEV_LIST] = "SELECT id, name, created_at, last_seen FROM devices WHERE user_id = ?1 "
                    "ORDER BY created_at, rowid",
    [ST_SESS_DEL_DEVICE] = "DELETE FROM sessions WHERE device_id = ?1 AND user_id = ?2",
    [ST_DEV_DELETE] = "DELETE FROM devices WHERE id = ?1 AND user_id = ?2",
};

/* The cached statement for one of this file's slots. */
static enum parley_err stmt(struct sq_conn *c, enum sq_stmt_id id, sqlite3_stmt **out)
{
    return sq_stmt(c, id, stmt_sql[id], out);
}

/* ---- personal fields: the one place they cross the database boundary ---- */

/* The personal columns, in USER_COLS order from column index 2 (bind ?3..?6). */
#define PROFILE_NFIELDS 4
static const char *const profile_cols[PROFILE_NFIELDS] = {"name", "dob", "region", "gender"};
#define SEALED_MAX KEYSTORE_SEALED_TEXT_MAX(STORE_NAME_MAX)

static const char *profile_field(const struct store_user *u, int i)
{
    switch (i) {
    case 0: return u->name;
    case 1: return u->dob;
    case 2: return u->region;
    default: return u->gender;
    }
}

/* Bind a user row to ?1..?10 in USER_COLS order. With key (the account's data key) the
 * personal fields are sealed, absent ones too (so ciphertext does not tell which were
 * given); without, they are bound as plaintext and profile_enc is 0. */
static int profile_bind(sqlite3_stmt *st, const struct store_user *u, const uint8_t *key)
{
    char sealed[SEALED_MAX];
    int rc = sq_bind_text(st, 1, u->id);
    if (rc == SQLITE_OK)
        rc = sq_bind_text(st, 2, u->username);
    for (int i = 0; i < PROFILE_NFIELDS && rc == SQLITE_OK; i++) {
        const char *v = profile_field(u, i);
        if (key) {
            if (keystore_seal_field(key, u->id, profile_cols[i], v, sealed, sizeof sealed))
                rc = SQLITE_TOOBIG;
            else
                rc = sq_bind_text(st, 3 + i, sealed);
        } else {
            rc = i < 2 ? sq_bind_text(st, 3 + i, v) : sq_bind_opt_text(st, 3 + i, v);
        }
    }
    if (rc == SQLITE_OK)
        rc = sq_bind_text(st, 7, u->password_hash);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 8, u->parental_consent_required ? 1 : 0);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 9, u->created_at);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 10, key ? 1 : 0);
    sodium_memzero(sealed, sizeof sealed);
    return rc;
}

/* Read a row selected with USER_COLS, decrypting the personal fields with the
 * account's key from ks. PARLEY_ERR_STORE for a corrupt row, PARLEY_ERR_NOTFOUND when
 * the row is encrypted and its key is gone (the account was erased: a restored backup),
 * PARLEY_ERR_CRYPTO when it does not decrypt. */
static enum parley_err profile_read(sqlite3_stmt *st, struct store_user *u, struct keystore *ks)
{
    char sealed[SEALED_MAX];
    uint8_t key[KEYSTORE_KEY_BYTES];
    size_t caps[PROFILE_NFIELDS] = {sizeof u->name, sizeof u->dob, sizeof u->region,
                                    sizeof u->gender};
    char *dst[PROFILE_NFIELDS] = {u->name, u->dob, u->region, u->gender};
    enum parley_err err = PARLEY_OK;
    memset(u, 0, sizeof *u);
    bool ok = sq_col_text(st, 0, u->id, sizeof u->id) &&
              sq_col_text(st, 1, u->username, sizeof u->username) &&
              sq_col_text(st, 6, u->password_hash, sizeof u->password_hash);
    u->parental_consent_required = sqlite3_column_int(st, 7) != 0;
    u->created_at = sqlite3_column_int64(st, 8);
    bool enc = sqlite3_column_int(st, 9) != 0;
    if (!ok)
        return PARLEY_ERR_STORE;
    if (!enc) {
        for (int i = 0; i < PROFILE_NFIELDS; i++)
            if (!sq_col_text(st, 2 + i, dst[i], caps[i]))
                return PARLEY_ERR_STORE;
        return PARLEY_OK;
    }
    if (!ks)
        return PARLEY_ERR_CRYPTO;
    err = keystore_get(ks, u->id, key);
    if (err == PARLEY_ERR_NOTFOUND)
        log_event(LOG_WARN, "profile_key_missing", "detail",
                  "an account row whose data key is destroyed (restored backup?)", NULL);
    for (int i = 0; !err && i < PROFILE_NFIELDS; i++) {
        if (!sq_col_text(st, 2 + i, sealed, sizeof sealed))
            err = PARLEY_ERR_STORE;
        else
            err = keystore_open_field(key, u->id, profile_cols[i], sealed, dst[i], caps[i]);
    }
    sodium_memzero(key, sizeof key);
    sodium_memzero(sealed, sizeof sealed);
    if (err)
        sodium_memzero(u, sizeof *u);
    return err;
}

/* ---- users ---- */

static enum parley_err sq_user_create(struct store *s, const struct store_user *u)
{
    struct keystore *ks = sq(s)->ks;
    uint8_t key[KEYSTORE_KEY_BYTES];
    bool made_key = false;
    enum parley_err err = PARLEY_OK;
    /* The key first: a crash between the two leaves an orphan key (destroyed at the next
     * open), never a row that nothing can decrypt. */
    if (ks) {
        err = keystore_create(ks, u->id, u->created_at, key);
        if (err)
            return err;
        made_key = true;
    }
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    err = stmt(c, ST_USER_INSERT, &st);
    if (err)
        goto out;
    err = sq_exec(c, st, profile_bind(st, u, ks ? key : NULL), "user_create");
out:
    sq_conn_put(sq(s), c);
    if (err && made_key)
        (void)!keystore_destroy(ks, u->id);
    sodium_memzero(key, sizeof key);
    return err;
}

/* With c borrowed: select the user by id (ST_USER_BY_ID) or username (ST_USER_BY_NAME). */
static enum parley_err user_get(struct sq_conn *c, struct keystore *ks, enum sq_stmt_id id,
                                const char *key, struct store_user *out)
{
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, id, &st);
    if (err)
        return err;
    bool found = false;
    err = sq_step_row(c, st, sq_bind_text(st, 1, key), &found, "user_get");
    if (!err)
        err = found ? profile_read(st, out, ks) : PARLEY_ERR_NOTFOUND;
    sq_stmt_done(st);
    return err;
}

static enum parley_err sq_user_get_by_id(struct store *s, const char *id, struct store_user *out)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    enum parley_err err = user_get(c, sq(s)->ks, ST_USER_BY_ID, id, out);
    sq_conn_put(sq(s), c);
    return err;
}

static enum parley_err sq_user_get_by_username(struct store *s, const char *username,
                                               struct store_user *out)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    enum parley_err err = user_get(c, sq(s)->ks, ST_USER_BY_NAME, username, out);
    sq_conn_put(sq(s), c);
    return err;
}

static enum parley_err sq_user_update_profile(struct store *s, const char *id,
                                              const struct store_profile_patch *p,
                                              struct store_user *out)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    struct keystore *ks = sq(s)->ks;
    struct store_user u;
    uint8_t key[KEYSTORE_KEY_BYTES];
    sqlite3_stmt *st = NULL;
    memset(&u, 0, sizeof u);
    memset(key, 0, sizeof key);
    enum parley_err err = sq_begin(c);
    if (err)
        goto out;
    err = user_get(c, ks, ST_USER_BY_ID, id, &u);
    if (err)
        goto out;
    if (ks) {
        err = keystore_get(ks, id, key);
        if (err)
            goto out;
    }
    if (p->fields & STORE_PATCH_NAME)
        snprintf(u.name, sizeof u.name, "%s", p->name);
    if (p->fields & STORE_PATCH_REGION)
        snprintf(u.region, sizeof u.region, "%s", p->region);
    if (p->fields & STORE_PATCH_GENDER)
        snprintf(u.gender, sizeof u.gender, "%s", p->gender);
    if (p->fields & STORE_PATCH_CONSENT)
        u.parental_consent_required = true;
    err = stmt(c, ST_USER_UPDATE, &st);
    if (err)
        goto out;
    err = sq_exec(c, st, profile_bind(st, &u, ks ? key : NULL), "user_update");
out:
    err = sq_end(c, err);
    if (err == PARLEY_OK && out)
        *out = u;
    sodium_memzero(&u, sizeof u); /* keep personal data (and the hash) short-lived */
    sodium_memzero(key, sizeof key);
    sq_conn_put(sq(s), c);
    return err;
}

/* ---- sessions ---- */

static enum parley_err exec_user_now(struct sq_conn *c, enum sq_stmt_id id, const char *user_id,
                                     int64_t now, const char *what)
{
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, id, &st);
    if (err)
        return err;
    int rc = sq_bind_text(st, 1, user_id);
    if (rc == SQLITE_OK && sqlite3_bind_parameter_count(st) >= 2)
        rc = sqlite3_bind_int64(st, 2, now);
    return sq_exec(c, st, rc, what);
}

static enum parley_err sq_session_create(struct store *s, const struct store_session_new *in,
                                         char device_id_out[STORE_ID_LEN + 1])
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    char dev[STORE_ID_LEN + 1];
    bool found = false;
    int64_t n = 0;
    int rc;
    enum parley_err err = sq_begin(c);
    if (err)
        goto out;

    /* The user must exist (the foreign key would say so too, but later). */
    err = stmt(c, ST_USER_EXISTS, &st);
    if (err)
        goto out;
    err = sq_query_int(c, st, sq_bind_text(st, 1, in->user_id), &found, NULL, "session_create");
    if (!err && !found)
        err = PARLEY_ERR_NOTFOUND;
    if (err)
        goto out;

    /* Expired logins do not count against the limit: sweep them first. */
    err = exec_user_now(c, ST_SESS_DEL_EXPIRED_USER, in->user_id, in->now, "session_sweep");
    if (err)
        goto out;
    err = exec_user_now(c, ST_DEV_DEL_ORPHANS_USER, in->user_id, 0, "device_sweep");
    if (err)
        goto out;

    err = stmt(c, ST_DEV_COUNT, &st);
    if (err)
        goto out;
    err = sq_query_int(c, st, sq_bind_text(st, 1, in->user_id), NULL, &n, "device_count");
    if (err)
        goto out;
    if (n >= (int64_t)in->max_devices) {
        err = PARLEY_ERR_LIMIT;
        goto out;
    }

    store_id_new(dev);
    err = stmt(c, ST_DEV_INSERT, &st);
    if (err)
        goto out;
    rc = sq_bind_text(st, 1, dev);
    if (rc == SQLITE_OK)
        rc = sq_bind_text(st, 2, in->user_id);
    if (rc == SQLITE_OK)
        rc = sq_bind_text(st, 3, in->device_name ? in->device_name : "");
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 4, in->now);
    err = sq_exec(c, st, rc, "device_insert");
    if (err)
        goto out;

    err = stmt(c, ST_SESS_INSERT, &st);
    if (err)
        goto out;
    rc = sqlite3_bind_blob(st, 1, in->token_hash, STORE_TOKEN_HASH_BYTES, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK)
        rc = sq_bind_text(st, 2, in->user_id);
    if (rc == SQLITE_OK)
        rc = sq_bind_text(st, 3, dev);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 4, in->now);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 5, in->expires_at);
    err = sq_exec(c, st, rc, "session_insert");
out:
    err = sq_end(c, err);
    sq_conn_put(sq(s), c);
    if (err == PARLEY_OK)
        memcpy(device_id_out, dev, sizeof dev);
    return err;
}

static enum parley_err sq_session_lookup(struct store *s, const uint8_t *token_hash, int64_t now,
                                         struct store_session *out)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    struct store_session r;
    int64_t last_seen = 0;
    bool found = false;
    memset(&r, 0, sizeof r);
    enum parley_err err = stmt(c, ST_SESS_LOOKUP, &st);
    if (err)
        goto out;
    int rc = sqlite3_bind_blob(st, 1, token_hash, STORE_TOKEN_HASH_BYTES, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, now);
    err = sq_step_row(c, st, rc, &found, "session_lookup");
    if (!err && !found)
        err = PARLEY_ERR_NOTFOUND;
    if (!err) {
        if (!sq_col_text(st, 0, r.user_id, sizeof r.user_id) ||
            !sq_col_text(st, 1, r.device_id, sizeof r.device_id))
            err = PARLEY_ERR_STORE;
        r.expires_at = sqlite3_column_int64(st, 2);
        last_seen = sqlite3_column_int64(st, 3);
    }
    sq_stmt_done(st);
    if (err)
        goto out;

    if (now - last_seen >= TOUCH_INTERVAL_S) {
        err = stmt(c, ST_DEV_TOUCH, &st);
        if (err)
            goto out;
        rc = sq_bind_text(st, 1, r.device_id);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 2, now);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 3, now - TOUCH_INTERVAL_S);
        err = sq_exec(c, st, rc, "device_touch");
        if (err)
            goto out;
    }
    *out = r;
out:
    sq_conn_put(sq(s), c);
    return err;
}

static enum parley_err sq_session_delete(struct store *s, const uint8_t *token_hash)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    char dev[STORE_ID_LEN + 1];
    bool found = false;
    enum parley_err err = sq_begin(c);
    if (err)
        goto out;
    err = stmt(c, ST_SESS_DEVICE, &st);
    if (err)
        goto out;
    int rc = sqlite3_bind_blob(st, 1, token_hash, STORE_TOKEN_HASH_BYTES, SQLITE_TRANSIENT);
    err = sq_step_row(c, st, rc, &found, "session_delete");
    if (!err && !found)
        err = PARLEY_ERR_NOTFOUND;
    if (!err && !sq_col_text(st, 0, dev, sizeof dev))
        err = PARLEY_ERR_STORE;
    sq_stmt_done(st);
    if (err)
        goto out;

    err = stmt(c, ST_SESS_DELETE, &st);
    if (err)
        goto out;
    rc = sqlite3_bind_blob(st, 1, token_hash, STORE_TOKEN_HASH_BYTES, SQLITE_TRANSIENT);
    err = sq_exec(c, st, rc, "session_delete");
    if (err)
        goto out;

    err = stmt(c, ST_DEV_DEL_IF_EMPTY, &st);
    if (err)
        goto out;
    err = sq_exec(c, st, sq_bind_text(st, 1, dev), "device_delete");
out:
    err = sq_end(c, err);
    sq_conn_put(sq(s), c);
    return err;
}

static enum parley_err sq_session_purge_expired(struct store *s, int64_t now, size_t *n_out)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    enum parley_err err = sq_begin(c);
    if (err)
        goto out;
    err = stmt(c, ST_SESS_PURGE, &st);
    if (err)
        goto out;
    err = sq_exec(c, st, sqlite3_bind_int64(st, 1, now), "session_purge");
    if (err)
        goto out;
    n = (size_t)sqlite3_changes(c->db);
    err = stmt(c, ST_DEV_DEL_ORPHANS_ALL, &st);
    if (err)
        goto out;
    err = sq_step_done(c, st, "device_purge");
out:
    err = sq_end(c, err);
    /* Deleted means gone from the files too: fold the WAL back and truncate it. A busy
     * reader only delays this to the next purge, so its result is not an error. */
    if (!err && n > 0)
        (void)sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    sq_conn_put(sq(s), c);
    if (!err && n_out)
        *n_out = n;
    return err;
}

/* ---- devices ---- */

/* Read a ST_DEV_LIST row into the zeroed device; an sq_read_fn. */
static enum parley_err device_read(sqlite3_stmt *st, void *elem)
{
    struct store_device *d = elem;
    if (!sq_col_text(st, 0, d->id, sizeof d->id) || !sq_col_text(st, 1, d->name, sizeof d->name))
        return PARLEY_ERR_STORE;
    d->created_at = sqlite3_column_int64(st, 2);
    d->last_seen = sqlite3_column_int64(st, 3);
    return PARLEY_OK;
}

static enum parley_err sq_device_list(struct store *s, const char *user_id,
                                      struct store_device **out, size_t *n_out)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    void *v = NULL;
    size_t n = 0;
    enum parley_err err = stmt(c, ST_DEV_LIST, &st);
    if (!err)
        err = sq_collect(c, st, sq_bind_text(st, 1, user_id), sizeof **out, device_read,
                         "device_list", &v, &n);
    sq_conn_put(sq(s), c);
    if (err)
        return err;
    *out = v;
    *n_out = n;
    return PARLEY_OK;
}

static enum parley_err sq_device_delete(struct store *s, const char *user_id, const char *device_id)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    enum parley_err err = sq_begin(c);
    if (err)
        goto out;
    /* Sessions first, explicitly: revocation must not depend on the foreign-key pragma. */
    for (int i = 0; i < 2; i++) {
        enum sq_stmt_id id = i == 0 ? ST_SESS_DEL_DEVICE : ST_DEV_DELETE;
        err = stmt(c, id, &st);
        if (err)
            goto out;
        err = sq_exec(c, st, sq_bind_text2(st, device_id, user_id), "device_delete");
        if (err)
            goto out;
    }
    if (sqlite3_changes(c->db) == 0)
        err = PARLEY_ERR_NOTFOUND;
out:
    err = sq_end(c, err);
    sq_conn_put(sq(s), c);
    return err;
}

/* ---- open / close ---- */

static void conn_close(struct sq_conn *c)
{
    for (size_t i = 0; i < ST__COUNT; i++) {
        sqlite3_finalize(c->st[i]);
        c->st[i] = NULL;
    }
    if (c->db)
        sqlite3_close(c->db);
    c->db = NULL;
}

static void sq_close(struct store *base)
{
    struct sq_store *s = sq(base);
    for (size_t i = 0; i < SQ_POOL_SIZE; i++)
        conn_close(&s->conns[i]);
    if (s->sync_inited) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        pthread_mutex_destroy(&s->seen_mu);
    }
    seen_filter_free(&s->seen);
    free(s);
}

static const struct store_ops sqlite_ops = {
    .name = "sqlite",
    .user_create = sq_user_create,
    .user_get_by_id = sq_user_get_by_id,
    .user_get_by_username = sq_user_get_by_username,
    .user_update_profile = sq_user_update_profile,
    .session_create = sq_session_create,
    .session_lookup = sq_session_lookup,
    .session_delete = sq_session_delete,
    .session_purge_expired = sq_session_purge_expired,
    .device_list = sq_device_list,
    .device_delete = sq_device_delete,
    .keys_put = sq_keys_put,
    .keys_take_bundles = sq_keys_take_bundles,
    .keys_stock = sq_keys_stock,
    .keyed_devices = sq_keyed_devices,
    .group_create = sq_group_create,
    .group_get = sq_group_get,
    .group_list = sq_group_list,
    .group_member_set = sq_group_member_set,
    .group_member_remove = sq_group_member_remove,
    .group_rename = sq_group_rename,
    .queue_apply = sq_queue_apply,
    .queue_fetch = sq_queue_fetch,
    .queue_count = sq_queue_count,
    .queue_purge_expired = sq_queue_purge_expired,
    .user_delete = sq_user_delete,
    .user_rows = sq_user_rows,
    .privacy = &sq_privacy_ops,
    .close = sq_close,
};

static enum parley_err exec_sql(struct sq_conn *c, const char *sql, const char *what)
{
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return sq_err(c, rc, what);
    return PARLEY_OK;
}

/* SQLite keeps memory statistics by default: a global mutex and counters around every
 * allocation, about 3.5 per relayed message (issue #5). parleyd never reads them. Only
 * possible before SQLite initialises; later it fails harmlessly. */
void store_sqlite_global_init(uint64_t mmap_bytes)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    /* A drain reads rows written long ago: through pread() each page was a system call
     * and a copy, a quarter of the drain's system calls (issue #5). SQLite clamps the
     * size to what it was built to allow; WAL frames are still read with pread(). */
    sqlite3_int64 n = mmap_bytes > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)mmap_bytes;
    (void)sqlite3_config(SQLITE_CONFIG_MMAP_SIZE, n, n);
}

static enum parley_err conn_open(struct sq_conn *c, const char *path)
{
    int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        return sq_err(c, rc, "open");
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, SQ_BUSY_TIMEOUT_MS);
    enum parley_err err = exec_sql(c,
                                   "PRAGMA foreign_keys = ON;"
                                   "PRAGMA secure_delete = ON;"
                                   "PRAGMA synchronous = FULL;"
                                   "PRAGMA trusted_schema = OFF;",
                                   "pragmas");
    if (err)
        return err;
    /* Deleting a device or user must take its keys, queue and memberships with it (the
     * ON DELETE CASCADE clauses): refuse a SQLite built without foreign keys, which
     * would accept the pragma silently. */
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(c->db, "PRAGMA foreign_keys", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW || sqlite3_column_int(st, 0) != 1) {
        log_event(LOG_ERROR, "store_error", "op", "pragmas", "detail", "foreign keys not enforced",
                  NULL);
        err = PARLEY_ERR_STORE;
    }
    sqlite3_finalize(st);
    return err;
}

static enum parley_err set_wal(struct sq_conn *c)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    enum parley_err err = PARLEY_OK;
    if (rc != SQLITE_ROW) {
        err = sq_err(c, rc, "journal_mode");
    } else {
        const unsigned char *mode = sqlite3_column_text(st, 0);
        if (!mode || strcmp((const char *)mode, "wal") != 0) {
            log_event(LOG_ERROR, "store_error", "op", "journal_mode", "detail", "WAL not available",
                      NULL);
            err = PARLEY_ERR_STORE;
        }
    }
    sqlite3_finalize(st);
    return err;
}

static enum parley_err migrate(struct sq_conn *c)
{
    sqlite3_stmt *st = NULL;
    int latest = store_schema_version_latest();
    enum parley_err err = exec_sql(c, "BEGIN IMMEDIATE", "migrate");
    if (err)
        return err;
    err = exec_sql(c,
                   "CREATE TABLE IF NOT EXISTS schema_version ("
                   " version INTEGER PRIMARY KEY NOT NULL,"
                   " applied_at INTEGER NOT NULL)",
                   "migrate");
    if (err)
        goto out;
    int rc = sqlite3_prepare_v2(c->db, "SELECT coalesce(max(version), 0) FROM schema_version", -1,
                                &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        err = sq_err(c, rc, "migrate");
        goto out;
    }
    int current = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (current > latest) {
        char cur[16], lat[16];
        snprintf(cur, sizeof cur, "%d", current);
        snprintf(lat, sizeof lat, "%d", latest);
        log_event(LOG_ERROR, "store_schema_too_new", "version", cur, "supported", lat, NULL);
        err = PARLEY_ERR_STORE;
        goto out;
    }
    for (size_t i = 0; i < store_sqlite_migrations_count; i++) {
        const struct store_migration *m = &store_sqlite_migrations[i];
        if (m->version <= current)
            continue;
        err = exec_sql(c, m->sql, "migration");
        if (err)
            goto out;
        rc = sqlite3_prepare_v2(c->db,
                                "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
                                -1, &st, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int(st, 1, m->version);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 2, clock_now_s());
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            err = sq_err(c, rc, "migration");
            goto out;
        }
        sqlite3_finalize(st);
        st = NULL;
        char ver[16];
        snprintf(ver, sizeof ver, "%d", m->version);
        log_event(LOG_INFO, "store_migrated", "version", ver, NULL);
    }
    char pragma[48];
    snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", latest);
    err = exec_sql(c, pragma, "migrate");
    if (err)
        goto out;
    err = exec_sql(c, "COMMIT", "migrate");
out:
    sqlite3_finalize(st);
    if (err && !sqlite3_get_autocommit(c->db))
        (void)sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    return err;
}

/* Create the file 0600 (or tighten an existing one) before SQLite opens it. */
static enum parley_err create_file(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        log_event(LOG_ERROR, "store_error", "op", "create", "detail", strerror(errno), NULL);
        return PARLEY_ERR_IO;
    }
    enum parley_err err = PARLEY_OK;
    if (fchmod(fd, 0600) != 0) {
        log_event(LOG_ERROR, "store_error", "op", "chmod", "detail", strerror(errno), NULL);
        err = PARLEY_ERR_IO;
    }
    close(fd);
    return err;
}

int store_schema_version_latest(void)
{
    int v = 0;
    for (size_t i = 0; i < store_sqlite_migrations_count; i++)
        if (store_sqlite_migrations[i].version > v)
            v = store_sqlite_migrations[i].version;
    return v;
}

/* Encrypt in place every profile row still in plaintext (profile_enc = 0), making the
 * account's data key when it has none, in one transaction; then fold and truncate the
 * WAL so the plaintext is gone from the files too. */
static enum parley_err encrypt_legacy(struct sq_store *s, struct sq_conn *c)
{
    sqlite3_stmt *sel = NULL, *st = NULL;
    struct store_user u;
    uint8_t key[KEYSTORE_KEY_BYTES];
    size_t n = 0;
    memset(&u, 0, sizeof u);
    enum parley_err err = sq_begin(c);
    if (err)
        return err;
    int rc = sqlite3_prepare_v2(c->db, "SELECT " USER_COLS " FROM users WHERE profile_enc = 0",
                                -1, &sel, NULL);
    while (!err && rc == SQLITE_OK && (rc = sqlite3_step(sel)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        err = profile_read(sel, &u, NULL);
        if (err)
            break;
        err = keystore_get(s->ks, u.id, key);
        if (err == PARLEY_ERR_NOTFOUND)
            err = keystore_create(s->ks, u.id, clock_now_s(), key);
        if (err)
            break;
        err = stmt(c, ST_USER_UPDATE, &st);
        if (err)
            break;
        err = sq_exec(c, st, profile_bind(st, &u, key), "encrypt_legacy");
        n++;
    }
    if (!err && rc != SQLITE_DONE && rc != SQLITE_OK)
        err = sq_err(c, rc, "encrypt_legacy");
    sqlite3_finalize(sel);
    sodium_memzero(&u, sizeof u);
    sodium_memzero(key, sizeof key);
    err = sq_end(c, err);
    if (err)
        return err;
    if (n > 0) {
        char num[24];
        snprintf(num, sizeof num, "%zu", n);
        log_event(LOG_INFO, "profiles_encrypted", "rows", num, NULL);
        (void)sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    }
    return PARLEY_OK;
}

enum parley_err store_open_sqlite_keyed(const char *path, struct keystore *ks, struct store **out)
{
    struct store *st = NULL;
    if (!ks)
        return PARLEY_ERR_INVAL;
    enum parley_err err = store_open_sqlite(path, &st);
    if (err)
        return err;
    struct sq_store *s = sq(st);
    s->ks = ks;
    struct sq_conn *c = sq_conn_get(s);
    err = encrypt_legacy(s, c);
    if (!err)
        err = sq_erasure_open(s, c);
    sq_conn_put(s, c);
    if (err) {
        store_close(st);
        return err;
    }
    *out = st;
    return PARLEY_OK;
}

enum parley_err store_open_sqlite(const char *path, struct store **out)
{
    struct sq_store *s = NULL;
    enum parley_err err;
    if (!path || !out)
        return PARLEY_ERR_INVAL;
    if (!sqlite3_threadsafe()) {
        log_event(LOG_ERROR, "store_error", "op", "open", "detail",
                  "SQLite built without thread support", NULL);
        return PARLEY_ERR_STORE;
    }
    err = create_file(path);
    if (err)
        return err;
    s = calloc(1, sizeof *s);
    if (!s)
        return PARLEY_ERR_NOMEM;
    s->base.ops = &sqlite_ops;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        return PARLEY_ERR_NOMEM;
    }
    if (pthread_cond_init(&s->cv, NULL) != 0) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return PARLEY_ERR_NOMEM;
    }
    if (pthread_mutex_init(&s->seen_mu, NULL) != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return PARLEY_ERR_NOMEM;
    }
    s->sync_inited = true;
    err = conn_open(&s->conns[0], path);
    if (err)
        goto out;
    err = set_wal(&s->conns[0]);
    if (err)
        goto out;
    err = migrate(&s->conns[0]);
    if (err)
        goto out;
    for (size_t i = 1; i < SQ_POOL_SIZE; i++) {
        err = conn_open(&s->conns[i], path);
        if (err)
            goto out;
    }
out:
    if (err) {
        sq_close(&s->base);
        return err;
    }
    *out = &s->base;
    return PARLEY_OK;
}
