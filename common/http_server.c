/*
 * http_server.c — server lifecycle: configuration, listening sockets (one per I/O thread,
 * SO_REUSEPORT on the same address), the I/O threads and their loops, cross-thread posts,
 * graceful stop, statistics and the observer.
 *
 * Threads: http_server_new/route/start/stop/free run on the caller's (main) thread. Each
 * loop is fully initialised by http_server_start before its thread starts and torn down
 * after the thread was joined, so no uv object is ever touched by two threads at once.
 * The only shared state of a loop is its post queue and stop request, under loop->mu;
 * uv_async_send is called with mu held so it never races with the async handle's close.
 *
 * Stop sequence on each loop (after the main thread's request arrives via the async):
 * close the listener; close idle connections; WebSockets get close 1001; connections
 * with a request in flight answer it with "Connection: close"; after grace_ms whatever
 * is left is closed. When no connection is left and no request is in flight (or grace
 * is over) the loop closes its handles and uv_run returns once thread-pool work still
 * running has completed.
 */
#include "http_conn_int.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "ws_handshake.h"

#define LISTEN_BACKLOG 1024

void http_limits_defaults(struct http_limits *lim)
{
    if (!lim->max_request_line)
        lim->max_request_line = 8 * 1024;
    if (!lim->max_header_bytes)
        lim->max_header_bytes = 16 * 1024;
    if (!lim->max_headers)
        lim->max_headers = 64;
    if (!lim->max_body)
        lim->max_body = 1024 * 1024;
    if (!lim->request_timeout_ms)
        lim->request_timeout_ms = 10000;
    if (!lim->idle_timeout_ms)
        lim->idle_timeout_ms = 60000;
    if (!lim->max_output_queue)
        lim->max_output_queue = 4 * 1024 * 1024;
    if (!lim->ws_max_frame)
        lim->ws_max_frame = 1024 * 1024;
    if (!lim->ws_max_message)
        lim->ws_max_message = 1024 * 1024;
    if (!lim->ws_ping_interval_ms)
        lim->ws_ping_interval_ms = 30000;
}

static char *dup_or_null(const char *s, bool *fail)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *fail = true;
    return d;
}

enum parley_err http_server_new(const struct http_server_config *cfg, struct http_server **out)
{
    if (!cfg || !out)
        return PARLEY_ERR_INVAL;
    if ((cfg->tls_cert_file == NULL) != (cfg->tls_key_file == NULL))
        return PARLEY_ERR_INVAL;
    enum parley_err rc = PARLEY_ERR_NOMEM;
    struct http_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return PARLEY_ERR_NOMEM;
    srv->cfg = *cfg;
    bool fail = false;
    srv->host = dup_or_null(cfg->host ? cfg->host : "127.0.0.1", &fail);
    srv->cert_file = dup_or_null(cfg->tls_cert_file, &fail);
    srv->key_file = dup_or_null(cfg->tls_key_file, &fail);
    srv->cfg.host = srv->host;
    srv->cfg.tls_cert_file = srv->cert_file;
    srv->cfg.tls_key_file = srv->key_file;
    http_limits_defaults(&srv->cfg.limits);
    atomic_init(&srv->connections_open, 0);
    atomic_init(&srv->connections_total, 0);
    atomic_init(&srv->websockets_open, 0);
    atomic_init(&srv->requests_total, 0);
    atomic_init(&srv->protocol_errors, 0);
    unsigned n = cfg->threads;
    if (n == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (unsigned)cores : 1;
    }
    if (n > 256)
        n = 256;
    srv->n_loops = n;
    if (fail)
        goto out;
    srv->loops = calloc(n, sizeof *srv->loops);
    if (!srv->loops)
        goto out;
    for (unsigned i = 0; i < n; i++)
        srv->loops[i].listen_fd = -1;
    if ((rc = http_router_new(&srv->router)))
        goto out;
    if (srv->cert_file && (rc = tls_server_new(srv->cert_file, srv->key_file, &srv->tls)))
        goto out;
    /* The first SHA-1 through OpenSSL initialises its library and default provider:
     * ~2 MB of code faulted in and ~0.2 MB of tables. Pay that here, at start-up, rather
     * than in the middle of the first WebSocket upgrade (where it also showed up as
     * ~200 bytes per connection in the 10,000-connection idle benchmark, issue #5). */
    char accept[WS_HANDSHAKE_ACCEPT_LEN + 1];
    ws_handshake_accept("dGhlIHNhbXBsZSBub25jZQ==", accept);
    *out = srv;
    return PARLEY_OK;
out:
    http_server_free(srv);
    return rc;
}

