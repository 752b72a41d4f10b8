/*
 * test_store_messaging.c — the messaging half of the SQLite store (store_messaging.h)
 * against a real database file in a temporary directory: device keys and prekey
 * bundles (one-time prekeys never handed out twice, even to 8 threads at once), groups,
 * and the queue — group-committed sends with per-op status (stale/extra/missing,
 * duplicate, queue full, not member), acks (P8), fetch paging, expiry with notices (P9),
 * and the cascades that remove a device's or user's messaging rows with it.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <sqlite3.h>

#include "store/migrations.h"
#include "store/store.h"
#include "store_test_util.h"

/* ---- helpers ---- */

static enum store_send_status send1(struct store *s, struct store_queue_op *op)
{
    assert_int_equal(store_queue_apply(s, op, 1, NOW), PARLEY_OK);
    return op->u.send.status;
}

static size_t qcount(struct store *s, const char *dev)
{
    size_t n = 99999;
    assert_int_equal(store_queue_count(s, dev, &n), PARLEY_OK);
    return n;
}

static bool has_device(const struct store_user_device *v, size_t n, const char *dev)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].device_id, dev) == 0)
            return true;
    return false;
}

/* ---- schema ---- */

static void test_schema_and_upgrade_from_v1(void **state)
{
    struct fx *f = *state;
    assert_true(store_schema_version_latest() >= 2);
    /* Migration 1 is untouched: a database made by the first release upgrades. */
    store_close(f->s);
    f->s = NULL;
    unlink(f->path);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, store_sqlite_migrations[0].sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE schema_version (version INTEGER PRIMARY KEY "
                                  "NOT NULL, applied_at INTEGER NOT NULL);"
                                  "INSERT INTO schema_version VALUES (1, 0);"
                                  "INSERT INTO users VALUES ('0123456789abcdef0123456789abcdef',"
                                  "'old','n','2000-01-01',NULL,NULL,'h',0,1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(store_open_sqlite(f->path, &f->s), PARLEY_OK);
    assert_int_equal(raw_int(f->path, "SELECT max(version) FROM schema_version"),
                     store_schema_version_latest());
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM users"), 1);
    /* Every new table is STRICT, and foreign keys are enforced on store connections. */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM pragma_table_list WHERE strict = 1 "
                                      "AND name IN ('device_keys','onetime_prekeys','chat_groups',"
                                      "'group_members','envelopes','queue_depth','sent_msg_ids')"),
                     7);
    char u[STORE_ID_LEN + 1], d[STORE_ID_LEN + 1];
    new_user(f->s, "alice", u);
    new_device(f->s, u, NOW, d, NULL);
    /* A key upload for a device of another user is refused... */
    assert_int_equal(upload(f->s, "0123456789abcdef0123456789abcdef", d, true, 1, 1, NULL),
                     PARLEY_ERR_NOTFOUND);
}

/* ---- keys ---- */

static void test_keys_put_rules(void **state)
{
    struct fx *f = *state;
    char u[STORE_ID_LEN + 1], v[STORE_ID_LEN + 1], d[STORE_ID_LEN + 1], missing[STORE_ID_LEN + 1];
    new_user(f->s, "alice", u);
    new_user(f->s, "bob", v);
    new_device(f->s, u, NOW, d, NULL);
    store_id_new(missing);
    size_t stock = 0;

    assert_int_equal(upload(f->s, v, d, true, 1, 3, NULL), PARLEY_ERR_NOTFOUND);
    assert_int_equal(upload(f->s, u, missing, true, 1, 3, NULL), PARLEY_ERR_NOTFOUND);
    assert_int_equal(upload(f->s, u, "nope", true, 1, 3, NULL), PARLEY_ERR_NOTFOUND);
    /* The first upload needs a signed prekey. */
    assert_int_equal(upload(f->s, u, d, false, 1, 3, NULL), PARLEY_ERR_INVAL);
    assert_int_equal(upload(f->s, u, d, true, 1, 3, &stock), PARLEY_OK);
    assert_int_equal(stock, 3);
    /* Later: one-time prekeys alone; the same id replaces. */
    assert_int_equal(upload(f->s, u, d, false, 3, 4, &stock), PARLEY_OK);
    assert_int_equal(stock, 6);
    assert_int_equal(store_keys_stock(f->s, d, &stock), PARLEY_OK);
    assert_int_equal(stock, 6);
    /* Per upload and per stock limits: nothing changes. */
    assert_int_equal(upload(f->s, u, d, false, 100, STORE_ONETIME_PER_UPLOAD + 1, NULL),
                     PARLEY_ERR_LIMIT);
    assert_int_equal(upload(f->s, u, d, false, 100, 100, &stock), PARLEY_OK);
    assert_int_equal(stock, 106);
    assert_int_equal(upload(f->s, u, d, false, 1000, 95, NULL), PARLEY_ERR_LIMIT);
    assert_int_equal(store_keys_stock(f->s, d, &stock), PARLEY_OK);
    assert_int_equal(stock, 106);
    assert_int_equal(upload(f->s, u, d, false, 1000, 94, &stock), PARLEY_OK);
    assert_int_equal(stock, STORE_ONETIME_STOCK_MAX);

    /* The identity key is fixed for the device's life. */
    struct store_keys_upload in;
    memset(&in, 0, sizeof in);
    in.user_id = u;
    in.device_id = d;
    in.has_signed_prekey = true;
    memset(in.identity_key, 0x42, sizeof in.identity_key);
    assert_int_equal(store_keys_put(f->s, &in, NULL), PARLEY_ERR_EXISTS);
    in.onetime = NULL;
    in.n_onetime = 2;
    assert_int_equal(store_keys_put(f->s, &in, NULL), PARLEY_ERR_INVAL);
    assert_int_equal(store_keys_put(NULL, &in, NULL), PARLEY_ERR_INVAL);

    /* A new signed prekey replaces the old one; the stock stays. */
    fake_key(in.identity_key, sizeof in.identity_key, d, 0xffffffffu);
    in.n_onetime = 0;
    in.spk_id = 8;
    memset(in.spk, 0x55, sizeof in.spk);
    assert_int_equal(store_keys_put(f->s, &in, &stock), PARLEY_OK);
    assert_int_equal(stock, STORE_ONETIME_STOCK_MAX);
    struct store_bundle *b = NULL;
    size_t nb = 0;
    assert_int_equal(store_keys_take_bundles(f->s, u, d, NULL, &b, &nb), PARLEY_OK);
    assert_int_equal(nb, 1);
    assert_int_equal(b[0].spk_id, 8);
    assert_int_equal(b[0].spk[0], 0x55);
    assert_true(b[0].has_opk);
    assert_int_equal(b[0].opk_id, 1);
    free(b);

    /* Unknown and malformed devices have an empty stock. */
    assert_int_equal(store_keys_stock(f->s, missing, &stock), PARLEY_OK);
    assert_int_equal(stock, 0);
    assert_int_equal(store_keys_stock(f->s, "zz", &stock), PARLEY_OK);
    assert_int_equal(stock, 0);
}

