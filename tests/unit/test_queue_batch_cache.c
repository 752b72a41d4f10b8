/*
 * test_queue_batch_cache.c — store_queue_apply's per-batch cache of target checks
 * (sqlite_queue.c, issue #5) against a real database file: in ONE batch, sends that
 * differ only in sender device, sender user, recipient user or group each get their own
 * answer (recipients, NO_TARGET, NOT_MEMBER, STALE), and refused sends write nothing
 * although the batch uses no per-op savepoint.
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

#include "store/store.h"

#define NOW 1800000000
#define TTL (15 * 86400)

struct fx {
    char dir[64];
    char path[128];
    struct store *s;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/parley-qbc-XXXXXX");
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

static int teardown(void **state)
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

static void new_user(struct store *s, const char *username, char id[STORE_ID_LEN + 1])
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

static int token_counter;

/* A new device (login) of user; tok_out (may be NULL) gets its token hash. */
static void new_device(struct store *s, const char *user, int64_t created,
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

static void fake_key(uint8_t *k, size_t n, const char *seed, uint32_t i)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, n);
    crypto_generichash_update(&st, (const unsigned char *)seed, strlen(seed));
    crypto_generichash_update(&st, (const unsigned char *)&i, sizeof i);
    crypto_generichash_final(&st, k, n);
}

