/*
 * test_tls_server.c — TLS on the server transport: a self-signed certificate is made
 * with OpenSSL in a temp dir; a blocking OpenSSL client then does requests (keep-alive,
 * pipelined, large body), a WebSocket echo over TLS, and checks that plaintext on the
 * TLS port and TLS < 1.2 are refused without harming the server. Then tls_conn itself,
 * driven in memory by an OpenSSL client: the switch to our own TLS 1.3 records after the
 * handshake (chunks down to 1 byte, data in the Finished's chunk, KeyUpdate both ways,
 * close_notify, ChaCha20), TLS 1.2 without the switch, record sizes, and forged, tampered,
 * replayed and plaintext records, each of which ends the connection.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/time.h>

#include "http_server.h"
#include "tls_record.h"
#include "tls_server.h"
#include "test_http_server_util.h"

static char dir[64], cert_path[128], key_path[128];

static void make_cert(void)
{
    snprintf(dir, sizeof dir, "/tmp/parley-tls-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
    snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    assert_non_null(pkey);
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pkey);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
    FILE *f = fopen(cert_path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    f = fopen(key_path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(pkey);
}

static void h_hello(struct http_request *req, void *ctx)
{
    (void)ctx;
    http_respond_json(req, 200, "{\"tls\":true}");
}

static void h_echo(struct http_request *req, void *ctx)
{
    (void)ctx;
    http_respond(req, 200, "application/octet-stream", req->body, req->body_len, NULL);
}

static void on_msg(struct ws_conn *ws, bool binary, const uint8_t *d, size_t n, void *u)
{
    (void)u;
    if (ws_send(ws, binary, d, n) != PARLEY_OK) {
        /* closing */
    }
}

static void on_close(struct ws_conn *ws, uint16_t code, void *u)
{
    (void)ws;
    (void)code;
    (void)u;
}

static void h_ws(struct http_request *req, void *ctx)
{
    (void)ctx;
    static const struct ws_callbacks cb = {on_msg, on_close};
    struct ws_conn *ws;
    if (http_upgrade_websocket(req, &cb, NULL, &ws) != PARLEY_OK) {
        /* answered */
    }
}

static int setup(void **state)
{
    make_cert();
    struct http_server_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.host = "127.0.0.1";
    cfg.threads = 2;
    cfg.tls_cert_file = cert_path;
    cfg.tls_key_file = key_path;
    cfg.limits.max_body = 512 * 1024;
    struct http_server *srv;
    assert_int_equal(http_server_new(&cfg, &srv), PARLEY_OK);
    assert_int_equal(http_server_route(srv, "GET", "/hello", h_hello, NULL), PARLEY_OK);
    assert_int_equal(http_server_route(srv, "POST", "/echo", h_echo, NULL), PARLEY_OK);
    assert_int_equal(http_server_route(srv, "GET", "/ws", h_ws, NULL), PARLEY_OK);
    assert_int_equal(http_server_start(srv), PARLEY_OK);
    *state = srv;
    return 0;
}

static int teardown(void **state)
{
    http_server_stop(*state, 500);
    http_server_free(*state);
    unlink(cert_path);
    unlink(key_path);
    rmdir(dir);
    return 0;
}

/* ---- blocking TLS client ---- */

struct tls_cli {
    SSL_CTX *ctx;
    SSL *ssl;
};

static ssize_t cli_rd(void *io, void *p, size_t n)
{
    struct tls_cli *t = io;
    int r = SSL_read(t->ssl, p, (int)(n > 1 << 20 ? 1 << 20 : n));
    return r > 0 ? r : -1;
}

static ssize_t cli_wr(void *io, const void *p, size_t n)
{
    struct tls_cli *t = io;
    int r = SSL_write(t->ssl, p, (int)n);
    return r > 0 ? r : -1;
}