static void test_keys_bundles_and_keyed_devices(void **state)
{
    struct fx *f = *state;
    char u[STORE_ID_LEN + 1], d1[STORE_ID_LEN + 1], d2[STORE_ID_LEN + 1], d3[STORE_ID_LEN + 1];
    new_user(f->s, "alice", u);
    new_device(f->s, u, NOW, d1, NULL);
    new_device(f->s, u, NOW + 1, d2, NULL);
    new_device(f->s, u, NOW + 2, d3, NULL); /* never uploads keys */

    struct store_bundle *b = NULL;
    size_t n = 0;
    assert_int_equal(store_keys_take_bundles(f->s, u, NULL, NULL, &b, &n), PARLEY_ERR_NOTFOUND);
    struct store_user_device *kd = NULL;
    assert_int_equal(store_keyed_devices(f->s, u, &kd, &n), PARLEY_OK);
    assert_int_equal(n, 0);
    free(kd);

    assert_int_equal(upload(f->s, u, d2, true, 10, 2, NULL), PARLEY_OK); /* opk 10, 11 */
    assert_int_equal(upload(f->s, u, d1, true, 5, 1, NULL), PARLEY_OK);  /* opk 5 */
    assert_int_equal(store_keyed_devices(f->s, u, &kd, &n), PARLEY_OK);
    assert_int_equal(n, 2); /* oldest first, d3 has no keys */
    assert_string_equal(kd[0].device_id, d1);
    assert_string_equal(kd[1].device_id, d2);
    assert_string_equal(kd[0].user_id, u);
    free(kd);

    assert_int_equal(store_keys_take_bundles(f->s, u, NULL, NULL, &b, &n), PARLEY_OK);
    assert_int_equal(n, 2);
    assert_string_equal(b[0].device_id, d1);
    assert_string_equal(b[1].device_id, d2);
    assert_string_equal(b[1].user_id, u);
    uint8_t want[STORE_KEY_BYTES];
    fake_key(want, sizeof want, d2, 0xffffffffu);
    assert_memory_equal(b[1].identity_key, want, sizeof want);
    fake_key(want, sizeof want, d2, 0xfffffffeu);
    assert_memory_equal(b[1].spk, want, sizeof want);
    assert_int_equal(b[1].spk_id, 7);
    assert_true(b[0].has_opk);
    assert_int_equal(b[0].opk_id, 5);
    assert_true(b[1].has_opk);
    assert_int_equal(b[1].opk_id, 10); /* lowest id first */
    fake_key(want, sizeof want, d2, 10);
    assert_memory_equal(b[1].opk, want, sizeof want);
    free(b);

    /* One device only; d1's stock is now empty. */
    assert_int_equal(store_keys_take_bundles(f->s, u, d1, NULL, &b, &n), PARLEY_OK);
    assert_int_equal(n, 1);
    assert_false(b[0].has_opk);
    free(b);
    assert_int_equal(store_keys_take_bundles(f->s, u, d2, NULL, &b, &n), PARLEY_OK);
    assert_int_equal(b[0].opk_id, 11);
    free(b);
    assert_int_equal(store_keys_take_bundles(f->s, u, d3, NULL, &b, &n), PARLEY_ERR_NOTFOUND);
    assert_int_equal(store_keys_take_bundles(f->s, u, "bad", NULL, &b, &n), PARLEY_ERR_NOTFOUND);
    char other[STORE_ID_LEN + 1];
    new_user(f->s, "bob", other);
    assert_int_equal(store_keys_take_bundles(f->s, other, d1, NULL, &b, &n), PARLEY_ERR_NOTFOUND);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM onetime_prekeys"), 0);
}

/* Eight threads fetch the same user's bundles at once: no one-time prekey twice. */
#define BUNDLE_THREADS 8
#define BUNDLE_ROUNDS 40

struct taker {
    struct store *s;
    const char *user;
    uint32_t got[BUNDLE_ROUNDS * 2];
    size_t n_got;
    int failures;
};

static void *taker_main(void *arg)
{
    struct taker *t = arg;
    for (int r = 0; r < BUNDLE_ROUNDS; r++) {
        struct store_bundle *b = NULL;
        size_t n = 0;
        if (store_keys_take_bundles(t->s, t->user, NULL, NULL, &b, &n) != PARLEY_OK || n != 2) {
            t->failures++;
            continue;
        }
        for (size_t i = 0; i < n; i++)
            if (b[i].has_opk)
                t->got[t->n_got++] = b[i].opk_id + (i == 0 ? 0 : 100000);
        free(b);
    }
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void test_concurrent_bundles_never_share_a_prekey(void **state)
{
    struct fx *f = *state;
    char u[STORE_ID_LEN + 1], d1[STORE_ID_LEN + 1], d2[STORE_ID_LEN + 1];
    new_user(f->s, "alice", u);
    new_device(f->s, u, NOW, d1, NULL);
    new_device(f->s, u, NOW + 1, d2, NULL);
    assert_int_equal(upload(f->s, u, d1, true, 1, 100, NULL), PARLEY_OK);
    assert_int_equal(upload(f->s, u, d1, false, 101, 100, NULL), PARLEY_OK);
    assert_int_equal(upload(f->s, u, d2, true, 1, 100, NULL), PARLEY_OK);

    /* 8 x 40 = 320 fetches per device, 200 + 100 prekeys: all are handed out, once. */
    pthread_t th[BUNDLE_THREADS];
    struct taker *t = calloc(BUNDLE_THREADS, sizeof *t);
    assert_non_null(t);
    for (int i = 0; i < BUNDLE_THREADS; i++) {
        t[i].s = f->s;
        t[i].user = u;
        assert_int_equal(pthread_create(&th[i], NULL, taker_main, &t[i]), 0);
    }
    uint32_t all[BUNDLE_THREADS * BUNDLE_ROUNDS * 2];
    size_t n = 0;
    for (int i = 0; i < BUNDLE_THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].failures, 0);
        memcpy(all + n, t[i].got, t[i].n_got * sizeof all[0]);
        n += t[i].n_got;
    }
    free(t);
    assert_int_equal(n, 300);
    qsort(all, n, sizeof all[0], cmp_u32);
    for (size_t i = 1; i < n; i++)
        assert_true(all[i] != all[i - 1]);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM onetime_prekeys"), 0);
}

/* ---- groups ---- */

static void test_groups(void **state)
{
    struct fx *f = *state;
    char a[STORE_ID_LEN + 1], b[STORE_ID_LEN + 1], c[STORE_ID_LEN + 1], x[STORE_ID_LEN + 1];
    new_user(f->s, "alice", a);
    new_user(f->s, "bob", b);
    new_user(f->s, "carol", c);
    store_id_new(x); /* nobody */

    struct store_group g = {.created_at = NOW, .updated_at = NOW};
    store_id_new(g.id);
    snprintf(g.name, sizeof g.name, "Climbing");
    struct store_group_member m[3];
    memset(m, 0, sizeof m);
    memcpy(m[0].user_id, a, sizeof m[0].user_id);
    m[0].admin = true;
    m[0].joined_at = NOW;
    memcpy(m[1].user_id, b, sizeof m[1].user_id);
    m[1].joined_at = NOW;

    assert_int_equal(store_group_create(f->s, &g, m, 0), PARLEY_ERR_INVAL);
    memcpy(m[2].user_id, a, sizeof m[2].user_id);
    assert_int_equal(store_group_create(f->s, &g, m, 3), PARLEY_ERR_INVAL); /* a twice */
    memcpy(m[2].user_id, x, sizeof m[2].user_id);
    assert_int_equal(store_group_create(f->s, &g, m, 3), PARLEY_ERR_NOTFOUND);
    assert_int_equal(store_group_create(f->s, &g, m, STORE_GROUP_MEMBERS_MAX + 1),
                     PARLEY_ERR_LIMIT);
    assert_int_equal(store_group_create(f->s, &g, m, 2), PARLEY_OK);
    assert_int_equal(store_group_create(f->s, &g, m, 2), PARLEY_ERR_EXISTS);

    struct store_group got;
    struct store_group_member *mm = NULL;
    size_t n = 0;
    assert_int_equal(store_group_get(f->s, g.id, &got, &mm, &n), PARLEY_OK);
    assert_string_equal(got.name, "Climbing");
    assert_int_equal(n, 2);
    assert_string_equal(mm[0].user_id, a);
    assert_string_equal(mm[0].username, "alice");
    assert_true(mm[0].admin);
    assert_string_equal(mm[1].username, "bob");
    assert_false(mm[1].admin);
    free(mm);
    assert_int_equal(store_group_get(f->s, g.id, &got, NULL, NULL), PARLEY_OK);
    assert_int_equal(store_group_get(f->s, x, &got, NULL, NULL), PARLEY_ERR_NOTFOUND);

    /* A second group, updated later: listed first. */
    struct store_group g2 = {.created_at = NOW + 5, .updated_at = NOW + 5};
    store_id_new(g2.id);
    snprintf(g2.name, sizeof g2.name, "Chess");
    assert_int_equal(store_group_create(f->s, &g2, m, 1), PARLEY_OK);
    struct store_group *gl = NULL;
    assert_int_equal(store_group_list(f->s, a, &gl, &n), PARLEY_OK);
    assert_int_equal(n, 2);
    assert_string_equal(gl[0].id, g2.id);
    assert_string_equal(gl[1].id, g.id);
    free(gl);
    assert_int_equal(store_group_list(f->s, c, &gl, &n), PARLEY_OK);
    assert_int_equal(n, 0);
    free(gl);

    /* Add carol; make bob admin; both update updated_at. */
    struct store_group_member mc = {.admin = false};
    memcpy(mc.user_id, c, sizeof mc.user_id);
    assert_int_equal(store_group_member_set(f->s, g.id, &mc, NOW + 10), PARLEY_OK);
    m[1].admin = true;
    assert_int_equal(store_group_member_set(f->s, g.id, &m[1], NOW + 11), PARLEY_OK);
    assert_int_equal(store_group_get(f->s, g.id, &got, &mm, &n), PARLEY_OK);
    assert_int_equal(n, 3);
    assert_true(mm[1].admin);
    assert_int_equal(mm[1].joined_at, NOW); /* unchanged by the flag */
    assert_string_equal(mm[2].user_id, c);
    assert_int_equal(mm[2].joined_at, NOW + 10);
    assert_int_equal(got.updated_at, NOW + 11);
    free(mm);
    memcpy(mc.user_id, x, sizeof mc.user_id);
    assert_int_equal(store_group_member_set(f->s, g.id, &mc, NOW), PARLEY_ERR_NOTFOUND);
    assert_int_equal(store_group_member_set(f->s, x, &m[0], NOW), PARLEY_ERR_NOTFOUND);

    /* Rename. */
    assert_int_equal(store_group_rename(f->s, g.id, "Bouldering", NOW + 12), PARLEY_OK);
    assert_int_equal(store_group_rename(f->s, x, "x", NOW), PARLEY_ERR_NOTFOUND);
    char longname[STORE_GROUP_NAME_MAX + 2];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(store_group_rename(f->s, g.id, longname, NOW), PARLEY_ERR_INVAL);
    assert_int_equal(store_group_get(f->s, g.id, &got, NULL, NULL), PARLEY_OK);
    assert_string_equal(got.name, "Bouldering");

    /* Remove members; the last one takes the group with it. */
    assert_int_equal(store_group_member_remove(f->s, g.id, x, NOW), PARLEY_ERR_NOTFOUND);
    assert_int_equal(store_group_member_remove(f->s, g.id, b, NOW + 20), PARLEY_OK);
    assert_int_equal(store_group_member_remove(f->s, g.id, b, NOW + 20), PARLEY_ERR_NOTFOUND);
    assert_int_equal(store_group_member_remove(f->s, g.id, a, NOW + 21), PARLEY_OK);
    assert_int_equal(store_group_get(f->s, g.id, &got, NULL, NULL), PARLEY_OK);
    assert_int_equal(store_group_member_remove(f->s, g.id, c, NOW + 22), PARLEY_OK);
    assert_int_equal(store_group_get(f->s, g.id, &got, NULL, NULL), PARLEY_ERR_NOTFOUND);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM chat_groups"), 1);
}

