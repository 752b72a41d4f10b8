/*
 * tls_server.c — OpenSSL 3 server sessions over a callback BIO; see tls_server.h.
 *
 * The BIO ("parley-cb") is one object used for both directions: read returns bytes from
 * the chunk currently being fed (retry when it is exhausted, so SSL keeps partial
 * records in its own buffer), write hands bytes to the sink. Invariant: tc->in is only
 * non-NULL during tls_conn_feed.
 */
#include "tls_server.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

struct tls_server {
    SSL_CTX *ctx;
    BIO_METHOD *meth;
};

struct tls_conn {
    SSL *ssl;
    const uint8_t *in;
    size_t in_len;
    tls_sink_fn sink;
    void *ctx;
    bool failed;
};

static int cb_write(BIO *b, const char *data, int len)
{
    struct tls_conn *tc = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (!tc || tc->sink(tc->ctx, data, (size_t)len) != PARLEY_OK)
        return -1;
    return len;
}

static int cb_read(BIO *b, char *out, int len)
{
    struct tls_conn *tc = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!tc || len <= 0)
        return 0;
    if (tc->in_len == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = tc->in_len < (size_t)len ? tc->in_len : (size_t)len;
    memcpy(out, tc->in, n);
    tc->in += n;
    tc->in_len -= n;
    return (int)n;
}

static long cb_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    default:
        return 0;
    }
}

static int cb_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

enum parley_err tls_server_new(const char *cert_file, const char *key_file,
                               struct tls_server **out)
{
    enum parley_err rc = PARLEY_ERR_NOMEM;
    struct tls_server *t = calloc(1, sizeof *t);
    if (!t)
        goto out;
    t->ctx = SSL_CTX_new(TLS_server_method());
    t->meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "parley-cb");
    if (!t->ctx || !t->meth)
        goto out;
    if (!BIO_meth_set_write(t->meth, cb_write) || !BIO_meth_set_read(t->meth, cb_read) ||
        !BIO_meth_set_ctrl(t->meth, cb_ctrl) || !BIO_meth_set_create(t->meth, cb_create))
        goto out;
    rc = PARLEY_ERR_IO;
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(t->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                    SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(t->ctx, cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(t->ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(t->ctx) != 1)
        goto out;
    *out = t;
    return PARLEY_OK;
out:
    ERR_clear_error();
    tls_server_free(t);
    return rc;
}

void tls_server_free(struct tls_server *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    BIO_meth_free(t->meth);
    free(t);
}

enum parley_err tls_conn_new(struct tls_server *t, tls_sink_fn sink, void *ctx,
                             struct tls_conn **out)
{
    struct tls_conn *tc = calloc(1, sizeof *tc);
    BIO *bio = NULL;
    if (!tc)
        return PARLEY_ERR_NOMEM;
    tc->sink = sink;
    tc->ctx = ctx;
    tc->ssl = SSL_new(t->ctx);
    bio = BIO_new(t->meth);
    if (!tc->ssl || !bio) {
        BIO_free(bio);
        SSL_free(tc->ssl);
        free(tc);
        ERR_clear_error();
        return PARLEY_ERR_NOMEM;
    }
    BIO_set_data(bio, tc);
    SSL_set_bio(tc->ssl, bio, bio); /* one reference, used for both directions */
    SSL_set_accept_state(tc->ssl);
    *out = tc;
    return PARLEY_OK;
}

void tls_conn_free(struct tls_conn *tc)
{
    if (!tc)
        return;
    SSL_free(tc->ssl);
    free(tc);
}

bool tls_conn_ready(const struct tls_conn *tc)
{
    return tc && SSL_is_init_finished(tc->ssl);
}

enum parley_err tls_conn_feed(struct tls_conn *tc, const uint8_t *in, size_t len,
                              tls_plain_fn plain, void *pctx, uint8_t *scratch,
                              size_t scratch_len)
{
    if (tc->failed)
        return PARLEY_ERR_PROTO;
    enum parley_err rc = PARLEY_OK;
    tc->in = in;
    tc->in_len = len;
    int lim = scratch_len > INT32_MAX ? INT32_MAX : (int)scratch_len;
    for (;;) {
        int n = SSL_read(tc->ssl, scratch, lim);
        if (n > 0) {
            if (!plain(pctx, scratch, (size_t)n))
                break;
            /* Another SSL_read with nothing left would re-allocate the record buffer
             * SSL_MODE_RELEASE_BUFFERS just freed (~17 KB per idle connection). */
            if (tc->in_len == 0 && !SSL_has_pending(tc->ssl))
                break;
            continue;
        }
        int e = SSL_get_error(tc->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            rc = PARLEY_ERR_CLOSED;
        } else {
            rc = PARLEY_ERR_PROTO;
            tc->failed = true;
        }
        break;
    }
    tc->in = NULL;
    tc->in_len = 0;
    ERR_clear_error();
    return rc;
}

enum parley_err tls_conn_write(struct tls_conn *tc, const void *data, size_t len)
{
    if (tc->failed || !SSL_is_init_finished(tc->ssl))
        return PARLEY_ERR_PROTO;
    const uint8_t *p = data;
    while (len > 0) {
        int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
        int n = SSL_write(tc->ssl, p, chunk);
        if (n <= 0) {
            tc->failed = true;
            ERR_clear_error();
            return PARLEY_ERR_PROTO;
        }
        p += n;
        len -= (size_t)n;
    }
    return PARLEY_OK;
}

void tls_conn_shutdown(struct tls_conn *tc)
{
    if (!tc || tc->failed || !SSL_is_init_finished(tc->ssl))
        return;
    (void)SSL_shutdown(tc->ssl);
    ERR_clear_error();
}
