/*
 * store_test_util.h — the fixture and helpers shared by the store's unit tests
 * (test_store_sqlite.c, test_store_messaging.c, test_queue_batch_cache.c,
 * test_queue_writeback.c, test_queue_depth.c): a fresh SQLite store in a temp
 * directory per test, users, devices with keys, sends, and raw reads of the file through
 * an independent connection. Header-only (static inline) because each test is its own
 * executable.
 */
#ifndef PARLEY_TESTS_STORE_TEST_UTIL_H
#define PARLEY_TESTS_STORE_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <sqlite3.h>

#include "store/store.h"

#define NOW 1800000000
#define TTL (15 * 86400)

struct fx {
    char dir[64];
    char path[128];
    struct store *s;
};

static inline int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/parley-store-test-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/parleyd.sqlite", f->dir);
    if (store_open_sqlite(f->path, &f->s) != PARLEY_OK) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    struct fx *f = *state;
    char p[160];
    store_close(f->s);
    const char *sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", f->path, sfx[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ---- */

static inline void new_user(struct store *s, const char *username, char id[STORE_ID_LEN + 1])
{
    struct store_user u;
    memset(&u, 0, sizeof u);
    store_id_new(u.id);
    snprintf(u.username, sizeof u.username, "%s", username);
    snprintf(u.name, sizeof u.name, "Name of %s", username);
    snprintf(u.dob, sizeof u.dob, "2000-01-01");
    snprintf(u.password_hash, sizeof u.password_hash, "$argon2id$fake");
    u.created_at = NOW;
    assert_int_equal(store_user_create(s, &u), PARLEY_OK);
    memcpy(id, u.id, sizeof u.id);
}

static int token_counter __attribute__((unused));

/* A new device (login) of user; tok_out (may be NULL) gets its token hash. */
static inline void new_device(struct store *s, const char *user, int64_t created,
                       char dev[STORE_ID_LEN + 1], uint8_t tok_out[STORE_TOKEN_HASH_BYTES])
{
    uint8_t h[STORE_TOKEN_HASH_BYTES];
    char t[32];
    snprintf(t, sizeof t, "tok-%d", ++token_counter);
    crypto_hash_sha256(h, (const unsigned char *)t, strlen(t));
    struct store_session_new in = {.user_id = user,
                                   .device_name = "d",
                                   .token_hash = h,
                                   .now = created,
                                   .expires_at = created + 30 * 86400,
                                   .max_devices = 6};
    assert_int_equal(store_session_create(s, &in, dev), PARLEY_OK);
    if (tok_out)
        memcpy(tok_out, h, sizeof h);
}

static inline void fake_key(uint8_t *k, size_t n, const char *seed, uint32_t i)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, n);
    crypto_generichash_update(&st, (const unsigned char *)seed, strlen(seed));
    crypto_generichash_update(&st, (const unsigned char *)&i, sizeof i);
    crypto_generichash_final(&st, k, n);
}

/* Upload identity + signed prekey and n one-time prekeys with ids first..first+n-1. */
static inline enum parley_err upload(struct store *s, const char *user, const char *dev, bool spk,
                              uint32_t first, size_t n, size_t *stock)
{
    struct store_prekey_pub *opk = calloc(n ? n : 1, sizeof *opk);
    assert_non_null(opk);
    for (size_t i = 0; i < n; i++) {
        opk[i].id = first + (uint32_t)i;
        fake_key(opk[i].pk, sizeof opk[i].pk, dev, opk[i].id);
    }
    struct store_keys_upload in;
    memset(&in, 0, sizeof in);
    in.user_id = user;
    in.device_id = dev;
    fake_key(in.identity_key, sizeof in.identity_key, dev, 0xffffffffu);
    in.has_signed_prekey = spk;
    in.spk_id = 7;
    fake_key(in.spk, sizeof in.spk, dev, 0xfffffffeu);
    fake_key(in.spk_sig, sizeof in.spk_sig, dev, 0xfffffffdu);
    in.onetime = opk;
    in.n_onetime = n;
    in.now = NOW;
    enum parley_err e = store_keys_put(s, &in, stock);
    free(opk);
    return e;
}

/* A keyed device: logged in and keys uploaded. */
static inline void keyed_device(struct store *s, const char *user, int64_t created,
                         char dev[STORE_ID_LEN + 1])
{
    new_device(s, user, created, dev, NULL);
    assert_int_equal(upload(s, user, dev, true, 1, 5, NULL), PARLEY_OK);
}

/* A send of one message with copies to devs[0..n) (bodies "body-<i>"). */
struct send_buf {
    struct store_copy copies[16];
    char bodies[16][16];
};

static inline void make_send(struct store_queue_op *op, struct send_buf *b, const char *from_user,
                      const char *from_dev, const char *to_user, const char *group,
                      const char (*devs)[STORE_ID_LEN + 1], size_t n, uint8_t msgid_seed)
{
    assert_true(n <= 16);
    memset(op, 0, sizeof *op);
    memset(b, 0, sizeof *b);
    op->kind = STORE_QOP_SEND;
    struct store_queue_send *q = &op->u.send;
    q->sender_user = from_user;
    q->sender_device = from_dev;
    memset(q->client_msg_id, msgid_seed, sizeof q->client_msg_id);
    q->to_user = to_user;
    q->group_id = group;
    for (size_t i = 0; i < n; i++) {
        snprintf(b->bodies[i], sizeof b->bodies[i], "body-%u", (unsigned)i);
        b->copies[i].device_id = devs[i];
        b->copies[i].body = (const uint8_t *)b->bodies[i];
        b->copies[i].body_len = strlen(b->bodies[i]);
    }
    q->copies = b->copies;
    q->n_copies = n;
    q->created_at_ms = (int64_t)NOW * 1000;
    q->expires_at = NOW + TTL;
    q->max_queue = 1000;
}

/* One integer from a query on an independent connection. */
static inline int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static inline void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

#endif
