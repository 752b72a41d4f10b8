/*
 * http_conn.c — one HTTP/1.1 connection: reading, parsing (http-parser), limits,
 * dispatch in order, responses, output batching and deferred close. See
 * http_conn_int.h for the life cycle and the batching rule.
 *
 * Invariants:
 *  - At most one request per connection is dispatched and unanswered (c->h.active);
 *    while it is, the parser is not run: later bytes wait in c->in (pipelining).
 *  - c->in only ever holds bytes that follow a complete request (the parser copies
 *    everything it accepts into the request), so an idle connection holds no buffers.
 *  - Connections are freed only in the uv_close callback, after http_loop_pass reaped
 *    them; callbacks that may run user code never free anything they still use.
 *  - Network input never reaches an assert: every violation answers 4xx or closes.
 *  - c->h (parser, requests) is valid only while !c->upgraded; after the upgrade the
 *    same memory is c->ws. Every path that can run in both phases tests upgraded first.
 */
#include "http_conn_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"

enum tx_err {
    TXE_NONE = 0,
    TXE_BAD_REQUEST,
    TXE_URI_TOO_LONG,
    TXE_HEADERS_TOO_LARGE,
    TXE_BODY_TOO_LARGE,
    TXE_TIMEOUT,
    TXE_NOMEM,
};
_Static_assert(TXE_NOMEM < 8, "http_conn.err is a 3-bit field");

static const struct {
    int status;
    const char *code;
    const char *message;
} tx_errs[] = {
    [TXE_NONE] = {500, "internal", "internal error"},
    [TXE_BAD_REQUEST] = {400, "bad_request", "malformed request"},
    [TXE_URI_TOO_LONG] = {414, "uri_too_long", "request line too long"},
    [TXE_HEADERS_TOO_LARGE] = {431, "headers_too_large", "request headers too large"},
    [TXE_BODY_TOO_LARGE] = {413, "body_too_large", "request body too large"},
    [TXE_TIMEOUT] = {408, "request_timeout", "request not received in time"},
    [TXE_NOMEM] = {503, "unavailable", "server out of memory"},
};

#define LINGER_MS 2000

/* One uv_write in flight: allocated per write so that idle connections do not carry a
 * uv_write_t (~200 bytes) each; glibc's tcache makes the malloc/free pair cheap. */
struct conn_write {
    uv_write_t req; /* req.data == the connection */
    uint8_t *data;  /* the bytes taken from c->out, freed when the write completes */
    size_t len;     /* how many of them the socket has not taken yet */
};

static const struct http_limits *limits_of(const struct http_conn *c)
{
    return &c->loop->srv->cfg.limits;
}

/* ------------------------------------------------------------------ lists */

static void conn_list_add(struct http_loop *l, struct http_conn *c)
{
    c->prev = NULL;
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    l->n_conns++;
}

static void conn_list_del(struct http_loop *l, struct http_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    l->n_conns--;
}

static void req_list_add(struct http_loop *l, struct conn_req *r)
{
    r->prev = NULL;
    r->next = l->reqs;
    if (l->reqs)
        l->reqs->prev = r;
    l->reqs = r;
    l->n_reqs++;
    r->listed = true;
}

static void req_list_del(struct http_loop *l, struct conn_req *r)
{
    if (!r->listed)
        return;
    if (r->prev)
        r->prev->next = r->next;
    else
        l->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->listed = false;
    l->n_reqs--;
}

/* --------------------------------------------------------------- requests */

static struct conn_req *req_new(struct http_conn *c)
{
    const struct http_limits *lim = limits_of(c);
    struct conn_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->conn = c;
    r->loop = c->loop;
    r->pub.loop = c->loop;
    /* url + decoded path + query + captures are each bounded by the request line;
     * headers by max_header_bytes plus two NULs per header. Our own checks fire first. */
    buf_init(&r->head, 4 * lim->max_request_line + lim->max_header_bytes +
                           2 * lim->max_headers + 64);
    buf_init(&r->body, lim->max_body);
    return r;
}

static void req_free(struct conn_req *r)
{
    if (!r)
        return;
    req_list_del(r->loop, r);
    /* Headers carry bearer tokens and bodies carry passwords: wipe, don't just free. */
    buf_cleanup_wipe(&r->head);
    buf_cleanup_wipe(&r->body);
    free(r->hdrs);
    free(r);
}

void http_loop_free_reqs(struct http_loop *l)
{
    while (l->reqs)
        req_free(l->reqs);
}

/* ----------------------------------------------------------------- output */

size_t http_conn_queued(const struct http_conn *c)
{
    return c->out.len + c->pout.len + (c->w ? c->w->len : 0);
}

/* The idle handle only keeps poll from blocking while output waits for the check hook. */
static void idle_noop(uv_idle_t *h)
{
    (void)h;
}

void http_conn_mark_dirty(struct http_conn *c)
{
    if (c->in_dirty || c->reaped)
        return;
    struct http_loop *l = c->loop;
    c->in_dirty = true;
    c->dirty_next = l->dirty;
    if (!l->dirty && l->uv_ready)
        (void)uv_idle_start(&l->idle, idle_noop);
    l->dirty = c;
}

