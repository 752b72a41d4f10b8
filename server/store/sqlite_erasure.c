/*
 * sqlite_erasure.c — the SQLite backend's erasure (P27) and access (P28) operations:
 * store_user_delete, store_user_rows, and the key-store sweep at open.
 *
 * Erasure is schema-driven as well as explicit: besides the statements for the tables
 * we know (the queue in both directions, sessions, devices and what cascades from them,
 * memberships), every table that has a user column — user_id, or a name ending in
 * "_user" or "_user_id" — loses the account's rows, so a table added later without
 * thought for deletion is still erased (tests/integ/test_rights_erasure.py scans every
 * column of every table to prove it). Exceptions, by name:
 *  - RETAIN_PSEUDONYMISED (P4: purchase records kept for tax law): the user columns are
 *    overwritten with a random pseudonym, the same for all rows of this erasure, so the
 *    records stay grouped per (former) account but name nobody;
 *  - NEVER_SWEEP: the append-only audit log, which names accounts only by pseudonym.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "keystore.h"
#include "log.h"
#include "sqlite_int.h"

#define MAX_SWEEP 128 /* (table, column) pairs the schema-driven sweep handles */
#define NAME_MAX_LEN 64
#define ROW_MAX_COLS 64
#define ORPHAN_AGE_S 3600

static const char *const RETAIN_PSEUDONYMISED[] = {"purchases", "entitlements"};
static const char *const NEVER_SWEEP[] = {"users", "schema_version", "audit_log"};

static bool in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(name, list[i]))
            return true;
    return false;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static bool is_user_column(const char *col)
{
    return !strcmp(col, "user_id") || ends_with(col, "_user") || ends_with(col, "_user_id");
}

/* A name we can put between double quotes as it is. */
static bool plain_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9')))
            return false;
    return true;
}

struct sweep_item {
    char table[NAME_MAX_LEN];
    char column[NAME_MAX_LEN];
    bool pseudonymise;
};

/* The (table, column) pairs of the schema-driven sweep. */
static enum parley_err sweep_plan(struct sq_conn *c, struct sweep_item *items, size_t *n_out)
{
    sqlite3_stmt *st = NULL, *ti = NULL;
    size_t n = 0;
    enum parley_err err = PARLEY_OK;
    int rc = sqlite3_prepare_v2(c->db,
                                "SELECT name FROM sqlite_master WHERE type = 'table' AND "
                                "name NOT LIKE 'sqlite_%' ORDER BY name",
                                -1, &st, NULL);
    while (!err && rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (!t || in_list(t, NEVER_SWEEP, sizeof NEVER_SWEEP / sizeof NEVER_SWEEP[0]))
            continue;
        if (!plain_name(t)) {
            log_event(LOG_ERROR, "store_error", "op", "user_delete", "detail",
                      "a table name the erasure sweep cannot quote", NULL);
            err = PARLEY_ERR_STORE;
            break;
        }
        int trc = sqlite3_prepare_v2(c->db, "SELECT name FROM pragma_table_info(?1)", -1, &ti,
                                     NULL);
        if (trc == SQLITE_OK)
            trc = sqlite3_bind_text(ti, 1, t, -1, SQLITE_TRANSIENT);
        while (trc == SQLITE_OK && (trc = sqlite3_step(ti)) == SQLITE_ROW) {
            trc = SQLITE_OK;
            const char *col = (const char *)sqlite3_column_text(ti, 0);
            if (!col || !is_user_column(col))
                continue;
            if (!plain_name(col) || n == MAX_SWEEP) {
                err = PARLEY_ERR_LIMIT;
                break;
            }
            snprintf(items[n].table, sizeof items[n].table, "%s", t);
            snprintf(items[n].column, sizeof items[n].column, "%s", col);
            items[n].pseudonymise =
                in_list(t, RETAIN_PSEUDONYMISED,
                        sizeof RETAIN_PSEUDONYMISED / sizeof RETAIN_PSEUDONYMISED[0]);
            n++;
        }
        if (!err && trc != SQLITE_DONE)
            err = sq_err(c, trc, "user_delete_plan");
        sqlite3_finalize(ti);
        ti = NULL;
    }
    if (!err && rc != SQLITE_DONE)
        err = sq_err(c, rc, "user_delete_plan");
    sqlite3_finalize(st);
    if (!err)
        *n_out = n;
    return err;
}