static void test_group_limit(void **state)
{
    struct fx *f = *state;
    struct store_group_member *m = calloc(STORE_GROUP_MEMBERS_MAX + 1, sizeof *m);
    assert_non_null(m);
    for (int i = 0; i <= STORE_GROUP_MEMBERS_MAX; i++) {
        char name[32];
        snprintf(name, sizeof name, "u%d", i);
        new_user(f->s, name, m[i].user_id);
        m[i].joined_at = NOW;
    }
    struct store_group g = {.created_at = NOW, .updated_at = NOW};
    store_id_new(g.id);
    assert_int_equal(store_group_create(f->s, &g, m, STORE_GROUP_MEMBERS_MAX), PARLEY_OK);
    assert_int_equal(store_group_member_set(f->s, g.id, &m[STORE_GROUP_MEMBERS_MAX], NOW),
                     PARLEY_ERR_LIMIT);
    /* An existing member can still change its flag in a full group. */
    m[3].admin = true;
    assert_int_equal(store_group_member_set(f->s, g.id, &m[3], NOW), PARLEY_OK);
    free(m);
}

/* ---- queue ---- */

/* alice (devices a1, a2 keyed, a3 without keys), bob (b1, b2 keyed). */
struct world {
    char a[STORE_ID_LEN + 1], b[STORE_ID_LEN + 1];
    char a1[STORE_ID_LEN + 1], a2[STORE_ID_LEN + 1], a3[STORE_ID_LEN + 1];
    char b1[STORE_ID_LEN + 1], b2[STORE_ID_LEN + 1];
};

static void make_world(struct store *s, struct world *w)
{
    new_user(s, "alice", w->a);
    new_user(s, "bob", w->b);
    keyed_device(s, w->a, NOW, w->a1);
    keyed_device(s, w->a, NOW + 1, w->a2);
    new_device(s, w->a, NOW + 2, w->a3, NULL);
    keyed_device(s, w->b, NOW, w->b1);
    keyed_device(s, w->b, NOW + 1, w->b2);
}

static void test_send_direct_ok_and_fetch(void **state)
{
    struct fx *f = *state;
    struct world w;
    make_world(f->s, &w);
    struct store_queue_op op;
    struct send_buf buf;
    /* alice's a1 to bob: bob's devices and alice's other keyed device. */
    char d[3][STORE_ID_LEN + 1];
    const char(*devs)[STORE_ID_LEN + 1] = (const char(*)[STORE_ID_LEN + 1]) d;
    memcpy(d[0], w.b1, sizeof d[0]);
    memcpy(d[1], w.a2, sizeof d[1]);
    memcpy(d[2], w.b2, sizeof d[2]);
    make_send(&op, &buf, w.a, w.a1, w.b, NULL, devs, 3, 1);
    assert_int_equal(send1(f->s, &op), STORE_SEND_OK);
    assert_null(op.u.send.missing);
    assert_null(op.u.send.extra);
    uint64_t id0 = buf.copies[0].envelope_id;
    assert_true(id0 > 0);
    assert_true(buf.copies[1].envelope_id > id0);
    assert_true(buf.copies[2].envelope_id > buf.copies[1].envelope_id);
    assert_string_equal(buf.copies[0].user_id, w.b);
    assert_string_equal(buf.copies[1].user_id, w.a);
    store_queue_op_cleanup(&op);
    assert_int_equal(qcount(f->s, w.b1), 1);
    assert_int_equal(qcount(f->s, w.a2), 1);
    assert_int_equal(qcount(f->s, w.a1), 0);

    struct store_envelope *e = NULL;
    size_t n = 0;
    assert_int_equal(store_queue_fetch(f->s, w.b1, 0, 10, NOW, &e, &n), PARLEY_OK);
    assert_int_equal(n, 1);
    assert_int_equal(e[0].id, id0);
    assert_int_equal(e[0].kind, STORE_ENV_MESSAGE);
    assert_string_equal(e[0].device_id, w.b1);
    assert_string_equal(e[0].user_id, w.b);
    assert_string_equal(e[0].sender_user, w.a);
    assert_string_equal(e[0].sender_username, "alice");
    assert_string_equal(e[0].sender_device, w.a1);
    assert_string_equal(e[0].group_id, "");
    assert_int_equal(e[0].created_at_ms, (int64_t)NOW * 1000);
    assert_int_equal(e[0].expires_at, NOW + TTL);
    assert_int_equal(e[0].body_len, 6);
    assert_memory_equal(e[0].body, "body-0", 6);
    uint8_t mid[STORE_MSGID_BYTES];
    memset(mid, 1, sizeof mid);
    assert_memory_equal(e[0].client_msg_id, mid, sizeof mid);
    store_envelopes_free(e, n);
    store_envelopes_free(NULL, 0);

    /* To oneself: only one's other keyed devices. */
    memcpy(d[0], w.a1, sizeof d[0]);
    make_send(&op, &buf, w.a, w.a2, w.a, NULL, devs, 1, 2);
    assert_int_equal(send1(f->s, &op), STORE_SEND_OK);

    /* Unknown recipient, and a sending device that is not the sender's. */
    char nobody[STORE_ID_LEN + 1];
    store_id_new(nobody);
    make_send(&op, &buf, w.a, w.a1, nobody, NULL, devs, 0, 3);
    assert_int_equal(send1(f->s, &op), STORE_SEND_NO_TARGET);
    make_send(&op, &buf, w.a, w.b1, w.b, NULL, devs, 0, 4);
    assert_int_equal(send1(f->s, &op), STORE_SEND_NO_TARGET);

    /* Arguments the API layer must have checked fail the whole batch. */
    make_send(&op, &buf, w.a, w.a1, w.b, w.a, devs, 0, 5); /* two targets */
    assert_int_equal(store_queue_apply(f->s, &op, 1, NOW), PARLEY_ERR_INVAL);
    make_send(&op, &buf, w.a, "x", w.b, NULL, devs, 0, 5);
    assert_int_equal(store_queue_apply(f->s, &op, 1, NOW), PARLEY_ERR_INVAL);
    op.kind = (enum store_queue_op_kind)7;
    assert_int_equal(store_queue_apply(f->s, &op, 1, NOW), PARLEY_ERR_INVAL);
}

