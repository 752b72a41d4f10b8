/*
 * codec.c — WebSocket client framing, MQTT 3.1.1 packets and the protobuf subset of
 * stream.proto used by the load generator (contract in codec.h). Pure functions, no I/O.
 */
#include "codec.h"

#include <string.h>

/* ---------------------------------------------------------------- WebSocket */

size_t wsc_frame_header(uint8_t *out, uint8_t opcode, size_t payload_len,
                        const uint8_t mask[4])
{
    size_t n = 0;

    out[n++] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (payload_len < 126) {
        out[n++] = (uint8_t)(0x80 | payload_len);
    } else if (payload_len <= 0xffff) {
        out[n++] = 0x80 | 126;
        out[n++] = (uint8_t)(payload_len >> 8);
        out[n++] = (uint8_t)payload_len;
    } else {
        out[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)((uint64_t)payload_len >> (8 * i));
    }
    memcpy(out + n, mask, 4);
    return n + 4;
}

void wsc_mask(uint8_t *p, size_t n, const uint8_t mask[4])
{
    for (size_t i = 0; i < n; i++)
        p[i] ^= mask[i & 3];
}

int wsc_frame_parse(uint8_t *buf, size_t len, size_t max, struct wsc_frame *f)
{
    size_t hdr = 2;
    uint64_t plen;
    bool masked;

    if (len < 2)
        return 0;
    if (buf[0] & 0x70) /* RSV bits: no extension was negotiated */
        return -1;
    masked = (buf[1] & 0x80) != 0;
    plen = buf[1] & 0x7f;
    if (plen == 126) {
        if (len < 4)
            return 0;
        plen = ((uint64_t)buf[2] << 8) | buf[3];
        hdr = 4;
    } else if (plen == 127) {
        if (len < 10)
            return 0;
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = (plen << 8) | buf[2 + i];
        hdr = 10;
    }
    if (plen > max)
        return -1;
    if (masked)
        hdr += 4;
    if (len < hdr || len - hdr < plen)
        return 0;
    f->opcode = buf[0] & 0x0f;
    f->fin = (buf[0] & 0x80) != 0;
    f->payload = buf + hdr;
    f->len = (size_t)plen;
    f->consumed = hdr + (size_t)plen;
    if (masked)
        wsc_mask(buf + hdr, (size_t)plen, buf + hdr - 4);
    return 1;
}

/* ---------------------------------------------------------------- MQTT */

/* Fixed header: type/flags byte and the variable-length "remaining length". */
static size_t mqtt_fixed(uint8_t *out, uint8_t first, size_t remaining)
{
    size_t n = 0;

    out[n++] = first;
    do {
        uint8_t b = (uint8_t)(remaining % 128);
        remaining /= 128;
        if (remaining)
            b |= 0x80;
        out[n++] = b;
    } while (remaining);
    return n;
}

static size_t put_u16(uint8_t *out, uint16_t v)
{
    out[0] = (uint8_t)(v >> 8);
    out[1] = (uint8_t)v;
    return 2;
}

static size_t put_str(uint8_t *out, const char *s, size_t len)
{
    put_u16(out, (uint16_t)len);
    memcpy(out + 2, s, len);
    return 2 + len;
}

#define MQTT_MAX_REMAINING 268435455UL

size_t mqtt_connect_encode(uint8_t *out, size_t cap, const char *client_id, bool clean,
                           uint16_t keepalive_s)
{
    size_t id_len = strlen(client_id), rem = 10 + 2 + id_len, n;

    if (id_len > 0xffff || cap < rem + 5)
        return 0;
    n = mqtt_fixed(out, MQTT_CONNECT << 4, rem);
    n += put_str(out + n, "MQTT", 4);
    out[n++] = 4; /* protocol level 3.1.1 */
    out[n++] = clean ? 0x02 : 0x00;
    n += put_u16(out + n, keepalive_s);
    n += put_str(out + n, client_id, id_len);
    return n;
}

size_t mqtt_subscribe_encode(uint8_t *out, size_t cap, uint16_t pid, const char *topic,
                             uint8_t qos)
{
    size_t t_len = strlen(topic), rem = 2 + 2 + t_len + 1, n;

    if (t_len > 0xffff || cap < rem + 5)
        return 0;
    n = mqtt_fixed(out, (MQTT_SUBSCRIBE << 4) | 0x02, rem);
    n += put_u16(out + n, pid);
    n += put_str(out + n, topic, t_len);
    out[n++] = qos;
    return n;
}

