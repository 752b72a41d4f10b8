/*
 * test_http_client.c — the HTTP/WebSocket/TLS client against a tiny in-test server.
 *
 * Each test starts a server thread on 127.0.0.1:<ephemeral> running a script written
 * with raw POSIX sockets (canned responses, WebSocket frames built by hand, and an
 * OpenSSL server with a throw-away self-signed certificate), so the client is tested
 * without the real server.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "http_client.h"
#include "tls_client.h"

/* ---- the scripted server ---- */

struct srv;
typedef void (*srv_script)(struct srv *s);

struct srv {
    int lfd;
    uint16_t port;
    pthread_t th;
    srv_script script;
    int accepts;  /* connections accepted */
    int failures; /* checks that failed inside the thread */
    SSL_CTX *tls; /* non-NULL: wrap accepted sockets in TLS */
    char url[64];
    void *arg;
};

struct sconn {
    int fd;
    SSL *ssl;
};

static void *srv_main(void *p)
{
    struct srv *s = p;
    s->script(s);
    return NULL;
}

static void srv_start(struct srv *s, srv_script script, const char *scheme)
{
    memset(s, 0, sizeof *s);
    s->script = script;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->lfd, 8), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    snprintf(s->url, sizeof s->url, "%s://127.0.0.1:%u", scheme ? scheme : "http",
             (unsigned)s->port);
}

static void srv_run(struct srv *s)
{
    assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_join(struct srv *s)
{
    pthread_join(s->th, NULL);
    close(s->lfd);
    assert_int_equal(s->failures, 0);
}

#define SCHECK(s, cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "server check failed: %s (line %d)\n", #cond, __LINE__);               \
            (s)->failures++;                                                                       \
        }                                                                                          \
    } while (0)

/* Accept one connection within ms (-1 on timeout). */
static bool srv_accept(struct srv *s, struct sconn *c, int ms)
{
    struct pollfd pfd = {.fd = s->lfd, .events = POLLIN};
    c->fd = -1;
    c->ssl = NULL;
    if (poll(&pfd, 1, ms) != 1)
        return false;
    c->fd = accept(s->lfd, NULL, NULL);
    if (c->fd < 0)
        return false;
    s->accepts++;
    if (s->tls) {
        c->ssl = SSL_new(s->tls);
        SSL_set_fd(c->ssl, c->fd);
        if (SSL_accept(c->ssl) != 1) {
            SSL_free(c->ssl);
            c->ssl = NULL;
            close(c->fd);
            c->fd = -1;
            return false;
        }
    }
    return true;
}

static void sc_close(struct sconn *c)
{
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->ssl = NULL;
}

static ssize_t sc_read(struct sconn *c, void *p, size_t n)
{
    if (c->ssl) {
        int r = SSL_read(c->ssl, p, (int)n);
        return r > 0 ? r : 0;
    }
    return recv(c->fd, p, n, 0);
}

