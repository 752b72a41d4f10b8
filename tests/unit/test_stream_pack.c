/*
 * test_stream_pack.c — the hand-written ServerFrame encoder (server/stream/pack.c): its
 * bytes equal protobuf_c_message_pack's for every body case and for 12,000 random frames
 * (fixed seed: ids 0 and >= 2^63, NULL/empty/long strings, 0-5 repeated UserDevices,
 * negative times and enums, 0-length and 64 KiB ciphertexts), and decode back to the
 * fields given; a NULL body or an unknown body case is refused; pack_error, pack_message
 * and pack_stored decode to their arguments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/store.h"
#include "stream/pack.h"

#define RANDOM_FRAMES 12000
#define BIG_CT (64 * 1024)

/* ---------------------------------------------------------------- comparison helpers */

/* protobuf-c treats a NULL string as "" and decodes an absent one as "". */
static void assert_str_same(const char *a, const char *b)
{
    assert_string_equal(a ? a : "", b ? b : "");
}

static void assert_bytes_same(ProtobufCBinaryData a, ProtobufCBinaryData b)
{
    assert_int_equal(a.len, b.len);
    if (a.len)
        assert_memory_equal(a.data, b.data, a.len);
}

static void assert_devices_same(Parley__Stream__UserDevice **a, size_t na,
                                Parley__Stream__UserDevice **b, size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        assert_str_same(a[i]->user_id, b[i]->user_id);
        assert_str_same(a[i]->device_id, b[i]->device_id);
    }
}

static void assert_envelopes_same(const Parley__Stream__Envelope *a,
                                  const Parley__Stream__Envelope *b)
{
    assert_true(a->envelope_id == b->envelope_id);
    assert_int_equal((int32_t)a->kind, (int32_t)b->kind);
    assert_str_same(a->sender_user, b->sender_user);
    assert_str_same(a->sender_username, b->sender_username);
    assert_str_same(a->sender_device, b->sender_device);
    assert_bytes_same(a->client_message_id, b->client_message_id);
    assert_str_same(a->group_id, b->group_id);
    assert_true(a->server_time_ms == b->server_time_ms);
    assert_bytes_same(a->ciphertext, b->ciphertext);
    assert_int_equal(a->expired != NULL, b->expired != NULL);
    if (a->expired) {
        assert_bytes_same(a->expired->client_message_id, b->expired->client_message_id);
        assert_str_same(a->expired->recipient_user, b->expired->recipient_user);
        assert_int_equal(a->expired->devices, b->expired->devices);
    }
}

/* The decoded frame d carries the same fields as the frame f that was packed. */
static void assert_frames_same(const Parley__Stream__ServerFrame *f,
                               const Parley__Stream__ServerFrame *d)
{
    assert_true(f->id == d->id);
    assert_int_equal(f->body_case, d->body_case);
    switch (f->body_case) {
    case PARLEY__STREAM__SERVER_FRAME__BODY_SEND_RESULT:
        assert_int_equal((int32_t)f->send_result->status, (int32_t)d->send_result->status);
        assert_true(f->send_result->server_time_ms == d->send_result->server_time_ms);
        assert_devices_same(f->send_result->missing, f->send_result->n_missing,
                            d->send_result->missing, d->send_result->n_missing);
        assert_devices_same(f->send_result->extra, f->send_result->n_extra,
                            d->send_result->extra, d->send_result->n_extra);
        break;
    case PARLEY__STREAM__SERVER_FRAME__BODY_ACK_RESULT:
        assert_int_equal(f->ack_result->deleted, d->ack_result->deleted);
        break;
    case PARLEY__STREAM__SERVER_FRAME__BODY_PONG:
        assert_true(f->pong->server_time_ms == d->pong->server_time_ms);
        break;
    case PARLEY__STREAM__SERVER_FRAME__BODY_ERROR:
        assert_str_same(f->error->code, d->error->code);
        assert_str_same(f->error->message, d->error->message);
        break;
    case PARLEY__STREAM__SERVER_FRAME__BODY_ENVELOPE:
        assert_envelopes_same(f->envelope, d->envelope);
        break;
    case PARLEY__STREAM__SERVER_FRAME__BODY_DRAINED:
        assert_int_equal(f->drained->delivered, d->drained->delivered);
        break;
    default:
        break;
    }
}

