/*
 * sqlite_int.h — private to the SQLite backend of the store (server/store/sqlite*.c):
 * the connection pool, the per-connection cache of prepared statements, and the small
 * helpers every sqlite_*.c file shares. Nothing outside server/store/ includes it.
 *
 * Files: sqlite_conn.c (pool, statements, errors, running a statement, transactions,
 * binding), sqlite.c (accounts, sessions, devices, open, migrate, the ops table),
 * sqlite_keys.c, sqlite_groups.c, sqlite_queue.c (the messaging ops of
 * store_messaging.h), sqlite_privacy.c (store_privacy.h), sqlite_erasure.c (erasure and
 * access). The sq_ prefix marks names private to the backend.
 *
 * Shapes every file uses instead of writing them again: sq_exec (bind, step a statement
 * with no rows, reset), sq_step_row / sq_query_int (a lookup of at most one row),
 * sq_collect (every row into a growing array, through a row reader), and
 * `sq_begin ... out: err = sq_end(c, err)` for a transaction.
 *
 * Invariants: a struct sq_conn is used by one thread at a time (borrowed with
 * sq_conn_get, returned with sq_conn_put); a cached statement is always handed out
 * reset and with no bindings, and is reset again (sq_stmt_done) before the connection is
 * returned. Write transactions begin with BEGIN IMMEDIATE (sq_begin) so they wait on
 * the busy handler instead of failing on a read-to-write upgrade.
 */
#ifndef PARLEY_SERVER_STORE_SQLITE_INT_H
#define PARLEY_SERVER_STORE_SQLITE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "seen_filter.h"
#include "store.h"

#define SQ_POOL_SIZE 8
#define SQ_BUSY_TIMEOUT_MS 10000

/* Every cached statement has a slot here; its SQL lives in the file that uses it, in a
 * table indexed by these ids (see sq_stmt). Grouped by file. */
