/*
 * fuzz_stream_frame.c — libFuzzer target for the stream's frame decoder
 * (server/stream/frame.c), the same function the server calls on every WebSocket
 * message. On FRAME_OK the frame must satisfy every rule the server relies on
 * afterwards (a non-zero id but on an Ack, a known body, a 16-byte message id, valid
 * distinct device ids, sizes within the limits), else the target aborts. frame_release
 * runs on every path, so leaks and double frees show under ASan.
 *
 * Differential: frame.c decodes by hand, so every input is also unpacked by protobuf-c
 * (parley__stream__client_frame__unpack, default allocator). Both must accept or both
 * reject, and when both accept, every field the server reads must be equal.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stream/frame.h"
#include "fuzz_check.h"

static void check_id(const char *s)
{
    CHECK(s && strlen(s) == 32);
    for (size_t i = 0; i < 32; i++)
        CHECK((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'));
}

/* Above this size frame.c's allocation budget may refuse a frame protobuf-c (unbounded)
 * accepts: the decoder allocates at most ~40 bytes per input byte (an empty Send), and
 * FRAME_ALLOC_BUDGET is 8 MB. libFuzzer's inputs stay far below it (-max_len 4096). */
#define DIFF_MAX_BYTES (128u << 10)

static void check_bytes(ProtobufCBinaryData a, ProtobufCBinaryData b)
{
    CHECK(a.len == b.len);
    CHECK(a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

static void check_send_equal(const Parley__Stream__Send *a, const Parley__Stream__Send *b)
{
    check_bytes(a->client_message_id, b->client_message_id);
    CHECK(a->target_case == b->target_case);
    if (a->target_case == PARLEY__STREAM__SEND__TARGET_TO_USER)
        CHECK(strcmp(a->to_user, b->to_user) == 0);
    else if (a->target_case == PARLEY__STREAM__SEND__TARGET_GROUP_ID)
        CHECK(strcmp(a->group_id, b->group_id) == 0);
    CHECK(a->n_copies == b->n_copies);
    for (size_t i = 0; i < a->n_copies; i++) {
        CHECK(strcmp(a->copies[i]->device_id, b->copies[i]->device_id) == 0);
        check_bytes(a->copies[i]->ciphertext, b->copies[i]->ciphertext);
    }
}

/* ours: frame_decode's cf (NULL when the bytes did not decode); ref: protobuf-c's. */
static void check_equal(const Parley__Stream__ClientFrame *ours,
                        const Parley__Stream__ClientFrame *ref)
{
    CHECK(!ours == !ref);
    if (!ours)
        return;
    CHECK(ours->id == ref->id);
    CHECK(ours->body_case == ref->body_case);
    switch (ours->body_case) {
    case PARLEY__STREAM__CLIENT_FRAME__BODY_SEND:
        check_send_equal(ours->send, ref->send);
        break;
    case PARLEY__STREAM__CLIENT_FRAME__BODY_ACK:
        CHECK(ours->ack->n_envelope_ids == ref->ack->n_envelope_ids);
        for (size_t i = 0; i < ours->ack->n_envelope_ids; i++)
            CHECK(ours->ack->envelope_ids[i] == ref->ack->envelope_ids[i]);
        break;
    case PARLEY__STREAM__CLIENT_FRAME__BODY_PING:
        CHECK(ours->ping && ref->ping);
        break;
    default:
        CHECK(ours->body_case == PARLEY__STREAM__CLIENT_FRAME__BODY__NOT_SET);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct frame_limits lim = {64, 8, 16};
    struct frame_result r;
    enum frame_status st = frame_decode(data, size, &lim, &r);
    if (st == FRAME_OK) {
        const Parley__Stream__ClientFrame *cf = r.cf;
        CHECK(cf && r.id == cf->id);
        CHECK(cf->id != 0 || cf->body_case == PARLEY__STREAM__CLIENT_FRAME__BODY_ACK);
        if (cf->body_case == PARLEY__STREAM__CLIENT_FRAME__BODY_SEND) {
            const Parley__Stream__Send *s = cf->send;
            CHECK(s->client_message_id.len == 16);
            CHECK(s->n_copies >= 1 && s->n_copies <= lim.max_copies);
            if (s->target_case == PARLEY__STREAM__SEND__TARGET_TO_USER)
                check_id(s->to_user);
            else
                check_id(s->group_id);
            for (size_t i = 0; i < s->n_copies; i++) {
                check_id(s->copies[i]->device_id);
                CHECK(s->copies[i]->ciphertext.len >= 1 &&
                      s->copies[i]->ciphertext.len <= lim.max_envelope);
                for (size_t k = 0; k < i; k++)
                    CHECK(strcmp(s->copies[i]->device_id, s->copies[k]->device_id) != 0);
            }
        } else if (cf->body_case == PARLEY__STREAM__CLIENT_FRAME__BODY_ACK) {
            CHECK(cf->ack->n_envelope_ids >= 1 && cf->ack->n_envelope_ids <= lim.max_ack_ids);
            for (size_t i = 0; i < cf->ack->n_envelope_ids; i++)
                CHECK(cf->ack->envelope_ids[i] != 0);
        } else {
            CHECK(cf->body_case == PARLEY__STREAM__CLIENT_FRAME__BODY_PING);
        }
    } else {
        CHECK(r.code && r.message);
        /* A refusal is answered with the request's id: non-zero, but for an id-0 ack */
        CHECK(st == FRAME_INVALID || r.id != 0 ||
              (r.cf && r.cf->body_case == PARLEY__STREAM__CLIENT_FRAME__BODY_ACK));
    }
    if (size > 0 && size <= DIFF_MAX_BYTES) { /* frame_decode refuses 0 bytes unread */
        Parley__Stream__ClientFrame *ref = parley__stream__client_frame__unpack(NULL, size, data);
        check_equal(r.cf, ref);
        parley__stream__client_frame__free_unpacked(ref, NULL);
    }
    frame_release(&r);
    return 0;
}