/* pack_frame(f) equals protobuf-c's bytes and decodes back to f. */
static void check_frame(const Parley__Stream__ServerFrame *f)
{
    struct outmsg *m = pack_frame(f, OUT_PUSH);
    assert_non_null(m);
    assert_int_equal(m->kind, OUT_PUSH);
    size_t n = parley__stream__server_frame__get_packed_size(f);
    uint8_t *ref = malloc(n ? n : 1);
    assert_non_null(ref);
    assert_int_equal(parley__stream__server_frame__pack(f, ref), n);
    assert_int_equal(m->len, n);
    assert_memory_equal(m->data, ref, n);
    Parley__Stream__ServerFrame *d = parley__stream__server_frame__unpack(NULL, m->len, m->data);
    assert_non_null(d);
    assert_frames_same(f, d);
    parley__stream__server_frame__free_unpacked(d, NULL);
    free(ref);
    free(m);
}

/* pack_frame(f) is exactly the bytes want (written out by hand from the wire format). */
static void check_bytes(const Parley__Stream__ServerFrame *f, const uint8_t *want, size_t len)
{
    struct outmsg *m = pack_frame(f, OUT_REPLY);
    assert_non_null(m);
    assert_int_equal(m->len, len);
    assert_memory_equal(m->data, want, len);
    free(m);
    check_frame(f);
}

/* ---------------------------------------------------------------- every body case */

static void test_ack_result_zero_still_has_body(void **state)
{
    (void)state;
    Parley__Stream__ServerFrame f = PARLEY__STREAM__SERVER_FRAME__INIT;
    Parley__Stream__AckResult a = PARLEY__STREAM__ACK_RESULT__INIT;
    f.body_case = PARLEY__STREAM__SERVER_FRAME__BODY_ACK_RESULT;
    f.ack_result = &a;
    static const uint8_t zero[] = {0x1a, 0x00}; /* id 0 omitted; oneof member, length 0 */
    check_bytes(&f, zero, sizeof zero);
    f.id = 300;
    a.deleted = 0xffffffffu;
    static const uint8_t full[] = {0x08, 0xac, 0x02, 0x1a, 0x06,
                                   0x08, 0xff, 0xff, 0xff, 0xff, 0x0f};
    check_bytes(&f, full, sizeof full);
}

