/*
 * pack.c — see pack.h. ServerFrames are encoded by hand, straight into the outmsg's
 * buffer: one allocation per frame.
 *
 * Why by hand: protobuf-c's get_packed_size + pack walk the field descriptors twice,
 * recursively. On the relay benchmark (parleyd under callgrind, 20 pairs relaying; per
 * relayed message: the Envelope push, the SendResult, a share of an AckResult) they cost
 * ~3,300 user-space instructions per message (~1,900 in the named protobuf_c_* functions,
 * ~1,300 in libprotobuf-c's static helpers, ~100 memmove of length prefixes); this encoder
 * costs ~700, and the whole message went from ~21,500 to ~19,250. The ServerFrame schema
 * is small and fixed (proto/stream.proto), so its encoder is a few lines per message type.
 *
 * Contract: the bytes are IDENTICAL to protobuf_c_message_pack's (protobuf-c 1.4) for every
 * valid frame, as tests/unit/test_stream_pack.c checks on 10,000+ random frames: fields in
 * field-number order; proto3 scalars equal to their default (0, enum 0, "" or NULL string,
 * empty bytes) omitted; int64 and negative enums as 10-byte two's-complement varints; a
 * oneof member written whenever its case is set and its pointer non-NULL, even if empty;
 * the optional submessage Envelope.expired written when non-NULL. Any change to
 * stream.proto's ServerFrame side must be mirrored here (the test will fail otherwise).
 *
 * Where we part from protobuf-c: a body_case we do not know, or a known case with a NULL
 * body pointer, makes pack_frame return NULL (the callers treat it like OOM). protobuf-c
 * would silently send a frame with the id and no body, which a client cannot tell from a
 * malformed answer. BODY__NOT_SET is packed as protobuf-c does (the id alone). Elements of
 * repeated fields must be non-NULL (protobuf-c dereferences them too).
 *
 * How: each message has ONE encoder function, used by both passes: the size pass
 * (frame_size) and, after the malloc, the write pass (frame_write). The encoders are
 * force-inlined into those two, so each pass is compiled with its mode known (the size
 * pass is only additions and strlen; no call per field). The write pass fills the buffer
 * from its END backwards, so a submessage's length is known once its fields are written
 * and its length prefix goes in front of them: nothing is sized twice. Hence every
 * encoder emits its fields from the highest field number down.
 */
#include "pack.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

#define ENC static inline __attribute__((always_inline))

enum { WIRE_VARINT = 0, WIRE_LEN = 2 };

/* The encoder: counts the bytes emitted so far (n) and, when end is set, writes them
 * backwards so that the last byte emitted is the first one of the buffer ending at end. */
struct enc {
    uint8_t *end; /* NULL: size pass */
    size_t n;
};

ENC size_t varint_size(uint64_t v)
{
    if (v < 0x80) /* most tags, lengths and counters: skip the arithmetic */
        return 1;
    /* bits needed, 7 per byte: 2..10 bytes */
    return (size_t)(70 - __builtin_clzll(v)) / 7;
}

ENC void put_varint(struct enc *e, uint64_t v)
{
    e->n += varint_size(v);
    if (!e->end)
        return;
    uint8_t *p = e->end - e->n;
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p = (uint8_t)v;
}

ENC void put_tag(struct enc *e, unsigned field, unsigned wire)
{
    put_varint(e, (uint64_t)field << 3 | wire);
}

/* A proto3 varint field (uint32/uint64/int64/enum, see wire_int for the signed ones):
 * omitted when 0. */
ENC void put_uint(struct enc *e, unsigned field, uint64_t v)
{
    if (!v)
        return;
    put_varint(e, v);
    put_tag(e, field, WIRE_VARINT);
}

/* A proto3 string or bytes field: omitted when empty. */
ENC void put_delimited(struct enc *e, unsigned field, const void *data, size_t len)
{
    if (!len)
        return;
    e->n += len;
    if (e->end)
        memcpy(e->end - e->n, data, len);
    put_varint(e, len);
    put_tag(e, field, WIRE_LEN);
}

ENC void put_string(struct enc *e, unsigned field, const char *s)
{
    if (s && *s)
        put_delimited(e, field, s, strlen(s));
}

ENC void put_bytes(struct enc *e, unsigned field, ProtobufCBinaryData b)
{
    put_delimited(e, field, b.data, b.len);
}

/* A submessage field is written (possibly with length 0) whenever its pointer is
 * non-NULL: `size_t at = e->n;`, its encoder, then end_message(e, field, at). */
ENC void end_message(struct enc *e, unsigned field, size_t at)
{
    put_varint(e, e->n - at);
    put_tag(e, field, WIRE_LEN);
}

/* Signed wire values: two's complement, so a negative one is a 10-byte varint. Enums go
 * through int32_t first, as protobuf-c reads them (GCC may give an enum with no negative
 * constants an unsigned type). */
