/*
 * test_codec.c — unit test (not timed) of the load generator's codecs (codec.h): the
 * hand-written stream.proto encoder/decoder is checked against protobuf-c's generated
 * code both ways, MQTT packets against the byte layouts of the MQTT 3.1.1 spec, and
 * WebSocket framing by round trip at each length class.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "proto/stream.pb-c.h"

static const char user_id[] = "0123456789abcdef0123456789abcdef";
static const char dev_id[] = "fedcba9876543210fedcba9876543210";

static void test_send_decodes_with_protobuf_c(void **state)
{
    uint8_t buf[1024], ct[200], cmid[16];
    Parley__Stream__ClientFrame *f;
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof ct; i++)
        ct[i] = (uint8_t)(i * 7);
    memset(cmid, 0xab, sizeof cmid);
    n = ps_send_encode(buf, sizeof buf, 300, cmid, user_id, dev_id, ct, sizeof ct);
    assert_true(n > 0);
    f = parley__stream__client_frame__unpack(NULL, n, buf);
    assert_non_null(f);
    assert_int_equal(f->id, 300);
    assert_int_equal(f->body_case, PARLEY__STREAM__CLIENT_FRAME__BODY_SEND);
    assert_int_equal(f->send->client_message_id.len, 16);
    assert_memory_equal(f->send->client_message_id.data, cmid, 16);
    assert_int_equal(f->send->target_case, PARLEY__STREAM__SEND__TARGET_TO_USER);
    assert_string_equal(f->send->to_user, user_id);
    assert_int_equal(f->send->n_copies, 1);
    assert_string_equal(f->send->copies[0]->device_id, dev_id);
    assert_int_equal(f->send->copies[0]->ciphertext.len, sizeof ct);
    assert_memory_equal(f->send->copies[0]->ciphertext.data, ct, sizeof ct);
    parley__stream__client_frame__free_unpacked(f, NULL);
    /* too small a buffer: nothing written */
    assert_int_equal(ps_send_encode(buf, 100, 1, cmid, user_id, dev_id, ct, sizeof ct), 0);
}

static void test_ack_decodes_with_protobuf_c(void **state)
{
    uint8_t buf[16 + 1024 * 10];
    uint64_t ids[1024];
    Parley__Stream__ClientFrame *f;
    size_t n;

    (void)state;
    for (size_t i = 0; i < 1024; i++)
        ids[i] = 1 + i * 1000003ull;
    n = ps_ack_encode(buf, sizeof buf, 7, ids, 1024);
    assert_true(n > 0);
    f = parley__stream__client_frame__unpack(NULL, n, buf);
    assert_non_null(f);
    assert_int_equal(f->id, 7);
    assert_int_equal(f->body_case, PARLEY__STREAM__CLIENT_FRAME__BODY_ACK);
    assert_int_equal(f->ack->n_envelope_ids, 1024);
    for (size_t i = 0; i < 1024; i++)
        assert_int_equal(f->ack->envelope_ids[i], ids[i]);
    parley__stream__client_frame__free_unpacked(f, NULL);
    /* id 0: an ack that wants no answer; the field is left out */
    n = ps_ack_encode(buf, sizeof buf, 0, ids, 3);
    assert_true(n > 0 && buf[0] == 0x1a);
    f = parley__stream__client_frame__unpack(NULL, n, buf);
    assert_non_null(f);
    assert_int_equal(f->id, 0);
    assert_int_equal(f->ack->n_envelope_ids, 3);
    parley__stream__client_frame__free_unpacked(f, NULL);
}

static size_t pack_server(const Parley__Stream__ServerFrame *sf, uint8_t *buf)
{
    size_t n = parley__stream__server_frame__get_packed_size(sf);
    assert_true(n < 2048);
    return parley__stream__server_frame__pack(sf, buf);
}

