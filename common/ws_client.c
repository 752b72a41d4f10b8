/*
 * ws_client.c — blocking WebSocket client (RFC 6455) on wslay's event API; the
 * ws_client_* half of http_client.h.
 *
 * The opening handshake is an HTTP/1.1 GET written here and read with the shared
 * response reader (http_client_int.h); the Sec-WebSocket-Accept answer is checked with
 * ws_handshake_accept(). Bytes that arrived behind the 101 head are fed to wslay first.
 *
 * wslay drives the socket through non-blocking callbacks (WOULDBLOCK when the stream
 * has nothing); this file adds the waiting with poll() and deadlines. wslay masks
 * client frames (genmask from RAND_bytes), reassembles fragments, answers pings and
 * closes by itself; complete text/binary messages are queued here (bounded) until
 * ws_client_recv() hands them out in order. The event context costs ~9 KB, fine for a
 * client (the server side is the memory-critical one).
 */
#include "http_client.h"
#include "http_client_int.h"

#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/rand.h>
#include <sodium.h>
#include <wslay/wslay.h>

#include "clock.h"
#include "ws_handshake.h"

#define WS_DEFAULT_TIMEOUT_MS 30000u
#define WS_DEFAULT_MAX_MESSAGE (16u * 1024u * 1024u)
#define WS_CLOSE_WAIT_MS 1000u

struct ws_msg {
    struct ws_msg *next;
    bool binary;
    size_t len;
    uint8_t data[];
};

struct ws_client {
    struct tls_client *t;
    wslay_event_context_ptr ev;
    struct buf early; /* bytes read behind the handshake, consumed first */
    struct ws_msg *head, *tail;
    size_t queued_bytes;
    size_t max_queue; /* bound on queued_bytes */
    uint32_t timeout_ms;
    bool close_received;
    uint16_t close_code;    /* 1005 when the close frame carried none */
    enum parley_err io_err; /* set by a callback when the stream failed */
    char err[256];
};

static void ws_seterr(struct ws_client *ws, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void ws_seterr(struct ws_client *ws, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ws->err, sizeof ws->err, fmt, ap);
    va_end(ap);
}

/* ---- wslay callbacks ---- */

static ssize_t cb_recv(wslay_event_context_ptr ctx, uint8_t *p, size_t len, int flags, void *user)
{
    (void)flags;
    struct ws_client *ws = user;
    if (ws->early.len) {
        size_t n = ws->early.len < len ? ws->early.len : len;
        memcpy(p, ws->early.data, n);
        buf_consume(&ws->early, n);
        return (ssize_t)n;
    }
    size_t got = 0;
    short want = 0;
    enum parley_err rc = tls_client_read_nb(ws->t, p, len, &got, &want);
    if (rc == PARLEY_OK)
        return (ssize_t)got;
    if (rc == PARLEY_ERR_AGAIN) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    ws->io_err = rc;
    ws_seterr(ws, "%s", tls_client_error(ws->t));
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static ssize_t cb_send(wslay_event_context_ptr ctx, const uint8_t *p, size_t len, int flags,
                       void *user)
{
    (void)flags;
    struct ws_client *ws = user;
    size_t put = 0;
    short want = 0;
    enum parley_err rc = tls_client_write_nb(ws->t, p, len, &put, &want);
    if (rc == PARLEY_OK)
        return (ssize_t)put;
    if (rc == PARLEY_ERR_AGAIN) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    ws->io_err = rc == PARLEY_ERR_CLOSED ? PARLEY_ERR_IO : rc;
    ws_seterr(ws, "%s", tls_client_error(ws->t));
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static int cb_genmask(wslay_event_context_ptr ctx, uint8_t *p, size_t len, void *user)
{
    (void)ctx;
    (void)user;
    return RAND_bytes(p, (int)len) == 1 ? 0 : -1;
}

static void cb_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user)
{
    struct ws_client *ws = user;
    if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        ws->close_received = true;
        ws->close_code = arg->status_code ? arg->status_code : 1005;
        return;
    }
    if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
        return; /* ping/pong: wslay answers pings itself */
    if (arg->msg_length > ws->max_queue - ws->queued_bytes) {
        ws_seterr(ws, "too many unread messages");
        ws->io_err = PARLEY_ERR_LIMIT;
        (void)wslay_event_queue_close(ctx, 1008, NULL, 0);
        wslay_event_shutdown_read(ctx);
        return;
    }
    struct ws_msg *m = malloc(sizeof *m + arg->msg_length + 1);
    if (!m) {
        ws_seterr(ws, "out of memory");
        ws->io_err = PARLEY_ERR_NOMEM;
        wslay_event_shutdown_read(ctx);
        return;
    }
    m->next = NULL;
    m->binary = arg->opcode == WSLAY_BINARY_FRAME;
    m->len = arg->msg_length;
    if (arg->msg_length)
        memcpy(m->data, arg->msg, arg->msg_length);
    m->data[m->len] = 0;
    if (ws->tail)
        ws->tail->next = m;
    else
        ws->head = m;
    ws->tail = m;
    ws->queued_bytes += m->len;
}

