/*
 * ws_server.c — WebSocket on an upgraded server connection: the RFC 6455 handshake,
 * frames read by ws_frame.c and written here (a header, then the payload, straight into
 * the connection's output), messages, ping/pong, close.
 *
 * Memory: an idle WebSocket is its http_conn and nothing else: struct ws_conn (48
 * bytes) is embedded in the connection, in the memory its HTTP parser and request
 * pointers used before the upgrade (http_conn_int.h). Receive state (struct ws_rx:
 * a split header, the frame/message progress, a split control payload and the message
 * buffer) is taken from a per-loop pool only when input ends inside a frame or a
 * fragmented message, and given back as soon as the input ends on a frame boundary
 * outside a fragmented message; only a connection with a partial frame or message
 * keeps one. A frame that is whole in the input and not part of a fragmented message
 * needs no state at all: it is unmasked from the input into the loop's scratch buffer
 * and delivered from there (one pass over the payload). A message buffer exists only
 * while a message spans several reads or frames; it receives the payload unmasked as
 * it arrives. Sending needs no state: a frame goes out whole, its 2-10 byte header
 * written in front of the payload.
 *
 * Limits: a frame longer than ws_max_frame or a message longer than ws_max_message
 * closes with 1009 as soon as its header arrives; unmasked client frames, reserved bits,
 * unknown opcodes, bad continuation, bad lengths, bad control frames (fragmented or
 * over 125 bytes) and bad close payloads close with 1002; invalid UTF-8 in a text
 * message or close reason closes with 1007.
 */
#include "http_conn_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ws_frame.h"
#include "ws_handshake.h"

/* Whole unfragmented frames up to this size are unmasked into the loop's scratch buffer
 * (one socket read is at most HTTP_READ_BUF_SIZE); larger ones go through a message
 * buffer like a partial frame. */
#define WS_SCRATCH_SIZE HTTP_READ_BUF_SIZE

/* Receive progress: exists only while a frame or a fragmented message is partly in. */
struct ws_rx {
    struct buf msg;                     /* the message so far, unmasked */
    uint64_t frame_len, frame_got;      /* current frame's payload: size, received */
    uint8_t mask[4];                    /* current frame's key */
    uint8_t hdr[WS_FRAME_MAX_HEADER];   /* a header split across reads */
    uint8_t hdr_len;
    uint8_t frame_op, msg_op;
    bool frame_fin, in_frame, in_msg;
    uint8_t ctrl[125];                  /* a control frame's payload split across reads */
};

enum parley_err ws_loop_init(struct http_loop *l)
{
    l->ws_rx_pool_n = 0;
    l->ws_scratch = NULL;
    return PARLEY_OK;
}

static void rx_free(struct ws_rx *rx)
{
    if (!rx)
        return;
    buf_cleanup(&rx->msg);
    free(rx);
}

void ws_loop_cleanup(struct http_loop *l)
{
    free(l->ws_scratch);
    l->ws_scratch = NULL;
    while (l->ws_rx_pool_n)
        rx_free(l->ws_rx_pool[--l->ws_rx_pool_n]);
}

/* A receive state at a frame and message boundary (from the pool or new), or NULL. */
static struct ws_rx *rx_get(struct http_loop *l)
{
    struct ws_rx *rx;
    if (l->ws_rx_pool_n) {
        rx = l->ws_rx_pool[--l->ws_rx_pool_n];
        memset(rx, 0, sizeof *rx);
    } else {
        rx = calloc(1, sizeof *rx);
        if (!rx)
            return NULL;
    }
    buf_init(&rx->msg, l->srv->cfg.limits.ws_max_message);
    return rx;
}

/* Give rx back, whatever its progress (its message buffer is released). */
static void rx_put(struct http_loop *l, struct ws_rx *rx)
{
    buf_cleanup(&rx->msg);
    if (l->ws_rx_pool_n < WS_RX_POOL_MAX)
        l->ws_rx_pool[l->ws_rx_pool_n++] = rx;
    else
        rx_free(rx);
}

/* ---------------------------------------------------------------- output */

static const struct http_limits *limits_of(const struct ws_conn *ws)
{
    return &ws_conn_of(ws)->loop->srv->cfg.limits;
}

/* A whole frame into the connection's output: its header written here (a server's
 * frames are unmasked and never fragmented), then the payload. */