static void test_send_stale_lists_missing_and_extra(void **state)
{
    struct fx *f = *state;
    struct world w;
    make_world(f->s, &w);
    char stranger[STORE_ID_LEN + 1];
    store_id_new(stranger);
    char d[4][STORE_ID_LEN + 1];
    memcpy(d[0], w.b1, sizeof d[0]);
    memcpy(d[1], w.a3, sizeof d[1]);     /* alice's device without keys: extra */
    memcpy(d[2], stranger, sizeof d[2]); /* nobody's device: extra, no user */
    memcpy(d[3], w.b1, sizeof d[3]);     /* named twice: extra */
    struct store_queue_op op;
    struct send_buf buf;
    make_send(&op, &buf, w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 4, 1);
    assert_int_equal(send1(f->s, &op), STORE_SEND_STALE);
    struct store_queue_send *q = &op.u.send;
    assert_int_equal(q->n_missing, 2); /* b2 and a2 */
    assert_true(has_device(q->missing, q->n_missing, w.b2));
    assert_true(has_device(q->missing, q->n_missing, w.a2));
    for (size_t i = 0; i < q->n_missing; i++)
        assert_string_equal(q->missing[i].user_id,
                            strcmp(q->missing[i].device_id, w.b2) == 0 ? w.b : w.a);
    assert_int_equal(q->n_extra, 3);
    assert_string_equal(q->extra[0].device_id, w.a3);
    assert_string_equal(q->extra[0].user_id, w.a);
    assert_string_equal(q->extra[1].device_id, stranger);
    assert_string_equal(q->extra[1].user_id, "");
    assert_string_equal(q->extra[2].device_id, w.b1);
    assert_int_equal(buf.copies[0].envelope_id, 0);
    store_queue_op_cleanup(&op);
    assert_null(q->missing);
    /* Nothing was queued, and the id was not remembered: the corrected retry passes. */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), 0);
    memcpy(d[1], w.b2, sizeof d[1]);
    memcpy(d[2], w.a2, sizeof d[2]);
    make_send(&op, &buf, w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 1);
    assert_int_equal(send1(f->s, &op), STORE_SEND_OK);
    /* Only missing: a device of bob's that appeared since. */
    char b3[STORE_ID_LEN + 1];
    keyed_device(f->s, w.b, NOW + 5, b3);
    make_send(&op, &buf, w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 2);
    assert_int_equal(send1(f->s, &op), STORE_SEND_STALE);
    assert_int_equal(op.u.send.n_missing, 1);
    assert_string_equal(op.u.send.missing[0].device_id, b3);
    assert_int_equal(op.u.send.n_extra, 0);
    store_queue_op_cleanup(&op);
}

static void test_send_duplicate(void **state)
{
    struct fx *f = *state;
    struct world w;
    make_world(f->s, &w);
    char d[3][STORE_ID_LEN + 1];
    memcpy(d[0], w.b1, sizeof d[0]);
    memcpy(d[1], w.b2, sizeof d[1]);
    memcpy(d[2], w.a2, sizeof d[2]);
    struct store_queue_op op[2];
    struct send_buf buf[2];
    make_send(&op[0], &buf[0], w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 9);
    assert_int_equal(send1(f->s, &op[0]), STORE_SEND_OK);
    /* The retry is DUPLICATE even though its copies are now wrong. */
    make_send(&op[0], &buf[0], w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 1, 9);
    assert_int_equal(send1(f->s, &op[0]), STORE_SEND_DUPLICATE);
    assert_int_equal(op[0].u.send.n_missing, 0);
    assert_int_equal(qcount(f->s, w.b1), 1);
    /* Within one batch too; another device may use the same client id. */
    make_send(&op[0], &buf[0], w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 10);
    make_send(&op[1], &buf[1], w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 10);
    assert_int_equal(store_queue_apply(f->s, op, 2, NOW), PARLEY_OK);
    assert_int_equal(op[0].u.send.status, STORE_SEND_OK);
    assert_int_equal(op[1].u.send.status, STORE_SEND_DUPLICATE);
    memcpy(d[2], w.a1, sizeof d[2]);
    make_send(&op[0], &buf[0], w.a, w.a2, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 10);
    assert_int_equal(send1(f->s, &op[0]), STORE_SEND_OK);
    assert_int_equal(qcount(f->s, w.b1), 3);
}

/* a1's message `seed` to all of bob's devices and a2, kept until expires_at, applied at
 * `now`: its status. */
static enum store_send_status send_seed(struct store *s, const struct world *w, uint8_t seed,
                                        int64_t expires_at, int64_t now)
{
    char d[3][STORE_ID_LEN + 1];
    memcpy(d[0], w->b1, sizeof d[0]);
    memcpy(d[1], w->b2, sizeof d[1]);
    memcpy(d[2], w->a2, sizeof d[2]);
    struct store_queue_op op;
    struct send_buf buf;
    make_send(&op, &buf, w->a, w->a1, w->b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, seed);
    op.u.send.expires_at = expires_at;
    assert_int_equal(store_queue_apply(s, &op, 1, now), PARLEY_OK);
    enum store_send_status status = op.u.send.status;
    store_queue_op_cleanup(&op);
    return status;
}

/* Remembered ids are known to a process that did not remember them (its filter of
 * remembered ids is built from the table), and a purged id is no longer a duplicate. */
static void test_send_duplicate_after_reopen_and_purge(void **state)
{
    struct fx *f = *state;
    struct world w;
    make_world(f->s, &w);
    assert_int_equal(send_seed(f->s, &w, 20, NOW + 1, NOW), STORE_SEND_OK);
    assert_int_equal(send_seed(f->s, &w, 21, NOW + TTL, NOW), STORE_SEND_OK);
    assert_int_equal(send_seed(f->s, &w, 22, NOW + TTL, NOW), STORE_SEND_OK);
    store_close(f->s);
    assert_int_equal(store_open_sqlite(f->path, &f->s), PARLEY_OK);
    for (uint8_t seed = 20; seed < 23; seed++)
        assert_int_equal(send_seed(f->s, &w, seed, NOW + TTL, NOW), STORE_SEND_DUPLICATE);
    struct store_envelope *notices = NULL;
    size_t n_notices = 0, n_purged = 0;
    assert_int_equal(store_queue_purge_expired(f->s, NOW + 2, 100, 60, &notices, &n_notices,
                                               &n_purged),
                     PARLEY_OK);
    store_envelopes_free(notices, n_notices);
    assert_int_equal(n_purged, 3);
    assert_int_equal(send_seed(f->s, &w, 20, NOW + TTL, NOW + 2), STORE_SEND_OK);
    assert_int_equal(send_seed(f->s, &w, 21, NOW + TTL, NOW + 2), STORE_SEND_DUPLICATE);
}

static void test_send_queue_full(void **state)
{
    struct fx *f = *state;
    struct world w;
    make_world(f->s, &w);
    char d[3][STORE_ID_LEN + 1];
    memcpy(d[0], w.b1, sizeof d[0]);
    memcpy(d[1], w.b2, sizeof d[1]);
    memcpy(d[2], w.a2, sizeof d[2]);
    struct store_queue_op op;
    struct send_buf buf;
    for (uint8_t i = 0; i < 3; i++) {
        make_send(&op, &buf, w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, i);
        op.u.send.max_queue = 3;
        assert_int_equal(send1(f->s, &op), STORE_SEND_OK);
    }
    make_send(&op, &buf, w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 50);
    op.u.send.max_queue = 3;
    assert_int_equal(send1(f->s, &op), STORE_SEND_QUEUE_FULL);
    assert_int_equal(buf.copies[0].envelope_id, 0);
    assert_int_equal(qcount(f->s, w.b1), 3);
    assert_int_equal(qcount(f->s, w.b2), 3);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), 9);
    /* One ack makes room; the refused message was not remembered. */
    struct store_envelope *e = NULL;
    size_t n = 0;
    assert_int_equal(store_queue_fetch(f->s, w.b1, 0, 1, NOW, &e, &n), PARLEY_OK);
    struct store_queue_op ack = {.kind = STORE_QOP_ACK};
    ack.u.ack.device_id = w.b1;
    ack.u.ack.ids = &e[0].id;
    ack.u.ack.n_ids = 1;
    assert_int_equal(store_queue_apply(f->s, &ack, 1, NOW), PARLEY_OK);
    store_envelopes_free(e, n);
    assert_int_equal(ack.u.ack.deleted, 1);
    assert_int_equal(qcount(f->s, w.b1), 2);
    make_send(&op, &buf, w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 50);
    op.u.send.max_queue = 3;
    assert_int_equal(send1(f->s, &op), STORE_SEND_QUEUE_FULL); /* b2 is still full */
    op.u.send.max_queue = 4;
    assert_int_equal(send1(f->s, &op), STORE_SEND_OK);
    /* queue_depth agrees with the rows. */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes e WHERE e.device_id = "
                                      "(SELECT device_id FROM queue_depth q WHERE q.n = 4)"),
                     4);
}