static const struct wslay_event_callbacks ws_callbacks = {
    .recv_callback = cb_recv,
    .send_callback = cb_send,
    .genmask_callback = cb_genmask,
    .on_msg_recv_callback = cb_msg,
};

/* ---- helpers ---- */

/* Write what wslay has queued, waiting for the socket until deadline_us. */
static enum parley_err flush(struct ws_client *ws, uint64_t deadline_us)
{
    while (wslay_event_want_write(ws->ev)) {
        if (wslay_event_send(ws->ev) != 0) {
            if (!ws->io_err)
                ws->io_err = PARLEY_ERR_IO;
            if (!ws->err[0])
                ws_seterr(ws, "send failed");
            return ws->io_err;
        }
        if (!wslay_event_want_write(ws->ev))
            break;
        enum parley_err rc = tls_client_wait(ws->t, POLLOUT, deadline_us);
        if (rc) {
            ws_seterr(ws, "send: %s", parley_strerror(rc));
            return rc;
        }
    }
    return PARLEY_OK;
}

static bool header_has_token(const struct http_response *r, const char *name, const char *token)
{
    char v[256];
    if (!http_response_header(r, name, v, sizeof v))
        return false;
    size_t tl = strlen(token);
    for (char *p = v; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t n = strcspn(p, ", \t");
        if (n == tl && strncasecmp(p, token, tl) == 0)
            return true;
        p += n;
    }
    return false;
}

/* ---- public ---- */

