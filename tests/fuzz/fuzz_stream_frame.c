/*
 * fuzz_stream_frame.c — libFuzzer target for the stream's frame decoder
 * (server/stream/frame.c), the same function the server calls on every WebSocket
 * message. On FRAME_OK the frame must satisfy every rule the server relies on
 * afterwards (non-zero id, a known body, a 16-byte message id, valid distinct device
 * ids, sizes within the limits), else the target aborts. frame_release runs on every
 * path, so leaks and double frees show under ASan.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stream/frame.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            abort();                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_id(const char *s)
{
    CHECK(s && strlen(s) == 32);
    for (size_t i = 0; i < 32; i++)
        CHECK((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct frame_limits lim = {64, 8, 16};
    struct frame_result r;
    enum frame_status st = frame_decode(data, size, &lim, &r);
    if (st == FRAME_OK) {
        const Parley__Stream__ClientFrame *cf = r.cf;
        CHECK(cf && cf->id != 0 && r.id == cf->id);
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
        CHECK(st == FRAME_INVALID || r.id != 0);
    }
    frame_release(&r);
    return 0;
}
