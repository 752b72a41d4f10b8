/*
 * tls_server.h — server-side TLS for the libuv transport, OpenSSL 3 without sockets.
 *
 * The connection code feeds ciphertext read from the libuv stream in, gets plaintext
 * back through a callback, and receives the ciphertext to send through a sink callback
 * (it appends to the connection's output queue). During the handshake the SSL object's I/O
 * goes through a tiny custom BIO that reads from the chunk being fed and writes straight
 * into the sink, so a connection keeps no BIO buffers of its own (SSL_MODE_RELEASE_BUFFERS).
 * After a TLS 1.3 handshake the SSL object is freed and records are protected by our own
 * record layer (tls_record.h) from the captured application traffic secrets: an idle TLS 1.3
 * connection then holds about 250 bytes here. TLS 1.2 connections keep the SSL object.
 * TLS 1.2 minimum; TLS 1.3 suites are TLS_AES_128_GCM_SHA256 and
 * TLS_CHACHA20_POLY1305_SHA256 only; no session resumption (no tickets, no cache).
 * The tls_server (SSL_CTX) is shared by all I/O threads; each tls_conn belongs to one loop
 * thread.
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
 * decrypted data, using scratch (scratch_len bytes, caller-owned, at least 16 KiB) as the
 * read buffer. Answers a peer's KeyUpdate. PARLEY_ERR_PROTO on a TLS error (bad record,
 * any alert but close_notify, a post-handshake message other than KeyUpdate; every later
 * call then fails), PARLEY_ERR_CLOSED when the peer sent close_notify. */
PARLEY_WUR enum parley_err tls_conn_feed(struct tls_conn *tc, const uint8_t *in, size_t len,
                                         tls_plain_fn plain, void *pctx, uint8_t *scratch,
                                         size_t scratch_len);
/* Encrypt len bytes (records of at most 16 KiB); ciphertext goes to the sink.
 * PARLEY_ERR_PROTO before the handshake finished, after a failure (the sink's included) or
 * after tls_conn_shutdown. */
PARLEY_WUR enum parley_err tls_conn_write(struct tls_conn *tc, const void *data, size_t len);
/* Queue a close_notify alert (best effort). */
void tls_conn_shutdown(struct tls_conn *tc);
/* True once the handshake completed. */
bool tls_conn_ready(const struct tls_conn *tc);

#endif