enum parley_err http_server_route(struct http_server *srv, const char *method,
                                  const char *pattern, http_handler_fn fn, void *ctx)
{
    if (!srv || srv->state != 0)
        return PARLEY_ERR_INVAL;
    return http_router_add(srv->router, method, pattern, fn, ctx);
}

/* --------------------------------------------------------------- loops */

static void on_async(uv_async_t *a);

static void on_check(uv_check_t *h)
{
    http_loop_pass(h->data);
}

static void on_sweep(uv_timer_t *t)
{
    http_loop_sweep(t->data);
}

static void on_grace(uv_timer_t *t)
{
    struct http_loop *l = t->data;
    l->grace_over = true;
    http_loop_stop_conns(l, true);
    http_loop_pass(l);
}

static void on_connection(uv_stream_t *s, int status)
{
    struct http_loop *l = s->data;
    if (status < 0 || l->stopping)
        return;
    http_conn_accept(l);
}

enum parley_err http_loop_init(struct http_loop *l, struct http_server *srv, unsigned index)
{
    l->srv = srv;
    l->index = index;
    l->rbuf = malloc(HTTP_READ_BUF_SIZE);
    l->tbuf = srv->tls ? malloc(HTTP_TLS_BUF_SIZE) : NULL;
    if (!l->rbuf || (srv->tls && !l->tbuf))
        goto nomem;
    if (ws_loop_init(l))
        goto nomem;
    if (uv_loop_init(&l->uv))
        goto nomem;
    if (!l->mu_live && uv_mutex_init(&l->mu)) {
        uv_loop_close(&l->uv);
        goto nomem;
    }
    l->mu_live = true;
    /* These cannot fail on an initialised loop (they only fill structs / register). */
    (void)uv_async_init(&l->uv, &l->async, on_async);
    l->async.data = l;
    (void)uv_check_init(&l->uv, &l->check);
    l->check.data = l;
    (void)uv_check_start(&l->check, on_check);
    (void)uv_idle_init(&l->uv, &l->idle);
    l->idle.data = l;
    (void)uv_timer_init(&l->uv, &l->sweep);
    l->sweep.data = l;
    (void)uv_timer_init(&l->uv, &l->grace);
    l->grace.data = l;
    const struct http_limits *lim = &srv->cfg.limits;
    uint32_t m = lim->request_timeout_ms;
    if (lim->idle_timeout_ms < m)
        m = lim->idle_timeout_ms;
    if (lim->ws_ping_interval_ms && lim->ws_ping_interval_ms < m)
        m = lim->ws_ping_interval_ms;
    m /= 4;
    l->sweep_ms = m < 10 ? 10 : m > 1000 ? 1000 : m;
    (void)uv_timer_start(&l->sweep, on_sweep, l->sweep_ms, l->sweep_ms);
    l->uv_ready = true;
    return PARLEY_OK;
nomem:
    ws_loop_cleanup(l);
    free(l->rbuf);
    free(l->tbuf);
    l->rbuf = l->tbuf = NULL;
    while (l->n_out_spare)
        buf_cleanup(&l->out_spare[--l->n_out_spare]);
    return PARLEY_ERR_NOMEM;
}

