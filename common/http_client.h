/*
 * http_client.h — blocking HTTP/1.1 and WebSocket client (the client side of the
 * transport stack: http-parser for responses, wslay for frames, OpenSSL for TLS).
 *
 * Used by libparley, the CLI and the tests. One struct http_client is one connection
 * (keep-alive; reconnects transparently when the server closed an idle connection).
 * Blocking with timeouts (poll); not thread-safe: one owner thread per client.
 * For event loops: ws_client_fd() + ws_client_recv(..., 0, ...) poll a WebSocket without
 * waiting (see ws_client_pending() for bytes already buffered by TLS).
 * Implementation: http_client.c (HTTP), ws_client.c (WebSocket), tls_client.c (the
 * TCP/TLS stream under both).
 */
#ifndef PARLEY_HTTP_CLIENT_H
#define PARLEY_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "parley/err.h"
#include "buf.h"

struct http_client;

struct http_client_config {
    const char *url;            /* "http://127.0.0.1:8080" or "https://host:port" */
    const char *ca_file;        /* NULL = system store; used for https */
    bool insecure_skip_verify;  /* tests with self-signed certs only */
    uint32_t timeout_ms;        /* per operation; 0 = 30000 */
    size_t max_response;        /* 0 = 16 MiB */
};

struct http_response {
    int status;
    struct buf headers;         /* raw "Name: value\r\n" lines */
    struct buf body;
};

/* Parse the URL and prepare; connects lazily on first request. */
PARLEY_WUR enum parley_err http_client_new(const struct http_client_config *cfg,
                                           struct http_client **out);
void http_client_free(struct http_client *c);
/* Change the per-request timeout (0 = 30000 ms). */
void http_client_set_timeout(struct http_client *c, uint32_t timeout_ms);
/* Text describing the last failure of a call on c (connect/TLS/timeout detail), "" when
 * the last call succeeded. Valid until the next call on c. */
const char *http_client_error(const struct http_client *c);

/* One request/response. path starts with '/' (the URL's path prefix is prepended).
 * headers: NULL or "Name: value\r\n..." lines (Host, Content-Length are added;
 * malformed lines give PARLEY_ERR_INVAL). A response over max_response is
 * PARLEY_ERR_LIMIT; a malformed one PARLEY_ERR_PROTO. The request bytes are wiped after
 * sending (they may carry a token). resp is initialised by the call; release it with
 * http_response_cleanup, also on error. Network failures give PARLEY_ERR_IO/TIMEOUT;
 * any HTTP status (including 4xx/5xx) is PARLEY_OK with resp->status set. */
PARLEY_WUR enum parley_err http_client_request(struct http_client *c, const char *method,
                                               const char *path, const char *headers,
                                               const void *body, size_t body_len,
                                               struct http_response *resp);
void http_response_cleanup(struct http_response *resp);
/* Header value from a response, case-insensitive, copied into out (NUL-terminated). */
bool http_response_header(const struct http_response *resp, const char *name, char *out,
                          size_t out_len);

/* ---- WebSocket client ---- */
struct ws_client;

/* Open a WebSocket on path with extra headers (e.g. "Authorization: Bearer ...\r\n").
 * Uses its own connection. On a refused upgrade returns PARLEY_ERR_SERVER and, if
 * status is not NULL, the HTTP status. */
PARLEY_WUR enum parley_err ws_client_connect(const struct http_client_config *cfg,
                                             const char *path, const char *headers,
                                             int *status, struct ws_client **out);
/* Send one message (masked, as a client must). */
PARLEY_WUR enum parley_err ws_client_send(struct ws_client *ws, bool binary, const void *data,
                                          size_t len);
/* Wait up to timeout_ms for the next message; answers pings itself. msg receives the
 * payload (reset first). PARLEY_ERR_TIMEOUT when none came, PARLEY_ERR_CLOSED when the
 * server closed (close code in *close_code if not NULL). */
PARLEY_WUR enum parley_err ws_client_recv(struct ws_client *ws, uint32_t timeout_ms,
                                          bool *binary, struct buf *msg,
                                          uint16_t *close_code);
/* True when ws_client_recv() could make progress without waiting on the socket
 * (messages queued or TLS-buffered bytes): poll() on the fd alone would miss those. */
bool ws_client_pending(const struct ws_client *ws);
/* Text describing the last failure on ws ("" when none). */
const char *ws_client_error(const struct ws_client *ws);
/* Send a close frame and wait briefly for the answer. */
void ws_client_close(struct ws_client *ws, uint16_t code);
void ws_client_free(struct ws_client *ws);
/* The socket, for callers that poll several clients themselves. */
int ws_client_fd(const struct ws_client *ws);

#endif
