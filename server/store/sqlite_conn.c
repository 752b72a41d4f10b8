/*
 * sqlite_conn.c — the shared machinery of the SQLite backend (see sqlite_int.h): the
 * connection pool, error mapping, the per-connection statement cache, running a
 * statement (no rows, one row, one integer, every row into an array), transactions,
 * and the binding/reading helpers. No SQL about the schema lives here.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sqlite_int.h"

/* ---- pool ---- */

/* Tuning applied once per connection, the first time it is handed out (issue #5).
 * temp_store = MEMORY keeps statement journals (written for every INSERT that fires
 * triggers or checks foreign keys inside a transaction) and sort spills in RAM instead
 * of deleted temporary files: under load the queue writer spent half its time in
 * pwrite() to such a file. It also means no copy of a page (message rows included)
 * lands in an unlinked temp file on disk. A larger lookaside (1,200 B x 400 slots, about
 * 0.5 MB per pooled connection) would serve more of SQLite's small allocations, but
 * only where SQLite has one: Debian's is built with SQLITE_OMIT_LOOKASIDE, so there the
 * call does nothing (store_sqlite_global_init removes the allocator's global mutex
 * instead). A failure only costs speed: logged, ignored. */
static void conn_tune(struct sq_conn *c)
{
    c->tuned = true;
    if (!c->db)
        return;
    int rc = sqlite3_exec(c->db, "PRAGMA temp_store = MEMORY;", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        (void)sq_err(c, rc, "tune");
    rc = sqlite3_db_config(c->db, SQLITE_DBCONFIG_LOOKASIDE, NULL, 1200, 400);
    if (rc != SQLITE_OK)
        (void)sq_err(c, rc, "tune");
}

struct sq_conn *sq_conn_get(struct sq_store *s)
{
    pthread_mutex_lock(&s->mu);
    for (;;) {
        for (size_t i = 0; i < SQ_POOL_SIZE; i++) {
            if (!s->busy[i]) {
                s->busy[i] = true;
                pthread_mutex_unlock(&s->mu);
                if (!s->conns[i].tuned)
                    conn_tune(&s->conns[i]);
                return &s->conns[i];
            }
        }
        pthread_cond_wait(&s->cv, &s->mu);
    }
}

void sq_conn_put(struct sq_store *s, struct sq_conn *c)
{
    size_t i = (size_t)(c - s->conns);
    pthread_mutex_lock(&s->mu);
    s->busy[i] = false;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- errors ---- */

enum parley_err sq_err(struct sq_conn *c, int rc, const char *what)
{
    int primary = rc & 0xff;
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return PARLEY_ERR_EXISTS;
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return PARLEY_ERR_NOTFOUND;
    if (primary == SQLITE_NOMEM)
        return PARLEY_ERR_NOMEM;
    /* SQLite's messages name tables and columns, never values: safe to log (P24). */
    log_event(LOG_ERROR, "store_error", "op", what, "sqlite", sqlite3_errstr(rc), "detail",
              c && c->db ? sqlite3_errmsg(c->db) : "", NULL);
    return PARLEY_ERR_STORE;
}

/* ---- statements ---- */

enum parley_err sq_stmt(struct sq_conn *c, enum sq_stmt_id id, const char *sql, sqlite3_stmt **out)
{
    if (!c->st[id]) {
        if (!sql) {
            log_event(LOG_ERROR, "store_error", "op", "prepare", "detail", "no SQL for slot", NULL);
            return PARLEY_ERR_STORE;
        }
        int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->st[id], NULL);
        if (rc != SQLITE_OK) {
            c->st[id] = NULL;
            return sq_err(c, rc, "prepare");
        }
    }
    *out = c->st[id];
    return PARLEY_OK;
}

void sq_stmt_done(sqlite3_stmt *st)
{
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

enum parley_err sq_step_done(struct sq_conn *c, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sq_stmt_done(st);
    if (rc != SQLITE_DONE)
        return sq_err(c, rc, what);
    return PARLEY_OK;
}

/* ---- running a statement ---- */

enum parley_err sq_exec(struct sq_conn *c, sqlite3_stmt *st, int rc, const char *what)
{
    if (rc != SQLITE_OK) {
        sq_stmt_done(st);
        return sq_err(c, rc, what);
    }
    return sq_step_done(c, st, what);
}

enum parley_err sq_step_row(struct sq_conn *c, sqlite3_stmt *st, int rc, bool *row,
                            const char *what)
{
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    *row = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        return PARLEY_OK;
    return sq_err(c, rc, what);
}

enum parley_err sq_query_int(struct sq_conn *c, sqlite3_stmt *st, int rc, bool *found, int64_t *v,
                             const char *what)
{
    bool row = false;
    enum parley_err err = sq_step_row(c, st, rc, &row, what);
    if (!err && row && v)
        *v = sqlite3_column_int64(st, 0);
    sq_stmt_done(st);
    if (err)
        return err;
    if (!found)
        return row ? PARLEY_OK : sq_err(c, SQLITE_DONE, what);
    *found = row;
    return PARLEY_OK;
}

enum parley_err sq_collect(struct sq_conn *c, sqlite3_stmt *st, int rc, size_t elem_size,
                           sq_read_fn read, const char *what, void **out, size_t *n_out)
{
    unsigned char *v = NULL;
    size_t n = 0, cap = 0;
    enum parley_err err = PARLEY_OK;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            unsigned char *nv = ncap > SIZE_MAX / elem_size ? NULL : realloc(v, ncap * elem_size);
            if (!nv) {
                err = PARLEY_ERR_NOMEM;
                break;
            }
            v = nv;
            cap = ncap;
        }
        void *e = v + n * elem_size;
        memset(e, 0, elem_size);
        err = read(st, e);
        if (err)
            break;
        n++;
        rc = SQLITE_OK;
    }
    if (!err && rc != SQLITE_DONE)
        err = sq_err(c, rc, what);
    sq_stmt_done(st);
    if (err) {
        free(v);
        return err;
    }
    *out = v;
    *n_out = n;
    return PARLEY_OK;
}

