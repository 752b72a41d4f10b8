/*
 * http_response.c — formatting HTTP/1.1 responses into a connection's output queue, and
 * the public answering helpers (http_respond*, http_request_header).
 *
 * Invariants: a response is queued whole or the connection is closed (never a torn
 * response); Content-Length is always sent except for 1xx/204/304; HEAD answers carry the
 * length of the body they omit. Runs on the connection's loop thread.
 */
#include "http_conn_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct http_limits *limits_of(const struct http_conn *c)
{
    return &c->loop->srv->cfg.limits;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 200 ? "Informational" : status < 400 ? "OK" : "Error";
    }
}

/* Format and queue one response. Failure closes the connection (output would be torn). */
void http_conn_write_response(struct http_conn *c, int status, const char *ctype,
                            const void *body, size_t len, const char *extra, bool keep,
                            bool is_head)
{
    if (c->closing)
        return;
    bool no_body = status < 200 || status == 204 || status == 304;
    char head[256];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
    if (!no_body)
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %zu\r\n", len);
    if (!keep)
        n += snprintf(head + n, sizeof head - (size_t)n, "Connection: close\r\n");
    size_t ctl = ctype ? strlen(ctype) : 0;
    size_t exl = extra ? strlen(extra) : 0;
    size_t blen = (no_body || is_head) ? 0 : len;
    size_t total = (size_t)n + (ctl ? ctl + 16 : 0) + exl + 2 + blen;
    const struct http_limits *lim = limits_of(c);
    if (total > lim->max_output_queue || http_conn_queued(c) > lim->max_output_queue - total) {
        http_conn_close(c);
        return;
    }
    struct buf *b = c->tls ? &c->pout : &c->out;
    enum parley_err rc = buf_append(b, head, (size_t)n);
    if (!rc && ctl) {
        rc = buf_append(b, "Content-Type: ", 14);
        if (!rc)
            rc = buf_append(b, ctype, ctl);
        if (!rc)
            rc = buf_append(b, "\r\n", 2);
    }
    if (!rc && exl)
        rc = buf_append(b, extra, exl);
    if (!rc)
        rc = buf_append(b, "\r\n", 2);
    if (!rc && blen)
        rc = buf_append(b, body, blen);
    if (rc) {
        http_conn_close(c);
        return;
    }
    http_conn_mark_dirty(c);
}

void http_respond(struct http_request *req, int status, const char *content_type,
                  const void *body, size_t len, const char *extra_headers)
{
    if (!req)
        return;
    http_req_answer((struct conn_req *)req, status, content_type, body, len, extra_headers);
}

void http_respond_json(struct http_request *req, int status, const char *json_text)
{
    const char *t = json_text ? json_text : "null";
    http_respond(req, status, "application/json", t, strlen(t), NULL);
}

static enum parley_err json_str(struct buf *b, const char *s)
{
    enum parley_err rc = buf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); !rc && *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            rc = buf_append(b, e, 2);
        } else if (*p < 0x20) {
            rc = buf_printf(b, "\\u%04x", *p);
        } else {
            rc = buf_append(b, p, 1);
        }
    }
    if (!rc)
        rc = buf_append(b, "\"", 1);
    return rc;
}

void http_respond_error(struct http_request *req, int status, const char *code,
                        const char *message)
{
    struct buf b;
    buf_init(&b, 64 * 1024);
    enum parley_err rc = buf_append_str(&b, "{\"error\":{\"code\":");
    if (!rc)
        rc = json_str(&b, code);
    if (!rc)
        rc = buf_append_str(&b, ",\"message\":");
    if (!rc)
        rc = json_str(&b, message);
    if (!rc)
        rc = buf_append_str(&b, "}}");
    if (rc) {
        static const char fallback[] = "{\"error\":{\"code\":\"internal\",\"message\":\"\"}}";
        http_respond(req, status, "application/json", fallback, sizeof fallback - 1, NULL);
    } else {
        http_respond(req, status, "application/json", b.data, b.len, NULL);
    }
    buf_cleanup(&b);
}

const char *http_request_header(const struct http_request *req, const char *name)
{
    if (!req || !name)
        return NULL;
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}
