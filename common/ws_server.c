/*
 * ws_server.c — WebSocket on an upgraded server connection: the RFC 6455 handshake,
 * frames through wslay's frame-level API, messages, ping/pong, close.
 *
 * Memory: an idle WebSocket is its http_conn and nothing else: struct ws_conn (48
 * bytes) is embedded in the connection, in the memory its HTTP parser and request
 * pointers used before the upgrade (http_conn_int.h). All receive state (struct ws_rx:
 * wslay's frame context, ~4.2 KB mostly its input buffer, the frame/message progress
 * and the assembly buffers) is taken from a per-loop pool when bytes arrive and given
 * back as soon as the input ends on a frame boundary outside a fragmented message
 * (every byte fed to wslay belongs to a complete frame); only a connection with a
 * partial frame or message keeps one. Sending uses one per-loop context: frames are
 * always emitted whole into the connection's output buffer, so that context is back in
 * its initial state after every call. A message buffer exists only while a message
 * spans several chunks/frames.
 *
 * Limits: a frame longer than ws_max_frame or a message longer than ws_max_message
 * closes with 1009 as soon as its header arrives; unmasked client frames, reserved bits,
 * unknown opcodes, bad continuation, bad close payloads close with 1002; invalid UTF-8
 * in a text message or close reason closes with 1007.
 */
#include "http_conn_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ws_handshake.h"

/* Receive progress: exists only while a frame or a fragmented message is partly in. */
struct ws_rx {
    wslay_frame_context_ptr ctx;
    uint64_t fed, consumed;     /* bytes given to ctx / bytes of complete frames */
    uint64_t frame_len, frame_got;
    struct buf msg;             /* a message being assembled */
    struct buf ctrl;            /* a control frame split across reads */
    uint8_t frame_op, msg_op;
    bool frame_fin, in_frame, in_msg;
};

/* ------------------------------------------------------------ wslay glue */

static ssize_t rx_recv(uint8_t *out, size_t len, int flags, void *user)
{
    (void)flags;
    struct ws_io *io = user;
    size_t n = io->in_len < len ? io->in_len : len;
    if (n == 0)
        return 0; /* wslay maps this to WANT_READ */
    memcpy(out, io->in, n);
    io->in += n;
    io->in_len -= n;
    io->fed += n;
    return (ssize_t)n;
}

static ssize_t tx_send(const uint8_t *data, size_t len, int flags, void *user)
{
    (void)flags;
    struct ws_io *io = user;
    struct http_conn *c = io->out_conn;
    if (!c)
        return -1;
    struct buf *b = c->tls ? &c->pout : &c->out;
    if (buf_append(b, data, len))
        return -1;
    return (ssize_t)len;
}

static int tx_genmask(uint8_t *buf, size_t len, void *user)
{
    (void)user;
    memset(buf, 0, len); /* servers do not mask; never called */
    return 0;
}

static const struct wslay_frame_callbacks frame_cbs = {tx_send, rx_recv, tx_genmask};

enum parley_err ws_loop_init(struct http_loop *l)
{
    l->ws_rx_pool_n = 0;
    memset(&l->ws_io, 0, sizeof l->ws_io);
    if (wslay_frame_context_init(&l->ws_tx, &frame_cbs, &l->ws_io) != 0) {
        l->ws_tx = NULL;
        return PARLEY_ERR_NOMEM;
    }
    return PARLEY_OK;
}

static void rx_free(struct ws_rx *rx)
{
    if (!rx)
        return;
    wslay_frame_context_free(rx->ctx);
    buf_cleanup(&rx->msg);
    buf_cleanup(&rx->ctrl);
    free(rx);
}

void ws_loop_cleanup(struct http_loop *l)
{
    if (l->ws_tx)
        wslay_frame_context_free(l->ws_tx);
    l->ws_tx = NULL;
    while (l->ws_rx_pool_n)
        rx_free(l->ws_rx_pool[--l->ws_rx_pool_n]);
}

