/*
 * test_store_sqlite.c — the SQLite store: migrations, every operation and its errors,
 * the device limit, session expiry, what is (not) written to disk, and a concurrency
 * smoke test. Each test works in its own temporary directory.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <sqlite3.h>

#include "store/store.h"
#include "store_test_util.h"

static void make_user(struct store_user *u, const char *username)
{
    memset(u, 0, sizeof *u);
    store_id_new(u->id);
    snprintf(u->username, sizeof u->username, "%s", username);
    snprintf(u->name, sizeof u->name, "Name of %s", username);
    snprintf(u->dob, sizeof u->dob, "2000-02-29");
    snprintf(u->password_hash, sizeof u->password_hash, "$argon2id$v=19$m=8,t=1,p=1$fake");
    u->created_at = 1700000000;
}

static void token_hash(uint8_t h[STORE_TOKEN_HASH_BYTES], int n)
{
    char tok[32];
    snprintf(tok, sizeof tok, "token-%d", n);
    crypto_hash_sha256(h, (const unsigned char *)tok, strlen(tok));
}

static void new_session(struct store *s, const char *user_id, int n, int64_t now, int64_t ttl,
                        enum parley_err want, char dev[STORE_ID_LEN + 1])
{
    uint8_t h[STORE_TOKEN_HASH_BYTES];
    token_hash(h, n);
    struct store_session_new in = {
        .user_id = user_id,
        .device_name = "laptop",
        .token_hash = h,
        .now = now,
        .expires_at = now + ttl,
        .max_devices = 3,
    };
    assert_int_equal(store_session_create(s, &in, dev), want);
}

/* ---- tests ---- */

static void test_migrations_idempotent(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    f->s = NULL;
    /* Open twice more: no migration re-runs, no error. */
    assert_int_equal(store_open_sqlite(f->path, &f->s), PARLEY_OK);
    store_close(f->s);
    assert_int_equal(store_open_sqlite(f->path, &f->s), PARLEY_OK);

    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT count(*), max(version) FROM schema_version", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), store_schema_version_latest());
    assert_int_equal(sqlite3_column_int(st, 1), store_schema_version_latest());
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), store_schema_version_latest());
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);

    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
}

static void test_schema_too_new_refused(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    f->s = NULL;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "INSERT INTO schema_version VALUES (9999, 0)", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    struct store *s = NULL;
    assert_int_equal(store_open_sqlite(f->path, &s), PARLEY_ERR_STORE);
    assert_null(s);
}

static void test_open_bad_path(void **state)
{
    (void)state;
    struct store *s = NULL;
    assert_int_equal(store_open_sqlite("/nonexistent-dir/x/parley.sqlite", &s), PARLEY_ERR_IO);
    assert_int_equal(store_open_sqlite(NULL, &s), PARLEY_ERR_INVAL);
    store_close(NULL);
}

static void test_ids(void **state)
{
    (void)state;
    char a[STORE_ID_LEN + 1], b[STORE_ID_LEN + 1];
    store_id_new(a);
    store_id_new(b);
    assert_int_equal(strlen(a), STORE_ID_LEN);
    assert_true(store_id_valid(a));
    assert_string_not_equal(a, b);
    assert_false(store_id_valid(""));
    assert_false(store_id_valid("0123456789abcdef0123456789abcdeF"));
    assert_false(store_id_valid("0123456789abcdef0123456789abcdef0"));
    assert_false(store_id_valid("0123456789abcdef0123456789abcde"));
    assert_false(store_id_valid(NULL));
}