/* Last act of a loop: refuse posts, run the ones already queued, close the handles. */
static void loop_finish(struct http_loop *l)
{
    if (l->finished)
        return;
    l->finished = true;
    uv_mutex_lock(&l->mu);
    l->post_closed = true;
    struct http_post *p = l->post_head;
    l->post_head = l->post_tail = NULL;
    uv_mutex_unlock(&l->mu);
    while (p) {
        struct http_post *next = p->next;
        p->fn(p->arg);
        free(p);
        p = next;
    }
    if (l->listener_open) {
        uv_close((uv_handle_t *)&l->listener, NULL);
        l->listener_open = false;
    }
    uv_close((uv_handle_t *)&l->async, NULL);
    uv_close((uv_handle_t *)&l->check, NULL);
    uv_close((uv_handle_t *)&l->idle, NULL);
    uv_close((uv_handle_t *)&l->sweep, NULL);
    uv_close((uv_handle_t *)&l->grace, NULL);
}

void http_loop_stop_check(struct http_loop *l)
{
    if (l->finished || !l->stopping)
        return;
    if (l->n_conns == 0 && (l->n_reqs == 0 || l->grace_over))
        loop_finish(l);
}

static void begin_stop(struct http_loop *l, uint32_t grace_ms)
{
    l->stopping = true;
    if (l->listener_open) {
        uv_close((uv_handle_t *)&l->listener, NULL);
        l->listener_open = false;
    }
    http_loop_stop_conns(l, false);
    (void)uv_timer_start(&l->grace, on_grace, grace_ms, 0);
    http_loop_pass(l);
}

static void on_async(uv_async_t *a)
{
    struct http_loop *l = a->data;
    uv_mutex_lock(&l->mu);
    struct http_post *p = l->post_head;
    l->post_head = l->post_tail = NULL;
    bool stop = l->stop_requested;
    uint32_t grace = l->grace_ms;
    uv_mutex_unlock(&l->mu);
    while (p) {
        struct http_post *next = p->next;
        p->fn(p->arg);
        free(p);
        p = next;
    }
    if (stop && !l->stopping)
        begin_stop(l, grace);
}

void http_loop_cleanup(struct http_loop *l)
{
    if (l->listen_fd >= 0) /* never handed to libuv */
        close(l->listen_fd);
    l->listen_fd = -1;
    if (!l->uv_ready)
        return;
    if (!l->finished) {
        /* Never ran (or start failed): close everything from this thread. */
        for (struct http_conn *c = l->conns; c; c = c->next)
            http_conn_close(c);
        http_loop_pass(l);
        loop_finish(l);
    }
    (void)uv_run(&l->uv, UV_RUN_DEFAULT);
    http_loop_free_reqs(l);
    ws_loop_cleanup(l);
    if (uv_loop_close(&l->uv) != 0)
        log_event(LOG_WARN, "http_loop_leak", "detail", "uv loop still busy at close", NULL);
    free(l->rbuf);
    free(l->tbuf);
    l->rbuf = l->tbuf = NULL;
    while (l->n_out_spare)
        buf_cleanup(&l->out_spare[--l->n_out_spare]);
    l->uv_ready = false;
}

/* The loop whose thread this is; NULL on every other thread. */
static _Thread_local const struct http_loop *current_loop;

static void loop_thread(void *arg)
{
    struct http_loop *l = arg;
    current_loop = l;
    (void)uv_run(&l->uv, UV_RUN_DEFAULT);
    current_loop = NULL;
}

bool http_loop_is_current(const struct http_loop *loop)
{
    return loop && loop == current_loop;
}

/* ------------------------------------------------------------- sockets */

static enum parley_err resolve(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return PARLEY_OK;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return PARLEY_OK;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return PARLEY_ERR_INVAL;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    freeaddrinfo(res);
    return PARLEY_OK;
}

