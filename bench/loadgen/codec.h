/*
 * codec.h — the load generator's wire codecs, kept free of I/O so a unit test can check
 * them (bench/loadgen/test_codec.c): client-side WebSocket framing (RFC 6455), the four
 * MQTT 3.1.1 packets the generator needs (CONNECT, SUBSCRIBE, PUBLISH QoS 1, PUBACK, plus
 * DISCONNECT) and a hand-written protobuf encoder/decoder for the parts of
 * proto/stream.proto the generator speaks (ClientFrame{Send, Ack} out, ServerFrame in).
 *
 * Encoders write into a caller's buffer and return the bytes written, or 0 when cap is
 * too small. Parsers never read past len and return 1 (complete), 0 (need more bytes)
 * or -1 (malformed / over a limit).
 */
#ifndef PARLEY_BENCH_CODEC_H
#define PARLEY_BENCH_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- WebSocket, client side ---- */

#define WSC_HEADER_MAX 14
enum { WSC_CONT = 0, WSC_TEXT = 1, WSC_BINARY = 2, WSC_CLOSE = 8, WSC_PING = 9,
       WSC_PONG = 10 };

/* Header of one final, masked frame of opcode with payload_len bytes. out holds at least
 * WSC_HEADER_MAX bytes. The payload must then be masked with wsc_mask(). */
size_t wsc_frame_header(uint8_t *out, uint8_t opcode, size_t payload_len,
                        const uint8_t mask[4]);
/* XOR-mask (or unmask) n bytes in place with the 4-byte key. */
void wsc_mask(uint8_t *p, size_t n, const uint8_t mask[4]);

struct wsc_frame {
    uint8_t opcode;
    bool fin;
    const uint8_t *payload; /* points into the parsed buffer (unmasked in place if masked) */
    size_t len;
    size_t consumed;        /* header + payload */
};
/* Parse one frame at buf. A masked frame is unmasked in place (buf is writable for that
 * reason). Frames longer than max are -1. */
int wsc_frame_parse(uint8_t *buf, size_t len, size_t max, struct wsc_frame *f);

/* ---- MQTT 3.1.1 ---- */

enum { MQTT_CONNECT = 1, MQTT_CONNACK = 2, MQTT_PUBLISH = 3, MQTT_PUBACK = 4,
       MQTT_SUBSCRIBE = 8, MQTT_SUBACK = 9, MQTT_PINGRESP = 13, MQTT_DISCONNECT = 14 };

size_t mqtt_connect_encode(uint8_t *out, size_t cap, const char *client_id, bool clean,
                           uint16_t keepalive_s);
size_t mqtt_subscribe_encode(uint8_t *out, size_t cap, uint16_t pid, const char *topic,
                             uint8_t qos);
/* PUBLISH QoS 1 with the payload appended. */
size_t mqtt_publish_encode(uint8_t *out, size_t cap, const char *topic, uint16_t pid,
                           const uint8_t *payload, size_t payload_len);
size_t mqtt_puback_encode(uint8_t *out, size_t cap, uint16_t pid);
size_t mqtt_disconnect_encode(uint8_t *out, size_t cap);

struct mqtt_packet {
    uint8_t type, flags;
    uint16_t pid;            /* PUBLISH (QoS > 0), PUBACK, SUBACK */
    uint8_t rc;              /* CONNACK return code, SUBACK granted QoS */
    const uint8_t *topic;    /* PUBLISH */
    size_t topic_len;
    const uint8_t *payload;  /* PUBLISH */
    size_t payload_len;
    size_t consumed;
};
int mqtt_parse(const uint8_t *buf, size_t len, size_t max, struct mqtt_packet *p);

/* ---- parley stream (proto/stream.proto) ---- */

/* ClientFrame{id, send: Send{client_message_id, to_user, copies: [{device_id, ct}]}} */
size_t ps_send_encode(uint8_t *out, size_t cap, uint64_t id, const uint8_t cmid[16],
                      const char *to_user, const char *device_id, const uint8_t *ct,
                      size_t ct_len);
/* ClientFrame{id, ack: Ack{envelope_ids (packed)}}; id 0 (no AckResult wanted) is left out. */
size_t ps_ack_encode(uint8_t *out, size_t cap, uint64_t id, const uint64_t *ids, size_t n);

enum ps_body { PS_NONE = 0, PS_SEND_RESULT = 2, PS_ACK_RESULT = 3, PS_PONG = 4, PS_ERROR = 5,
               PS_ENVELOPE = 6, PS_DRAINED = 7 };
struct ps_server_frame {
    uint64_t id;
    enum ps_body body;
    uint32_t status;         /* SendResult.status */
    uint32_t count;          /* AckResult.deleted, Drained.delivered */
    uint64_t envelope_id;    /* Envelope */
    uint32_t kind;           /* Envelope.kind */
    const uint8_t *ciphertext; /* Envelope.ciphertext (points into the input) */
    size_t ct_len;
    const uint8_t *err_code; /* Error.code */
    size_t err_code_len;
};
/* Decode one ServerFrame (the whole buffer). Returns 0, or -1 when malformed. Unknown
 * fields are skipped, as protobuf requires. */
int ps_server_decode(const uint8_t *buf, size_t len, struct ps_server_frame *f);

#endif
