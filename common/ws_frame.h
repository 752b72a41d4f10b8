/*
 * ws_frame.h — RFC 6455 frame reading primitives: parse one frame header, unmask a
 * payload. Pure functions over caller-owned bytes: no I/O, no allocation, no globals,
 * safe from any thread.
 *
 * The parser enforces only what the header alone decides and the RFC makes a framing
 * error: the minimal length encoding (the 16-bit form carries >= 126, the 64-bit form
 * >= 65536 with its top bit clear) and the control-frame rules (FIN set, payload <= 125,
 * checked from the first two bytes). Everything that depends on the connection's
 * state or policy (masking required, RSV bits, known opcodes, continuation order, size
 * limits) is the caller's decision, with the fields reported here.
 *
 * Used by ws_server.c (the server's receive path) and by its tests and fuzz target.
 */
#ifndef PARLEY_WS_FRAME_H
#define PARLEY_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_FRAME_MAX_HEADER 14 /* 2 + 8-byte length + 4-byte mask key */

enum ws_frame_status {
    WS_FRAME_OK = 0,
    WS_FRAME_NEED_MORE,    /* the header is not complete in the bytes given */
    WS_FRAME_BAD_LENGTH,   /* non-minimal 16/64-bit length, or 64-bit top bit set */
    WS_FRAME_BAD_CONTROL,  /* control frame (opcode & 8) without FIN or longer than 125 */
};

/* Opcodes (RFC 6455 §5.2); bit 3 marks control frames. */
enum {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xa,
};

struct ws_frame_hdr {
    uint64_t payload_len;
    uint8_t header_len;    /* bytes of header, mask key included (2..14) */
    uint8_t opcode;        /* 0..15, not checked against the known ones */
    uint8_t rsv;           /* RSV1..3 as bits 2..0 */
    bool fin, masked;
    uint8_t mask[4];       /* the key when masked, zeros otherwise */
};

/* Parse the frame header at p[0..len).
 * WS_FRAME_OK: *out is filled; the payload starts at p + out->header_len.
 * WS_FRAME_NEED_MORE: only out->header_len is written: the number of bytes the whole
 *   header needs (exact once 2 bytes are there; 2 before that), always > len.
 * Errors: *out is not written. Reads no byte at or past p + len (p may be NULL when
 * len is 0). */
enum ws_frame_status ws_frame_header(const uint8_t *p, size_t len, struct ws_frame_hdr *out);

/* Write the header of a whole unmasked frame (FIN set, RSV clear: what a server sends)
 * of `opcode` with a payload of len bytes into out, which has room for
 * WS_FRAME_MAX_HEADER bytes; returns its length (2, 4 or 10). The shortest length
 * encoding is used, as RFC 6455 5.2 requires. */
size_t ws_frame_header_write(uint8_t *out, uint8_t opcode, uint64_t len);

/* dst[i] = src[i] ^ mask[(offset + i) % 4] for i < len: unmask (or mask) the len payload
 * bytes that start at payload offset `offset`, so a payload split across reads unmasks
 * piece by piece with its running offset. dst may equal src (in place); otherwise the
 * two must not overlap. Works a 64-bit word at a time. */
void ws_unmask(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t mask[4],
               uint64_t offset);

#endif