/* Upload identity + signed prekey and n one-time prekeys with ids first..first+n-1. */
static enum parley_err upload(struct store *s, const char *user, const char *dev, bool spk,
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
static void keyed_device(struct store *s, const char *user, int64_t created,
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

static void make_send(struct store_queue_op *op, struct send_buf *b, const char *from_user,
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
static int64_t raw_int(const char *path, const char *sql)
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

typedef const char (*devlist)[STORE_ID_LEN + 1];

static void test_batch_keys_do_not_share_answers(void **state)
{
    struct fx *f = *state;
    char a[STORE_ID_LEN + 1], b[STORE_ID_LEN + 1], c[STORE_ID_LEN + 1];
    char a1[STORE_ID_LEN + 1], a2[STORE_ID_LEN + 1], a3[STORE_ID_LEN + 1];
    char b1[STORE_ID_LEN + 1], b2[STORE_ID_LEN + 1], c1[STORE_ID_LEN + 1];
    char nobody[STORE_ID_LEN + 1];
    new_user(f->s, "alice", a);
    new_user(f->s, "bob", b);
    new_user(f->s, "carol", c);
    keyed_device(f->s, a, NOW, a1);
    keyed_device(f->s, a, NOW + 1, a2);
    new_device(f->s, a, NOW + 2, a3, NULL); /* no keys: never a recipient */
    keyed_device(f->s, b, NOW, b1);
    keyed_device(f->s, b, NOW + 1, b2);
    keyed_device(f->s, c, NOW, c1);
    store_id_new(nobody);
    struct store_group g = {.created_at = NOW, .updated_at = NOW};
    store_id_new(g.id);
    struct store_group_member m[2];
    memset(m, 0, sizeof m);
    memcpy(m[0].user_id, a, sizeof m[0].user_id);
    memcpy(m[1].user_id, b, sizeof m[1].user_id);
    assert_int_equal(store_group_create(f->s, &g, m, 2), PARLEY_OK);

    enum { N = 11 };
    char d[N][3][STORE_ID_LEN + 1];
    size_t nd[N];
    const char *from_user[N], *from_dev[N], *to[N], *grp[N];
#define SET(i, fu, fd, tu, gr, n, x, y, z)                                                         \
    do {                                                                                           \
        from_user[i] = fu;                                                                         \
        from_dev[i] = fd;                                                                          \
        to[i] = tu;                                                                                \
        grp[i] = gr;                                                                               \
        nd[i] = n;                                                                                 \
        snprintf(d[i][0], sizeof d[i][0], "%s", x);                                                \
        snprintf(d[i][1], sizeof d[i][1], "%s", y);                                                \
        snprintf(d[i][2], sizeof d[i][2], "%s", z);                                                \
    } while (0)
    SET(0, a, a1, b, NULL, 3, b1, b2, a2);      /* OK */
    SET(1, a, a1, c, NULL, 2, c1, a2, "");      /* another recipient user: OK */
    SET(2, a, a2, b, NULL, 3, b1, b2, a1);      /* another sending device: a1 now, not a2 */
    SET(3, b, b1, a, NULL, 3, a1, a2, b2);      /* OK (a3 has no keys) */
    SET(4, a, b1, b, NULL, 3, b2, a1, a2);      /* b1 is not alice's: NO_TARGET */
    SET(5, a, a1, nobody, NULL, 1, b1, "", ""); /* no such user: NO_TARGET */
    SET(6, a, a1, nobody, NULL, 1, b1, "", ""); /* again, another id: NO_TARGET */
    SET(7, a, a1, b, NULL, 2, b1, a2, "");      /* b2 missing: STALE */
    SET(8, a, a1, NULL, g.id, 3, a2, b1, b2);   /* group: OK */
    SET(9, c, c1, NULL, g.id, 1, a1, "", "");   /* carol is no member: NOT_MEMBER */
    SET(10, a, a1, NULL, g.id, 3, a2, b1, b2);  /* group again: OK */
#undef SET
    struct store_queue_op op[N];
    struct send_buf buf[N];
    for (int i = 0; i < N; i++)
        make_send(&op[i], &buf[i], from_user[i], from_dev[i], to[i], grp[i], (devlist)d[i], nd[i],
                  (uint8_t)(i + 1));
    assert_int_equal(store_queue_apply(f->s, op, N, NOW), PARLEY_OK);
    const enum store_send_status want[N] = {
        STORE_SEND_OK,        STORE_SEND_OK,         STORE_SEND_OK,        STORE_SEND_OK,
        STORE_SEND_NO_TARGET, STORE_SEND_NO_TARGET,  STORE_SEND_NO_TARGET, STORE_SEND_STALE,
        STORE_SEND_OK,        STORE_SEND_NOT_MEMBER, STORE_SEND_OK};
    for (int i = 0; i < N; i++) {
        if (op[i].u.send.status != want[i])
            fail_msg("op %d: status %d, want %d", i, (int)op[i].u.send.status, (int)want[i]);
        for (size_t k = 0; k < nd[i]; k++) {
            if (want[i] == STORE_SEND_OK)
                assert_true(buf[i].copies[k].envelope_id > 0);
            else
                assert_int_equal(buf[i].copies[k].envelope_id, 0);
        }
    }
    assert_int_equal(op[7].u.send.n_missing, 1);
    assert_string_equal(op[7].u.send.missing[0].device_id, b2);
    assert_int_equal(op[7].u.send.n_extra, 0);
    assert_string_equal(buf[1].copies[0].user_id, c);
    assert_string_equal(buf[2].copies[2].user_id, a);
    for (int i = 0; i < N; i++)
        store_queue_op_cleanup(&op[i]);
    /* Only the OK sends wrote: 3 + 2 + 3 + 3 + 3 + 3 copies, 6 remembered ids. */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), 17);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sent_msg_ids"), 6);
    assert_int_equal(raw_int(f->path, "SELECT sum(n) FROM queue_depth"), 17);
}

/* More distinct keys than the cache's first size, with every send repeated. */
static void test_batch_many_keys(void **state)
{
    struct fx *f = *state;
    enum { U = 40 };
    char u[U][STORE_ID_LEN + 1], dev[U][STORE_ID_LEN + 1];
    for (int i = 0; i < U; i++) {
        char name[32];
        snprintf(name, sizeof name, "user%d", i);
        new_user(f->s, name, u[i]);
        keyed_device(f->s, u[i], NOW, dev[i]);
    }
    struct store_queue_op *op = calloc(2 * U, sizeof *op);
    struct send_buf *buf = calloc(2 * U, sizeof *buf);
    assert_non_null(op);
    assert_non_null(buf);
    for (int i = 0; i < 2 * U; i++) {
        int s = i % U, r = (i % U + 1 + i / U) % U; /* round 2 sends to the next but one */
        make_send(&op[i], &buf[i], u[s], dev[s], u[r], NULL, (devlist)dev[r], 1, (uint8_t)(i + 1));
    }
    assert_int_equal(store_queue_apply(f->s, op, 2 * U, NOW), PARLEY_OK);
    for (int i = 0; i < 2 * U; i++) {
        assert_int_equal(op[i].u.send.status, STORE_SEND_OK);
        store_queue_op_cleanup(&op[i]);
    }
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), 2 * U);
    free(op);
    free(buf);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batch_keys_do_not_share_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_many_keys, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