struct buf *http_conn_output(struct http_conn *c)
{
    struct buf *b = c->tls ? &c->pout : &c->out;
    struct http_loop *l = c->loop;
    if (!b->data && l->n_out_spare)
        buf_move_memory(b, &l->out_spare[--l->n_out_spare]);
    return b;
}

enum parley_err http_conn_queue(struct http_conn *c, const void *p, size_t n)
{
    if (c->closing || c->reaped)
        return PARLEY_ERR_CLOSED;
    if (n > limits_of(c)->max_output_queue - http_conn_queued(c) ||
        http_conn_queued(c) > limits_of(c)->max_output_queue) {
        http_conn_close(c);
        return PARLEY_ERR_LIMIT;
    }
    enum parley_err rc = buf_append(http_conn_output(c), p, n);
    if (rc) {
        http_conn_close(c);
        return rc;
    }
    http_conn_mark_dirty(c);
    return PARLEY_OK;
}

void http_conn_set_deadline(struct http_conn *c, enum deadline_kind kind, uint32_t ms)
{
    c->deadline_kind = (uint8_t)kind;
    c->deadline = (c->loop->uv_ready ? uv_now(&c->loop->uv) : 0) + ms;
}

static void observe(struct http_loop *l, const struct http_request *req, int status,
                    uint64_t latency_us)
{
    struct http_server *srv = l->srv;
    http_observer_fn fn = srv->observer;
    if (fn)
        fn(req, status, latency_us, srv->observer_ctx);
}

/* ------------------------------------------------------------------ close */

void http_conn_close(struct http_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (!c->socketless)
        uv_read_stop((uv_stream_t *)&c->tcp);
    http_conn_mark_dirty(c);
}

void http_conn_close_after_flush(struct http_conn *c)
{
    if (c->closing || c->close_after_flush)
        return;
    c->close_after_flush = true;
    c->http_done = true;
    /* The close_notify goes out in conn_flush, after the response still in pout: sent
     * here it would come first, and the peer would never read the response. */
    uint32_t t = limits_of(c)->request_timeout_ms;
    http_conn_set_deadline(c, DL_HARD, t > LINGER_MS ? t : LINGER_MS);
    http_conn_mark_dirty(c);
}

static void conn_free(struct http_conn *c)
{
    buf_cleanup_wipe(&c->in);
    buf_cleanup(&c->out);
    buf_cleanup(&c->pout);
    if (c->w) { /* not reached: libuv completes (cancels) writes before the close cb */
        free(c->w->data);
        free(c->w);
    }
    tls_conn_free(c->tls);
    free(c);
}

static void on_closed(uv_handle_t *h)
{
    conn_free(h->data);
}

static void conn_reap(struct http_conn *c)
{
    if (c->reaped)
        return;
    struct http_loop *l = c->loop;
    c->reaped = true;
    conn_list_del(l, c);
    if (c->upgraded) {
        ws_finish(&c->ws);
    } else {
        if (c->h.active) {
            c->h.active->conn = NULL; /* orphaned: freed when the handler answers */
            c->h.active = NULL;
        }
        req_free(c->h.req);
        c->h.req = NULL;
    }
    atomic_fetch_sub(&l->srv->connections_open, 1);
    if (!c->socketless) /* socketless connections are freed by their owner */
        uv_close((uv_handle_t *)&c->tcp, on_closed);
}

void http_conn_leave_http(struct http_conn *c)
{
    req_free(c->h.req);
    c->h.req = NULL;
    c->h.active = NULL;
}

/* A transport error before dispatch: answer it, then close. */
static void conn_fail(struct http_conn *c, enum tx_err e)
{
    if (c->closing || c->http_done || c->upgraded)
        return;
    if (e == TXE_NONE)
        e = TXE_BAD_REQUEST;
    struct http_loop *l = c->loop;
    atomic_fetch_add(&l->srv->protocol_errors, 1);
    char body[160];
    int n = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                     tx_errs[e].code, tx_errs[e].message);
    http_conn_write_response(c, tx_errs[e].status, "application/json", body, (size_t)n, NULL, false,
                   false);
    struct http_request stub;
    memset(&stub, 0, sizeof stub);
    stub.method = c->h.req ? http_method_str((enum http_method)c->h.parser.method) : "";
    stub.path = "";
    stub.loop = l;
    observe(l, &stub, tx_errs[e].status, 0);
    req_free(c->h.req);
    c->h.req = NULL;
    http_conn_close_after_flush(c);
}

/* -------------------------------------------------------------- parsing */

static int on_message_begin(http_parser *p)
{
    struct http_conn *c = p->data;
    if (c->h.req)
        return 0;
    c->h.req = req_new(c);
    if (!c->h.req) {
        c->err = TXE_NOMEM;
        return -1;
    }
    http_conn_set_deadline(c, DL_REQUEST, limits_of(c)->request_timeout_ms);
    return 0;
}

