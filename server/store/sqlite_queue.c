/*
 * sqlite_queue.c — the message queue in the SQLite backend (contracts in
 * store_messaging.h): group-committed sends and acks, fetch, count, and the retention
 * purge that turns expired messages into EXPIRED notices.
 *
 * store_queue_apply runs a whole batch in one BEGIN IMMEDIATE ... COMMIT (one fsync).
 * An op that ends STALE, NOT_MEMBER, NO_TARGET, QUEUE_FULL or DUPLICATE changes
 * nothing, while the others apply: every refusal is decided by reads before the op's
 * first write (send_checks_and_insert), so no per-op SAVEPOINT is needed (one cost a
 * page copy into the statement sub-journal per page an op touched: issue #5). Once an
 * op writes, only a database error can stop it, and that fails (and rolls back) the
 * whole batch. Reads see the batch's earlier ops (same transaction): a duplicate or a
 * full queue within one batch is caught like one across batches.
 *
 * Checks of a send, in order: the sending device belongs to sender_user (else
 * NO_TARGET: a device revoked while its send was queued); the (sender_device,
 * client_msg_id) pair was not accepted before and is still remembered (DUPLICATE: a
 * retry must not be queued twice even if the recipients changed since); the target
 * exists (NO_TARGET) and, for a group, the sender is a member (NOT_MEMBER); the copies
 * name exactly the recipients — the keyed devices (devices with a device_keys row) of
 * to_user and sender_user, or of every group member, minus the sending device (else
 * STALE with missing/extra; a device named twice is extra); no recipient holds
 * max_queue envelopes already (QUEUE_FULL, read from queue_depth, which triggers keep).
 *
 * P8: an ack deletes only rows of the acking device, in the batch's transaction.
 * P9: purge deletes expired envelopes and remembered ids, queues the notices, and then
 * checkpoints the WAL with TRUNCATE, so deleted envelopes (acked or expired) leave the
 * -wal file too within one purge interval.
 */
#include <stdlib.h>
#include <string.h>

#include "sqlite_int.h"
#include "str.h"

#define CHECKPOINT_WAIT_MS 200

#define RCPT_DEPTH "coalesce((SELECT n FROM queue_depth q WHERE q.device_id = d.id), 0)"
/* A recipient device with a key bundle, its user and its queue depth (ST_Q_RCPT_*). */
#define RCPT_KEYED_DEVICES                                                                         \
    "SELECT d.id, d.user_id, " RCPT_DEPTH " FROM devices d "                                       \
    "JOIN device_keys k ON k.device_id = d.id "

#define ENV_COLS                                                                                   \
    "device_id, user_id, kind, sender_user, sender_device, client_msg_id, group_id, peer_user, "   \
    "peer_devices, created_at_ms, expires_at, body"

/* Ids per ST_Q_ACK statement (?2 .. ?65; ?1 is the device). */
#define ACK_CHUNK 64
#define ACK_Q8 "?,?,?,?,?,?,?,?"
#define ACK_Q64 ACK_Q8 "," ACK_Q8 "," ACK_Q8 "," ACK_Q8 "," ACK_Q8 "," ACK_Q8 "," ACK_Q8 "," ACK_Q8
/* A run of at least this many consecutive ids is deleted as one range. */
#define ACK_RUN_MIN 8
/* Copies / recipients of a send matched with arrays on the stack (more: on the heap). */
#define MATCH_LOCAL 32
/* Envelopes sq_queue_fetch makes room for before its first row. */
#define FETCH_RESERVE_MAX 1024

static const char *const stmt_sql[ST__COUNT] = {
    [ST_Q_SENDER_OK] = "SELECT 1 FROM devices WHERE id = ?1 AND user_id = ?2",
    [ST_Q_SEEN_GET] = "SELECT 1 FROM sent_msg_ids WHERE sender_device = ?1 AND client_msg_id = ?2 "
                      "AND expires_at > ?3",
    /* The device may be gone when a held copy is written late: then nothing to keep. */
    [ST_Q_SEEN_PUT] = "INSERT INTO sent_msg_ids (sender_device, client_msg_id, expires_at) "
                      "SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM devices WHERE id = ?1) "
                      "ON CONFLICT (sender_device, client_msg_id) "
                      "DO UPDATE SET expires_at = excluded.expires_at",
    [ST_Q_SEEN_COUNT] = "SELECT count(*) FROM sent_msg_ids",
    [ST_Q_SEEN_ALL] = "SELECT sender_device, client_msg_id FROM sent_msg_ids",
    [ST_Q_GROUP_MEMBER] = "SELECT (SELECT 1 FROM chat_groups WHERE id = ?1), "
                          "(SELECT 1 FROM group_members WHERE group_id = ?1 AND user_id = ?2)",
    /* The third column, each recipient's queue depth, spares the first send of a batch to
     * this target one ST_Q_DEPTH statement per copy (issue #5). Sorted by recipients(), and
     * two lookups instead of IN (?1, ?2): the ORDER BY and the IN list each built a
     * temporary b-tree per query (together half its cost). */
    [ST_Q_RCPT_DIRECT] = RCPT_KEYED_DEVICES "WHERE d.user_id = ?1 AND d.id <> ?3 "
                         "UNION ALL " RCPT_KEYED_DEVICES
                         "WHERE d.user_id = ?2 AND ?2 <> ?1 AND d.id <> ?3",
    [ST_Q_RCPT_GROUP] = "SELECT d.id, d.user_id, " RCPT_DEPTH " FROM group_members m "
                        "JOIN devices d ON d.user_id = m.user_id "
                        "JOIN device_keys k ON k.device_id = d.id "
                        "WHERE m.group_id = ?1 AND d.id <> ?2",
    [ST_Q_DEVICE_USER] = "SELECT user_id FROM devices WHERE id = ?1",
    [ST_Q_DEPTH] = "SELECT n FROM queue_depth WHERE device_id = ?1",
    /* No delete trigger (migration 5): deleters lower the count themselves. */
    [ST_Q_DEPTH_SUB] = "UPDATE queue_depth SET n = max(n - ?2, 0) WHERE device_id = ?1",
    [ST_Q_DEPTH_SUB_ID] = "UPDATE queue_depth SET n = max(n - 1, 0) "
                          "WHERE device_id = (SELECT device_id FROM envelopes WHERE id = ?1)",
    [ST_Q_DEPTH_RECOUNT] = "UPDATE queue_depth SET n = (SELECT count(*) FROM envelopes "
                           "WHERE device_id = ?1) WHERE device_id = ?1 RETURNING n",
    /* ?13: the id the batch gave out, or NULL (a purge notice: the next one). */
    [ST_Q_INSERT] = "INSERT INTO envelopes (id, " ENV_COLS ") "
                    "VALUES (?13, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    /* OR IGNORE: a copy already written under its id (a retried batch) stays as it is. */
    [ST_Q_PUT] = "INSERT OR IGNORE INTO envelopes (id, " ENV_COLS ") "
                 "SELECT ?13, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12 "
                 "WHERE EXISTS (SELECT 1 FROM devices WHERE id = ?1)",
    /* The last envelope id given out: AUTOINCREMENT's record, or a row above it. */
    [ST_Q_SEQ_GET] = "SELECT max(coalesce((SELECT seq FROM sqlite_sequence "
                     "WHERE name = 'envelopes'), 0), coalesce((SELECT max(id) FROM envelopes), 0))",
    [ST_Q_SEQ_SET] = "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'envelopes' AND seq < ?1",
    [ST_Q_SEQ_ADD] = "INSERT INTO sqlite_sequence (name, seq) SELECT 'envelopes', ?1 "
                     "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'envelopes')",
    /* An ack deletes many rows per statement (apply_ack): the ids of a list, unbound
     * slots being NULL (they match nothing), or a range of consecutive acked ids. */
    [ST_Q_ACK] = "DELETE FROM envelopes WHERE device_id = ?1 AND id IN (" ACK_Q64 ")",
    [ST_Q_ACK_RANGE] = "DELETE FROM envelopes WHERE device_id = ?1 AND id BETWEEN ?2 AND ?3",
    /* The sender's username is looked up per run of rows from one sender (fetch_names):
     * a join looked it up for every row, a tenth of a drained envelope's cost. */
    [ST_Q_FETCH] = "SELECT id, kind, device_id, user_id, sender_user, sender_device, "
                   "client_msg_id, group_id, peer_user, peer_devices, created_at_ms, "
                   "expires_at, body FROM envelopes "
                   "WHERE device_id = ?1 AND id > ?2 AND expires_at > ?3 "
                   "ORDER BY id LIMIT ?4",
    [ST_Q_EXPIRED] = "SELECT id, kind, user_id, sender_user, sender_device, client_msg_id, "
                     "group_id FROM envelopes WHERE expires_at <= ?1 "
                     "ORDER BY expires_at, id LIMIT ?2",
    [ST_Q_DELETE] = "DELETE FROM envelopes WHERE id = ?1",
    [ST_Q_SEEN_PURGE] = "DELETE FROM sent_msg_ids WHERE expires_at <= ?1",
    [ST_Q_USERNAME] = "SELECT username FROM users WHERE id = ?1",
};