static void test_pong_and_drained(void **state)
{
    (void)state;
    Parley__Stream__ServerFrame f = PARLEY__STREAM__SERVER_FRAME__INIT;
    Parley__Stream__Pong p = PARLEY__STREAM__PONG__INIT;
    f.id = 1;
    f.body_case = PARLEY__STREAM__SERVER_FRAME__BODY_PONG;
    f.pong = &p;
    p.server_time_ms = -1; /* int64: ten bytes */
    static const uint8_t neg[] = {0x08, 0x01, 0x22, 0x0b, 0x08, 0xff, 0xff, 0xff, 0xff,
                                  0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    check_bytes(&f, neg, sizeof neg);
    p.server_time_ms = 0;
    check_frame(&f);
    p.server_time_ms = INT64_MAX;
    check_frame(&f);

    Parley__Stream__Drained d = PARLEY__STREAM__DRAINED__INIT;
    f.id = 0;
    f.body_case = PARLEY__STREAM__SERVER_FRAME__BODY_DRAINED;
    f.drained = &d;
    d.delivered = 127;
    static const uint8_t drained[] = {0x3a, 0x02, 0x08, 0x7f};
    check_bytes(&f, drained, sizeof drained);
    d.delivered = 0;
    check_frame(&f);
}

static void test_error_null_and_empty_strings(void **state)
{
    (void)state;
    Parley__Stream__ServerFrame f = PARLEY__STREAM__SERVER_FRAME__INIT;
    Parley__Stream__Error e = PARLEY__STREAM__ERROR__INIT;
    f.id = 9;
    f.body_case = PARLEY__STREAM__SERVER_FRAME__BODY_ERROR;
    f.error = &e;
    e.code = NULL;
    e.message = (char *)"";
    static const uint8_t empty[] = {0x08, 0x09, 0x2a, 0x00};
    check_bytes(&f, empty, sizeof empty);
    e.code = (char *)"x";
    e.message = (char *)"yz";
    static const uint8_t some[] = {0x08, 0x09, 0x2a, 0x07, 0x0a, 0x01, 'x',
                                   0x12, 0x02, 'y', 'z'};
    check_bytes(&f, some, sizeof some);
}

static void test_send_result_and_envelope(void **state)
{
    (void)state;
    Parley__Stream__ServerFrame f = PARLEY__STREAM__SERVER_FRAME__INIT;
    Parley__Stream__SendResult r = PARLEY__STREAM__SEND_RESULT__INIT;
    Parley__Stream__UserDevice u = PARLEY__STREAM__USER_DEVICE__INIT;
    Parley__Stream__UserDevice *up = &u;
    f.id = 2;
    f.body_case = PARLEY__STREAM__SERVER_FRAME__BODY_SEND_RESULT;
    f.send_result = &r;
    r.n_missing = 1;
    r.missing = &up; /* one empty UserDevice: still an element, length 0 */
    static const uint8_t sr[] = {0x08, 0x02, 0x12, 0x02, 0x1a, 0x00};
    check_bytes(&f, sr, sizeof sr);
    r.status = PARLEY__STREAM__SEND_RESULT__STATUS__STALE_DEVICES;
    r.n_extra = 1;
    r.extra = &up;
    u.user_id = (char *)"u";
    check_frame(&f);

    Parley__Stream__Envelope v = PARLEY__STREAM__ENVELOPE__INIT;
    Parley__Stream__ExpiredNotice x = PARLEY__STREAM__EXPIRED_NOTICE__INIT;
    f.id = 0;
    f.body_case = PARLEY__STREAM__SERVER_FRAME__BODY_ENVELOPE;
    f.envelope = &v;
    v.kind = PARLEY__STREAM__ENVELOPE__KIND__EXPIRED;
    v.expired = &x; /* empty notice: written, length 0 */
    static const uint8_t env[] = {0x32, 0x04, 0x10, 0x01, 0x52, 0x00};
    check_bytes(&f, env, sizeof env);
}

static void test_not_set_is_the_id_alone(void **state)
{
    (void)state;
    Parley__Stream__ServerFrame f = PARLEY__STREAM__SERVER_FRAME__INIT;
    f.id = 5;
    static const uint8_t id[] = {0x08, 0x05};
    check_bytes(&f, id, sizeof id);
}

/* Where protobuf-c would send a frame without its body, pack_frame refuses. */
static void test_null_body_or_unknown_case_refused(void **state)
{
    (void)state;
    static const Parley__Stream__ServerFrame__BodyCase cases[] = {
        PARLEY__STREAM__SERVER_FRAME__BODY_SEND_RESULT, PARLEY__STREAM__SERVER_FRAME__BODY_ACK_RESULT,
        PARLEY__STREAM__SERVER_FRAME__BODY_PONG,        PARLEY__STREAM__SERVER_FRAME__BODY_ERROR,
        PARLEY__STREAM__SERVER_FRAME__BODY_ENVELOPE,    PARLEY__STREAM__SERVER_FRAME__BODY_DRAINED,
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Parley__Stream__ServerFrame f = PARLEY__STREAM__SERVER_FRAME__INIT;
        f.id = 3;
        f.body_case = cases[i];
        assert_null(pack_frame(&f, OUT_REPLY));
    }
    Parley__Stream__ServerFrame f = PARLEY__STREAM__SERVER_FRAME__INIT;
    Parley__Stream__Pong p = PARLEY__STREAM__PONG__INIT;
    f.pong = &p;
    f.body_case = (Parley__Stream__ServerFrame__BodyCase)99;
    assert_null(pack_frame(&f, OUT_REPLY));
}

/* ---------------------------------------------------------------- random frames */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rnd(void) /* xorshift64*: fixed seed, same frames on every run */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1du;
}

