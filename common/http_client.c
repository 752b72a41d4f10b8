/*
 * http_client.c — blocking HTTP/1.1 client over one keep-alive connection; see
 * http_client.h.
 *
 * Flow of a request: (re)connect lazily, write the whole request, feed every byte read
 * to http-parser (response mode) until on_message_complete or EOF (for bodies that end
 * with the connection), all before one deadline. Bodies are stored in a struct buf
 * whose max is the response limit, so an oversize answer is PARLEY_ERR_LIMIT and never
 * growth; Content-Length is checked up front.
 *
 * Reconnect rule: a connection that served an earlier request may have been closed by
 * the server while idle. Before reuse we peek at it; and if the write fails or EOF/reset
 * comes before any byte of the answer, we reconnect and send once more. Never twice,
 * and never once part of an answer has arrived.
 *
 * Invariants: after any error the connection is dropped (its state is unknown); the
 * request buffer, which may hold a bearer token or a password, is wiped after use.
 */
#include "http_client.h"
#include "http_client_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <http_parser.h>
#include <sodium.h>

#include "clock.h"

#define DEFAULT_TIMEOUT_MS 30000u
#define DEFAULT_MAX_RESPONSE (16u * 1024u * 1024u)
#define READ_CHUNK 16384

struct http_client {
    struct tls_client_url url;
    struct tls_client_opts opts;
    char *ca_file;
    uint32_t timeout_ms;
    size_t max_response;
    struct tls_client *conn; /* NULL until the first request, or after a drop */
    unsigned conn_uses;      /* responses completed on conn */
    char err[320];
};

/* ---- response parsing (shared with ws_client.c) ---- */