/* Run sql with ?1 = user_id (and ?2 = pseudonym when given). These statements are
 * built per call (the sweep's names come from the schema), so they are not cached. */
static enum parley_err exec_user(struct sq_conn *c, const char *sql, const char *user_id,
                                 const char *pseudonym)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sq_bind_text2(st, user_id, pseudonym);
    enum parley_err err = sq_exec(c, st, rc, "user_delete");
    sqlite3_finalize(st);
    return err;
}

/* *found: does the account user_id have a users row? */
static enum parley_err user_exists(struct sq_conn *c, const char *user_id, bool *found,
                                   const char *what)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, "SELECT 1 FROM users WHERE id = ?1", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sq_bind_text(st, 1, user_id);
    enum parley_err err = sq_query_int(c, st, rc, found, NULL, what);
    sqlite3_finalize(st);
    return err;
}

/* The tables we know, in an order that needs no cascade (though the cascades exist). */
static const char *const ERASE_SQL[] = {
    /* The queue in both directions: envelopes waiting for the account's devices (found
     * through them: the queue has no user index, migration 6), those it sent that still
     * wait for others, and expiry notices naming it. */
    "DELETE FROM envelopes WHERE device_id IN (SELECT id FROM devices WHERE user_id = ?1)",
    "DELETE FROM envelopes WHERE sender_user = ?1 OR peer_user = ?1",
    /* queue_depth has no delete trigger (migration 5): recount what others still hold. */
    ("UPDATE queue_depth SET n = (SELECT count(*) FROM envelopes e "
     "WHERE e.device_id = queue_depth.device_id) WHERE ?1 IS NOT NULL"),
    "DELETE FROM sent_msg_ids WHERE sender_device IN (SELECT id FROM devices WHERE user_id = ?1)",
    "DELETE FROM onetime_prekeys WHERE device_id IN (SELECT id FROM devices WHERE user_id = ?1)",
    "DELETE FROM device_keys WHERE device_id IN (SELECT id FROM devices WHERE user_id = ?1)",
    "DELETE FROM queue_depth WHERE device_id IN (SELECT id FROM devices WHERE user_id = ?1)",
    "DELETE FROM sessions WHERE user_id = ?1",
    "DELETE FROM devices WHERE user_id = ?1",
    /* A group left without members goes too (trigger group_members_last). */
    "DELETE FROM group_members WHERE user_id = ?1",
};

enum parley_err sq_user_delete(struct store *base, const char *user_id)
{
    struct sq_store *s = sq(base);
    struct sq_conn *c = sq_conn_get(s);
    struct sweep_item *items = calloc(MAX_SWEEP, sizeof *items);
    char sql[256], pseudonym[48];
    size_t n = 0;
    bool found = false;
    enum parley_err err = items ? sq_begin(c) : PARLEY_ERR_NOMEM;
    if (err)
        goto out;
    err = user_exists(c, user_id, &found, "user_delete");
    if (!err && !found)
        err = PARLEY_ERR_NOTFOUND;
    if (err)
        goto out;
    for (size_t i = 0; i < sizeof ERASE_SQL / sizeof ERASE_SQL[0] && !err; i++)
        err = exec_user(c, ERASE_SQL[i], user_id, NULL);
    if (!err)
        err = sweep_plan(c, items, &n);
    {
        unsigned char raw[16];
        randombytes_buf(raw, sizeof raw);
        memcpy(pseudonym, "erased-", 7);
        sodium_bin2hex(pseudonym + 7, sizeof pseudonym - 7, raw, sizeof raw);
    }
    for (size_t i = 0; i < n && !err; i++) {
        if (items[i].pseudonymise)
            snprintf(sql, sizeof sql, "UPDATE \"%s\" SET \"%s\" = ?2 WHERE \"%s\" = ?1",
                     items[i].table, items[i].column, items[i].column);
        else
            snprintf(sql, sizeof sql, "DELETE FROM \"%s\" WHERE \"%s\" = ?1", items[i].table,
                     items[i].column);
        err = exec_user(c, sql, user_id, items[i].pseudonymise ? pseudonym : NULL);
    }
    if (!err)
        err = exec_user(c, "DELETE FROM users WHERE id = ?1", user_id, NULL);
out:
    err = sq_end(c, err);
    if (!err) {
        /* Deleted means gone from the files too (secure_delete zeroes the freed cells). */
        (void)sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        if (s->ks) {
            err = keystore_destroy(s->ks, user_id);
            if (err) /* the rows are gone; the key is swept at the next open */
                log_event(LOG_ERROR, "store_error", "op", "user_delete", "detail",
                          "data key not destroyed; it will be at the next start", NULL);
        }
    }
    sq_conn_put(s, c);
    free(items);
    return err;
}