static int append_or_fail(struct http_conn *c, struct buf *b, const void *p, size_t n,
                          enum tx_err on_limit)
{
    enum parley_err rc = buf_append(b, p, n);
    if (rc == PARLEY_OK)
        return 0;
    c->err = rc == PARLEY_ERR_NOMEM ? TXE_NOMEM : on_limit;
    return -1;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    struct conn_req *r = c->h.req;
    if (!r)
        return -1;
    if (len > limits_of(c)->max_request_line - r->url_len) {
        c->err = TXE_URI_TOO_LONG;
        return -1;
    }
    if (memchr(at, 0, len)) {
        c->err = TXE_BAD_REQUEST;
        return -1;
    }
    r->url_len += len;
    return append_or_fail(c, &r->head, at, len, TXE_URI_TOO_LONG);
}

static int header_bytes(struct http_conn *c, size_t len)
{
    struct conn_req *r = c->h.req;
    if (len > limits_of(c)->max_header_bytes - r->hdr_bytes) {
        c->err = TXE_HEADERS_TOO_LARGE;
        return -1;
    }
    r->hdr_bytes += len;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    struct conn_req *r = c->h.req;
    if (!r)
        return -1;
    if (r->hstate != HS_FIELD) {
        if (append_or_fail(c, &r->head, "", 1, TXE_HEADERS_TOO_LARGE))
            return -1;
        if (++r->n_hdrs > limits_of(c)->max_headers) {
            c->err = TXE_HEADERS_TOO_LARGE;
            return -1;
        }
        r->hstate = HS_FIELD;
        if (header_bytes(c, 4))
            return -1;
    }
    if (header_bytes(c, len))
        return -1;
    if (memchr(at, 0, len)) {
        c->err = TXE_BAD_REQUEST;
        return -1;
    }
    return append_or_fail(c, &r->head, at, len, TXE_HEADERS_TOO_LARGE);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    struct conn_req *r = c->h.req;
    if (!r)
        return -1;
    if (r->hstate != HS_VALUE) {
        if (r->hstate != HS_FIELD) { /* a value without a name: parser bug guard */
            c->err = TXE_BAD_REQUEST;
            return -1;
        }
        if (append_or_fail(c, &r->head, "", 1, TXE_HEADERS_TOO_LARGE))
            return -1;
        r->hstate = HS_VALUE;
    }
    if (header_bytes(c, len))
        return -1;
    if (memchr(at, 0, len)) {
        c->err = TXE_BAD_REQUEST;
        return -1;
    }
    return append_or_fail(c, &r->head, at, len, TXE_HEADERS_TOO_LARGE);
}

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

/* RFC 9110 token characters: what a header field name may contain. */
static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= 0x20 || ch >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", ch))
            return false;
    }
    return true;
}

static int on_headers_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    struct conn_req *r = c->h.req;
    if (!r)
        return -1;
    /* Terminate the last string; a name with no value callback gets an empty value. */
    if (r->hstate == HS_FIELD && append_or_fail(c, &r->head, "", 1, TXE_HEADERS_TOO_LARGE))
        return -1;
    if (append_or_fail(c, &r->head, "", 1, TXE_HEADERS_TOO_LARGE))
        return -1;
    /* Only HTTP/1.0 and 1.1; 0.9 (no version) and others are refused. */
    if (r->url_len == 0 || p->http_major != 1 || p->http_minor > 1) {
        c->err = TXE_BAD_REQUEST;
        return -1;
    }
    bool te = false, cl = false, expect = false;
    const char *s = (const char *)r->head.data + r->url_len + 1;
    for (size_t i = 0; i < r->n_hdrs; i++) {
        const char *name = s;
        const char *value = name + strlen(name) + 1;
        s = value + strlen(value) + 1;
        if (!is_token(name)) {
            c->err = TXE_BAD_REQUEST;
            return -1;
        }
        if (strcasecmp(name, "transfer-encoding") == 0)
            te = true;
        else if (strcasecmp(name, "content-length") == 0)
            cl = true;
        else if (strcasecmp(name, "expect") == 0 && has_token(value, "100-continue"))
            expect = true;
    }
    if (te && cl) {
        c->err = TXE_BAD_REQUEST;
        return -1;
    }
    if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX &&
        p->content_length > limits_of(c)->max_body) {
        c->err = TXE_BODY_TOO_LARGE;
        return -1;
    }
    r->is_head = p->method == HTTP_HEAD;
    bool has_body = (p->flags & F_CHUNKED) ||
                    (p->content_length != ULLONG_MAX && p->content_length > 0);
    if (expect && has_body && p->http_major == 1 && p->http_minor >= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (http_conn_queue(c, cont, sizeof cont - 1))
            return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    struct conn_req *r = c->h.req;
    if (!r)
        return -1;
    return append_or_fail(c, &r->body, at, len, TXE_BODY_TOO_LARGE);
}

static int on_message_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    struct conn_req *r = c->h.req;
    if (!r)
        return -1;
    r->complete = true;
    r->keep_alive = http_should_keep_alive(p) != 0;
    r->upgrade = p->upgrade != 0;
    http_parser_pause(p, 1); /* one request at a time: resume after the answer */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ------------------------------------------------------------- dispatch */

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Append the percent-decoded path; false on bad escapes or NUL. */
static bool decode_path(struct buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = (uint8_t)s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return false;
            int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            ch = (uint8_t)(hi * 16 + lo);
            i += 2;
        }
        if (ch == 0)
            return false;
        if (buf_append(b, &ch, 1))
            return false;
    }
    return buf_append(b, "", 1) == PARLEY_OK;
}