/* A receive state at a frame and message boundary (from the pool or new), or NULL. */
static struct ws_rx *rx_get(struct http_loop *l)
{
    struct ws_rx *rx;
    if (l->ws_rx_pool_n) {
        rx = l->ws_rx_pool[--l->ws_rx_pool_n];
    } else {
        rx = calloc(1, sizeof *rx);
        if (!rx)
            return NULL;
        if (wslay_frame_context_init(&rx->ctx, &frame_cbs, &l->ws_io) != 0) {
            free(rx);
            return NULL;
        }
    }
    wslay_frame_context_ptr ctx = rx->ctx;
    memset(rx, 0, sizeof *rx);
    rx->ctx = ctx;
    buf_init(&rx->msg, l->srv->cfg.limits.ws_max_message);
    buf_init(&rx->ctrl, 125);
    return rx;
}

/* Only for states at a frame boundary outside a message (wslay context in its initial
 * state with an empty input buffer; msg and ctrl released). */
static void rx_put(struct http_loop *l, struct ws_rx *rx)
{
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

static enum parley_err send_frame(struct ws_conn *ws, uint8_t opcode, const void *data,
                                  size_t len)
{
    struct http_conn *c = ws_conn_of(ws);
    struct http_loop *l = c->loop;
    const struct http_limits *lim = limits_of(ws);
    if (c->closing)
        return PARLEY_ERR_CLOSED;
    if (len > lim->max_output_queue || http_conn_queued(c) + 14 > lim->max_output_queue - len) {
        if (!ws->close_code)
            ws->close_code = 1008;
        http_conn_close(c);
        return PARLEY_ERR_LIMIT;
    }
    if (!l->ws_tx && ws_loop_init(l) != PARLEY_OK) {
        http_conn_close(c);
        return PARLEY_ERR_NOMEM;
    }
    struct wslay_frame_iocb iocb;
    memset(&iocb, 0, sizeof iocb);
    iocb.fin = 1;
    iocb.opcode = opcode;
    iocb.payload_length = len;
    iocb.data = data;
    iocb.data_length = len;
    l->ws_io.out_conn = c;
    ssize_t r = wslay_frame_send(l->ws_tx, &iocb);
    l->ws_io.out_conn = NULL;
    if (r < 0 || (size_t)r != len) {
        /* The shared context may be mid-frame now: replace it. */
        wslay_frame_context_free(l->ws_tx);
        l->ws_tx = NULL;
        if (ws_loop_init(l) != PARLEY_OK) {
            /* retried on the next send */
        }
        http_conn_close(c);
        return PARLEY_ERR_NOMEM;
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
    return send_frame(ws, binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME, data ? data : "",
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
    (void)send_frame(ws, WSLAY_CONNECTION_CLOSE, payload, n);
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
    if (op == WSLAY_TEXT_FRAME && !utf8_valid(data, len)) {
        ws_fail(ws, 1007, "invalid utf-8");
        return;
    }
    if (ws->cb->on_message)
        ws->cb->on_message(ws, op == WSLAY_BINARY_FRAME, len ? data : (const uint8_t *)"", len,
                          ws->user);
}

static void on_control(struct ws_conn *ws, uint8_t op, const uint8_t *p, size_t n)
{
    switch (op) {
    case WSLAY_PING:
        if (!ws->close_sent)
            (void)send_frame(ws, WSLAY_PONG, p, n);
        break;
    case WSLAY_PONG:
        break;
    case WSLAY_CONNECTION_CLOSE: {
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

static size_t header_len(uint64_t payload_len)
{
    return 2 + (payload_len < 126 ? 0 : payload_len < 65536 ? 2 : 8) + 4 /* mask key */;
}

static void on_chunk(struct ws_conn *ws, const struct wslay_frame_iocb *f)
{
    const struct http_limits *lim = limits_of(ws);
    struct ws_rx *rx = ws->rx;
    if (!rx->in_frame) {
        rx->in_frame = true;
        rx->frame_op = f->opcode;
        rx->frame_fin = f->fin != 0;
        rx->frame_len = f->payload_length;
        rx->frame_got = 0;
        if (!f->mask) {
            ws_fail(ws, 1002, "client frames must be masked");
            return;
        }
        if (f->rsv) {
            ws_fail(ws, 1002, "reserved bits set");
            return;
        }
        switch (f->opcode) {
        case WSLAY_CONTINUATION_FRAME:
            if (!rx->in_msg) {
                ws_fail(ws, 1002, "unexpected continuation");
                return;
            }
            break;
        case WSLAY_TEXT_FRAME:
        case WSLAY_BINARY_FRAME:
            if (rx->in_msg) {
                ws_fail(ws, 1002, "expected continuation");
                return;
            }
            break;
        case WSLAY_CONNECTION_CLOSE:
        case WSLAY_PING:
        case WSLAY_PONG:
            break;
        default:
            ws_fail(ws, 1002, "unknown opcode");
            return;
        }
        if (rx->frame_len > lim->ws_max_frame) {
            ws_fail(ws, 1009, "frame too big");
            return;
        }
        if (!(f->opcode & 8)) {
            size_t so_far = rx->in_msg ? rx->msg.len : 0;
            if (rx->frame_len > lim->ws_max_message - so_far) {
                ws_fail(ws, 1009, "message too big");
                return;
            }
            if (f->opcode != WSLAY_CONTINUATION_FRAME) {
                rx->in_msg = true;
                rx->msg_op = f->opcode;
            }
        }
    }
    rx->frame_got += f->data_length;
    bool done = rx->frame_got >= rx->frame_len;
    if (rx->frame_op & 8) {
        if (done && rx->ctrl.len == 0) {
            on_control(ws, rx->frame_op, f->data, f->data_length);
        } else {
            if (buf_append(&rx->ctrl, f->data, f->data_length)) {
                ws_fail(ws, 1002, "bad control frame");
                return;
            }
            if (done) {
                on_control(ws, rx->frame_op, rx->ctrl.data, rx->ctrl.len);
                buf_cleanup(&rx->ctrl);
            }
        }
    } else {
        bool last = done && rx->frame_fin;
        if (last && rx->msg.len == 0 && f->data_length == rx->frame_len) {
            rx->in_msg = false;
            deliver(ws, rx->msg_op, f->data, f->data_length); /* no copy */
        } else {
            if (f->data_length && buf_append(&rx->msg, f->data, f->data_length)) {
                ws_fail(ws, 1011, "out of memory");
                return;
            }
            if (last) {
                rx->in_msg = false;
                deliver(ws, rx->msg_op, rx->msg.data, rx->msg.len);
                buf_cleanup(&rx->msg);
            }
        }
    }
    if (done) {
        rx->in_frame = false;
        rx->consumed += header_len(rx->frame_len) + rx->frame_len;
    }
}

void ws_feed(struct ws_conn *ws, const uint8_t *data, size_t len)
{
    struct http_conn *c = ws_conn_of(ws);
    struct http_loop *l = c->loop;
    if (ws->failed || ws->close_rcvd || c->closing || c->close_after_flush)
        return;
    if (!ws->rx) {
        ws->rx = rx_get(l);
        if (!ws->rx) {
            http_conn_close(c);
            return;
        }
    }
    struct ws_rx *rx = ws->rx;
    ws->quiet_since_ms = l->uv_ready ? uv_now(&l->uv) : 0;
    ws->ping_sent = false;
    struct ws_io *io = &l->ws_io;
    io->in = data;
    io->in_len = len;
    io->fed = 0;
    while (!ws->failed && !ws->close_rcvd && !c->closing && !c->close_after_flush) {
        struct wslay_frame_iocb f;
        memset(&f, 0, sizeof f);
        ssize_t r = wslay_frame_recv(rx->ctx, &f);
        rx->fed += io->fed;
        io->fed = 0;
        if (r == WSLAY_ERR_WANT_READ)
            break;
        if (r < 0) {
            ws_fail(ws, 1002, "protocol error");
            break;
        }
        on_chunk(ws, &f);
    }
    io->in = NULL;
    io->in_len = 0;
    /* c may be closing but is not freed before the end of the pass: ws is valid. */
    if (!rx->in_frame && !rx->in_msg && !ws->failed && rx->fed == rx->consumed) {
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
    if (send_frame(ws, WSLAY_PING, "parley", 6) == PARLEY_OK) {
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