ENC uint64_t wire_int(int64_t v)
{
    return (uint64_t)v;
}

/* ---- one encoder per message type; fields from the highest number down (see top) ---- */

ENC void enc_user_devices(struct enc *e, unsigned field, Parley__Stream__UserDevice **v, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        size_t at = e->n;
        put_string(e, 2, v[i]->device_id);
        put_string(e, 1, v[i]->user_id);
        end_message(e, field, at);
    }
}

ENC void enc_send_result(struct enc *e, const Parley__Stream__SendResult *r)
{
    enc_user_devices(e, 4, r->extra, r->n_extra);
    enc_user_devices(e, 3, r->missing, r->n_missing);
    put_uint(e, 2, wire_int(r->server_time_ms));
    put_uint(e, 1, wire_int((int32_t)r->status));
}

ENC void enc_error(struct enc *e, const Parley__Stream__Error *r)
{
    put_string(e, 2, r->message);
    put_string(e, 1, r->code);
}

ENC void enc_expired_notice(struct enc *e, const Parley__Stream__ExpiredNotice *x)
{
    put_uint(e, 3, x->devices);
    put_string(e, 2, x->recipient_user);
    put_bytes(e, 1, x->client_message_id);
}

ENC void enc_envelope(struct enc *e, const Parley__Stream__Envelope *v)
{
    if (v->expired) {
        size_t at = e->n;
        enc_expired_notice(e, v->expired);
        end_message(e, 10, at);
    }
    put_bytes(e, 9, v->ciphertext);
    put_uint(e, 8, wire_int(v->server_time_ms));
    put_string(e, 7, v->group_id);
    put_bytes(e, 6, v->client_message_id);
    put_string(e, 5, v->sender_device);
    put_string(e, 4, v->sender_username);
    put_string(e, 3, v->sender_user);
    put_uint(e, 2, wire_int((int32_t)v->kind));
    put_uint(e, 1, v->envelope_id);
}

/* The body's fields (AckResult, Pong and Drained are one varint each). body_ok(f) held. */
ENC void enc_body(struct enc *e, const Parley__Stream__ServerFrame *f)
{
    switch (f->body_case) {
    case PARLEY__STREAM__SERVER_FRAME__BODY_SEND_RESULT:
        enc_send_result(e, f->send_result);
        break;
    case PARLEY__STREAM__SERVER_FRAME__BODY_ACK_RESULT:
        put_uint(e, 1, f->ack_result->deleted);
        break;
    case PARLEY__STREAM__SERVER_FRAME__BODY_PONG:
        put_uint(e, 1, wire_int(f->pong->server_time_ms));
        break;
    case PARLEY__STREAM__SERVER_FRAME__BODY_ERROR:
        enc_error(e, f->error);
        break;
    case PARLEY__STREAM__SERVER_FRAME__BODY_ENVELOPE:
        enc_envelope(e, f->envelope);
        break;
    case PARLEY__STREAM__SERVER_FRAME__BODY_DRAINED:
        put_uint(e, 1, f->drained->delivered);
        break;
    default:
        break;
    }
}

ENC void enc_frame(struct enc *e, const Parley__Stream__ServerFrame *f)
{
    if (f->body_case != PARLEY__STREAM__SERVER_FRAME__BODY__NOT_SET) {
        size_t at = e->n;
        enc_body(e, f);
        end_message(e, (unsigned)f->body_case, at); /* the case is the field number */
    }
    put_uint(e, 1, f->id);
}

/* false: a body_case we do not know, or a NULL body (see the top). */
static bool body_ok(const Parley__Stream__ServerFrame *f)
{
    switch (f->body_case) {
    case PARLEY__STREAM__SERVER_FRAME__BODY__NOT_SET:
        return true;
    case PARLEY__STREAM__SERVER_FRAME__BODY_SEND_RESULT:
        return f->send_result != NULL;
    case PARLEY__STREAM__SERVER_FRAME__BODY_ACK_RESULT:
        return f->ack_result != NULL;
    case PARLEY__STREAM__SERVER_FRAME__BODY_PONG:
        return f->pong != NULL;
    case PARLEY__STREAM__SERVER_FRAME__BODY_ERROR:
        return f->error != NULL;
    case PARLEY__STREAM__SERVER_FRAME__BODY_ENVELOPE:
        return f->envelope != NULL;
    case PARLEY__STREAM__SERVER_FRAME__BODY_DRAINED:
        return f->drained != NULL;
    default:
        return false;
    }
}

static size_t frame_size(const Parley__Stream__ServerFrame *f)
{
    struct enc e = {NULL, 0};
    enc_frame(&e, f);
    return e.n;
}

/* Writes the frame's n bytes (frame_size) ending at end. Not inlined into pack_frame: there
 * GCC's -Wstringop-overflow misreads the backwards writes into the flexible array. */
