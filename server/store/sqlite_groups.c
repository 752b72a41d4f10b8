/*
 * sqlite_groups.c — groups in the SQLite backend (contracts in store_messaging.h).
 *
 * P20: a group is its name, its members (admin flag, joining time) and two times; no
 * message, no history. Members are kept in joining order (joined_at, then insertion
 * rowid). The trigger group_members_last (migration 2) deletes a group with its last
 * member, whether the member was removed here or its account was deleted.
 */
#include <stdlib.h>
#include <string.h>

#include "sqlite_int.h"

static const char *const stmt_sql[ST__COUNT] = {
    [ST_GRP_INSERT] = "INSERT INTO chat_groups (id, name, created_at, updated_at) "
                      "VALUES (?1, ?2, ?3, ?4)",
    [ST_GRP_MEMBER_INSERT] = "INSERT INTO group_members (group_id, user_id, admin, joined_at) "
                             "VALUES (?1, ?2, ?3, ?4)",
    [ST_GRP_GET] = "SELECT id, name, created_at, updated_at FROM chat_groups WHERE id = ?1",
    [ST_GRP_MEMBERS] = "SELECT m.user_id, coalesce(u.username, ''), m.admin, m.joined_at "
                       "FROM group_members m LEFT JOIN users u ON u.id = m.user_id "
                       "WHERE m.group_id = ?1 ORDER BY m.joined_at, m.rowid",
    [ST_GRP_LIST] = "SELECT g.id, g.name, g.created_at, g.updated_at FROM group_members m "
                    "JOIN chat_groups g ON g.id = m.group_id WHERE m.user_id = ?1 "
                    "ORDER BY g.updated_at DESC, g.id",
    [ST_GRP_EXISTS] = "SELECT 1 FROM chat_groups WHERE id = ?1",
    [ST_GRP_MEMBER_ADMIN] = "UPDATE group_members SET admin = ?3 "
                            "WHERE group_id = ?1 AND user_id = ?2",
    [ST_GRP_MEMBER_COUNT] = "SELECT count(*) FROM group_members WHERE group_id = ?1",
    [ST_GRP_TOUCH] = "UPDATE chat_groups SET updated_at = ?2 WHERE id = ?1",
    [ST_GRP_MEMBER_DELETE] = "DELETE FROM group_members WHERE group_id = ?1 AND user_id = ?2",
    [ST_GRP_RENAME] = "UPDATE chat_groups SET name = ?2, updated_at = ?3 WHERE id = ?1",
};

static enum parley_err stmt(struct sq_conn *c, enum sq_stmt_id id, sqlite3_stmt **out)
{
    return sq_stmt(c, id, stmt_sql[id], out);
}

/* Bind ?1 = a (text) and, when b is not NULL, ?2 = b (text) and run a statement with no
 * rows; *changes (may be NULL) gets the rows changed. */
static enum parley_err exec2(struct sq_conn *c, enum sq_stmt_id id, const char *a, const char *b,
                             int *changes, const char *what)
{
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, id, &st);
    if (err)
        return err;
    err = sq_exec(c, st, sq_bind_text2(st, a, b), what);
    if (!err && changes)
        *changes = sqlite3_changes(c->db);
    return err;
}

/* Run a one-row integer query with ?1 = a; *found false when it returns no row. */
static enum parley_err query_int(struct sq_conn *c, enum sq_stmt_id id, const char *a, int64_t *v,
                                 bool *found, const char *what)
{
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, id, &st);
    if (err)
        return err;
    return sq_query_int(c, st, sq_bind_text(st, 1, a), found, v, what);
}

static enum parley_err touch(struct sq_conn *c, const char *group_id, int64_t now)
{
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, ST_GRP_TOUCH, &st);
    if (err)
        return err;
    int rc = sq_bind_text(st, 1, group_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, now);
    return sq_exec(c, st, rc, "group_touch");
}

