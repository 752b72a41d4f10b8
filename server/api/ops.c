/* ops.c — /healthz and /metrics; see ops.h. */
#include "ops.h"

#include "app.h"
#include "buf.h"
#include "http_server.h"
#include "metrics.h"
#include "parley/version.h"

static struct http_server *ops_server; /* for the connection gauges */

static void healthz(struct http_request *req, void *ctx)
{
    (void)ctx;
    http_respond_json(req, 200, "{\"status\":\"ok\",\"version\":\"" PARLEY_VERSION_STRING "\"}");
}

static void metrics_page(struct http_request *req, void *ctx)
{
    struct app *app = ctx;
    struct buf out;
    buf_init(&out, 1 << 20);
    if (metrics_render(app->metrics, ops_server, &out) != PARLEY_OK)
        http_respond_error(req, 500, "internal", "metrics unavailable");
    else
        http_respond(req, 200, "text/plain; version=0.0.4", out.data, out.len, NULL);
    buf_cleanup(&out);
}

enum parley_err ops_register_routes(struct http_server *srv, struct app *app)
{
    enum parley_err rc;
    ops_server = srv;
    if ((rc = http_server_route(srv, "GET", "/healthz", healthz, app)))
        return rc;
    return http_server_route(srv, "GET", "/metrics", metrics_page, app);
}
