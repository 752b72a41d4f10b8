/*
 * frame.h — decoding and validating one client frame of the stream (/v1/stream).
 *
 * This is the only place where bytes from a WebSocket become a ClientFrame: the server
 * and the fuzzer (tests/fuzz/fuzz_stream_frame.c) both call frame_decode, so whatever
 * the fuzzer proves holds for the server. It is pure (no I/O, no globals, any thread).
 *
 * The decoder is frame.c's own (not protobuf-c's generic unpacker, which cost ~2,200
 * instructions a frame) but fills the generated protobuf-c structs and accepts exactly
 * the bytes protobuf-c 1.4 accepts; the fuzzer checks both against each other.
 *
 * Decoding is bounded twice: the input is at most FRAME_MAX_BYTES, and the decoder
 * allocates from a budget (FRAME_ALLOC_BUDGET), so a frame of many tiny repeated
 * fields cannot turn one megabyte on the wire into a hundred in memory.
 *
 * Outcomes (frame_decode's return value):
 *   FRAME_OK       out->cf is a valid request; out->id its id, non-zero but for an Ack
 *                  (an Ack with id 0 wants no AckResult).
 *   FRAME_INVALID  the bytes are not a usable frame (not protobuf, no body, id 0 on a
 *                  frame other than an Ack):
 *                  answer Error{code "invalid_frame"} with id 0 and count it against
 *                  the connection.
 *   FRAME_REFUSED  a well-formed frame whose request is refused: answer Error with
 *                  out->id, out->code and out->message (static strings).
 */
#ifndef PARLEY_SERVER_STREAM_FRAME_H
#define PARLEY_SERVER_STREAM_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "proto/stream.pb-c.h"

#define FRAME_MAX_BYTES (1u << 20)          /* one WebSocket message (transport limit) */
#define FRAME_ALLOC_BUDGET (8u << 20)       /* bytes the decoder may allocate per frame */
#define FRAME_MAX_COPIES 1536               /* 256 group members x 6 devices */
#define FRAME_MAX_ACK_IDS 1024              /* envelope ids in one Ack */
#define FRAME_MSGID_BYTES 16

enum frame_status { FRAME_OK = 0, FRAME_INVALID, FRAME_REFUSED };

struct frame_limits {
    size_t max_envelope; /* bytes of one copy's ciphertext (config max_envelope) */
    size_t max_copies;   /* 0 = FRAME_MAX_COPIES */
    size_t max_ack_ids;  /* 0 = FRAME_MAX_ACK_IDS */
};

/* Private to frame.c: where the decoded structs come from while a frame is decoded. It
 * lives in the caller's frame_result (usually on the stack): blocks are cut from the
 * inline area (a Send with one copy fits), then malloc'd, and all go in frame_release.
 * Under AddressSanitizer the area is empty, so every block is its own allocation and
 * the fuzzer still sees each one's bounds. */
#if defined(__SANITIZE_ADDRESS__)
#define FRAME_ARENA_INLINE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FRAME_ARENA_INLINE 0
#endif
#endif
#ifndef FRAME_ARENA_INLINE
#define FRAME_ARENA_INLINE 2048
#endif
union frame_block {
    union frame_block *next; /* a malloc'd block: the list frame_release frees */
    max_align_t align;
};
struct frame_arena {
    size_t left;              /* of FRAME_ALLOC_BUDGET */
    size_t used;              /* of the inline area */
    union frame_block *heap;  /* malloc'd blocks */
    union frame_block area[FRAME_ARENA_INLINE / sizeof(union frame_block) + 1];
};

/* cf BORROWS data: the bytes fields (client_message_id, ciphertext) point into it, so
 * cf is valid only while data is (and until frame_release). Strings are copies. cf is
 * also set on FRAME_REFUSED, and on FRAME_INVALID for a decoded frame with id 0: it is
 * NULL exactly when the bytes were not decoded (empty, too long) or did not decode. */
struct frame_result {
    Parley__Stream__ClientFrame *cf; /* use on FRAME_OK only; release with frame_release */
    uint64_t id;                     /* request id (0 when unknown) */
    const char *code;                /* FRAME_INVALID / FRAME_REFUSED: error code */
    const char *message;             /* and a short static explanation */
    struct frame_arena arena;        /* private */
};

/* Decode and validate data. Always fills *out (release it with frame_release, also on
 * error). Checks for a Send: client_message_id exactly 16 bytes; exactly one target,
 * a well-formed id; 1..max_copies copies, each for a well-formed device id appearing
 * once, with 1..max_envelope bytes of ciphertext (larger: "too_large"). For an Ack:
 * 1..max_ack_ids ids, none 0. */
enum frame_status frame_decode(const uint8_t *data, size_t len, const struct frame_limits *lim,
                               struct frame_result *out);
/* Free what frame_decode allocated. Accepts a zeroed or already-released result. */
void frame_release(struct frame_result *r);

#endif