static enum parley_err stmt(struct sq_conn *c, enum sq_stmt_id id, sqlite3_stmt **out)
{
    return sq_stmt(c, id, stmt_sql[id], out);
}

/* A growable array of (user, device) pairs. */
struct ud_vec {
    struct store_user_device *v;
    size_t n, cap;
};

static struct store_user_device *ud_push(struct ud_vec *a)
{
    if (a->n == a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 8;
        struct store_user_device *nv = realloc(a->v, ncap * sizeof *nv);
        if (!nv)
            return NULL;
        a->v = nv;
        a->cap = ncap;
    }
    struct store_user_device *e = &a->v[a->n++];
    memset(e, 0, sizeof *e);
    return e;
}

/* Does the one-row query id with ?1 = a, ?2 = b (if not NULL) return a row? */
static enum parley_err exists2(struct sq_conn *c, enum sq_stmt_id id, const char *a, const char *b,
                               bool *found)
{
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, id, &st);
    if (err)
        return err;
    return sq_query_int(c, st, sq_bind_text2(st, a, b), found, NULL, "queue_send");
}

/* Username of user_id into out (cap bytes); *found false if the user is gone. */
static enum parley_err username_of(struct sq_conn *c, const char *user_id, char *out, size_t cap,
                                   bool *found)
{
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, ST_Q_USERNAME, &st);
    if (err)
        return err;
    out[0] = '\0';
    err = sq_step_row(c, st, sq_bind_text(st, 1, user_id), found, "username");
    if (!err && *found && !sq_col_text(st, 0, out, cap))
        err = PARLEY_ERR_STORE;
    sq_stmt_done(st);
    return err;
}

/* A recipient with its queue depth, for sorting the two arrays together. */
struct rcpt_depth {
    struct store_user_device ud;
    int64_t depth;
};

static int rcpt_depth_cmp(const void *a, const void *b)
{
    return strcmp(((const struct rcpt_depth *)a)->ud.device_id,
                  ((const struct rcpt_depth *)b)->ud.device_id);
}

/* Sort rcpt (and depth, when not NULL, in step) by device id. */
static enum parley_err sort_recipients(struct ud_vec *rcpt, int64_t *depth)
{
    bool sorted = true;
    for (size_t i = 1; i < rcpt->n && sorted; i++)
        sorted = strcmp(rcpt->v[i - 1].device_id, rcpt->v[i].device_id) < 0;
    if (sorted)
        return PARLEY_OK;
    struct rcpt_depth *t = malloc(rcpt->n * sizeof *t);
    if (!t)
        return PARLEY_ERR_NOMEM;
    for (size_t i = 0; i < rcpt->n; i++) {
        t[i].ud = rcpt->v[i];
        t[i].depth = depth ? depth[i] : 0;
    }
    qsort(t, rcpt->n, sizeof *t, rcpt_depth_cmp);
    for (size_t i = 0; i < rcpt->n; i++) {
        rcpt->v[i] = t[i].ud;
        if (depth)
            depth[i] = t[i].depth;
    }
    free(t);
    return PARLEY_OK;
}

/* The keyed devices of to_user and of user_b (may equal to_user) minus except_device
 * (id = ST_Q_RCPT_DIRECT), or of every member of a group minus except_device
 * (ST_Q_RCPT_GROUP: a = group id, b = NULL), sorted by device id. */
/* depth: when not NULL, (*depth)[k] gets rcpt k's queue depth ((*depth) grown with out). */
static enum parley_err recipients(struct sq_conn *c, enum sq_stmt_id id, const char *a,
                                  const char *b, const char *except_device, struct ud_vec *out,
                                  int64_t **depth)
{
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, id, &st);
    if (err)
        return err;
    int rc = sq_bind_text(st, 1, a);
    int next = 2;
    if (rc == SQLITE_OK && id == ST_Q_RCPT_DIRECT)
        rc = sq_bind_text(st, next++, b);
    if (rc == SQLITE_OK)
        rc = sq_bind_text(st, next, except_device);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_user_device *e = ud_push(out);
        if (!e) {
            err = PARLEY_ERR_NOMEM;
            break;
        }
        if (!sq_col_text(st, 0, e->device_id, sizeof e->device_id) ||
            !sq_col_text(st, 1, e->user_id, sizeof e->user_id)) {
            err = PARLEY_ERR_STORE;
            break;
        }
        if (depth) {
            int64_t *nd = realloc(*depth, out->cap * sizeof *nd);
            if (!nd) {
                err = PARLEY_ERR_NOMEM;
                break;
            }
            *depth = nd;
            nd[out->n - 1] = sqlite3_column_int64(st, 2);
        }
        rc = SQLITE_OK;
    }
    if (!err && rc != SQLITE_DONE)
        err = sq_err(c, rc, "queue_recipients");
    sq_stmt_done(st);
    if (!err)
        err = sort_recipients(out, depth ? *depth : NULL);
    return err;
}

