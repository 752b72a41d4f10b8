/*
 * tls_client.h — the byte stream under the HTTP and WebSocket clients: one TCP
 * connection, optionally wrapped in TLS (OpenSSL 3), driven with poll() and deadlines.
 *
 * Role: http_client.c and ws_client.c read and write through this layer only, so
 * "http" and "https" (or "ws" and "wss") differ in one place. The socket is always
 * non-blocking; the *_nb calls never wait, the others wait until a deadline given as
 * an absolute clock_mono_us() value.
 *
 * TLS: the peer is verified by default (system store or ca_file) including the host
 * name (or IP address) of the URL; SNI is sent for names; TLS 1.2 minimum.
 * insecure_skip_verify turns verification off (tests with self-signed certs only).
 *
 * Not thread-safe: one owner thread per stream. Error detail (what failed, errno or the
 * OpenSSL reason) is kept as text on the stream, see tls_client_error().
 */
#ifndef PARLEY_TLS_CLIENT_H
#define PARLEY_TLS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "parley/err.h"

/* A parsed http/https/ws/wss URL. */
struct tls_client_url {
    bool tls;            /* https or wss */
    bool websocket;      /* ws or wss scheme */
    char host[256];      /* without brackets for IPv6 literals */
    char port[8];        /* decimal */
    char authority[272]; /* value for the Host header: host[:port] (brackets kept) */
    char path[512];      /* path prefix from the URL, "" when none (no trailing '/') */
};

/* Parse "scheme://host[:port][/prefix]". Schemes: http, https, ws, wss. Default ports
 * 80/443. PARLEY_ERR_INVAL on anything else (userinfo, query, fragment, bad port). */
PARLEY_WUR enum parley_err tls_client_url_parse(const char *url, struct tls_client_url *out);

struct tls_client_opts {
    const char *ca_file; /* NULL = system default paths */
    bool insecure_skip_verify;
};

struct tls_client;

/* Connect to url (TCP_NODELAY; TLS handshake when url->tls) before deadline_us.
 * On failure *out is untouched and, if errbuf is not NULL, a description is written to
 * it. Errors: PARLEY_ERR_IO (resolve, connect, TLS), PARLEY_ERR_TIMEOUT,
 * PARLEY_ERR_NOMEM. The stream copies what it needs from url and opts. */
PARLEY_WUR enum parley_err tls_client_open(const struct tls_client_url *url,
                                           const struct tls_client_opts *opts, uint64_t deadline_us,
                                           char *errbuf, size_t errbuf_len,
                                           struct tls_client **out);
/* Close (TLS close_notify best-effort) and free. Accepts NULL. */
void tls_client_free(struct tls_client *t);

/* Read at most len bytes without waiting. PARLEY_OK with *got > 0; PARLEY_ERR_AGAIN when
 * nothing is ready (then *want_events says which poll events to wait for);
 * PARLEY_ERR_CLOSED on orderly EOF; PARLEY_ERR_IO on error (reset included). */
PARLEY_WUR enum parley_err tls_client_read_nb(struct tls_client *t, void *p, size_t len,
                                              size_t *got, short *want_events);
/* Write at most len bytes without waiting; like tls_client_read_nb, *put > 0 on OK. */
PARLEY_WUR enum parley_err tls_client_write_nb(struct tls_client *t, const void *p, size_t len,
                                               size_t *put, short *want_events);
/* Read at least one byte, waiting until deadline_us. PARLEY_ERR_TIMEOUT past it. */
PARLEY_WUR enum parley_err tls_client_read(struct tls_client *t, void *p, size_t len, size_t *got,
                                           uint64_t deadline_us);
/* Write all len bytes, waiting until deadline_us. */
PARLEY_WUR enum parley_err tls_client_write_all(struct tls_client *t, const void *p, size_t len,
                                                uint64_t deadline_us);
/* Wait until the socket has one of events or deadline_us passes (PARLEY_ERR_TIMEOUT).
 * Returns at once when TLS already holds decrypted bytes and events has POLLIN. */
PARLEY_WUR enum parley_err tls_client_wait(struct tls_client *t, short events,
                                           uint64_t deadline_us);
/* True when a read would return bytes without touching the socket (TLS buffer). */
bool tls_client_pending(const struct tls_client *t);
/* True when the peer has closed or reset the connection (used to detect a server
 * that dropped an idle keep-alive connection before reusing it). Never blocks. */
bool tls_client_peer_closed(struct tls_client *t);
int tls_client_fd(const struct tls_client *t);
/* Text describing the last failure on this stream ("" when none). */
const char *tls_client_error(const struct tls_client *t);

/* Absolute deadline timeout_ms from now on the monotonic clock. */
uint64_t tls_client_deadline(uint32_t timeout_ms);

#endif
