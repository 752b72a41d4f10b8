/*
 * ops.h — operational endpoints: GET /healthz (liveness + store reachability) and
 * GET /metrics (Prometheus text). Unauthenticated; /metrics exposes counts only.
 */
#ifndef PARLEY_SERVER_API_OPS_H
#define PARLEY_SERVER_API_OPS_H

#include "parley/err.h"

struct http_server;
struct app;

/* Register /healthz and /metrics. srv and app must outlive the server's run. */
PARLEY_WUR enum parley_err ops_register_routes(struct http_server *srv, struct app *app);

#endif
