/*
 * tls_server.c — OpenSSL 3 server sessions over a callback BIO; see tls_server.h.
 *
 * Two phases per connection:
 * - Handshake (and all of TLS 1.2): an SSL object does the work. Its BIO ("parley-cb") is
 *   one object used for both directions: read returns bytes from the chunk currently being
 *   fed (retry when it is exhausted, so SSL keeps partial records in its own buffer), write
 *   hands bytes to the sink. Invariant: tc->in is only non-NULL during tls_conn_feed.
 * - After a TLS 1.3 handshake: the SSL object (≈ 14 KB after the handshake) is freed and
 *   records are protected here with tls_record.c, from the application traffic secrets that
 *   the keylog callback captured during the handshake. The switch is safe because the
 *   server writes nothing after its Finished (no session tickets: num_tickets = 0) and
 *   OpenSSL reads no further than the client's Finished (no read-ahead), so both sequence
 *   numbers are 0 and every byte after the Finished is still in the chunk being fed.
 *   What stays per connection is this struct: two directions of key, iv, seq and secret.
 *
 * After the switch a record is decrypted straight from the fed chunk when it is whole in it;
 * a record cut by a chunk boundary is collected in a buffer of exactly its size, freed as
 * soon as the record is complete (an idle connection holds none).
 */
#include "tls_server.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include "tls_record.h"

/* TLS 1.3 suites we can carry on ourselves after the handshake (SHA-256, 16-byte tag). */
#define TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"
/* Records under one write key before we update it ourselves (RFC 8446 §5.5 allows about
 * 2^24.5 full records for AES-GCM; ChaCha20-Poly1305 needs none but gets the same). */
#define WRITE_REKEY_RECORDS (UINT64_C(1) << 24)

enum {
    HS_KEY_UPDATE = 24,
    ALERT_CLOSE_NOTIFY = 0,
    ALERT_LEVEL_WARNING = 1,
};

struct tls_server {
    SSL_CTX *ctx;
    BIO_METHOD *meth;
};

struct tls_conn {
    SSL *ssl; /* NULL after the switch to our own records */
    const uint8_t *in;
    size_t in_len;
    tls_sink_fn sink;
    void *ctx;
    /* Read = client to server, write = server to client. Before the switch only the
     * secrets are filled in, by the keylog callback. */
    struct tls_rec_dir rd, wr;
    uint8_t *body; /* the body of a record cut by a chunk boundary, or NULL */
    uint16_t body_len, body_have;
    uint8_t hdr[TLS_REC_HEADER_BYTES];
    uint8_t hdr_len;
    bool have_rd_secret, have_wr_secret;
    bool failed;      /* fatal error: every later call fails */
    bool peer_closed; /* close_notify received */
    bool shut;        /* close_notify sent: no more writes */
};

/* ------------------------------------------------------------ the BIO */

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

/* ------------------------------------------------------------ secrets */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Exactly 2*n hex digits to n bytes; false (out wiped) otherwise. */
static bool unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hi < 0 ? -1 : hexval(s[2 * i + 1]);
        if (lo < 0) {
            sodium_memzero(out, n);
            return false;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    if (s[2 * n] != '\0') {
        sodium_memzero(out, n);
        return false;
    }
    return true;
}

/* OpenSSL's keylog hook: "<LABEL> <client_random hex> <secret hex>". We keep the two
 * application traffic secrets (SHA-256 suites: 32 bytes) in the connection and nothing
 * else; the line itself is wiped by OpenSSL. Never logged. */
static void keylog(const SSL *ssl, const char *line)
{
    struct tls_conn *tc = SSL_get_app_data((SSL *)ssl);
    static const char client[] = "CLIENT_TRAFFIC_SECRET_0 ", server[] = "SERVER_TRAFFIC_SECRET_0 ";
    uint8_t *dst;
    bool *have;
    if (!tc)
        return;
    if (!strncmp(line, client, sizeof client - 1)) {
        dst = tc->rd.secret;
        have = &tc->have_rd_secret;
    } else if (!strncmp(line, server, sizeof server - 1)) {
        dst = tc->wr.secret;
        have = &tc->have_wr_secret;
    } else {
        return;
    }
    const char *p = strchr(line + sizeof client - 1, ' ');
    *have = p && unhex(p + 1, dst, TLS_REC_SECRET_BYTES);
}