static void test_user_crud(void **state)
{
    struct fx *f = *state;
    struct store_user u, got, other;
    make_user(&u, "alice");
    snprintf(u.region, sizeof u.region, "DE");
    u.parental_consent_required = true;
    assert_int_equal(store_user_create(f->s, &u), PARLEY_OK);

    assert_int_equal(store_user_get_by_id(f->s, u.id, &got), PARLEY_OK);
    assert_string_equal(got.username, "alice");
    assert_string_equal(got.name, "Name of alice");
    assert_string_equal(got.dob, "2000-02-29");
    assert_string_equal(got.region, "DE");
    assert_string_equal(got.gender, "");
    assert_true(got.parental_consent_required);
    assert_int_equal(got.created_at, 1700000000);
    assert_string_equal(got.password_hash, u.password_hash);

    assert_int_equal(store_user_get_by_username(f->s, "alice", &got), PARLEY_OK);
    assert_string_equal(got.id, u.id);

    /* Same username: EXISTS, whatever the id. */
    make_user(&other, "alice");
    assert_int_equal(store_user_create(f->s, &other), PARLEY_ERR_EXISTS);
    /* Same id: EXISTS too. */
    make_user(&other, "bob");
    memcpy(other.id, u.id, sizeof u.id);
    assert_int_equal(store_user_create(f->s, &other), PARLEY_ERR_EXISTS);

    char missing[STORE_ID_LEN + 1];
    store_id_new(missing);
    assert_int_equal(store_user_get_by_id(f->s, missing, &got), PARLEY_ERR_NOTFOUND);
    assert_int_equal(store_user_get_by_id(f->s, "not-an-id", &got), PARLEY_ERR_NOTFOUND);
    assert_int_equal(store_user_get_by_username(f->s, "nobody", &got), PARLEY_ERR_NOTFOUND);
    assert_int_equal(store_user_get_by_username(f->s, "", &got), PARLEY_ERR_NOTFOUND);

    /* Bad input never reaches the backend. */
    make_user(&other, "carol");
    snprintf(other.id, sizeof other.id, "1");
    assert_int_equal(store_user_create(f->s, &other), PARLEY_ERR_INVAL);
}

static void test_user_update(void **state)
{
    struct fx *f = *state;
    struct store_user u, got;
    make_user(&u, "alice");
    snprintf(u.region, sizeof u.region, "FR");
    snprintf(u.gender, sizeof u.gender, "female");
    assert_int_equal(store_user_create(f->s, &u), PARLEY_OK);

    struct store_profile_patch p = {.fields = STORE_PATCH_NAME};
    snprintf(p.name, sizeof p.name, "Alice Ünïcode");
    assert_int_equal(store_user_update_profile(f->s, u.id, &p, &got), PARLEY_OK);
    assert_string_equal(got.name, "Alice Ünïcode");
    assert_string_equal(got.region, "FR");
    assert_string_equal(got.gender, "female");
    assert_false(got.parental_consent_required);

    /* Clear region and gender; set the consent flag. */
    memset(&p, 0, sizeof p);
    p.fields = STORE_PATCH_REGION | STORE_PATCH_GENDER | STORE_PATCH_CONSENT;
    assert_int_equal(store_user_update_profile(f->s, u.id, &p, NULL), PARLEY_OK);
    assert_int_equal(store_user_get_by_id(f->s, u.id, &got), PARLEY_OK);
    assert_string_equal(got.name, "Alice Ünïcode");
    assert_string_equal(got.region, "");
    assert_string_equal(got.gender, "");
    assert_true(got.parental_consent_required);
    assert_string_equal(got.username, "alice");
    assert_string_equal(got.password_hash, u.password_hash);
    assert_int_equal(got.created_at, u.created_at);

    char missing[STORE_ID_LEN + 1];
    store_id_new(missing);
    assert_int_equal(store_user_update_profile(f->s, missing, &p, NULL), PARLEY_ERR_NOTFOUND);
}