/* Fill r->pub from the parsed bytes and look the route up. Returns TXE_NONE or an error;
 * *res/m/allow receive the routing result. */
static enum tx_err prepare(struct http_conn *c, struct conn_req *r, enum http_route_result *res,
                           struct http_route_match *m, char *allow, size_t allow_len)
{
    struct http_request *q = &r->pub;
    const char *url = (const char *)r->head.data;
    size_t path_s, path_n, query_s = 0, query_n = 0;
    bool has_query = false;
    if (url[0] == '/') {
        size_t n = strcspn(url, "?#");
        path_s = 0;
        path_n = n;
        if (url[n] == '?') {
            has_query = true;
            query_s = n + 1;
            query_n = strcspn(url + query_s, "#");
        }
    } else {
        struct http_parser_url pu;
        http_parser_url_init(&pu);
        if (http_parser_parse_url(url, r->url_len, 0, &pu) != 0 ||
            !(pu.field_set & (1 << UF_HOST)))
            return TXE_BAD_REQUEST;
        if (pu.field_set & (1 << UF_PATH)) {
            path_s = pu.field_data[UF_PATH].off;
            path_n = pu.field_data[UF_PATH].len;
        } else {
            path_s = 0;
            path_n = 0;
        }
        if (pu.field_set & (1 << UF_QUERY)) {
            has_query = true;
            query_s = pu.field_data[UF_QUERY].off;
            query_n = pu.field_data[UF_QUERY].len;
        }
    }
    /* Appending to head may move it: work from a private copy of the url. */
    char *tmp = malloc(r->url_len + 2);
    if (!tmp)
        return TXE_NOMEM;
    memcpy(tmp, url, r->url_len + 1);
    enum tx_err e = TXE_NONE;
    size_t path_off = r->head.len;
    if (path_n == 0) {
        if (buf_append(&r->head, "/", 2))
            e = TXE_NOMEM;
    } else if (!decode_path(&r->head, tmp + path_s, path_n)) {
        e = TXE_BAD_REQUEST;
    }
    size_t query_off = r->head.len;
    if (!e && has_query && (buf_append(&r->head, tmp + query_s, query_n) ||
                            buf_append(&r->head, "", 1)))
        e = TXE_NOMEM;
    const char *method = http_method_str((enum http_method)c->h.parser.method);
    size_t param_off[HTTP_ROUTE_MAX_PARAMS] = {0};
    if (!e) {
        /* The decoded path is no longer than the url: it fits in tmp. */
        size_t dl = strlen((const char *)r->head.data + path_off);
        memcpy(tmp, r->head.data + path_off, dl + 1);
        *res = http_router_match(c->loop->srv->router, method, tmp, m, allow, allow_len);
        for (size_t i = 0; *res == HTTP_ROUTE_FOUND && !e && i < m->n_params; i++) {
            param_off[i] = r->head.len;
            if (buf_append(&r->head, tmp + m->param_off[i], m->param_len[i]) ||
                buf_append(&r->head, "", 1))
                e = TXE_NOMEM;
        }
    }
    free(tmp);
    if (e)
        return e;
    if (r->n_hdrs) {
        r->hdrs = calloc(r->n_hdrs, sizeof *r->hdrs);
        if (!r->hdrs)
            return TXE_NOMEM;
    }
    /* No appends after this point: pointers into head stay valid. */
    const char *base = (const char *)r->head.data;
    const char *s = base + r->url_len + 1;
    for (size_t i = 0; i < r->n_hdrs; i++) {
        r->hdrs[i].name = s;
        s += strlen(s) + 1;
        r->hdrs[i].value = s;
        s += strlen(s) + 1;
    }
    q->method = method;
    q->path = base + path_off;
    q->query = has_query ? base + query_off : NULL;
    q->headers = r->hdrs;
    q->n_headers = r->n_hdrs;
    q->body = r->body.len ? r->body.data : NULL;
    q->body_len = r->body.len;
    if (*res == HTTP_ROUTE_FOUND) {
        q->n_params = m->n_params;
        for (size_t i = 0; i < m->n_params; i++)
            q->params[i] = base + param_off[i];
        q->route = m->pattern;
    }
    q->remote_ip[0] = 0;
    if (!c->socketless) {
        struct sockaddr_storage ss;
        int sl = (int)sizeof ss;
        if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
            if (ss.ss_family == AF_INET)
                uv_ip4_name((struct sockaddr_in *)&ss, q->remote_ip, sizeof q->remote_ip);
            else if (ss.ss_family == AF_INET6)
                uv_ip6_name((struct sockaddr_in6 *)&ss, q->remote_ip, sizeof q->remote_ip);
        }
    }
    return TXE_NONE;
}

static void answer_error(struct conn_req *r, enum tx_err e, const char *extra)
{
    char body[160];
    int n = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                     tx_errs[e].code, tx_errs[e].message);
    atomic_fetch_add(&r->loop->srv->protocol_errors, 1);
    http_req_answer(r, tx_errs[e].status, "application/json", body, (size_t)n, extra);
}

