/*
 * stream.h — the WebSocket message stream of parleyd (GET /v1/stream): authenticated
 * connections exchanging protobuf frames (proto/stream.proto), the queue of envelopes
 * for offline devices with its group-committing writer, delivery and the purge job.
 * docs/protocol.md "Stream" is the wire contract; docs/internals/stream.md the design.
 *
 * Lifecycle (main thread), in this order around the HTTP server:
 *   stream_new -> stream_register_routes -> http_server_start -> stream_start
 *   ... http_server_stop -> stream_stop -> stream_free -> store_close
 * stream_stop commits whatever the writer still holds and stops the purge timer.
 */
#ifndef PARLEY_SERVER_STREAM_H
#define PARLEY_SERVER_STREAM_H

#include <stddef.h>

#include "buf.h"
#include "parley/err.h"

struct app;
struct stream;
struct http_server;

/* Create the stream for app (which must outlive it): derives the queue sealing key
 * from app->master_key, makes the hub, the writer and the send rate limiter.
 * PARLEY_ERR_NOMEM / CRYPTO. Free with stream_free. */
PARLEY_WUR enum parley_err stream_new(struct app *app, struct stream **out);
/* Register GET /v1/stream; the route's ctx is app (app->stream must be set). */
PARLEY_WUR enum parley_err stream_register_routes(struct http_server *srv, struct app *app);
/* Start the writer thread (and with it the purge timer). */
PARLEY_WUR enum parley_err stream_start(struct stream *st);
/* Flush the writer (commit queued jobs) and stop it. After http_server_stop. */
void stream_stop(struct stream *st);
void stream_free(struct stream *st);
/* Close, with WebSocket code 4001 "revoked", the stream of device_id, or every stream of
 * user_id, connected to this server. Call once the store change that ended the
 * session(s) has committed (revoke, logout, account deletion), so a reconnect is refused
 * by auth. The close happens on each connection's own loop, right after this returns.
 * Returns the number of connections told to close (0: none connected, or out of memory,
 * in which case each connection's periodic session check, every STREAM_REVALIDATE_MS
 * (stream_int.h), closes it). Any thread; st may be NULL. */
size_t stream_disconnect_device(struct stream *st, const char *device_id);
size_t stream_disconnect_user(struct stream *st, const char *user_id);
/* Append the stream's Prometheus counters to out (any thread). ctx is the struct
 * stream; the shape fits metrics_set_extra (metrics.h). */
PARLEY_WUR enum parley_err stream_metrics_render(void *ctx, struct buf *out);

#endif