struct rstate {
    struct http_response *resp;
    int hstate; /* 0 nothing yet, 1 in a field name, 2 in a value */
    bool complete;
    bool is_head;
    enum parley_err err; /* set by a callback that stopped the parser */
};

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct rstate *st = p->data;
    struct buf *h = &st->resp->headers;
    if ((st->hstate == 2 && buf_append(h, "\r\n", 2)) || buf_append(h, at, len)) {
        st->err = PARLEY_ERR_LIMIT;
        return -1;
    }
    st->hstate = 1;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct rstate *st = p->data;
    struct buf *h = &st->resp->headers;
    if ((st->hstate == 1 && buf_append(h, ": ", 2)) || buf_append(h, at, len)) {
        st->err = PARLEY_ERR_LIMIT;
        return -1;
    }
    st->hstate = 2;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct rstate *st = p->data;
    struct http_response *r = st->resp;
    if (st->hstate == 2 && buf_append(&r->headers, "\r\n", 2)) {
        st->err = PARLEY_ERR_LIMIT;
        return -1;
    }
    st->hstate = 0;
    r->status = (int)p->status_code;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > r->body.max) {
        st->err = PARLEY_ERR_LIMIT;
        return -1;
    }
    return st->is_head ? 1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct rstate *st = p->data;
    enum parley_err rc = buf_append(&st->resp->body, at, len);
    if (rc) {
        st->err = rc;
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct rstate *st = p->data;
    if (p->status_code >= 100 && p->status_code < 200 && p->status_code != 101) {
        /* An interim answer (100 Continue, 103): the real one follows. */
        buf_reset(&st->resp->headers);
        return 0;
    }
    st->complete = true;
    http_parser_pause(p, 1); /* stop here: anything after belongs to no request */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void set_errbuf(char *dst, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_errbuf(char *dst, size_t n, const char *fmt, ...)
{
    if (!dst || !n)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}

static enum parley_err read_response(struct tls_client *t, bool is_head, uint64_t deadline_us,
                                     struct http_response *resp, struct buf *leftover,
                                     bool *got_any, bool *keep_alive, char *errbuf,
                                     size_t errbuf_len, char *chunk)
{
    http_parser parser;
    http_parser_init(&parser, HTTP_RESPONSE);
    struct rstate st = {.resp = resp, .is_head = is_head, .err = PARLEY_OK};
    parser.data = &st;
    *got_any = false;
    *keep_alive = false;
    for (;;) {
        size_t got = 0;
        enum parley_err rc = tls_client_read(t, chunk, READ_CHUNK, &got, deadline_us);
        if (rc == PARLEY_ERR_CLOSED) {
            /* EOF: ends a body delimited by the connection, else the answer is cut. */
            if (*got_any) {
                http_parser_execute(&parser, &parser_settings, NULL, 0);
                if (st.complete)
                    return PARLEY_OK; /* keep_alive stays false */
            }
            set_errbuf(errbuf, errbuf_len, "connection closed before the response %s",
                       *got_any ? "was complete" : "began");
            return PARLEY_ERR_CLOSED;
        }
        if (rc) {
            set_errbuf(errbuf, errbuf_len, "%s", tls_client_error(t));
            return rc;
        }
        *got_any = true;
        size_t n = http_parser_execute(&parser, &parser_settings, chunk, got);
        enum http_errno he = HTTP_PARSER_ERRNO(&parser);
        if (st.complete) {
            if (resp->status == 101 && leftover && n < got &&
                buf_append(leftover, chunk + n, got - n)) {
                set_errbuf(errbuf, errbuf_len, "too much data after the upgrade");
                return PARLEY_ERR_LIMIT;
            }
            *keep_alive = resp->status != 101 && http_should_keep_alive(&parser) && n == got;
            return PARLEY_OK;
        }
        if (st.err) {
            set_errbuf(errbuf, errbuf_len, "response larger than the limit");
            return st.err;
        }
        if (he != HPE_OK || n != got) {
            set_errbuf(errbuf, errbuf_len, "malformed response: %s", http_errno_description(he));
            return PARLEY_ERR_PROTO;
        }
        if (parser.upgrade) {
            set_errbuf(errbuf, errbuf_len, "unexpected upgrade");
            return PARLEY_ERR_PROTO;
        }
    }
}

enum parley_err http_client_read_response(struct tls_client *t, bool is_head, uint64_t deadline_us,
                                          struct http_response *resp, struct buf *leftover,
                                          bool *got_any, bool *keep_alive, char *errbuf,
                                          size_t errbuf_len)
{
    char chunk[READ_CHUNK];
    enum parley_err rc = read_response(t, is_head, deadline_us, resp, leftover, got_any, keep_alive,
                                       errbuf, errbuf_len, chunk);
    sodium_memzero(chunk, sizeof chunk); /* answers carry tokens */
    return rc;
}

/* ---- the client ---- */

enum parley_err http_client_new(const struct http_client_config *cfg, struct http_client **out)
{
    if (!cfg || !cfg->url || !out)
        return PARLEY_ERR_INVAL;
    struct http_client *c = calloc(1, sizeof *c);
    if (!c)
        return PARLEY_ERR_NOMEM;
    enum parley_err rc = tls_client_url_parse(cfg->url, &c->url);
    if (rc)
        goto out;
    if (c->url.websocket) {
        rc = PARLEY_ERR_INVAL;
        goto out;
    }
    if (cfg->ca_file) {
        c->ca_file = strdup(cfg->ca_file);
        if (!c->ca_file) {
            rc = PARLEY_ERR_NOMEM;
            goto out;
        }
    }
    c->opts.ca_file = c->ca_file;
    c->opts.insecure_skip_verify = cfg->insecure_skip_verify;
    c->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
    c->max_response = cfg->max_response ? cfg->max_response : DEFAULT_MAX_RESPONSE;
    *out = c;
    c = NULL;
out:
    http_client_free(c);
    return rc;
}

static void drop_conn(struct http_client *c)
{
    tls_client_free(c->conn);
    c->conn = NULL;
    c->conn_uses = 0;
}

void http_client_free(struct http_client *c)
{
    if (!c)
        return;
    drop_conn(c);
    free(c->ca_file);
    free(c);
}

void http_client_set_timeout(struct http_client *c, uint32_t timeout_ms)
{
    c->timeout_ms = timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS;
}

const char *http_client_error(const struct http_client *c)
{
    return c ? c->err : "";
}

void http_response_cleanup(struct http_response *resp)
{
    if (!resp)
        return;
    buf_cleanup(&resp->headers);
    if (resp->body.data)
        sodium_memzero(resp->body.data, resp->body.len); /* may hold a token */
    buf_cleanup(&resp->body);
}

static bool valid_token_chars(const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= ' ' || ch >= 0x7f)
            return false;
    }
    return true;
}

static bool valid_headers(const char *h)
{
    size_t n = strlen(h);
    if (n == 0)
        return true;
    if (n < 2 || h[n - 2] != '\r' || h[n - 1] != '\n')
        return false;
    /* No bare CR/LF inside a line (header injection), no empty line. */
    for (size_t i = 0; i < n; i++) {
        if (h[i] == '\n' && (i == 0 || h[i - 1] != '\r'))
            return false;
        if (h[i] == '\r' && (i + 1 >= n || h[i + 1] != '\n'))
            return false;
        if (h[i] == '\r' && i + 2 < n && h[i + 2] == '\r')
            return false;
    }
    return h[0] != '\r';
}

