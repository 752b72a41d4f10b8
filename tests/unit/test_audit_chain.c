/*
 * test_audit_chain.c — the audit log's hash chain (POLICY P26): the canonical hash is
 * deterministic and covers every field; appends chain through a real SQLite store; the
 * schema refuses UPDATE/DELETE; and audit_verify names the first entry that was edited,
 * removed or reordered behind the triggers' back. Also the retention jobs at `now`
 * (P31): each category is purged at its period and not a second before.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <sqlite3.h>

#include "config.h"
#include "privacy/audit.h"
#include "retention.h"
#include "store/audit_chain.h"
#include "store/store.h"

static const unsigned char mk[32] = {1, 2, 3};

struct fx {
    char dir[64];
    char path[96];
    struct store *s;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/parley-audit-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/p.db", f->dir);
    assert_int_equal(store_open_sqlite(f->path, &f->s), PARLEY_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    char p[128];
    const char *sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", f->path, sfx[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static void exec_raw(struct fx *f, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "sql: %s\n", msg ? msg : "?");
    sqlite3_free(msg);
    sqlite3_close(db);
    assert_int_equal(rc, SQLITE_OK);
}

static int raw_rc(struct fx *f, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

static void append_n(struct fx *f, int n)
{
    for (int i = 0; i < n; i++) {
        char detail[32];
        snprintf(detail, sizeof detail, "reason %d", i);
        assert_int_equal(audit_record(f->s, mk, "alice", AUDIT_KIND_LEGAL_EXPORT,
                                      "0123456789abcdef0123456789abcdef", detail, 1000 + i, NULL),
                         PARLEY_OK);
    }
}

static int64_t verify(struct fx *f, size_t *n)
{
    uint8_t head[STORE_AUDIT_HASH_BYTES];
    int64_t bad = 0;
    char reason[160];
    enum parley_err err = audit_verify(f->s, n, head, &bad, reason, sizeof reason);
    if (err == PARLEY_OK)
        return 0;
    assert_int_equal(err, PARLEY_ERR_CRYPTO);
    return bad;
}

static void test_P26_hash_covers_every_field(void **state)
{
    (void)state;
    struct store_audit_entry a, b;
    uint8_t prev[32] = {0}, h1[32], h2[32];
    memset(&a, 0, sizeof a);
    a.seq = 1;
    a.at = 5;
    snprintf(a.actor, sizeof a.actor, "op");
    snprintf(a.kind, sizeof a.kind, "k");
    snprintf(a.subject, sizeof a.subject, "u_1");
    snprintf(a.detail, sizeof a.detail, "d");
    audit_chain_hash(prev, &a, h1);
    b = a;
    audit_chain_hash(prev, &b, h2);
    assert_memory_equal(h1, h2, 32);
    /* Each field, the sequence number, the time and prev change the hash. */
    b = a; b.seq = 2; audit_chain_hash(prev, &b, h2); assert_memory_not_equal(h1, h2, 32);
    b = a; b.at = 6; audit_chain_hash(prev, &b, h2); assert_memory_not_equal(h1, h2, 32);
    b = a; b.detail[0] = 'e'; audit_chain_hash(prev, &b, h2); assert_memory_not_equal(h1, h2, 32);
    b = a; b.subject[2] = '2'; audit_chain_hash(prev, &b, h2); assert_memory_not_equal(h1, h2, 32);
    /* Length prefixes: moving a byte between fields changes the hash. */
    b = a;
    snprintf(b.actor, sizeof b.actor, "opk");
    b.kind[0] = '\0';
    audit_chain_hash(prev, &b, h2);
    assert_memory_not_equal(h1, h2, 32);
    prev[0] = 1;
    audit_chain_hash(prev, &a, h2);
    assert_memory_not_equal(h1, h2, 32);
}

static void test_P26_chain_verifies_and_pseudonymises(void **state)
{
    struct fx *f = *state;
    size_t n = 0;
    assert_int_equal(verify(f, &n), 0);
    assert_int_equal(n, 0);
    append_n(f, 5);
    assert_int_equal(verify(f, &n), 0);
    assert_int_equal(n, 5);
    struct store_audit_entry *v = NULL;
    assert_int_equal(store_audit_list(f->s, 0, 10, &v, &n), PARLEY_OK);
    assert_int_equal(n, 5);
    assert_int_equal(v[0].seq, 1);
    assert_memory_equal(v[1].prev_hash, v[0].hash, 32);
    /* The account is named by pseudonym only. */
    assert_null(strstr(v[0].subject, "0123456789abcdef"));
    assert_int_equal(strncmp(v[0].subject, "u_", 2), 0);
    assert_int_equal(strlen(v[0].subject), AUDIT_SUBJECT_LEN);
    free(v);
}