/* Index of device_id in the sorted rcpt, or -1. */
static long find_device(const struct ud_vec *rcpt, const char *device_id)
{
    size_t lo = 0, hi = rcpt->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(rcpt->v[mid].device_id, device_id);
        if (cmp == 0)
            return (long)mid;
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* What a batch learned about one (sender_user, sender_device, to_user or group_id):
 * whether the sending device is the sender's, whether the target exists (and the sender
 * is a member), and its recipients. The batch holds the write lock and writes only
 * envelopes, queue_depth and sent_msg_ids, so none of this can change before it
 * commits: each key is looked up once per batch instead of once per send (issue #5).
 * The strings point into the ops, which outlive the batch. */
enum { UNKNOWN = -1 };

struct target_entry {
    const char *sender_user, *sender_device, *to_user, *group_id; /* NULL: slot free */
    int sender_ok;                                                /* UNKNOWN, 0 or 1 */
    int target; /* UNKNOWN or the enum store_send_status the target check gives */
    struct ud_vec rcpt;
    int64_t *depth;        /* rcpt's queue depths as the target check read them, ... */
    int64_t depth_changes; /* ... when the connection had made this many changes */
};

/* Open addressing over small slots (entry index + 1; 0: free) so that only they are
 * zeroed per batch: zeroing a table of whole entries cost ~240 instructions a send. */
struct target_cache {
    struct target_entry *v; /* at most one per send, in order of creation */
    uint32_t *slot;
    size_t n, cap; /* cap: a power of two, at least twice the number of sends */
};

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static enum parley_err cache_init(struct target_cache *tc, size_t n_sends)
{
    size_t cap = 16;
    if (n_sends > UINT32_MAX / 4)
        return PARLEY_ERR_NOMEM;
    while (cap < 2 * n_sends)
        cap *= 2;
    tc->slot = calloc(cap, sizeof *tc->slot);
    tc->v = malloc((n_sends ? n_sends : 1) * sizeof *tc->v);
    tc->n = 0;
    tc->cap = cap;
    return tc->slot && tc->v ? PARLEY_OK : PARLEY_ERR_NOMEM;
}

static void cache_free(struct target_cache *tc)
{
    for (size_t i = 0; tc->v && i < tc->n; i++) {
        free(tc->v[i].rcpt.v);
        free(tc->v[i].depth);
    }
    free(tc->v);
    free(tc->slot);
    tc->v = NULL;
    tc->slot = NULL;
}

/* The entry of snd's key (a fresh one with everything UNKNOWN the first time). The
 * table never fills: it has twice as many slots as the batch has sends. */
static struct target_entry *cache_entry(struct target_cache *tc, const struct store_queue_send *snd)
{
    /* The sender's user is left out of the hash (a device has one user); the comparison
     * below still tells entries that differ only in it apart. */
    uint64_t h = str_hash(STR_HASH_INIT, snd->sender_device);
    h = str_hash(h, snd->group_id ? snd->group_id : "");
    h = str_hash(h, snd->group_id ? "" : snd->to_user);
    for (size_t i = (size_t)h & (tc->cap - 1);; i = (i + 1) & (tc->cap - 1)) {
        if (!tc->slot[i]) {
            struct target_entry *e = &tc->v[tc->n++];
            tc->slot[i] = (uint32_t)tc->n;
            memset(e, 0, sizeof *e);
            e->sender_user = snd->sender_user;
            e->sender_device = snd->sender_device;
            e->group_id = snd->group_id;
            e->to_user = snd->group_id ? NULL : snd->to_user;
            e->sender_ok = UNKNOWN;
            e->target = UNKNOWN;
            return e;
        }
        struct target_entry *e = &tc->v[tc->slot[i] - 1];
        if (str_eq(e->sender_user, snd->sender_user) &&
            str_eq(e->sender_device, snd->sender_device) && str_eq(e->group_id, snd->group_id) &&
            (snd->group_id || str_eq(e->to_user, snd->to_user)))
            return e;
    }
}

/* Compare the copies with the recipients. Sets snd->status to STALE with missing/extra
 * filled when they differ; else records each copy's index into rcpt in idx. */
static enum parley_err match_copies(struct sq_conn *c, struct store_queue_send *snd,
                                    const struct ud_vec *rcpt, size_t *idx)
{
    enum parley_err err = PARLEY_OK;
    struct ud_vec missing = {0}, extra = {0};
    bool seen_local[MATCH_LOCAL];
    bool *seen = rcpt->n <= MATCH_LOCAL ? seen_local : calloc(rcpt->n, sizeof *seen);
    if (!seen)
        return PARLEY_ERR_NOMEM;
    if (seen == seen_local)
        memset(seen_local, 0, sizeof seen_local);
    for (size_t i = 0; i < snd->n_copies; i++) {
        const char *dev = snd->copies[i].device_id;
        long k = find_device(rcpt, dev);
        if (k >= 0 && !seen[k]) {
            seen[k] = true;
            idx[i] = (size_t)k;
            continue;
        }
        /* Not a recipient (or named twice): report it with its user when it exists. */
        struct store_user_device *e = ud_push(&extra);
        if (!e) {
            err = PARLEY_ERR_NOMEM;
            goto out;
        }
        str_copy(e->device_id, sizeof e->device_id, dev);
        sqlite3_stmt *st = NULL;
        bool row = false;
        err = stmt(c, ST_Q_DEVICE_USER, &st);
        if (err)
            goto out;
        err = sq_step_row(c, st, sq_bind_text(st, 1, dev), &row, "queue_send");
        if (!err && row && !sq_col_text(st, 0, e->user_id, sizeof e->user_id))
            err = PARLEY_ERR_STORE;
        sq_stmt_done(st);
        if (err)
            goto out;
    }
    for (size_t k = 0; k < rcpt->n; k++) {
        if (seen[k])
            continue;
        struct store_user_device *e = ud_push(&missing);
        if (!e) {
            err = PARLEY_ERR_NOMEM;
            goto out;
        }
        *e = rcpt->v[k];
    }
    if (missing.n || extra.n) {
        snd->status = STORE_SEND_STALE;
        snd->missing = missing.v;
        snd->n_missing = missing.n;
        snd->extra = extra.v;
        snd->n_extra = extra.n;
        missing.v = extra.v = NULL;
    }
out:
    free(missing.v);
    free(extra.v);
    if (seen != seen_local)
        free(seen);
    return err;
}

/* Insert one envelope row with statement sid (ST_Q_INSERT or ST_Q_PUT) under id, or
 * under the next AUTOINCREMENT id when id is 0; *id_out gets the id. */
static enum parley_err env_insert(struct sq_conn *c, enum sq_stmt_id sid,
                                  const struct store_envelope *e, const uint8_t *body,
                                  size_t body_len, uint64_t id, uint64_t *id_out)
{
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, sid, &st);
    if (err)
        return err;
    int rc = id ? sqlite3_bind_int64(st, 13, (int64_t)id) : sqlite3_bind_null(st, 13);
    if (rc == SQLITE_OK)
        rc = sq_bind_text_ref(st, 1, e->device_id);
    if (rc == SQLITE_OK)
        rc = sq_bind_text_ref(st, 2, e->user_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 3, (int)e->kind);
    if (rc == SQLITE_OK)
        rc = sq_bind_text_ref(st, 4, e->sender_user);
    if (rc == SQLITE_OK)
        rc = sq_bind_text_ref(st, 5, e->sender_device);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(st, 6, e->client_msg_id, STORE_MSGID_BYTES, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sq_bind_opt_text(st, 7, e->group_id);
    if (rc == SQLITE_OK)
        rc = sq_bind_opt_text(st, 8, e->peer_user);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 9, e->peer_devices);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 10, e->created_at_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 11, e->expires_at);
    if (rc == SQLITE_OK) {
        if (e->kind == STORE_ENV_MESSAGE)
            rc = sqlite3_bind_blob64(st, 12, body ? (const void *)body : (const void *)"", body_len,
                                     SQLITE_STATIC);
        else
            rc = sqlite3_bind_null(st, 12);
    }
    if (rc != SQLITE_OK) {
        sq_stmt_done(st);
        return sq_err(c, rc, "queue_insert");
    }
    err = sq_step_done(c, st, "queue_insert");
    if (!err)
        *id_out = id ? id : (uint64_t)sqlite3_last_insert_rowid(c->db);
    return err;
}