enum sq_stmt_id {
    /* sqlite_conn.c: transactions */
    ST_BEGIN,
    ST_BEGIN_READ,
    ST_COMMIT,
    ST_ROLLBACK,
    /* sqlite.c: accounts, sessions, devices */
    ST_USER_INSERT,
    ST_USER_BY_ID,
    ST_USER_BY_NAME,
    ST_USER_UPDATE,
    ST_USER_EXISTS,
    ST_SESS_DEL_EXPIRED_USER,
    ST_DEV_DEL_ORPHANS_USER,
    ST_DEV_COUNT,
    ST_DEV_INSERT,
    ST_SESS_INSERT,
    ST_SESS_LOOKUP,
    ST_DEV_TOUCH,
    ST_SESS_DEVICE,
    ST_SESS_DELETE,
    ST_DEV_DEL_IF_EMPTY,
    ST_SESS_PURGE,
    ST_DEV_DEL_ORPHANS_ALL,
    ST_DEV_LIST,
    ST_SESS_DEL_DEVICE,
    ST_DEV_DELETE,
    /* sqlite_keys.c */
    ST_KEY_DEV_OF_USER,
    ST_KEY_GET_IDENTITY,
    ST_KEY_INSERT,
    ST_KEY_UPDATE_SPK,
    ST_KEY_OPK_PUT,
    ST_KEY_OPK_COUNT,
    ST_KEY_BUNDLES_USER,
    ST_KEY_BUNDLE_DEVICE,
    ST_KEY_OPK_LOWEST,
    ST_KEY_OPK_DELETE,
    ST_KEY_KEYED_DEVICES,
    /* sqlite_groups.c */
    ST_GRP_INSERT,
    ST_GRP_MEMBER_INSERT,
    ST_GRP_GET,
    ST_GRP_MEMBERS,
    ST_GRP_LIST,
    ST_GRP_EXISTS,
    ST_GRP_MEMBER_ADMIN,
    ST_GRP_MEMBER_COUNT,
    ST_GRP_TOUCH,
    ST_GRP_MEMBER_DELETE,
    ST_GRP_RENAME,
    /* sqlite_queue.c */
    ST_Q_SENDER_OK,
    ST_Q_SEEN_GET,
    ST_Q_SEEN_PUT,
    ST_Q_SEEN_COUNT,
    ST_Q_SEEN_ALL,
    ST_Q_GROUP_MEMBER,
    ST_Q_RCPT_DIRECT,
    ST_Q_RCPT_GROUP,
    ST_Q_DEVICE_USER,
    ST_Q_DEPTH,
    ST_Q_DEPTH_SUB,
    ST_Q_DEPTH_SUB_ID,
    ST_Q_DEPTH_RECOUNT,
    ST_Q_INSERT,
    ST_Q_PUT,
    ST_Q_SEQ_GET,
    ST_Q_SEQ_SET,
    ST_Q_SEQ_ADD,
    ST_Q_ACK,
    ST_Q_ACK_RANGE,
    ST_Q_FETCH,
    ST_Q_EXPIRED,
    ST_Q_DELETE,
    ST_Q_SEEN_PURGE,
    ST_Q_USERNAME,
    /* sqlite_privacy.c */
    ST_P_CONSENT_LIST,
    ST_P_CONSENT_UPSERT,
    ST_P_CONSENT_HIST,
    ST_P_CONSENT_GET,
    ST_P_PARENTAL_PUT,
    ST_P_PARENTAL_GET,
    ST_P_POLICY_INSERT,
    ST_P_POLICY_LATEST,
    ST_P_POLICY_TEXT,
    ST_P_POLICY_ACCEPT,
    ST_P_POLICY_SEQ,
    ST_P_POLICY_ACCEPTED,
    ST_P_AUDIT_LAST,
    ST_P_AUDIT_INSERT,
    ST_P_AUDIT_LIST,
    ST_P_PURGE_CALLQ,
    ST_P_PURGE_SECURITY,
    ST_P_PURGE_REPORTS,
    ST_P_PURGE_PURCHASES,
    ST__COUNT
};

struct sq_conn {
    sqlite3 *db;
    sqlite3_stmt *st[ST__COUNT];
    bool tuned; /* per-connection tuning pragmas applied (sq_conn_get) */
};

struct sq_store {
    struct store base; /* first: struct store * <-> struct sq_store * */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool sync_inited;
    bool ids_gapped; /* queue: envelope ids skipped ahead once per process (sqlite_queue.c) */
    /* Queue: the remembered message ids (sent_msg_ids) as a filter, built by the first
     * batch with sends and rebuilt by a purge once full (sqlite_queue.c). */
    pthread_mutex_t seen_mu; /* held by a whole batch, and by a rebuild */
    struct seen_filter seen;
    bool seen_ready;         /* built (or tried) once */
    struct sq_conn conns[SQ_POOL_SIZE];
    bool busy[SQ_POOL_SIZE];
    struct keystore *ks; /* NULL: profile fields in plaintext (tests of other parts) */
};

static inline struct sq_store *sq(struct store *s)
{
    return (struct sq_store *)s;
}

/* ---- pool (sqlite_conn.c) ---- */

/* Borrow a connection, waiting while all are busy. Never fails. */
struct sq_conn *sq_conn_get(struct sq_store *s);
/* Return c; it must be outside any transaction, its statements reset. */
void sq_conn_put(struct sq_store *s, struct sq_conn *c);

/* ---- errors ---- */

/* Map a SQLite result code to a parley error: a unique/primary-key conflict is EXISTS,
 * a foreign-key violation NOTFOUND, out of memory NOMEM, anything else STORE (logged
 * with `what`, SQLite's message, which names tables and columns, never values). */
enum parley_err sq_err(struct sq_conn *c, int rc, const char *what);

/* ---- statements ---- */