static enum parley_err member_insert(struct sq_conn *c, const char *group_id,
                                     const struct store_group_member *m, int64_t joined_at)
{
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, ST_GRP_MEMBER_INSERT, &st);
    if (err)
        return err;
    int rc = sq_bind_text(st, 1, group_id);
    if (rc == SQLITE_OK)
        rc = sq_bind_text(st, 2, m->user_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 3, m->admin ? 1 : 0);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 4, joined_at);
    /* A missing user is a foreign-key violation: NOTFOUND via sq_err. */
    return sq_exec(c, st, rc, "group_member");
}

enum parley_err sq_group_create(struct store *s, const struct store_group *g,
                                const struct store_group_member *members, size_t n)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    enum parley_err err = sq_begin(c);
    if (err)
        goto out;
    err = stmt(c, ST_GRP_INSERT, &st);
    if (err)
        goto out;
    int rc = sq_bind_text(st, 1, g->id);
    if (rc == SQLITE_OK)
        rc = sq_bind_text(st, 2, g->name);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, g->created_at);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 4, g->updated_at);
    err = sq_exec(c, st, rc, "group_create");
    if (err)
        goto out;
    for (size_t i = 0; i < n; i++) {
        err = member_insert(c, g->id, &members[i], members[i].joined_at);
        if (err == PARLEY_ERR_EXISTS)
            err = PARLEY_ERR_INVAL; /* a repeated member (store.c checks this first) */
        if (err)
            goto out;
    }
out:
    err = sq_end(c, err);
    sq_conn_put(sq(s), c);
    return err;
}

/* Read a group row (id, name, created_at, updated_at) into the zeroed g; an sq_read_fn. */
static enum parley_err group_read(sqlite3_stmt *st, void *elem)
{
    struct store_group *g = elem;
    bool ok =
        sq_col_text(st, 0, g->id, sizeof g->id) && sq_col_text(st, 1, g->name, sizeof g->name);
    g->created_at = sqlite3_column_int64(st, 2);
    g->updated_at = sqlite3_column_int64(st, 3);
    return ok ? PARLEY_OK : PARLEY_ERR_STORE;
}

/* Read a ST_GRP_MEMBERS row into the zeroed member; an sq_read_fn. */
static enum parley_err member_read(sqlite3_stmt *st, void *elem)
{
    struct store_group_member *m = elem;
    if (!sq_col_text(st, 0, m->user_id, sizeof m->user_id) ||
        !sq_col_text(st, 1, m->username, sizeof m->username))
        return PARLEY_ERR_STORE;
    m->admin = sqlite3_column_int(st, 2) != 0;
    m->joined_at = sqlite3_column_int64(st, 3);
    return PARLEY_OK;
}

static enum parley_err members_read(struct sq_conn *c, const char *group_id,
                                    struct store_group_member **out, size_t *n_out)
{
    sqlite3_stmt *st = NULL;
    void *v = NULL;
    enum parley_err err = stmt(c, ST_GRP_MEMBERS, &st);
    if (!err)
        err = sq_collect(c, st, sq_bind_text(st, 1, group_id), sizeof **out, member_read,
                         "group_members", &v, n_out);
    if (!err)
        *out = v;
    return err;
}

enum parley_err sq_group_get(struct store *s, const char *group_id, struct store_group *out,
                             struct store_group_member **members, size_t *n_members)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    struct store_group g;
    struct store_group_member *m = NULL;
    size_t nm = 0;
    memset(&g, 0, sizeof g);
    /* One read transaction: the group and its members from the same snapshot. */
    bool found = false;
    enum parley_err err = sq_begin_read(c);
    if (err)
        goto out;
    err = stmt(c, ST_GRP_GET, &st);
    if (err)
        goto out;
    err = sq_step_row(c, st, sq_bind_text(st, 1, group_id), &found, "group_get");
    if (!err)
        err = found ? group_read(st, &g) : PARLEY_ERR_NOTFOUND;
    sq_stmt_done(st);
    if (err)
        goto out;
    if (members)
        err = members_read(c, group_id, &m, &nm);
