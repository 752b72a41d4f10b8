/* test_messaging.c — libparley messaging without a server: the end-to-end payload
 * (proto/content.proto) round-trips and keeps its fields, and the public messaging API
 * refuses bad arguments and logged-out clients with clear errors. The full flow (X3DH,
 * ratchet, stream, STALE handling, dedup) runs against a real parleyd in
 * tests/integ/test_messaging_cli.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "parley/client.h"
#include "parley/messaging.h"
#include "proto/content.pb-c.h"

static void content_roundtrip(void **state)
{
    (void)state;
    uint8_t mid[16];
    memset(mid, 0xab, sizeof mid);
    Parley__Content__Content c = PARLEY__CONTENT__CONTENT__INIT;
    Parley__Content__Text t = PARLEY__CONTENT__TEXT__INIT;
    t.body = (char *)"h\xc3\xa9llo";
    c.version = 1;
    c.message_id.data = mid;
    c.message_id.len = sizeof mid;
    c.sent_at_ms = 1700000000123;
    c.body_case = PARLEY__CONTENT__CONTENT__BODY_TEXT;
    c.text = &t;
    c.expire_after_s = 30;
    c.to_user = (char *)"0123456789abcdef0123456789abcdef";
    size_t n = parley__content__content__get_packed_size(&c);
    uint8_t *b = malloc(n);
    assert_non_null(b);
    parley__content__content__pack(&c, b);
    Parley__Content__Content *u = parley__content__content__unpack(NULL, n, b);
    assert_non_null(u);
    assert_int_equal(u->version, 1);
    assert_int_equal(u->message_id.len, 16);
    assert_memory_equal(u->message_id.data, mid, 16);
    assert_true(u->sent_at_ms == 1700000000123);
    assert_int_equal(u->body_case, PARLEY__CONTENT__CONTENT__BODY_TEXT);
    assert_string_equal(u->text->body, "h\xc3\xa9llo");
    assert_int_equal(u->expire_after_s, 30);
    assert_string_equal(u->to_user, "0123456789abcdef0123456789abcdef");
    parley__content__content__free_unpacked(u, NULL);
    /* Truncated input is refused, never half-read. */
    assert_null(parley__content__content__unpack(NULL, n - 3, b));
    free(b);
}

static void receipt_roundtrip(void **state)
{
    (void)state;
    uint8_t a[16], bb[16];
    memset(a, 1, sizeof a);
    memset(bb, 2, sizeof bb);
    ProtobufCBinaryData ids[2] = {{16, a}, {16, bb}};
    Parley__Content__Content c = PARLEY__CONTENT__CONTENT__INIT;
    Parley__Content__Receipt r = PARLEY__CONTENT__RECEIPT__INIT;
    r.type = PARLEY__CONTENT__RECEIPT__TYPE__READ;
    r.n_message_ids = 2;
    r.message_ids = ids;
    c.body_case = PARLEY__CONTENT__CONTENT__BODY_RECEIPT;
    c.receipt = &r;
    size_t n = parley__content__content__get_packed_size(&c);
    uint8_t *b = malloc(n);
    assert_non_null(b);
    parley__content__content__pack(&c, b);
    Parley__Content__Content *u = parley__content__content__unpack(NULL, n, b);
    assert_non_null(u);
    assert_int_equal(u->body_case, PARLEY__CONTENT__CONTENT__BODY_RECEIPT);
    assert_int_equal(u->receipt->type, PARLEY__CONTENT__RECEIPT__TYPE__READ);
    assert_int_equal(u->receipt->n_message_ids, 2);
    assert_memory_equal(u->receipt->message_ids[1].data, bb, 16);
    parley__content__content__free_unpacked(u, NULL);
    free(b);
}

static void api_refuses_bad_use(void **state)
{
    (void)state;
    char tpl[] = "/tmp/parley-msg-unit-XXXXXX";
    char *home = mkdtemp(tpl);
    assert_non_null(home);
    struct parley_client *c = NULL;
    assert_int_equal(parley_client_new("http://127.0.0.1:9", home, &c), PARLEY_OK);
    struct parley_messenger *m = NULL;
    assert_int_equal(parley_messenger_open(NULL, NULL, &m), PARLEY_ERR_INVAL);
    assert_int_equal(parley_messenger_open(c, NULL, &m), PARLEY_ERR_DENIED);
    assert_null(m);
    const char *msg = NULL;
    parley_client_last_error(c, NULL, NULL, &msg);
    assert_string_equal(msg, "not logged in");
    /* Nothing was written for a logged-out client. */
    char path[256];
    snprintf(path, sizeof path, "%s/local.db", home);
    assert_int_not_equal(access(path, F_OK), 0);
    assert_int_equal(parley_messenger_send_text(NULL, "bob", "hi", 0, NULL), PARLEY_ERR_INVAL);
    assert_int_equal(parley_messenger_next(NULL, 0, NULL), PARLEY_ERR_INVAL);
    struct parley_event ev;
    memset(&ev, 0, sizeof ev);
    parley_event_cleanup(&ev);
    parley_event_cleanup(NULL);
    parley_history_cleanup(NULL);
    parley_group_cleanup(NULL);
    parley_messenger_free(NULL);
    parley_client_free(c);
    rmdir(home);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(content_roundtrip),
        cmocka_unit_test(receipt_roundtrip),
        cmocka_unit_test(api_refuses_bad_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