static enum parley_err send_frame(struct ws_conn *ws, uint8_t opcode, const void *data,
                                  size_t len)
{
    struct http_conn *c = ws_conn_of(ws);
    const struct http_limits *lim = limits_of(ws);
    if (c->closing)
        return PARLEY_ERR_CLOSED;
    if (len > lim->max_output_queue ||
        http_conn_queued(c) + WS_FRAME_MAX_HEADER > lim->max_output_queue - len) {
        if (!ws->close_code)
            ws->close_code = 1008;
        http_conn_close(c);
        return PARLEY_ERR_LIMIT;
    }
    uint8_t hdr[WS_FRAME_MAX_HEADER];
    size_t hn = ws_frame_header_write(hdr, opcode, len);
    struct buf *out = http_conn_output(c);
    enum parley_err err = buf_append(out, hdr, hn);
    if (!err)
        err = buf_append(out, data, len);
    if (err) {
        http_conn_close(c); /* a frame cut short must not go out */
        return err;
    }
    http_conn_mark_dirty(c);
    return PARLEY_OK;
}

enum parley_err ws_send(struct ws_conn *ws, bool binary, const void *data, size_t len)
{
    if (!ws)
        return PARLEY_ERR_CLOSED;
    const struct http_conn *c = ws_conn_of(ws);
    if (c->closing || c->close_after_flush || ws->close_sent)
        return PARLEY_ERR_CLOSED;
    return send_frame(ws, binary ? WS_OP_BINARY : WS_OP_TEXT, data ? data : "",
                      data ? len : 0);
}

static void send_close(struct ws_conn *ws, uint16_t code, const char *reason)
{
    if (ws->close_sent)
        return;
    ws->close_sent = true;
    uint8_t payload[125];
    size_t n = 0;
    if (code != 1005 && code != 0) {
        payload[0] = (uint8_t)(code >> 8);
        payload[1] = (uint8_t)code;
        n = 2;
        size_t rl = reason ? strlen(reason) : 0;
        if (rl > sizeof payload - 2)
            rl = sizeof payload - 2;
        if (rl)
            memcpy(payload + 2, reason, rl);
        n += rl;
    }
    (void)send_frame(ws, WS_OP_CLOSE, payload, n);
}

void ws_close(struct ws_conn *ws, uint16_t code, const char *reason)
{
    if (!ws || ws_conn_of(ws)->closing || ws->close_sent)
        return;
    if (!ws->close_code)
        ws->close_code = code;
    send_close(ws, code, reason);
    if (ws->close_rcvd)
        http_conn_close_after_flush(ws_conn_of(ws));
    else
        http_conn_set_deadline(ws_conn_of(ws), DL_HARD, WS_CLOSE_WAIT_MS);
}

/* Protocol violation: send close(code) and drop the connection after the write. */
static void ws_fail(struct ws_conn *ws, uint16_t code, const char *reason)
{
    ws->failed = true;
    if (!ws->close_code)
        ws->close_code = code;
    send_close(ws, code, reason);
    http_conn_close_after_flush(ws_conn_of(ws));
}

struct http_loop *ws_loop(const struct ws_conn *ws)
{
    return ws ? ws_conn_of(ws)->loop : NULL;
}

void ws_set_tick(struct ws_conn *ws, ws_tick_fn fn)
{
    if (ws)
        ws->tick = fn;
}

/* ----------------------------------------------------------------- input */

static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