out:
    err = sq_end(c, err);
    sq_conn_put(sq(s), c);
    if (err) {
        free(m);
        return err;
    }
    *out = g;
    if (members) {
        *members = m;
        if (n_members)
            *n_members = nm;
    }
    return PARLEY_OK;
}

enum parley_err sq_group_list(struct store *s, const char *user_id, struct store_group **out,
                              size_t *n_out)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    void *v = NULL;
    size_t n = 0;
    enum parley_err err = stmt(c, ST_GRP_LIST, &st);
    if (!err)
        err = sq_collect(c, st, sq_bind_text(st, 1, user_id), sizeof **out, group_read,
                         "group_list", &v, &n);
    sq_conn_put(sq(s), c);
    if (err)
        return err;
    *out = v;
    *n_out = n;
    return PARLEY_OK;
}

enum parley_err sq_group_member_set(struct store *s, const char *group_id,
                                    const struct store_group_member *m, int64_t now)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    int64_t count = 0;
    bool found = false;
    enum parley_err err = sq_begin(c);
    if (err)
        goto out;
    err = query_int(c, ST_GRP_EXISTS, group_id, &count, &found, "group_member_set");
    if (err)
        goto out;
    if (!found) {
        err = PARLEY_ERR_NOTFOUND;
        goto out;
    }
    /* Already a member: only the admin flag changes. */
    err = stmt(c, ST_GRP_MEMBER_ADMIN, &st);
    if (err)
        goto out;
    int rc = sq_bind_text(st, 1, group_id);
    if (rc == SQLITE_OK)
        rc = sq_bind_text(st, 2, m->user_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 3, m->admin ? 1 : 0);
    err = sq_exec(c, st, rc, "group_member_set");
    if (err)
        goto out;
    if (sqlite3_changes(c->db) == 0) {
        err = query_int(c, ST_GRP_MEMBER_COUNT, group_id, &count, &found, "group_member_set");
        if (err)
            goto out;
        if (count >= STORE_GROUP_MEMBERS_MAX) {
            err = PARLEY_ERR_LIMIT;
            goto out;
        }
        err = member_insert(c, group_id, m, now);
        if (err)
            goto out;
    }
    err = touch(c, group_id, now);
out:
    err = sq_end(c, err);
    sq_conn_put(sq(s), c);
    return err;
}

enum parley_err sq_group_member_remove(struct store *s, const char *group_id, const char *user_id,
                                       int64_t now)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    int changes = 0;
    enum parley_err err = sq_begin(c);
    if (err)
        goto out;
    err = exec2(c, ST_GRP_MEMBER_DELETE, group_id, user_id, &changes, "group_member_remove");
    if (err)
        goto out;
    if (changes == 0) {
        err = PARLEY_ERR_NOTFOUND;
        goto out;
    }
    /* A no-op when that was the last member: the trigger deleted the group. */
    err = touch(c, group_id, now);
out:
    err = sq_end(c, err);
    sq_conn_put(sq(s), c);
    return err;
}

enum parley_err sq_group_rename(struct store *s, const char *group_id, const char *name,
                                int64_t now)
{
    struct sq_conn *c = sq_conn_get(sq(s));
    sqlite3_stmt *st = NULL;
    enum parley_err err = stmt(c, ST_GRP_RENAME, &st);
    if (err)
        goto out;
    int rc = sq_bind_text(st, 1, group_id);
    if (rc == SQLITE_OK)
        rc = sq_bind_text(st, 2, name);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, now);
    err = sq_exec(c, st, rc, "group_rename");
    if (!err && sqlite3_changes(c->db) == 0)
        err = PARLEY_ERR_NOTFOUND;
out:
    sq_conn_put(sq(s), c);
    return err;
}