static void sc_write(struct sconn *c, const void *p, size_t n)
{
    const char *q = p;
    while (n > 0) {
        ssize_t w = c->ssl ? SSL_write(c->ssl, q, (int)n) : send(c->fd, q, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        q += w;
        n -= (size_t)w;
    }
}

static void sc_puts(struct sconn *c, const char *s)
{
    sc_write(c, s, strlen(s));
}

static bool sc_read_exact(struct sconn *c, void *p, size_t n)
{
    uint8_t *q = p;
    while (n > 0) {
        ssize_t r = sc_read(c, q, n);
        if (r <= 0)
            return false;
        q += r;
        n -= (size_t)r;
    }
    return true;
}

/* Read one request (head + Content-Length body) into out; false on EOF. */
static bool sc_read_request(struct sconn *c, char *out, size_t out_len)
{
    size_t len = 0;
    char *end = NULL;
    while (!end) {
        if (len + 1 >= out_len)
            return false;
        ssize_t r = sc_read(c, out + len, out_len - 1 - len);
        if (r <= 0)
            return false;
        len += (size_t)r;
        out[len] = 0;
        end = strstr(out, "\r\n\r\n");
    }
    size_t head = (size_t)(end + 4 - out);
    const char *cl = strstr(out, "Content-Length: ");
    size_t body = cl && cl < end ? strtoul(cl + 16, NULL, 10) : 0;
    while (len < head + body && len + 1 < out_len) {
        ssize_t r = sc_read(c, out + len, out_len - 1 - len);
        if (r <= 0)
            return false;
        len += (size_t)r;
        out[len] = 0;
    }
    return true;
}

/* Wait until the client closes (EOF) or ms pass. */
static void sc_wait_eof(struct sconn *c, int ms)
{
    char tmp[256];
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    while (poll(&pfd, 1, ms) == 1 && sc_read(c, tmp, sizeof tmp) > 0) {
    }
}

static struct http_client *new_client(const char *url, uint32_t timeout_ms, size_t max)
{
    struct http_client_config cfg = {.url = url, .timeout_ms = timeout_ms, .max_response = max};
    struct http_client *c = NULL;
    assert_int_equal(http_client_new(&cfg, &c), PARLEY_OK);
    return c;
}

/* ---- URL parsing ---- */

static void test_url_parse(void **state)
{
    (void)state;
    struct tls_client_url u;
    assert_int_equal(tls_client_url_parse("http://127.0.0.1:8080", &u), PARLEY_OK);
    assert_false(u.tls);
    assert_string_equal(u.host, "127.0.0.1");
    assert_string_equal(u.port, "8080");
    assert_string_equal(u.authority, "127.0.0.1:8080");
    assert_string_equal(u.path, "");
    assert_int_equal(tls_client_url_parse("https://example.org/api/", &u), PARLEY_OK);
    assert_true(u.tls);
    assert_string_equal(u.port, "443");
    assert_string_equal(u.path, "/api");
    assert_int_equal(tls_client_url_parse("wss://[::1]:9/", &u), PARLEY_OK);
    assert_true(u.tls && u.websocket);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.authority, "[::1]:9");
    assert_int_equal(tls_client_url_parse("ftp://x", &u), PARLEY_ERR_INVAL);
    assert_int_equal(tls_client_url_parse("http://", &u), PARLEY_ERR_INVAL);
    assert_int_equal(tls_client_url_parse("http://u:p@h/", &u), PARLEY_ERR_INVAL);
    assert_int_equal(tls_client_url_parse("http://h:0", &u), PARLEY_ERR_INVAL);
    assert_int_equal(tls_client_url_parse("http://h:65536", &u), PARLEY_ERR_INVAL);
    assert_int_equal(tls_client_url_parse("http://h:12a", &u), PARLEY_ERR_INVAL);
    assert_int_equal(tls_client_url_parse("http://h/?q", &u), PARLEY_ERR_INVAL);
    assert_int_equal(tls_client_url_parse("http://[::1", &u), PARLEY_ERR_INVAL);
}

/* ---- Content-Length ---- */

static void script_content_length(struct srv *s)
{
    struct sconn c;
    char req[4096];
    if (!srv_accept(s, &c, 5000)) {
        s->failures++;
        return;
    }
    SCHECK(s, sc_read_request(&c, req, sizeof req));
    SCHECK(s, strncmp(req, "POST /v1/things HTTP/1.1\r\n", 26) == 0);
    SCHECK(s, strstr(req, "\r\nHost: 127.0.0.1:") != NULL);
    SCHECK(s, strstr(req, "\r\nContent-Length: 7\r\n") != NULL);
    SCHECK(s, strstr(req, "\r\nX-Extra: 1\r\n") != NULL);
    SCHECK(s, strstr(req, "\r\n\r\n{\"a\":1}") != NULL);
    sc_puts(&c, "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                "X-Test:   spaced value  \r\nContent-Length: 5\r\n\r\nhello");
    sc_wait_eof(&c, 5000);
    sc_close(&c);
}

static void test_content_length(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, script_content_length, NULL);
    srv_run(&s);
    struct http_client *c = new_client(s.url, 5000, 0);
    struct http_response r;
    assert_int_equal(
        http_client_request(c, "POST", "/v1/things", "X-Extra: 1\r\n", "{\"a\":1}", 7, &r),
        PARLEY_OK);
    assert_int_equal(r.status, 201);
    assert_int_equal(r.body.len, 5);
    assert_string_equal(buf_str(&r.body), "hello");
    char v[64];
    assert_true(http_response_header(&r, "content-type", v, sizeof v));
    assert_string_equal(v, "application/json");
    assert_true(http_response_header(&r, "X-TEST", v, sizeof v));
    assert_string_equal(v, "spaced value");
    assert_false(http_response_header(&r, "X-Missing", v, sizeof v));
    assert_false(http_response_header(&r, "X-Test", v, 4)); /* too small: refused */
    http_response_cleanup(&r);
    http_client_free(c);
    srv_join(&s);
}