/* The target part of a send's checks, for te's key: the target exists (NO_TARGET) and,
 * for a group, the sender is a member (NOT_MEMBER); then its recipients into te->rcpt.
 * Sets te->target. */
static enum parley_err target_check(struct sq_conn *c, const struct store_queue_send *snd,
                                    struct target_entry *te)
{
    bool found = false;
    sqlite3_stmt *st = NULL;
    char name[STORE_USERNAME_MAX + 1];
    enum parley_err err = PARLEY_OK;
    te->rcpt.n = 0;
    if (snd->group_id) {
        err = stmt(c, ST_Q_GROUP_MEMBER, &st);
        if (err)
            return err;
        int rc = sq_bind_text(st, 1, snd->group_id);
        if (rc == SQLITE_OK)
            rc = sq_bind_text(st, 2, snd->sender_user);
        err = sq_step_row(c, st, rc, &found, "queue_send");
        bool group = found && sqlite3_column_type(st, 0) != SQLITE_NULL;
        bool member = found && sqlite3_column_type(st, 1) != SQLITE_NULL;
        sq_stmt_done(st);
        if (err)
            return err;
        if (!group || !member) {
            te->target = group ? STORE_SEND_NOT_MEMBER : STORE_SEND_NO_TARGET;
            return PARLEY_OK;
        }
        err = recipients(c, ST_Q_RCPT_GROUP, snd->group_id, NULL, snd->sender_device, &te->rcpt,
                         &te->depth);
    } else {
        err = recipients(c, ST_Q_RCPT_DIRECT, snd->to_user, snd->sender_user, snd->sender_device,
                         &te->rcpt, &te->depth);
        if (err)
            return err;
        /* A device of to_user among them proves the user exists (a device row references
         * its user); without one, ask (no such user, or none of its devices is keyed). */
        bool known = false;
        for (size_t k = 0; k < te->rcpt.n && !known; k++)
            known = strcmp(te->rcpt.v[k].user_id, snd->to_user) == 0;
        if (!known && (err = username_of(c, snd->to_user, name, sizeof name, &found)) != PARLEY_OK)
            return err;
        if (!known && !found) {
            te->rcpt.n = 0;
            te->target = STORE_SEND_NO_TARGET;
            return PARLEY_OK;
        }
    }
    if (!err) {
        te->target = STORE_SEND_OK;
        te->depth_changes = sqlite3_total_changes64(c->db);
    }
    return err;
}

/* Fill s->seen from sent_msg_ids, sized for twice the rows (caller holds seen_mu). On
 * failure the filter is left empty, which answers "maybe": every send then looks its
 * id up, as it would without a filter. */
static void seen_build(struct sq_store *s, struct sq_conn *c)
{
    sqlite3_stmt *st = NULL;
    bool found = false;
    int64_t rows = 0;
    s->seen_ready = true;
    seen_filter_free(&s->seen);
    if (stmt(c, ST_Q_SEEN_COUNT, &st) != PARLEY_OK ||
        sq_query_int(c, st, SQLITE_OK, &found, &rows, "queue_seen") != PARLEY_OK ||
        seen_filter_init(&s->seen, rows > 0 ? (size_t)rows * 2 : 0) != PARLEY_OK ||
        stmt(c, ST_Q_SEEN_ALL, &st) != PARLEY_OK)
        goto fail;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *dev = (const char *)sqlite3_column_text(st, 0);
        const void *id = sqlite3_column_blob(st, 1);
        if (dev && id)
            seen_filter_add(&s->seen, seen_filter_hash(&s->seen, dev, id,
                                                       (size_t)sqlite3_column_bytes(st, 1)));
    }
    sq_stmt_done(st);
    if (rc == SQLITE_DONE)
        return;
    (void)sq_err(c, rc, "queue_seen");
fail:
    seen_filter_free(&s->seen);
}

static uint64_t seen_hash(const struct seen_filter *f, const char *sender_device,
                          const uint8_t msgid[STORE_MSGID_BYTES])
{
    return seen_filter_hash(f, sender_device, msgid, STORE_MSGID_BYTES);
}

/* Remember (sender_device, msgid) until expires_at: a resend is then DUPLICATE. */
static enum parley_err remember_id(struct sq_conn *c, struct seen_filter *seen,
                                   const char *sender_device,
                                   const uint8_t msgid[STORE_MSGID_BYTES], int64_t expires_at)
{
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, ST_Q_SEEN_PUT, &st);
    if (err)
        return err;
    int rc = sq_bind_text_ref(st, 1, sender_device);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(st, 2, msgid, STORE_MSGID_BYTES, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, expires_at);
    err = sq_exec(c, st, rc, "queue_send");
    /* Added even if the batch rolls back: an extra key is only a needless lookup. */
    if (!err)
        seen_filter_add(seen, seen_hash(seen, sender_device, msgid));
    return err;
}

/* Whether (sender_device, msgid) is remembered and not expired: the filter rules out
 * nearly every new id without a query. */
static enum parley_err seen_get(struct sq_conn *c, const struct seen_filter *seen,
                                const struct store_queue_send *snd, int64_t now, bool *found)
{
    *found = false;
    if (!seen_filter_maybe(seen, seen_hash(seen, snd->sender_device, snd->client_msg_id)))
        return PARLEY_OK;
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, ST_Q_SEEN_GET, &st);
    if (err)
        return err;
    int rc = sq_bind_text_ref(st, 1, snd->sender_device);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(st, 2, snd->client_msg_id, STORE_MSGID_BYTES, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, now);
    return sq_query_int(c, st, rc, found, NULL, "queue_send");
}

/* One integer about a device (ST_Q_DEPTH, ST_Q_DEPTH_RECOUNT: ?1 is the device) into *v,
 * left as it is when there is no row. */
