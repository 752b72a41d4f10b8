/*
 * test_http_server.c — the HTTP side of the server transport, over real sockets on
 * 127.0.0.1: routing, keep-alive, pipelining (with an asynchronous handler), chunked
 * bodies, limits (400/413/414/431), timeouts (408, idle close), http_loop_post from
 * another thread, graceful stop with a request in flight, stats and the observer, and
 * the socketless parser entry used by the fuzz target.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "http_conn_int.h"
#include "http_server.h"
#include "test_http_server_util.h"

static atomic_int observed;
static atomic_int observed_404;

static void observer(const struct http_request *req, int status, uint64_t latency_us,
                     void *ctx)
{
    (void)latency_us;
    (void)ctx;
    assert_non_null(req->method);
    assert_non_null(req->path);
    atomic_fetch_add(&observed, 1);
    if (status == 404)
        atomic_fetch_add(&observed_404, 1);
}

/* ---------------------------------------------------------------- handlers */

static void h_hello(struct http_request *req, void *ctx)
{
    (void)ctx;
    http_respond_json(req, 200, "{\"hello\":\"world\"}");
}

static void h_params(struct http_request *req, void *ctx)
{
    (void)ctx;
    char out[512];
    snprintf(out, sizeof out, "{\"n\":%zu,\"a\":\"%s\",\"b\":\"%s\",\"q\":\"%s\",\"route\":\"%s\"}",
             req->n_params, req->params[0], req->params[1], req->query ? req->query : "",
             req->route);
    http_respond_json(req, 200, out);
}

static void h_path(struct http_request *req, void *ctx)
{
    (void)ctx;
    http_respond(req, 200, "text/plain", req->path, strlen(req->path), NULL);
}

static void h_echo(struct http_request *req, void *ctx)
{
    (void)ctx;
    if (req->body)
        assert_int_equal(req->body[req->body_len], 0); /* NUL-terminated */
    http_respond(req, 200, "application/octet-stream", req->body, req->body_len,
                 "X-Echo: 1\r\n");
}

static void h_header(struct http_request *req, void *ctx)
{
    (void)ctx;
    const char *v = http_request_header(req, "x-TEST");
    http_respond(req, 200, "text/plain", v ? v : "-", v ? strlen(v) : 1, NULL);
}

struct slow_job {
    unsigned ms;
    char text[32];
};

static void slow_work(void *arg)
{
    struct slow_job *j = arg;
    usleep(j->ms * 1000);
    snprintf(j->text, sizeof j->text, "slept %u", j->ms);
}

static void slow_done(struct http_request *req, void *arg)
{
    struct slow_job *j = arg;
    http_respond(req, 200, "text/plain", j->text, strlen(j->text), NULL);
    free(j);
}

static void h_slow(struct http_request *req, void *ctx)
{
    struct slow_job *j = calloc(1, sizeof *j);
    j->ms = (unsigned)(uintptr_t)ctx;
    if (http_request_work(req, slow_work, slow_done, j) != PARLEY_OK) {
        free(j);
        http_respond_error(req, 503, "unavailable", "busy");
    }
}

/* http_loop_post: a foreign thread answers through the request's loop. */
struct post_ctx {
    struct http_request *req;
    pthread_t th;
    unsigned on_thread;
};

static void post_answer(void *arg)
{
    struct post_ctx *p = arg;
    char out[64];
    snprintf(out, sizeof out, "{\"loop\":%u}", http_loop_index(p->req->loop));
    pthread_join(p->th, NULL);
    http_respond_json(p->req, 200, out);
    free(p);
}

static void *post_thread(void *arg)
{
    struct post_ctx *p = arg;
    usleep(20000);
    assert_int_equal(http_loop_post(p->req->loop, post_answer, p), PARLEY_OK);
    return NULL;
}

static void h_post(struct http_request *req, void *ctx)
{
    (void)ctx;
    struct post_ctx *p = calloc(1, sizeof *p);
    p->req = req;
    assert_int_equal(pthread_create(&p->th, NULL, post_thread, p), 0);
}

/* ------------------------------------------------------------------ fixture */

struct fx {
    struct http_server *srv;
    uint16_t port;
};