/* ---- chunked, sent in dribbles ---- */

static void script_chunked(struct srv *s)
{
    struct sconn c;
    char req[4096];
    if (!srv_accept(s, &c, 5000)) {
        s->failures++;
        return;
    }
    SCHECK(s, sc_read_request(&c, req, sizeof req));
    SCHECK(s, strncmp(req, "GET /v1/chunks HTTP/1.1\r\n", 25) == 0);
    SCHECK(s, strstr(req, "Content-Length") == NULL);
    const char *parts[] = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n", "\r\n5\r\nhel",
                           "lo\r\n6\r\n world\r\n", "0\r\n\r\n"};
    for (size_t i = 0; i < 4; i++) {
        sc_puts(&c, parts[i]);
        usleep(20000);
    }
    sc_wait_eof(&c, 5000);
    sc_close(&c);
}

static void test_chunked(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, script_chunked, NULL);
    srv_run(&s);
    struct http_client *c = new_client(s.url, 5000, 0);
    struct http_response r;
    assert_int_equal(http_client_request(c, "GET", "/v1/chunks", NULL, NULL, 0, &r), PARLEY_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(buf_str(&r.body), "hello world");
    http_response_cleanup(&r);
    http_client_free(c);
    srv_join(&s);
}

/* ---- keep-alive reuse ---- */

static void script_keepalive(struct srv *s)
{
    struct sconn c;
    char req[4096];
    if (!srv_accept(s, &c, 5000)) {
        s->failures++;
        return;
    }
    for (int i = 0; i < 3; i++) {
        SCHECK(s, sc_read_request(&c, req, sizeof req));
        char resp[128];
        snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d", i);
        sc_puts(&c, resp);
    }
    /* A fourth request must come on the same connection too: answer 204 (no body). */
    SCHECK(s, sc_read_request(&c, req, sizeof req));
    sc_puts(&c, "HTTP/1.1 204 No Content\r\n\r\n");
    struct sconn extra;
    SCHECK(s, !srv_accept(s, &extra, 200)); /* no second connection */
    sc_wait_eof(&c, 5000);
    sc_close(&c);
}

static void test_keepalive_reuse(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, script_keepalive, NULL);
    srv_run(&s);
    struct http_client *c = new_client(s.url, 5000, 0);
    for (int i = 0; i < 3; i++) {
        struct http_response r;
        assert_int_equal(http_client_request(c, "GET", "/x", NULL, NULL, 0, &r), PARLEY_OK);
        assert_int_equal(r.status, 200);
        char want[2] = {(char)('0' + i), 0};
        assert_string_equal(buf_str(&r.body), want);
        http_response_cleanup(&r);
    }
    struct http_response r;
    assert_int_equal(http_client_request(c, "DELETE", "/x", NULL, NULL, 0, &r), PARLEY_OK);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.body.len, 0);
    http_response_cleanup(&r);
    usleep(300000);
    http_client_free(c);
    srv_join(&s);
    assert_int_equal(s.accepts, 1);
}

/* ---- the server closes an idle connection ---- */

/* Variant 1: closes it visibly while idle (the peek before reuse notices).
 * Variant 2: reads the next request and closes without a byte of answer (the race a
 * peek cannot see): the client must reconnect and send once more. */
