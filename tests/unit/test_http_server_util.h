/*
 * test_http_server_util.h — tiny blocking HTTP/WebSocket client on plain POSIX sockets,
 * for the transport's own tests (independent of common/http_client.c on purpose).
 * Header-only (static functions); included by test_http_server.c, test_ws_server.c and
 * test_tls_server.c.
 */
#ifndef PARLEY_TEST_HTTP_SERVER_UTIL_H
#define PARLEY_TEST_HTTP_SERVER_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct tc {
    int fd;
    uint8_t *buf;
    size_t len, cap;
    /* optional transport hooks (TLS) */
    void *io;
    ssize_t (*rd)(void *io, void *p, size_t n);
    ssize_t (*wr)(void *io, const void *p, size_t n);
};

struct tresp {
    int status;
    char head[16384];
    uint8_t *body;
    size_t body_len;
};

static inline uint64_t tc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline int tc_connect_fd(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static inline bool tc_open(struct tc *c, uint16_t port)
{
    memset(c, 0, sizeof *c);
    c->fd = tc_connect_fd(port);
    return c->fd >= 0;
}

static inline void tc_close(struct tc *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}

static inline bool tc_send(struct tc *c, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = c->wr ? c->wr(c->io, b, n) : send(c->fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

static inline bool tc_sends(struct tc *c, const char *s)
{
    return tc_send(c, s, strlen(s));
}

/* Read more bytes into c->buf; 1 = got data, 0 = EOF/error, -1 = timeout. */
static inline int tc_fill(struct tc *c, int timeout_ms)
{
    if (c->cap - c->len < 65536) {
        size_t cap = c->cap ? c->cap * 2 : 131072;
        uint8_t *nb = realloc(c->buf, cap + 1);
        if (!nb)
            return 0;
        c->buf = nb;
        c->cap = cap;
    }
    if (!c->rd) {
        struct pollfd pfd = {c->fd, POLLIN, 0};
        int pr = poll(&pfd, 1, timeout_ms);
        if (pr == 0)
            return -1;
        if (pr < 0)
            return 0;
    }
    ssize_t r = c->rd ? c->rd(c->io, c->buf + c->len, c->cap - c->len)
                      : recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (r <= 0)
        return 0;
    c->len += (size_t)r;
    c->buf[c->len] = 0;
    return 1;
}

static inline void tc_consume(struct tc *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

static inline void tresp_free(struct tresp *r)
{
    free(r->body);
    r->body = NULL;
}

/* Case-insensitive header lookup in r->head; copies into out. */
static inline bool tresp_header(const struct tresp *r, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    const char *p = strstr(r->head, "\r\n");
    while (p && p[2]) {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t l = e ? (size_t)(e - v) : strlen(v);
            if (l >= n)
                l = n - 1;
            memcpy(out, v, l);
            out[l] = 0;
            return true;
        }
        p = strstr(p, "\r\n");
    }
    return false;
}

/* Read one response (Content-Length framed, or to EOF without one). 0 ok, -1 failure.
 * head_only: the answer to a HEAD request (no body follows the headers). */
static inline int tc_read_response_ex(struct tc *c, struct tresp *r, int timeout_ms,
                                      bool head_only)
{
    memset(r, 0, sizeof *r);
    uint64_t end = tc_now_ms() + (uint64_t)timeout_ms;
    char *eoh;
    for (;;) {
        if (c->len && (eoh = strstr((char *)c->buf, "\r\n\r\n")))
            break;
        int left = (int)(end - tc_now_ms());
        if (left <= 0 || tc_fill(c, left) != 1)
            return -1;
    }
    size_t hl = (size_t)(eoh - (char *)c->buf) + 4;
    if (hl >= sizeof r->head)
        return -1;
    memcpy(r->head, c->buf, hl);
    r->head[hl] = 0;
    if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1)
        return -1;
    tc_consume(c, hl);
    char cl[32];
    bool has_cl = tresp_header(r, "Content-Length", cl, sizeof cl);
    size_t want = has_cl && !head_only ? strtoul(cl, NULL, 10) : 0;
    if (!has_cl && !head_only && r->status >= 200 && r->status != 204 && r->status != 304) {
        /* read to EOF */
        while (tc_fill(c, (int)(end - tc_now_ms())) == 1) {
        }
        want = c->len;
    }
    for (;;) {
        if (c->len >= want)
            break;
        int left = (int)(end - tc_now_ms());
        if (left <= 0 || tc_fill(c, left) != 1)
            return -1;
    }
    r->body = malloc(want + 1);
    memcpy(r->body, c->buf, want);
    r->body[want] = 0;
    r->body_len = want;
    tc_consume(c, want);
    return 0;
}

static inline int tc_read_response(struct tc *c, struct tresp *r, int timeout_ms)
{
    return tc_read_response_ex(c, r, timeout_ms, false);
}

/* True if the peer closes (EOF or reset) within timeout_ms; buffered data is dropped. */
static inline bool tc_wait_closed(struct tc *c, int timeout_ms)
{
    uint64_t end = tc_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int left = (int)(end - tc_now_ms());
        if (left <= 0)
            return false;
        int r = tc_fill(c, left);
        if (r == 0)
            return true;
        if (r < 0)
            return false;
        c->len = 0;
    }
}

/* One request, one response. */
static inline int tc_request(struct tc *c, const char *raw, struct tresp *r)
{
    if (!tc_sends(c, raw))
        return -1;
    return tc_read_response(c, r, 5000);
}

/* ---- WebSocket client side ---- */

static inline bool ws_frame_send(struct tc *c, bool fin, uint8_t op, bool mask,
                                 const void *payload, size_t len)
{
    uint8_t *f = malloc(len + 14);
    size_t n = 0;
    f[n++] = (uint8_t)((fin ? 0x80 : 0) | op);
    uint8_t m = mask ? 0x80 : 0;
    if (len < 126) {
        f[n++] = (uint8_t)(m | len);
    } else if (len < 65536) {
        f[n++] = m | 126;
        f[n++] = (uint8_t)(len >> 8);
        f[n++] = (uint8_t)len;
    } else {
        f[n++] = m | 127;
        for (int i = 7; i >= 0; i--)
            f[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    if (mask) {
        memcpy(f + n, key, 4);
        n += 4;
    }
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        f[n + i] = mask ? (uint8_t)(p[i] ^ key[i % 4]) : p[i];
    n += len;
    bool ok = tc_send(c, f, n);
    free(f);
    return ok;
}

/* Read one server frame. Returns 0 ok (payload malloc'd in *out), -1 failure/timeout. */
static inline int ws_frame_recv(struct tc *c, bool *fin, uint8_t *op, uint8_t **out,
                                size_t *len, int timeout_ms)
{
    uint64_t end = tc_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (c->len >= 2) {
            size_t need = 2;
            uint64_t pl = c->buf[1] & 0x7f;
            if (pl == 126)
                need += 2;
            else if (pl == 127)
                need += 8;
            if (c->buf[1] & 0x80)
                need += 4;
            if (c->len >= need) {
                if (pl == 126)
                    pl = ((uint64_t)c->buf[2] << 8) | c->buf[3];
                else if (pl == 127) {
                    pl = 0;
                    for (int i = 0; i < 8; i++)
                        pl = (pl << 8) | c->buf[2 + i];
                }
                if (c->len >= need + pl) {
                    *fin = (c->buf[0] & 0x80) != 0;
                    *op = c->buf[0] & 0x0f;
                    *out = malloc(pl + 1);
                    memcpy(*out, c->buf + need, pl);
                    (*out)[pl] = 0;
                    *len = pl;
                    tc_consume(c, need + pl);
                    return 0;
                }
            }
        }
        int left = (int)(end - tc_now_ms());
        if (left <= 0 || tc_fill(c, left) != 1)
            return -1;
    }
}

/* Send the upgrade request for path; returns the HTTP status (101 on success). */
static inline int ws_client_upgrade(struct tc *c, const char *path)
{
    char req[512];
    snprintf(req, sizeof req,
             "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
             path);
    if (!tc_sends(c, req))
        return -1;
    struct tresp r;
    if (tc_read_response(c, &r, 5000))
        return -1;
    int st = r.status;
    char acc[64];
    if (st == 101 && (!tresp_header(&r, "Sec-WebSocket-Accept", acc, sizeof acc) ||
                      strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != 0))
        st = -2;
    tresp_free(&r);
    return st;
}

#endif
