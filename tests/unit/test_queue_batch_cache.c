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

#include "store_test_util.h"

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