/* The cached statement for slot id, prepared from sql on first use (sql is the caller's
 * table entry for id; NULL is a programming error reported as STORE). Reset, unbound. */
enum parley_err sq_stmt(struct sq_conn *c, enum sq_stmt_id id, const char *sql, sqlite3_stmt **out);
/* Reset st and clear its bindings. Accepts NULL. */
void sq_stmt_done(sqlite3_stmt *st);
/* Step a statement that returns no rows (bindings already made), then reset it. */
enum parley_err sq_step_done(struct sq_conn *c, sqlite3_stmt *st, const char *what);

/* ---- running a statement ----
 * These take rc, the result of the caller's bindings (`int rc = sq_bind_text(st, 1, a);
 * if (rc == SQLITE_OK) rc = ...`): anything but SQLITE_OK is mapped with sq_err and the
 * statement is not stepped. `what` names the operation in the log, as for sq_err. */

/* Run a statement that returns no rows, then reset it. */
enum parley_err sq_exec(struct sq_conn *c, sqlite3_stmt *st, int rc, const char *what);
/* Step a query of at most one row; *row tells whether it returned one. st is NOT reset:
 * the caller reads the columns, then calls sq_stmt_done. */
enum parley_err sq_step_row(struct sq_conn *c, sqlite3_stmt *st, int rc, bool *row,
                            const char *what);
/* A query of at most one row whose first column is an integer: *v gets it (v may be NULL:
 * an existence test) and *found whether there was a row. found NULL means the query
 * always returns a row (an aggregate: count, EXISTS), so none is a store error. Resets st. */
enum parley_err sq_query_int(struct sq_conn *c, sqlite3_stmt *st, int rc, bool *found, int64_t *v,
                             const char *what);

/* Read the current row of st into elem (elem_size bytes, zeroed before the call).
 * PARLEY_OK, or an error (PARLEY_ERR_STORE for a corrupt row) that stops sq_collect. A
 * failing reader leaves elem owning nothing. */
typedef enum parley_err (*sq_read_fn)(sqlite3_stmt *st, void *elem);
/* Step every row of st into a malloc'd array of elem_size elements grown by doubling,
 * reading each with read; then reset st. On success *out (NULL when no row; the caller
 * frees it with free()) and *n_out; on error neither is written and the array is freed.
 * The elements must own no memory (free() releases everything). The query's own LIMIT
 * (or a bounded table) is what keeps the array small. */
enum parley_err sq_collect(struct sq_conn *c, sqlite3_stmt *st, int rc, size_t elem_size,
                           sq_read_fn read, const char *what, void **out, size_t *n_out);

/* ---- transactions ---- */

enum parley_err sq_begin(struct sq_conn *c);      /* BEGIN IMMEDIATE: writers */
enum parley_err sq_begin_read(struct sq_conn *c); /* BEGIN (deferred): a consistent read */
enum parley_err sq_commit(struct sq_conn *c);
/* Roll back if a transaction is open; never fails (errors are logged). */
void sq_rollback(struct sq_conn *c);
/* End a transaction begun with sq_begin/sq_begin_read: commit when err is PARLEY_OK,
 * else (or when the commit fails) roll back. Returns err, or the commit's error. The
 * usual shape: `err = sq_begin(c); if (err) goto out; ... out: err = sq_end(c, err);`. */
enum parley_err sq_end(struct sq_conn *c, enum parley_err err);
/* synchronous = FULL (every connection's setting: a commit is on disk when it returns)
 * or NORMAL (a commit is in the WAL file but not yet synced: a process crash loses
 * nothing, a power loss may lose it; the next FULL commit or checkpoint syncs it). Only
 * outside a transaction; whoever sets NORMAL sets FULL back before returning c. */
enum parley_err sq_set_synchronous(struct sq_conn *c, bool full);

/* ---- binding and reading ---- */

