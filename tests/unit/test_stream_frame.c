/*
 * test_stream_frame.c — the stream's frame decoder (server/stream/frame.c): valid
 * frames pass; every malformed field gets its error code; undecodable bytes and id 0
 * are FRAME_INVALID; the allocation budget stops a frame of many tiny copies. The
 * wire-format cases pin the decoder to protobuf-c 1.4's behaviour (packed and unpacked
 * ids, oneof last-wins, unknown fields, each malformation); the fuzzer compares the two
 * on arbitrary bytes.
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
    /* An ack may have id 0 (no AckResult wanted); nothing else may. */
    const uint8_t ack_noid[] = {0x1a, 0x04, 0x0a, 0x02, 0x07, 0x09};
    id = 99;
    assert_int_equal(decode(ack_noid, sizeof ack_noid, &code, &id), FRAME_OK);
    assert_int_equal(id, 0);
    const uint8_t ack_noid_zero[] = {0x1a, 0x03, 0x0a, 0x01, 0x00}; /* still checked */
    assert_int_equal(decode(ack_noid_zero, sizeof ack_noid_zero, &code, &id), FRAME_REFUSED);
    assert_int_equal(id, 0);
    const uint8_t send_noid[] = {0x12, 0x00};              /* send, no id */
    assert_int_equal(decode(send_noid, sizeof send_noid, &code, &id), FRAME_INVALID);
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

/* A frame built by hand, field by field. */
struct wire {
    uint8_t d[512];
    size_t n;
};

static void put_varint(struct wire *w, uint64_t v)
{
    for (; v >= 0x80; v >>= 7)
        w->d[w->n++] = (uint8_t)(v | 0x80);
    w->d[w->n++] = (uint8_t)v;
}

static void put_raw(struct wire *w, const void *p, size_t n)
{
    memcpy(w->d + w->n, p, n);
    w->n += n;
}

static void put_uint(struct wire *w, uint32_t num, uint64_t v)
{
    put_varint(w, (uint64_t)num << 3);
    put_varint(w, v);
}

static void put_bytes(struct wire *w, uint32_t num, const void *p, size_t n)
{
    put_varint(w, (uint64_t)num << 3 | 2);
    put_varint(w, n);
    put_raw(w, p, n);
}

static void put_msg(struct wire *w, uint32_t num, const struct wire *m)
{
    put_bytes(w, num, m->d, m->n);
}

static void put_copy(struct wire *w, const char *dev, const char *ct)
{
    struct wire c = {.n = 0};
    put_bytes(&c, 1, dev, strlen(dev));
    put_bytes(&c, 2, ct, strlen(ct));
    put_msg(w, 4, &c);
}

/* A Send body with a 16-byte message id, to_user DEV_B and one copy for DEV_A. */
static void put_send_body(struct wire *s)
{
    static const uint8_t msgid[16] = {1, 2, 3};
    put_bytes(s, 1, msgid, sizeof msgid);
    put_bytes(s, 2, DEV_B, 32);
    put_copy(s, DEV_A, "ct");
}

static void test_ack_packed_and_unpacked(void **state)
{
    (void)state;
    struct wire ack = {.n = 0}, pk = {.n = 0}, f = {.n = 0};
    put_uint(&ack, 1, 7);                      /* unpacked */
    put_varint(&pk, 300);
    put_varint(&pk, UINT64_MAX);               /* 10 bytes */
    put_msg(&ack, 1, &pk);                     /* packed */
    put_bytes(&ack, 1, "", 0);                 /* an empty packed run */
    put_uint(&ack, 1, 9);
    put_uint(&f, 1, 5);
    put_msg(&f, 3, &ack);
    struct frame_result r;
    assert_int_equal(frame_decode(f.d, f.n, &LIM, &r), FRAME_OK);
    const uint64_t want[] = {7, 300, UINT64_MAX, 9};
    assert_int_equal(r.cf->body_case, PARLEY__STREAM__CLIENT_FRAME__BODY_ACK);
    assert_int_equal(r.cf->ack->n_envelope_ids, 4);
    assert_memory_equal(r.cf->ack->envelope_ids, want, sizeof want);
    frame_release(&r);
}

