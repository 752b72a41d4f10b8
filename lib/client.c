/*
 * client.c — struct parley_client: creation, saved-session adoption, the one JSON
 * request path every API call goes through, error detail, and the URL path-segment
 * encoder the API calls share; see parley/client.h.
 *
 * Request path: JSON body (jansson) -> http_client_request (keep-alive connection,
 * created lazily) -> status check -> JSON answer. Every buffer that may hold a
 * password or the token is wiped before it is freed: the serialised body, the
 * Authorization header, the response body (http_response_cleanup wipes it).
 */
#include "client_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "buf.h"
#include "http_client.h"

#define MAX_TOKEN 4096

char *client_strdup(const char *s, bool *ok)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *ok = false;
    return d;
}

void client_session_cleanup(struct client_session *s)
{
    if (!s)
        return;
    free(s->server);
    free(s->username);
    free(s->user_id);
    free(s->device_id);
    if (s->token)
        sodium_free(s->token); /* sodium_free wipes */
    memset(s, 0, sizeof *s);
}

void client_clear_error(struct parley_client *c)
{
    c->err_status = 0;
    free(c->err_code);
    c->err_code = NULL;
    c->err_msg[0] = 0;
    c->retry_after = 0;
}

void client_set_error(struct parley_client *c, int status, const char *code, const char *fmt, ...)
{
    c->err_status = status;
    free(c->err_code);
    c->err_code = code ? strdup(code) : NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err_msg, sizeof c->err_msg, fmt, ap);
    va_end(ap);
}

void client_json_wipe(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_string(v)) {
        /* The value's memory belongs to v, which we hold: wipe it before it is freed. */
        char *p = (char *)json_string_value(v);
        sodium_memzero(p, json_string_length(v));
    }
}

static int dump_cb(const char *p, size_t n, void *data)
{
    return buf_append(data, p, n) == PARLEY_OK ? 0 : -1;
}

enum parley_err client_json_text(const json_t *obj, size_t flags, struct buf *out)
{
    if (json_dump_callback(obj, dump_cb, out, flags) != 0) {
        client_buf_wipe(out);
        return PARLEY_ERR_NOMEM;
    }
    return PARLEY_OK;
}

void client_buf_wipe(struct buf *b)
{
    if (b->data)
        sodium_memzero(b->data, b->cap);
    buf_cleanup(b);
}

static char *normalise_url(const char *url)
{
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        n--;
    return strndup(url, n);
}

enum parley_err parley_client_open(const struct parley_client_options *opts,
                                   struct parley_client **out)
{
    if (!opts || !out)
        return PARLEY_ERR_INVAL;
    if (sodium_init() < 0)
        return PARLEY_ERR_CRYPTO;
    enum parley_err rc = PARLEY_ERR_NOMEM;
    struct client_session saved;
    memset(&saved, 0, sizeof saved);
    struct parley_client *c = calloc(1, sizeof *c);
    if (!c)
        goto out;
    bool ok = true;
    c->ca_file = client_strdup(opts->ca_file, &ok);
    c->insecure_skip_verify = opts->insecure_skip_verify;
    c->timeout_ms = opts->timeout_ms;
    if (!ok)
        goto out;
    if (opts->home_dir) {
        if (!*opts->home_dir) {
            rc = PARLEY_ERR_INVAL;
            goto out;
        }
        c->home = strdup(opts->home_dir);
        if (!c->home)
            goto out;
    } else {
        rc = home_default(&c->home);
        if (rc)
            goto out;
    }
    rc = home_load(c->home, &saved);
    if (rc)
        goto out;
    const char *url = opts->server_url && *opts->server_url ? opts->server_url
                      : saved.server                        ? saved.server
                                                            : PARLEY_DEFAULT_SERVER;
    c->server = normalise_url(url);
    if (!c->server) {
        rc = PARLEY_ERR_NOMEM;
        goto out;
    }
    /* Validate the URL now rather than at the first request. */
    struct http_client_config cfg = {.url = c->server,
                                     .ca_file = c->ca_file,
                                     .insecure_skip_verify = c->insecure_skip_verify,
                                     .timeout_ms = c->timeout_ms};
    rc = http_client_new(&cfg, &c->http);
    if (rc)
        goto out;
    if (saved.token && saved.server && strcmp(saved.server, c->server) == 0) {
        c->s = saved; /* adopt: the session was made with this server */
        memset(&saved, 0, sizeof saved);
    }
    *out = c;
    c = NULL;
out:
    client_session_cleanup(&saved);
    parley_client_free(c);
    return rc;
}

enum parley_err parley_client_new(const char *server_url, const char *home_dir,
                                  struct parley_client **out)
{
    struct parley_client_options o = {.server_url = server_url, .home_dir = home_dir};
    return parley_client_open(&o, out);
}