static void test_group_send_and_not_member(void **state)
{
    struct fx *f = *state;
    struct world w;
    make_world(f->s, &w);
    char c[STORE_ID_LEN + 1], c1[STORE_ID_LEN + 1];
    new_user(f->s, "carol", c);
    keyed_device(f->s, c, NOW, c1);
    struct store_group g = {.created_at = NOW, .updated_at = NOW};
    store_id_new(g.id);
    struct store_group_member m[2];
    memset(m, 0, sizeof m);
    memcpy(m[0].user_id, w.a, sizeof m[0].user_id);
    memcpy(m[1].user_id, w.b, sizeof m[1].user_id);
    assert_int_equal(store_group_create(f->s, &g, m, 2), PARLEY_OK);

    char d[3][STORE_ID_LEN + 1];
    memcpy(d[0], w.a2, sizeof d[0]);
    memcpy(d[1], w.b1, sizeof d[1]);
    memcpy(d[2], w.b2, sizeof d[2]);
    struct store_queue_op op;
    struct send_buf buf;
    make_send(&op, &buf, w.a, w.a1, NULL, g.id, (const char(*)[STORE_ID_LEN + 1]) d, 3, 1);
    assert_int_equal(send1(f->s, &op), STORE_SEND_OK);
    struct store_envelope *e = NULL;
    size_t n = 0;
    assert_int_equal(store_queue_fetch(f->s, w.b2, 0, 10, NOW, &e, &n), PARLEY_OK);
    assert_int_equal(n, 1);
    assert_string_equal(e[0].group_id, g.id);
    store_envelopes_free(e, n);

    /* carol is no member; an unknown group is no target. */
    memcpy(d[0], w.a1, sizeof d[0]);
    make_send(&op, &buf, c, c1, NULL, g.id, (const char(*)[STORE_ID_LEN + 1]) d, 1, 2);
    assert_int_equal(send1(f->s, &op), STORE_SEND_NOT_MEMBER);
    char nog[STORE_ID_LEN + 1];
    store_id_new(nog);
    make_send(&op, &buf, w.a, w.a1, NULL, nog, (const char(*)[STORE_ID_LEN + 1]) d, 1, 3);
    assert_int_equal(send1(f->s, &op), STORE_SEND_NO_TARGET);
    /* A group's recipients are its members' devices: sending to carol's device is stale. */
    memcpy(d[0], c1, sizeof d[0]);
    make_send(&op, &buf, w.b, w.b1, NULL, g.id, (const char(*)[STORE_ID_LEN + 1]) d, 1, 4);
    assert_int_equal(send1(f->s, &op), STORE_SEND_STALE);
    assert_int_equal(op.u.send.n_missing, 3); /* a1, a2, b2 */
    assert_int_equal(op.u.send.n_extra, 1);
    store_queue_op_cleanup(&op);
    assert_int_equal(qcount(f->s, c1), 0);
}

/* One batch mixing every outcome: only the good ops change anything. */
static void test_batch_statuses_are_independent(void **state)
{
    struct fx *f = *state;
    struct world w;
    make_world(f->s, &w);
    char d[3][STORE_ID_LEN + 1];
    memcpy(d[0], w.b1, sizeof d[0]);
    memcpy(d[1], w.b2, sizeof d[1]);
    memcpy(d[2], w.a2, sizeof d[2]);
    struct store_queue_op op[5];
    struct send_buf buf[5];
    make_send(&op[0], &buf[0], w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 1);
    make_send(&op[1], &buf[1], w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 2, 2);
    make_send(&op[2], &buf[2], w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 1);
    make_send(&op[3], &buf[3], w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 3);
    op[3].u.send.max_queue = 1; /* b1 already holds op 0's copy */
    make_send(&op[4], &buf[4], w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 4);
    assert_int_equal(store_queue_apply(f->s, op, 5, NOW), PARLEY_OK);
    assert_int_equal(op[0].u.send.status, STORE_SEND_OK);
    assert_int_equal(op[1].u.send.status, STORE_SEND_STALE);
    assert_int_equal(op[2].u.send.status, STORE_SEND_DUPLICATE);
    assert_int_equal(op[3].u.send.status, STORE_SEND_QUEUE_FULL);
    assert_int_equal(op[4].u.send.status, STORE_SEND_OK);
    assert_true(buf[4].copies[0].envelope_id > buf[0].copies[2].envelope_id);
    for (int i = 0; i < 5; i++)
        store_queue_op_cleanup(&op[i]);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), 6);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sent_msg_ids"), 2);
}

/* 1,000 sends in one call: one transaction (an injected failure in the last op undoes
 * all of them), ids increasing in commit order. */
#define BIG 1000

static void test_apply_1000_sends_one_commit(void **state)
{
    struct fx *f = *state;
    struct world w;
    make_world(f->s, &w);
    char d[3][STORE_ID_LEN + 1];
    memcpy(d[0], w.b1, sizeof d[0]);
    memcpy(d[1], w.b2, sizeof d[1]);
    memcpy(d[2], w.a2, sizeof d[2]);
    struct store_queue_op *op = calloc(BIG, sizeof *op);
    struct send_buf *buf = calloc(BIG, sizeof *buf);
    assert_non_null(op);
    assert_non_null(buf);
    for (int i = 0; i < BIG; i++) {
        make_send(&op[i], &buf[i], w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 0);
        memcpy(op[i].u.send.client_msg_id, &i, sizeof i);
    }
    /* Fault injection: the last op's insert fails inside the database. */
    raw_exec(f->path, "CREATE TRIGGER inject BEFORE INSERT ON envelopes "
                      "WHEN NEW.created_at_ms = 4242 BEGIN SELECT RAISE(ABORT, 'injected'); END");
    op[BIG - 1].u.send.created_at_ms = 4242;
    assert_int_equal(store_queue_apply(f->s, op, BIG, NOW), PARLEY_ERR_STORE);
    assert_int_equal(qcount(f->s, w.b1), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sent_msg_ids"), 0);
    raw_exec(f->path, "DROP TRIGGER inject");
    op[BIG - 1].u.send.created_at_ms = (int64_t)NOW * 1000;

    /* Speed is measured by `make bench`, never asserted here. */
    assert_int_equal(store_queue_apply(f->s, op, BIG, NOW), PARLEY_OK);
    uint64_t last = 0;
    for (int i = 0; i < BIG; i++) {
        assert_int_equal(op[i].u.send.status, STORE_SEND_OK);
        for (int k = 0; k < 3; k++) {
            assert_true(buf[i].copies[k].envelope_id > last);
            last = buf[i].copies[k].envelope_id;
        }
    }
    assert_int_equal(qcount(f->s, w.b1), BIG);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), 3 * BIG);
    free(op);
    free(buf);
}

/* P8: an envelope is deleted by its recipient device's ack, and only by it. */
static void test_P8_ack_deletes_row(void **state)
{
    struct fx *f = *state;
    struct world w;
    make_world(f->s, &w);
    char d[3][STORE_ID_LEN + 1];
    memcpy(d[0], w.b1, sizeof d[0]);
    memcpy(d[1], w.b2, sizeof d[1]);
    memcpy(d[2], w.a2, sizeof d[2]);
    struct store_queue_op op;
    struct send_buf buf;
    make_send(&op, &buf, w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 1);
    assert_int_equal(send1(f->s, &op), STORE_SEND_OK);
    uint64_t ids[3] = {buf.copies[0].envelope_id, buf.copies[1].envelope_id,
                       buf.copies[2].envelope_id};
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), 3);

    /* b2 acks all three ids: only its own copy goes. */
    struct store_queue_op ack = {.kind = STORE_QOP_ACK};
    ack.u.ack.device_id = w.b2;
    ack.u.ack.ids = ids;
    ack.u.ack.n_ids = 3;
    assert_int_equal(store_queue_apply(f->s, &ack, 1, NOW), PARLEY_OK);
    assert_int_equal(ack.u.ack.deleted, 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), 2);
    /* Someone else's envelope (and an unknown id, and a repeat) delete nothing. */
    uint64_t bogus[3] = {ids[0], 999999, UINT64_MAX};
    ack.u.ack.device_id = w.a1;
    ack.u.ack.ids = bogus;
    assert_int_equal(store_queue_apply(f->s, &ack, 1, NOW), PARLEY_OK);
    assert_int_equal(ack.u.ack.deleted, 0);
    ack.u.ack.device_id = w.b2;
    assert_int_equal(store_queue_apply(f->s, &ack, 1, NOW), PARLEY_OK);
    assert_int_equal(ack.u.ack.deleted, 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), 2);

    /* The message is gone from the server when all recipient devices have it. */
    struct store_queue_op acks[2] = {{.kind = STORE_QOP_ACK}, {.kind = STORE_QOP_ACK}};
    acks[0].u.ack.device_id = w.b1;
    acks[0].u.ack.ids = &ids[0];
    acks[0].u.ack.n_ids = 1;
    acks[1].u.ack.device_id = w.a2;
    acks[1].u.ack.ids = &ids[2];
    acks[1].u.ack.n_ids = 1;
    assert_int_equal(store_queue_apply(f->s, acks, 2, NOW), PARLEY_OK);
    assert_int_equal(acks[0].u.ack.deleted + acks[1].u.ack.deleted, 2);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), 0);
    assert_int_equal(qcount(f->s, w.b1), 0);
    /* Ids are never reused. */
    make_send(&op, &buf, w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 2);
    assert_int_equal(send1(f->s, &op), STORE_SEND_OK);
    assert_true(buf.copies[0].envelope_id > ids[2]);
}