static enum parley_err device_int(struct sq_conn *c, enum sq_stmt_id sid, const char *device,
                                  int64_t *v)
{
    sqlite3_stmt *st = NULL;
    bool found = false;
    enum parley_err err = stmt(c, sid, &st);
    if (err)
        return err;
    return sq_query_int(c, st, sq_bind_text_ref(st, 1, device), &found, v, "queue_send");
}

/* The envelope row fields a send's copies share. */
static void envelope_of_send(const struct store_queue_send *snd, struct store_envelope *e)
{
    memset(e, 0, sizeof *e);
    e->kind = STORE_ENV_MESSAGE;
    str_copy(e->sender_user, sizeof e->sender_user, snd->sender_user);
    str_copy(e->sender_device, sizeof e->sender_device, snd->sender_device);
    memcpy(e->client_msg_id, snd->client_msg_id, STORE_MSGID_BYTES);
    str_copy(e->group_id, sizeof e->group_id, snd->group_id ? snd->group_id : "");
    e->created_at_ms = snd->created_at_ms;
    e->expires_at = snd->expires_at;
}

/* Every check of a send, then its writes; leaves snd->status set. Each copy of an OK
 * send gets the id *next_id (then incremented); held copies are not written. Returns an
 * error only for a database failure (the whole batch then fails). */
static enum parley_err send_checks_and_insert(struct sq_conn *c, struct seen_filter *seen,
                                              struct store_queue_send *snd, int64_t now,
                                              struct target_entry *te, uint64_t *next_id)
{
    bool found = false;
    size_t idx_local[MATCH_LOCAL], *idx = NULL;
    struct store_envelope e;
    enum parley_err err = PARLEY_OK;
    const struct ud_vec *rcpt = &te->rcpt;
    if (te->sender_ok == UNKNOWN) {
        err = exists2(c, ST_Q_SENDER_OK, snd->sender_device, snd->sender_user, &found);
        if (err)
            return err;
        te->sender_ok = found;
    }
    if (!te->sender_ok) {
        snd->status = STORE_SEND_NO_TARGET;
        return PARLEY_OK;
    }

    err = seen_get(c, seen, snd, now, &found);
    if (err)
        return err;
    if (found) {
        snd->status = STORE_SEND_DUPLICATE;
        return PARLEY_OK;
    }

    if (te->target == UNKNOWN) {
        err = target_check(c, snd, te);
        if (err)
            return err;
    }
    if (te->target != STORE_SEND_OK) {
        snd->status = (enum store_send_status)te->target;
        return PARLEY_OK;
    }
    /* The depths read with the recipients, plus every row this connection changed since
     * (more than the envelopes it inserted, into any queue): a bound that lets a send far
     * from max_queue pass without a query per copy; near it, the depth is read. */
    int64_t since = sqlite3_total_changes64(c->db) - te->depth_changes;

    idx = snd->n_copies <= MATCH_LOCAL ? idx_local : calloc(snd->n_copies, sizeof *idx);
    if (!idx)
        return PARLEY_ERR_NOMEM;
    err = match_copies(c, snd, rcpt, idx);
    if (err || snd->status != STORE_SEND_OK)
        goto out;

    for (size_t i = 0; i < snd->n_copies; i++) {
        int64_t depth = te->depth[idx[i]] + since;
        const char *dev = snd->copies[i].device_id;
        if (depth >= 0 && (uint64_t)depth >= (uint64_t)snd->max_queue) {
            depth = 0; /* no row: an empty queue */
            if ((err = device_int(c, ST_Q_DEPTH, dev, &depth)) != PARLEY_OK)
                goto out;
        }
        /* Full, or a count left high by a deleter (erasure recounts, but be sure): count
         * the rows before refusing, and keep the exact number. */
        if (depth >= 0 && (uint64_t)depth >= (uint64_t)snd->max_queue &&
            (err = device_int(c, ST_Q_DEPTH_RECOUNT, dev, &depth)) != PARLEY_OK)
            goto out;
        if (depth >= 0 && (uint64_t)depth >= (uint64_t)snd->max_queue) {
            snd->status = STORE_SEND_QUEUE_FULL;
            goto out;
        }
    }

    /* The row's fields, filled once a copy is to be written (held copies need none). */
    bool written = false;
    for (size_t i = 0; i < snd->n_copies; i++) {
        struct store_copy *cp = &snd->copies[i];
        const struct store_user_device *r = &rcpt->v[idx[i]];
        cp->envelope_id = (*next_id)++;
        memcpy(cp->user_id, r->user_id, sizeof cp->user_id);
        if (cp->hold)
            continue;
        if (!written) {
            envelope_of_send(snd, &e);
            written = true;
        }
        memcpy(e.device_id, r->device_id, sizeof e.device_id);
        memcpy(e.user_id, r->user_id, sizeof e.user_id);
        err = env_insert(c, ST_Q_INSERT, &e, cp->body, cp->body_len, cp->envelope_id,
                         &cp->envelope_id);
        if (err)
            goto out;
    }

    /* Remember the id for DUPLICATE as long as the message may sit in the queue, once a
     * copy is in it: a send whose copies are all held is remembered when one is
     * written (apply_put). Until then a crash may lose the held copies, and the
     * sender's retry must be accepted, not called a duplicate. */
    if (written)
        err = remember_id(c, seen, snd->sender_device, snd->client_msg_id, snd->expires_at);
out:
    if (idx != idx_local)
        free(idx);
    return err;
}

/* No savepoint: a refused send has written nothing (see the top of this file). */
static enum parley_err apply_send(struct sq_conn *c, struct seen_filter *seen,
                                  struct store_queue_send *snd, int64_t now,
                                  struct target_cache *tc, uint64_t *next_id)
{
    enum parley_err err =
        send_checks_and_insert(c, seen, snd, now, cache_entry(tc, snd), next_id);
    if (err)
        return err; /* the caller rolls the whole transaction back */
    if (snd->status != STORE_SEND_OK) {
        for (size_t i = 0; i < snd->n_copies; i++) {
            snd->copies[i].envelope_id = 0;
            snd->copies[i].user_id[0] = '\0';
        }
    }
    return PARLEY_OK;
}

/* Run an ack DELETE (ST_Q_ACK or ST_Q_ACK_RANGE) for device with v[0..n) as ?2.. and
 * count the rows it deleted (the depth trigger's updates are not counted). */
/* device lost n envelopes. */
static enum parley_err depth_sub(struct sq_conn *c, const char *device, size_t n)
{
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, ST_Q_DEPTH_SUB, &st);
    if (err)
        return err;
    int rc = sq_bind_text_ref(st, 1, device);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, (int64_t)n);
    return sq_exec(c, st, rc, "queue_depth");
}