enum parley_err sq_user_rows(struct store *base, const char *sql, const char *user_id,
                             store_row_fn fn, void *ctx)
{
    struct sq_store *s = sq(base);
    struct sq_conn *c = sq_conn_get(s);
    sqlite3_stmt *st = NULL;
    const char *names[ROW_MAX_COLS];
    struct store_value vals[ROW_MAX_COLS];
    enum parley_err err = sq_begin_read(c);
    if (err)
        goto out;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        err = sq_err(c, rc, "user_rows");
        goto out;
    }
    if (!sqlite3_stmt_readonly(st)) {
        err = PARLEY_ERR_INVAL;
        goto out;
    }
    if (sqlite3_bind_parameter_count(st) >= 1)
        rc = sqlite3_bind_text(st, 1, user_id, -1, SQLITE_TRANSIENT);
    int ncols = sqlite3_column_count(st);
    if (ncols > ROW_MAX_COLS) {
        err = PARLEY_ERR_LIMIT;
        goto out;
    }
    for (int i = 0; i < ncols; i++)
        names[i] = sqlite3_column_name(st, i);
    while (!err && rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        for (int i = 0; i < ncols; i++) {
            struct store_value *v = &vals[i];
            memset(v, 0, sizeof *v);
            switch (sqlite3_column_type(st, i)) {
            case SQLITE_INTEGER:
                v->type = STORE_V_INT;
                v->i = sqlite3_column_int64(st, i);
                break;
            case SQLITE_FLOAT:
                v->type = STORE_V_REAL;
                v->r = sqlite3_column_double(st, i);
                break;
            case SQLITE_TEXT:
                v->type = STORE_V_TEXT;
                v->p = sqlite3_column_text(st, i);
                v->len = (size_t)sqlite3_column_bytes(st, i);
                break;
            case SQLITE_BLOB:
                v->type = STORE_V_BLOB;
                v->p = sqlite3_column_blob(st, i);
                v->len = (size_t)sqlite3_column_bytes(st, i);
                break;
            default: v->type = STORE_V_NULL; break;
            }
        }
        err = fn(ctx, (size_t)ncols, names, vals);
    }
    if (!err && rc != SQLITE_DONE)
        err = sq_err(c, rc, "user_rows");
out:
    sqlite3_finalize(st); /* before the commit: no statement left running */
    err = sq_end(c, err);
    sq_conn_put(s, c);
    return err;
}

struct sweep_ctx {
    struct sq_store *s;
    struct sq_conn *c;
    size_t n;
};

static void sweep_one(void *p, const char *user_id)
{
    struct sweep_ctx *x = p;
    bool found = true;
    /* On a database error the key stays (found remains true): the next open retries. */
    if (user_exists(x->c, user_id, &found, "erasure_open") == PARLEY_OK && !found &&
        keystore_destroy(x->s->ks, user_id) == PARLEY_OK)
        x->n++;
}

enum parley_err sq_erasure_open(struct sq_store *s, struct sq_conn *c)
{
    struct sweep_ctx x = {s, c, 0};
    /* Only keys older than an hour: a registration in another process may be between
     * making its key and inserting its row. */
    enum parley_err err = keystore_each_older(s->ks, clock_now_s() - ORPHAN_AGE_S, sweep_one, &x);
    if (!err && x.n > 0) {
        char num[24];
        snprintf(num, sizeof num, "%zu", x.n);
        log_event(LOG_INFO, "orphan_keys_destroyed", "keys", num, NULL);
    }
    return err;
}
