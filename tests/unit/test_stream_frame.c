/*
 * test_stream_frame.c — the stream's frame decoder (server/stream/frame.c): valid
 * frames pass; every malformed field gets its error code; undecodable bytes and id 0
 * are FRAME_INVALID; the allocation budget stops a frame of many tiny copies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stream/frame.h"

#define DEV_A "0123456789abcdef0123456789abcdef"
#define DEV_B "fedcba9876543210fedcba9876543210"

static const struct frame_limits LIM = {1024, 0, 0};

/* Pack a Send with n copies; ids[i] per copy, ct_len bytes each. */
static uint8_t *make_send(uint64_t id, size_t msgid_len, const char *to, const char **ids,
                          size_t n, size_t ct_len, size_t *len)
{
    Parley__Stream__ClientFrame cf = PARLEY__STREAM__CLIENT_FRAME__INIT;
    Parley__Stream__Send s = PARLEY__STREAM__SEND__INIT;
    Parley__Stream__DeviceCiphertext *dc = calloc(n ? n : 1, sizeof *dc);
    Parley__Stream__DeviceCiphertext **pp = calloc(n ? n : 1, sizeof *pp);
    uint8_t *ct = calloc(ct_len ? ct_len : 1, 1);
    uint8_t msgid[32] = {0};
    for (size_t i = 0; i < n; i++) {
        parley__stream__device_ciphertext__init(&dc[i]);
        dc[i].device_id = (char *)ids[i];
        dc[i].ciphertext.data = ct;
        dc[i].ciphertext.len = ct_len;
        pp[i] = &dc[i];
    }
    s.client_message_id.data = msgid;
    s.client_message_id.len = msgid_len;
    if (to) {
        s.target_case = PARLEY__STREAM__SEND__TARGET_TO_USER;
        s.to_user = (char *)to;
    }
    s.copies = pp;
    s.n_copies = n;
    cf.id = id;
    cf.body_case = PARLEY__STREAM__CLIENT_FRAME__BODY_SEND;
    cf.send = &s;
    *len = parley__stream__client_frame__get_packed_size(&cf);
    uint8_t *out = malloc(*len);
    parley__stream__client_frame__pack(&cf, out);
    free(dc);
    free(pp);
    free(ct);
    return out;
}

static enum frame_status decode(const uint8_t *d, size_t n, const char **code, uint64_t *id)
{
    struct frame_result r;
    enum frame_status st = frame_decode(d, n, &LIM, &r);
    *code = st == FRAME_OK ? NULL : r.code;
    *id = r.id;
    frame_release(&r);
    return st;
}

static void check_send(size_t msgid_len, const char *to, const char **ids, size_t n,
                       size_t ct_len, enum frame_status want, const char *want_code)
{
    size_t len;
    uint8_t *d = make_send(42, msgid_len, to, ids, n, ct_len, &len);
    const char *code;
    uint64_t id;
    assert_int_equal(decode(d, len, &code, &id), want);
    if (want_code)
        assert_string_equal(code, want_code);
    if (want != FRAME_INVALID)
        assert_int_equal(id, 42);
    free(d);
}

static void test_send_rules(void **state)
{
    (void)state;
    const char *one[] = {DEV_A}, *two[] = {DEV_A, DEV_B}, *dup[] = {DEV_B, DEV_A, DEV_B};
    const char *bad[] = {"0123456789ABCDEF0123456789ABCDEF"};
    check_send(16, DEV_B, one, 1, 10, FRAME_OK, NULL);
    check_send(16, DEV_B, two, 2, 1024, FRAME_OK, NULL);
    check_send(15, DEV_B, one, 1, 10, FRAME_REFUSED, "invalid_field");
    check_send(17, DEV_B, one, 1, 10, FRAME_REFUSED, "invalid_field");
    check_send(16, NULL, one, 1, 10, FRAME_REFUSED, "invalid_field");
    check_send(16, "nothex", one, 1, 10, FRAME_REFUSED, "invalid_field");
    check_send(16, DEV_B, NULL, 0, 10, FRAME_REFUSED, "invalid_field");
    check_send(16, DEV_B, dup, 3, 10, FRAME_REFUSED, "invalid_field");
    check_send(16, DEV_B, bad, 1, 10, FRAME_REFUSED, "invalid_field");
    check_send(16, DEV_B, one, 1, 0, FRAME_REFUSED, "invalid_field");
    check_send(16, DEV_B, one, 1, 1025, FRAME_REFUSED, "too_large");
}

static void test_too_many_copies(void **state)
{
    (void)state;
    size_t n = FRAME_MAX_COPIES + 1;
    const char **ids = calloc(n, sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = DEV_A;
    check_send(16, DEV_B, ids, n, 1, FRAME_REFUSED, "too_large");
    free(ids);
}

static void test_invalid_bytes_and_ids(void **state)
{
    (void)state;
    const char *code;
    uint64_t id;
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(decode(junk, sizeof junk, &code, &id), FRAME_INVALID);
    assert_string_equal(code, "invalid_frame");
    assert_int_equal(decode(junk, 0, &code, &id), FRAME_INVALID);
    const uint8_t ping_id0[] = {0x22, 0x00};             /* ping, no id */
    assert_int_equal(decode(ping_id0, sizeof ping_id0, &code, &id), FRAME_INVALID);
    const uint8_t ping[] = {0x08, 0x05, 0x22, 0x00};     /* id 5, ping */
    assert_int_equal(decode(ping, sizeof ping, &code, &id), FRAME_OK);
    const uint8_t nobody[] = {0x08, 0x05};               /* id 5, no body */
    assert_int_equal(decode(nobody, sizeof nobody, &code, &id), FRAME_REFUSED);
    assert_int_equal(id, 5);
    const uint8_t ack0[] = {0x08, 0x05, 0x1a, 0x00};     /* ack with no ids */
    assert_int_equal(decode(ack0, sizeof ack0, &code, &id), FRAME_REFUSED);
    const uint8_t ack_zero[] = {0x08, 0x05, 0x1a, 0x03, 0x0a, 0x01, 0x00}; /* id 0 inside */
    assert_int_equal(decode(ack_zero, sizeof ack_zero, &code, &id), FRAME_REFUSED);
    const uint8_t ack[] = {0x08, 0x05, 0x1a, 0x04, 0x0a, 0x02, 0x07, 0x09};
    assert_int_equal(decode(ack, sizeof ack, &code, &id), FRAME_OK);
}

static void test_allocation_budget(void **state)
{
    (void)state;
    /* 500k empty copies (2 bytes each on the wire, 1 MB) would need > 30 MB decoded;
     * without the budget this would be FRAME_REFUSED (too many copies). */
    size_t n = 500000, len = 0;
    uint8_t *d = malloc(2 * n + 64);
    d[len++] = 0x08;
    d[len++] = 0x01;
    d[len++] = 0x12; /* send */
    size_t body = 2 * n;
    d[len++] = (uint8_t)(0x80 | (body & 0x7f));
    d[len++] = (uint8_t)(0x80 | ((body >> 7) & 0x7f));
    d[len++] = (uint8_t)(body >> 14);
    for (size_t i = 0; i < n; i++) {
        d[len++] = 0x22;
        d[len++] = 0x00;
    }
    const char *code;
    uint64_t id;
    assert_int_equal(decode(d, len, &code, &id), FRAME_INVALID); /* over the budget */
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_rules),
        cmocka_unit_test(test_too_many_copies),
        cmocka_unit_test(test_invalid_bytes_and_ids),
        cmocka_unit_test(test_allocation_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