static struct http_server *start_server(const struct http_limits *lim, unsigned threads)
{
    struct http_server_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.host = "127.0.0.1";
    cfg.threads = threads;
    if (lim)
        cfg.limits = *lim;
    struct http_server *srv = NULL;
    assert_int_equal(http_server_new(&cfg, &srv), PARLEY_OK);
    assert_int_equal(http_server_route(srv, "GET", "/hello", h_hello, NULL), PARLEY_OK);
    assert_int_equal(http_server_route(srv, "GET", "/users/{a}/items/{b}", h_params, NULL),
                     PARLEY_OK);
    assert_int_equal(http_server_route(srv, "GET", "/users/me/items/{b}", h_path, NULL),
                     PARLEY_OK);
    assert_int_equal(http_server_route(srv, "GET", "/path/{x}", h_path, NULL), PARLEY_OK);
    assert_int_equal(http_server_route(srv, "POST", "/echo", h_echo, NULL), PARLEY_OK);
    assert_int_equal(http_server_route(srv, "PUT", "/echo", h_echo, NULL), PARLEY_OK);
    assert_int_equal(http_server_route(srv, "GET", "/header", h_header, NULL), PARLEY_OK);
    assert_int_equal(http_server_route(srv, "GET", "/slow", h_slow, (void *)(uintptr_t)50),
                     PARLEY_OK);
    assert_int_equal(http_server_route(srv, "GET", "/inflight", h_slow,
                                       (void *)(uintptr_t)400),
                     PARLEY_OK);
    assert_int_equal(http_server_route(srv, "GET", "/post", h_post, NULL), PARLEY_OK);
    assert_int_equal(http_server_route(srv, "GET", "/bad/{x", h_hello, NULL), PARLEY_ERR_INVAL);
    http_server_set_observer(srv, observer, NULL);
    assert_int_equal(http_server_start(srv), PARLEY_OK);
    assert_int_not_equal(http_server_port(srv), 0);
    assert_int_equal(http_server_route(srv, "GET", "/late", h_hello, NULL), PARLEY_ERR_INVAL);
    return srv;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    struct http_limits lim;
    memset(&lim, 0, sizeof lim);
    lim.max_body = 64 * 1024;
    lim.max_request_line = 1024;
    lim.max_header_bytes = 2048;
    lim.max_headers = 16;
    f->srv = start_server(&lim, 2);
    f->port = http_server_port(f->srv);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    http_server_stop(f->srv, 1000);
    http_server_free(f->srv);
    free(f);
    return 0;
}

static uint16_t port_of(void **state)
{
    return ((struct fx *)*state)->port;
}

/* --------------------------------------------------------------------- tests */