static enum parley_err ack_delete(struct sq_conn *c, enum sq_stmt_id id, const char *device,
                                  const uint64_t *v, size_t n, size_t *deleted)
{
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, id, &st);
    if (err)
        return err;
    int rc = sq_bind_text_ref(st, 1, device);
    for (size_t i = 0; rc == SQLITE_OK && i < n; i++)
        rc = sqlite3_bind_int64(st, (int)i + 2, (int64_t)v[i]);
    err = sq_exec(c, st, rc, "queue_ack");
    if (!err)
        *deleted += (size_t)sqlite3_changes(c->db);
    return err;
}

/* An ack is never refused (unknown or foreign ids delete nothing): no savepoint. One
 * statement per row made the writer the drain's main cost (issue #5), so ids go many
 * per statement: a run of consecutive ids as given (a client acks in order) as one
 * range — every id in it was acked, so it can match no other row — and the others
 * ACK_CHUNK at a time in a list. A repeated id deletes nothing the second time, so
 * deleted counts rows, not ids. Ids above INT64_MAX name no row and are skipped. */
static enum parley_err apply_ack(struct sq_conn *c, struct store_queue_ack *ack)
{
    enum parley_err err = PARLEY_OK;
    uint64_t list[ACK_CHUNK];
    size_t n_list = 0;
    const uint64_t *ids = ack->ids;
    for (size_t i = 0; !err && i < ack->n_ids;) {
        size_t j = i + 1;
        while (j < ack->n_ids && ids[j - 1] < (uint64_t)INT64_MAX && ids[j] == ids[j - 1] + 1)
            j++;
        if (ids[i] > (uint64_t)INT64_MAX) {
            /* no such row */
        } else if (j - i >= ACK_RUN_MIN) {
            uint64_t range[2] = {ids[i], ids[j - 1]};
            err = ack_delete(c, ST_Q_ACK_RANGE, ack->device_id, range, 2, &ack->deleted);
        } else {
            for (size_t k = i; !err && k < j; k++) {
                list[n_list++] = ids[k];
                if (n_list == ACK_CHUNK) {
                    err = ack_delete(c, ST_Q_ACK, ack->device_id, list, n_list, &ack->deleted);
                    n_list = 0;
                }
            }
        }
        i = j;
    }
    if (!err && n_list)
        err = ack_delete(c, ST_Q_ACK, ack->device_id, list, n_list, &ack->deleted);
    if (!err && ack->deleted)
        err = depth_sub(c, ack->device_id, ack->deleted);
    return err;
}

/* A held copy written late, under its id; skipped when its device is gone. */
static enum parley_err apply_put(struct sq_conn *c, struct seen_filter *seen,
                                 struct store_queue_put *put)
{
    uint64_t id = 0;
    const struct store_envelope *e = put->env;
    enum parley_err err = env_insert(c, ST_Q_PUT, e, e->body, e->body_len, e->id, &id);
    if (!err)
        put->stored = sqlite3_changes(c->db) > 0;
    if (!err && put->stored)
        err = remember_id(c, seen, e->sender_device, e->client_msg_id, e->expires_at);
    return err;
}

/* The last envelope id given out (0: none yet). */
static enum parley_err last_given_id(struct sq_conn *c, uint64_t *out)
{
    sqlite3_stmt *st = NULL;
    bool found = false;
    int64_t v = 0;
    enum parley_err err = stmt(c, ST_Q_SEQ_GET, &st);
    if (!err)
        err = sq_query_int(c, st, SQLITE_OK, &found, &v, "queue_seq");
    *out = found && v > 0 ? (uint64_t)v : 0;
    return err;
}

/* Record last as given out, so no later id repeats it (held copies never written
 * included). AUTOINCREMENT keeps its record in sqlite_sequence; writing it is allowed. */
static enum parley_err record_given_id(struct sq_conn *c, uint64_t last)
{
    static const enum sq_stmt_id ids[] = {ST_Q_SEQ_SET, ST_Q_SEQ_ADD};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        sqlite3_stmt *st = NULL;
        enum parley_err err = stmt(c, ids[i], &st);
        if (!err)
            err = sq_exec(c, st, sqlite3_bind_int64(st, 1, (int64_t)last), "queue_seq");
        if (err)
            return err;
    }
    return PARLEY_OK;
}

/* Ids continue this far above the recorded last one after a restart: ids given out by
 * commits a power loss rolled back (synchronous NORMAL, below) are not given again. The
 * WAL is synced at least every checkpoint (1,000 pages), long before 2^24 ids. */
#define ID_RESTART_GAP ((uint64_t)1 << 24)

/* Must the batch's commit reach the disk before it returns? Yes when it writes an
 * envelope (a sender is told OK because of it). A batch of held copies, remembered ids
 * and acks need not: a process crash loses nothing (the WAL is written before COMMIT
 * returns); a power loss could undo it, which re-delivers acked envelopes (clients
 * drop duplicates) and forgets message ids of sends whose copies were all acked. */
static bool batch_writes_envelopes(const struct store_queue_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind == STORE_QOP_PUT)
            return true;
        if (ops[i].kind != STORE_QOP_SEND)
            continue;
        for (size_t k = 0; k < ops[i].u.send.n_copies; k++)
            if (!ops[i].u.send.copies[k].hold)
                return true;
    }
    return false;
}

enum parley_err sq_queue_apply(struct store *s, struct store_queue_op *ops, size_t n, int64_t now)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    struct target_cache tc = {0};
    size_t n_sends = 0;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind == STORE_QOP_SEND) {
            n_sends++;
            struct store_queue_send *snd = &ops[i].u.send;
            snd->status = STORE_SEND_OK;
            snd->missing = snd->extra = NULL;
            snd->n_missing = snd->n_extra = 0;
            for (size_t k = 0; k < snd->n_copies; k++) {
                snd->copies[k].envelope_id = 0;
                snd->copies[k].user_id[0] = '\0';
            }
        } else if (ops[i].kind == STORE_QOP_ACK) {
            ops[i].u.ack.deleted = 0;
        } else {
            ops[i].u.put.stored = false;
        }
    }
    uint64_t last = 0, next = 0;
    bool gap = n_sends && !sq(s)->ids_gapped;
    bool durable = gap || batch_writes_envelopes(ops, n);
    enum parley_err err = cache_init(&tc, n_sends);
    pthread_mutex_lock(&sq(s)->seen_mu);
    if (!err && !durable)
        err = sq_set_synchronous(c, false);
    if (!err)
        err = sq_begin(c);
    if (!err && n_sends)
        err = last_given_id(c, &last);
    if (!err && n_sends && !sq(s)->seen_ready)
        seen_build(sq(s), c);
    /* Each send's id is looked up in the filter, a cache miss or more each (it is as
     * large as the remembered ids): start them all now, so the misses overlap. */
    for (size_t i = 0; !err && i < n; i++)
        if (ops[i].kind == STORE_QOP_SEND)
            seen_filter_prefetch(&sq(s)->seen, seen_hash(&sq(s)->seen, ops[i].u.send.sender_device,
                                                         ops[i].u.send.client_msg_id));
    if (gap)
        last += ID_RESTART_GAP;
    next = last + 1;
    for (size_t i = 0; !err && i < n; i++) {
        if (ops[i].kind == STORE_QOP_SEND)
            err = apply_send(c, &sq(s)->seen, &ops[i].u.send, now, &tc, &next);
        else if (ops[i].kind == STORE_QOP_ACK)
            err = apply_ack(c, &ops[i].u.ack);
        else
            err = apply_put(c, &sq(s)->seen, &ops[i].u.put);
    }
    if (!err && (gap || next - 1 > last))
        err = record_given_id(c, next - 1);
    err = sq_end(c, err);
    pthread_mutex_unlock(&sq(s)->seen_mu);
    /* The batch's outcome stands either way: a committed batch reported as failed would
     * be retried (its PUTs again). sq_set_synchronous has logged the failure. */
    if (!durable)
        (void)sq_set_synchronous(c, true);
    if (!err && gap)
        sq(s)->ids_gapped = true;
    if (err) {
        for (size_t i = 0; i < n; i++)
            store_queue_op_cleanup(&ops[i]);
    }
    sq_conn_put(sq(s), c);
    cache_free(&tc);
    return err;
}

