/*
 * test_queue_writeback.c — the store's half of write-back (store_messaging.h "Write-back",
 * server/stream/held.h) against a real database file: a held copy gets its envelope id
 * but no row and is not remembered for DUPLICATE; a PUT writes it later under that id
 * and remembers it; a PUT for a device that went meanwhile writes nothing; ids increase
 * across held and written copies and are never given again, not even after a reopen.
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

struct pair {
    char a[STORE_ID_LEN + 1], b[STORE_ID_LEN + 1];
    char a1[STORE_ID_LEN + 1], b1[STORE_ID_LEN + 1];
};

static void make_pair(struct store *s, struct pair *p)
{
    new_user(s, "alice", p->a);
    new_user(s, "bob", p->b);
    keyed_device(s, p->a, NOW, p->a1);
    keyed_device(s, p->b, NOW, p->b1);
}

/* One send a1 -> b1 (held or not) in its own batch; returns the copy's id. */
static uint64_t send_one(struct store *s, const struct pair *p, bool hold, uint8_t seed,
                         enum store_send_status want)
{
    struct store_queue_op op;
    struct send_buf buf;
    make_send(&op, &buf, p->a, p->a1, p->b, NULL, (const char(*)[STORE_ID_LEN + 1])p->b1, 1,
              seed);
    buf.copies[0].hold = hold;
    assert_int_equal(store_queue_apply(s, &op, 1, NOW), PARLEY_OK);
    assert_int_equal(op.u.send.status, want);
    assert_string_equal(buf.copies[0].user_id, want == STORE_SEND_OK ? p->b : "");
    store_queue_op_cleanup(&op);
    return buf.copies[0].envelope_id;
}

/* The envelope a held copy of send_one(seed) becomes when written. */
static void held_envelope(const struct pair *p, uint64_t id, uint8_t seed, const char *body,
                          struct store_envelope *e)
{
    memset(e, 0, sizeof *e);
    e->id = id;
    e->kind = STORE_ENV_MESSAGE;
    snprintf(e->device_id, sizeof e->device_id, "%s", p->b1);
    snprintf(e->user_id, sizeof e->user_id, "%s", p->b);
    snprintf(e->sender_user, sizeof e->sender_user, "%s", p->a);
    snprintf(e->sender_device, sizeof e->sender_device, "%s", p->a1);
    memset(e->client_msg_id, seed, sizeof e->client_msg_id);
    e->created_at_ms = (int64_t)NOW * 1000;
    e->expires_at = NOW + TTL;
    e->body = (uint8_t *)body;
    e->body_len = strlen(body);
}

static bool put_one(struct store *s, const struct store_envelope *e)
{
    struct store_queue_op op = {.kind = STORE_QOP_PUT, .u.put.env = e};
    assert_int_equal(store_queue_apply(s, &op, 1, NOW), PARLEY_OK);
    return op.u.put.stored;
}

static void test_held_copy_gets_an_id_but_no_row(void **state)
{
    struct fx *f = *state;
    struct pair p;
    make_pair(f->s, &p);
    uint64_t id1 = send_one(f->s, &p, true, 1, STORE_SEND_OK);
    assert_true(id1 > 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), 0);
    /* not in the queue, so not remembered: a resend (after a crash lost the held copy)
     * is accepted again */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sent_msg_ids"), 0);
    assert_true((uint64_t)raw_int(f->path, "SELECT seq FROM sqlite_sequence "
                                           "WHERE name = 'envelopes'") >= id1);
    uint64_t id2 = send_one(f->s, &p, true, 1, STORE_SEND_OK);
    uint64_t id3 = send_one(f->s, &p, false, 2, STORE_SEND_OK);
    uint64_t id4 = send_one(f->s, &p, true, 3, STORE_SEND_OK);
    assert_true(id1 < id2 && id2 < id3 && id3 < id4);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sent_msg_ids"), 1);
}

