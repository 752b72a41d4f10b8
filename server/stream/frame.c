/*
 * frame.c — see frame.h. A hand-written decoder for ClientFrame into the generated
 * protobuf-c structs, then validation of every field the server relies on, so later
 * stages can trust a FRAME_OK frame.
 */
#include "frame.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "str.h"

#define ID_LEN 32 /* STORE_ID_LEN: 32 lowercase hex characters */

/* The arena (frame.h): a frame cost eight malloc/free pairs before, and then one 2 KB
 * allocation that made glibc consolidate its fast bins per frame (issue #5). The budget
 * counts every block, also those of a value that a later one replaces. */
static void *budget_alloc(struct frame_arena *b, size_t size)
{
    size_t unit = sizeof(union frame_block);
    if (size > b->left || size > SIZE_MAX - unit)
        return NULL;
    size_t rounded = (size + unit - 1) / unit * unit;
    if (rounded > b->left)
        return NULL;
    b->left -= rounded;
    if (rounded <= FRAME_ARENA_INLINE - b->used) {
        void *p = (unsigned char *)b->area + b->used;
        b->used += rounded;
        return p;
    }
    union frame_block *h = malloc(unit + size);
    if (!h)
        return NULL;
    h->next = b->heap;
    b->heap = h;
    return h + 1;
}

/* ---- Decoding ---------------------------------------------------------------------
 *
 * protobuf-c's generic unpacker cost ~2,200 instructions per frame (a counting pre-pass
 * over a descriptor, an allocation and a copy per field). This decoder knows the five
 * messages of a ClientFrame and fills the same structs, so nothing downstream changes.
 * It accepts exactly what protobuf-c 1.4.1 accepts (tests/fuzz/fuzz_stream_frame.c
 * compares the two on every input), including its departures from protobuf proper:
 *   - a key is a varint of at most 5 bytes; field number 0 is refused when the key is
 *     one byte (0x00..0x07) but is an unknown field when padded (0x80 0x00);
 *   - wire types 3 and 4 (groups), 6 and 7 are refused, also in unknown fields;
 *   - a length prefix is a varint of at most 5 bytes and at most INT_MAX;
 *   - a known field with another wire type than its own is refused (envelope_ids:
 *     varint, or length-delimited = packed);
 *   - a message field given twice in a oneof is replaced, not merged (the earlier one
 *     must still decode); every other singular field: the last value wins;
 *   - strings are not checked for UTF-8 and keep embedded NULs (C sees a prefix).
 * Unknown fields are skipped; protobuf-c keeps them, but nothing here reads them. */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

/* Field numbers (proto/stream.proto). */
enum { CF_ID = 1, CF_SEND = 2, CF_ACK = 3, CF_PING = 4 };
enum { SEND_MSGID = 1, SEND_TO_USER = 2, SEND_GROUP_ID = 3, SEND_COPIES = 4 };
enum { DC_DEVICE_ID = 1, DC_CIPHERTEXT = 2 };
enum { ACK_ENVELOPE_IDS = 1 };

struct reader {
    const uint8_t *p, *end;
};

/* One field as read off the wire: its number, wire type and value. Locals are zeroed:
 * with next_field inlined, gcc cannot tell that only the type's members are read. */
struct wire_field {
    uint32_t num;
    unsigned type;
    uint64_t varint;       /* WT_VARINT */
    const uint8_t *data;   /* WT_LEN: the payload, inside the frame */
    size_t len;
};

/* A varint of at most max bytes (bits past 64 are dropped, as protobuf-c does). */
static bool read_varint_long(struct reader *r, size_t max, uint64_t *v)
{
    size_t avail = (size_t)(r->end - r->p);
    if (max > avail)
        max = avail;
    uint64_t x = 0;
    for (size_t i = 0; i < max; i++) { /* max <= 10: the shift stays below 64 */
        x |= (uint64_t)(r->p[i] & 0x7f) << (7 * i);
        if (!(r->p[i] & 0x80)) {
            r->p += i + 1;
            *v = x;
            return true;
        }
    }
    return false;
}