static void test_routes_and_params(void **state)
{
    struct tc c;
    struct tresp r;
    assert_true(tc_open(&c, port_of(state)));
    assert_int_equal(tc_request(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal((char *)r.body, "{\"hello\":\"world\"}");
    char ct[64];
    assert_true(tresp_header(&r, "Content-Type", ct, sizeof ct));
    assert_string_equal(ct, "application/json");
    tresp_free(&r);

    assert_int_equal(tc_request(&c, "GET /users/42/items/abc?x=1&y=2 HTTP/1.1\r\nHost: x\r\n\r\n",
                                &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal((char *)r.body, "{\"n\":2,\"a\":\"42\",\"b\":\"abc\",\"q\":\"x=1&y=2\","
                                        "\"route\":\"/users/{a}/items/{b}\"}");
    tresp_free(&r);

    /* Literal segment beats a capture. */
    assert_int_equal(tc_request(&c, "GET /users/me/items/7 HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal((char *)r.body, "/users/me/items/7");
    tresp_free(&r);

    /* Percent-decoding of the path. */
    assert_int_equal(tc_request(&c, "GET /path/a%20b HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal((char *)r.body, "/path/a b");
    tresp_free(&r);

    /* Absolute-form target. */
    assert_int_equal(tc_request(&c, "GET http://x/hello HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    tresp_free(&r);

    /* Header lookup is case-insensitive; empty values do not break the header list. */
    assert_int_equal(tc_request(&c, "GET /header HTTP/1.1\r\nHost: x\r\nX-Empty:\r\n"
                                    "X-Test: yes\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal((char *)r.body, "yes");
    tresp_free(&r);

    /* HEAD falls back to GET, without a body. */
    assert_true(tc_sends(&c, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_int_equal(tc_read_response_ex(&c, &r, 5000, true), 0);
    assert_int_equal(r.status, 200);
    char cl[16];
    assert_true(tresp_header(&r, "Content-Length", cl, sizeof cl));
    assert_string_equal(cl, "17");
    tresp_free(&r);
    /* HEAD's Content-Length must not have been followed by a body: next answer parses. */
    assert_int_equal(tc_request(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    tresp_free(&r);
    tc_close(&c);
}

static void test_404_405(void **state)
{
    struct tc c;
    struct tresp r;
    int before = atomic_load(&observed_404);
    assert_true(tc_open(&c, port_of(state)));
    assert_int_equal(tc_request(&c, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr((char *)r.body, "\"code\":\"not_found\""));
    tresp_free(&r);
    /* 404 keeps the connection. */
    assert_int_equal(tc_request(&c, "DELETE /echo HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 405);
    char allow[64];
    assert_true(tresp_header(&r, "Allow", allow, sizeof allow));
    assert_string_equal(allow, "POST, PUT");
    assert_non_null(strstr((char *)r.body, "method_not_allowed"));
    tresp_free(&r);
    assert_int_equal(tc_request(&c, "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                                &r), 0);
    assert_int_equal(r.status, 405);
    assert_true(tresp_header(&r, "Allow", allow, sizeof allow));
    assert_string_equal(allow, "GET, HEAD");
    tresp_free(&r);
    tc_close(&c);
    assert_true(atomic_load(&observed_404) > before);
}

static void test_keep_alive_and_close(void **state)
{
    struct tc c;
    struct tresp r;
    assert_true(tc_open(&c, port_of(state)));
    for (int i = 0; i < 5; i++) {
        assert_int_equal(tc_request(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
        assert_int_equal(r.status, 200);
        tresp_free(&r);
    }
    /* Connection: close is honoured. */
    assert_int_equal(tc_request(&c, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                &r), 0);
    char v[32];
    assert_true(tresp_header(&r, "Connection", v, sizeof v));
    assert_string_equal(v, "close");
    tresp_free(&r);
    assert_true(tc_wait_closed(&c, 3000));
    tc_close(&c);

    /* HTTP/1.0 without keep-alive closes. */
    assert_true(tc_open(&c, port_of(state)));
    assert_int_equal(tc_request(&c, "GET /hello HTTP/1.0\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    tresp_free(&r);
    assert_true(tc_wait_closed(&c, 3000));
    tc_close(&c);
}

static void test_pipelining_order(void **state)
{
    struct tc c;
    struct tresp r;
    assert_true(tc_open(&c, port_of(state)));
    /* The first is answered asynchronously from the thread pool, 50 ms later. */
    const char *three = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nthird";
    assert_true(tc_sends(&c, three));
    assert_int_equal(tc_read_response(&c, &r, 5000), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal((char *)r.body, "slept 50");
    tresp_free(&r);
    assert_int_equal(tc_read_response(&c, &r, 5000), 0);
    assert_string_equal((char *)r.body, "{\"hello\":\"world\"}");
    tresp_free(&r);
    assert_int_equal(tc_read_response(&c, &r, 5000), 0);
    assert_string_equal((char *)r.body, "third");
    tresp_free(&r);

    /* Many pipelined requests in one write, byte-split bodies included. */
    char big[8192];
    size_t n = 0;
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(big + n, sizeof big - n,
                              "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n%03d", i);
    assert_true(tc_send(&c, big, n));
    for (int i = 0; i < 40; i++) {
        char want[8];
        snprintf(want, sizeof want, "%03d", i);
        assert_int_equal(tc_read_response(&c, &r, 5000), 0);
        assert_string_equal((char *)r.body, want);
        tresp_free(&r);
    }
    tc_close(&c);
}

static void test_chunked_body(void **state)
{
    struct tc c;
    struct tresp r;
    assert_true(tc_open(&c, port_of(state)));
    assert_true(tc_sends(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "5\r\nhello\r\n"));
    usleep(20000);
    assert_true(tc_sends(&c, "7\r\n, world\r\n0\r\n\r\n"));
    assert_int_equal(tc_read_response(&c, &r, 5000), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal((char *)r.body, "hello, world");
    tresp_free(&r);
    /* Expect: 100-continue gets an interim answer. */
    assert_true(tc_sends(&c, "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                             "Expect: 100-continue\r\n\r\n"));
    assert_int_equal(tc_read_response(&c, &r, 5000), 0);
    assert_int_equal(r.status, 100);
    tresp_free(&r);
    assert_true(tc_sends(&c, "ok"));
    assert_int_equal(tc_read_response(&c, &r, 5000), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal((char *)r.body, "ok");
    tresp_free(&r);
    tc_close(&c);
}

/* Send raw, expect status + error code, then the connection closed. */
static void expect_error_close(uint16_t port, const char *raw, size_t raw_len, int status,
                               const char *code)
{
    struct tc c;
    struct tresp r;
    assert_true(tc_open(&c, port));
    assert_true(tc_send(&c, raw, raw_len));
    assert_int_equal(tc_read_response(&c, &r, 5000), 0);
    assert_int_equal(r.status, status);
    char want[64];
    snprintf(want, sizeof want, "{\"error\":{\"code\":\"%s\"", code);
    assert_non_null(strstr((char *)r.body, want));
    char v[32];
    assert_true(tresp_header(&r, "Connection", v, sizeof v));
    assert_string_equal(v, "close");
    tresp_free(&r);
    assert_true(tc_wait_closed(&c, 3000));
    tc_close(&c);
}

static void expect_error_close_s(uint16_t port, const char *raw, int status, const char *code)
{
    expect_error_close(port, raw, strlen(raw), status, code);
}

static void test_limits(void **state)
{
    uint16_t port = port_of(state);
    char *buf = malloc(200000);

    /* 413 from Content-Length, before the body is sent. */
    expect_error_close_s(port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
                         413, "body_too_large");
    /* 413 from a chunked body as it grows. */
    int n = snprintf(buf, 200000, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 20; i++) {
        n += snprintf(buf + n, 200000 - (size_t)n, "1000\r\n");
        memset(buf + n, 'a', 4096);
        n += 4096;
        n += snprintf(buf + n, 200000 - (size_t)n, "\r\n");
    }
    expect_error_close(port, buf, (size_t)n, 413, "body_too_large");

    /* 414: request line over 1 KiB. */
    n = snprintf(buf, 200000, "GET /");
    memset(buf + n, 'a', 2000);
    n += 2000;
    n += snprintf(buf + n, 200000 - (size_t)n, " HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_error_close(port, buf, (size_t)n, 414, "uri_too_long");

    /* 431: too many headers, and one header too big. */
    n = snprintf(buf, 200000, "GET /hello HTTP/1.1\r\n");
    for (int i = 0; i < 20; i++)
        n += snprintf(buf + n, 200000 - (size_t)n, "X-H%d: v\r\n", i);
    n += snprintf(buf + n, 200000 - (size_t)n, "\r\n");
    expect_error_close(port, buf, (size_t)n, 431, "headers_too_large");
    n = snprintf(buf, 200000, "GET /hello HTTP/1.1\r\nX-Big: ");
    memset(buf + n, 'b', 3000);
    n += 3000;
    n += snprintf(buf + n, 200000 - (size_t)n, "\r\n\r\n");
    expect_error_close(port, buf, (size_t)n, 431, "headers_too_large");

    /* 400s. */
    expect_error_close_s(port, "BLAH\r\n\r\n", 400, "bad_request");
    expect_error_close_s(port, "GET /hello HTTP/1.1\r\nBad Header\r\n\r\n", 400, "bad_request");
    expect_error_close_s(port, "GET /path/a%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
    expect_error_close_s(port, "GET /path/a%00b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
    expect_error_close_s(port, "GET /path/a%4 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
    expect_error_close_s(port,
                         "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                         400, "bad_request");
    expect_error_close_s(port, "POST /echo HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                         400, "bad_request");
    static const char nul_req[] = "GET /he\0llo HTTP/1.1\r\n\r\n";
    expect_error_close(port, nul_req, sizeof nul_req - 1, 400, "bad_request");
    free(buf);

    /* The server is still fine and counted the errors. */
    struct http_server_stats st;
    http_server_stats(((struct fx *)*state)->srv, &st);
    assert_true(st.protocol_errors >= 13);
    struct tc c;
    struct tresp r;
    assert_true(tc_open(&c, port));
    assert_int_equal(tc_request(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    tresp_free(&r);
    tc_close(&c);
}

static void test_timeouts(void **state)
{
    (void)state;
    struct http_limits lim;
    memset(&lim, 0, sizeof lim);
    lim.request_timeout_ms = 300;
    lim.idle_timeout_ms = 400;
    struct http_server *srv = start_server(&lim, 1);
    uint16_t port = http_server_port(srv);
    struct tc c;
    struct tresp r;

    /* Slowloris: a request that never completes gets 408 and a close. */
    assert_true(tc_open(&c, port));
    uint64_t t0 = tc_now_ms();
    assert_true(tc_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n"));
    usleep(100000);
    assert_true(tc_sends(&c, "X-Slow: 1\r\n"));
    assert_int_equal(tc_read_response(&c, &r, 3000), 0);
    assert_int_equal(r.status, 408);
    assert_non_null(strstr((char *)r.body, "request_timeout"));
    tresp_free(&r);
    uint64_t dt = tc_now_ms() - t0;
    assert_true(dt >= 250 && dt < 2000);
    assert_true(tc_wait_closed(&c, 3000));
    tc_close(&c);

    /* Idle keep-alive connections are closed silently. */
    assert_true(tc_open(&c, port));
    assert_int_equal(tc_request(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    tresp_free(&r);
    t0 = tc_now_ms();
    assert_true(tc_wait_closed(&c, 3000));
    dt = tc_now_ms() - t0;
    assert_true(dt >= 300 && dt < 2000);
    assert_int_equal(c.len, 0);
    tc_close(&c);

    /* A connection that never says anything is dropped too. */
    assert_true(tc_open(&c, port));
    assert_true(tc_wait_closed(&c, 3000));
    tc_close(&c);

    http_server_stop(srv, 100);
    http_server_free(srv);
}

static void test_loop_post(void **state)
{
    struct tc c;
    struct tresp r;
    assert_true(tc_open(&c, port_of(state)));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tc_request(&c, "GET /post HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
        assert_int_equal(r.status, 200);
        assert_non_null(strstr((char *)r.body, "\"loop\":"));
        tresp_free(&r);
    }
    tc_close(&c);
}

static void test_many_connections_threads(void **state)
{
    enum { N = 64 };
    struct tc cs[N];
    struct tresp r;
    for (int i = 0; i < N; i++)
        assert_true(tc_open(&cs[i], port_of(state)));
    for (int i = 0; i < N; i++)
        assert_true(tc_sends(&cs[i], "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
    for (int i = 0; i < N; i++) {
        assert_int_equal(tc_read_response(&cs[i], &r, 5000), 0);
        assert_int_equal(r.status, 200);
        tresp_free(&r);
        tc_close(&cs[i]);
    }
    struct http_server_stats st;
    http_server_stats(((struct fx *)*state)->srv, &st);
    assert_true(st.connections_total >= N);
    assert_true(st.requests_total >= N);
}

static void test_graceful_stop_inflight(void **state)
{
    (void)state;
    struct http_server *srv = start_server(NULL, 2);
    uint16_t port = http_server_port(srv);
    struct tc busy, idle;
    struct tresp r;
    assert_true(tc_open(&busy, port));
    assert_true(tc_open(&idle, port));
    assert_int_equal(tc_request(&idle, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    tresp_free(&r);
    assert_true(tc_sends(&busy, "GET /inflight HTTP/1.1\r\nHost: x\r\n\r\n"));
    usleep(50000); /* let it be dispatched */
    uint64_t t0 = tc_now_ms();
    http_server_stop(srv, 5000);
    uint64_t dt = tc_now_ms() - t0;
    assert_true(dt < 4000); /* returned once the request was answered, not after grace */
    /* The in-flight request was answered (with Connection: close) before closing. */
    assert_int_equal(tc_read_response(&busy, &r, 2000), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal((char *)r.body, "slept 400");
    char v[16];
    assert_true(tresp_header(&r, "Connection", v, sizeof v));
    tresp_free(&r);
    assert_true(tc_wait_closed(&busy, 2000));
    assert_true(tc_wait_closed(&idle, 2000));
    tc_close(&busy);
    tc_close(&idle);
    /* Nothing listens any more. */
    assert_int_equal(tc_connect_fd(port), -1);
    http_server_free(srv);
}

static void test_stop_grace_expires(void **state)
{
    (void)state;
    struct http_server *srv = start_server(NULL, 1);
    uint16_t port = http_server_port(srv);
    struct tc c;
    assert_true(tc_open(&c, port));
    assert_true(tc_sends(&c, "GET /inflight HTTP/1.1\r\nHost: x\r\n\r\n"));
    usleep(50000);
    uint64_t t0 = tc_now_ms();
    http_server_stop(srv, 100); /* shorter than the work: the connection is cut */
    uint64_t dt = tc_now_ms() - t0;
    assert_true(dt < 3000);
    assert_true(tc_wait_closed(&c, 2000));
    tc_close(&c);
    http_server_free(srv);
}

/* The client goes away while its request runs on the thread pool: the answer is
 * dropped, the request released (ASan checks), the server unharmed. */
static void test_client_gone_inflight(void **state)
{
    uint16_t port = port_of(state);
    int before = atomic_load(&observed);
    for (int rst = 0; rst < 2; rst++) {
        struct tc c;
        assert_true(tc_open(&c, port));
        assert_true(tc_sends(&c, "GET /inflight HTTP/1.1\r\nHost: x\r\n\r\n"));
        usleep(50000);
        if (rst) {
            struct linger lg = {1, 0};
            setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        tc_close(&c);
    }
    usleep(900000);
    assert_true(atomic_load(&observed) >= before + 2);
    struct http_server_stats st;
    http_server_stats(((struct fx *)*state)->srv, &st);
    assert_int_equal(st.connections_open, 0);
    struct tc c;
    struct tresp r;
    assert_true(tc_open(&c, port));
    assert_int_equal(tc_request(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    tresp_free(&r);
    tc_close(&c);
}

static void test_socketless_entry(void **state)
{
    (void)state;
    struct buf out;
    buf_init(&out, 1 << 20);
    static const char req[] = "GET /items/42 HTTP/1.1\r\nHost: x\r\n\r\n"
                              "POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                              "GET /nope HTTP/1.1\r\n\r\n"
                              "GARBAGE\r\n\r\n";
    for (size_t chunk = 0; chunk < 8; chunk++) {
        buf_reset(&out);
        assert_int_equal(http_conn_feed_socketless(NULL, (const uint8_t *)req, sizeof req - 1,
                                                   chunk, &out),
                         PARLEY_OK);
        const char *s = buf_str(&out);
        const char *a = strstr(s, "\r\n\r\n42");
        const char *b = strstr(s, "\r\n\r\nabc");
        const char *c = strstr(s, "HTTP/1.1 404");
        const char *d = strstr(s, "HTTP/1.1 400");
        assert_non_null(a);
        assert_non_null(b);
        assert_non_null(c);
        assert_non_null(d);
        assert_true(a < b && b < c && c < d);
    }
    buf_cleanup(&out);
}

static void test_config_errors(void **state)
{
    (void)state;
    struct http_server_config cfg;
    memset(&cfg, 0, sizeof cfg);
    struct http_server *srv = NULL;
    cfg.tls_cert_file = "/nonexistent.pem";
    assert_int_equal(http_server_new(&cfg, &srv), PARLEY_ERR_INVAL); /* key missing */
    cfg.tls_key_file = "/nonexistent.key";
    assert_int_equal(http_server_new(&cfg, &srv), PARLEY_ERR_IO);
    memset(&cfg, 0, sizeof cfg);
    cfg.host = "not an address at all";
    cfg.threads = 1;
    assert_int_equal(http_server_new(&cfg, &srv), PARLEY_OK);
    assert_int_not_equal(http_server_start(srv), PARLEY_OK);
    http_server_free(srv);
    /* Never started: free is enough. */
    cfg.host = "127.0.0.1";
    assert_int_equal(http_server_new(&cfg, &srv), PARLEY_OK);
    http_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routes_and_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_404_405, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelining_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_post, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_connections_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_gone_inflight, setup, teardown),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_graceful_stop_inflight),
        cmocka_unit_test(test_stop_grace_expires),
        cmocka_unit_test(test_socketless_entry),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
