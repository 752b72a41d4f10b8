/*
 * test_ws_server.c — WebSocket on the server transport over real sockets: handshake,
 * echo of text/binary (small, 16-bit and 64-bit lengths), fragmentation with an
 * interleaved ping, frames arriving with the upgrade request (sync and async upgrade),
 * limits (1009), protocol errors (1002 unmasked, 1007 bad UTF-8), the close handshake
 * both ways, server pings and dead-peer detection, sends from another thread via
 * http_loop_post, and close 1001 on server stop. The frame reader is also driven
 * through the socketless entry, where the input is cut into pieces of exactly n bytes
 * (down to one): every split of headers and payloads, several frames per piece, a ping
 * between fragments, and the protocol errors at any split; over a socket, several
 * frames in one write and 1009 on a bare header.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "buf.h"
#include "http_conn_int.h"
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

/* ---- frames built in memory (any key, several per write) ---- */

/* Append one client frame: masked with key (4 bytes) or unmasked when key is NULL; len16
 * / len64 force the longer length forms (for non-minimal encodings). */
static void put_frame_ex(struct buf *b, uint8_t b0, const uint8_t *key, const void *payload,
                         size_t len, int form)
{
    uint8_t h[14];
    size_t n = 0;
    h[n++] = b0;
    uint8_t m = key ? 0x80 : 0;
    if (form == 0 && len < 126) {
        h[n++] = (uint8_t)(m | len);
    } else if (form <= 16 && len < 65536) {
        h[n++] = m | 126;
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    } else {
        h[n++] = m | 127;
        for (int i = 7; i >= 0; i--)
            h[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    if (key) {
        memcpy(h + n, key, 4);
        n += 4;
    }
    assert_int_equal(buf_append(b, h, n), PARLEY_OK);
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++) {
        uint8_t x = key ? (uint8_t)(p[i] ^ key[i % 4]) : p[i];
        assert_int_equal(buf_append(b, &x, 1), PARLEY_OK);
    }
}

static void put_frame(struct buf *b, bool fin, uint8_t op, const uint8_t *key,
                      const void *payload, size_t len)
{
    put_frame_ex(b, (uint8_t)((fin ? 0x80 : 0) | op), key, payload, len, 0);
}

static const uint8_t key_a[4] = {0x12, 0x34, 0x56, 0x78};
static const uint8_t key_b[4] = {0xf0, 0x0d, 0xca, 0xfe};
static const uint8_t key_c[4] = {0x01, 0x80, 0x7f, 0xff};

/* One server frame from out at *off (server frames are unmasked). */
static bool take_frame(const struct buf *out, size_t *off, uint8_t *op, const uint8_t **p,
                       size_t *n)
{
    const uint8_t *d = out->data + *off;
    size_t avail = out->len - *off;
    if (avail < 2)
        return false;
    size_t h = 2;
    uint64_t pl = d[1] & 0x7f;
    if (pl == 126) {
        if (avail < 4)
            return false;
        pl = ((uint64_t)d[2] << 8) | d[3];
        h = 4;
    } else if (pl == 127) {
        if (avail < 10)
            return false;
        pl = 0;
        for (int i = 0; i < 8; i++)
            pl = (pl << 8) | d[2 + i];
        h = 10;
    }
    if (avail - h < pl)
        return false;
    assert_true(d[0] & 0x80);
    *op = d[0] & 0x0f;
    *p = d + h;
    *n = (size_t)pl;
    *off += h + (size_t)pl;
    return true;
}

/* The upgrade request for the socketless /ws echo route, then frames. */
static void put_upgrade(struct buf *b)
{
    assert_int_equal(buf_append_str(b, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                       "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
                     PARLEY_OK);
}

/* Run in through the socketless server in pieces of chunk bytes; out gets everything the
 * server wrote after its 101 response. Returns the offset of the first frame. */
static size_t run_socketless(const struct buf *in, size_t chunk, struct buf *out)
{
    struct http_limits lim;
    memset(&lim, 0, sizeof lim);
    lim.ws_max_frame = 100000;
    lim.ws_max_message = 150000;
    buf_reset(out);
    assert_int_equal(http_conn_feed_socketless(&lim, in->data, in->len, chunk, out), PARLEY_OK);
    const char *s = buf_str(out);
    assert_true(strncmp(s, "HTTP/1.1 101", 12) == 0);
    const char *e = strstr(s, "\r\n\r\n");
    assert_non_null(e);
    return (size_t)(e + 4 - s);
}

static void expect_out_frame(const struct buf *out, size_t *off, uint8_t op, const void *data,
                             size_t len)
{
    uint8_t got_op;
    const uint8_t *p;
    size_t n;
    assert_true(take_frame(out, off, &got_op, &p, &n));
    assert_int_equal(got_op, op);
    assert_int_equal(n, len);
    if (len)
        assert_memory_equal(p, data, len);
}

static void expect_out_close(const struct buf *out, size_t *off, uint16_t code)
{
    uint8_t op;
    const uint8_t *p;
    size_t n;
    assert_true(take_frame(out, off, &op, &p, &n));
    assert_int_equal(op, 8);
    assert_true(n >= 2);
    assert_int_equal((p[0] << 8) | p[1], code);
    assert_int_equal(*off, out->len); /* nothing after the close */
}

static const size_t chunks[] = {0, 1, 2, 3, 5, 7, 13, 14, 15, 100, 4096};

static void test_ws_socketless_splits(void **state)
{
    (void)state;
    struct buf in, out;
    buf_init(&in, 1 << 20);
    buf_init(&out, 1 << 20);
    uint8_t *bin = malloc(70000);
    for (size_t i = 0; i < 70000; i++)
        bin[i] = (uint8_t)(i * 13 + (i >> 9));
    put_upgrade(&in);
    put_frame(&in, true, 1, key_a, "hello", 5);
    put_frame(&in, true, 2, key_b, bin, 300);               /* 16-bit length */
    put_frame(&in, false, 1, key_c, "hel", 3);              /* fragmented text... */
    put_frame(&in, true, 9, key_a, "p", 1);                 /* ...a ping between... */
    put_frame(&in, false, 0, key_b, "", 0);                 /* ...an empty fragment... */
    put_frame(&in, true, 10, key_b, "unsolicited", 11);     /* ...a pong, ignored... */
    put_frame(&in, true, 0, key_c, "lo", 2);                /* ...and the end */
    put_frame(&in, true, 2, key_c, bin, 70000);             /* 64-bit length */
    put_frame(&in, false, 2, key_a, bin, 1);                /* 3 fragments, odd sizes */
    put_frame(&in, false, 0, key_b, bin + 1, 5);
    put_frame(&in, true, 0, key_c, bin + 6, 70000 - 6);
    put_frame(&in, true, 1, key_a, "", 0);                  /* empty message */
    put_frame(&in, true, 9, key_b, bin, 125);               /* largest ping */
    put_frame(&in, true, 8, key_c, "\x03\xe8" "done", 6);   /* close 1000 */
    put_frame(&in, true, 1, key_a, "after", 5);             /* never read */
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        size_t off = run_socketless(&in, chunks[i], &out);
        expect_out_frame(&out, &off, 1, "hello", 5);
        expect_out_frame(&out, &off, 2, bin, 300);
        expect_out_frame(&out, &off, 10, "p", 1);
        expect_out_frame(&out, &off, 1, "hello", 5);
        expect_out_frame(&out, &off, 2, bin, 70000);
        expect_out_frame(&out, &off, 2, bin, 70000);
        expect_out_frame(&out, &off, 1, "", 0);
        expect_out_frame(&out, &off, 10, bin, 125);
        expect_out_close(&out, &off, 1000);
    }
    free(bin);
    buf_cleanup(&in);
    buf_cleanup(&out);
}

/* Frames that must fail the connection with code, whatever the split; a message before
 * them still gets through. */
static void expect_fail(const struct buf *frames, uint16_t code)
{
    struct buf in, out;
    buf_init(&in, 1 << 20);
    buf_init(&out, 1 << 20);
    put_upgrade(&in);
    put_frame(&in, true, 1, key_a, "ok", 2);
    assert_int_equal(buf_append(&in, frames->data, frames->len), PARLEY_OK);
    put_frame(&in, true, 1, key_a, "after", 5);
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        size_t off = run_socketless(&in, chunks[i], &out);
        expect_out_frame(&out, &off, 1, "ok", 2);
        expect_out_close(&out, &off, code);
    }
    buf_cleanup(&in);
    buf_cleanup(&out);
}