/* Keys and small numbers take one byte, lengths up to 16383 two: those paths are
 * inline (callers pass max >= 5). */
static inline bool read_varint(struct reader *r, size_t max, uint64_t *v)
{
    const uint8_t *p = r->p;
    if (p < r->end && p[0] < 0x80) {
        *v = p[0];
        r->p = p + 1;
        return true;
    }
    if (r->end - p >= 2 && p[1] < 0x80) {
        *v = (uint64_t)(p[0] & 0x7f) | (uint64_t)p[1] << 7;
        r->p = p + 2;
        return true;
    }
    return read_varint_long(r, max, v);
}

static bool skip(struct reader *r, size_t n)
{
    if ((size_t)(r->end - r->p) < n)
        return false;
    r->p += n;
    return true;
}

/* Read the next field of a message (needs r->p < r->end); false when the bytes are
 * malformed. Inlined into each message's loop: as a call it cost ~40% more per frame
 * (callgrind, a relayed Send + Ack). */
static inline __attribute__((always_inline)) bool next_field(struct reader *r, struct wire_field *f)
{
    uint64_t key, n;
    if (r->p[0] < 8) /* protobuf-c refuses field 0 only in a one-byte key; see above */
        return false;
    if (!read_varint(r, 5, &key))
        return false;
    f->num = (uint32_t)(key >> 3); /* 5 bytes hold 35 bits: the number fits */
    f->type = (unsigned)(key & 7);
    switch (f->type) {
    case WT_VARINT:
        return read_varint(r, 10, &f->varint);
    case WT_I64:
        return skip(r, 8);
    case WT_I32:
        return skip(r, 4);
    case WT_LEN:
        if (!read_varint(r, 5, &n) || n > INT_MAX || n > (size_t)(r->end - r->p))
            return false;
        f->data = r->p;
        f->len = (size_t)n;
        r->p += n;
        return true;
    default: /* groups and the undefined 6 and 7 */
        return false;
    }
}

/* Zero-copy: the value points into the frame (frame.h: r.cf borrows data). protobuf-c
 * leaves an empty value's data NULL; so do we. */
static ProtobufCBinaryData borrow(const struct wire_field *f)
{
    ProtobufCBinaryData b = {f->len, f->len ? (uint8_t *)f->data : NULL};
    return b;
}

/* Strings must be NUL-terminated for the server: copied into the arena. */
static char *copy_str(struct frame_arena *a, const struct wire_field *f)
{
    char *s = budget_alloc(a, f->len + 1);
    if (s) {
        memcpy(s, f->data, f->len);
        s[f->len] = '\0';
    }
    return s;
}

/* How many times field num occurs in the message; SIZE_MAX if the bytes are malformed.
 * Sizes a repeated field's array before the real pass. */
static size_t count_field(const uint8_t *p, size_t n, uint32_t num)
{
    struct reader r = {p, p + n};
    struct wire_field f = {0};
    size_t count = 0;
    while (r.p < r.end) {
        if (!next_field(&r, &f))
            return SIZE_MAX;
        count += f.num == num;
    }
    return count;
}

static Parley__Stream__DeviceCiphertext *decode_copy(struct frame_arena *a,
                                                     const struct wire_field *in)
{
    static const Parley__Stream__DeviceCiphertext init = PARLEY__STREAM__DEVICE_CIPHERTEXT__INIT;
    Parley__Stream__DeviceCiphertext *dc = budget_alloc(a, sizeof *dc);
    if (!dc)
        return NULL;
    *dc = init;
    struct reader r = {in->data, in->data + in->len};
    struct wire_field f = {0};
    while (r.p < r.end) {
        if (!next_field(&r, &f))
            return NULL;
        if (f.num == DC_DEVICE_ID) {
            if (f.type != WT_LEN || !(dc->device_id = copy_str(a, &f)))
                return NULL;
        } else if (f.num == DC_CIPHERTEXT) {
            if (f.type != WT_LEN)
                return NULL;
            dc->ciphertext = borrow(&f);
        }
    }
    return dc;
}