static void test_P26_append_only_triggers(void **state)
{
    struct fx *f = *state;
    append_n(f, 2);
    assert_int_not_equal(raw_rc(f, "UPDATE audit_log SET detail = 'x' WHERE seq = 1"), SQLITE_OK);
    assert_int_not_equal(raw_rc(f, "DELETE FROM audit_log WHERE seq = 2"), SQLITE_OK);
}

static void drop_triggers(struct fx *f)
{
    exec_raw(f, "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;");
}

static void test_P26_edit_detected(void **state)
{
    struct fx *f = *state;
    size_t n;
    append_n(f, 5);
    drop_triggers(f);
    exec_raw(f, "UPDATE audit_log SET detail = 'nothing to see' WHERE seq = 3");
    assert_int_equal(verify(f, &n), 3);
}

static void test_P26_removal_detected(void **state)
{
    struct fx *f = *state;
    size_t n;
    append_n(f, 5);
    drop_triggers(f);
    exec_raw(f, "DELETE FROM audit_log WHERE seq = 2");
    assert_int_equal(verify(f, &n), 3);
    /* Renumbering to hide the gap breaks the hash instead. */
    exec_raw(f, "UPDATE audit_log SET seq = seq - 1 WHERE seq > 2");
    assert_int_equal(verify(f, &n), 2);
}

static void test_P26_reorder_detected(void **state)
{
    struct fx *f = *state;
    size_t n;
    append_n(f, 4);
    drop_triggers(f);
    exec_raw(f, "UPDATE audit_log SET seq = 100 WHERE seq = 2;"
                "UPDATE audit_log SET seq = 2 WHERE seq = 3;"
                "UPDATE audit_log SET seq = 3 WHERE seq = 100;");
    assert_int_equal(verify(f, &n), 2);
}

static void test_P31_retention_jobs_at_now(void **state)
{
    struct fx *f = *state;
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.queue_ttl_s = 15 * 86400;
    const int64_t t0 = 1700000000;
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO call_quality (received_at, started_at, duration_ms, codec) "
             "VALUES (%lld, %lld, 1000, 'opus');"
             "INSERT INTO security_events (at, kind) VALUES (%lld, 'login_failed');"
             "INSERT INTO reports (id, created_at) VALUES ('r1', %lld);"
             "INSERT INTO purchases (id, user_id, product, order_ref, purchased_at) "
             "VALUES ('p1', 'x', 'phone', 'rcpt', %lld);",
             (long long)t0, (long long)t0, (long long)t0, (long long)t0, (long long)t0);
    exec_raw(f, sql);
    static const struct {
        const char *table;
        int64_t period;
    } cats[] = {{"security_events", RETENTION_SECURITY_EVENTS_S},
                {"call_quality", RETENTION_CALL_QUALITY_S},
                {"reports", RETENTION_REPORTS_S},
                {"purchases", RETENTION_PURCHASES_S}};
    for (size_t i = 0; i < 4; i++) {
        /* One second early: everything still there from this category on. */
        assert_int_equal(retention_run_all(f->s, &cfg, t0 + cats[i].period - 1, true, NULL),
                         PARLEY_OK);
        for (size_t k = i; k < 4; k++) {
            snprintf(sql, sizeof sql, "SELECT 1 FROM %s", cats[k].table);
            sqlite3 *db = NULL;
            sqlite3_stmt *st = NULL;
            assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
            assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
            assert_int_equal(sqlite3_step(st), SQLITE_ROW);
            sqlite3_finalize(st);
            sqlite3_close(db);
        }
        /* On time: this category is gone. */
        assert_int_equal(retention_run_all(f->s, &cfg, t0 + cats[i].period, true, NULL),
                         PARLEY_OK);
        snprintf(sql, sizeof sql, "SELECT 1 FROM %s", cats[i].table);
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_P26_hash_covers_every_field),
        cmocka_unit_test_setup_teardown(test_P26_chain_verifies_and_pseudonymises, setup, teardown),
        cmocka_unit_test_setup_teardown(test_P26_append_only_triggers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_P26_edit_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_P26_removal_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_P26_reorder_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_P31_retention_jobs_at_now, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