/* n sends from alice's a1 in one batch, to `to` with copies to devs[0..n_devs); the
 * envelope ids of copy k of send i go to ids[k][i]. */
#define MANY 100
static void send_many(struct store *s, const struct world *w, const char *to,
                      const char (*devs)[STORE_ID_LEN + 1], size_t n_devs, uint8_t seed,
                      uint64_t ids[][MANY])
{
    struct store_queue_op *op = calloc(MANY, sizeof *op);
    struct send_buf *buf = calloc(MANY, sizeof *buf);
    assert_non_null(op);
    assert_non_null(buf);
    for (int i = 0; i < MANY; i++) {
        make_send(&op[i], &buf[i], w->a, w->a1, to, NULL, devs, n_devs, seed);
        memcpy(op[i].u.send.client_msg_id, &i, sizeof i);
    }
    assert_int_equal(store_queue_apply(s, op, MANY, NOW), PARLEY_OK);
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(op[i].u.send.status, STORE_SEND_OK);
        for (size_t k = 0; k < n_devs; k++)
            ids[k][i] = buf[i].copies[k].envelope_id;
    }
    free(op);
    free(buf);
}

static size_t ack_ids(struct store *s, const char *dev, const uint64_t *ids, size_t n)
{
    struct store_queue_op ack = {.kind = STORE_QOP_ACK};
    ack.u.ack.device_id = dev;
    ack.u.ack.ids = ids;
    ack.u.ack.n_ids = n;
    assert_int_equal(store_queue_apply(s, &ack, 1, NOW), PARLEY_OK);
    return ack.u.ack.deleted;
}

/* P8 with many ids per ack (apply_ack deletes them many per statement: lists, and
 * ranges for runs of consecutive ids): only the acking device's rows go, foreign,
 * unknown and repeated ids delete nothing, and counts (deleted, queue depth) are right. */
static void test_P8_ack_many_ids(void **state)
{
    struct fx *f = *state;
    struct world w;
    make_world(f->s, &w);
    char d[3][STORE_ID_LEN + 1];
    const char(*devs)[STORE_ID_LEN + 1] = (const char(*)[STORE_ID_LEN + 1]) d;
    memcpy(d[0], w.b1, sizeof d[0]);
    memcpy(d[1], w.b2, sizeof d[1]);
    memcpy(d[2], w.a2, sizeof d[2]);
    static uint64_t to_bob[3][MANY], to_self[1][MANY];
    send_many(f->s, &w, w.b, devs, 3, 1, to_bob); /* ids interleave: b1, b2, a2, b1, ... */
    memcpy(d[0], w.a2, sizeof d[0]);
    send_many(f->s, &w, w.a, devs, 1, 2, to_self); /* a2 alone: consecutive ids */
    assert_int_equal(to_self[0][MANY - 1] - to_self[0][0], MANY - 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), 4 * MANY);

    /* b1 acks its scattered ids (more than one list), a run of consecutive ids that
     * holds b2's and a2's copies too, unknown ids, and some of its own again. */
    uint64_t mixed[2 * MANY + 16];
    size_t n = 0;
    for (int i = 0; i < MANY; i++)
        mixed[n++] = to_bob[0][i];
    for (uint64_t id = to_bob[0][10]; id < to_bob[0][10] + 30; id++)
        mixed[n++] = id;
    mixed[n++] = to_self[0][MANY - 1] + 1000;
    mixed[n++] = (uint64_t)INT64_MAX;
    mixed[n++] = UINT64_MAX;
    mixed[n++] = UINT64_MAX - 1;
    for (int i = 0; i < 5; i++)
        mixed[n++] = to_bob[0][i];
    assert_int_equal(ack_ids(f->s, w.b1, mixed, n), MANY);
    assert_int_equal(qcount(f->s, w.b1), 0);
    assert_int_equal(qcount(f->s, w.b2), MANY);
    assert_int_equal(qcount(f->s, w.a2), 2 * MANY);

    /* Someone else acking a run of b2's and a2's ids (and b1's, gone) deletes nothing. */
    uint64_t run[3 * MANY];
    for (size_t i = 0; i < 3 * MANY; i++)
        run[i] = to_bob[0][0] + i;
    assert_int_equal(ack_ids(f->s, w.a1, run, 3 * MANY), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), 3 * MANY);

    /* b2 acks that same run: exactly its own copies in it go. */
    assert_int_equal(ack_ids(f->s, w.b2, run, 3 * MANY), MANY);
    assert_int_equal(qcount(f->s, w.b2), 0);
    assert_int_equal(qcount(f->s, w.a2), 2 * MANY);

    /* a2 acks half of its consecutive ids in order, then all of them in reverse: the
     * reverse order deletes only the other half. */
    assert_int_equal(ack_ids(f->s, w.a2, to_self[0], MANY / 2), MANY / 2);
    uint64_t rev[MANY];
    for (int i = 0; i < MANY; i++)
        rev[i] = to_self[0][MANY - 1 - i];
    assert_int_equal(ack_ids(f->s, w.a2, rev, MANY), MANY / 2);
    assert_int_equal(qcount(f->s, w.a2), MANY);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), MANY);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes WHERE device_id <> "
                                      "(SELECT device_id FROM envelopes LIMIT 1)"),
                     0);
    assert_int_equal(ack_ids(f->s, w.a2, NULL, 0), 0);
}

