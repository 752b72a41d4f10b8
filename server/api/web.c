/* web.c — static web client; see web.h. */
#include "web.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file_util.h"
#include "http_server.h"

#define WEB_MAX_FILE (4u << 20)

static char web_root[PATH_MAX - 256]; /* room for '/' + a file name */

struct web_job {
    char path[PATH_MAX];
    const char *type;
    unsigned char *data;
    size_t len;
    enum parley_err rc;
};

static const char *content_type(const char *name)
{
    static const struct { const char *ext, *type; } types[] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},   {".svg", "image/svg+xml"},
        {".png", "image/png"},                 {".json", "application/json"},
        {".wasm", "application/wasm"},         {".ico", "image/x-icon"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(dot, types[i].ext))
            return types[i].type;
    return "application/octet-stream";
}

static int safe_name(const char *s)
{
    if (!*s || *s == '.' || strlen(s) > 128)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static void read_job(void *arg)
{
    struct web_job *j = arg;
    j->rc = file_read_all(j->path, WEB_MAX_FILE, &j->data, &j->len);
}

static void read_done(struct http_request *req, void *arg)
{
    struct web_job *j = arg;
    if (j->rc == PARLEY_ERR_NOTFOUND)
        http_respond_error(req, 404, "not_found", "no such file");
    else if (j->rc)
        http_respond_error(req, 500, "internal", "cannot read file");
    else
        http_respond(req, 200, j->type, j->data, j->len,
                     "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n"
                     "Content-Security-Policy: default-src 'self'; connect-src 'self'\r\n");
    free(j->data);
    free(j);
}

static void serve(struct http_request *req, const char *name)
{
    if (!safe_name(name)) {
        http_respond_error(req, 404, "not_found", "no such file");
        return;
    }
    struct web_job *j = calloc(1, sizeof *j);
    if (!j) {
        http_respond_error(req, 503, "unavailable", "out of memory");
        return;
    }
    if (snprintf(j->path, sizeof j->path, "%s/%s", web_root, name) >= (int)sizeof j->path) {
        free(j);
        http_respond_error(req, 404, "not_found", "no such file");
        return;
    }
    j->type = content_type(name);
    if (http_request_work(req, read_job, read_done, j) != PARLEY_OK) {
        free(j);
        http_respond_error(req, 503, "unavailable", "server busy");
    }
}

static void index_page(struct http_request *req, void *ctx)
{
    (void)ctx;
    serve(req, "index.html");
}

static void static_file(struct http_request *req, void *ctx)
{
    (void)ctx;
    serve(req, req->params[0]);
}

enum parley_err web_register_routes(struct http_server *srv, const char *root)
{
    if (strlen(root) >= sizeof web_root)
        return PARLEY_ERR_LIMIT;
    memcpy(web_root, root, strlen(root) + 1);
    enum parley_err rc = http_server_route(srv, "GET", "/", index_page, NULL);
    if (rc)
        return rc;
    return http_server_route(srv, "GET", "/static/{file}", static_file, NULL);
}