/* Connect and handshake; max_version 0 = library default. false on failure. */
static bool tls_open(struct tc *c, struct tls_cli *t, uint16_t port, int max_version)
{
    memset(t, 0, sizeof *t);
    if (!tc_open(c, port))
        return false;
    struct timeval tv = {5, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    t->ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
    if (max_version) {
        SSL_CTX_set_security_level(t->ctx, 0);
        SSL_CTX_set_min_proto_version(t->ctx, TLS1_VERSION);
        SSL_CTX_set_max_proto_version(t->ctx, max_version);
    }
    t->ssl = SSL_new(t->ctx);
    SSL_set_fd(t->ssl, c->fd);
    c->io = t;
    c->rd = cli_rd;
    c->wr = cli_wr;
    return SSL_connect(t->ssl) == 1;
}

static void tls_close(struct tc *c, struct tls_cli *t)
{
    SSL_free(t->ssl);
    SSL_CTX_free(t->ctx);
    tc_close(c);
    ERR_clear_error();
}

static void test_tls_requests(void **state)
{
    uint16_t port = http_server_port(*state);
    struct tc c;
    struct tls_cli t;
    struct tresp r;
    assert_true(tls_open(&c, &t, port, 0));
    assert_true(SSL_version(t.ssl) >= TLS1_2_VERSION);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tc_request(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal((char *)r.body, "{\"tls\":true}");
        tresp_free(&r);
    }
    /* Pipelined. */
    assert_true(tc_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                             "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok"
                             "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_int_equal(tc_read_response(&c, &r, 5000), 0);
    assert_string_equal((char *)r.body, "{\"tls\":true}");
    tresp_free(&r);
    assert_int_equal(tc_read_response(&c, &r, 5000), 0);
    assert_string_equal((char *)r.body, "ok");
    tresp_free(&r);
    assert_int_equal(tc_read_response(&c, &r, 5000), 0);
    assert_string_equal((char *)r.body, "{\"tls\":true}");
    tresp_free(&r);
    /* A body spanning many TLS records. */
    size_t n = 300 * 1024;
    char *big = malloc(n + 128);
    int h = snprintf(big, 128, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", n);
    for (size_t i = 0; i < n; i++)
        big[h + (int)i] = (char)('a' + i % 26);
    assert_true(tc_send(&c, big, (size_t)h + n));
    assert_int_equal(tc_read_response(&c, &r, 10000), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, n);
    assert_memory_equal(r.body, big + h, n);
    tresp_free(&r);
    free(big);
    tls_close(&c, &t);
}

/* A response that closes the connection (Connection: close, or the 400 for a malformed
 * request) reaches the client before the close_notify, on TLS 1.3 and 1.2. */
static void test_tls_response_before_close(void **state)
{
    uint16_t port = http_server_port(*state);
    const int versions[] = {0, TLS1_2_VERSION};
    for (size_t v = 0; v < sizeof versions / sizeof versions[0]; v++) {
        struct tc c;
        struct tls_cli t;
        struct tresp r;
        assert_true(tls_open(&c, &t, port, versions[v]));
        assert_int_equal(
            tc_request(&c, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal((char *)r.body, "{\"tls\":true}");
        tresp_free(&r);
        tls_close(&c, &t);
        assert_true(tls_open(&c, &t, port, versions[v]));
        assert_int_equal(tc_request(&c, "GET /hello HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", &r),
                         0);
        assert_int_equal(r.status, 400);
        tresp_free(&r);
        tls_close(&c, &t);
    }
}

static void test_tls_websocket(void **state)
{
    uint16_t port = http_server_port(*state);
    struct tc c;
    struct tls_cli t;
    assert_true(tls_open(&c, &t, port, 0));
    assert_int_equal(ws_client_upgrade(&c, "/ws"), 101);
    assert_true(ws_frame_send(&c, true, 1, true, "secure", 6));
    bool fin;
    uint8_t op;
    uint8_t *p = NULL;
    size_t n;
    assert_int_equal(ws_frame_recv(&c, &fin, &op, &p, &n, 5000), 0);
    assert_int_equal(op, 1);
    assert_int_equal(n, 6);
    assert_memory_equal(p, "secure", 6);
    free(p);
    tls_close(&c, &t);
}

static void test_tls_refusals(void **state)
{
    uint16_t port = http_server_port(*state);
    struct tc c;
    struct tls_cli t;
    /* TLS 1.1 is below the server's minimum. */
    assert_false(tls_open(&c, &t, port, TLS1_1_VERSION));
    tls_close(&c, &t);
    /* Plaintext HTTP on the TLS port: dropped. */
    assert_true(tc_open(&c, port));
    assert_true(tc_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_true(tc_wait_closed(&c, 3000));
    tc_close(&c);
    /* Still serving. */
    struct tresp r;
    assert_true(tls_open(&c, &t, port, 0));
    assert_int_equal(tc_request(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    tresp_free(&r);
    tls_close(&c, &t);
}

/* ---- tls_conn driven in memory by an OpenSSL client ----
 * The server side is the real tls_conn; its sink writes straight into the client's read
 * BIO and the client's output is fed to tls_conn_feed in chunks of a chosen size (1 byte
 * too), so record boundaries fall everywhere. Everything is synchronous: no timing. */

static uint8_t scratch[16 * 1024];

struct mp {
    struct tls_server *srv;
    struct tls_conn *tc;
    SSL_CTX *cctx;
    SSL *c;
    BIO *c_rd, *c_wr;     /* client reads the server's ciphertext / writes its own */
    uint8_t *got;         /* plaintext the server received */
    size_t got_len, got_cap;
    size_t chunk;         /* feed granularity */
    uint8_t *cap;         /* the server's ciphertext when capturing (record checks) */
    size_t cap_len;
    bool capture;
    int key_updates_seen; /* KeyUpdate messages the client received */
    uint8_t csecret[32];  /* the client's CLIENT_TRAFFIC_SECRET_0, from its keylog */
    bool have_csecret;
};

static enum parley_err mp_sink(void *ctx, const void *data, size_t len)
{
    struct mp *m = ctx;
    if (m->capture) {
        m->cap = realloc(m->cap, m->cap_len + len);
        assert_non_null(m->cap);
        memcpy(m->cap + m->cap_len, data, len);
        m->cap_len += len;
    }
    assert_int_equal(BIO_write(m->c_rd, data, (int)len), (int)len);
    return PARLEY_OK;
}

static bool mp_plain(void *ctx, const uint8_t *data, size_t len)
{
    struct mp *m = ctx;
    if (m->got_len + len > m->got_cap) {
        m->got_cap = (m->got_len + len) * 2;
        m->got = realloc(m->got, m->got_cap);
        assert_non_null(m->got);
    }
    memcpy(m->got + m->got_len, data, len);
    m->got_len += len;
    return true;
}

static void mp_msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                      SSL *ssl, void *arg)
{
    (void)version;
    (void)ssl;
    struct mp *m = arg;
    if (!write_p && content_type == SSL3_RT_HANDSHAKE && len >= 1 &&
        ((const uint8_t *)buf)[0] == SSL3_MT_KEY_UPDATE)
        m->key_updates_seen++;
}

static struct mp *keylog_owner; /* the client's keylog has no user pointer; one mp at a time */

static void mp_keylog(const SSL *ssl, const char *line)
{
    (void)ssl;
    static const char label[] = "CLIENT_TRAFFIC_SECRET_0 ";
    if (!keylog_owner || strncmp(line, label, sizeof label - 1))
        return;
    const char *p = strrchr(line, ' ') + 1;
    assert_int_equal(strlen(p), 64);
    for (int i = 0; i < 32; i++) {
        unsigned v;
        assert_int_equal(sscanf(p + 2 * i, "%2x", &v), 1);
        keylog_owner->csecret[i] = (uint8_t)v;
    }
    keylog_owner->have_csecret = true;
}

/* max_version 0 = default (TLS 1.3); suites NULL = OpenSSL's default TLS 1.3 list. */
static void mp_open(struct mp *m, size_t chunk, int max_version, const char *suites)
{
    memset(m, 0, sizeof *m);
    m->chunk = chunk;
    assert_int_equal(tls_server_new(cert_path, key_path, &m->srv), PARLEY_OK);
    assert_int_equal(tls_conn_new(m->srv, mp_sink, m, &m->tc), PARLEY_OK);
    m->cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(m->cctx);
    SSL_CTX_set_verify(m->cctx, SSL_VERIFY_NONE, NULL);
    if (max_version)
        SSL_CTX_set_max_proto_version(m->cctx, max_version);
    if (suites)
        assert_int_equal(SSL_CTX_set_ciphersuites(m->cctx, suites), 1);
    SSL_CTX_set_msg_callback(m->cctx, mp_msg_cb);
    SSL_CTX_set_msg_callback_arg(m->cctx, m);
    keylog_owner = m;
    SSL_CTX_set_keylog_callback(m->cctx, mp_keylog);
    m->c = SSL_new(m->cctx);
    m->c_rd = BIO_new(BIO_s_mem());
    m->c_wr = BIO_new(BIO_s_mem());
    assert_true(m->c && m->c_rd && m->c_wr);
    BIO_set_mem_eof_return(m->c_rd, -1);
    BIO_set_mem_eof_return(m->c_wr, -1);
    SSL_set_bio(m->c, m->c_rd, m->c_wr);
    SSL_set_connect_state(m->c);
}

static void mp_close(struct mp *m)
{
    tls_conn_free(m->tc);
    tls_server_free(m->srv);
    SSL_free(m->c);
    SSL_CTX_free(m->cctx);
    free(m->got);
    free(m->cap);
    keylog_owner = NULL;
    ERR_clear_error();
}

/* Feed bytes to the server in m->chunk pieces; the first error is returned. */
static enum parley_err mp_feed(struct mp *m, const uint8_t *p, size_t n)
{
    enum parley_err rc = PARLEY_OK;
    for (size_t off = 0; off < n && !rc;) {
        size_t k = n - off < m->chunk ? n - off : m->chunk;
        rc = tls_conn_feed(m->tc, p + off, k, mp_plain, m, scratch, sizeof scratch);
        off += k;
    }
    return rc;
}

/* Take everything the client wrote. Caller frees. */
static uint8_t *mp_take(struct mp *m, size_t *n)
{
    int pending = BIO_pending(m->c_wr);
    uint8_t *p = malloc((size_t)pending + 1);
    assert_non_null(p);
    *n = pending > 0 ? (size_t)BIO_read(m->c_wr, p, pending) : 0;
    return p;
}

static enum parley_err mp_pump(struct mp *m)
{
    size_t n;
    uint8_t *p = mp_take(m, &n);
    enum parley_err rc = mp_feed(m, p, n);
    free(p);
    return rc;
}

static bool mp_handshake(struct mp *m)
{
    for (int i = 0; i < 10; i++) {
        int r = SSL_do_handshake(m->c);
        if (r != 1 && SSL_get_error(m->c, r) != SSL_ERROR_WANT_READ)
            return false;
        if (mp_pump(m) != PARLEY_OK)
            return false;
        if (r == 1 && tls_conn_ready(m->tc))
            return true;
    }
    return false;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
}

/* Client to server: n bytes, then the server has exactly them (appended to got). */
static void c2s(struct mp *m, size_t n, unsigned seed)
{
    uint8_t *p = malloc(n);
    assert_non_null(p);
    fill(p, n, seed);
    size_t before = m->got_len;
    for (size_t off = 0; off < n;) {
        int w = SSL_write(m->c, p + off, (int)(n - off));
        assert_true(w > 0);
        off += (size_t)w;
    }
    assert_int_equal(mp_pump(m), PARLEY_OK);
    assert_int_equal(m->got_len - before, n);
    assert_memory_equal(m->got + before, p, n);
    free(p);
}

/* Server to client: n bytes in one tls_conn_write, read back whole by the client. */
static void s2c(struct mp *m, size_t n, unsigned seed)
{
    uint8_t *p = malloc(n), *q = malloc(n);
    assert_true(p && q);
    fill(p, n, seed);
    assert_int_equal(tls_conn_write(m->tc, p, n), PARLEY_OK);
    for (size_t off = 0; off < n;) {
        int r = SSL_read(m->c, q + off, (int)(n - off));
        assert_true(r > 0);
        off += (size_t)r;
    }
    assert_memory_equal(p, q, n);
    assert_int_equal(SSL_pending(m->c), 0);
    free(p);
    free(q);
}

/* Both directions, many records of many sizes, then close_notify each way. */
static void exchange_and_close(struct mp *m)
{
    static const size_t sizes[] = {1, 2, 17, 100, 1000, 16383, 16384, 16385, 40000, 70001};
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        c2s(m, sizes[i], i);
        s2c(m, sizes[i], i + 100);
    }
    /* The server closes: the client sees a clean close_notify. */
    tls_conn_shutdown(m->tc);
    uint8_t b[8];
    assert_int_equal(SSL_read(m->c, b, sizeof b), 0);
    assert_int_equal(SSL_get_error(m->c, 0), SSL_ERROR_ZERO_RETURN);
    assert_int_equal(tls_conn_write(m->tc, "x", 1), PARLEY_ERR_PROTO);
    /* The client answers with its own: the server reports a clean close, and stays so. */
    assert_int_equal(SSL_shutdown(m->c), 1);
    assert_int_equal(mp_pump(m), PARLEY_ERR_CLOSED);
    assert_int_equal(tls_conn_feed(m->tc, (const uint8_t *)"x", 1, mp_plain, m, scratch,
                                   sizeof scratch),
                     PARLEY_ERR_CLOSED);
}

static void test_mem_tls13_chunks(void **state)
{
    (void)state;
    static const size_t chunks[] = {1, 2, 5, 7, 100, 1500, 16389, SIZE_MAX};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        struct mp m;
        mp_open(&m, chunks[i], 0, NULL);
        assert_false(tls_conn_ready(m.tc));
        assert_int_equal(tls_conn_write(m.tc, "x", 1), PARLEY_ERR_PROTO);
        assert_true(mp_handshake(&m));
        assert_int_equal(SSL_version(m.c), TLS1_3_VERSION);
        /* Server preference: AES-128-GCM, though OpenSSL's client lists AES-256 first. */
        assert_int_equal(SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(m.c)), 0x1301);
        exchange_and_close(&m);
        mp_close(&m);
    }
}

static void test_mem_chacha(void **state)
{
    (void)state;
    struct mp m;
    mp_open(&m, 3, 0, "TLS_CHACHA20_POLY1305_SHA256");
    assert_true(mp_handshake(&m));
    assert_int_equal(SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(m.c)), 0x1303);
    exchange_and_close(&m);
    mp_close(&m);
    /* A client offering only a SHA-384 suite finds none in common: handshake refused. */
    mp_open(&m, SIZE_MAX, 0, "TLS_AES_256_GCM_SHA384");
    assert_false(mp_handshake(&m));
    mp_close(&m);
}

/* The client's first application records arrive in the same chunk as its Finished (and,
 * fed 1 byte at a time, interleaved with the switch): nothing lost, nothing doubled. */
static void test_mem_data_with_finished(void **state)
{
    (void)state;
    static const size_t chunks[] = {SIZE_MAX, 1, 37};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        struct mp m;
        mp_open(&m, chunks[i], 0, NULL);
        assert_true(SSL_do_handshake(m.c) != 1); /* ClientHello */
        assert_int_equal(mp_pump(&m), PARLEY_OK);
        assert_int_equal(SSL_do_handshake(m.c), 1); /* Finished, not yet delivered */
        assert_false(tls_conn_ready(m.tc));
        uint8_t data[3000];
        fill(data, sizeof data, 9);
        for (int k = 0; k < 3; k++) /* three records */
            assert_int_equal(SSL_write(m.c, data + k * 1000, 1000), 1000);
        assert_int_equal(mp_pump(&m), PARLEY_OK);
        assert_true(tls_conn_ready(m.tc));
        assert_int_equal(m.got_len, sizeof data);
        assert_memory_equal(m.got, data, sizeof data);
        s2c(&m, 5000, 3);
        mp_close(&m);
    }
}

/* KeyUpdate from the client: requested → the server answers with its own KeyUpdate and
 * moves its write key; not requested → the server only moves its read key. Data keeps
 * flowing both ways across several updates, also fed 1 byte at a time. */
static void test_mem_key_update(void **state)
{
    (void)state;
    static const size_t chunks[] = {SIZE_MAX, 1};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        struct mp m;
        mp_open(&m, chunks[i], 0, NULL);
        assert_true(mp_handshake(&m));
        c2s(&m, 100, 1);
        s2c(&m, 100, 2);
        for (int round = 1; round <= 3; round++) {
            assert_int_equal(SSL_key_update(m.c, SSL_KEY_UPDATE_REQUESTED), 1);
            c2s(&m, 20000, 10u + (unsigned)round); /* the KeyUpdate goes first */
            s2c(&m, 20000, 20u + (unsigned)round); /* the answer precedes this data */
            assert_int_equal(m.key_updates_seen, round);
        }
        assert_int_equal(SSL_key_update(m.c, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
        c2s(&m, 10, 30);
        s2c(&m, 10, 31);
        assert_int_equal(m.key_updates_seen, 3);
        exchange_and_close(&m);
        mp_close(&m);
    }
}

/* TLS 1.2 keeps OpenSSL for the whole connection and works as before. */
static void test_mem_tls12(void **state)
{
    (void)state;
    static const size_t chunks[] = {SIZE_MAX, 1};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        struct mp m;
        mp_open(&m, chunks[i], TLS1_2_VERSION, NULL);
        assert_true(mp_handshake(&m));
        assert_int_equal(SSL_version(m.c), TLS1_2_VERSION);
        exchange_and_close(&m);
        mp_close(&m);
    }
}

/* Large writes leave as records of at most 2^14 content bytes, all of outer type 23. */
static void test_mem_record_sizes(void **state)
{
    (void)state;
    struct mp m;
    mp_open(&m, SIZE_MAX, 0, NULL);
    assert_true(mp_handshake(&m));
    m.capture = true;
    s2c(&m, 100000, 5);
    size_t records = 0;
    for (size_t off = 0; off < m.cap_len; records++) {
        assert_true(off + 5 <= m.cap_len);
        size_t body = (size_t)m.cap[off + 3] << 8 | m.cap[off + 4];
        assert_int_equal(m.cap[off], 23);
        assert_int_equal(m.cap[off + 1], 3);
        assert_int_equal(m.cap[off + 2], 3);
        assert_true(body <= 16384 + 1 + 16);
        off += 5 + body;
        assert_true(off <= m.cap_len);
    }
    assert_int_equal(records, (100000 + 16383) / 16384);
    m.cap_len = 0;
    assert_int_equal(tls_conn_write(m.tc, "", 0), PARLEY_OK);
    assert_int_equal(m.cap_len, 0);
    mp_close(&m);
}

/* Records the OpenSSL client would never send, built with the client's secret (from its
 * keylog) and our record layer. Each one must end the connection. */
static enum parley_err forged(uint8_t type, const uint8_t *content, size_t len, size_t pad,
                              bool key_update_first)
{
    struct mp m;
    mp_open(&m, SIZE_MAX, 0, NULL);
    assert_true(mp_handshake(&m));
    assert_true(m.have_csecret);
    struct tls_rec_dir d;
    assert_int_equal(tls_rec_dir_init(&d, TLS_REC_AES_128_GCM, m.csecret), PARLEY_OK);
    static uint8_t rec[TLS_REC_WIRE_BYTES(0, 16384)];
    if (key_update_first) { /* a legal KeyUpdate, then continue under the next key */
        const uint8_t ku[5] = {24, 0, 0, 1, 0};
        assert_int_equal(tls_rec_seal(&d, TLS_CT_HANDSHAKE, ku, 5, 0, rec), PARLEY_OK);
        assert_int_equal(mp_feed(&m, rec, TLS_REC_WIRE_BYTES(5, 0)), PARLEY_OK);
        assert_int_equal(tls_rec_dir_update(&d), PARLEY_OK);
    }
    assert_int_equal(tls_rec_seal(&d, type, content, len, pad, rec), PARLEY_OK);
    size_t before = m.got_len;
    enum parley_err rc = mp_feed(&m, rec, TLS_REC_WIRE_BYTES(len, pad));
    if (rc == PARLEY_OK) { /* accepted: then it was data, and later records still work */
        assert_int_equal(m.got_len - before, len);
        assert_int_equal(tls_rec_seal(&d, TLS_CT_APPLICATION_DATA, (const uint8_t *)"more", 4,
                                      0, rec),
                         PARLEY_OK);
        assert_int_equal(mp_feed(&m, rec, TLS_REC_WIRE_BYTES(4, 0)), PARLEY_OK);
        assert_int_equal(m.got_len - before, len + 4);
        assert_memory_equal(m.got + m.got_len - 4, "more", 4);
    } else if (rc == PARLEY_ERR_CLOSED) { /* half-closed: we may still answer */
        assert_int_equal(tls_conn_write(m.tc, "bye", 3), PARLEY_OK);
        uint8_t b[3];
        assert_int_equal(SSL_read(m.c, b, 3), 3);
        assert_int_equal(mp_feed(&m, rec, 1), PARLEY_ERR_CLOSED);
    } else {
        assert_int_equal(tls_conn_write(m.tc, "x", 1), PARLEY_ERR_PROTO);
    }
    tls_rec_dir_cleanup(&d);
    mp_close(&m);
    return rc;
}

static void test_mem_forged_records(void **state)
{
    (void)state;
    static const uint8_t hello[5] = {'h', 'e', 'l', 'l', 'o'};
    /* Accepted: padded data, zero-length data, data after a client KeyUpdate. */
    assert_int_equal(forged(TLS_CT_APPLICATION_DATA, hello, 5, 1000, false), PARLEY_OK);
    assert_int_equal(forged(TLS_CT_APPLICATION_DATA, hello, 0, 0, false), PARLEY_OK);
    assert_int_equal(forged(TLS_CT_APPLICATION_DATA, hello, 5, 0, true), PARLEY_OK);
    /* Refused. */
    static const uint8_t fatal[2] = {2, 40}, close_notify[2] = {1, 0};
    static const uint8_t ticket[9] = {4, 0, 0, 5, 0, 0, 0, 0, 0};
    static const uint8_t bad_ku[5] = {24, 0, 0, 1, 2}, long_ku[6] = {24, 0, 0, 2, 0, 0};
    static const uint8_t cert_req[8] = {13, 0, 0, 4, 0, 0, 0, 0};
    static const uint8_t ccs[1] = {1};
    assert_int_equal(forged(TLS_CT_ALERT, fatal, 2, 0, false), PARLEY_ERR_PROTO);
    assert_int_equal(forged(TLS_CT_ALERT, close_notify, 1, 0, false), PARLEY_ERR_PROTO);
    assert_int_equal(forged(TLS_CT_ALERT, close_notify, 2, 0, false), PARLEY_ERR_CLOSED);
    assert_int_equal(forged(TLS_CT_HANDSHAKE, ticket, sizeof ticket, 0, false),
                     PARLEY_ERR_PROTO);
    assert_int_equal(forged(TLS_CT_HANDSHAKE, cert_req, sizeof cert_req, 0, false),
                     PARLEY_ERR_PROTO);
    assert_int_equal(forged(TLS_CT_HANDSHAKE, bad_ku, 5, 0, false), PARLEY_ERR_PROTO);
    assert_int_equal(forged(TLS_CT_HANDSHAKE, long_ku, 6, 0, false), PARLEY_ERR_PROTO);
    assert_int_equal(forged(TLS_CT_HANDSHAKE, bad_ku, 0, 0, false), PARLEY_ERR_PROTO);
    assert_int_equal(forged(20, ccs, 1, 0, false), PARLEY_ERR_PROTO); /* protected CCS */
    assert_int_equal(forged(99, hello, 5, 0, false), PARLEY_ERR_PROTO);
}

/* A tampered record, a replayed record and a plaintext record after the switch each close
 * the connection; so does an oversized length. */
static void tampered(void (*spoil)(uint8_t *p, size_t n), size_t chunk)
{
    struct mp m;
    mp_open(&m, chunk, 0, NULL);
    assert_true(mp_handshake(&m));
    c2s(&m, 50, 1);
    assert_int_equal(SSL_write(m.c, "hello", 5), 5);
    size_t n;
    uint8_t *p = mp_take(&m, &n);
    spoil(p, n);
    assert_int_equal(mp_feed(&m, p, n), PARLEY_ERR_PROTO);
    assert_int_equal(m.got_len, 50);
    /* Failed for good: even good bytes are refused, and nothing is written. */
    assert_int_equal(SSL_write(m.c, "again", 5), 5);
    assert_int_equal(mp_pump(&m), PARLEY_ERR_PROTO);
    assert_int_equal(tls_conn_write(m.tc, "x", 1), PARLEY_ERR_PROTO);
    free(p);
    mp_close(&m);
}

static void spoil_tag(uint8_t *p, size_t n)
{
    p[n - 1] ^= 0x80;
}
static void spoil_body(uint8_t *p, size_t n)
{
    (void)n;
    p[6] ^= 1;
}
static void spoil_header_len(uint8_t *p, size_t n)
{
    (void)n;
    p[3] = 0x41; /* 2^14 + 256 + 1 and more */
}
static void spoil_plaintext_type(uint8_t *p, size_t n)
{
    (void)n;
    p[0] = 22; /* a plaintext handshake record */
}
static void spoil_version(uint8_t *p, size_t n)
{
    (void)n;
    p[2] = 1;
}

static void test_mem_tampered(void **state)
{
    (void)state;
    void (*spoils[])(uint8_t *, size_t) = {spoil_tag, spoil_body, spoil_header_len,
                                           spoil_plaintext_type, spoil_version};
    for (size_t i = 0; i < sizeof spoils / sizeof spoils[0]; i++) {
        tampered(spoils[i], SIZE_MAX);
        tampered(spoils[i], 1);
    }
    /* A replayed record (same bytes again) fails: its sequence number is gone. */
    struct mp m;
    mp_open(&m, SIZE_MAX, 0, NULL);
    assert_true(mp_handshake(&m));
    assert_int_equal(SSL_write(m.c, "hello", 5), 5);
    size_t n;
    uint8_t *p = mp_take(&m, &n);
    assert_int_equal(mp_feed(&m, p, n), PARLEY_OK);
    assert_int_equal(mp_feed(&m, p, n), PARLEY_ERR_PROTO);
    assert_int_equal(m.got_len, 5);
    free(p);
    mp_close(&m);
}

/* Through the real server: a WebSocket over TLS 1.3 survives client KeyUpdates, and a
 * TLS 1.2 client is still served. */
static void test_tls_key_update_server(void **state)
{
    uint16_t port = http_server_port(*state);
    struct tc c;
    struct tls_cli t;
    assert_true(tls_open(&c, &t, port, 0));
    assert_int_equal(SSL_version(t.ssl), TLS1_3_VERSION);
    assert_int_equal(ws_client_upgrade(&c, "/ws"), 101);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(SSL_key_update(t.ssl, i % 2 ? SSL_KEY_UPDATE_NOT_REQUESTED
                                                     : SSL_KEY_UPDATE_REQUESTED),
                         1);
        char msg[32];
        int n = snprintf(msg, sizeof msg, "round %d", i);
        assert_true(ws_frame_send(&c, true, 1, true, msg, (size_t)n));
        bool fin;
        uint8_t op;
        uint8_t *p = NULL;
        size_t len;
        assert_int_equal(ws_frame_recv(&c, &fin, &op, &p, &len, 5000), 0);
        assert_int_equal(len, (size_t)n);
        assert_memory_equal(p, msg, len);
        free(p);
    }
    tls_close(&c, &t);

    struct tresp r;
    assert_true(tls_open(&c, &t, port, TLS1_2_VERSION));
    assert_int_equal(SSL_version(t.ssl), TLS1_2_VERSION);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(tc_request(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
        assert_int_equal(r.status, 200);
        tresp_free(&r);
    }
    tls_close(&c, &t);
}

/* The memory tests need only the certificate. */
static int setup_cert(void **state)
{
    (void)state;
    make_cert();
    return 0;
}

static int teardown_cert(void **state)
{
    (void)state;
    unlink(cert_path);
    unlink(key_path);
    rmdir(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tls_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_response_before_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_websocket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_key_update_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_tls13_chunks, setup_cert, teardown_cert),
        cmocka_unit_test_setup_teardown(test_mem_chacha, setup_cert, teardown_cert),
        cmocka_unit_test_setup_teardown(test_mem_data_with_finished, setup_cert, teardown_cert),
        cmocka_unit_test_setup_teardown(test_mem_key_update, setup_cert, teardown_cert),
        cmocka_unit_test_setup_teardown(test_mem_tls12, setup_cert, teardown_cert),
        cmocka_unit_test_setup_teardown(test_mem_record_sizes, setup_cert, teardown_cert),
        cmocka_unit_test_setup_teardown(test_mem_forged_records, setup_cert, teardown_cert),
        cmocka_unit_test_setup_teardown(test_mem_tampered, setup_cert, teardown_cert),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