static void test_ws_socketless_errors(void **state)
{
    (void)state;
    struct buf f;
    buf_init(&f, 1 << 20);
    static const uint8_t z[200];
    /* Unmasked, reserved bits, unknown opcodes (data and control), bad continuations. */
    put_frame(&f, true, 1, NULL, "plain", 5);
    expect_fail(&f, 1002);
    buf_reset(&f);
    put_frame_ex(&f, 0xc1, key_a, "x", 1, 0);
    expect_fail(&f, 1002);
    buf_reset(&f);
    put_frame(&f, true, 3, key_a, "x", 1);
    expect_fail(&f, 1002);
    buf_reset(&f);
    put_frame(&f, true, 0xb, key_a, "x", 1);
    expect_fail(&f, 1002);
    buf_reset(&f);
    put_frame(&f, true, 0, key_a, "x", 1);
    expect_fail(&f, 1002);
    buf_reset(&f);
    put_frame(&f, false, 1, key_a, "x", 1);
    put_frame(&f, true, 2, key_a, "y", 1);
    expect_fail(&f, 1002);
    buf_reset(&f);
    /* Non-minimal lengths. */
    put_frame_ex(&f, 0x81, key_a, "x", 1, 16);
    expect_fail(&f, 1002);
    buf_reset(&f);
    put_frame_ex(&f, 0x82, key_a, z, 200, 64);
    expect_fail(&f, 1002);
    buf_reset(&f);
    /* Control frames: fragmented, or over 125 bytes. */
    put_frame(&f, false, 9, key_a, "p", 1);
    expect_fail(&f, 1002);
    buf_reset(&f);
    put_frame(&f, true, 9, key_a, z, 126);
    expect_fail(&f, 1002);
    buf_reset(&f);
    /* Bad close payloads: one byte, a code that may not be sent; bad UTF-8 reason. */
    put_frame(&f, true, 8, key_a, "\x03", 1);
    expect_fail(&f, 1002);
    buf_reset(&f);
    put_frame(&f, true, 8, key_b, "\x03\xed", 2);
    expect_fail(&f, 1002);
    buf_reset(&f);
    put_frame(&f, true, 8, key_c, "\x03\xe8\xc3\x28", 4);
    expect_fail(&f, 1007);
    buf_reset(&f);
    /* Invalid UTF-8 across fragments. */
    put_frame(&f, false, 1, key_b, "a\xc3", 2);
    put_frame(&f, true, 0, key_c, "\x28", 1);
    expect_fail(&f, 1007);
    buf_reset(&f);
    /* 1009 from the header alone: no payload byte follows. */
    put_frame_ex(&f, 0x82, key_a, NULL, 0, 64);
    f.data[9] = 0x01; /* the length becomes 65536 * 2 + 1 > ws_max_frame */
    f.data[7] = 0x02;
    expect_fail(&f, 1009);
    buf_reset(&f);
    /* A message over ws_max_message across fragments, refused at the second header. */
    uint8_t *big = calloc(1, 90000);
    put_frame(&f, false, 2, key_a, big, 90000);
    put_frame(&f, true, 0, key_b, big, 90000);
    expect_fail(&f, 1009);
    free(big);
    buf_cleanup(&f);
}