static void test_server_frames_decode(void **state)
{
    uint8_t buf[2048], ct[200];
    struct ps_server_frame f;
    size_t n;

    (void)state;
    memset(ct, 0x5a, sizeof ct);
    {
        Parley__Stream__ServerFrame sf = PARLEY__STREAM__SERVER_FRAME__INIT;
        Parley__Stream__Envelope env = PARLEY__STREAM__ENVELOPE__INIT;
        env.envelope_id = 123456789012ull;
        env.sender_user = (char *)user_id;
        env.sender_username = (char *)"alice";
        env.sender_device = (char *)dev_id;
        env.server_time_ms = 1767225600000;
        env.ciphertext.data = ct;
        env.ciphertext.len = sizeof ct;
        sf.body_case = PARLEY__STREAM__SERVER_FRAME__BODY_ENVELOPE;
        sf.envelope = &env;
        n = pack_server(&sf, buf);
        assert_int_equal(ps_server_decode(buf, n, &f), 0);
        assert_int_equal(f.body, PS_ENVELOPE);
        assert_int_equal(f.id, 0);
        assert_int_equal(f.envelope_id, 123456789012ull);
        assert_int_equal(f.kind, 0);
        assert_int_equal(f.ct_len, sizeof ct);
        assert_memory_equal(f.ciphertext, ct, sizeof ct);
    }
    {
        Parley__Stream__ServerFrame sf = PARLEY__STREAM__SERVER_FRAME__INIT;
        Parley__Stream__SendResult sr = PARLEY__STREAM__SEND_RESULT__INIT;
        sr.status = PARLEY__STREAM__SEND_RESULT__STATUS__STALE_DEVICES;
        sr.server_time_ms = 99;
        sf.id = 77;
        sf.body_case = PARLEY__STREAM__SERVER_FRAME__BODY_SEND_RESULT;
        sf.send_result = &sr;
        n = pack_server(&sf, buf);
        assert_int_equal(ps_server_decode(buf, n, &f), 0);
        assert_int_equal(f.body, PS_SEND_RESULT);
        assert_int_equal(f.id, 77);
        assert_int_equal(f.status, 2);
    }
    {
        /* status OK is proto3's default: an empty SendResult must still be a SendResult */
        Parley__Stream__ServerFrame sf = PARLEY__STREAM__SERVER_FRAME__INIT;
        Parley__Stream__SendResult sr = PARLEY__STREAM__SEND_RESULT__INIT;
        sf.id = 5;
        sf.body_case = PARLEY__STREAM__SERVER_FRAME__BODY_SEND_RESULT;
        sf.send_result = &sr;
        n = pack_server(&sf, buf);
        assert_int_equal(ps_server_decode(buf, n, &f), 0);
        assert_int_equal(f.body, PS_SEND_RESULT);
        assert_int_equal(f.status, 0);
    }
    {
        Parley__Stream__ServerFrame sf = PARLEY__STREAM__SERVER_FRAME__INIT;
        Parley__Stream__Error err = PARLEY__STREAM__ERROR__INIT;
        err.code = (char *)"queue_full";
        err.message = (char *)"a recipient device holds too many envelopes";
        sf.id = 9;
        sf.body_case = PARLEY__STREAM__SERVER_FRAME__BODY_ERROR;
        sf.error = &err;
        n = pack_server(&sf, buf);
        assert_int_equal(ps_server_decode(buf, n, &f), 0);
        assert_int_equal(f.body, PS_ERROR);
        assert_int_equal(f.err_code_len, strlen("queue_full"));
        assert_memory_equal(f.err_code, "queue_full", f.err_code_len);
    }
    {
        Parley__Stream__ServerFrame sf = PARLEY__STREAM__SERVER_FRAME__INIT;
        Parley__Stream__Drained dr = PARLEY__STREAM__DRAINED__INIT;
        Parley__Stream__AckResult ar = PARLEY__STREAM__ACK_RESULT__INIT;
        dr.delivered = 4242;
        sf.body_case = PARLEY__STREAM__SERVER_FRAME__BODY_DRAINED;
        sf.drained = &dr;
        n = pack_server(&sf, buf);
        assert_int_equal(ps_server_decode(buf, n, &f), 0);
        assert_int_equal(f.body, PS_DRAINED);
        assert_int_equal(f.count, 4242);
        ar.deleted = 31;
        sf.id = 12;
        sf.body_case = PARLEY__STREAM__SERVER_FRAME__BODY_ACK_RESULT;
        sf.ack_result = &ar;
        n = pack_server(&sf, buf);
        assert_int_equal(ps_server_decode(buf, n, &f), 0);
        assert_int_equal(f.body, PS_ACK_RESULT);
        assert_int_equal(f.count, 31);
        /* every truncation is rejected or decodes without reading past the end */
        for (size_t k = 0; k < n; k++)
            (void)ps_server_decode(buf, k, &f);
    }
    /* malformed: field number 0, a length past the end */
    {
        const uint8_t zero_field[] = {0x00, 0x01};
        const uint8_t long_len[] = {0x32, 0x10, 0x08};
        assert_int_equal(ps_server_decode(zero_field, sizeof zero_field, &f), -1);
        assert_int_equal(ps_server_decode(long_len, sizeof long_len, &f), -1);
    }
}