static void script_idle_close(struct srv *s)
{
    struct sconn c;
    char req[4096];
    int variant = *(int *)s->arg;
    if (!srv_accept(s, &c, 5000)) {
        s->failures++;
        return;
    }
    SCHECK(s, sc_read_request(&c, req, sizeof req));
    sc_puts(&c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none");
    if (variant == 2)
        SCHECK(s, sc_read_request(&c, req, sizeof req));
    sc_close(&c);
    if (!srv_accept(s, &c, 5000)) {
        s->failures++;
        return;
    }
    SCHECK(s, sc_read_request(&c, req, sizeof req));
    SCHECK(s, strstr(req, "\r\n\r\nsecond") != NULL);
    sc_puts(&c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo");
    sc_wait_eof(&c, 5000);
    sc_close(&c);
}

static void run_idle_close(int variant)
{
    struct srv s;
    srv_start(&s, script_idle_close, NULL);
    s.arg = &variant;
    srv_run(&s);
    struct http_client *c = new_client(s.url, 5000, 0);
    struct http_response r;
    assert_int_equal(http_client_request(c, "GET", "/a", NULL, NULL, 0, &r), PARLEY_OK);
    assert_string_equal(buf_str(&r.body), "one");
    http_response_cleanup(&r);
    if (variant == 1)
        usleep(100000); /* let the FIN arrive */
    assert_int_equal(http_client_request(c, "POST", "/b", NULL, "second", 6, &r), PARLEY_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(buf_str(&r.body), "two");
    http_response_cleanup(&r);
    http_client_free(c);
    srv_join(&s);
    assert_int_equal(s.accepts, 2);
}

static void test_idle_close_seen(void **state)
{
    (void)state;
    run_idle_close(1);
}

static void test_idle_close_race(void **state)
{
    (void)state;
    run_idle_close(2);
}

/* Closing mid-answer is an error, never a silent retry. */
static void script_cut(struct srv *s)
{
    struct sconn c;
    char req[4096];
    if (!srv_accept(s, &c, 5000)) {
        s->failures++;
        return;
    }
    SCHECK(s, sc_read_request(&c, req, sizeof req));
    sc_puts(&c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    sc_close(&c);
}

static void test_cut_response(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, script_cut, NULL);
    srv_run(&s);
    struct http_client *c = new_client(s.url, 5000, 0);
    struct http_response r;
    assert_int_equal(http_client_request(c, "GET", "/a", NULL, NULL, 0, &r), PARLEY_ERR_IO);
    assert_int_equal(r.status, 0);
    assert_true(http_client_error(c)[0] != 0);
    http_response_cleanup(&r);
    http_client_free(c);
    srv_join(&s);
    assert_int_equal(s.accepts, 1);
}

/* Body delimited by the end of the connection (no length, no chunking). */
static void script_eof_body(struct srv *s)
{
    struct sconn c;
    char req[4096];
    if (!srv_accept(s, &c, 5000)) {
        s->failures++;
        return;
    }
    SCHECK(s, sc_read_request(&c, req, sizeof req));
    sc_puts(&c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end");
    sc_close(&c);
}

static void test_eof_body(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, script_eof_body, NULL);
    srv_run(&s);
    struct http_client *c = new_client(s.url, 5000, 0);
    struct http_response r;
    assert_int_equal(http_client_request(c, "GET", "/a", NULL, NULL, 0, &r), PARLEY_OK);
    assert_string_equal(buf_str(&r.body), "until the end");
    http_response_cleanup(&r);
    http_client_free(c);
    srv_join(&s);
}

/* ---- limits and timeouts ---- */

static void script_oversize(struct srv *s)
{
    char req[4096];
    for (int i = 0; i < 2; i++) {
        struct sconn c;
        if (!srv_accept(s, &c, 5000)) {
            s->failures++;
            return;
        }
        SCHECK(s, sc_read_request(&c, req, sizeof req));
        if (i == 0) {
            sc_puts(&c, "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n");
        } else {
            sc_puts(&c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            char chunk[600];
            memset(chunk, 'x', sizeof chunk);
            for (int k = 0; k < 3; k++) {
                sc_puts(&c, "258\r\n"); /* 0x258 = 600 */
                sc_write(&c, chunk, sizeof chunk);
                sc_puts(&c, "\r\n");
            }
            sc_puts(&c, "0\r\n\r\n");
        }
        sc_wait_eof(&c, 5000);
        sc_close(&c);
    }
}

static void test_oversize(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, script_oversize, NULL);
    srv_run(&s);
    struct http_client *c = new_client(s.url, 5000, 1000);
    struct http_response r;
    /* Declared length over the limit: refused before reading the body. */
    assert_int_equal(http_client_request(c, "GET", "/big", NULL, NULL, 0, &r), PARLEY_ERR_LIMIT);
    http_response_cleanup(&r);
    /* Chunked body growing past the limit. */
    assert_int_equal(http_client_request(c, "GET", "/big", NULL, NULL, 0, &r), PARLEY_ERR_LIMIT);
    http_response_cleanup(&r);
    http_client_free(c);
    srv_join(&s);
}

static void script_silent(struct srv *s)
{
    struct sconn c;
    char req[4096];
    if (!srv_accept(s, &c, 5000)) {
        s->failures++;
        return;
    }
    SCHECK(s, sc_read_request(&c, req, sizeof req));
    sc_wait_eof(&c, 5000); /* never answer; ends when the client gives up */
    sc_close(&c);
}

static void test_timeout(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, script_silent, NULL);
    srv_run(&s);
    struct http_client *c = new_client(s.url, 200, 0);
    struct http_response r;
    assert_int_equal(http_client_request(c, "GET", "/slow", NULL, NULL, 0, &r), PARLEY_ERR_TIMEOUT);
    http_response_cleanup(&r);
    http_client_free(c);
    srv_join(&s);
}

static void script_garbage(struct srv *s)
{
    struct sconn c;
    char req[4096];
    if (!srv_accept(s, &c, 5000)) {
        s->failures++;
        return;
    }
    SCHECK(s, sc_read_request(&c, req, sizeof req));
    sc_puts(&c, "HTTP/1.1 2x0 Nope\r\n\r\n");
    sc_wait_eof(&c, 5000);
    sc_close(&c);
}

static void test_malformed(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, script_garbage, NULL);
    srv_run(&s);
    struct http_client *c = new_client(s.url, 5000, 0);
    struct http_response r;
    assert_int_equal(http_client_request(c, "GET", "/", NULL, NULL, 0, &r), PARLEY_ERR_PROTO);
    http_response_cleanup(&r);
    http_client_free(c);
    srv_join(&s);
}

static void test_refused_and_invalid(void **state)
{
    (void)state;
    /* A port nobody listens on. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
    struct http_client *c = new_client(url, 2000, 0);
    struct http_response r;
    assert_int_equal(http_client_request(c, "GET", "/", NULL, NULL, 0, &r), PARLEY_ERR_IO);
    assert_non_null(strstr(http_client_error(c), "connect"));
    http_response_cleanup(&r);
    /* Header injection and bad paths are refused before any I/O. */
    assert_int_equal(http_client_request(c, "GET", "/", "X: a\r\nY: b", NULL, 0, &r),
                     PARLEY_ERR_INVAL);
    http_response_cleanup(&r);
    assert_int_equal(http_client_request(c, "GET", "/", "X: a\nY: b\r\n", NULL, 0, &r),
                     PARLEY_ERR_INVAL);
    http_response_cleanup(&r);
    assert_int_equal(http_client_request(c, "GET", "no-slash", NULL, NULL, 0, &r),
                     PARLEY_ERR_INVAL);
    http_response_cleanup(&r);
    assert_int_equal(http_client_request(c, "GET", "/a b", NULL, NULL, 0, &r), PARLEY_ERR_INVAL);
    http_response_cleanup(&r);
    http_client_free(c);

    struct http_client_config bad = {.url = "gopher://x"};
    struct http_client *c2 = NULL;
    assert_int_equal(http_client_new(&bad, &c2), PARLEY_ERR_INVAL);
    assert_null(c2);
}

/* ---- WebSocket ---- */

static void b64_accept(const char *key, char out[29])
{
    char cat[128];
    unsigned char md[20];
    snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    unsigned int ml = 0;
    EVP_Digest(cat, strlen(cat), md, &ml, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, 20);
}

/* Write one unmasked server frame. */
static void ws_write_frame(struct sconn *c, uint8_t opcode, const void *p, size_t n)
{
    uint8_t h[10];
    size_t hl = 2;
    h[0] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        h[1] = (uint8_t)n;
    } else if (n < 65536) {
        h[1] = 126;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    sc_write(c, h, hl);
    if (n)
        sc_write(c, p, n);
}

/* Read one client frame; checks the mask bit; payload unmasked into *out (malloc). */
static bool ws_read_frame(struct srv *s, struct sconn *c, uint8_t *opcode, bool *fin, uint8_t **out,
                          size_t *len)
{
    uint8_t h[2];
    if (!sc_read_exact(c, h, 2))
        return false;
    *fin = h[0] & 0x80;
    *opcode = h[0] & 0x0f;
    SCHECK(s, (h[1] & 0x80) != 0); /* clients must mask */
    uint64_t n = h[1] & 0x7f;
    if (n == 126) {
        uint8_t e[2];
        if (!sc_read_exact(c, e, 2))
            return false;
        n = ((uint64_t)e[0] << 8) | e[1];
    } else if (n == 127) {
        uint8_t e[8];
        if (!sc_read_exact(c, e, 8))
            return false;
        n = 0;
        for (int i = 0; i < 8; i++)
            n = (n << 8) | e[i];
    }
    uint8_t mask[4];
    if (!sc_read_exact(c, mask, 4))
        return false;
    uint8_t *p = malloc(n + 1);
    if (!p || !sc_read_exact(c, p, n)) {
        free(p);
        return false;
    }
    for (uint64_t i = 0; i < n; i++)
        p[i] ^= mask[i % 4];
    *out = p;
    *len = n;
    return true;
}

/* Handshake; then: greet in the same write as the 101; ping; echo messages until a
 * close frame, which is answered with 1000. */
static void script_ws_echo(struct srv *s)
{
    struct sconn c;
    char req[4096];
    if (!srv_accept(s, &c, 5000)) {
        s->failures++;
        return;
    }
    SCHECK(s, sc_read_request(&c, req, sizeof req));
    SCHECK(s, strncmp(req, "GET /v1/stream HTTP/1.1\r\n", 25) == 0);
    SCHECK(s, strstr(req, "\r\nUpgrade: websocket\r\n") != NULL);
    SCHECK(s, strstr(req, "\r\nSec-WebSocket-Version: 13\r\n") != NULL);
    SCHECK(s, strstr(req, "\r\nAuthorization: Bearer t0k\r\n") != NULL);
    const char *k = strstr(req, "Sec-WebSocket-Key: ");
    SCHECK(s, k != NULL);
    if (!k) {
        sc_close(&c);
        return;
    }
    char key[25] = {0};
    memcpy(key, k + 19, 24);
    char acc[29];
    b64_accept(key, acc);
    char resp[512];
    /* The first frame ("hi") travels in the same write as the 101 head. */
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                     "\x81\x02hi",
                     acc);
    sc_write(&c, resp, (size_t)n);
    ws_write_frame(&c, 0x9, "pp", 2); /* ping: the client must pong */
    bool ponged = false;
    for (;;) {
        uint8_t op;
        bool fin;
        uint8_t *p = NULL;
        size_t len = 0;
        if (!ws_read_frame(s, &c, &op, &fin, &p, &len))
            break;
        if (op == 0xA) {
            SCHECK(s, len == 2 && memcmp(p, "pp", 2) == 0);
            ponged = true;
        } else if (op == 0x8) {
            SCHECK(s, len >= 2 && ((p[0] << 8) | p[1]) == 1000);
            uint8_t code[2] = {0x03, 0xe8};
            ws_write_frame(&c, 0x8, code, 2);
            free(p);
            break;
        } else {
            SCHECK(s, fin);
            ws_write_frame(&c, op, p, len); /* echo */
        }
        free(p);
    }
    SCHECK(s, ponged);
    sc_wait_eof(&c, 2000);
    sc_close(&c);
}

