/*
 * test_tls_server.c — TLS on the server transport: a self-signed certificate is made
 * with OpenSSL in a temp dir; a blocking OpenSSL client then does requests (keep-alive,
 * pipelined, large body), a WebSocket echo over TLS, and checks that plaintext on the
 * TLS port and TLS < 1.2 are refused without harming the server.
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tls_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_websocket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
