/*
 * fuzz_http_request.c — libFuzzer target for the server's request path: arbitrary bytes
 * go through a real connection object (http-parser, limits, router, dispatch, response
 * writing, and after an upgrade to GET /ws the WebSocket frame path) with no socket.
 * The first input byte picks the chunk size the bytes are fed in and whether tight
 * limits are used, so split points and limit edges are explored too.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http_conn_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    struct http_limits lim;
    memset(&lim, 0, sizeof lim);
    if (mode & 0x80) {
        lim.max_request_line = 64;
        lim.max_header_bytes = 256;
        lim.max_headers = 4;
        lim.max_body = 128;
        lim.max_output_queue = 4096;
        lim.ws_max_frame = 64;
        lim.ws_max_message = 128;
    }
    size_t chunk = mode & 0x7f; /* 0 = everything at once */
    struct buf out;
    buf_init(&out, 1 << 20);
    if (http_conn_feed_socketless(&lim, data, size, chunk, &out) != PARLEY_OK) {
        /* set-up failed (out of memory): nothing to check */
    }
    buf_cleanup(&out);
    return 0;
}