/* A Send's copies are gathered in a stack array of SEND_FEW; one with more counts
 * them all once, so the arena array is cut once at its exact size. */
#define SEND_FEW 8

struct copies {
    Parley__Stream__DeviceCiphertext **v, *few[SEND_FEW];
    size_t n, cap;
};

static bool add_copy(struct frame_arena *a, struct copies *c, const struct wire_field *send,
                     const struct wire_field *f)
{
    if (f->type != WT_LEN)
        return false;
    if (c->n == c->cap) { /* only with more than SEND_FEW; total > c->n: f counts too */
        size_t total = count_field(send->data, send->len, SEND_COPIES);
        Parley__Stream__DeviceCiphertext **v;
        if (total == SIZE_MAX || !(v = budget_alloc(a, total * sizeof *v)))
            return false;
        memcpy(v, c->v, c->n * sizeof *v);
        c->v = v;
        c->cap = total;
    }
    return (c->v[c->n++] = decode_copy(a, f)) != NULL;
}

static Parley__Stream__Send *decode_send(struct frame_arena *a, const struct wire_field *in)
{
    static const Parley__Stream__Send init = PARLEY__STREAM__SEND__INIT;
    Parley__Stream__Send *s = budget_alloc(a, sizeof *s);
    if (!s)
        return NULL;
    *s = init;
    struct copies c;
    c.v = c.few;
    c.n = 0;
    c.cap = SEND_FEW;
    struct reader r = {in->data, in->data + in->len};
    struct wire_field f = {0};
    while (r.p < r.end) {
        if (!next_field(&r, &f))
            return NULL;
        switch (f.num) {
        case SEND_MSGID:
            if (f.type != WT_LEN)
                return NULL;
            s->client_message_id = borrow(&f);
            break;
        case SEND_TO_USER: /* oneof target: the last one wins */
            if (f.type != WT_LEN || !(s->to_user = copy_str(a, &f)))
                return NULL;
            s->target_case = PARLEY__STREAM__SEND__TARGET_TO_USER;
            break;
        case SEND_GROUP_ID:
            if (f.type != WT_LEN || !(s->group_id = copy_str(a, &f)))
                return NULL;
            s->target_case = PARLEY__STREAM__SEND__TARGET_GROUP_ID;
            break;
        case SEND_COPIES:
            if (!add_copy(a, &c, in, &f))
                return NULL;
            break;
        default:
            break;
        }
    }
    if (c.v != c.few) {
        s->copies = c.v;
    } else if (c.n) {
        if (!(s->copies = budget_alloc(a, c.n * sizeof *s->copies)))
            return NULL;
        memcpy(s->copies, c.few, c.n * sizeof *s->copies);
    }
    s->n_copies = c.n;
    return s;
}

/* Upper bound of the ids in an Ack: one per varint field, one per last byte of a
 * varint in a packed run (what protobuf-c counts, too). */
static size_t count_ids(const uint8_t *p, size_t n)
{
    struct reader r = {p, p + n};
    struct wire_field f = {0};
    size_t count = 0;
    while (r.p < r.end) {
        if (!next_field(&r, &f))
            return SIZE_MAX;
        if (f.num != ACK_ENVELOPE_IDS)
            continue;
        if (f.type != WT_LEN) {
            count++;
            continue;
        }
        for (size_t i = 0; i < f.len; i++)
            count += !(f.data[i] & 0x80);
    }
    return count;
}

/* A packed run of varints, appended to a->envelope_ids (sized by count_ids). */
static bool decode_packed_ids(Parley__Stream__Ack *a, const struct wire_field *f)
{
    struct reader r = {f->data, f->data + f->len};
    while (r.p < r.end)
        if (!read_varint(&r, 10, &a->envelope_ids[a->n_envelope_ids++]))
            return false;
    return true;
}