static int listen_socket(const struct sockaddr_storage *ss, uint16_t *port)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    socklen_t sl = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                             : sizeof(struct sockaddr_in6);
    struct sockaddr_storage a = *ss;
    if (a.ss_family == AF_INET)
        ((struct sockaddr_in *)&a)->sin_port = htons(*port);
    else
        ((struct sockaddr_in6 *)&a)->sin6_port = htons(*port);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) ||
        bind(fd, (struct sockaddr *)&a, sl)) {
        close(fd);
        return -1;
    }
    if (*port == 0) {
        struct sockaddr_storage got;
        socklen_t gl = sizeof got;
        if (getsockname(fd, (struct sockaddr *)&got, &gl)) {
            close(fd);
            return -1;
        }
        *port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                               : ((struct sockaddr_in6 *)&got)->sin6_port);
    }
    return fd;
}

enum parley_err http_server_start(struct http_server *srv)
{
    if (!srv || srv->state != 0)
        return PARLEY_ERR_INVAL;
    struct sockaddr_storage ss;
    enum parley_err rc = resolve(srv->host, srv->cfg.port, &ss);
    if (rc)
        return rc;
    uint16_t port = srv->cfg.port;
    for (unsigned i = 0; i < srv->n_loops; i++) {
        struct http_loop *l = &srv->loops[i];
        l->listen_fd = listen_socket(&ss, &port);
        if (l->listen_fd < 0) {
            log_event(LOG_ERROR, "http_listen_failed", "host", srv->host, "error",
                      strerror(errno), NULL);
            rc = PARLEY_ERR_IO;
            goto fail;
        }
        if ((rc = http_loop_init(l, srv, i)))
            goto fail;
        rc = PARLEY_ERR_IO;
        if (uv_tcp_init(&l->uv, &l->listener))
            goto fail;
        l->listener.data = l;
        if (uv_tcp_open(&l->listener, l->listen_fd)) {
            uv_close((uv_handle_t *)&l->listener, NULL);
            goto fail;
        }
        l->listener_open = true;
        l->listen_fd = -1; /* libuv owns it now */
        if (uv_listen((uv_stream_t *)&l->listener, LISTEN_BACKLOG, on_connection))
            goto fail;
    }
    srv->port = port;
    for (unsigned i = 0; i < srv->n_loops; i++) {
        struct http_loop *l = &srv->loops[i];
        if (uv_thread_create(&l->thread, loop_thread, l)) {
            rc = PARLEY_ERR_IO;
            srv->state = 1;
            http_server_stop(srv, 0);
            return rc;
        }
        l->thread_started = true;
    }
    srv->state = 1;
    return PARLEY_OK;
fail:
    for (unsigned i = 0; i < srv->n_loops; i++)
        http_loop_cleanup(&srv->loops[i]);
    return rc;
}

uint16_t http_server_port(const struct http_server *srv)
{
    return srv ? srv->port : 0;
}

void http_server_stop(struct http_server *srv, uint32_t grace_ms)
{
    if (!srv || srv->state != 1)
        return;
    for (unsigned i = 0; i < srv->n_loops; i++) {
        struct http_loop *l = &srv->loops[i];
        if (!l->thread_started)
            continue;
        uv_mutex_lock(&l->mu);
        l->stop_requested = true;
        l->grace_ms = grace_ms;
        if (!l->post_closed)
            uv_async_send(&l->async);
        uv_mutex_unlock(&l->mu);
    }
    for (unsigned i = 0; i < srv->n_loops; i++) {
        struct http_loop *l = &srv->loops[i];
        if (l->thread_started) {
            uv_thread_join(&l->thread);
            l->thread_started = false;
        }
    }
    for (unsigned i = 0; i < srv->n_loops; i++)
        http_loop_cleanup(&srv->loops[i]);
    srv->state = 2;
}

