/*
 * sqlite_keys.c — device keys in the SQLite backend (contracts in store_messaging.h):
 * uploading public keys, handing out prekey bundles, the one-time prekey stock.
 *
 * Invariant (P6 / X3DH): a one-time prekey is handed out at most once. Taking bundles
 * runs in a BEGIN IMMEDIATE transaction that reads the lowest prekey and deletes it, so
 * two callers fetching at the same moment are serialised by SQLite's write lock and never
 * see the same row. A device's keyed state is its device_keys row; the device's deletion
 * cascades to both tables.
 */
#include <stdlib.h>
#include <string.h>

#include "sqlite_int.h"

static const char *const stmt_sql[ST__COUNT] = {
    [ST_KEY_DEV_OF_USER] = "SELECT 1 FROM devices WHERE id = ?1 AND user_id = ?2",
    [ST_KEY_GET_IDENTITY] = "SELECT identity_key FROM device_keys WHERE device_id = ?1",
    [ST_KEY_INSERT] = "INSERT INTO device_keys (device_id, identity_key, spk_id, spk, spk_sig, "
                      "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_KEY_UPDATE_SPK] = "UPDATE device_keys SET spk_id = ?2, spk = ?3, spk_sig = ?4, "
                          "updated_at = ?5 WHERE device_id = ?1",
    [ST_KEY_OPK_PUT] = "INSERT INTO onetime_prekeys (device_id, key_id, pk) VALUES (?1, ?2, ?3) "
                       "ON CONFLICT (device_id, key_id) DO UPDATE SET pk = excluded.pk",
    [ST_KEY_OPK_COUNT] = "SELECT count(*) FROM onetime_prekeys WHERE device_id = ?1",
    [ST_KEY_BUNDLES_USER] = "SELECT d.user_id, d.id, k.identity_key, k.spk_id, k.spk, k.spk_sig "
                            "FROM devices d JOIN device_keys k ON k.device_id = d.id "
                            "WHERE d.user_id = ?1 AND d.id <> ?2 "
                            "ORDER BY d.created_at, d.rowid",
    [ST_KEY_BUNDLE_DEVICE] = "SELECT d.user_id, d.id, k.identity_key, k.spk_id, k.spk, k.spk_sig "
                             "FROM devices d JOIN device_keys k ON k.device_id = d.id "
                             "WHERE d.user_id = ?1 AND d.id = ?2",
    [ST_KEY_OPK_LOWEST] = "SELECT key_id, pk FROM onetime_prekeys WHERE device_id = ?1 "
                          "ORDER BY key_id LIMIT 1",
    [ST_KEY_OPK_DELETE] = "DELETE FROM onetime_prekeys WHERE device_id = ?1 AND key_id = ?2",
    [ST_KEY_KEYED_DEVICES] = "SELECT d.user_id, d.id FROM devices d "
                             "JOIN device_keys k ON k.device_id = d.id "
                             "WHERE d.user_id = ?1 ORDER BY d.created_at, d.rowid",
};

static enum parley_err stmt(struct sq_conn *c, enum sq_stmt_id id, sqlite3_stmt **out)
{
    return sq_stmt(c, id, stmt_sql[id], out);
}

/* One-time prekeys held for device_id, with c borrowed. */
static enum parley_err opk_count(struct sq_conn *c, const char *device_id, size_t *n_out)
{
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, ST_KEY_OPK_COUNT, &st);
    if (err)
        return err;
    int64_t n = 0;
    err = sq_query_int(c, st, sq_bind_text(st, 1, device_id), NULL, &n, "keys_stock");
    if (!err)
        *n_out = (size_t)n;
    return err;
}

static enum parley_err put_spk(struct sq_conn *c, const struct store_keys_upload *in, bool insert)
{
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, insert ? ST_KEY_INSERT : ST_KEY_UPDATE_SPK, &st);
    if (err)
        return err;
    int rc = sq_bind_text(st, 1, in->device_id);
    int i = 2;
    if (rc == SQLITE_OK && insert)
        rc = sqlite3_bind_blob(st, i++, in->identity_key, STORE_KEY_BYTES, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, i++, in->spk_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(st, i++, in->spk, STORE_KEY_BYTES, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(st, i++, in->spk_sig, STORE_SIG_BYTES, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, i, in->now);
    return sq_exec(c, st, rc, "keys_put");
}

enum parley_err sq_keys_put(struct store *s, const struct store_keys_upload *in, size_t *stock_out)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    size_t stock = 0;
    bool found = false, have_keys = false;
    int rc;
    enum parley_err err = sq_begin(c);
    if (err)
        goto out;

    err = stmt(c, ST_KEY_DEV_OF_USER, &st);
    if (err)
        goto out;
    err = sq_query_int(c, st, sq_bind_text2(st, in->device_id, in->user_id), &found, NULL,
                       "keys_put");
    if (!err && !found)
        err = PARLEY_ERR_NOTFOUND;
    if (err)
        goto out;

    /* The identity key is fixed for the device's life. */
    err = stmt(c, ST_KEY_GET_IDENTITY, &st);
    if (err)
        goto out;
    err = sq_step_row(c, st, sq_bind_text(st, 1, in->device_id), &have_keys, "keys_put");
    if (!err && have_keys) {
        uint8_t ik[STORE_KEY_BYTES];
        if (!sq_col_blob(st, 0, ik, sizeof ik))
            err = PARLEY_ERR_STORE;
        else if (memcmp(ik, in->identity_key, sizeof ik) != 0)
            err = PARLEY_ERR_EXISTS;
    }
    sq_stmt_done(st);
    if (err)
        goto out;
    if (!have_keys && !in->has_signed_prekey) {
        err = PARLEY_ERR_INVAL;
        goto out;
    }
    if (in->has_signed_prekey) {
        err = put_spk(c, in, !have_keys);
        if (err)
            goto out;
    }

    for (size_t i = 0; i < in->n_onetime; i++) {
        err = stmt(c, ST_KEY_OPK_PUT, &st);
        if (err)
            goto out;
        rc = sq_bind_text(st, 1, in->device_id);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 2, in->onetime[i].id);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_blob(st, 3, in->onetime[i].pk, STORE_KEY_BYTES, SQLITE_TRANSIENT);
        err = sq_exec(c, st, rc, "keys_put");
        if (err)
            goto out;
    }
    /* Counting after the upserts handles replaced ids and repeats within the upload;
     * over the limit, the rollback below leaves the stock as it was. */
    err = opk_count(c, in->device_id, &stock);
    if (err)
        goto out;
    if (stock > STORE_ONETIME_STOCK_MAX) {
        err = PARLEY_ERR_LIMIT;
        goto out;
    }