static void dispatch(struct http_conn *c)
{
    struct conn_req *r = c->h.req;
    struct http_loop *l = c->loop;
    c->h.req = NULL;
    c->h.active = r;
    r->dispatched = true;
    c->deadline_kind = DL_NONE;
    req_list_add(l, r);
    atomic_fetch_add(&l->srv->requests_total, 1);
    r->t_start_us = clock_mono_us();

    enum http_route_result res = HTTP_ROUTE_NOT_FOUND;
    struct http_route_match m;
    char allow[128];
    memset(&m, 0, sizeof m);
    enum tx_err e = prepare(c, r, &res, &m, allow, sizeof allow);
    r->pub.method = r->pub.method ? r->pub.method
                                  : http_method_str((enum http_method)c->h.parser.method);
    if (!r->pub.path)
        r->pub.path = "";
    if (e != TXE_NONE) {
        r->keep_alive = false;
        answer_error(r, e, NULL);
        return;
    }
    if (res == HTTP_ROUTE_NOT_FOUND) {
        static const char body[] =
            "{\"error\":{\"code\":\"not_found\",\"message\":\"no such endpoint\"}}";
        atomic_fetch_add(&l->srv->protocol_errors, 1);
        http_req_answer(r, 404, "application/json", body, sizeof body - 1, NULL);
        return;
    }
    if (res == HTTP_ROUTE_BAD_METHOD) {
        static const char body[] = "{\"error\":{\"code\":\"method_not_allowed\","
                                   "\"message\":\"method not allowed here\"}}";
        char extra[160];
        snprintf(extra, sizeof extra, "Allow: %s\r\n", allow);
        atomic_fetch_add(&l->srv->protocol_errors, 1);
        http_req_answer(r, 405, "application/json", body, sizeof body - 1, extra);
        return;
    }
    m.fn(&r->pub, m.ctx);
}

/* Connection state after processing: arm the right timeout or close. */
static void conn_settle(struct http_conn *c)
{
    if (c->closing || c->upgraded || c->h.active || c->close_after_flush)
        return;
    if (c->http_done) {
        http_conn_close_after_flush(c);
        return;
    }
    if (c->h.req || c->in.len > 0)
        return;
    if (c->read_eof) {
        http_conn_close_after_flush(c);
        return;
    }
    http_conn_set_deadline(c, DL_IDLE, limits_of(c)->idle_timeout_ms);
}

/* HTTP phase only. */
static bool conn_blocked(const struct http_conn *c)
{
    return c->h.active || http_conn_queued(c) > limits_of(c)->max_output_queue / 2;
}

static enum tx_err map_errno(enum http_errno e)
{
    switch (e) {
    case HPE_HEADER_OVERFLOW:
        return TXE_HEADERS_TOO_LARGE;
    default:
        return TXE_BAD_REQUEST;
    }
}

/* Parse and dispatch as much of data as the state allows; returns bytes consumed. */
static size_t conn_parse(struct http_conn *c, const uint8_t *data, size_t len)
{
    size_t off = 0;
    bool was = c->in_parse;
    c->in_parse = true;
    while (off < len && !c->closing && !c->close_after_flush) {
        if (c->upgraded) {
            ws_feed(&c->ws, data + off, len - off);
            off = len;
            break;
        }
        if (conn_blocked(c))
            break;
        if (c->http_done) {
            off = len; /* nothing more will be answered: drop */
            break;
        }
        size_t n = http_parser_execute(&c->h.parser, &parser_settings,
                                       (const char *)data + off, len - off);
        off += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->h.parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->h.parser, 0);
        } else if (e != HPE_OK) {
            conn_fail(c, c->err ? (enum tx_err)c->err : map_errno(e));
            break;
        }
        if (c->h.req && c->h.req->complete) {
            if (c->h.req->upgrade)
                c->http_done = true; /* bytes after an upgrade request are not HTTP */
            dispatch(c);
        } else if (n == 0) {
            break;
        }
    }
    c->in_parse = was;
    return off;
}

static void pause_reading(struct http_conn *c)
{
    if (c->read_paused || c->socketless)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->read_paused = true;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static void resume_reading(struct http_conn *c)
{
    if (!c->read_paused || c->closing || c->read_eof)
        return;
    c->read_paused = false;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read))
        http_conn_close(c);
}

/* Plaintext bytes arrived (after TLS if any). */
static void conn_input(struct http_conn *c, const uint8_t *data, size_t len)
{
    if (c->closing || c->close_after_flush)
        return; /* lingering close: discard */
    if (c->http_done && !c->upgraded && !c->h.active)
        return;
    /* Earlier bytes still queued (or HTTP blocked): keep the order, queue these too. */
    if (c->in.len > 0 || c->need_resume || (!c->upgraded && conn_blocked(c))) {
        if (buf_append(&c->in, data, len)) {
            http_conn_close(c);
            return;
        }
        if (c->in.len >= HTTP_IN_HIGH)
            pause_reading(c);
        return;
    }
    size_t n = conn_parse(c, data, len);
    if (n < len && !c->closing && !c->close_after_flush) {
        if (buf_append(&c->in, data + n, len - n)) {
            http_conn_close(c);
            return;
        }
        if (c->in.len >= HTTP_IN_HIGH)
            pause_reading(c);
    }
    conn_settle(c);
}