/* Does the file at path contain needle? (A missing file contains nothing.) */
static bool file_contains(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return false;
    size_t nl = strlen(needle), cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t r;
    while ((r = fread(buf + len, 1, cap - len, fp)) > 0) {
        len += r;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    fclose(fp);
    bool found = false;
    for (size_t i = 0; !found && len >= nl && i <= len - nl; i++)
        found = memcmp(buf + i, needle, nl) == 0;
    free(buf);
    return found;
}

/* P8: once acked (and the purge pass has run) the envelope's bytes are in no file: not
 * in the database (secure_delete), not in the WAL (truncated by the purge). */
static void test_P8_acked_body_gone_from_files(void **state)
{
    struct fx *f = *state;
    struct world w;
    make_world(f->s, &w);
    char d[3][STORE_ID_LEN + 1];
    memcpy(d[0], w.b1, sizeof d[0]);
    memcpy(d[1], w.b2, sizeof d[1]);
    memcpy(d[2], w.a2, sizeof d[2]);
    struct store_queue_op op;
    struct send_buf buf;
    make_send(&op, &buf, w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 1);
    const char *marker = "SEALED-MARKER-7f3a9c";
    for (int i = 0; i < 3; i++) {
        buf.copies[i].body = (const uint8_t *)marker;
        buf.copies[i].body_len = strlen(marker);
    }
    assert_int_equal(send1(f->s, &op), STORE_SEND_OK);
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    assert_true(file_contains(f->path, marker) || file_contains(wal, marker));

    uint64_t ids[3] = {buf.copies[0].envelope_id, buf.copies[1].envelope_id,
                       buf.copies[2].envelope_id};
    const char *devs[3] = {w.b1, w.b2, w.a2};
    struct store_queue_op acks[3];
    memset(acks, 0, sizeof acks);
    for (int i = 0; i < 3; i++) {
        acks[i].kind = STORE_QOP_ACK;
        acks[i].u.ack.device_id = devs[i];
        acks[i].u.ack.ids = &ids[i];
        acks[i].u.ack.n_ids = 1;
    }
    assert_int_equal(store_queue_apply(f->s, acks, 3, NOW), PARLEY_OK);
    struct store_envelope *nt = NULL;
    size_t nn = 0;
    assert_int_equal(store_queue_purge_expired(f->s, NOW, 100, 60, &nt, &nn, NULL), PARLEY_OK);
    free(nt);
    assert_false(file_contains(f->path, marker));
    assert_false(file_contains(wal, marker));
}

static void test_fetch_order_and_paging(void **state)
{
    struct fx *f = *state;
    struct world w;
    make_world(f->s, &w);
    char d[3][STORE_ID_LEN + 1];
    memcpy(d[0], w.b1, sizeof d[0]);
    memcpy(d[1], w.b2, sizeof d[1]);
    memcpy(d[2], w.a2, sizeof d[2]);
    struct store_queue_op op;
    struct send_buf buf;
    uint64_t want[10];
    for (uint8_t i = 0; i < 10; i++) {
        make_send(&op, &buf, w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, i);
        if (i == 9)
            op.u.send.expires_at = NOW + 10; /* expires early */
        assert_int_equal(send1(f->s, &op), STORE_SEND_OK);
        want[i] = buf.copies[0].envelope_id;
    }
    struct store_envelope *e = NULL;
    size_t n = 0, seen = 0;
    uint64_t after = 0;
    for (;;) {
        assert_int_equal(store_queue_fetch(f->s, w.b1, after, 4, NOW, &e, &n), PARLEY_OK);
        if (n == 0)
            break;
        assert_true(n <= 4);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(e[i].id, want[seen]);
            assert_int_equal(e[i].client_msg_id[0], seen);
            seen++;
        }
        after = e[n - 1].id;
        store_envelopes_free(e, n);
    }
    assert_null(e);
    assert_int_equal(seen, 10);
    /* Past its expiry an envelope is no longer fetched, even before the purge. */
    assert_int_equal(store_queue_fetch(f->s, w.b1, want[7], 100, NOW + 10, &e, &n), PARLEY_OK);
    assert_int_equal(n, 1);
    assert_int_equal(e[0].id, want[8]);
    store_envelopes_free(e, n);
    /* Another device's queue is its own; bad ids and a zero limit give nothing. */
    assert_int_equal(store_queue_fetch(f->s, w.a1, 0, 100, NOW, &e, &n), PARLEY_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_queue_fetch(f->s, "bad", 0, 100, NOW, &e, &n), PARLEY_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_queue_fetch(f->s, w.b1, 0, 0, NOW, &e, &n), PARLEY_OK);
    assert_int_equal(n, 0);
}

/* P9: expired envelopes are deleted and the sender's devices get one notice per
 * (message, recipient user) saying how many devices of that user missed it. */
static void test_P9_expired_envelopes_purged_with_notice(void **state)
{
    struct fx *f = *state;
    struct world w;
    make_world(f->s, &w);
    char c[STORE_ID_LEN + 1], c1[STORE_ID_LEN + 1];
    new_user(f->s, "carol", c);
    keyed_device(f->s, c, NOW, c1);
    struct store_group g = {.created_at = NOW, .updated_at = NOW};
    store_id_new(g.id);
    struct store_group_member m[3];
    memset(m, 0, sizeof m);
    memcpy(m[0].user_id, w.a, sizeof m[0].user_id);
    memcpy(m[1].user_id, w.b, sizeof m[1].user_id);
    memcpy(m[2].user_id, c, sizeof m[2].user_id);
    assert_int_equal(store_group_create(f->s, &g, m, 3), PARLEY_OK);

    /* alice's a1 sends to the group: copies to a2, b1, b2, c1. b1 fetches and acks. */
    char d[4][STORE_ID_LEN + 1];
    memcpy(d[0], w.a2, sizeof d[0]);
    memcpy(d[1], w.b1, sizeof d[1]);
    memcpy(d[2], w.b2, sizeof d[2]);
    memcpy(d[3], c1, sizeof d[3]);
    struct store_queue_op op;
    struct send_buf buf;
    make_send(&op, &buf, w.a, w.a1, NULL, g.id, (const char(*)[STORE_ID_LEN + 1]) d, 4, 0x77);
    op.u.send.expires_at = NOW + 100;
    assert_int_equal(send1(f->s, &op), STORE_SEND_OK);
    struct store_queue_op ack = {.kind = STORE_QOP_ACK};
    ack.u.ack.device_id = w.b1;
    ack.u.ack.ids = &buf.copies[1].envelope_id;
    ack.u.ack.n_ids = 1;
    assert_int_equal(store_queue_apply(f->s, &ack, 1, NOW), PARLEY_OK);
    /* bob's b1 also sends carol a message that expires later. */
    memcpy(d[0], c1, sizeof d[0]);
    memcpy(d[1], w.b2, sizeof d[1]);
    make_send(&op, &buf, w.b, w.b1, c, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 2, 0x78);
    assert_int_equal(send1(f->s, &op), STORE_SEND_OK);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), 5);

    struct store_envelope *nt = NULL;
    size_t nn = 0, purged = 0;
    assert_int_equal(store_queue_purge_expired(f->s, NOW + 99, 1000, 3600, &nt, &nn, &purged),
                     PARLEY_OK);
    assert_int_equal(purged, 0);
    assert_int_equal(nn, 0);
    free(nt);
    assert_int_equal(store_queue_purge_expired(f->s, NOW + 100, 1000, 3600, &nt, &nn, &purged),
                     PARLEY_OK);
    assert_int_equal(purged, 3); /* a2, b2, c1 */
    /* Recipient users bob (1 device) and carol (1) x alice's 2 keyed devices; alice's own
     * a2 missing its sync copy is not news to her. */
    assert_int_equal(nn, 4);
    int per_peer[3] = {0, 0, 0};
    for (size_t i = 0; i < nn; i++) {
        assert_int_equal(nt[i].kind, STORE_ENV_EXPIRED);
        assert_true(nt[i].id > 0);
        assert_string_equal(nt[i].user_id, w.a);
        assert_true(strcmp(nt[i].device_id, w.a1) == 0 || strcmp(nt[i].device_id, w.a2) == 0);
        assert_string_equal(nt[i].sender_device, w.a1);
        assert_string_equal(nt[i].sender_username, "alice");
        assert_string_equal(nt[i].group_id, g.id);
        assert_int_equal(nt[i].client_msg_id[0], 0x77);
        assert_int_equal(nt[i].expires_at, NOW + 100 + 3600);
        assert_null(nt[i].body);
        assert_int_equal(nt[i].peer_devices, 1);
        int peer = strcmp(nt[i].peer_user, w.a) == 0   ? 0
                   : strcmp(nt[i].peer_user, w.b) == 0 ? 1
                                                       : 2;
        per_peer[peer]++;
    }
    assert_int_equal(per_peer[0], 0);
    assert_int_equal(per_peer[1], 2);
    assert_int_equal(per_peer[2], 2);
    store_envelopes_free(nt, nn);
    /* On disk: the three copies are gone; bob's message and the notices remain. */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes WHERE kind = 0"), 2);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes WHERE kind = 1"), 4);
    assert_int_equal(qcount(f->s, w.a1), 2); /* notices only */
    struct store_envelope *e = NULL;
    size_t n = 0;
    assert_int_equal(store_queue_fetch(f->s, w.a1, 0, 10, NOW + 100, &e, &n), PARLEY_OK);
    assert_int_equal(n, 2);
    assert_int_equal(e[0].kind, STORE_ENV_EXPIRED);
    assert_int_equal(e[0].peer_devices, 1);
    assert_string_equal(e[0].sender_username, "alice");
    store_envelopes_free(e, n);

    /* bob's message to carol expires with two devices missing it (c1 and his b2), but
     * bob deleted his account: nobody to notify. The remembered ids go too. */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sent_msg_ids"), 1); /* bob's */
    raw_exec(f->path, "DELETE FROM users WHERE username = 'bob'");
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sent_msg_ids"), 0);
    assert_int_equal(store_queue_purge_expired(f->s, NOW + TTL + 1, 1000, 3600, &nt, &nn, &purged),
                     PARLEY_OK);
    assert_int_equal(purged, 1 + 4); /* c1's copy (b2 went with bob) + the expired notices */
    assert_int_equal(nn, 0);
    free(nt);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sent_msg_ids"), 0);
    assert_int_equal(raw_int(f->path, "SELECT coalesce(sum(n), 0) FROM queue_depth"), 0);
}