static void test_oneof_last_wins(void **state)
{
    (void)state;
    struct wire send = {.n = 0}, ack = {.n = 0}, f = {.n = 0};
    put_send_body(&send);
    put_bytes(&send, 3, DEV_A, 32);            /* group_id replaces to_user */
    put_uint(&ack, 1, 3);
    put_uint(&f, 1, 5);
    put_msg(&f, 3, &ack);
    put_bytes(&f, 4, "", 0);                   /* ping replaces ack */
    put_msg(&f, 2, &send);                     /* send replaces ping */
    put_uint(&f, 1, 6);                        /* the last id wins */
    struct frame_result r;
    assert_int_equal(frame_decode(f.d, f.n, &LIM, &r), FRAME_OK);
    assert_int_equal(r.id, 6);
    assert_int_equal(r.cf->body_case, PARLEY__STREAM__CLIENT_FRAME__BODY_SEND);
    assert_int_equal(r.cf->send->target_case, PARLEY__STREAM__SEND__TARGET_GROUP_ID);
    assert_string_equal(r.cf->send->group_id, DEV_A);
    assert_int_equal(r.cf->send->n_copies, 1);
    frame_release(&r);
    /* A body given twice is replaced, not merged (protobuf-c): the second Send has no
     * message id, so the frame is refused. */
    struct wire bare = {.n = 0}, g = {.n = 0};
    put_bytes(&bare, 2, DEV_B, 32);
    put_copy(&bare, DEV_A, "ct");
    put_uint(&g, 1, 5);
    put_msg(&g, 2, &send);
    put_msg(&g, 2, &bare);
    assert_int_equal(frame_decode(g.d, g.n, &LIM, &r), FRAME_REFUSED);
    assert_int_equal(r.cf->send->client_message_id.len, 0);
    frame_release(&r);
}

static void test_unknown_fields_and_borrowing(void **state)
{
    (void)state;
    static const uint8_t junk8[8] = {0}, pad0[] = {0x80, 0x00, 0x01}; /* padded field 0 */
    struct wire send = {.n = 0}, copy = {.n = 0}, f = {.n = 0};
    put_uint(&send, 99, 1);                                 /* varint */
    put_varint(&send, 100 << 3 | 1), put_raw(&send, junk8, 8); /* 64-bit */
    put_varint(&send, 101 << 3 | 5), put_raw(&send, junk8, 4); /* 32-bit */
    put_bytes(&send, 536870911, "x", 1);                    /* the largest field number */
    put_raw(&send, pad0, sizeof pad0);
    put_send_body(&send);
    put_bytes(&copy, 1, DEV_B, 32);
    put_bytes(&copy, 2, "ciphertext", 10);
    put_uint(&copy, 3, 1);
    put_msg(&send, 4, &copy);
    put_bytes(&f, 5, "?", 1);
    put_uint(&f, 1, 5);
    put_msg(&f, 2, &send);
    struct frame_result r;
    assert_int_equal(frame_decode(f.d, f.n, &LIM, &r), FRAME_OK);
    const Parley__Stream__Send *s = r.cf->send;
    assert_int_equal(s->n_copies, 2);
    assert_string_equal(s->copies[1]->device_id, DEV_B);
    /* bytes fields point into the frame (frame.h) */
    const uint8_t *ct = s->copies[1]->ciphertext.data;
    assert_true(ct > f.d && ct + 10 <= f.d + f.n);
    assert_memory_equal(ct, "ciphertext", 10);
    assert_true(s->client_message_id.data > f.d && s->client_message_id.data < f.d + f.n);
    frame_release(&r);
    /* Strings are neither checked for UTF-8 nor cut at a NUL; C sees the prefix. */
    struct wire t = {.n = 0}, g = {.n = 0};
    put_bytes(&t, 2, "\xff\xfe\0abc", 6);
    put_uint(&g, 1, 5);
    put_msg(&g, 2, &t);
    assert_int_equal(frame_decode(g.d, g.n, &LIM, &r), FRAME_REFUSED);
    assert_string_equal(r.cf->send->to_user, "\xff\xfe");
    frame_release(&r);
}

/* id 5 followed by the given bytes inside a body (num) or at the top (num 0). */
static enum frame_status decode_tail(uint32_t num, const uint8_t *b, size_t n)
{
    struct wire f = {.n = 0};
    put_uint(&f, 1, 5);
    if (num)
        put_bytes(&f, num, b, n);
    else
        put_raw(&f, b, n);
    struct frame_result r;
    enum frame_status st = frame_decode(f.d, f.n, &LIM, &r);
    assert_true(st != FRAME_INVALID || r.cf == NULL || r.id == 0);
    frame_release(&r);
    return st;
}