/* Continue with buffered input after an answer (from the end-of-pass hook). */
static void conn_resume(struct http_conn *c)
{
    if (c->in.len > 0 && !c->closing) {
        size_t n = conn_parse(c, c->in.data, c->in.len);
        if (c->closing)
            return;
        buf_consume(&c->in, n < c->in.len ? n : c->in.len);
        if (c->in.len == 0)
            buf_cleanup_wipe(&c->in);
    }
    if (c->in.len < HTTP_IN_HIGH / 2 && !c->close_after_flush)
        resume_reading(c);
    conn_settle(c);
}

/* --------------------------------------------------------------- answer */

void http_req_answer(struct conn_req *r, int status, const char *content_type,
                     const void *body, size_t len, const char *extra)
{
    struct http_conn *c = r->conn;
    struct http_loop *l = r->loop;
    uint64_t lat = r->t_start_us ? clock_mono_us() - r->t_start_us : 0;
    bool upgraded = status == 101 && c && c->upgraded;
    bool keep = false;
    if (c && !c->closing) {
        keep = upgraded || (r->keep_alive && !l->stopping && !r->upgrade && !c->http_done);
        http_conn_write_response(c, status, content_type, body, len, extra, keep || upgraded,
                       r->is_head);
    }
    observe(l, &r->pub, status, lat);
    if (c && !c->upgraded && c->h.active == r)
        c->h.active = NULL;
    req_free(r);
    if (!c || c->closing)
        return;
    if (upgraded) {
        c->deadline_kind = DL_NONE;
        if (c->in.len && !c->in_parse) {
            c->need_resume = true;
            http_conn_mark_dirty(c);
        }
        return;
    }
    if (!keep) {
        c->http_done = true;
        http_conn_close_after_flush(c);
        return;
    }
    if (!c->in_parse) {
        c->need_resume = true;
        http_conn_mark_dirty(c);
    }
}

/* ------------------------------------------------------------ socket I/O */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    struct http_conn *c = h->data;
    b->base = (char *)c->loop->rbuf;
    b->len = HTTP_READ_BUF_SIZE;
}

static bool tls_plain(void *ctx, const uint8_t *data, size_t len)
{
    struct http_conn *c = ctx;
    conn_input(c, data, len);
    return !c->closing;
}

static enum parley_err tls_sink(void *ctx, const void *data, size_t len)
{
    struct http_conn *c = ctx;
    const struct http_limits *lim = limits_of(c);
    if (len > lim->max_output_queue || http_conn_queued(c) > lim->max_output_queue - len)
        return PARLEY_ERR_LIMIT;
    return buf_append(&c->out, data, len);
}

static void conn_on_eof(struct http_conn *c, bool clean)
{
    if (!clean || c->upgraded || c->lingering || c->close_after_flush) {
        http_conn_close(c);
        return;
    }
    c->read_eof = true;
    if (!c->socketless)
        uv_read_stop((uv_stream_t *)&c->tcp);
    if (c->h.req) { /* a request cut short */
        http_conn_close(c);
        return;
    }
    conn_settle(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct http_conn *c = s->data;
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        conn_on_eof(c, nread == UV_EOF);
        return;
    }
    if (c->tls) {
        enum parley_err rc = tls_conn_feed(c->tls, (const uint8_t *)b->base, (size_t)nread,
                                           tls_plain, c, c->loop->tbuf, HTTP_TLS_BUF_SIZE);
        if (c->out.len)
            http_conn_mark_dirty(c);
        if (rc == PARLEY_ERR_CLOSED)
            conn_on_eof(c, true);
        else if (rc)
            http_conn_close(c);
        return;
    }
    conn_input(c, (const uint8_t *)b->base, (size_t)nread);
}

/* The output queue emptied: input held back while it was long can be parsed again. */
static void output_drained(struct http_conn *c)
{
    if (c->in.len && (c->upgraded || !c->h.active)) {
        c->need_resume = true;
        http_conn_mark_dirty(c);
    }
}

static void on_write(uv_write_t *w, int status)
{
    struct http_conn *c = w->data;
    struct conn_write *cw = c->w;
    c->w = NULL;
    free(cw->data);
    free(cw);
    if (c->reaped)
        return;
    if (status < 0) {
        http_conn_close(c);
        return;
    }
    if (c->out.len || c->pout.len || c->close_after_flush || c->in.len)
        http_conn_mark_dirty(c);
    output_drained(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct http_conn *c = req->data;
    free(req);
    if (status < 0 && !c->reaped)
        http_conn_close(c);
}

static void start_linger(struct http_conn *c)
{
    if (c->socketless) {
        http_conn_close(c);
        return;
    }
    c->lingering = true;
    uv_shutdown_t *sr = malloc(sizeof *sr);
    if (!sr) {
        http_conn_close(c);
        return;
    }
    sr->data = c;
    if (uv_shutdown(sr, (uv_stream_t *)&c->tcp, on_shutdown)) {
        free(sr);
        http_conn_close(c);
        return;
    }
    http_conn_set_deadline(c, DL_HARD, LINGER_MS);
    if (c->read_eof) {
        http_conn_close(c);
        return;
    }
    if (c->read_paused) {
        c->read_paused = false;
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read))
            http_conn_close(c);
    }
}

