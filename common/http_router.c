/*
 * http_router.c — linear route table; see http_router.h.
 *
 * Tables are small (tens of routes) and the scan touches only pre-split segments, so a
 * linear walk beats anything clever. Invariant: after the server starts the table is
 * never modified.
 */
#include "http_router.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct seg {
    const char *text; /* literal text (points into route->pattern_copy) */
    size_t len;
    bool param;
};

struct route {
    char *method;
    char *pattern;
    char *pattern_copy; /* segment texts point here */
    struct seg segs[HTTP_ROUTE_MAX_SEGMENTS];
    size_t n_segs;
    size_t n_params;
    uint64_t specificity; /* bit (63 - i) set when segment i is literal */
    http_handler_fn fn;
    void *ctx;
};

struct http_router {
    struct route *routes;
    size_t n, cap;
};

enum parley_err http_router_new(struct http_router **out)
{
    struct http_router *r = calloc(1, sizeof *r);
    if (!r)
        return PARLEY_ERR_NOMEM;
    *out = r;
    return PARLEY_OK;
}

void http_router_free(struct http_router *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->routes[i].method);
        free(r->routes[i].pattern);
        free(r->routes[i].pattern_copy);
    }
    free(r->routes);
    free(r);
}

static enum parley_err split_pattern(struct route *rt)
{
    char *p = rt->pattern_copy;
    if (*p != '/')
        return PARLEY_ERR_INVAL;
    rt->n_segs = 0;
    while (*p == '/') {
        p++;
        char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (rt->n_segs == HTTP_ROUTE_MAX_SEGMENTS)
            return PARLEY_ERR_INVAL;
        struct seg *s = &rt->segs[rt->n_segs];
        s->text = p;
        s->len = len;
        s->param = false;
        if (len > 0 && p[0] == '{') {
            if (len < 3 || p[len - 1] != '}')
                return PARLEY_ERR_INVAL;
            s->param = true;
            if (++rt->n_params > HTTP_ROUTE_MAX_PARAMS)
                return PARLEY_ERR_INVAL;
        } else if (memchr(p, '{', len) || memchr(p, '}', len)) {
            return PARLEY_ERR_INVAL;
        } else if (rt->n_segs < 64) {
            rt->specificity |= (uint64_t)1 << (63 - rt->n_segs);
        }
        rt->n_segs++;
        p += len;
    }
    return PARLEY_OK;
}

enum parley_err http_router_add(struct http_router *r, const char *method,
                                const char *pattern, http_handler_fn fn, void *ctx)
{
    if (!r || !method || !*method || !pattern || !fn)
        return PARLEY_ERR_INVAL;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct route *nr = realloc(r->routes, cap * sizeof *nr);
        if (!nr)
            return PARLEY_ERR_NOMEM;
        r->routes = nr;
        r->cap = cap;
    }
    struct route *rt = &r->routes[r->n];
    memset(rt, 0, sizeof *rt);
    rt->method = strdup(method);
    rt->pattern = strdup(pattern);
    rt->pattern_copy = strdup(pattern);
    enum parley_err rc = PARLEY_ERR_NOMEM;
    if (!rt->method || !rt->pattern || !rt->pattern_copy)
        goto out;
    rc = split_pattern(rt);
    if (rc)
        goto out;
    rt->fn = fn;
    rt->ctx = ctx;
    r->n++;
    return PARLEY_OK;
out:
    free(rt->method);
    free(rt->pattern);
    free(rt->pattern_copy);
    return rc;
}

/* Does path match rt's segments? Captures go to m when not NULL. */
static bool match_path(const struct route *rt, const char *path, struct http_route_match *m)
{
    if (*path != '/')
        return false;
    const char *p = path;
    size_t i = 0, np = 0;
    while (*p == '/') {
        p++;
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (i == rt->n_segs)
            return false;
        const struct seg *s = &rt->segs[i];
        if (s->param) {
            if (len == 0)
                return false;
            if (m) {
                m->param_off[np] = (size_t)(p - path);
                m->param_len[np] = len;
            }
            np++;
        } else if (s->len != len || memcmp(s->text, p, len) != 0) {
            return false;
        }
        i++;
        p += len;
    }
    if (i != rt->n_segs)
        return false;
    if (m)
        m->n_params = np;
    return true;
}

static bool method_ok(const struct route *rt, const char *method, bool *via_head)
{
    *via_head = false;
    if (strcmp(rt->method, "*") == 0 || strcmp(rt->method, method) == 0)
        return true;
    if (strcmp(method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0) {
        *via_head = true;
        return true;
    }
    return false;
}

static void allow_add(char *allow, size_t allow_len, const char *method)
{
    size_t used = strlen(allow);
    /* Skip duplicates: look for method as a whole list element. */
    size_t ml = strlen(method);
    for (const char *p = allow; *p;) {
        const char *e = strstr(p, ", ");
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == ml && memcmp(p, method, ml) == 0)
            return;
        p += l;
        if (*p)
            p += 2;
    }
    size_t need = (used ? 2 : 0) + ml;
    if (used + need + 1 > allow_len)
        return;
    if (used) {
        memcpy(allow + used, ", ", 2);
        used += 2;
    }
    memcpy(allow + used, method, ml + 1);
}

enum http_route_result http_router_match(const struct http_router *r, const char *method,
                                         const char *path, struct http_route_match *m,
                                         char *allow, size_t allow_len)
{
    const struct route *best = NULL;
    bool best_via_head = true;
    bool path_seen = false;
    if (allow && allow_len)
        allow[0] = 0;
    for (size_t i = 0; i < r->n; i++) {
        const struct route *rt = &r->routes[i];
        if (!match_path(rt, path, NULL))
            continue;
        path_seen = true;
        bool via_head;
        if (!method_ok(rt, method, &via_head)) {
            if (allow && allow_len) {
                allow_add(allow, allow_len, rt->method);
                if (strcmp(rt->method, "GET") == 0)
                    allow_add(allow, allow_len, "HEAD");
            }
            continue;
        }
        /* Prefer an exact method over the HEAD->GET fallback, then specificity. */
        if (!best || (best_via_head && !via_head) ||
            (best_via_head == via_head && rt->specificity > best->specificity)) {
            best = rt;
            best_via_head = via_head;
        }
    }
    if (best) {
        memset(m, 0, sizeof *m);
        match_path(best, path, m);
        m->fn = best->fn;
        m->ctx = best->ctx;
        m->pattern = best->pattern;
        return HTTP_ROUTE_FOUND;
    }
    return path_seen ? HTTP_ROUTE_BAD_METHOD : HTTP_ROUTE_NOT_FOUND;
}