static void test_ws_echo(void **state)
{
    (void)state;
    /* The test server's own accept computation, checked against RFC 6455 section 1.3. */
    char sample[29];
    b64_accept("dGhlIHNhbXBsZSBub25jZQ==", sample);
    assert_string_equal(sample, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    struct srv s;
    srv_start(&s, script_ws_echo, NULL);
    srv_run(&s);
    struct http_client_config cfg = {.url = s.url, .timeout_ms = 5000};
    struct ws_client *ws = NULL;
    int status = 0;
    assert_int_equal(
        ws_client_connect(&cfg, "/v1/stream", "Authorization: Bearer t0k\r\n", &status, &ws),
        PARLEY_OK);
    assert_int_equal(status, 101);
    assert_true(ws_client_fd(ws) >= 0);
    struct buf msg;
    buf_init(&msg, 1u << 20);
    bool binary = true;
    assert_int_equal(ws_client_recv(ws, 5000, &binary, &msg, NULL), PARLEY_OK);
    assert_false(binary);
    assert_string_equal(buf_str(&msg), "hi");

    assert_int_equal(ws_client_send(ws, false, "hello", 5), PARLEY_OK);
    assert_int_equal(ws_client_recv(ws, 5000, &binary, &msg, NULL), PARLEY_OK);
    assert_false(binary);
    assert_string_equal(buf_str(&msg), "hello");

    const uint8_t bin[3] = {0, 1, 255};
    assert_int_equal(ws_client_send(ws, true, bin, 3), PARLEY_OK);
    assert_int_equal(ws_client_recv(ws, 5000, &binary, &msg, NULL), PARLEY_OK);
    assert_true(binary);
    assert_int_equal(msg.len, 3);
    assert_memory_equal(msg.data, bin, 3);

    /* 16-bit and 64-bit length forms. */
    size_t sizes[2] = {300, 70000};
    for (int i = 0; i < 2; i++) {
        uint8_t *big = malloc(sizes[i]);
        for (size_t j = 0; j < sizes[i]; j++)
            big[j] = (uint8_t)(j * 7);
        assert_int_equal(ws_client_send(ws, true, big, sizes[i]), PARLEY_OK);
        assert_int_equal(ws_client_recv(ws, 5000, &binary, &msg, NULL), PARLEY_OK);
        assert_int_equal(msg.len, sizes[i]);
        assert_memory_equal(msg.data, big, sizes[i]);
        free(big);
    }
    /* Nothing more: a zero timeout returns at once. */
    assert_int_equal(ws_client_recv(ws, 0, &binary, &msg, NULL), PARLEY_ERR_TIMEOUT);
    assert_false(ws_client_pending(ws));

    ws_client_close(ws, 1000);
    assert_int_equal(ws_client_send(ws, false, "late", 4), PARLEY_ERR_CLOSED);
    buf_cleanup(&msg);
    ws_client_free(ws);
    srv_join(&s);
}

/* The server closes with a code of its own. */
static void script_ws_server_close(struct srv *s)
{
    struct sconn c;
    char req[4096];
    if (!srv_accept(s, &c, 5000)) {
        s->failures++;
        return;
    }
    SCHECK(s, sc_read_request(&c, req, sizeof req));
    const char *k = strstr(req, "Sec-WebSocket-Key: ");
    char key[25] = {0};
    if (k)
        memcpy(key, k + 19, 24);
    char acc[29], resp[512];
    b64_accept(key, acc);
    snprintf(resp, sizeof resp,
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n"
             "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
             acc);
    sc_puts(&c, resp);
    ws_write_frame(&c, 0x1, "bye", 3);
    uint8_t code[2] = {0x0f, 0xa1}; /* 4001 */
    ws_write_frame(&c, 0x8, code, 2);
    /* The client answers the close. */
    uint8_t op = 0;
    bool fin;
    uint8_t *p = NULL;
    size_t len = 0;
    SCHECK(s, ws_read_frame(s, &c, &op, &fin, &p, &len));
    SCHECK(s, op == 0x8);
    free(p);
    sc_close(&c);
}

static void test_ws_server_close(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, script_ws_server_close, NULL);
    srv_run(&s);
    struct http_client_config cfg = {.url = s.url, .timeout_ms = 5000};
    struct ws_client *ws = NULL;
    assert_int_equal(ws_client_connect(&cfg, "/v1/stream", NULL, NULL, &ws), PARLEY_OK);
    struct buf msg;
    buf_init(&msg, 1024);
    bool binary;
    uint16_t code = 0;
    assert_int_equal(ws_client_recv(ws, 5000, &binary, &msg, &code), PARLEY_OK);
    assert_string_equal(buf_str(&msg), "bye");
    assert_int_equal(ws_client_recv(ws, 5000, &binary, &msg, &code), PARLEY_ERR_CLOSED);
    assert_int_equal(code, 4001);
    assert_int_equal(ws_client_recv(ws, 5000, &binary, &msg, &code), PARLEY_ERR_CLOSED);
    buf_cleanup(&msg);
    ws_client_close(ws, 1000);
    ws_client_free(ws);
    srv_join(&s);
}