int sq_bind_text(sqlite3_stmt *st, int i, const char *s);
/* Binds s without copying it (SQLITE_STATIC): only where the statement runs and is
 * finished (sq_stmt_done clears the binding) before s can change, as on the queue's
 * per-message path, where a copy cost SQLite a malloc and a free per bind. */
int sq_bind_text_ref(sqlite3_stmt *st, int i, const char *s);
/* Bind ?1 = a and, when b is not NULL, ?2 = b (both text). */
int sq_bind_text2(sqlite3_stmt *st, const char *a, const char *b);
/* NULL when s is NULL or empty: optional fields are NULL in the database, "" in C. */
int sq_bind_opt_text(sqlite3_stmt *st, int i, const char *s);
/* Bind a size_t, saturated to INT64_MAX. */
int sq_bind_size(sqlite3_stmt *st, int i, size_t v);
/* Copy a text column into dst (cap bytes including the NUL); NULL reads as "". false if
 * it does not fit (a corrupt row: the store never writes such a value). */
bool sq_col_text(sqlite3_stmt *st, int i, char *dst, size_t cap);
/* Copy a blob column of exactly n bytes into dst. false if its size differs. */
bool sq_col_blob(sqlite3_stmt *st, int i, uint8_t *dst, size_t n);

/* ---- the messaging ops (contracts in store_messaging.h; arguments checked by store.c) */

enum parley_err sq_keys_put(struct store *s, const struct store_keys_upload *in, size_t *stock_out);
enum parley_err sq_keys_take_bundles(struct store *s, const char *user_id, const char *device_id,
                                     const char *except_device, struct store_bundle **out,
                                     size_t *n_out);
enum parley_err sq_keys_stock(struct store *s, const char *device_id, size_t *n_out);
enum parley_err sq_keyed_devices(struct store *s, const char *user_id,
                                 struct store_user_device **out, size_t *n_out);

enum parley_err sq_group_create(struct store *s, const struct store_group *g,
                                const struct store_group_member *members, size_t n);
enum parley_err sq_group_get(struct store *s, const char *group_id, struct store_group *out,
                             struct store_group_member **members, size_t *n_members);
enum parley_err sq_group_list(struct store *s, const char *user_id, struct store_group **out,
                              size_t *n_out);
enum parley_err sq_group_member_set(struct store *s, const char *group_id,
                                    const struct store_group_member *m, int64_t now);
enum parley_err sq_group_member_remove(struct store *s, const char *group_id, const char *user_id,
                                       int64_t now);
enum parley_err sq_group_rename(struct store *s, const char *group_id, const char *name,
                                int64_t now);

enum parley_err sq_queue_apply(struct store *s, struct store_queue_op *ops, size_t n, int64_t now);
enum parley_err sq_queue_fetch(struct store *s, const char *device_id, uint64_t after_id,
                               size_t limit, int64_t now, struct store_envelope **out,
                               size_t *n_out);
enum parley_err sq_queue_count(struct store *s, const char *device_id, size_t *n_out);
enum parley_err sq_queue_purge_expired(struct store *s, int64_t now, size_t limit,
                                       int64_t notice_ttl_s, struct store_envelope **notices,
                                       size_t *n_notices, size_t *n_purged);

/* ---- erasure and access (sqlite_erasure.c; contracts in store.h) ---- */

enum parley_err sq_user_delete(struct store *s, const char *user_id);
enum parley_err sq_user_rows(struct store *s, const char *sql, const char *user_id, store_row_fn fn,
                             void *ctx);
/* At open, with a key store: encrypt profile rows written in plaintext (before
 * migration 4 or by a store opened without keys), and destroy keys left without an
 * account. Connection c is borrowed by the caller. */
enum parley_err sq_erasure_open(struct sq_store *s, struct sq_conn *c);

/* The consent, policy, audit and retention ops (contracts in store_privacy.h), in
 * sqlite_privacy.c. */
extern const struct store_privacy_ops sq_privacy_ops;

#endif