size_t mqtt_publish_encode(uint8_t *out, size_t cap, const char *topic, uint16_t pid,
                           const uint8_t *payload, size_t payload_len)
{
    size_t t_len = strlen(topic), rem, n;

    if (t_len > 0xffff || payload_len > MQTT_MAX_REMAINING - 4 - t_len)
        return 0;
    rem = 2 + t_len + 2 + payload_len;
    if (cap < rem + 5)
        return 0;
    n = mqtt_fixed(out, (MQTT_PUBLISH << 4) | 0x02 /* QoS 1 */, rem);
    n += put_str(out + n, topic, t_len);
    n += put_u16(out + n, pid);
    memcpy(out + n, payload, payload_len);
    return n + payload_len;
}

size_t mqtt_puback_encode(uint8_t *out, size_t cap, uint16_t pid)
{
    if (cap < 4)
        return 0;
    out[0] = MQTT_PUBACK << 4;
    out[1] = 2;
    put_u16(out + 2, pid);
    return 4;
}

size_t mqtt_disconnect_encode(uint8_t *out, size_t cap)
{
    if (cap < 2)
        return 0;
    out[0] = MQTT_DISCONNECT << 4;
    out[1] = 0;
    return 2;
}

int mqtt_parse(const uint8_t *buf, size_t len, size_t max, struct mqtt_packet *p)
{
    size_t rem = 0, hdr = 1, mult = 1;
    const uint8_t *v;

    if (len < 2)
        return 0;
    for (;;) {
        if (hdr >= len)
            return 0;
        if (hdr > 4)
            return -1;
        rem += (size_t)(buf[hdr] & 0x7f) * mult;
        mult *= 128;
        if (!(buf[hdr++] & 0x80))
            break;
    }
    if (rem > max)
        return -1;
    if (len - hdr < rem)
        return 0;
    memset(p, 0, sizeof *p);
    p->type = buf[0] >> 4;
    p->flags = buf[0] & 0x0f;
    p->consumed = hdr + rem;
    v = buf + hdr;
    switch (p->type) {
    case MQTT_CONNACK:
        if (rem != 2)
            return -1;
        p->rc = v[1];
        break;
    case MQTT_PUBACK:
        if (rem != 2)
            return -1;
        p->pid = (uint16_t)((v[0] << 8) | v[1]);
        break;
    case MQTT_SUBACK:
        if (rem < 3)
            return -1;
        p->pid = (uint16_t)((v[0] << 8) | v[1]);
        p->rc = v[2];
        break;
    case MQTT_PUBLISH: {
        size_t off, qos = (p->flags >> 1) & 3;
        if (rem < 2 || qos == 3)
            return -1;
        p->topic_len = (size_t)((v[0] << 8) | v[1]);
        off = 2 + p->topic_len;
        if (off > rem)
            return -1;
        p->topic = v + 2;
        if (qos) {
            if (off + 2 > rem)
                return -1;
            p->pid = (uint16_t)((v[off] << 8) | v[off + 1]);
            off += 2;
        }
        p->payload = v + off;
        p->payload_len = rem - off;
        break;
    }
    default:
        break;
    }
    return 1;
}

/* ---------------------------------------------------------------- protobuf */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static size_t put_varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

static size_t put_tag(uint8_t *out, unsigned field, unsigned wt)
{
    return put_varint(out, ((uint64_t)field << 3) | wt);
}

/* Length of a length-delimited field (tag + length + body) for a body of n bytes. */
static size_t ld_len(unsigned field, size_t n)
{
    return varint_len((uint64_t)field << 3) + varint_len(n) + n;
}

static size_t put_ld(uint8_t *out, unsigned field, const void *data, size_t n)
{
    size_t k = put_tag(out, field, WT_LEN);
    k += put_varint(out + k, n);
    if (data)
        memcpy(out + k, data, n);
    return data ? k + n : k; /* without data: only the header, the body follows */
}

size_t ps_send_encode(uint8_t *out, size_t cap, uint64_t id, const uint8_t cmid[16],
                      const char *to_user, const char *device_id, const uint8_t *ct,
                      size_t ct_len)
{
    size_t user_len = strlen(to_user), dev_len = strlen(device_id);
    size_t copy_len = ld_len(1, dev_len) + ld_len(2, ct_len);
    size_t send_len = ld_len(1, 16) + ld_len(2, user_len) + ld_len(4, copy_len);
    size_t total = 1 + varint_len(id) + ld_len(2, send_len), n = 0;

    if (cap < total)
        return 0;
    n += put_tag(out + n, 1, WT_VARINT);
    n += put_varint(out + n, id);
    n += put_ld(out + n, 2, NULL, send_len);
    n += put_ld(out + n, 1, cmid, 16);
    n += put_ld(out + n, 2, to_user, user_len);
    n += put_ld(out + n, 4, NULL, copy_len);
    n += put_ld(out + n, 1, device_id, dev_len);
    n += put_ld(out + n, 2, ct, ct_len);
    return n;
}