static void test_mqtt_packets(void **state)
{
    uint8_t buf[512], payload[200];
    struct mqtt_packet p;
    size_t n;
    /* MQTT 3.1.1 §3.1: CONNECT, "MQTT" level 4, clean session, keepalive 0, id "ab" */
    static const uint8_t connect_clean[] = {0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02,
                                            0, 0, 0, 2, 'a', 'b'};
    static const uint8_t subscribe[] = {0x82, 8, 0, 1, 0, 3, 't', '/', '1', 1};

    (void)state;
    n = mqtt_connect_encode(buf, sizeof buf, "ab", true, 0);
    assert_int_equal(n, sizeof connect_clean);
    assert_memory_equal(buf, connect_clean, n);
    n = mqtt_connect_encode(buf, sizeof buf, "ab", false, 0);
    assert_int_equal(buf[9], 0x00);
    n = mqtt_subscribe_encode(buf, sizeof buf, 1, "t/1", 1);
    assert_int_equal(n, sizeof subscribe);
    assert_memory_equal(buf, subscribe, n);

    memset(payload, 0xc3, sizeof payload);
    n = mqtt_publish_encode(buf, sizeof buf, "relay/7", 513, payload, sizeof payload);
    assert_int_equal(buf[0], 0x32);                   /* PUBLISH, QoS 1 */
    assert_int_equal(buf[1], 0x80 | ((2 + 7 + 2 + 200) & 0x7f)); /* two-byte length */
    assert_int_equal(buf[2], (2 + 7 + 2 + 200) >> 7);
    assert_int_equal(mqtt_parse(buf, n, 1024, &p), 1);
    assert_int_equal(p.type, MQTT_PUBLISH);
    assert_int_equal(p.pid, 513);
    assert_int_equal(p.topic_len, 7);
    assert_memory_equal(p.topic, "relay/7", 7);
    assert_int_equal(p.payload_len, sizeof payload);
    assert_memory_equal(p.payload, payload, sizeof payload);
    assert_int_equal(p.consumed, n);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(mqtt_parse(buf, k, 1024, &p), 0); /* incomplete: need more */
    assert_int_equal(mqtt_parse(buf, n, 100, &p), -1);    /* over the limit */

    n = mqtt_puback_encode(buf, sizeof buf, 0x1234);
    assert_int_equal(n, 4);
    assert_int_equal(mqtt_parse(buf, n, 1024, &p), 1);
    assert_int_equal(p.type, MQTT_PUBACK);
    assert_int_equal(p.pid, 0x1234);
    {
        static const uint8_t connack[] = {0x20, 2, 1, 0};
        static const uint8_t suback[] = {0x90, 3, 0, 1, 1};
        assert_int_equal(mqtt_parse(connack, sizeof connack, 1024, &p), 1);
        assert_int_equal(p.type, MQTT_CONNACK);
        assert_int_equal(p.rc, 0);
        assert_int_equal(mqtt_parse(suback, sizeof suback, 1024, &p), 1);
        assert_int_equal(p.type, MQTT_SUBACK);
        assert_int_equal(p.rc, 1);
    }
    n = mqtt_disconnect_encode(buf, sizeof buf);
    assert_int_equal(n, 2);
    assert_int_equal(buf[0], 0xe0);
}

static void test_ws_frames(void **state)
{
    static uint8_t buf[70000 + WSC_HEADER_MAX], data[70000];
    const size_t lens[] = {0, 125, 126, 204, 65535, 65536, 70000};
    const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
    struct wsc_frame f;

    (void)state;
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 13);
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        size_t len = lens[k], h = wsc_frame_header(buf, WSC_BINARY, len, mask);
        assert_int_equal(h, (len < 126 ? 2 : len <= 0xffff ? 4 : 10) + 4);
        assert_int_equal(buf[0], 0x82);
        assert_true(buf[1] & 0x80);
        memcpy(buf + h, data, len);
        wsc_mask(buf + h, len, mask);
        if (len)
            assert_true(len < 4 || memcmp(buf + h, data, len) != 0);
        assert_int_equal(wsc_frame_parse(buf, h + len - (len ? 1 : 0), sizeof data, &f),
                         len ? 0 : 1);
        assert_int_equal(wsc_frame_parse(buf, h + len, sizeof data, &f), 1);
        assert_int_equal(f.opcode, WSC_BINARY);
        assert_true(f.fin);
        assert_int_equal(f.len, len);
        assert_int_equal(f.consumed, h + len);
        assert_memory_equal(f.payload, data, len);
    }
    /* a server frame (unmasked) and the size limit */
    {
        uint8_t srv[] = {0x89, 3, 'a', 'b', 'c'};
        assert_int_equal(wsc_frame_parse(srv, sizeof srv, 10, &f), 1);
        assert_int_equal(f.opcode, WSC_PING);
        assert_int_equal(f.len, 3);
        assert_int_equal(wsc_frame_parse(srv, sizeof srv, 2, &f), -1);
        srv[0] = 0xc2; /* RSV1 without an extension */
        assert_int_equal(wsc_frame_parse(srv, sizeof srv, 10, &f), -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_decodes_with_protobuf_c),
        cmocka_unit_test(test_ack_decodes_with_protobuf_c),
        cmocka_unit_test(test_server_frames_decode),
        cmocka_unit_test(test_mqtt_packets),
        cmocka_unit_test(test_ws_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