enum parley_err ws_client_connect(const struct http_client_config *cfg, const char *path,
                                  const char *headers, int *status, struct ws_client **out)
{
    if (status)
        *status = 0;
    if (!cfg || !cfg->url || !path || path[0] != '/' || !out)
        return PARLEY_ERR_INVAL;
    if (headers) {
        size_t hl = strlen(headers);
        if (hl && (hl < 2 || strcmp(headers + hl - 2, "\r\n") != 0))
            return PARLEY_ERR_INVAL;
    }
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
            return PARLEY_ERR_INVAL;

    struct tls_client_url url;
    enum parley_err rc = tls_client_url_parse(cfg->url, &url);
    if (rc)
        return rc;
    struct ws_client *ws = calloc(1, sizeof *ws);
    if (!ws)
        return PARLEY_ERR_NOMEM;
    struct buf req;
    struct http_response resp;
    buf_init(&req, HTTP_CLIENT_MAX_HEADERS);
    buf_init(&resp.headers, HTTP_CLIENT_MAX_HEADERS);
    buf_init(&resp.body, 64u * 1024u);
    resp.status = 0;
    buf_init(&ws->early, 1u << 20);
    ws->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : WS_DEFAULT_TIMEOUT_MS;
    size_t max_msg = cfg->max_response ? cfg->max_response : WS_DEFAULT_MAX_MESSAGE;
    ws->max_queue = max_msg * 4 > max_msg ? max_msg * 4 : max_msg;
    ws->close_code = 1006;

    uint64_t deadline = tls_client_deadline(ws->timeout_ms);
    struct tls_client_opts opts = {.ca_file = cfg->ca_file,
                                   .insecure_skip_verify = cfg->insecure_skip_verify};
    rc = tls_client_open(&url, &opts, deadline, ws->err, sizeof ws->err, &ws->t);
    if (rc)
        goto out;

    char key[25], expect[29];
    if (!ws_handshake_key_new(key)) {
        rc = PARLEY_ERR_IO;
        goto out;
    }
    ws_handshake_accept(key, expect);
    rc = buf_printf(&req,
                    "GET %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: parley\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                    url.path, path, url.authority, key, headers ? headers : "");
    if (rc)
        goto out;
    rc = tls_client_write_all(ws->t, req.data, req.len, deadline);
    if (rc) {
        ws_seterr(ws, "%s", tls_client_error(ws->t));
        goto out;
    }
    bool got_any = false, keep_alive = false;
    rc = http_client_read_response(ws->t, false, deadline, &resp, &ws->early, &got_any, &keep_alive,
                                   ws->err, sizeof ws->err);
    if (rc) {
        if (rc == PARLEY_ERR_CLOSED)
            rc = PARLEY_ERR_IO;
        goto out;
    }
    if (status)
        *status = resp.status;
    if (resp.status != 101) {
        ws_seterr(ws, "upgrade refused with HTTP %d", resp.status);
        rc = PARLEY_ERR_SERVER;
        goto out;
    }
    char accept[64];
    if (!header_has_token(&resp, "Upgrade", "websocket") ||
        !header_has_token(&resp, "Connection", "upgrade") ||
        !http_response_header(&resp, "Sec-WebSocket-Accept", accept, sizeof accept) ||
        strcmp(accept, expect) != 0) {
        ws_seterr(ws, "bad WebSocket handshake answer");
        rc = PARLEY_ERR_PROTO;
        goto out;
    }
    if (wslay_event_context_client_init(&ws->ev, &ws_callbacks, ws) != 0) {
        ws->ev = NULL;
        rc = PARLEY_ERR_NOMEM;
        goto out;
    }
    wslay_event_config_set_max_recv_msg_length(ws->ev, max_msg);
    ws->err[0] = 0;
    *out = ws;
    ws = NULL;
out:
    if (req.data)
        sodium_memzero(req.data, req.len); /* may hold "Authorization: Bearer ..." */
    buf_cleanup(&req);
    http_response_cleanup(&resp);
    ws_client_free(ws);
    return rc;
}

enum parley_err ws_client_send(struct ws_client *ws, bool binary, const void *data, size_t len)
{
    if (!ws || (len && !data))
        return PARLEY_ERR_INVAL;
    if (ws->io_err)
        return ws->io_err;
    if (ws->close_received || !wslay_event_get_write_enabled(ws->ev) ||
        wslay_event_get_close_sent(ws->ev))
        return PARLEY_ERR_CLOSED;
    struct wslay_event_msg m = {
        .opcode = binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME,
        .msg = data,
        .msg_length = len,
    };
    int r = wslay_event_queue_msg(ws->ev, &m);
    if (r == WSLAY_ERR_NOMEM)
        return PARLEY_ERR_NOMEM;
    if (r != 0)
        return PARLEY_ERR_CLOSED;
    return flush(ws, tls_client_deadline(ws->timeout_ms));
}

static struct ws_msg *pop(struct ws_client *ws)
{
    struct ws_msg *m = ws->head;
    if (m) {
        ws->head = m->next;
        if (!ws->head)
            ws->tail = NULL;
        ws->queued_bytes -= m->len;
    }
    return m;
}

enum parley_err ws_client_recv(struct ws_client *ws, uint32_t timeout_ms, bool *binary,
                               struct buf *msg, uint16_t *close_code)
{
    if (!ws || !msg)
        return PARLEY_ERR_INVAL;
    uint64_t deadline = tls_client_deadline(timeout_ms);
    for (;;) {
        struct ws_msg *m = pop(ws);
        if (m) {
            buf_reset(msg);
            enum parley_err rc = buf_append(msg, m->data, m->len);
            if (binary)
                *binary = m->binary;
            free(m);
            return rc;
        }
        if (ws->close_received || ws->io_err || !wslay_event_want_read(ws->ev)) {
            /* Send our half of the close (wslay queued it) without waiting long. */
            if (!ws->io_err)
                (void)flush(ws, tls_client_deadline(WS_CLOSE_WAIT_MS));
            if (close_code)
                *close_code = ws->close_code;
            if (ws->io_err && ws->io_err != PARLEY_ERR_CLOSED)
                return ws->io_err;
            return PARLEY_ERR_CLOSED;
        }
        if (wslay_event_recv(ws->ev) != 0) {
            if (!ws->io_err) {
                ws->io_err = PARLEY_ERR_PROTO;
                ws_seterr(ws, "WebSocket protocol error");
            }
            continue;
        }
        if (wslay_event_want_write(ws->ev)) {
            enum parley_err rc = flush(ws, tls_client_deadline(ws->timeout_ms));
            if (rc && !ws->io_err)
                ws->io_err = rc;
        }
        if (ws->head || ws->close_received || ws->io_err)
            continue;
        if (tls_client_pending(ws->t))
            continue;
        enum parley_err rc = tls_client_wait(ws->t, POLLIN, deadline);
        if (rc)
            return rc;
    }
}

bool ws_client_pending(const struct ws_client *ws)
{
    return ws && (ws->head || ws->early.len || tls_client_pending(ws->t));
}

const char *ws_client_error(const struct ws_client *ws)
{
    return ws ? ws->err : "";
}

void ws_client_close(struct ws_client *ws, uint16_t code)
{
    if (!ws || !ws->ev || ws->io_err)
        return;
    if (!wslay_event_get_close_sent(ws->ev)) {
        if (wslay_event_queue_close(ws->ev, code, NULL, 0) != 0)
            return;
    }
    uint64_t deadline = tls_client_deadline(WS_CLOSE_WAIT_MS);
    if (flush(ws, deadline))
        return;
    /* Wait briefly for the server's close; drop any data message still in flight. */
    while (!ws->close_received && !ws->io_err && wslay_event_want_read(ws->ev)) {
        if (wslay_event_recv(ws->ev) != 0)
            break;
        struct ws_msg *m;
        while ((m = pop(ws)) != NULL)
            free(m);
        if (ws->close_received || ws->io_err)
            break;
        if (!tls_client_pending(ws->t) && tls_client_wait(ws->t, POLLIN, deadline))
            break;
    }
}

void ws_client_free(struct ws_client *ws)
{
    if (!ws)
        return;
    struct ws_msg *m;
    while ((m = pop(ws)) != NULL)
        free(m);
    if (ws->ev)
        wslay_event_context_free(ws->ev);
    tls_client_free(ws->t);
    buf_cleanup(&ws->early);
    free(ws);
}

int ws_client_fd(const struct ws_client *ws)
{
    return ws ? tls_client_fd(ws->t) : -1;
}