/* ------------------------------------------------------------ server */

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
    /* No resumption in either version: no TLS 1.3 tickets (so the server writes nothing
     * after its Finished, which the switch relies on), no TLS 1.2 tickets or cache. */
    SSL_CTX_set_options(t->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_set_num_tickets(t->ctx, 0) != 1 ||
        SSL_CTX_set_ciphersuites(t->ctx, TLS13_SUITES) != 1)
        goto out;
    SSL_CTX_set_keylog_callback(t->ctx, keylog);
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

/* ------------------------------------------------------------ connection */

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
    if (!tc->ssl || !bio || !SSL_set_app_data(tc->ssl, tc)) {
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
    free(tc->body);
    sodium_memzero(tc, sizeof *tc); /* secrets, keys, ivs */
    free(tc);
}

bool tls_conn_ready(const struct tls_conn *tc)
{
    return tc && (!tc->ssl || SSL_is_init_finished(tc->ssl));
}

/* Called when SSL_do_handshake has just completed. For TLS 1.3 with one of our suites and
 * both secrets captured, key our own record layer and free the SSL object; otherwise (TLS
 * 1.2) keep using OpenSSL. The secrets are wiped on the way either way. */
static enum parley_err maybe_switch(struct tls_conn *tc)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(tc->ssl);
    enum tls_rec_cipher cipher = 0;
    if (SSL_version(tc->ssl) == TLS1_3_VERSION && c)
        cipher = tls_rec_cipher_from_suite(SSL_CIPHER_get_protocol_id(c));
    /* Pending bytes would be a record OpenSSL already took from the chunk: never expected
     * (no read-ahead), but then the only safe course is to stay with OpenSSL. */
    if (!cipher || !tc->have_rd_secret || !tc->have_wr_secret || SSL_has_pending(tc->ssl)) {
        tls_rec_dir_cleanup(&tc->rd);
        tls_rec_dir_cleanup(&tc->wr);
        tc->have_rd_secret = tc->have_wr_secret = false;
        return PARLEY_OK;
    }
    enum parley_err rc = tls_rec_dir_init(&tc->rd, cipher, tc->rd.secret);
    if (!rc)
        rc = tls_rec_dir_init(&tc->wr, cipher, tc->wr.secret);
    tc->have_rd_secret = tc->have_wr_secret = false;
    if (rc)
        return rc;
    SSL_free(tc->ssl); /* also frees the BIO; it does no I/O on the way */
    tc->ssl = NULL;
    return PARLEY_OK;
}

/* The OpenSSL phase of a feed: drives the handshake, then (TLS 1.2) reads plaintext. When
 * the connection switches to our own records, *rest / *rest_len are what is left of the
 * chunk for them. */
static enum parley_err ssl_feed(struct tls_conn *tc, const uint8_t **rest, size_t *rest_len,
                                tls_plain_fn plain, void *pctx, uint8_t *scratch,
                                size_t scratch_len)
{
    enum parley_err rc = PARLEY_OK;
    int lim = scratch_len > INT32_MAX ? INT32_MAX : (int)scratch_len;
    if (!SSL_is_init_finished(tc->ssl)) {
        int n = SSL_do_handshake(tc->ssl);
        if (n == 1) {
            rc = maybe_switch(tc);
            if (rc || !tc->ssl)
                goto out;
        } else {
            if (SSL_get_error(tc->ssl, n) != SSL_ERROR_WANT_READ)
                rc = PARLEY_ERR_PROTO;
            goto out;
        }
    }
    for (;;) {
        /* Another SSL_read with nothing left would re-allocate the record buffer
         * SSL_MODE_RELEASE_BUFFERS just freed (~17 KB per idle connection). */
        if (tc->in_len == 0 && !SSL_has_pending(tc->ssl))
            break;
        int n = SSL_read(tc->ssl, scratch, lim);
        if (n > 0) {
            if (!plain(pctx, scratch, (size_t)n))
                break;
            continue;
        }
        int e = SSL_get_error(tc->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            tc->peer_closed = true;
            rc = PARLEY_ERR_CLOSED;
        } else {
            rc = PARLEY_ERR_PROTO;
        }
        break;
    }
out:
    *rest = tc->in;
    *rest_len = tc->in_len;
    ERR_clear_error();
    return rc;
}