static void test_sessions(void **state)
{
    struct fx *f = *state;
    struct store_user u;
    make_user(&u, "alice");
    assert_int_equal(store_user_create(f->s, &u), PARLEY_OK);

    char dev[STORE_ID_LEN + 1];
    int64_t now = 1800000000;
    new_session(f->s, u.id, 1, now, 3600, PARLEY_OK, dev);
    assert_true(store_id_valid(dev));

    uint8_t h[STORE_TOKEN_HASH_BYTES];
    token_hash(h, 1);
    struct store_session ss;
    assert_int_equal(store_session_lookup(f->s, h, now + 10, &ss), PARLEY_OK);
    assert_string_equal(ss.user_id, u.id);
    assert_string_equal(ss.device_id, dev);
    assert_int_equal(ss.expires_at, now + 3600);

    /* last_seen moves at most once a minute. */
    struct store_device *devs = NULL;
    size_t n = 0;
    assert_int_equal(store_device_list(f->s, u.id, &devs, &n), PARLEY_OK);
    assert_int_equal(n, 1);
    assert_int_equal(devs[0].last_seen, now);
    assert_string_equal(devs[0].name, "laptop");
    free(devs);
    assert_int_equal(store_session_lookup(f->s, h, now + 61, &ss), PARLEY_OK);
    assert_int_equal(store_session_lookup(f->s, h, now + 90, &ss), PARLEY_OK);
    assert_int_equal(store_device_list(f->s, u.id, &devs, &n), PARLEY_OK);
    assert_int_equal(devs[0].last_seen, now + 61);
    free(devs);

    /* Expiry is exact: valid until expires_at, not at it. */
    assert_int_equal(store_session_lookup(f->s, h, now + 3599, &ss), PARLEY_OK);
    assert_int_equal(store_session_lookup(f->s, h, now + 3600, &ss), PARLEY_ERR_NOTFOUND);

    /* Unknown token. */
    uint8_t other[STORE_TOKEN_HASH_BYTES];
    token_hash(other, 99);
    assert_int_equal(store_session_lookup(f->s, other, now, &ss), PARLEY_ERR_NOTFOUND);
    assert_int_equal(store_session_delete(f->s, other), PARLEY_ERR_NOTFOUND);

    /* The same token hash twice: EXISTS (and no orphan device left behind). */
    new_session(f->s, u.id, 1, now, 3600, PARLEY_ERR_EXISTS, dev);
    assert_int_equal(store_device_list(f->s, u.id, &devs, &n), PARLEY_OK);
    assert_int_equal(n, 1);
    free(devs);

    /* Logout deletes the session and its device. */
    assert_int_equal(store_session_delete(f->s, h), PARLEY_OK);
    assert_int_equal(store_session_lookup(f->s, h, now, &ss), PARLEY_ERR_NOTFOUND);
    assert_int_equal(store_device_list(f->s, u.id, &devs, &n), PARLEY_OK);
    assert_int_equal(n, 0);
    assert_null(devs);

    /* Unknown user. */
    char missing[STORE_ID_LEN + 1];
    store_id_new(missing);
    new_session(f->s, missing, 5, now, 3600, PARLEY_ERR_NOTFOUND, dev);
}