/* ---- transactions ---- */

static const char *const tx_sql[ST__COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
};

static enum parley_err tx(struct sq_conn *c, enum sq_stmt_id id, const char *what)
{
    sqlite3_stmt *st = NULL;
    enum parley_err err = sq_stmt(c, id, tx_sql[id], &st);
    if (err)
        return err;
    return sq_step_done(c, st, what);
}

enum parley_err sq_begin(struct sq_conn *c)
{
    return tx(c, ST_BEGIN, "begin");
}

enum parley_err sq_begin_read(struct sq_conn *c)
{
    return tx(c, ST_BEGIN_READ, "begin");
}

enum parley_err sq_commit(struct sq_conn *c)
{
    return tx(c, ST_COMMIT, "commit");
}

void sq_rollback(struct sq_conn *c)
{
    if (!sqlite3_get_autocommit(c->db))
        (void)!tx(c, ST_ROLLBACK, "rollback");
}

enum parley_err sq_set_synchronous(struct sq_conn *c, bool full)
{
    char *msg = NULL;
    int rc = sqlite3_exec(c->db, full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
                          NULL, NULL, &msg);
    sqlite3_free(msg);
    return rc == SQLITE_OK ? PARLEY_OK : sq_err(c, rc, "synchronous");
}

enum parley_err sq_end(struct sq_conn *c, enum parley_err err)
{
    if (!err)
        err = sq_commit(c);
    if (err)
        sq_rollback(c);
    return err;
}

/* ---- binding and reading ---- */

int sq_bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
}

int sq_bind_text_ref(sqlite3_stmt *st, int i, const char *s)
{
    return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

int sq_bind_text2(sqlite3_stmt *st, const char *a, const char *b)
{
    int rc = sq_bind_text(st, 1, a);
    if (rc == SQLITE_OK && b)
        rc = sq_bind_text(st, 2, b);
    return rc;
}

int sq_bind_opt_text(sqlite3_stmt *st, int i, const char *s)
{
    if (!s || !s[0])
        return sqlite3_bind_null(st, i);
    return sq_bind_text(st, i, s);
}

int sq_bind_size(sqlite3_stmt *st, int i, size_t v)
{
    return sqlite3_bind_int64(st, i, v > (size_t)INT64_MAX ? INT64_MAX : (int64_t)v);
}

bool sq_col_text(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    size_t n = (size_t)sqlite3_column_bytes(st, i);
    if (!t) {
        dst[0] = '\0';
        return true;
    }
    if (n >= cap)
        return false;
    memcpy(dst, t, n);
    dst[n] = '\0';
    return true;
}

bool sq_col_blob(sqlite3_stmt *st, int i, uint8_t *dst, size_t n)
{
    const void *b = sqlite3_column_blob(st, i);
    if ((size_t)sqlite3_column_bytes(st, i) != n || (n > 0 && !b))
        return false;
    if (n > 0)
        memcpy(dst, b, n);
    return true;
}
