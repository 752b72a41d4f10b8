/*
 * test_ws_server.c — WebSocket on the server transport over real sockets: handshake,
 * echo of text/binary (small, 16-bit and 64-bit lengths), fragmentation with an
 * interleaved ping, frames arriving with the upgrade request (sync and async upgrade),
 * limits (1009), protocol errors (1002 unmasked, 1007 bad UTF-8), the close handshake
 * both ways, server pings and dead-peer detection, sends from another thread via
 * http_loop_post, and close 1001 on server stop.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "http_server.h"
#include "test_http_server_util.h"

static atomic_int closes;
static atomic_int last_close_code;

static void ws_on_message(struct ws_conn *ws, bool binary, const uint8_t *data, size_t len,
                          void *user)
{
    (void)user;
    if (!binary && len == 8 && memcmp(data, "close-me", 8) == 0) {
        ws_close(ws, 1000, "bye");
        return;
    }
    if (!binary && len == 4 && memcmp(data, "push", 4) == 0)
        return; /* handled by the push test via the thread below */
    assert_int_equal(ws_send(ws, binary, data, len), PARLEY_OK);
}

static void ws_on_close(struct ws_conn *ws, uint16_t code, void *user)
{
    (void)ws;
    (void)user;
    atomic_store(&last_close_code, code);
    atomic_fetch_add(&closes, 1);
}

static const struct ws_callbacks echo_cb = {ws_on_message, ws_on_close};

static void h_ws(struct http_request *req, void *ctx)
{
    (void)ctx;
    struct ws_conn *ws = NULL;
    if (http_upgrade_websocket(req, &echo_cb, NULL, &ws) == PARLEY_OK)
        assert_non_null(ws_loop(ws));
}

static void nop_work(void *arg)
{
    (void)arg;
    usleep(30000);
}

static void async_upgrade_done(struct http_request *req, void *arg)
{
    (void)arg;
    struct ws_conn *ws;
    if (http_upgrade_websocket(req, &echo_cb, NULL, &ws) != PARLEY_OK) {
        /* answered by the call */
    }
}

static void h_ws_async(struct http_request *req, void *ctx)
{
    (void)ctx;
    assert_int_equal(http_request_work(req, nop_work, async_upgrade_done, NULL), PARLEY_OK);
}

/* A foreign thread pushes a message to a WebSocket through its loop. */
struct push {
    struct ws_conn *ws;
    struct http_loop *loop;
    pthread_t th;
};

static void push_on_loop(void *arg)
{
    struct push *p = arg;
    pthread_join(p->th, NULL);
    assert_int_equal(ws_send(p->ws, false, "pushed", 6), PARLEY_OK);
    free(p);
}

static void *push_thread(void *arg)
{
    struct push *p = arg;
    usleep(20000);
    assert_int_equal(http_loop_post(p->loop, push_on_loop, p), PARLEY_OK);
    return NULL;
}

static void push_on_message(struct ws_conn *ws, bool binary, const uint8_t *data, size_t len,
                            void *user)
{
    (void)binary;
    (void)data;
    (void)len;
    (void)user;
    struct push *p = calloc(1, sizeof *p);
    p->ws = ws;
    p->loop = ws_loop(ws);
    assert_int_equal(pthread_create(&p->th, NULL, push_thread, p), 0);
}

static const struct ws_callbacks push_cb = {push_on_message, ws_on_close};

static void h_ws_push(struct http_request *req, void *ctx)
{
    (void)ctx;
    struct ws_conn *ws;
    assert_int_equal(http_upgrade_websocket(req, &push_cb, NULL, &ws), PARLEY_OK);
}