static void test_device_limit_and_expiry(void **state)
{
    struct fx *f = *state;
    struct store_user u, v;
    make_user(&u, "alice");
    make_user(&v, "bob");
    assert_int_equal(store_user_create(f->s, &u), PARLEY_OK);
    assert_int_equal(store_user_create(f->s, &v), PARLEY_OK);
    char dev[3][STORE_ID_LEN + 1], tmp[STORE_ID_LEN + 1];
    int64_t now = 1800000000;

    new_session(f->s, u.id, 1, now, 100, PARLEY_OK, dev[0]);
    new_session(f->s, u.id, 2, now, 1000, PARLEY_OK, dev[1]);
    new_session(f->s, u.id, 3, now, 1000, PARLEY_OK, dev[2]);
    /* max_devices = 3 in new_session */
    new_session(f->s, u.id, 4, now, 1000, PARLEY_ERR_LIMIT, tmp);
    /* Another user is not affected. */
    new_session(f->s, v.id, 10, now, 1000, PARLEY_OK, tmp);

    /* Revoking one frees a slot, and kills its session at once. */
    assert_int_equal(store_device_delete(f->s, u.id, dev[1]), PARLEY_OK);
    uint8_t h[STORE_TOKEN_HASH_BYTES];
    struct store_session ss;
    token_hash(h, 2);
    assert_int_equal(store_session_lookup(f->s, h, now, &ss), PARLEY_ERR_NOTFOUND);
    assert_int_equal(store_device_delete(f->s, u.id, dev[1]), PARLEY_ERR_NOTFOUND);
    /* Not someone else's device. */
    assert_int_equal(store_device_delete(f->s, v.id, dev[0]), PARLEY_ERR_NOTFOUND);
    assert_int_equal(store_device_delete(f->s, u.id, "zz"), PARLEY_ERR_NOTFOUND);
    new_session(f->s, u.id, 4, now, 1000, PARLEY_OK, tmp);
    new_session(f->s, u.id, 5, now, 1000, PARLEY_ERR_LIMIT, tmp);

    /* Once session 1 expired its device no longer counts. */
    new_session(f->s, u.id, 5, now + 100, 1000, PARLEY_OK, tmp);
    struct store_device *devs = NULL;
    size_t n = 0;
    assert_int_equal(store_device_list(f->s, u.id, &devs, &n), PARLEY_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        assert_string_not_equal(devs[i].id, dev[0]);
    free(devs);

    /* Purge removes expired sessions of everyone, and their devices. */
    size_t purged = 0;
    assert_int_equal(store_session_purge_expired(f->s, now + 1000, &purged), PARLEY_OK);
    assert_int_equal(purged, 3); /* u: sessions 3 and 4; v: session 10 */
    assert_int_equal(store_device_list(f->s, u.id, &devs, &n), PARLEY_OK);
    assert_int_equal(n, 1);
    free(devs);
    assert_int_equal(store_device_list(f->s, v.id, &devs, &n), PARLEY_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_session_purge_expired(f->s, now + 1000, &purged), PARLEY_OK);
    assert_int_equal(purged, 0);
}

/* P2/P23: no raw token, no plaintext password, no IP column anywhere. */
static void test_nothing_secret_at_rest(void **state)
{
    struct fx *f = *state;
    struct store_user u;
    make_user(&u, "alice");
    assert_int_equal(store_user_create(f->s, &u), PARLEY_OK);
    char dev[STORE_ID_LEN + 1];
    new_session(f->s, u.id, 1, 1800000000, 3600, PARLEY_OK, dev);

    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT m.name, p.name FROM sqlite_master m, "
                                        "pragma_table_info(m.name) p WHERE m.type = 'table'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    int cols = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *col = (const char *)sqlite3_column_text(st, 1);
        assert_null(strstr(col, "ip"));
        assert_null(strstr(col, "addr"));
        assert_string_not_equal(col, "token");
        assert_string_not_equal(col, "password");
        cols++;
    }
    assert_true(cols > 10);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA secure_delete", -1, &st, NULL), SQLITE_OK);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* ---- concurrency smoke: threads create users, log in, look up, revoke at once ---- */

#define THREADS 8
#define ROUNDS 20

struct worker {
    struct store *s;
    int idx;
    int failures;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int r = 0; r < ROUNDS; r++) {
        struct store_user u, got;
        char name[32];
        snprintf(name, sizeof name, "u%d_%d", w->idx, r);
        make_user(&u, name);
        if (store_user_create(w->s, &u) != PARLEY_OK) {
            w->failures++;
            continue;
        }
        /* Everyone also races for the same username: exactly one may win overall. */
        struct store_user dup;
        make_user(&dup, "contended");
        enum parley_err e = store_user_create(w->s, &dup);
        if (e != PARLEY_OK && e != PARLEY_ERR_EXISTS)
            w->failures++;

        uint8_t h[STORE_TOKEN_HASH_BYTES];
        randombytes_buf(h, sizeof h);
        char dev[STORE_ID_LEN + 1];
        struct store_session_new in = {
            .user_id = u.id, .token_hash = h, .now = 1000, .expires_at = 5000, .max_devices = 6};
        struct store_session ss;
        if (store_session_create(w->s, &in, dev) != PARLEY_OK ||
            store_session_lookup(w->s, h, 2000 + r * 100, &ss) != PARLEY_OK ||
            strcmp(ss.device_id, dev) != 0 ||
            store_user_get_by_username(w->s, name, &got) != PARLEY_OK ||
            store_device_delete(w->s, u.id, dev) != PARLEY_OK ||
            store_session_lookup(w->s, h, 2000, &ss) != PARLEY_ERR_NOTFOUND)
            w->failures++;
    }
    return NULL;
}

static void test_concurrency(void **state)
{
    struct fx *f = *state;
    pthread_t t[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.s = f->s, .idx = i};
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    struct store_user got;
    assert_int_equal(store_user_get_by_username(f->s, "contended", &got), PARLEY_OK);
    assert_int_equal(store_user_get_by_username(f->s, "u7_19", &got), PARLEY_OK);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrations_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_too_new_refused, setup, teardown),
        cmocka_unit_test(test_open_bad_path),
        cmocka_unit_test(test_ids),
        cmocka_unit_test_setup_teardown(test_user_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_limit_and_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_secret_at_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrency, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