static void test_ws_frames_one_write(void **state)
{
    struct tc c;
    open_ws(state, &c, "/ws");
    struct buf b;
    buf_init(&b, 1 << 20);
    put_frame(&b, true, 1, key_a, "one", 3);
    put_frame(&b, false, 2, key_b, "tw", 2);
    put_frame(&b, true, 9, key_c, "ping", 4);
    put_frame(&b, true, 0, key_a, "o", 1);
    put_frame(&b, true, 1, key_c, "three", 5);
    assert_true(tc_send(&c, b.data, b.len));
    expect_frame(&c, 1, "one", 3);
    expect_frame(&c, 10, "ping", 4);
    expect_frame(&c, 2, "two", 3);
    expect_frame(&c, 1, "three", 5);
    /* A header announcing more than ws_max_frame closes with 1009 before any payload. */
    buf_reset(&b);
    uint8_t h[14] = {0x82, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 0, 1, 2, 3, 4};
    assert_true(tc_send(&c, h, sizeof h));
    expect_close(&c, 1009);
    buf_cleanup(&b);
    tc_close(&c);
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
    /* 64-bit length, spanning many reads. */
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
        cmocka_unit_test_setup_teardown(test_ws_frames_one_write, setup, teardown),
        cmocka_unit_test(test_ws_socketless_splits),
        cmocka_unit_test(test_ws_socketless_errors),
        cmocka_unit_test_setup_teardown(test_ws_limits_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ws_close_handshakes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ws_bad_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ws_push_from_thread, setup, teardown),
        cmocka_unit_test(test_ws_server_pings),
        cmocka_unit_test(test_ws_stop_1001),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