static struct http_server *start(uint32_t ping_ms)
{
    struct http_server_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.host = "127.0.0.1";
    cfg.threads = 2;
    cfg.limits.ws_max_frame = 70000;
    cfg.limits.ws_max_message = 300000;
    cfg.limits.ws_ping_interval_ms = ping_ms;
    struct http_server *srv;
    assert_int_equal(http_server_new(&cfg, &srv), PARLEY_OK);
    assert_int_equal(http_server_route(srv, "GET", "/ws", h_ws, NULL), PARLEY_OK);
    assert_int_equal(http_server_route(srv, "GET", "/ws-async", h_ws_async, NULL), PARLEY_OK);
    assert_int_equal(http_server_route(srv, "GET", "/ws-push", h_ws_push, NULL), PARLEY_OK);
    assert_int_equal(http_server_start(srv), PARLEY_OK);
    return srv;
}

static int setup(void **state)
{
    *state = start(0);
    return 0;
}

static int teardown(void **state)
{
    http_server_stop(*state, 1000);
    http_server_free(*state);
    return 0;
}

static uint16_t port_of(void **state)
{
    return http_server_port(*state);
}

static void open_ws(void **state, struct tc *c, const char *path)
{
    assert_true(tc_open(c, port_of(state)));
    assert_int_equal(ws_client_upgrade(c, path), 101);
}

static void expect_frame(struct tc *c, uint8_t op, const void *data, size_t len)
{
    bool fin;
    uint8_t got_op;
    uint8_t *p;
    size_t n;
    assert_int_equal(ws_frame_recv(c, &fin, &got_op, &p, &n, 5000), 0);
    assert_true(fin);
    assert_int_equal(got_op, op);
    assert_int_equal(n, len);
    assert_memory_equal(p, data, len);
    free(p);
}

/* Expect a close frame with code, then the connection closed. */
static void expect_close(struct tc *c, uint16_t code)
{
    bool fin;
    uint8_t op;
    uint8_t *p;
    size_t n;
    assert_int_equal(ws_frame_recv(c, &fin, &op, &p, &n, 5000), 0);
    assert_int_equal(op, 8);
    assert_true(n >= 2);
    assert_int_equal((p[0] << 8) | p[1], code);
    free(p);
    assert_true(tc_wait_closed(c, 5000));
}

static void wait_closes(int want)
{
    for (int i = 0; i < 300 && atomic_load(&closes) < want; i++)
        usleep(10000);
    assert_true(atomic_load(&closes) >= want);
}

static void test_ws_echo(void **state)
{
    struct tc c;
    open_ws(state, &c, "/ws");
    assert_true(ws_frame_send(&c, true, 1, true, "hello", 5));
    expect_frame(&c, 1, "hello", 5);
    uint8_t bin[256];
    for (int i = 0; i < 256; i++)
        bin[i] = (uint8_t)i;
    assert_true(ws_frame_send(&c, true, 2, true, bin, sizeof bin));
    expect_frame(&c, 2, bin, sizeof bin);
    assert_true(ws_frame_send(&c, true, 2, true, "", 0));
    expect_frame(&c, 2, "", 0);
    /* 64-bit length, spanning many reads (and wslay's 4 KiB buffer). */
    size_t big = 68000;
    uint8_t *b = malloc(big);
    for (size_t i = 0; i < big; i++)
        b[i] = (uint8_t)(i * 7);
    assert_true(ws_frame_send(&c, true, 2, true, b, big));
    expect_frame(&c, 2, b, big);
    /* Several frames in one write. */
    assert_true(ws_frame_send(&c, true, 1, true, "a", 1));
    assert_true(ws_frame_send(&c, true, 1, true, "bb", 2));
    expect_frame(&c, 1, "a", 1);
    expect_frame(&c, 1, "bb", 2);
    free(b);
    tc_close(&c);
}

static void test_ws_fragmented(void **state)
{
    struct tc c;
    open_ws(state, &c, "/ws");
    assert_true(ws_frame_send(&c, false, 1, true, "hel", 3));
    assert_true(ws_frame_send(&c, true, 9, true, "p", 1)); /* ping between fragments */
    expect_frame(&c, 10, "p", 1);
    assert_true(ws_frame_send(&c, false, 0, true, "lo ", 3));
    usleep(20000);
    assert_true(ws_frame_send(&c, true, 0, true, "world", 5));
    expect_frame(&c, 1, "hello world", 11);
    /* Still fine afterwards. */
    assert_true(ws_frame_send(&c, true, 2, true, "x", 1));
    expect_frame(&c, 2, "x", 1);
    tc_close(&c);
}