static void test_put_writes_under_the_given_id_and_remembers(void **state)
{
    struct fx *f = *state;
    struct pair p;
    make_pair(f->s, &p);
    uint64_t held = send_one(f->s, &p, true, 7, STORE_SEND_OK);
    uint64_t later = send_one(f->s, &p, false, 8, STORE_SEND_OK);
    struct store_envelope e;
    held_envelope(&p, held, 7, "late body", &e);
    assert_true(put_one(f->s, &e));
    assert_false(put_one(f->s, &e)); /* written already (a retried batch): left as is */
    struct store_envelope *got = NULL;
    size_t n = 0;
    assert_int_equal(store_queue_fetch(f->s, p.b1, 0, 10, NOW, &got, &n), PARLEY_OK);
    assert_int_equal(n, 2);
    assert_int_equal(got[0].id, held); /* id order, although written after `later` */
    assert_int_equal(got[1].id, later);
    assert_int_equal(got[0].body_len, strlen("late body"));
    assert_memory_equal(got[0].body, "late body", got[0].body_len);
    assert_string_equal(got[0].sender_username, "alice");
    store_envelopes_free(got, n);
    assert_int_equal(raw_int(f->path, "SELECT n FROM queue_depth"), 2);
    /* written, so remembered: the resend is a duplicate now */
    assert_int_equal(send_one(f->s, &p, true, 7, STORE_SEND_DUPLICATE), 0);
    /* an ack deletes it like any row */
    struct store_queue_op ack = {.kind = STORE_QOP_ACK,
                                 .u.ack = {.device_id = p.b1, .ids = &held, .n_ids = 1}};
    assert_int_equal(store_queue_apply(f->s, &ack, 1, NOW), PARLEY_OK);
    assert_int_equal(ack.u.ack.deleted, 1);
}

static void test_put_for_a_device_gone_meanwhile_writes_nothing(void **state)
{
    struct fx *f = *state;
    struct pair p;
    make_pair(f->s, &p);
    uint64_t held = send_one(f->s, &p, true, 9, STORE_SEND_OK);
    assert_int_equal(store_device_delete(f->s, p.b, p.b1), PARLEY_OK);
    struct store_envelope e;
    held_envelope(&p, held, 9, "for nobody", &e);
    assert_false(put_one(f->s, &e));
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM envelopes"), 0);
    /* and the sender's device gone too: nothing to remember, no error */
    assert_int_equal(store_device_delete(f->s, p.a, p.a1), PARLEY_OK);
    assert_false(put_one(f->s, &e));
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sent_msg_ids"), 0);
}

static void test_put_refuses_malformed_envelopes(void **state)
{
    struct fx *f = *state;
    struct pair p;
    make_pair(f->s, &p);
    struct store_envelope e;
    held_envelope(&p, 0, 1, "x", &e); /* no id */
    struct store_queue_op op = {.kind = STORE_QOP_PUT, .u.put.env = &e};
    assert_int_equal(store_queue_apply(f->s, &op, 1, NOW), PARLEY_ERR_INVAL);
    held_envelope(&p, 5, 1, "x", &e);
    e.kind = STORE_ENV_EXPIRED;
    assert_int_equal(store_queue_apply(f->s, &op, 1, NOW), PARLEY_ERR_INVAL);
    op.u.put.env = NULL;
    assert_int_equal(store_queue_apply(f->s, &op, 1, NOW), PARLEY_ERR_INVAL);
}

static void test_ids_never_given_twice_after_reopen(void **state)
{
    struct fx *f = *state;
    struct pair p;
    make_pair(f->s, &p);
    uint64_t held = send_one(f->s, &p, true, 1, STORE_SEND_OK); /* never written */
    store_close(f->s);
    assert_int_equal(store_open_sqlite(f->path, &f->s), PARLEY_OK);
    uint64_t next = send_one(f->s, &p, false, 2, STORE_SEND_OK);
    assert_true(next > held);
    /* Purge notices use AUTOINCREMENT: they too come after every id given out. */
    uint64_t after = send_one(f->s, &p, true, 3, STORE_SEND_OK);
    assert_true(after > next);
    struct store_queue_op op;
    struct send_buf buf;
    make_send(&op, &buf, p.a, p.a1, p.b, NULL, (const char(*)[STORE_ID_LEN + 1])p.b1, 1, 4);
    op.u.send.expires_at = NOW + 1;
    assert_int_equal(store_queue_apply(f->s, &op, 1, NOW), PARLEY_OK);
    struct store_envelope *notices = NULL;
    size_t n_notices = 0, n_purged = 0;
    assert_int_equal(store_queue_purge_expired(f->s, NOW + 2, 100, 60, &notices, &n_notices,
                                               &n_purged),
                     PARLEY_OK);
    assert_int_equal(n_notices, 1);
    assert_true(notices[0].id > buf.copies[0].envelope_id);
    assert_true(buf.copies[0].envelope_id > after);
    store_envelopes_free(notices, n_notices);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_held_copy_gets_an_id_but_no_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_writes_under_the_given_id_and_remembers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_put_for_a_device_gone_meanwhile_writes_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_refuses_malformed_envelopes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids_never_given_twice_after_reopen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
