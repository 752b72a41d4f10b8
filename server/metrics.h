/*
 * metrics.h — Prometheus text metrics: requests by route and status, a latency
 * histogram, and the transport's connection gauges. Recording is called from every I/O
 * thread (http observer); rendering from any thread. Internally a mutex-protected table
 * of (route, status) counters — routes are the registered patterns, so it stays small.
 */
#ifndef PARLEY_SERVER_METRICS_H
#define PARLEY_SERVER_METRICS_H

#include <stdint.h>
#include "buf.h"
#include "parley/err.h"

struct metrics;
struct http_server;

PARLEY_WUR enum parley_err metrics_new(struct metrics **out);
void metrics_free(struct metrics *m);
/* Count one answered request. route: the matched pattern, or NULL (unmatched / rejected
 * by the transport), kept by pointer — it must outlive m. */
void metrics_record(struct metrics *m, const char *route, int status, uint64_t latency_us);
/* Append the exposition text (version 0.0.4) to out; srv adds the connection gauges. */
PARLEY_WUR enum parley_err metrics_render(struct metrics *m, const struct http_server *srv,
                                          struct buf *out);
/* A section of another module's counters (e.g. the stream's) that metrics_render
 * appends; fn runs on the rendering thread. Set before the server starts. */
typedef enum parley_err (*metrics_extra_fn)(void *ctx, struct buf *out);
void metrics_set_extra(struct metrics *m, metrics_extra_fn fn, void *ctx);

#endif