void http_server_free(struct http_server *srv)
{
    if (!srv)
        return;
    if (srv->state == 1)
        http_server_stop(srv, 0);
    if (srv->loops) {
        for (unsigned i = 0; i < srv->n_loops; i++) {
            http_loop_cleanup(&srv->loops[i]);
            /* Posts after the stop find post_closed under it and are refused. */
            if (srv->loops[i].mu_live)
                uv_mutex_destroy(&srv->loops[i].mu);
        }
    }
    free(srv->loops);
    http_router_free(srv->router);
    tls_server_free(srv->tls);
    free(srv->host);
    free(srv->cert_file);
    free(srv->key_file);
    free(srv);
}

/* --------------------------------------------------------- cross-thread */

enum parley_err http_loop_post(struct http_loop *loop, http_loop_fn fn, void *arg)
{
    if (!loop || !fn)
        return PARLEY_ERR_INVAL;
    struct http_post *p = malloc(sizeof *p);
    if (!p)
        return PARLEY_ERR_NOMEM;
    p->fn = fn;
    p->arg = arg;
    p->next = NULL;
    uv_mutex_lock(&loop->mu);
    if (loop->post_closed) {
        uv_mutex_unlock(&loop->mu);
        free(p);
        return PARLEY_ERR_CLOSED;
    }
    if (loop->post_tail)
        loop->post_tail->next = p;
    else
        loop->post_head = p;
    loop->post_tail = p;
    uv_async_send(&loop->async);
    uv_mutex_unlock(&loop->mu);
    return PARLEY_OK;
}

unsigned http_loop_index(const struct http_loop *loop)
{
    return loop ? loop->index : 0;
}

uv_loop_t *http_loop_uv(struct http_loop *loop)
{
    return loop ? &loop->uv : NULL;
}

/* ---------------------------------------------------------- thread pool */

struct work_job {
    uv_work_t w;
    struct conn_req *r;
    http_work_fn work;
    http_done_fn done;
    void *arg;
};

static void work_cb(uv_work_t *w)
{
    struct work_job *j = w->data;
    if (j->work)
        j->work(j->arg);
}

static void after_work_cb(uv_work_t *w, int status)
{
    (void)status; /* never cancelled: the job always completes */
    struct work_job *j = w->data;
    struct conn_req *r = j->r;
    http_done_fn done = j->done;
    void *arg = j->arg;
    free(j);
    done(&r->pub, arg);
}

enum parley_err http_request_work(struct http_request *req, http_work_fn work,
                                  http_done_fn done, void *arg)
{
    if (!req || !done)
        return PARLEY_ERR_INVAL;
    struct conn_req *r = (struct conn_req *)req;
    struct work_job *j = malloc(sizeof *j);
    if (!j)
        return PARLEY_ERR_NOMEM;
    j->w.data = j;
    j->r = r;
    j->work = work;
    j->done = done;
    j->arg = arg;
    if (uv_queue_work(&r->loop->uv, &j->w, work_cb, after_work_cb)) {
        free(j);
        return PARLEY_ERR_IO;
    }
    return PARLEY_OK;
}

/* ---------------------------------------------------------- observation */

void http_server_stats(const struct http_server *srv, struct http_server_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!srv)
        return;
    struct http_server *s = (struct http_server *)srv; /* atomics: loads only */
    out->connections_open = atomic_load(&s->connections_open);
    out->connections_total = atomic_load(&s->connections_total);
    out->websockets_open = atomic_load(&s->websockets_open);
    out->requests_total = atomic_load(&s->requests_total);
    out->protocol_errors = atomic_load(&s->protocol_errors);
}

void http_server_set_observer(struct http_server *srv, http_observer_fn fn, void *ctx)
{
    if (!srv)
        return;
    /* Set before http_server_start: the I/O threads read these without locking (thread
     * creation orders the writes before any read). */
    srv->observer_ctx = ctx;
    srv->observer = fn;
}
