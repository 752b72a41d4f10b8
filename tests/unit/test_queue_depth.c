/*
 * test_queue_depth.c — queue_depth (the per-device count behind max_queue_per_device)
 * without its old per-row delete trigger (migration 5, issue #5): acks lower it once per
 * op, the purge per row, an account's erasure recounts the queues it leaves, and a send
 * that finds a queue full recounts before refusing, so a count left high never refuses
 * a send wrongly. Always checked against count(*) of the real rows.
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

#include "store_test_util.h"

typedef const char (*devlist)[STORE_ID_LEN + 1];

/* n sends from -> to (one device each), each expiring at expires; ids into out. */
static void send_n(struct store *s, const char *from, const char *from_dev, const char *to,
                   const char *to_dev, size_t n, int64_t expires, uint8_t seed0, uint64_t *out,
                   size_t max_queue, enum store_send_status want)
{
    for (size_t i = 0; i < n; i++) {
        struct store_queue_op op;
        struct send_buf buf;
        make_send(&op, &buf, from, from_dev, to, NULL, (devlist)to_dev, 1, (uint8_t)(seed0 + i));
        op.u.send.expires_at = expires;
        op.u.send.max_queue = max_queue;
        assert_int_equal(store_queue_apply(s, &op, 1, NOW), PARLEY_OK);
        assert_int_equal(op.u.send.status, want);
        if (out)
            out[i] = buf.copies[0].envelope_id;
        store_queue_op_cleanup(&op);
    }
}

/* alice, bob and carol, each with one keyed device. */
struct trio {
    char a[STORE_ID_LEN + 1], b[STORE_ID_LEN + 1], c[STORE_ID_LEN + 1];
    char a1[STORE_ID_LEN + 1], b1[STORE_ID_LEN + 1], c1[STORE_ID_LEN + 1];
};

static void make_trio(struct store *s, struct trio *t)
{
    new_user(s, "alice", t->a);
    new_user(s, "bob", t->b);
    new_user(s, "carol", t->c);
    keyed_device(s, t->a, NOW, t->a1);
    keyed_device(s, t->b, NOW, t->b1);
    keyed_device(s, t->c, NOW, t->c1);
}

static void assert_depth_exact(const char *path)
{
    assert_int_equal(raw_int(path, "SELECT count(*) FROM queue_depth q WHERE q.n <> "
                                   "(SELECT count(*) FROM envelopes e "
                                   "WHERE e.device_id = q.device_id)"),
                     0);
}

static void test_depth_follows_acks_purge_and_erasure(void **state)
{
    struct fx *f = *state;
    struct trio t;
    make_trio(f->s, &t);
    const char *a = t.a, *b = t.b, *c = t.c, *a1 = t.a1, *b1 = t.b1, *c1 = t.c1;
    uint64_t ids[20];
    send_n(f->s, a, a1, b, b1, 20, NOW + TTL, 1, ids, 1000, STORE_SEND_OK);
    send_n(f->s, c, c1, b, b1, 5, NOW + 5, 100, NULL, 1000, STORE_SEND_OK); /* expire soon */
    assert_int_equal(raw_int(f->path, "SELECT n FROM queue_depth"), 25);
    /* a run (one range statement) and scattered ids (a list), one unknown */
    uint64_t acked[] = {ids[0], ids[1], ids[2], ids[3], ids[4], ids[5], ids[6], ids[7], ids[8],
                        ids[12], ids[15], ids[19] + 100000};
    struct store_queue_op op = {.kind = STORE_QOP_ACK,
                                .u.ack = {.device_id = b1, .ids = acked, .n_ids = 12}};
    assert_int_equal(store_queue_apply(f->s, &op, 1, NOW), PARLEY_OK);
    assert_int_equal(op.u.ack.deleted, 11);
    assert_depth_exact(f->path);
    /* the purge takes carol's 5 (and queues notices to carol: her depth rises) */
    struct store_envelope *notices = NULL;
    size_t n_notices = 0, n_purged = 0;
    assert_int_equal(store_queue_purge_expired(f->s, NOW + 10, 100, 60, &notices, &n_notices,
                                               &n_purged),
                     PARLEY_OK);
    assert_int_equal(n_purged, 5);
    store_envelopes_free(notices, n_notices);
    assert_depth_exact(f->path);
    /* alice's erasure takes what she sent from bob's queue */
    assert_int_equal(store_user_delete(f->s, a), PARLEY_OK);
    assert_depth_exact(f->path);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes WHERE device_id = "
                                      "(SELECT id FROM devices WHERE user_id = "
                                      "(SELECT id FROM users WHERE username = 'bob'))"),
                     0);
}

static void test_full_queue_recounts_before_refusing(void **state)
{
    struct fx *f = *state;
    char a[STORE_ID_LEN + 1], b[STORE_ID_LEN + 1], a1[STORE_ID_LEN + 1], b1[STORE_ID_LEN + 1];
    new_user(f->s, "alice", a);
    new_user(f->s, "bob", b);
    keyed_device(f->s, a, NOW, a1);
    keyed_device(f->s, b, NOW, b1);
    send_n(f->s, a, a1, b, b1, 3, NOW + TTL, 1, NULL, 3, STORE_SEND_OK);
    send_n(f->s, a, a1, b, b1, 1, NOW + TTL, 50, NULL, 3, STORE_SEND_QUEUE_FULL); /* truly full */
    /* a count left too high (as a deleter that forgot it would leave it) */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE queue_depth SET n = 1000", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    send_n(f->s, a, a1, b, b1, 1, NOW + TTL, 60, NULL, 4, STORE_SEND_OK); /* 3 real rows < 4 */
    assert_depth_exact(f->path);
    assert_int_equal(raw_int(f->path, "SELECT n FROM queue_depth"), 4);
}

/* In one batch a send's depth check uses the depth read with its recipients plus the
 * rows changed since: a bound. Where the bound reaches max_queue but the queue does not
 * (rows went to another queue), the depth is read and the send passes; a queue that
 * really fills within the batch refuses the send that would overfill it. */
static void test_batch_depth_bound_reads_near_the_limit(void **state)
{
    struct fx *f = *state;
    struct trio t;
    make_trio(f->s, &t);
    const char *a = t.a, *b = t.b, *c = t.c, *a1 = t.a1, *b1 = t.b1, *c1 = t.c1;
    /* to bob, carol, carol, then bob three more times; max_queue 3 */
    const char *to[6] = {b, c, c, b, b, b};
    const char *dev[6] = {b1, c1, c1, b1, b1, b1};
    struct store_queue_op op[6];
    struct send_buf buf[6];
    for (int i = 0; i < 6; i++) {
        make_send(&op[i], &buf[i], a, a1, to[i], NULL, (devlist)dev[i], 1, (uint8_t)(70 + i));
        op[i].u.send.max_queue = 3;
    }
    assert_int_equal(store_queue_apply(f->s, op, 6, NOW), PARLEY_OK);
    /* op 3: bob's bound is 1 + four rows changed since (two envelopes, two remembered
     * ids) >= 3, yet his queue holds one: read, and accepted. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(op[i].u.send.status, STORE_SEND_OK);
    assert_int_equal(op[5].u.send.status, STORE_SEND_QUEUE_FULL); /* the fourth for bob */
    for (int i = 0; i < 6; i++)
        store_queue_op_cleanup(&op[i]);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), 5);
    assert_depth_exact(f->path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_depth_follows_acks_purge_and_erasure, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_full_queue_recounts_before_refusing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_batch_depth_bound_reads_near_the_limit, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