/* A growable array of envelopes (bodies owned). */
struct env_vec {
    struct store_envelope *v;
    size_t n, cap;
};

static struct store_envelope *env_push(struct env_vec *a)
{
    if (a->n == a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 16;
        struct store_envelope *nv = realloc(a->v, ncap * sizeof *nv);
        if (!nv)
            return NULL;
        a->v = nv;
        a->cap = ncap;
    }
    struct store_envelope *e = &a->v[a->n++];
    memset(e, 0, sizeof *e);
    return e;
}

/* Read a ST_Q_FETCH row into e (allocating its body); sender_username is left "". */
static enum parley_err env_read(sqlite3_stmt *st, struct store_envelope *e)
{
    e->id = (uint64_t)sqlite3_column_int64(st, 0);
    e->kind =
        sqlite3_column_int(st, 1) == STORE_ENV_EXPIRED ? STORE_ENV_EXPIRED : STORE_ENV_MESSAGE;
    if (!sq_col_text(st, 2, e->device_id, sizeof e->device_id) ||
        !sq_col_text(st, 3, e->user_id, sizeof e->user_id) ||
        !sq_col_text(st, 4, e->sender_user, sizeof e->sender_user) ||
        !sq_col_text(st, 5, e->sender_device, sizeof e->sender_device) ||
        !sq_col_blob(st, 6, e->client_msg_id, sizeof e->client_msg_id) ||
        !sq_col_text(st, 7, e->group_id, sizeof e->group_id) ||
        !sq_col_text(st, 8, e->peer_user, sizeof e->peer_user))
        return PARLEY_ERR_STORE;
    int64_t pd = sqlite3_column_int64(st, 9);
    e->peer_devices = pd < 0 || pd > UINT32_MAX ? 0 : (uint32_t)pd;
    e->created_at_ms = sqlite3_column_int64(st, 10);
    e->expires_at = sqlite3_column_int64(st, 11);
    if (sqlite3_column_type(st, 12) != SQLITE_NULL) {
        const void *b = sqlite3_column_blob(st, 12);
        size_t len = (size_t)sqlite3_column_bytes(st, 12);
        e->body = malloc(len ? len : 1);
        if (!e->body)
            return PARLEY_ERR_NOMEM;
        if (len)
            memcpy(e->body, b, len);
        e->body_len = len;
    }
    return PARLEY_OK;
}

/* Fill in the senders' usernames ("" for an account gone), one lookup per run of rows
 * from the same sender: a backlog mostly comes in runs. */
static enum parley_err fetch_names(struct sq_conn *c, struct store_envelope *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i && strcmp(v[i].sender_user, v[i - 1].sender_user) == 0) {
            memcpy(v[i].sender_username, v[i - 1].sender_username, sizeof v[i].sender_username);
            continue;
        }
        bool found = false;
        enum parley_err err = username_of(c, v[i].sender_user, v[i].sender_username,
                                          sizeof v[i].sender_username, &found);
        if (err)
            return err;
    }
    return PARLEY_OK;
}

enum parley_err sq_queue_fetch(struct store *s, const char *device_id, uint64_t after_id,
                               size_t limit, int64_t now, struct store_envelope **out,
                               size_t *n_out)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    struct env_vec a = {0};
    enum parley_err err = stmt(c, ST_Q_FETCH, &st);
    if (err)
        goto out;
    /* A drain asks for a window's worth: room for it at once instead of doubling. */
    size_t want = limit < FETCH_RESERVE_MAX ? limit : FETCH_RESERVE_MAX;
    if (want && !(a.v = malloc(want * sizeof *a.v))) {
        err = PARLEY_ERR_NOMEM;
        goto out;
    }
    a.cap = a.v ? want : 0;
    int rc = sq_bind_text(st, 1, device_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2,
                                after_id > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)after_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, now);
    if (rc == SQLITE_OK)
        rc = sq_bind_size(st, 4, limit);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_envelope *e = env_push(&a);
        if (!e) {
            err = PARLEY_ERR_NOMEM;
            break;
        }
        err = env_read(st, e);
        if (err)
            break;
        rc = SQLITE_OK;
    }
    if (!err && rc != SQLITE_DONE)
        err = sq_err(c, rc, "queue_fetch");
    sq_stmt_done(st);
    if (!err)
        err = fetch_names(c, a.v, a.n);
out:
    sq_conn_put(sq(s), c);
    if (err) {
        store_envelopes_free(a.v, a.n);
        return err;
    }
    if (!a.n) {
        free(a.v); /* the room reserved: no row means *out NULL */
        a.v = NULL;
    }
    *out = a.v;
    *n_out = a.n;
    return PARLEY_OK;
}

enum parley_err sq_queue_count(struct store *s, const char *device_id, size_t *n_out)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    bool found = false;
    int64_t n = 0;
    enum parley_err err = stmt(c, ST_Q_DEPTH, &st);
    if (!err)
        err = sq_query_int(c, st, sq_bind_text(st, 1, device_id), &found, &n, "queue_count");
    sq_conn_put(sq(s), c);
    if (err)
        return err;
    *n_out = n > 0 ? (size_t)n : 0;
    return PARLEY_OK;
}

/* An expired row, as the purge needs it. */
struct expired {
    uint64_t id;
    int kind;
    char user_id[STORE_ID_LEN + 1];
    char sender_user[STORE_ID_LEN + 1];
    char sender_device[STORE_ID_LEN + 1];
    uint8_t client_msg_id[STORE_MSGID_BYTES];
    char group_id[STORE_ID_LEN + 1];
};

/* Order that puts the copies of one message to one recipient user side by side. */
static int expired_cmp(const void *pa, const void *pb)
{
    const struct expired *a = pa, *b = pb;
    int r = strcmp(a->sender_device, b->sender_device);
    if (!r)
        r = memcmp(a->client_msg_id, b->client_msg_id, STORE_MSGID_BYTES);
    if (!r)
        r = strcmp(a->user_id, b->user_id);
    if (!r)
        r = strcmp(a->sender_user, b->sender_user);
    if (!r)
        r = strcmp(a->group_id, b->group_id);
    return r;
}