/* Protect and sink one record of our own. */
static enum parley_err send_record(struct tls_conn *tc, uint8_t type, const uint8_t *data,
                                   size_t len)
{
    uint8_t rec[TLS_REC_WIRE_BYTES(TLS_REC_MAX_PLAIN, 0)];
    enum parley_err rc = tls_rec_seal(&tc->wr, type, data, len, 0, rec);
    if (!rc)
        rc = tc->sink(tc->ctx, rec, TLS_REC_WIRE_BYTES(len, 0));
    return rc;
}

/* Send KeyUpdate(requested) under the current write key, then move to the next one. */
static enum parley_err send_key_update(struct tls_conn *tc, bool requested)
{
    const uint8_t msg[5] = {HS_KEY_UPDATE, 0, 0, 1, requested ? 1 : 0};
    enum parley_err rc = send_record(tc, TLS_CT_HANDSHAKE, msg, sizeof msg);
    return rc ? rc : tls_rec_dir_update(&tc->wr);
}

/* A decrypted handshake message after the handshake: only a whole KeyUpdate, alone in its
 * record (RFC 8446 §5.1 requires it to end a record; OpenSSL never coalesces or splits it).
 * Post-handshake auth, tickets from a client and the rest are protocol errors. */
static enum parley_err on_handshake(struct tls_conn *tc, const uint8_t *m, size_t n)
{
    if (n != 5 || m[0] != HS_KEY_UPDATE || m[1] || m[2] || m[3] != 1 || m[4] > 1)
        return PARLEY_ERR_PROTO;
    enum parley_err rc = tls_rec_dir_update(&tc->rd);
    if (!rc && m[4] == 1 && !tc->shut)
        rc = send_key_update(tc, false);
    return rc;
}

/* One whole record (header in tc->hdr). *stop when plain() asked to stop. */
static enum parley_err on_record(struct tls_conn *tc, const uint8_t *body, tls_plain_fn plain,
                                 void *pctx, uint8_t *scratch, size_t scratch_len, bool *stop)
{
    uint8_t type;
    size_t n;
    if (tls_rec_open(&tc->rd, tc->hdr, body, tc->body_len, scratch, scratch_len, &type, &n))
        return PARLEY_ERR_PROTO;
    switch (type) {
    case TLS_CT_APPLICATION_DATA:
        if (n > 0 && !plain(pctx, scratch, n))
            *stop = true;
        return PARLEY_OK;
    case TLS_CT_ALERT:
        if (n == 2 && scratch[1] == ALERT_CLOSE_NOTIFY) {
            tc->peer_closed = true;
            return PARLEY_ERR_CLOSED;
        }
        return PARLEY_ERR_PROTO;
    case TLS_CT_HANDSHAKE:
        return on_handshake(tc, scratch, n);
    default:
        return PARLEY_ERR_PROTO;
    }
}