/* Refused upgrade, and a wrong Sec-WebSocket-Accept. */
static void script_ws_refuse(struct srv *s)
{
    char req[4096];
    for (int i = 0; i < 2; i++) {
        struct sconn c;
        if (!srv_accept(s, &c, 5000)) {
            s->failures++;
            return;
        }
        SCHECK(s, sc_read_request(&c, req, sizeof req));
        if (i == 0)
            sc_puts(&c, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\n{}");
        else
            sc_puts(&c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n");
        sc_wait_eof(&c, 5000);
        sc_close(&c);
    }
}

static void test_ws_refused(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, script_ws_refuse, NULL);
    srv_run(&s);
    struct http_client_config cfg = {.url = s.url, .timeout_ms = 5000};
    struct ws_client *ws = NULL;
    int status = 0;
    assert_int_equal(ws_client_connect(&cfg, "/v1/stream", NULL, &status, &ws), PARLEY_ERR_SERVER);
    assert_int_equal(status, 401);
    assert_null(ws);
    assert_int_equal(ws_client_connect(&cfg, "/v1/stream", NULL, &status, &ws), PARLEY_ERR_PROTO);
    assert_null(ws);
    srv_join(&s);
}

/* ---- TLS ---- */

struct tls_material {
    SSL_CTX *ctx;
    char ca_path[64];
};

/* A throw-away self-signed certificate for CN=localhost, SAN DNS:localhost and
 * IP:127.0.0.1, written to a temp file so the client can trust it with ca_file. */
static void make_tls(struct tls_material *m)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    assert_non_null(key);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext =
        X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    assert_non_null(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);

    snprintf(m->ca_path, sizeof m->ca_path, "/tmp/parley-test-ca-XXXXXX");
    int fd = mkstemp(m->ca_path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    PEM_write_X509(f, x);
    fclose(f);

    m->ctx = SSL_CTX_new(TLS_server_method());
    assert_int_equal(SSL_CTX_use_certificate(m->ctx, x), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(m->ctx, key), 1);
    X509_free(x);
    EVP_PKEY_free(key);
}

static void free_tls(struct tls_material *m)
{
    SSL_CTX_free(m->ctx);
    unlink(m->ca_path);
}

/* The first client refuses the certificate (the handshake fails here too); then one
 * request per trusting client. */
static void script_tls(struct srv *s)
{
    char req[4096];
    int good = 0;
    while (good < 2) {
        struct sconn c;
        int before = s->accepts;
        if (!srv_accept(s, &c, 5000)) {
            if (s->accepts == before)
                break; /* nobody came: give up */
            continue;  /* a client that refused our certificate */
        }
        if (!sc_read_request(&c, req, sizeof req)) {
            sc_close(&c);
            continue;
        }
        sc_puts(&c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure");
        sc_wait_eof(&c, 5000);
        sc_close(&c);
        good++;
    }
}

static void test_tls(void **state)
{
    (void)state;
    struct tls_material m;
    make_tls(&m);
    struct srv s;
    srv_start(&s, script_tls, "https");
    s.tls = m.ctx;
    srv_run(&s);
    struct http_response r;

    /* Default: verify against the system store, which does not know this cert. */
    struct http_client *c = new_client(s.url, 5000, 0);
    assert_int_equal(http_client_request(c, "GET", "/", NULL, NULL, 0, &r), PARLEY_ERR_IO);
    assert_non_null(strstr(http_client_error(c), "verify"));
    http_response_cleanup(&r);
    http_client_free(c);

    /* Trusted via ca_file; the IP SAN matches 127.0.0.1. */
    struct http_client_config cfg = {.url = s.url, .timeout_ms = 5000, .ca_file = m.ca_path};
    assert_int_equal(http_client_new(&cfg, &c), PARLEY_OK);
    assert_int_equal(http_client_request(c, "GET", "/", NULL, NULL, 0, &r), PARLEY_OK);
    assert_string_equal(buf_str(&r.body), "secure");
    http_response_cleanup(&r);
    http_client_free(c);

    /* insecure_skip_verify (tests only). */
    struct http_client_config cfg2 = {
        .url = s.url, .timeout_ms = 5000, .insecure_skip_verify = true};
    assert_int_equal(http_client_new(&cfg2, &c), PARLEY_OK);
    assert_int_equal(http_client_request(c, "GET", "/", NULL, NULL, 0, &r), PARLEY_OK);
    assert_string_equal(buf_str(&r.body), "secure");
    http_response_cleanup(&r);
    http_client_free(c);

    srv_join(&s);
    free_tls(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse),       cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_chunked),         cmocka_unit_test(test_keepalive_reuse),
        cmocka_unit_test(test_idle_close_seen), cmocka_unit_test(test_idle_close_race),
        cmocka_unit_test(test_cut_response),    cmocka_unit_test(test_eof_body),
        cmocka_unit_test(test_oversize),        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_malformed),       cmocka_unit_test(test_refused_and_invalid),
        cmocka_unit_test(test_ws_echo),         cmocka_unit_test(test_ws_server_close),
        cmocka_unit_test(test_ws_refused),      cmocka_unit_test(test_tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
