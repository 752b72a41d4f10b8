/*
 * http_router.h — (method, path) -> handler lookup for the HTTP server.
 *
 * Patterns are split into '/'-separated segments at registration; a "{name}" segment
 * matches one non-empty path segment and is captured. Matching is exact otherwise (a
 * trailing slash matters). When several routes match, the most specific wins: a literal
 * segment beats a capture at the first position where they differ; ties go to the
 * route registered first. HEAD falls back to a GET route.
 * Built once on the main thread before the server starts, then read-only: lookups are
 * safe from every I/O thread without locking.
 */
#ifndef PARLEY_HTTP_ROUTER_H
#define PARLEY_HTTP_ROUTER_H

#include <stddef.h>
#include "http_server.h"

#define HTTP_ROUTE_MAX_PARAMS 4
#define HTTP_ROUTE_MAX_SEGMENTS 32

struct http_router;

enum http_route_result {
    HTTP_ROUTE_FOUND = 0,
    HTTP_ROUTE_NOT_FOUND,   /* no pattern matches the path -> 404 */
    HTTP_ROUTE_BAD_METHOD,  /* the path matches, the method does not -> 405 */
};

struct http_route_match {
    http_handler_fn fn;
    void *ctx;
    const char *pattern;                       /* owned by the router */
    size_t n_params;
    size_t param_off[HTTP_ROUTE_MAX_PARAMS];   /* capture offsets into the matched path */
    size_t param_len[HTTP_ROUTE_MAX_PARAMS];
};

PARLEY_WUR enum parley_err http_router_new(struct http_router **out);
void http_router_free(struct http_router *r);
/* Add a route (copies method and pattern). PARLEY_ERR_INVAL for a pattern that does
 * not start with '/', has a malformed "{...}" segment, more than HTTP_ROUTE_MAX_PARAMS
 * captures or more than HTTP_ROUTE_MAX_SEGMENTS segments. */
PARLEY_WUR enum parley_err http_router_add(struct http_router *r, const char *method,
                                           const char *pattern, http_handler_fn fn,
                                           void *ctx);
/* Look up a decoded path. On HTTP_ROUTE_FOUND *m is filled; on HTTP_ROUTE_BAD_METHOD
 * allow receives the comma-separated allowed methods (truncated to allow_len). */
enum http_route_result http_router_match(const struct http_router *r, const char *method,
                                         const char *path, struct http_route_match *m,
                                         char *allow, size_t allow_len);

#endif