static void test_ws_with_upgrade_bytes(void **state)
{
    const char *paths[] = {"/ws", "/ws-async"};
    for (int i = 0; i < 2; i++) {
        struct tc c;
        assert_true(tc_open(&c, port_of(state)));
        char req[512];
        snprintf(req, sizeof req,
                 "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 paths[i]);
        /* Request and first frame in one write: the frame must not be lost. */
        uint8_t frame[32] = {0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2};
        size_t rl = strlen(req);
        uint8_t all[600];
        memcpy(all, req, rl);
        memcpy(all + rl, frame, 8);
        assert_true(tc_send(&c, all, rl + 8));
        struct tresp r;
        assert_int_equal(tc_read_response(&c, &r, 5000), 0);
        assert_int_equal(r.status, 101);
        tresp_free(&r);
        expect_frame(&c, 1, "hi", 2);
        tc_close(&c);
    }
}

static void test_ws_limits_and_errors(void **state)
{
    struct tc c;
    int before = atomic_load(&closes);
    /* Frame over ws_max_frame: 1009 as soon as its header arrives. */
    open_ws(state, &c, "/ws");
    uint8_t *b = calloc(1, 80000);
    assert_true(ws_frame_send(&c, true, 2, true, b, 80000));
    expect_close(&c, 1009);
    tc_close(&c);
    /* Message over ws_max_message across fragments. */
    open_ws(state, &c, "/ws");
    for (int i = 0; i < 5; i++)
        if (!ws_frame_send(&c, false, i ? 0 : 2, true, b, 65000))
            break;
    expect_close(&c, 1009);
    tc_close(&c);
    free(b);
    /* Unmasked client frame: 1002. */
    open_ws(state, &c, "/ws");
    assert_true(ws_frame_send(&c, true, 1, false, "plain", 5));
    expect_close(&c, 1002);
    tc_close(&c);
    /* Continuation without a message: 1002. */
    open_ws(state, &c, "/ws");
    assert_true(ws_frame_send(&c, true, 0, true, "x", 1));
    expect_close(&c, 1002);
    tc_close(&c);
    /* Unknown opcode: 1002. */
    open_ws(state, &c, "/ws");
    assert_true(ws_frame_send(&c, true, 3, true, "x", 1));
    expect_close(&c, 1002);
    tc_close(&c);
    /* Invalid UTF-8 in a text message: 1007. */
    open_ws(state, &c, "/ws");
    assert_true(ws_frame_send(&c, true, 1, true, "\xc3\x28", 2));
    expect_close(&c, 1007);
    tc_close(&c);
    /* Invalid close code: 1002. */
    open_ws(state, &c, "/ws");
    assert_true(ws_frame_send(&c, true, 8, true, "\x03\xed", 2)); /* 1005 may not be sent */
    expect_close(&c, 1002);
    tc_close(&c);
    wait_closes(before + 7);
}

static void test_ws_close_handshakes(void **state)
{
    struct tc c;
    int before = atomic_load(&closes);
    /* Client-initiated: the server echoes the code and closes. */
    open_ws(state, &c, "/ws");
    assert_true(ws_frame_send(&c, true, 8, true, "\x03\xe8" "done", 6));
    expect_close(&c, 1000);
    tc_close(&c);
    wait_closes(before + 1);
    assert_int_equal(atomic_load(&last_close_code), 1000);
    /* Server-initiated: ws_close(1000, "bye"), the client answers. */
    open_ws(state, &c, "/ws");
    assert_true(ws_frame_send(&c, true, 1, true, "close-me", 8));
    bool fin;
    uint8_t op;
    uint8_t *p;
    size_t n;
    assert_int_equal(ws_frame_recv(&c, &fin, &op, &p, &n, 5000), 0);
    assert_int_equal(op, 8);
    assert_int_equal(n, 5);
    assert_memory_equal(p, "\x03\xe8" "bye", 5);
    free(p);
    assert_true(ws_frame_send(&c, true, 8, true, "\x03\xe8", 2));
    assert_true(tc_wait_closed(&c, 5000));
    tc_close(&c);
    wait_closes(before + 2);
    assert_int_equal(atomic_load(&last_close_code), 1000);
    /* Abrupt disconnect: on_close with 1006. */
    open_ws(state, &c, "/ws");
    tc_close(&c);
    wait_closes(before + 3);
    assert_int_equal(atomic_load(&last_close_code), 1006);
}

static void test_ws_bad_handshake(void **state)
{
    struct tc c;
    struct tresp r;
    assert_true(tc_open(&c, port_of(state)));
    assert_int_equal(tc_request(&c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                    "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
                                &r), 0);
    assert_int_equal(r.status, 400);
    tresp_free(&r);
    tc_close(&c);
    assert_true(tc_open(&c, port_of(state)));
    assert_int_equal(tc_request(&c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                    "Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
                                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                                &r), 0);
    assert_int_equal(r.status, 400);
    tresp_free(&r);
    tc_close(&c);
    /* A plain GET on the route (no upgrade headers) is a 400 that keeps the connection. */
    assert_true(tc_open(&c, port_of(state)));
    assert_int_equal(tc_request(&c, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 400);
    tresp_free(&r);
    assert_int_equal(tc_request(&c, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 400);
    tresp_free(&r);
    tc_close(&c);
}

static void test_ws_push_from_thread(void **state)
{
    struct tc c;
    open_ws(state, &c, "/ws-push");
    assert_true(ws_frame_send(&c, true, 1, true, "push", 4));
    expect_frame(&c, 1, "pushed", 6);
    tc_close(&c);
}

static void test_ws_server_pings(void **state)
{
    (void)state;
    struct http_server *srv = start(150);
    struct tc c;
    assert_true(tc_open(&c, http_server_port(srv)));
    assert_int_equal(ws_client_upgrade(&c, "/ws"), 101);
    int before = atomic_load(&closes);
    /* Answer two pings: the connection stays up. */
    for (int i = 0; i < 2; i++) {
        bool fin;
        uint8_t op;
        uint8_t *p;
        size_t n;
        assert_int_equal(ws_frame_recv(&c, &fin, &op, &p, &n, 2000), 0);
        assert_int_equal(op, 9);
        assert_true(ws_frame_send(&c, true, 10, true, p, n));
        free(p);
    }
    assert_true(ws_frame_send(&c, true, 1, true, "alive", 5));
    expect_frame(&c, 1, "alive", 5);
    /* Stop answering: the server gives up on us. */
    uint64_t t0 = tc_now_ms();
    assert_true(tc_wait_closed(&c, 3000));
    assert_true(tc_now_ms() - t0 < 2000);
    tc_close(&c);
    wait_closes(before + 1);
    assert_int_equal(atomic_load(&last_close_code), 1006);
    http_server_stop(srv, 100);
    http_server_free(srv);
}

static void test_ws_stop_1001(void **state)
{
    (void)state;
    struct http_server *srv = start(0);
    struct tc c;
    assert_true(tc_open(&c, http_server_port(srv)));
    assert_int_equal(ws_client_upgrade(&c, "/ws"), 101);
    int before = atomic_load(&closes);
    http_server_stop(srv, 300);
    assert_int_equal(atomic_load(&closes), before + 1);
    assert_int_equal(atomic_load(&last_close_code), 1001);
    expect_close(&c, 1001);
    tc_close(&c);
    http_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ws_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ws_fragmented, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ws_with_upgrade_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ws_limits_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ws_close_handshakes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ws_bad_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ws_push_from_thread, setup, teardown),
        cmocka_unit_test(test_ws_server_pings),
        cmocka_unit_test(test_ws_stop_1001),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