static Parley__Stream__Ack *decode_ack(struct frame_arena *b, const struct wire_field *in)
{
    static const Parley__Stream__Ack init = PARLEY__STREAM__ACK__INIT;
    size_t n = count_ids(in->data, in->len);
    if (n == SIZE_MAX || n > SIZE_MAX / sizeof(uint64_t))
        return NULL;
    Parley__Stream__Ack *a = budget_alloc(b, sizeof *a);
    if (!a)
        return NULL;
    *a = init;
    if (n && !(a->envelope_ids = budget_alloc(b, n * sizeof *a->envelope_ids)))
        return NULL;
    struct reader r = {in->data, in->data + in->len};
    struct wire_field f = {0};
    while (r.p < r.end) {
        if (!next_field(&r, &f))
            return NULL;
        if (f.num != ACK_ENVELOPE_IDS)
            continue;
        if (f.type == WT_VARINT)
            a->envelope_ids[a->n_envelope_ids++] = f.varint;
        else if (f.type != WT_LEN || !decode_packed_ids(a, &f))
            return NULL;
    }
    return a;
}

static Parley__Stream__Ping *decode_ping(struct frame_arena *a, const struct wire_field *in)
{
    static const Parley__Stream__Ping init = PARLEY__STREAM__PING__INIT;
    /* Ping has no fields, but its unknown ones must be well-formed (0 matches none) */
    if (count_field(in->data, in->len, 0) == SIZE_MAX)
        return NULL;
    Parley__Stream__Ping *p = budget_alloc(a, sizeof *p);
    if (p)
        *p = init;
    return p;
}

/* One occurrence of the oneof body: the last one wins, but each must decode. */
static bool decode_body(struct frame_arena *a, Parley__Stream__ClientFrame *cf,
                        const struct wire_field *f)
{
    if (f->type != WT_LEN)
        return false;
    switch (f->num) {
    case CF_SEND:
        cf->send = decode_send(a, f);
        cf->body_case = PARLEY__STREAM__CLIENT_FRAME__BODY_SEND;
        return cf->send != NULL;
    case CF_ACK:
        cf->ack = decode_ack(a, f);
        cf->body_case = PARLEY__STREAM__CLIENT_FRAME__BODY_ACK;
        return cf->ack != NULL;
    default:
        cf->ping = decode_ping(a, f);
        cf->body_case = PARLEY__STREAM__CLIENT_FRAME__BODY_PING;
        return cf->ping != NULL;
    }
}

/* The whole frame; NULL if the bytes are not a ClientFrame or the budget ran out. */
static Parley__Stream__ClientFrame *decode_frame(struct frame_arena *a, const uint8_t *data,
                                                 size_t len)
{
    static const Parley__Stream__ClientFrame init = PARLEY__STREAM__CLIENT_FRAME__INIT;
    Parley__Stream__ClientFrame *cf = budget_alloc(a, sizeof *cf);
    if (!cf)
        return NULL;
    *cf = init;
    struct reader r = {data, data + len};
    struct wire_field f = {0};
    while (r.p < r.end) {
        if (!next_field(&r, &f))
            return NULL;
        if (f.num == CF_ID) {
            if (f.type != WT_VARINT)
                return NULL;
            cf->id = f.varint;
        } else if (f.num >= CF_SEND && f.num <= CF_PING) {
            if (!decode_body(a, cf, &f))
                return NULL;
        }
    }
    return cf;
}