size_t ps_ack_encode(uint8_t *out, size_t cap, uint64_t id, const uint64_t *ids, size_t n_ids)
{
    size_t packed = 0, ack_len, total, n = 0;

    for (size_t i = 0; i < n_ids; i++)
        packed += varint_len(ids[i]);
    ack_len = n_ids ? ld_len(1, packed) : 0;
    total = (id ? 1 + varint_len(id) : 0) + ld_len(3, ack_len);
    if (cap < total)
        return 0;
    if (id) { /* id 0 (no AckResult wanted) is left out, as proto3 does */
        n += put_tag(out + n, 1, WT_VARINT);
        n += put_varint(out + n, id);
    }
    n += put_ld(out + n, 3, NULL, ack_len);
    if (n_ids) {
        n += put_ld(out + n, 1, NULL, packed);
        for (size_t i = 0; i < n_ids; i++)
            n += put_varint(out + n, ids[i]);
    }
    return n;
}

struct pb {
    const uint8_t *p, *end;
};

static int get_varint(struct pb *b, uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end)
            return -1;
        uint8_t c = *b->p++;
        r |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -1;
}

/* Next field: its number, wire type, and (varint) value or (len) slice. */
static int next_field(struct pb *b, unsigned *field, unsigned *wt, uint64_t *v, struct pb *sub)
{
    uint64_t key, n;

    if (get_varint(b, &key) != 0)
        return -1;
    *field = (unsigned)(key >> 3);
    *wt = (unsigned)(key & 7);
    if (*field == 0)
        return -1;
    switch (*wt) {
    case WT_VARINT:
        return get_varint(b, v);
    case WT_I64:
    case WT_I32: {
        size_t k = *wt == WT_I64 ? 8 : 4;
        if ((size_t)(b->end - b->p) < k)
            return -1;
        b->p += k;
        return 0;
    }
    case WT_LEN:
        if (get_varint(b, &n) != 0 || n > (uint64_t)(b->end - b->p))
            return -1;
        sub->p = b->p;
        sub->end = b->p + n;
        b->p += n;
        return 0;
    default:
        return -1;
    }
}

static int decode_body(struct pb b, enum ps_body body, struct ps_server_frame *f)
{
    unsigned field, wt;
    uint64_t v = 0;
    struct pb sub = {NULL, NULL};

    while (b.p < b.end) {
        if (next_field(&b, &field, &wt, &v, &sub) != 0)
            return -1;
        switch (body) {
        case PS_SEND_RESULT:
            if (field == 1 && wt == WT_VARINT)
                f->status = (uint32_t)v;
            break;
        case PS_ACK_RESULT:
        case PS_DRAINED:
            if (field == 1 && wt == WT_VARINT)
                f->count = (uint32_t)v;
            break;
        case PS_ERROR:
            if (field == 1 && wt == WT_LEN) {
                f->err_code = sub.p;
                f->err_code_len = (size_t)(sub.end - sub.p);
            }
            break;
        case PS_ENVELOPE:
            if (field == 1 && wt == WT_VARINT) {
                f->envelope_id = v;
            } else if (field == 2 && wt == WT_VARINT) {
                f->kind = (uint32_t)v;
            } else if (field == 9 && wt == WT_LEN) {
                f->ciphertext = sub.p;
                f->ct_len = (size_t)(sub.end - sub.p);
            }
            break;
        default:
            break;
        }
    }
    return 0;
}

int ps_server_decode(const uint8_t *buf, size_t len, struct ps_server_frame *f)
{
    struct pb b = {buf, buf + len}, sub = {NULL, NULL};
    unsigned field, wt;
    uint64_t v = 0;

    memset(f, 0, sizeof *f);
    while (b.p < b.end) {
        if (next_field(&b, &field, &wt, &v, &sub) != 0)
            return -1;
        if (field == 1 && wt == WT_VARINT) {
            f->id = v;
        } else if (field >= 2 && field <= 7 && wt == WT_LEN) {
            f->body = (enum ps_body)field;
            if (decode_body(sub, f->body, f) != 0)
                return -1;
        }
    }
    return 0;
}