static void test_purge_counts_devices_and_limit(void **state)
{
    struct fx *f = *state;
    struct world w;
    make_world(f->s, &w);
    /* bob's b1 writes to alice: a1, a2 and his own b2 miss it. */
    char d[3][STORE_ID_LEN + 1];
    memcpy(d[0], w.a1, sizeof d[0]);
    memcpy(d[1], w.a2, sizeof d[1]);
    memcpy(d[2], w.b2, sizeof d[2]);
    struct store_queue_op op;
    struct send_buf buf;
    make_send(&op, &buf, w.b, w.b1, w.a, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 1);
    op.u.send.expires_at = NOW + 1;
    assert_int_equal(send1(f->s, &op), STORE_SEND_OK);
    make_send(&op, &buf, w.b, w.b1, w.a, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 2);
    op.u.send.expires_at = NOW + 2;
    assert_int_equal(send1(f->s, &op), STORE_SEND_OK);
    /* The same client id cannot be reused while remembered... */
    make_send(&op, &buf, w.b, w.b1, w.a, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 1);
    assert_int_equal(store_queue_apply(f->s, &op, 1, NOW), PARLEY_OK);
    assert_int_equal(op.u.send.status, STORE_SEND_DUPLICATE);

    struct store_envelope *nt = NULL;
    size_t nn = 0, purged = 0;
    assert_int_equal(store_queue_purge_expired(f->s, NOW + 10, 3, 60, &nt, &nn, &purged),
                     PARLEY_OK);
    assert_int_equal(purged, 3); /* the limit: message 1 only */
    /* peer alice (2 devices missed it) -> 1 notice to each of bob's 2 devices; his own b2
     * missing the sync copy gives none */
    assert_int_equal(nn, 2);
    for (size_t i = 0; i < nn; i++) {
        assert_int_equal(nt[i].client_msg_id[0], 1);
        assert_string_equal(nt[i].peer_user, w.a);
        assert_int_equal(nt[i].peer_devices, 2);
        assert_string_equal(nt[i].user_id, w.b);
    }
    store_envelopes_free(nt, nn);
    assert_int_equal(store_queue_purge_expired(f->s, NOW + 10, 1000, 60, &nt, &nn, &purged),
                     PARLEY_OK);
    assert_int_equal(purged, 3);
    assert_int_equal(nn, 2);
    store_envelopes_free(nt, nn);
    /* ...and can be once forgotten; a send that would expire at once is a caller bug. */
    op.u.send.expires_at = NOW + 10;
    assert_int_equal(store_queue_apply(f->s, &op, 1, NOW + 10), PARLEY_ERR_INVAL);
    op.u.send.expires_at = NOW + 100;
    assert_int_equal(store_queue_apply(f->s, &op, 1, NOW + 10), PARLEY_OK);
    assert_int_equal(op.u.send.status, STORE_SEND_OK);
    assert_int_equal(store_queue_purge_expired(f->s, NOW, 0, 60, &nt, &nn, NULL), PARLEY_ERR_INVAL);
    assert_int_equal(store_queue_purge_expired(f->s, NOW, 10, 0, &nt, &nn, NULL), PARLEY_ERR_INVAL);
}

/* Revoking a device, its session expiring, or its user's deletion removes its keys,
 * its queue, its remembered ids and (for a user) its memberships; envelopes it sent to
 * others stay. */
static void test_device_deletion_cascades(void **state)
{
    struct fx *f = *state;
    struct world w;
    make_world(f->s, &w);
    struct store_group g = {.created_at = NOW, .updated_at = NOW};
    store_id_new(g.id);
    struct store_group_member m[2];
    memset(m, 0, sizeof m);
    memcpy(m[0].user_id, w.a, sizeof m[0].user_id);
    memcpy(m[1].user_id, w.b, sizeof m[1].user_id);
    assert_int_equal(store_group_create(f->s, &g, m, 2), PARLEY_OK);
    struct store_group g2 = {.created_at = NOW, .updated_at = NOW};
    store_id_new(g2.id);
    assert_int_equal(store_group_create(f->s, &g2, &m[1], 1), PARLEY_OK); /* bob alone */

    char d[3][STORE_ID_LEN + 1];
    memcpy(d[0], w.b1, sizeof d[0]);
    memcpy(d[1], w.b2, sizeof d[1]);
    memcpy(d[2], w.a2, sizeof d[2]);
    struct store_queue_op op;
    struct send_buf buf;
    make_send(&op, &buf, w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 1);
    assert_int_equal(send1(f->s, &op), STORE_SEND_OK);
    memcpy(d[0], w.a1, sizeof d[0]);
    memcpy(d[1], w.a2, sizeof d[1]);
    memcpy(d[2], w.b1, sizeof d[2]);
    make_send(&op, &buf, w.b, w.b2, w.a, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 2);
    assert_int_equal(send1(f->s, &op), STORE_SEND_OK);

    /* Revoke b2: its keys, prekeys, queue and remembered ids go; its sent copies stay. */
    assert_int_equal(store_device_delete(f->s, w.b, w.b2), PARLEY_OK);
    char q[512];
    snprintf(q, sizeof q,
             "SELECT (SELECT count(*) FROM device_keys WHERE device_id = '%s') + "
             "(SELECT count(*) FROM onetime_prekeys WHERE device_id = '%s') + "
             "(SELECT count(*) FROM envelopes WHERE device_id = '%s') + "
             "(SELECT count(*) FROM sent_msg_ids WHERE sender_device = '%s')",
             w.b2, w.b2, w.b2, w.b2);
    assert_int_equal(raw_int(f->path, q), 0);
    assert_int_equal(qcount(f->s, w.a1), 1);
    size_t n = 0;
    assert_int_equal(store_keys_stock(f->s, w.b2, &n), PARLEY_OK);
    assert_int_equal(n, 0);
    struct store_user_device *kd = NULL;
    assert_int_equal(store_keyed_devices(f->s, w.b, &kd, &n), PARLEY_OK);
    assert_int_equal(n, 1);
    free(kd);

    /* Session expiry: a1's session is purged, so is a1 and everything of it. */
    size_t purged = 0;
    raw_exec(f->path, "UPDATE sessions SET expires_at = 5");
    assert_int_equal(store_session_purge_expired(f->s, NOW, &purged), PARLEY_OK);
    assert_true(purged >= 4);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM device_keys"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM onetime_prekeys"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM queue_depth"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sent_msg_ids"), 0);
    /* Memberships stay with the user... */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM group_members"), 3);
    /* ...and go with its deletion; bob's own group goes with its last member. */
    raw_exec(f->path, "DELETE FROM users WHERE username = 'bob'");
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM group_members"), 1);
    struct store_group got;
    assert_int_equal(store_group_get(f->s, g2.id, &got, NULL, NULL), PARLEY_ERR_NOTFOUND);
    assert_int_equal(store_group_get(f->s, g.id, &got, NULL, NULL), PARLEY_OK);
}

/* Messages from a deleted sender stay queued for their recipients, sender name "". */
static void test_sender_gone_keeps_envelopes(void **state)
{
    struct fx *f = *state;
    struct world w;
    make_world(f->s, &w);
    char d[3][STORE_ID_LEN + 1];
    memcpy(d[0], w.b1, sizeof d[0]);
    memcpy(d[1], w.b2, sizeof d[1]);
    memcpy(d[2], w.a2, sizeof d[2]);
    struct store_queue_op op;
    struct send_buf buf;
    make_send(&op, &buf, w.a, w.a1, w.b, NULL, (const char(*)[STORE_ID_LEN + 1]) d, 3, 1);
    assert_int_equal(send1(f->s, &op), STORE_SEND_OK);
    raw_exec(f->path, "DELETE FROM users WHERE username = 'alice'");
    struct store_envelope *e = NULL;
    size_t n = 0;
    assert_int_equal(store_queue_fetch(f->s, w.b1, 0, 10, NOW, &e, &n), PARLEY_OK);
    assert_int_equal(n, 1);
    assert_string_equal(e[0].sender_user, w.a);
    assert_string_equal(e[0].sender_username, "");
    store_envelopes_free(e, n);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), 2);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schema_and_upgrade_from_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_put_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_bundles_and_keyed_devices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_bundles_never_share_a_prekey, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_direct_ok_and_fetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_stale_lists_missing_and_extra, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_duplicate_after_reopen_and_purge, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_send_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_send_and_not_member, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_statuses_are_independent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_1000_sends_one_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_P8_ack_deletes_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_P8_ack_many_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_P8_acked_body_gone_from_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_order_and_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_P9_expired_envelopes_purged_with_notice, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_purge_counts_devices_and_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_deletion_cascades, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sender_gone_keeps_envelopes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