/* The phase after the switch: split the chunk into records and handle them. */
static enum parley_err rec_feed(struct tls_conn *tc, const uint8_t *in, size_t len,
                                tls_plain_fn plain, void *pctx, uint8_t *scratch,
                                size_t scratch_len)
{
    enum parley_err rc = PARLEY_OK;
    bool stop = false;
    while (len > 0 && !rc && !stop) {
        if (tc->hdr_len < TLS_REC_HEADER_BYTES) {
            size_t k = TLS_REC_HEADER_BYTES - tc->hdr_len;
            k = k < len ? k : len;
            memcpy(tc->hdr + tc->hdr_len, in, k);
            tc->hdr_len = (uint8_t)(tc->hdr_len + k);
            in += k;
            len -= k;
            if (tc->hdr_len < TLS_REC_HEADER_BYTES)
                break;
            size_t blen;
            if (tls_rec_header_check(tc->hdr, &blen))
                return PARLEY_ERR_PROTO;
            tc->body_len = (uint16_t)blen;
            tc->body_have = 0;
        }
        const uint8_t *body;
        if (!tc->body && len >= tc->body_len) { /* whole in the chunk: no copy */
            body = in;
            in += tc->body_len;
            len -= tc->body_len;
        } else {
            if (!tc->body && !(tc->body = malloc(tc->body_len)))
                return PARLEY_ERR_NOMEM;
            size_t k = (size_t)(tc->body_len - tc->body_have);
            k = k < len ? k : len;
            memcpy(tc->body + tc->body_have, in, k);
            tc->body_have = (uint16_t)(tc->body_have + k);
            in += k;
            len -= k;
            if (tc->body_have < tc->body_len)
                break;
            body = tc->body;
        }
        rc = on_record(tc, body, plain, pctx, scratch, scratch_len, &stop);
        free(tc->body); /* ciphertext: nothing to wipe */
        tc->body = NULL;
        tc->hdr_len = 0;
    }
    return rc;
}

enum parley_err tls_conn_feed(struct tls_conn *tc, const uint8_t *in, size_t len,
                              tls_plain_fn plain, void *pctx, uint8_t *scratch,
                              size_t scratch_len)
{
    enum parley_err rc = PARLEY_OK;
    if (tc->failed)
        return PARLEY_ERR_PROTO;
    if (tc->peer_closed)
        return PARLEY_ERR_CLOSED;
    if (tc->ssl) {
        tc->in = in;
        tc->in_len = len;
        rc = ssl_feed(tc, &in, &len, plain, pctx, scratch, scratch_len);
        tc->in = NULL;
        tc->in_len = 0;
    }
    if (!rc && !tc->ssl)
        rc = rec_feed(tc, in, len, plain, pctx, scratch, scratch_len);
    if (rc && rc != PARLEY_ERR_CLOSED)
        tc->failed = true;
    return rc;
}

enum parley_err tls_conn_write(struct tls_conn *tc, const void *data, size_t len)
{
    if (tc->failed || tc->shut || !tls_conn_ready(tc))
        return PARLEY_ERR_PROTO;
    const uint8_t *p = data;
    while (len > 0) {
        int n;
        if (tc->ssl) {
            n = SSL_write(tc->ssl, p, len > (1u << 30) ? (1 << 30) : (int)len);
        } else {
            size_t k = len < TLS_REC_MAX_PLAIN ? len : TLS_REC_MAX_PLAIN;
            enum parley_err rc = PARLEY_OK;
            if (tc->wr.seq >= WRITE_REKEY_RECORDS)
                rc = send_key_update(tc, false);
            if (!rc)
                rc = send_record(tc, TLS_CT_APPLICATION_DATA, p, k);
            n = rc ? -1 : (int)k;
        }
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
    if (!tc || tc->failed || tc->shut || !tls_conn_ready(tc))
        return;
    tc->shut = true;
    if (tc->ssl) {
        (void)SSL_shutdown(tc->ssl);
        ERR_clear_error();
        return;
    }
    const uint8_t alert[2] = {ALERT_LEVEL_WARNING, ALERT_CLOSE_NOTIFY};
    if (send_record(tc, TLS_CT_ALERT, alert, sizeof alert) != PARLEY_OK)
        tc->failed = true; /* best effort: the transport is closing anyway */
}