static enum parley_err build_request(const struct http_client *c, const char *method,
                                     const char *path, const char *headers, const void *body,
                                     size_t body_len, struct buf *req)
{
    enum parley_err rc = buf_printf(req,
                                    "%s %s%s HTTP/1.1\r\nHost: %s\r\n"
                                    "User-Agent: parley\r\n",
                                    method, c->url.path, path, c->url.authority);
    bool bodyless = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (!rc && (body_len > 0 || !bodyless))
        rc = buf_printf(req, "Content-Length: %zu\r\n", body_len);
    if (!rc && headers)
        rc = buf_append_str(req, headers);
    if (!rc)
        rc = buf_append(req, "\r\n", 2);
    if (!rc && body_len)
        rc = buf_append(req, body, body_len);
    return rc;
}

enum parley_err http_client_request(struct http_client *c, const char *method, const char *path,
                                    const char *headers, const void *body, size_t body_len,
                                    struct http_response *resp)
{
    if (resp) {
        resp->status = 0;
        buf_init(&resp->headers, HTTP_CLIENT_MAX_HEADERS);
        buf_init(&resp->body, c ? c->max_response : 0);
    }
    if (!c || !method || !path || !resp || (body_len && !body) || path[0] != '/' || !*method ||
        !valid_token_chars(method) || !valid_token_chars(path) ||
        (headers && !valid_headers(headers)))
        return PARLEY_ERR_INVAL;
    c->err[0] = 0;

    struct buf req;
    buf_init(&req, HTTP_CLIENT_MAX_HEADERS + body_len);
    enum parley_err rc = build_request(c, method, path, headers, body, body_len, &req);
    if (rc)
        goto out;

    uint64_t deadline = tls_client_deadline(c->timeout_ms);
    bool is_head = strcmp(method, "HEAD") == 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool reused = c->conn != NULL;
        if (reused && tls_client_peer_closed(c->conn)) {
            drop_conn(c);
            reused = false;
        }
        if (!c->conn) {
            rc = tls_client_open(&c->url, &c->opts, deadline, c->err, sizeof c->err, &c->conn);
            if (rc)
                goto out;
        }
        rc = tls_client_write_all(c->conn, req.data, req.len, deadline);
        if (rc) {
            snprintf(c->err, sizeof c->err, "%s", tls_client_error(c->conn));
            drop_conn(c);
            if (reused && rc != PARLEY_ERR_TIMEOUT)
                continue;
            goto out;
        }
        bool got_any = false, keep_alive = false;
        buf_reset(&resp->headers);
        buf_reset(&resp->body);
        rc = http_client_read_response(c->conn, is_head, deadline, resp, NULL, &got_any,
                                       &keep_alive, c->err, sizeof c->err);
        if (rc) {
            drop_conn(c);
            if (reused && !got_any && (rc == PARLEY_ERR_CLOSED || rc == PARLEY_ERR_IO))
                continue;
            if (rc == PARLEY_ERR_CLOSED)
                rc = PARLEY_ERR_IO;
            goto out;
        }
        if (keep_alive)
            c->conn_uses++;
        else
            drop_conn(c);
        goto out;
    }
out:
    if (req.data)
        sodium_memzero(req.data, req.len);
    buf_cleanup(&req);
    if (rc) {
        if (!c->err[0])
            snprintf(c->err, sizeof c->err, "%s", parley_strerror(rc));
        resp->status = 0;
        buf_reset(&resp->headers);
        buf_reset(&resp->body);
    }
    return rc;
}

bool http_response_header(const struct http_response *resp, const char *name, char *out,
                          size_t out_len)
{
    if (!resp || !name || !out || out_len == 0 || !resp->headers.data)
        return false;
    size_t name_len = strlen(name);
    const char *p = (const char *)resp->headers.data;
    const char *end = p + resp->headers.len;
    while (p < end) {
        const char *eol = strstr(p, "\r\n");
        if (!eol)
            eol = end;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon && (size_t)(colon - p) == name_len && strncasecmp(p, name, name_len) == 0) {
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            size_t vl = (size_t)(ve - v);
            if (vl >= out_len)
                return false;
            memcpy(out, v, vl);
            out[vl] = 0;
            return true;
        }
        p = eol + 2;
    }
    return false;
}