static bool close_code_ok(uint16_t code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

static void deliver(struct ws_conn *ws, uint8_t op, const uint8_t *data, size_t len)
{
    if (ws->close_sent)
        return;
    if (op == WS_OP_TEXT && !utf8_valid(data, len)) {
        ws_fail(ws, 1007, "invalid utf-8");
        return;
    }
    if (ws->cb->on_message)
        ws->cb->on_message(ws, op == WS_OP_BINARY, len ? data : (const uint8_t *)"", len,
                          ws->user);
}

static void on_control(struct ws_conn *ws, uint8_t op, const uint8_t *p, size_t n)
{
    switch (op) {
    case WS_OP_PING:
        if (!ws->close_sent)
            (void)send_frame(ws, WS_OP_PONG, p, n);
        break;
    case WS_OP_PONG:
        break;
    case WS_OP_CLOSE: {
        ws->close_rcvd = true;
        uint16_t code = 1005;
        if (n == 1) {
            ws_fail(ws, 1002, "bad close frame");
            return;
        }
        if (n >= 2) {
            code = (uint16_t)((p[0] << 8) | p[1]);
            if (!close_code_ok(code)) {
                ws_fail(ws, 1002, "bad close code");
                return;
            }
            if (!utf8_valid(p + 2, n - 2)) {
                ws_fail(ws, 1007, "invalid utf-8");
                return;
            }
        }
        if (!ws->close_code)
            ws->close_code = code;
        send_close(ws, code, NULL);
        http_conn_close_after_flush(ws_conn_of(ws));
        break;
    }
    default:
        break;
    }
}

/* No input is read once the connection fails, closes or has the peer's close frame. */
static bool rx_stopped(const struct ws_conn *ws)
{
    const struct http_conn *c = ws_conn_of(ws);
    return ws->failed || ws->close_rcvd || c->closing || c->close_after_flush;
}

/* ws's receive state, taken from the pool when it has none. NULL when out of memory:
 * the connection is then closed. */
static struct ws_rx *rx_attach(struct ws_conn *ws)
{
    if (!ws->rx) {
        ws->rx = rx_get(ws_conn_of(ws)->loop);
        if (!ws->rx)
            http_conn_close(ws_conn_of(ws));
    }
    return ws->rx;
}

/* The loop's unmask buffer (WS_SCRATCH_SIZE), allocated on first use; NULL when out of
 * memory. Its contents are only valid until the frame in it has been delivered. */
static uint8_t *scratch_of(struct http_loop *l)
{
    if (!l->ws_scratch)
        l->ws_scratch = malloc(WS_SCRATCH_SIZE);
    return l->ws_scratch;
}

/* Check a parsed header against the connection's state and limits, in the order the
 * close codes have always been chosen in. false: ws has failed. */
static bool frame_ok(struct ws_conn *ws, const struct ws_frame_hdr *h)
{
    const struct http_limits *lim = limits_of(ws);
    const struct ws_rx *rx = ws->rx;
    bool in_msg = rx && rx->in_msg;
    const char *err = NULL;
    if (!h->masked)
        err = "client frames must be masked";
    else if (h->rsv)
        err = "reserved bits set";
    else if (h->opcode == WS_OP_CONT && !in_msg)
        err = "unexpected continuation";
    else if ((h->opcode == WS_OP_TEXT || h->opcode == WS_OP_BINARY) && in_msg)
        err = "expected continuation";
    else if (h->opcode > WS_OP_BINARY && h->opcode != WS_OP_CLOSE && h->opcode != WS_OP_PING &&
             h->opcode != WS_OP_PONG)
        err = "unknown opcode";
    if (err) {
        ws_fail(ws, 1002, err);
        return false;
    }
    if (h->payload_len > lim->ws_max_frame) {
        ws_fail(ws, 1009, "frame too big");
        return false;
    }
    size_t so_far = in_msg ? rx->msg.len : 0;
    if (!(h->opcode & 8) && h->payload_len > lim->ws_max_message - so_far) {
        ws_fail(ws, 1009, "message too big");
        return false;
    }
    return true;
}

/* The current frame's payload is complete: act on it. */
static void frame_end(struct ws_conn *ws, struct ws_rx *rx)
{
    rx->in_frame = false;
    if (rx->frame_op & 8) {
        on_control(ws, rx->frame_op, rx->ctrl, (size_t)rx->frame_len);
    } else if (rx->frame_fin) {
        rx->in_msg = false;
        deliver(ws, rx->msg_op, rx->msg.data, rx->msg.len);
        buf_cleanup(&rx->msg);
    }
}

/* Payload bytes of the frame in ws->rx: unmasked at their offset into the control or
 * message buffer. Returns the bytes of data consumed. */
static size_t frame_payload(struct ws_conn *ws, const uint8_t *data, size_t len)
{
    struct ws_rx *rx = ws->rx;
    uint64_t left = rx->frame_len - rx->frame_got;
    size_t n = left < len ? (size_t)left : len;
    if (rx->frame_op & 8) {
        ws_unmask(rx->ctrl + rx->frame_got, data, n, rx->mask, rx->frame_got);
    } else if (n) {
        if (buf_append(&rx->msg, data, n)) {
            ws_fail(ws, 1011, "out of memory");
            return len;
        }
        uint8_t *p = rx->msg.data + rx->msg.len - n;
        ws_unmask(p, p, n, rx->mask, rx->frame_got);
    }
    rx->frame_got += n;
    if (rx->frame_got == rx->frame_len)
        frame_end(ws, rx);
    return n;
}

/* An accepted header; body[0..len) is the input after it. A frame that is whole in the
 * input and needs no assembly is unmasked once and handled on the spot; any other
 * starts a frame in ws->rx. Returns the bytes of body consumed. */
static size_t frame_begin(struct ws_conn *ws, const struct ws_frame_hdr *h,
                          const uint8_t *body, size_t len)
{
    bool whole = h->payload_len <= len;
    size_t n = whole ? (size_t)h->payload_len : 0;
    if (whole && (h->opcode & 8)) {
        uint8_t p[125]; /* ws_frame_header: control payloads are at most 125 bytes */
        ws_unmask(p, body, n, h->mask, 0);
        on_control(ws, h->opcode, p, n);
        return n;
    }
    /* FIN on a text/binary frame (frame_ok: not inside a message): a whole message. */
    if (whole && h->fin && h->opcode != WS_OP_CONT && n <= WS_SCRATCH_SIZE) {
        uint8_t *s = scratch_of(ws_conn_of(ws)->loop);
        if (s) {
            ws_unmask(s, body, n, h->mask, 0);
            deliver(ws, h->opcode, s, n);
            return n;
        }
    }
    struct ws_rx *rx = rx_attach(ws);
    if (!rx)
        return len;
    rx->in_frame = true;
    rx->frame_op = h->opcode;
    rx->frame_fin = h->fin;
    rx->frame_len = h->payload_len;
    rx->frame_got = 0;
    memcpy(rx->mask, h->mask, 4);
    if (h->opcode == WS_OP_TEXT || h->opcode == WS_OP_BINARY) {
        rx->in_msg = true;
        rx->msg_op = h->opcode;
    }
    return frame_payload(ws, body, len);
}

/* Input at a frame boundary: the next header (completing one split across reads) and
 * as much of its frame as is there. Returns the bytes of data consumed. */
static size_t frame_next(struct ws_conn *ws, const uint8_t *data, size_t len)
{
    struct ws_rx *rx = ws->rx;
    struct ws_frame_hdr h;
    enum ws_frame_status st;
    size_t used; /* bytes of data that belong to the header */
    if (rx && rx->hdr_len) {
        size_t add = WS_FRAME_MAX_HEADER - rx->hdr_len;
        if (add > len)
            add = len;
        memcpy(rx->hdr + rx->hdr_len, data, add);
        st = ws_frame_header(rx->hdr, rx->hdr_len + add, &h);
        if (st == WS_FRAME_NEED_MORE) { /* so add == len: a full header has <= 14 bytes */
            rx->hdr_len = (uint8_t)(rx->hdr_len + add);
            return add;
        }
        used = st == WS_FRAME_OK ? (size_t)(h.header_len - rx->hdr_len) : len;
        rx->hdr_len = 0;
    } else {
        st = ws_frame_header(data, len, &h);
        if (st == WS_FRAME_NEED_MORE) { /* len < h.header_len <= WS_FRAME_MAX_HEADER */
            if (!(rx = rx_attach(ws)))
                return len;
            memcpy(rx->hdr, data, len);
            rx->hdr_len = (uint8_t)len;
            return len;
        }
        used = h.header_len;
    }
    if (st != WS_FRAME_OK) {
        ws_fail(ws, 1002, st == WS_FRAME_BAD_CONTROL ? "bad control frame" : "bad frame length");
        return len;
    }
    if (!frame_ok(ws, &h))
        return len;
    return used + frame_begin(ws, &h, data + used, len - used);
}

void ws_feed(struct ws_conn *ws, const uint8_t *data, size_t len)
{
    struct http_conn *c = ws_conn_of(ws);
    struct http_loop *l = c->loop;
    if (rx_stopped(ws))
        return;
    ws->quiet_since_ms = l->uv_ready ? uv_now(&l->uv) : 0;
    ws->ping_sent = false;
    while (len && !rx_stopped(ws)) {
        size_t n = ws->rx && ws->rx->in_frame ? frame_payload(ws, data, len)
                                              : frame_next(ws, data, len);
        data += n;
        len -= n;
    }
    /* c may be closing but is not freed before the end of the pass: ws is valid. The
     * state goes back at a boundary, or once stopped (no more input is read then). */
    struct ws_rx *rx = ws->rx;
    if (rx && (rx_stopped(ws) || (!rx->in_frame && !rx->in_msg && !rx->hdr_len))) {
        rx_put(l, rx);
        ws->rx = NULL;
    }
}

/* Keep-alive: a ping after ws_ping_interval_ms without input, a close 1006 if nothing
 * came back within another interval. One timestamp serves both waits (the ping restarts
 * it), which keeps struct ws_conn within the HTTP state it replaces. */
void ws_tick(struct ws_conn *ws, uint64_t now_ms)
{
    struct http_conn *c = ws_conn_of(ws);
    uint32_t iv = limits_of(ws)->ws_ping_interval_ms;
    if (ws->close_sent || ws->failed || c->closing)
        return;
    if (ws->tick) {
        ws->tick(ws, now_ms, ws->user);
        if (ws->close_sent || ws->failed || c->closing)
            return;
    }
    if (!iv || now_ms - ws->quiet_since_ms < iv)
        return;
    if (ws->ping_sent) {
        if (!ws->close_code)
            ws->close_code = 1006; /* dead peer */
        http_conn_close(c);
        return;
    }
    if (send_frame(ws, WS_OP_PING, "parley", 6) == PARLEY_OK) {
        ws->ping_sent = true;
        ws->quiet_since_ms = now_ms;
    }
}

void ws_finish(struct ws_conn *ws)
{
    struct http_conn *c = ws_conn_of(ws);
    atomic_fetch_sub(&c->loop->srv->websockets_open, 1);
    uint16_t code = ws->close_code ? ws->close_code : 1006;
    if (ws->cb->on_close)
        ws->cb->on_close(ws, code, ws->user);
    rx_free(ws->rx);
    ws->rx = NULL;
    ws->tick = NULL;
}

/* ------------------------------------------------------------- handshake */

static bool has_token(const char *list, const char *tok)
{
    size_t tl = strlen(tok);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *s = p;
        while (*p && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) == tl && strncasecmp(s, tok, tl) == 0)
            return true;
    }
    return false;
}