#define MALFORMED(num, ...)                                                                      \
    do {                                                                                          \
        const uint8_t b_[] = {__VA_ARGS__};                                                       \
        assert_int_equal(decode_tail(num, b_, sizeof b_), FRAME_INVALID);                         \
    } while (0)

static void test_malformed(void **state)
{
    (void)state;
    MALFORMED(0, 0x08);                                   /* key without a value */
    MALFORMED(0, 0x08, 0x80);                             /* truncated varint */
    MALFORMED(0, 0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01);
    MALFORMED(0, 0x88);                                   /* truncated key */
    MALFORMED(0, 0xf8, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00); /* key of 6 bytes */
    MALFORMED(0, 0x00, 0x00);                             /* field 0 */
    MALFORMED(0, 0x05, 0, 0, 0, 0);                       /* field 0, 32-bit */
    MALFORMED(0, 0x2b, 0x2c);                             /* group (wire types 3, 4) */
    MALFORMED(0, 0x2c);
    MALFORMED(0, 0x2e, 0x00);                             /* wire types 6, 7 */
    MALFORMED(0, 0x2f, 0x00);
    MALFORMED(0, 0x29, 1, 2, 3, 4, 5, 6, 7);              /* short 64-bit */
    MALFORMED(0, 0x2d, 1, 2, 3);                          /* short 32-bit */
    MALFORMED(0, 0x2a, 0x02, 0x00);                       /* length past the end */
    MALFORMED(0, 0x2a, 0x80, 0x80, 0x80, 0x80, 0x10);     /* length 2^32 (> INT_MAX) */
    MALFORMED(0, 0x2a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00); /* length prefix of 6 bytes */
    MALFORMED(0, 0x0a, 0x00);                             /* id, length-delimited */
    MALFORMED(0, 0x09, 1, 2, 3, 4, 5, 6, 7, 8);           /* id, 64-bit */
    MALFORMED(0, 0x10, 0x00);                             /* send as a varint */
    MALFORMED(0, 0x1d, 0, 0, 0, 0);                       /* ack as 32-bit */
    MALFORMED(4, 0x08);                                   /* bad bytes in a ping */
    MALFORMED(4, 0x0b);                                   /* group in a ping */
    MALFORMED(3, 0x09, 1, 2, 3, 4, 5, 6, 7, 8);           /* envelope id as fixed64 */
    MALFORMED(3, 0x0a, 0x01, 0x80);                       /* packed run, truncated */
    MALFORMED(3, 0x0a, 0x0b, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01);
    MALFORMED(3, 0x00, 0x00);                             /* field 0 in an ack */
    MALFORMED(2, 0x08, 0x01);                             /* client_message_id as varint */
    MALFORMED(2, 0x10, 0x01);                             /* to_user as varint */
    MALFORMED(2, 0x1d, 0, 0, 0, 0);                       /* group_id as 32-bit */
    MALFORMED(2, 0x20, 0x01);                             /* a copy as varint */
    MALFORMED(2, 0x22, 0x02, 0x08, 0x01);                 /* device_id as varint */
    MALFORMED(2, 0x22, 0x02, 0x10, 0x01);                 /* ciphertext as varint */
    MALFORMED(2, 0x22, 0x02, 0x0a, 0x05);                 /* device_id past the copy */
    /* A body that a later one replaces must still decode (protobuf-c parses each). */
    MALFORMED(0, 0x1a, 0x01, 0x08, 0x22, 0x00);           /* bad ack, then ping */
    /* Allowed oddities of protobuf-c: a padded key of field 0 is an unknown field; a
     * 10-byte varint keeps its low 64 bits. */
    const uint8_t pad0[] = {0x80, 0x00, 0x07, 0x22, 0x00};
    assert_int_equal(decode_tail(0, pad0, sizeof pad0), FRAME_OK);
    const uint8_t long_id[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
                               0x22, 0x00};
    assert_int_equal(decode_tail(0, long_id, sizeof long_id), FRAME_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_rules),
        cmocka_unit_test(test_too_many_copies),
        cmocka_unit_test(test_invalid_bytes_and_ids),
        cmocka_unit_test(test_allocation_budget),
        cmocka_unit_test(test_ack_packed_and_unpacked),
        cmocka_unit_test(test_oneof_last_wins),
        cmocka_unit_test(test_unknown_fields_and_borrowing),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
