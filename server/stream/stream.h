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
/* Append the stream's Prometheus counters to out (any thread). ctx is the struct
 * stream; the shape fits metrics_set_extra (metrics.h). */
PARLEY_WUR enum parley_err stream_metrics_render(void *ctx, struct buf *out);

#endif
