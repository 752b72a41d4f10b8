/*
 * http_client_int.h — private glue between http_client.c and ws_client.c (not for
 * other modules): both read an HTTP/1.1 response head with the same http-parser
 * callbacks over a tls_client stream.
 */
#ifndef PARLEY_HTTP_CLIENT_INT_H
#define PARLEY_HTTP_CLIENT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include "http_client.h"
#include "tls_client.h"

/* Hard cap on a response's header block. */
#define HTTP_CLIENT_MAX_HEADERS (64u * 1024u)

/* Read one response from t into resp (already initialised by the caller, buffers
 * empty). is_head: the request was HEAD (no body follows). A 101 response stops after
 * its head; bytes read past it (the first WebSocket frames) are appended to leftover
 * if not NULL. *got_any tells whether any byte arrived (for the idle-reconnect rule).
 * *keep_alive tells whether the connection may be reused.
 * Errors: PARLEY_ERR_LIMIT (body > resp->body.max or headers too large),
 * PARLEY_ERR_PROTO (malformed), PARLEY_ERR_CLOSED (EOF before the response was
 * complete), PARLEY_ERR_IO, PARLEY_ERR_TIMEOUT. errbuf gets a description. */
enum parley_err http_client_read_response(struct tls_client *t, bool is_head, uint64_t deadline_us,
                                          struct http_response *resp, struct buf *leftover,
                                          bool *got_any, bool *keep_alive, char *errbuf,
                                          size_t errbuf_len);

#endif