static uint64_t rnd_below(uint64_t n)
{
    return rnd() % n;
}

/* Ids and counters at the varint boundaries as often as anywhere else. */
static uint64_t rnd_u64(void)
{
    static const uint64_t edge[] = {0, 1, 127, 128, 16383, 16384, UINT32_MAX,
                                    (uint64_t)1 << 32, (uint64_t)1 << 63, UINT64_MAX};
    switch (rnd_below(4)) {
    case 0:
        return edge[rnd_below(sizeof edge / sizeof edge[0])];
    case 1:
        return rnd() >> rnd_below(64);
    case 2:
        return rnd() | (uint64_t)1 << 63;
    default:
        return rnd();
    }
}

static int64_t rnd_time(void)
{
    static const int64_t edge[] = {0, -1, 1, INT64_MIN, INT64_MAX};
    if (rnd_below(4) == 0)
        return edge[rnd_below(sizeof edge / sizeof edge[0])];
    int64_t t = (int64_t)(rnd() >> (1 + rnd_below(63))); /* |t| < 2^63: negation is safe */
    return rnd_below(2) ? t : -t;
}

#define STR_MAX 200 /* past 127: two-byte lengths */
#define N_STRS 32

/* Storage for one random frame's strings, devices and bodies. */
struct gen {
    char str[N_STRS][STR_MAX + 1];
    size_t nstr;
    Parley__Stream__UserDevice ud[10];
    Parley__Stream__UserDevice *missing[5], *extra[5];
    Parley__Stream__SendResult sr;
    Parley__Stream__AckResult ack;
    Parley__Stream__Pong pong;
    Parley__Stream__Error err;
    Parley__Stream__Envelope env;
    Parley__Stream__ExpiredNotice exp;
    Parley__Stream__Drained dr;
    uint8_t msgid[16];
};

static uint8_t *big_ct; /* BIG_CT random bytes */

/* NULL, "", or 1..STR_MAX printable characters (mostly id-sized). */
static char *rnd_str(struct gen *g)
{
    uint64_t pick = rnd_below(8);
    if (pick == 0)
        return NULL;
    assert_true(g->nstr < N_STRS);
    char *s = g->str[g->nstr++];
    size_t len = pick == 1 ? 0 : pick == 2 ? 1 + rnd_below(STR_MAX) : 32;
    for (size_t i = 0; i < len; i++)
        s[i] = (char)(' ' + rnd_below(95));
    s[len] = '\0';
    return s;
}

static ProtobufCBinaryData rnd_bytes(const uint8_t *base, size_t max)
{
    ProtobufCBinaryData b = {0, NULL};
    uint64_t pick = rnd_below(4);
    b.len = pick == 0 ? 0 : pick == 1 ? max : rnd_below(max + 1);
    b.data = rnd_below(2) || b.len ? (uint8_t *)base : NULL;
    return b;
}

static int32_t rnd_enum(int32_t n_values)
{
    return rnd_below(16) == 0 ? -(int32_t)rnd_below(3) - 1 : (int32_t)rnd_below((uint64_t)n_values);
}

static size_t rnd_devices(struct gen *g, Parley__Stream__UserDevice **v, size_t first)
{
    size_t n = rnd_below(3) == 0 ? 0 : 1 + rnd_below(5);
    for (size_t i = 0; i < n; i++) {
        Parley__Stream__UserDevice *u = &g->ud[first + i];
        parley__stream__user_device__init(u);
        u->user_id = rnd_str(g);
        u->device_id = rnd_str(g);
        v[i] = u;
    }
    return n;
}

