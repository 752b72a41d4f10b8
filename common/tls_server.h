/*
 * tls_server.h — server-side TLS for the libuv transport, OpenSSL 3 without sockets.
 *
 * The connection code feeds ciphertext read from the libuv stream in, gets plaintext
 * back through a callback, and receives the ciphertext to send through a sink callback
 * (it appends to the connection's output queue). The SSL object's I/O goes through a
 * tiny custom BIO that reads from the chunk being fed and writes straight into the sink,
 * so a connection keeps no BIO buffers of its own; with SSL_MODE_RELEASE_BUFFERS an idle
 * TLS connection holds only the SSL object.
 * TLS 1.2 minimum. The tls_server (SSL_CTX) is shared by all I/O threads; each
 * tls_conn belongs to one loop thread.
 */
#ifndef PARLEY_TLS_SERVER_H
#define PARLEY_TLS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "parley/err.h"

struct tls_server;
struct tls_conn;

/* Ciphertext to send. Returns PARLEY_OK or an error (the write then fails). */
typedef enum parley_err (*tls_sink_fn)(void *ctx, const void *data, size_t len);
/* Decrypted bytes. Return false to stop feeding (the connection is closing). */
typedef bool (*tls_plain_fn)(void *ctx, const uint8_t *data, size_t len);

/* Load cert chain + key (PEM). PARLEY_ERR_IO when a file cannot be loaded or the key does
 * not match. Main thread. */
PARLEY_WUR enum parley_err tls_server_new(const char *cert_file, const char *key_file,
                                          struct tls_server **out);
void tls_server_free(struct tls_server *t);

/* A server-side TLS session writing its ciphertext to sink(ctx, ...). */
PARLEY_WUR enum parley_err tls_conn_new(struct tls_server *t, tls_sink_fn sink, void *ctx,
                                        struct tls_conn **out);
void tls_conn_free(struct tls_conn *tc);
/* Feed ciphertext (all of it is consumed). Drives the handshake and calls plain() with
 * decrypted data, using scratch (scratch_len bytes, caller-owned) as the read buffer.
 * PARLEY_ERR_PROTO on a TLS error, PARLEY_ERR_CLOSED when the peer sent close_notify. */
PARLEY_WUR enum parley_err tls_conn_feed(struct tls_conn *tc, const uint8_t *in, size_t len,
                                         tls_plain_fn plain, void *pctx, uint8_t *scratch,
                                         size_t scratch_len);
/* Encrypt len bytes; ciphertext goes to the sink. PARLEY_ERR_PROTO before the handshake
 * finished or after a failure. */
PARLEY_WUR enum parley_err tls_conn_write(struct tls_conn *tc, const void *data, size_t len);
/* Queue a close_notify alert (best effort). */
void tls_conn_shutdown(struct tls_conn *tc);
/* True once the handshake completed. */
bool tls_conn_ready(const struct tls_conn *tc);

#endif