static bool id_ok(const char *s)
{
    return str_is_hex_id(s, ID_LEN);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static enum frame_status refuse(struct frame_result *out, const char *code, const char *msg)
{
    out->code = code;
    out->message = msg;
    return FRAME_REFUSED;
}

static enum frame_status check_send(const Parley__Stream__Send *s, const struct frame_limits *lim,
                                    struct frame_result *out)
{
    size_t max_copies = lim->max_copies && lim->max_copies < FRAME_MAX_COPIES ? lim->max_copies
                                                                              : FRAME_MAX_COPIES;
    if (s->client_message_id.len != FRAME_MSGID_BYTES)
        return refuse(out, "invalid_field", "client_message_id must be 16 bytes");
    if (s->target_case == PARLEY__STREAM__SEND__TARGET_TO_USER) {
        if (!id_ok(s->to_user))
            return refuse(out, "invalid_field", "to_user is not a user id");
    } else if (s->target_case == PARLEY__STREAM__SEND__TARGET_GROUP_ID) {
        if (!id_ok(s->group_id))
            return refuse(out, "invalid_field", "group_id is not a group id");
    } else {
        return refuse(out, "invalid_field", "send needs to_user or group_id");
    }
    if (s->n_copies == 0)
        return refuse(out, "invalid_field", "send needs at least one copy");
    if (s->n_copies > max_copies)
        return refuse(out, "too_large", "too many copies in one send");
    const char *ids[FRAME_MAX_COPIES];
    for (size_t i = 0; i < s->n_copies; i++) {
        const Parley__Stream__DeviceCiphertext *c = s->copies[i];
        if (!c || !id_ok(c->device_id))
            return refuse(out, "invalid_field", "copy device_id is not a device id");
        if (c->ciphertext.len == 0)
            return refuse(out, "invalid_field", "copy ciphertext is empty");
        if (c->ciphertext.len > lim->max_envelope)
            return refuse(out, "too_large", "ciphertext larger than max_envelope");
        ids[i] = c->device_id;
    }
    if (s->n_copies > 1) /* a chat's usual single copy: nothing to compare */
        qsort(ids, s->n_copies, sizeof ids[0], cmp_str);
    for (size_t i = 1; i < s->n_copies; i++)
        if (strcmp(ids[i - 1], ids[i]) == 0)
            return refuse(out, "invalid_field", "two copies for the same device");
    return FRAME_OK;
}

static enum frame_status check_ack(const Parley__Stream__Ack *a, const struct frame_limits *lim,
                                   struct frame_result *out)
{
    size_t max_ids = lim->max_ack_ids ? lim->max_ack_ids : FRAME_MAX_ACK_IDS;
    if (a->n_envelope_ids == 0)
        return refuse(out, "invalid_field", "ack needs at least one envelope id");
    if (a->n_envelope_ids > max_ids)
        return refuse(out, "too_large", "too many envelope ids in one ack");
    for (size_t i = 0; i < a->n_envelope_ids; i++)
        if (a->envelope_ids[i] == 0)
            return refuse(out, "invalid_field", "envelope id 0");
    return FRAME_OK;
}

enum frame_status frame_decode(const uint8_t *data, size_t len, const struct frame_limits *lim,
                               struct frame_result *out)
{
    out->cf = NULL; /* not a memset: the arena's area needs no zeroing */
    out->id = 0;
    out->arena.used = 0;
    out->arena.heap = NULL;
    out->code = "invalid_frame";
    out->message = "not a valid ClientFrame";
    if (!data || len == 0 || len > FRAME_MAX_BYTES || !lim)
        return FRAME_INVALID;
    out->arena.left = FRAME_ALLOC_BUDGET;
    out->cf = decode_frame(&out->arena, data, len);
    if (!out->cf)
        return FRAME_INVALID;
    /* id 0 is an Ack that wants no AckResult (fire and forget, as MQTT's PUBACK). */
    if (out->cf->id == 0 && out->cf->body_case != PARLEY__STREAM__CLIENT_FRAME__BODY_ACK) {
        out->message = "request id must be non-zero (only an ack may have id 0)";
        return FRAME_INVALID;
    }
    out->id = out->cf->id;
    switch (out->cf->body_case) {
    case PARLEY__STREAM__CLIENT_FRAME__BODY_SEND:
        if (!out->cf->send)
            return FRAME_INVALID;
        return check_send(out->cf->send, lim, out);
    case PARLEY__STREAM__CLIENT_FRAME__BODY_ACK:
        if (!out->cf->ack)
            return FRAME_INVALID;
        return check_ack(out->cf->ack, lim, out);
    case PARLEY__STREAM__CLIENT_FRAME__BODY_PING:
        return FRAME_OK;
    default:
        return refuse(out, "invalid_frame", "frame has no known body");
    }
}

void frame_release(struct frame_result *r)
{
    if (!r)
        return;
    while (r->arena.heap) { /* the arena holds every block of r->cf */
        union frame_block *next = r->arena.heap->next;
        free(r->arena.heap);
        r->arena.heap = next;
    }
    r->cf = NULL;
}