static void rnd_envelope(struct gen *g)
{
    Parley__Stream__Envelope *v = &g->env;
    parley__stream__envelope__init(v);
    for (size_t i = 0; i < sizeof g->msgid; i++)
        g->msgid[i] = (uint8_t)rnd();
    v->envelope_id = rnd_u64();
    v->kind = (Parley__Stream__Envelope__Kind)rnd_enum(2);
    v->sender_user = rnd_str(g);
    v->sender_username = rnd_str(g);
    v->sender_device = rnd_str(g);
    v->client_message_id = rnd_bytes(g->msgid, sizeof g->msgid);
    v->group_id = rnd_str(g);
    v->server_time_ms = rnd_time();
    if (v->kind == PARLEY__STREAM__ENVELOPE__KIND__MESSAGE || rnd_below(4) == 0)
        v->ciphertext = rnd_bytes(big_ct, rnd_below(8) == 0 ? BIG_CT : 300);
    if (v->kind == PARLEY__STREAM__ENVELOPE__KIND__EXPIRED && rnd_below(4) != 0) {
        parley__stream__expired_notice__init(&g->exp);
        g->exp.client_message_id = rnd_bytes(g->msgid, sizeof g->msgid);
        g->exp.recipient_user = rnd_str(g);
        g->exp.devices = (uint32_t)rnd_u64();
        v->expired = &g->exp;
    }
}

static void rnd_frame(struct gen *g, Parley__Stream__ServerFrame *f)
{
    g->nstr = 0;
    parley__stream__server_frame__init(f);
    f->id = rnd_u64();
    switch (rnd_below(7)) {
    case 0:
        parley__stream__send_result__init(&g->sr);
        g->sr.status = (Parley__Stream__SendResult__Status)rnd_enum(3);
        g->sr.server_time_ms = rnd_time();
        g->sr.n_missing = rnd_devices(g, g->missing, 0);
        g->sr.missing = g->missing;
        g->sr.n_extra = rnd_devices(g, g->extra, 5);
        g->sr.extra = g->sr.n_extra || rnd_below(2) ? g->extra : NULL;
        f->body_case = PARLEY__STREAM__SERVER_FRAME__BODY_SEND_RESULT;
        f->send_result = &g->sr;
        break;
    case 1:
        parley__stream__ack_result__init(&g->ack);
        g->ack.deleted = (uint32_t)rnd_u64();
        f->body_case = PARLEY__STREAM__SERVER_FRAME__BODY_ACK_RESULT;
        f->ack_result = &g->ack;
        break;
    case 2:
        parley__stream__pong__init(&g->pong);
        g->pong.server_time_ms = rnd_time();
        f->body_case = PARLEY__STREAM__SERVER_FRAME__BODY_PONG;
        f->pong = &g->pong;
        break;
    case 3:
        parley__stream__error__init(&g->err);
        g->err.code = rnd_str(g);
        g->err.message = rnd_str(g);
        f->body_case = PARLEY__STREAM__SERVER_FRAME__BODY_ERROR;
        f->error = &g->err;
        break;
    case 4:
    case 5: /* the frame that matters most: twice the share */
        rnd_envelope(g);
        f->body_case = PARLEY__STREAM__SERVER_FRAME__BODY_ENVELOPE;
        f->envelope = &g->env;
        break;
    default:
        parley__stream__drained__init(&g->dr);
        g->dr.delivered = (uint32_t)rnd_u64();
        f->body_case = PARLEY__STREAM__SERVER_FRAME__BODY_DRAINED;
        f->drained = &g->dr;
        break;
    }
}

static void test_random_frames_match_protobuf_c(void **state)
{
    (void)state;
    big_ct = malloc(BIG_CT);
    assert_non_null(big_ct);
    for (size_t i = 0; i < BIG_CT; i++)
        big_ct[i] = (uint8_t)rnd();
    struct gen *g = calloc(1, sizeof *g);
    assert_non_null(g);
    for (int i = 0; i < RANDOM_FRAMES; i++) {
        Parley__Stream__ServerFrame f;
        rnd_frame(g, &f);
        check_frame(&f);
    }
    free(g);
    free(big_ct);
}