/* An output buffer (out, or pout under TLS) was consumed in full: its memory joins the
 * loop's spares, for the next connections to queue into (http_conn_output), unless
 * there are enough of them or it grew large. This spares the write path a malloc and
 * its reallocs per flush without an idle connection keeping a buffer. */
static void out_release(struct http_conn *c, struct buf *b)
{
    struct http_loop *l = c->loop;
    if (l->n_out_spare < HTTP_OUT_SPARES && b->cap <= HTTP_OUT_SPARE_MAX)
        buf_move_memory(&l->out_spare[l->n_out_spare++], b);
    else
        buf_cleanup(b);
}

/* Write c->out straight away; only what the socket does not take goes through a
 * uv_write. A write that completes here costs no request, no callback and no epoll
 * change (libuv re-arms the descriptor after every queued write it completes).
 * True when the connection was closed or a write is in flight. */
static bool send_out(struct http_conn *c)
{
    uv_buf_t ub = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
    if (n == UV_EAGAIN)
        n = 0;
    if (n < 0) {
        http_conn_close(c);
        return true;
    }
    if ((size_t)n == c->out.len) {
        out_release(c, &c->out);
        output_drained(c);
        return false;
    }
    struct conn_write *cw = malloc(sizeof *cw);
    if (!cw) {
        http_conn_close(c);
        return true;
    }
    cw->data = buf_steal(&c->out, &cw->len);
    cw->req.data = c;
    cw->len -= (size_t)n;
    ub = uv_buf_init((char *)cw->data + n, (unsigned)cw->len);
    if (uv_write(&cw->req, (uv_stream_t *)&c->tcp, &ub, 1, on_write)) {
        free(cw->data);
        free(cw);
        http_conn_close(c);
        return true;
    }
    c->w = cw;
    return true;
}

static void conn_flush(struct http_conn *c)
{
    if (c->w || c->closing)
        return;
    if (c->tls && c->pout.len) {
        enum parley_err rc = tls_conn_write(c->tls, c->pout.data, c->pout.len);
        out_release(c, &c->pout);
        if (rc) {
            http_conn_close(c);
            return;
        }
    }
    if (c->tls && c->close_after_flush)
        tls_conn_shutdown(c->tls); /* after the last response; once */
    if (c->out.len) {
        if (c->socketless) {
            if (c->loop->capture)
                if (buf_append(c->loop->capture, c->out.data, c->out.len) != PARLEY_OK) {
                    /* capture full: the caller only looks at what fits */
                }
            buf_cleanup(&c->out);
        } else if (send_out(c)) {
            return; /* closed, or the rest is in flight */
        }
    }
    if (c->close_after_flush && !c->lingering)
        start_linger(c);
}

static void conn_setup(struct http_conn *c, struct http_loop *l)
{
    const struct http_limits *lim = &l->srv->cfg.limits;
    c->loop = l;
    http_parser_init(&c->h.parser, HTTP_REQUEST);
    c->h.parser.data = c;
    buf_init(&c->in, HTTP_IN_HIGH + HTTP_READ_BUF_SIZE + HTTP_TLS_BUF_SIZE);
    buf_init(&c->out, lim->max_output_queue);
    buf_init(&c->pout, lim->max_output_queue);
    conn_list_add(l, c);
    atomic_fetch_add(&l->srv->connections_open, 1);
    atomic_fetch_add(&l->srv->connections_total, 1);
    http_conn_set_deadline(c, DL_REQUEST, lim->request_timeout_ms);
}

static void on_reject_closed(uv_handle_t *h)
{
    free(h);
}