__attribute__((noinline)) static void frame_write(const Parley__Stream__ServerFrame *f, uint8_t *end, size_t n)
{
    struct enc e = {end, 0};
    enc_frame(&e, f);
    assert(e.n == n); /* same code, same input: both passes emit the same bytes */
    (void)n;
}

void outmsg_free(struct outmsg *m)
{
    if (m && m->pool)
        block_pool_put(m->pool, m);
    else
        free(m);
}

/* An outmsg for n bytes of frame: a pool block when it fits, else malloc'd. */
static struct outmsg *outmsg_new(struct block_pool *p, size_t n)
{
    bool block = p && n <= p->size - sizeof(struct outmsg);
    struct outmsg *m = block ? block_pool_get(p) : malloc(sizeof *m + n);
    if (!m)
        return NULL;
    memset(m, 0, sizeof *m);
    m->pool = block ? p : NULL;
    return m;
}

static struct outmsg *pack_frame_in(struct block_pool *p, const Parley__Stream__ServerFrame *f,
                                    enum out_kind kind)
{
    if (!body_ok(f))
        return NULL;
    size_t n = frame_size(f);
    struct outmsg *m = outmsg_new(p, n);
    if (!m)
        return NULL;
    m->kind = kind;
    m->len = n;
    frame_write(f, m->data + n, n);
    return m;
}

struct outmsg *pack_frame(const Parley__Stream__ServerFrame *f, enum out_kind kind)
{
    return pack_frame_in(NULL, f, kind);
}

bool pack_frame_bytes(const Parley__Stream__ServerFrame *f, uint8_t *buf, size_t cap,
                      size_t *len)
{
    if (!body_ok(f))
        return false;
    size_t n = frame_size(f);
    if (n > cap)
        return false;
    frame_write(f, buf + n, n);
    *len = n;
    return true;
}

struct outmsg *pack_error(uint64_t id, const char *code, const char *message)
{
    Parley__Stream__ServerFrame f = PARLEY__STREAM__SERVER_FRAME__INIT;
    Parley__Stream__Error e = PARLEY__STREAM__ERROR__INIT;
    e.code = (char *)code;
    e.message = (char *)(message ? message : "");
    f.id = id;
    f.body_case = PARLEY__STREAM__SERVER_FRAME__BODY_ERROR;
    f.error = &e;
    return pack_frame(&f, OUT_REPLY);
}

static struct outmsg *pack_env(struct block_pool *p, Parley__Stream__Envelope *e)
{
    Parley__Stream__ServerFrame f = PARLEY__STREAM__SERVER_FRAME__INIT;
    f.id = 0;
    f.body_case = PARLEY__STREAM__SERVER_FRAME__BODY_ENVELOPE;
    f.envelope = e;
    struct outmsg *m = pack_frame_in(p, &f, OUT_PUSH);
    if (m)
        m->env_id = e->envelope_id;
    return m;
}

struct outmsg *pack_message(struct block_pool *pool, uint64_t env_id, const char *sender_user,
                            const char *sender_username, const char *sender_device,
                            const uint8_t msgid[16], const char *group_id,
                            int64_t server_time_ms, const uint8_t *ct, size_t ct_len)
{
    Parley__Stream__Envelope e = PARLEY__STREAM__ENVELOPE__INIT;
    e.envelope_id = env_id;
    e.kind = PARLEY__STREAM__ENVELOPE__KIND__MESSAGE;
    e.sender_user = (char *)sender_user;
    e.sender_username = (char *)sender_username;
    e.sender_device = (char *)sender_device;
    e.client_message_id.data = (uint8_t *)msgid;
    e.client_message_id.len = 16;
    e.group_id = (char *)(group_id ? group_id : "");
    e.server_time_ms = server_time_ms;
    e.ciphertext.data = (uint8_t *)ct;
    e.ciphertext.len = ct_len;
    return pack_env(pool, &e);
}

struct outmsg *pack_stored(const struct store_envelope *s, const uint8_t *ct, size_t ct_len)
{
    if (s->kind == STORE_ENV_MESSAGE)
        return pack_message(NULL, s->id, s->sender_user, s->sender_username, s->sender_device,
                            s->client_msg_id, s->group_id, s->created_at_ms, ct, ct_len);
    Parley__Stream__Envelope e = PARLEY__STREAM__ENVELOPE__INIT;
    Parley__Stream__ExpiredNotice x = PARLEY__STREAM__EXPIRED_NOTICE__INIT;
    x.client_message_id.data = (uint8_t *)s->client_msg_id;
    x.client_message_id.len = STORE_MSGID_BYTES;
    x.recipient_user = (char *)s->peer_user;
    x.devices = s->peer_devices;
    e.envelope_id = s->id;
    e.kind = PARLEY__STREAM__ENVELOPE__KIND__EXPIRED;
    e.group_id = (char *)s->group_id;
    e.server_time_ms = s->created_at_ms;
    e.expired = &x;
    return pack_env(NULL, &e);
}