/* ---------------------------------------------------------------- the helpers */

static Parley__Stream__ServerFrame *decode(const struct outmsg *m)
{
    Parley__Stream__ServerFrame *d = parley__stream__server_frame__unpack(NULL, m->len, m->data);
    assert_non_null(d);
    return d;
}

static void test_pack_error(void **state)
{
    (void)state;
    struct outmsg *m = pack_error(42, "too_large", NULL);
    assert_non_null(m);
    assert_int_equal(m->kind, OUT_REPLY);
    Parley__Stream__ServerFrame *d = decode(m);
    assert_int_equal(d->id, 42);
    assert_int_equal(d->body_case, PARLEY__STREAM__SERVER_FRAME__BODY_ERROR);
    assert_string_equal(d->error->code, "too_large");
    assert_string_equal(d->error->message, "");
    parley__stream__server_frame__free_unpacked(d, NULL);
    free(m);
}

static const uint8_t MID[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
#define USER_A "0123456789abcdef0123456789abcdef"
#define DEV_A "fedcba9876543210fedcba9876543210"
#define GROUP "00112233445566778899aabbccddeeff"

static void assert_message_envelope(const struct outmsg *m, uint64_t id, const char *group,
                                    int64_t t, const uint8_t *ct, size_t ct_len)
{
    assert_int_equal(m->kind, OUT_PUSH);
    assert_true(m->env_id == id);
    Parley__Stream__ServerFrame *d = decode(m);
    assert_int_equal(d->id, 0);
    assert_int_equal(d->body_case, PARLEY__STREAM__SERVER_FRAME__BODY_ENVELOPE);
    const Parley__Stream__Envelope *v = d->envelope;
    assert_true(v->envelope_id == id);
    assert_int_equal(v->kind, PARLEY__STREAM__ENVELOPE__KIND__MESSAGE);
    assert_string_equal(v->sender_user, USER_A);
    assert_string_equal(v->sender_username, "alice");
    assert_string_equal(v->sender_device, DEV_A);
    assert_int_equal(v->client_message_id.len, 16);
    assert_memory_equal(v->client_message_id.data, MID, 16);
    assert_string_equal(v->group_id, group);
    assert_true(v->server_time_ms == t);
    assert_int_equal(v->ciphertext.len, ct_len);
    if (ct_len)
        assert_memory_equal(v->ciphertext.data, ct, ct_len);
    assert_null(v->expired);
    parley__stream__server_frame__free_unpacked(d, NULL);
}

static void test_pack_message(void **state)
{
    (void)state;
    static const uint8_t ct[] = "opaque ciphertext";
    struct outmsg *m = pack_message(NULL, (uint64_t)1 << 63, USER_A, "alice", DEV_A, MID, NULL,
                                    1700000000123, ct, sizeof ct);
    assert_non_null(m);
    assert_null(m->pool);
    assert_message_envelope(m, (uint64_t)1 << 63, "", 1700000000123, ct, sizeof ct);
    outmsg_free(m);
    m = pack_message(NULL, 7, USER_A, "alice", DEV_A, MID, GROUP, -5, NULL, 0);
    assert_non_null(m);
    assert_message_envelope(m, 7, GROUP, -5, NULL, 0);
    outmsg_free(m);
}

/* Pushes that fit a block come from the pool and go back to it (the next one reuses the
 * block, with nothing left of the last frame); a larger one is malloc'd and freed. */
static void test_pack_message_pool(void **state)
{
    (void)state;
    static const uint8_t ct[] = "opaque ciphertext";
    static uint8_t big[OUTMSG_BLOCK];
    memset(big, 0x5a, sizeof big);
    struct block_pool pushes;
    struct block_pool *pool = &pushes;
    block_pool_init(pool, OUTMSG_BLOCK, OUTMSG_POOL_MAX);
    struct outmsg *m = pack_message(pool, 9, USER_A, "alice", DEV_A, MID, GROUP, 42, ct, sizeof ct);
    assert_non_null(m);
    assert_ptr_equal(m->pool, pool);
    assert_message_envelope(m, 9, GROUP, 42, ct, sizeof ct);
    struct outmsg *first = m;
    outmsg_free(m);
    m = pack_message(pool, 10, USER_A, "alice", DEV_A, MID, NULL, 43, NULL, 0);
    assert_ptr_equal(m, first);
    assert_null(m->next);
    assert_null(m->c);
    assert_message_envelope(m, 10, "", 43, NULL, 0);
    struct outmsg *large = pack_message(pool, 11, USER_A, "alice", DEV_A, MID, NULL, 44, big,
                                        sizeof big);
    assert_non_null(large);
    assert_null(large->pool);
    assert_message_envelope(large, 11, "", 44, big, sizeof big);
    outmsg_free(large);
    outmsg_free(m);
    outmsg_free(NULL);
    block_pool_cleanup(pool);
}

static void test_pack_stored(void **state)
{
    (void)state;
    struct store_envelope s;
    memset(&s, 0, sizeof s);
    s.id = 77;
    s.kind = STORE_ENV_MESSAGE;
    memcpy(s.sender_user, USER_A, sizeof USER_A);
    memcpy(s.sender_username, "alice", sizeof "alice");
    memcpy(s.sender_device, DEV_A, sizeof DEV_A);
    memcpy(s.client_msg_id, MID, sizeof MID);
    memcpy(s.group_id, GROUP, sizeof GROUP);
    s.created_at_ms = 1234;
    static const uint8_t ct[] = {0, 1, 2, 3};
    struct outmsg *m = pack_stored(&s, ct, sizeof ct);
    assert_non_null(m);
    assert_message_envelope(m, 77, GROUP, 1234, ct, sizeof ct);
    free(m);

    memset(&s, 0, sizeof s);
    s.id = 78;
    s.kind = STORE_ENV_EXPIRED;
    memcpy(s.client_msg_id, MID, sizeof MID);
    memcpy(s.peer_user, USER_A, sizeof USER_A);
    s.peer_devices = 3;
    s.created_at_ms = 99;
    m = pack_stored(&s, NULL, 0);
    assert_non_null(m);
    assert_int_equal(m->kind, OUT_PUSH);
    assert_int_equal(m->env_id, 78);
    Parley__Stream__ServerFrame *d = decode(m);
    const Parley__Stream__Envelope *v = d->envelope;
    assert_int_equal(d->body_case, PARLEY__STREAM__SERVER_FRAME__BODY_ENVELOPE);
    assert_int_equal(v->envelope_id, 78);
    assert_int_equal(v->kind, PARLEY__STREAM__ENVELOPE__KIND__EXPIRED);
    assert_string_equal(v->sender_user, "");
    assert_string_equal(v->group_id, "");
    assert_int_equal(v->server_time_ms, 99);
    assert_int_equal(v->ciphertext.len, 0);
    assert_non_null(v->expired);
    assert_int_equal(v->expired->client_message_id.len, 16);
    assert_memory_equal(v->expired->client_message_id.data, MID, 16);
    assert_string_equal(v->expired->recipient_user, USER_A);
    assert_int_equal(v->expired->devices, 3);
    parley__stream__server_frame__free_unpacked(d, NULL);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ack_result_zero_still_has_body),
        cmocka_unit_test(test_pong_and_drained),
        cmocka_unit_test(test_error_null_and_empty_strings),
        cmocka_unit_test(test_send_result_and_envelope),
        cmocka_unit_test(test_not_set_is_the_id_alone),
        cmocka_unit_test(test_null_body_or_unknown_case_refused),
        cmocka_unit_test(test_random_frames_match_protobuf_c),
        cmocka_unit_test(test_pack_error),
        cmocka_unit_test(test_pack_message),
        cmocka_unit_test(test_pack_message_pool),
        cmocka_unit_test(test_pack_stored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