out:
    err = sq_end(c, err);
    sq_conn_put(sq(s), c);
    if (err == PARLEY_OK && stock_out)
        *stock_out = stock;
    return err;
}

/* Read one bundle row (ST_KEY_BUNDLES_USER / ST_KEY_BUNDLE_DEVICE columns); an
 * sq_read_fn. */
static enum parley_err bundle_read(sqlite3_stmt *st, void *elem)
{
    struct store_bundle *b = elem;
    bool ok = sq_col_text(st, 0, b->user_id, sizeof b->user_id) &&
              sq_col_text(st, 1, b->device_id, sizeof b->device_id) &&
              sq_col_blob(st, 2, b->identity_key, sizeof b->identity_key) &&
              sq_col_blob(st, 4, b->spk, sizeof b->spk) &&
              sq_col_blob(st, 5, b->spk_sig, sizeof b->spk_sig);
    b->spk_id = (uint32_t)sqlite3_column_int64(st, 3);
    return ok ? PARLEY_OK : PARLEY_ERR_STORE;
}

/* An sq_read_fn for (user_id, device_id) rows. */
static enum parley_err user_device_read(sqlite3_stmt *st, void *elem)
{
    struct store_user_device *d = elem;
    if (!sq_col_text(st, 0, d->user_id, sizeof d->user_id) ||
        !sq_col_text(st, 1, d->device_id, sizeof d->device_id))
        return PARLEY_ERR_STORE;
    return PARLEY_OK;
}

/* Take b's device's lowest one-time prekey, if any, into b (c in a write transaction). */
static enum parley_err take_opk(struct sq_conn *c, struct store_bundle *b)
{
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, ST_KEY_OPK_LOWEST, &st);
    if (err)
        return err;
    err = sq_step_row(c, st, sq_bind_text(st, 1, b->device_id), &b->has_opk, "keys_take");
    if (!err && b->has_opk) {
        b->opk_id = (uint32_t)sqlite3_column_int64(st, 0);
        if (!sq_col_blob(st, 1, b->opk, sizeof b->opk))
            err = PARLEY_ERR_STORE;
    }
    sq_stmt_done(st);
    if (err || !b->has_opk)
        return err;

    err = stmt(c, ST_KEY_OPK_DELETE, &st);
    if (err)
        return err;
    int rc = sq_bind_text(st, 1, b->device_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, b->opk_id);
    err = sq_exec(c, st, rc, "keys_take");
    if (!err && sqlite3_changes(c->db) != 1)
        err = PARLEY_ERR_STORE; /* cannot happen under the write lock */
    return err;
}

enum parley_err sq_keys_take_bundles(struct store *s, const char *user_id, const char *device_id,
                                     const char *except_device, struct store_bundle **out,
                                     size_t *n_out)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    void *p = NULL;
    struct store_bundle *v = NULL;
    size_t n = 0;
    /* IMMEDIATE: take the write lock before reading, so no other taker can read the same
     * prekey between our read and our delete. */
    enum parley_err err = sq_begin(c);
    if (err)
        goto out;
    err = stmt(c, device_id ? ST_KEY_BUNDLE_DEVICE : ST_KEY_BUNDLES_USER, &st);
    if (err)
        goto out;
    const char *dev = device_id ? device_id : except_device ? except_device : "";
    err = sq_collect(c, st, sq_bind_text2(st, user_id, dev), sizeof *v, bundle_read, "keys_take",
                     &p, &n);
    if (err)
        goto out;
    v = p;
    if (n == 0) {
        err = PARLEY_ERR_NOTFOUND;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        err = take_opk(c, &v[i]);
        if (err)
            goto out;
    }
out:
    err = sq_end(c, err);
    sq_conn_put(sq(s), c);
    if (err) {
        free(v);
        return err;
    }
    *out = v;
    *n_out = n;
    return PARLEY_OK;
}

enum parley_err sq_keys_stock(struct store *s, const char *device_id, size_t *n_out)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    size_t n = 0;
    enum parley_err err = opk_count(c, device_id, &n);
    sq_conn_put(sq(s), c);
    if (err == PARLEY_OK)
        *n_out = n;
    return err;
}

enum parley_err sq_keyed_devices(struct store *s, const char *user_id,
                                 struct store_user_device **out, size_t *n_out)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    void *v = NULL;
    size_t n = 0;
    enum parley_err err = stmt(c, ST_KEY_KEYED_DEVICES, &st);
    if (!err)
        err = sq_collect(c, st, sq_bind_text(st, 1, user_id), sizeof **out, user_device_read,
                         "keyed_devices", &v, &n);
    sq_conn_put(sq(s), c);
    if (err)
        return err;
    *out = v;
    *n_out = n;
    return PARLEY_OK;
}