static void trim_copy(char *dst, size_t cap, const char *src)
{
    while (*src == ' ' || *src == '\t')
        src++;
    size_t n = strlen(src);
    while (n && (src[n - 1] == ' ' || src[n - 1] == '\t'))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

enum parley_err http_upgrade_websocket(struct http_request *req, const struct ws_callbacks *cb,
                                       void *user, struct ws_conn **out)
{
    struct conn_req *r = (struct conn_req *)req;
    const char *upg = http_request_header(req, "Upgrade");
    const char *con = http_request_header(req, "Connection");
    const char *ver = http_request_header(req, "Sec-WebSocket-Version");
    const char *key = http_request_header(req, "Sec-WebSocket-Key");
    char k[64] = "", v[16] = "";
    if (key)
        trim_copy(k, sizeof k, key);
    if (ver)
        trim_copy(v, sizeof v, ver);
    bool ok = strcmp(req->method, "GET") == 0 && upg && has_token(upg, "websocket") && con &&
              has_token(con, "upgrade") && strcmp(v, "13") == 0 && ws_handshake_key_valid(k);
    if (!ok) {
        http_respond_error(req, 400, "bad_request", "invalid WebSocket handshake");
        return PARLEY_ERR_PROTO;
    }
    struct http_conn *c = r->conn;
    if (!c || c->closing || c->close_after_flush) {
        http_respond_error(req, 503, "unavailable", "connection gone");
        return PARLEY_ERR_CLOSED;
    }
    char accept[29];
    ws_handshake_accept(k, accept);
    char extra[160];
    snprintf(extra, sizeof extra,
             "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n",
             accept);
    /* From here c is a WebSocket: its HTTP state (the parser, r as the active request)
     * gives way to the WebSocket state in the same memory. r stays valid (it is its own
     * allocation) and is answered below; no other request exists (r is the one
     * dispatched, and nothing is parsed after an upgrade). */
    static const struct ws_callbacks no_callbacks;
    http_conn_leave_http(c);
    c->http_done = true;
    struct ws_conn *ws = &c->ws;
    memset(ws, 0, sizeof *ws);
    ws->cb = cb ? cb : &no_callbacks;
    ws->user = user;
    ws->quiet_since_ms = c->loop->uv_ready ? uv_now(&c->loop->uv) : 0;
    c->upgraded = true;
    atomic_fetch_add(&c->loop->srv->websockets_open, 1);
    http_req_answer(r, 101, NULL, NULL, 0, extra);
    *out = ws;
    return PARLEY_OK;
}