/* Read a ST_Q_EXPIRED row into the zeroed x; an sq_read_fn. */
static enum parley_err expired_read(sqlite3_stmt *st, void *elem)
{
    struct expired *x = elem;
    x->id = (uint64_t)sqlite3_column_int64(st, 0);
    x->kind = sqlite3_column_int(st, 1);
    if (!sq_col_text(st, 2, x->user_id, sizeof x->user_id) ||
        !sq_col_text(st, 3, x->sender_user, sizeof x->sender_user) ||
        !sq_col_text(st, 4, x->sender_device, sizeof x->sender_device) ||
        !sq_col_blob(st, 5, x->client_msg_id, sizeof x->client_msg_id) ||
        !sq_col_text(st, 6, x->group_id, sizeof x->group_id))
        return PARLEY_ERR_STORE;
    return PARLEY_OK;
}

static enum parley_err expired_select(struct sq_conn *c, int64_t now, size_t limit,
                                      struct expired **out, size_t *n_out)
{
    sqlite3_stmt *st = NULL;
    void *v = NULL;
    enum parley_err err = stmt(c, ST_Q_EXPIRED, &st);
    if (err)
        return err;
    int rc = sqlite3_bind_int64(st, 1, now);
    if (rc == SQLITE_OK)
        rc = sq_bind_size(st, 2, limit);
    err = sq_collect(c, st, rc, sizeof **out, expired_read, "queue_purge", &v, n_out);
    if (!err)
        *out = v;
    return err;
}

/* Delete one envelope and lower its device's count (there is no delete trigger). */
static enum parley_err delete_id(struct sq_conn *c, uint64_t id)
{
    static const enum sq_stmt_id ids[] = {ST_Q_DEPTH_SUB_ID, ST_Q_DELETE};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        sqlite3_stmt *st = NULL;
        enum parley_err err = stmt(c, ids[i], &st);
        if (!err)
            err = sq_exec(c, st, sqlite3_bind_int64(st, 1, (int64_t)id), "queue_purge");
        if (err)
            return err;
    }
    return PARLEY_OK;
}

/* Queue the notices for x (the first row of a group of `count` copies of one message to
 * one recipient user) to every keyed device of its sender, appending them to notices. */
static enum parley_err queue_notices(struct sq_conn *c, const struct expired *x, uint32_t count,
                                     int64_t now, int64_t notice_ttl_s, struct ud_vec *devs,
                                     struct env_vec *notices)
{
    char name[STORE_USERNAME_MAX + 1];
    bool found = false;
    enum parley_err err = username_of(c, x->sender_user, name, sizeof name, &found);
    if (err || !found)
        return err; /* the sender is gone: nobody to tell */
    devs->n = 0;
    err = recipients(c, ST_Q_RCPT_DIRECT, x->sender_user, x->sender_user, "", devs, NULL);
    if (err)
        return err;
    for (size_t i = 0; i < devs->n; i++) {
        struct store_envelope *e = env_push(notices);
        if (!e)
            return PARLEY_ERR_NOMEM;
        e->kind = STORE_ENV_EXPIRED;
        memcpy(e->device_id, devs->v[i].device_id, sizeof e->device_id);
        memcpy(e->user_id, x->sender_user, sizeof e->user_id);
        memcpy(e->sender_user, x->sender_user, sizeof e->sender_user);
        memcpy(e->sender_username, name, sizeof e->sender_username);
        memcpy(e->sender_device, x->sender_device, sizeof e->sender_device);
        memcpy(e->client_msg_id, x->client_msg_id, STORE_MSGID_BYTES);
        memcpy(e->group_id, x->group_id, sizeof e->group_id);
        memcpy(e->peer_user, x->user_id, sizeof e->peer_user);
        e->peer_devices = count;
        e->created_at_ms = now * 1000;
        e->expires_at = now + notice_ttl_s;
        err = env_insert(c, ST_Q_INSERT, e, NULL, 0, 0, &e->id);
        if (err)
            return err;
    }
    return PARLEY_OK;
}

enum parley_err sq_queue_purge_expired(struct store *s, int64_t now, size_t limit,
                                       int64_t notice_ttl_s, struct store_envelope **notices,
                                       size_t *n_notices, size_t *n_purged)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    struct expired *x = NULL;
    size_t nx = 0;
    struct env_vec out = {0};
    struct ud_vec devs = {0};
    sqlite3_stmt *st = NULL;
    enum parley_err err = sq_begin(c);
    if (err)
        goto out;
    err = expired_select(c, now, limit, &x, &nx);
    if (err)
        goto out;
    for (size_t i = 0; i < nx; i++) {
        err = delete_id(c, x[i].id);
        if (err)
            goto out;
    }
    /* One notice per (message, recipient user): sort so each group is contiguous. Notices
     * that expire are simply deleted. */
    if (nx > 1)
        qsort(x, nx, sizeof *x, expired_cmp);
    for (size_t i = 0; i < nx;) {
        size_t j = i + 1;
        while (j < nx && expired_cmp(&x[i], &x[j]) == 0)
            j++;
        /* A copy for the sender's own other device is a sync copy: its expiry is not news
         * to the sender, so only other recipients produce notices. */
        if (x[i].kind == STORE_ENV_MESSAGE && strcmp(x[i].user_id, x[i].sender_user) != 0) {
            err = queue_notices(c, &x[i], (uint32_t)(j - i), now, notice_ttl_s, &devs, &out);
            if (err)
                goto out;
        }
        i = j;
    }
    err = stmt(c, ST_Q_SEEN_PURGE, &st);
    if (err)
        goto out;
    err = sq_exec(c, st, sqlite3_bind_int64(st, 1, now), "queue_purge");
out:
    err = sq_end(c, err);
    if (!err) {
        /* Deleted means gone from the files too: fold the WAL back and truncate it (acked
         * envelopes included). TRUNCATE waits on the busy handler for the writer and for
         * readers; under load it gives up after CHECKPOINT_WAIT_MS instead of holding this
         * connection, and the next purge tries again. */
        sqlite3_busy_timeout(c->db, CHECKPOINT_WAIT_MS);
        (void)sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        sqlite3_busy_timeout(c->db, SQ_BUSY_TIMEOUT_MS);
        /* The purged ids are still in the filter: once it holds more keys than it was
         * sized for, build it again from what is left. */
        pthread_mutex_lock(&sq(s)->seen_mu);
        if (sq(s)->seen_ready && (!sq(s)->seen.n_layers || seen_filter_full(&sq(s)->seen)))
            seen_build(sq(s), c);
        pthread_mutex_unlock(&sq(s)->seen_mu);
    }
    sq_conn_put(sq(s), c);
    free(x);
    free(devs.v);
    if (err) {
        store_envelopes_free(out.v, out.n);
        return err;
    }
    if (notices) {
        *notices = out.v;
        if (n_notices)
            *n_notices = out.n;
    } else {
        store_envelopes_free(out.v, out.n);
    }
    if (n_purged)
        *n_purged = nx;
    return PARLEY_OK;
}