void parley_client_free(struct parley_client *c)
{
    if (!c)
        return;
    http_client_free(c->http);
    client_session_cleanup(&c->s);
    free(c->server);
    free(c->home);
    free(c->ca_file);
    free(c->err_code);
    free(c);
}

const char *parley_client_server(const struct parley_client *c)
{
    return c->server;
}

const char *parley_client_home(const struct parley_client *c)
{
    return c->home;
}

bool parley_client_logged_in(const struct parley_client *c)
{
    return c && c->s.token != NULL;
}

const char *parley_client_username(const struct parley_client *c)
{
    return c->s.token ? c->s.username : NULL;
}

const char *parley_client_user_id(const struct parley_client *c)
{
    return c->s.token ? c->s.user_id : NULL;
}

const char *parley_client_device_id(const struct parley_client *c)
{
    return c->s.token ? c->s.device_id : NULL;
}

void parley_client_last_error(const struct parley_client *c, int *status, const char **code,
                              const char **message)
{
    if (status)
        *status = c->err_status;
    if (code)
        *code = c->err_code;
    if (message)
        *message = c->err_msg;
}

uint32_t parley_client_retry_after(const struct parley_client *c)
{
    return c->retry_after;
}

/* Take the error object of a non-2xx answer apart; fall back to the status line. */
static void server_error(struct parley_client *c, const struct http_response *r)
{
    json_t *root = NULL;
    if (r->body.len)
        root = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
    json_t *e = json_object_get(root, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (msg)
        client_set_error(c, r->status, code, "%s", msg);
    else
        client_set_error(c, r->status, code, "the server answered HTTP %d", r->status);
    json_decref(root);

    char ra[32];
    if (r->status == 429 && http_response_header(r, "Retry-After", ra, sizeof ra)) {
        char *end = NULL;
        long v = strtol(ra, &end, 10);
        if (end != ra && *end == 0 && v > 0)
            c->retry_after = v > 86400 ? 86400u : (uint32_t)v;
    }
}

enum parley_err client_call(struct parley_client *c, const char *method, const char *path,
                            json_t *body, bool wipe_body, bool auth, int *status, json_t **out)
{
    if (out)
        *out = NULL;
    if (auth && !c->s.token) {
        client_set_error(c, 0, NULL, "not logged in");
        return PARLEY_ERR_DENIED;
    }
    enum parley_err rc = PARLEY_OK;
    struct buf text;
    buf_init(&text, CLIENT_MAX_BODY);
    char hdr[MAX_TOKEN + 128];
    struct http_response r;
    memset(&r, 0, sizeof r);
    bool have_resp = false;

    if (body) {
        rc = client_json_text(body, JSON_COMPACT, &text);
        if (rc)
            goto out;
    }
    int n =
        snprintf(hdr, sizeof hdr, "Accept: application/json\r\n%s%s%s%s",
                 body ? "Content-Type: application/json\r\n" : "",
                 auth ? "Authorization: Bearer " : "", auth ? c->s.token : "", auth ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof hdr) {
        rc = PARLEY_ERR_LIMIT;
        goto out;
    }
    rc = http_client_request(c->http, method, path, hdr, text.data, text.len, &r);
    have_resp = true;
    if (rc) {
        client_set_error(c, 0, NULL, "%s", http_client_error(c->http));
        goto out;
    }
    if (status)
        *status = r.status;
    if (r.status < 200 || r.status > 299) {
        server_error(c, &r);
        rc = PARLEY_ERR_SERVER;
        goto out;
    }
    if (out && r.body.len) {
        json_error_t jerr;
        json_t *root =
            json_loadb((const char *)r.body.data, r.body.len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(root)) {
            json_decref(root);
            client_set_error(c, r.status, NULL, "malformed answer from the server");
            rc = PARLEY_ERR_PROTO;
            goto out;
        }
        *out = root;
    }
out:
    sodium_memzero(hdr, sizeof hdr);
    client_buf_wipe(&text);
    if (body && wipe_body) {
        const char *key;
        json_t *v;
        json_object_foreach(body, key, v)
        {
            client_json_wipe(body, key);
        }
    }
    if (have_resp)
        http_response_cleanup(&r);
    return rc;
}

enum parley_err client_path_segment(const char *in, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    if (!in || !*in)
        return PARLEY_ERR_INVAL;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        bool plain = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
                     (*p >= 'A' && *p <= 'Z') || *p == '-' || *p == '_' || *p == '.' || *p == '~';
        size_t need = plain ? 1 : 3;
        if (o + need >= cap)
            return PARLEY_ERR_LIMIT;
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = 0;
    return PARLEY_OK;
}