void http_conn_accept(struct http_loop *l)
{
    struct http_conn *c = calloc(1, sizeof *c);
    if (!c) {
        /* Out of memory: take the connection off the queue and drop it. */
        uv_tcp_t *t = malloc(sizeof *t);
        if (t && uv_tcp_init(&l->uv, t) == 0) {
            (void)uv_accept((uv_stream_t *)&l->listener, (uv_stream_t *)t);
            uv_close((uv_handle_t *)t, on_reject_closed);
        } else {
            free(t);
        }
        return;
    }
    if (uv_tcp_init(&l->uv, &c->tcp)) {
        free(c);
        return;
    }
    c->tcp.data = c;
    c->loop = l;
    if (uv_accept((uv_stream_t *)&l->listener, (uv_stream_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, on_reject_closed);
        return;
    }
    (void)uv_tcp_nodelay(&c->tcp, 1);
    conn_setup(c, l);
    if (l->srv->tls && tls_conn_new(l->srv->tls, tls_sink, c, &c->tls)) {
        http_conn_close(c);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) {
        http_conn_close(c);
        return;
    }
    if (l->stopping)
        http_conn_close(c);
}

/* ------------------------------------------------------------ loop hooks */

void http_loop_pass(struct http_loop *l)
{
    for (int round = 0; l->dirty && round < 16; round++) {
        struct http_conn *list = l->dirty;
        l->dirty = NULL;
        while (list) {
            struct http_conn *c = list;
            list = c->dirty_next;
            c->dirty_next = NULL;
            c->in_dirty = false;
            if (!c->closing && c->need_resume) {
                c->need_resume = false;
                conn_resume(c);
            }
            if (!c->closing)
                conn_flush(c);
            if (c->closing)
                conn_reap(c);
        }
    }
    if (!l->dirty && l->uv_ready)
        uv_idle_stop(&l->idle);
    if (l->stopping)
        http_loop_stop_check(l);
}

void http_loop_sweep(struct http_loop *l)
{
    uint64_t now = uv_now(&l->uv);
    for (struct http_conn *c = l->conns; c; c = c->next) {
        if (c->closing)
            continue;
        if (c->upgraded && c->deadline_kind == DL_NONE)
            ws_tick(&c->ws, now);
        if (c->deadline_kind == DL_NONE || now < c->deadline)
            continue;
        switch (c->deadline_kind) {
        case DL_REQUEST:
            c->deadline_kind = DL_NONE;
            if ((!c->upgraded && c->h.req) || c->in.len)
                conn_fail(c, TXE_TIMEOUT);
            else
                http_conn_close(c);
            break;
        default:
            c->deadline_kind = DL_NONE;
            http_conn_close(c);
            break;
        }
    }
}

void http_loop_stop_conns(struct http_loop *l, bool force)
{
    for (struct http_conn *c = l->conns; c; c = c->next) {
        if (c->closing)
            continue;
        if (force) {
            http_conn_close(c);
            continue;
        }
        if (c->upgraded) {
            ws_close(&c->ws, 1001, "server stopping");
            continue;
        }
        if (!c->h.active && !c->h.req && c->in.len == 0)
            http_conn_close_after_flush(c);
        /* else: the answer will carry Connection: close (l->stopping) */
    }
}

/* ------------------------------------------------------- socketless entry */

static void sl_root(struct http_request *req, void *ctx)
{
    (void)ctx;
    http_respond_json(req, 200, "{}");
}

static void sl_echo(struct http_request *req, void *ctx)
{
    (void)ctx;
    http_respond(req, 200, "application/octet-stream", req->body, req->body_len, NULL);
}

static void sl_item(struct http_request *req, void *ctx)
{
    (void)ctx;
    http_respond(req, 200, "text/plain", req->params[0], strlen(req->params[0]), NULL);
}

static void sl_ws_msg(struct ws_conn *ws, bool binary, const uint8_t *data, size_t len,
                      void *user)
{
    (void)user;
    if (ws_send(ws, binary, data, len) != PARLEY_OK) {
        /* the connection is closing; nothing else to do */
    }
}

static void sl_ws_close(struct ws_conn *ws, uint16_t code, void *user)
{
    (void)ws;
    (void)code;
    (void)user;
}

static void sl_ws(struct http_request *req, void *ctx)
{
    (void)ctx;
    static const struct ws_callbacks cb = {sl_ws_msg, sl_ws_close};
    struct ws_conn *ws;
    if (http_upgrade_websocket(req, &cb, NULL, &ws) != PARLEY_OK) {
        /* answered with an error by the call */
    }
}

enum parley_err http_conn_feed_socketless(const struct http_limits *limits,
                                          const uint8_t *data, size_t len, size_t chunk,
                                          struct buf *out)
{
    struct http_server_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.host = "127.0.0.1";
    cfg.threads = 1;
    if (limits)
        cfg.limits = *limits;
    cfg.limits.ws_ping_interval_ms = 0;
    struct http_server *srv = NULL;
    enum parley_err rc = http_server_new(&cfg, &srv);
    if (rc)
        return rc;
    if ((rc = http_server_route(srv, "GET", "/", sl_root, NULL)) ||
        (rc = http_server_route(srv, "POST", "/echo", sl_echo, NULL)) ||
        (rc = http_server_route(srv, "GET", "/items/{id}", sl_item, NULL)) ||
        (rc = http_server_route(srv, "GET", "/ws", sl_ws, NULL)))
        goto out;
    struct http_loop *l = &srv->loops[0];
    if ((rc = http_loop_init(l, srv, 0)))
        goto out;
    l->capture = out;
    struct http_conn *c = calloc(1, sizeof *c);
    if (!c) {
        rc = PARLEY_ERR_NOMEM;
        goto out;
    }
    c->socketless = true;
    conn_setup(c, l);
    if (chunk == 0)
        chunk = len ? len : 1;
    for (size_t off = 0; off < len && !c->closing;) {
        size_t n = len - off < chunk ? len - off : chunk;
        conn_input(c, data + off, n);
        off += n;
        http_loop_pass(l);
    }
    if (!c->closing)
        http_conn_close(c);
    http_loop_pass(l);
    conn_free(c);
    rc = PARLEY_OK;
out:
    http_server_free(srv); /* cleans the loop up */
    return rc;
}
