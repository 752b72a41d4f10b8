/*
 * http_server.h — the multi-threaded HTTP/1.1 + WebSocket server on libuv.
 *
 * Shape: N I/O threads, each with its own uv_loop and its own listening socket bound
 * with SO_REUSEPORT to the same address, so the kernel spreads connections over the
 * threads. A connection lives on one thread for its whole life. http-parser parses
 * requests; wslay frames WebSocket messages; OpenSSL (memory BIOs) adds TLS.
 *
 * Requests: for each complete request the server looks the (method, path) up in the
 * router and calls the handler on the connection's loop thread. The handler must answer
 * exactly once with http_respond*(), either at once or later from the same loop thread
 * (typically in the completion callback of http_request_work()). Pipelined requests are
 * answered in order: the next request on a connection is not dispatched until the
 * current one has been answered. Keep-alive per HTTP/1.1 rules.
 *
 * Limits (answered with an error and the connection closed, the server keeps serving):
 *   request line > limits.max_request_line  -> 414
 *   header block > limits.max_header_bytes or > limits.max_headers -> 431
 *   body > limits.max_body                   -> 413 (Content-Length checked up front,
 *                                               chunked bodies counted as they come)
 *   malformed syntax                         -> 400
 *   no complete request within limits.request_timeout_ms (slowloris) -> 408, closed
 *   idle keep-alive longer than limits.idle_timeout_ms -> closed
 * Every socket gets TCP_NODELAY. Output queued for a connection during one loop pass is
 * written with one write (uv_write of an iovec list) at the end of the pass.
 *
 * Threads: everything here runs on the owning loop thread, except http_server_new/
 * start/stop/free (main thread) and http_loop_post() (any thread).
 */
#ifndef PARLEY_HTTP_SERVER_H
#define PARLEY_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "parley/err.h"

struct http_server;
struct http_request;
struct ws_conn;
struct http_loop; /* one I/O thread */

struct http_limits {
    size_t max_request_line;   /* default 8 KiB */
    size_t max_header_bytes;   /* default 16 KiB, all headers together */
    size_t max_headers;        /* default 64 */
    size_t max_body;           /* default 1 MiB */
    uint32_t request_timeout_ms; /* default 10000: whole request must arrive in this */
    uint32_t idle_timeout_ms;    /* default 60000: keep-alive idle */
    size_t max_output_queue;     /* default 4 MiB per connection; past it: close */
    size_t ws_max_frame;         /* default 1 MiB */
    size_t ws_max_message;       /* default 1 MiB */
    uint32_t ws_ping_interval_ms;/* default 30000; 0 = never */
};

struct http_server_config {
    const char *host;           /* "127.0.0.1", "::1", "0.0.0.0" ... */
    uint16_t port;              /* 0 = pick a free port; read it with http_server_port */
    unsigned threads;           /* 0 = number of cores */
    const char *tls_cert_file;  /* both NULL = plain HTTP */
    const char *tls_key_file;
    struct http_limits limits;  /* zero fields take the defaults above */
};

/* One HTTP header as seen on the wire (name case preserved; compare case-insensitively). */
struct http_header {
    const char *name;
    const char *value;
};

/* The request as the handler sees it. All strings are NUL-terminated, owned by the
 * request and valid until it has been answered. */
struct http_request {
    const char *method;          /* "GET", "POST", ... */
    const char *path;            /* percent-decoded path, without the query */
    const char *query;           /* raw query string without '?', or NULL */
    const struct http_header *headers;
    size_t n_headers;
    const uint8_t *body;         /* NULL if none; NUL-terminated for convenience */
    size_t body_len;
    const char *params[4];       /* router captures for "{name}" segments, in order */
    size_t n_params;
    char remote_ip[46];          /* textual peer address (memory only; never stored) */
    const char *route;           /* the matched route pattern, for metrics/logs */
    struct http_loop *loop;      /* the thread that owns this request */
    void *user;                  /* free for the handler to use */
};

typedef void (*http_handler_fn)(struct http_request *req, void *ctx);

/* ---- lifecycle (main thread) ---- */

/* Create a server; nothing listens yet. Copies the config. */
PARLEY_WUR enum parley_err http_server_new(const struct http_server_config *cfg,
                                           struct http_server **out);
/* Register a route before http_server_start. pattern: "/v1/devices/{id}" — each {x}
 * segment matches one non-empty path segment and is captured into req->params.
 * method "*" matches any. A path that matches no route gets 404; a path that matches
 * with another method gets 405 with Allow. ctx is passed to the handler. */
PARLEY_WUR enum parley_err http_server_route(struct http_server *srv, const char *method,
                                             const char *pattern, http_handler_fn fn,
                                             void *ctx);
/* Bind and start the I/O threads. Returns once every thread listens. */
PARLEY_WUR enum parley_err http_server_start(struct http_server *srv);
/* The bound port (useful with port 0). */
uint16_t http_server_port(const struct http_server *srv);
/* Graceful stop: close listeners, let in-flight requests finish (up to grace_ms), close
 * the rest, join the threads. Safe to call once after start. */
void http_server_stop(struct http_server *srv, uint32_t grace_ms);
void http_server_free(struct http_server *srv);

/* ---- answering (loop thread) ---- */

/* Answer a request. extra_headers: NULL or "Name: value\r\n..." lines. body is copied.
 * After this call req must not be touched. If the client went away meanwhile the answer
 * is dropped silently (but req is still released). */
void http_respond(struct http_request *req, int status, const char *content_type,
                  const void *body, size_t len, const char *extra_headers);
/* Answer with a JSON body (compact text). */
void http_respond_json(struct http_request *req, int status, const char *json_text);
/* Answer {"error":{"code":code,"message":message}} with the given status. */
void http_respond_error(struct http_request *req, int status, const char *code,
                        const char *message);

/* Header lookup, case-insensitive; NULL if absent. */
const char *http_request_header(const struct http_request *req, const char *name);

/* Run work(arg) on libuv's thread pool, then done(req, arg) back on req's loop thread.
 * For SQLite, Argon2 and anything else that blocks. The request stays valid until it
 * is answered, even if the client disconnects (then the answer is dropped). */
typedef void (*http_work_fn)(void *arg);
typedef void (*http_done_fn)(struct http_request *req, void *arg);
PARLEY_WUR enum parley_err http_request_work(struct http_request *req, http_work_fn work,
                                             http_done_fn done, void *arg);

/* ---- WebSocket (loop thread) ---- */

struct ws_callbacks {
    /* A complete message (text or binary). data is valid only during the call. */
    void (*on_message)(struct ws_conn *ws, bool binary, const uint8_t *data, size_t len,
                       void *user);
    /* The connection is gone (close frame, error, timeout, server stop). Called once;
     * ws must not be used after it returns. */
    void (*on_close)(struct ws_conn *ws, uint16_t code, void *user);
};

/* Upgrade the connection of req (a GET with the Upgrade headers) to WebSocket: validates
 * the handshake, answers 101, and from then on frames go to cb. cb is borrowed, not
 * copied: it must outlive the connection (in practice a static const table); NULL means
 * no callbacks. Answers req (400 on a bad handshake, returning PARLEY_ERR_PROTO). On
 * success *out is the connection (part of the connection's own memory: valid until
 * on_close returns). */
PARLEY_WUR enum parley_err http_upgrade_websocket(struct http_request *req,
                                                  const struct ws_callbacks *cb, void *user,
                                                  struct ws_conn **out);
/* Queue a message; written at the end of this loop pass. PARLEY_ERR_LIMIT when the
 * output queue is full (the connection is then closed), PARLEY_ERR_CLOSED after close. */
PARLEY_WUR enum parley_err ws_send(struct ws_conn *ws, bool binary, const void *data,
                                   size_t len);
/* Start a close handshake with a code (1000 normal, 1002 protocol, 1008 policy,
 * 1009 too big, 1011 internal) and a short reason. on_close follows. */
void ws_close(struct ws_conn *ws, uint16_t code, const char *reason);
struct http_loop *ws_loop(const struct ws_conn *ws);
/* Periodic work for an open WebSocket without a timer of its own: fn(ws, now_ms, user)
 * is called from the loop's timeout sweep (every min(request, idle, ping timeouts)/4,
 * clamped to 10..1000 ms) with uv_now of the loop, until the connection starts closing.
 * NULL stops it. Loop thread. */
typedef void (*ws_tick_fn)(struct ws_conn *ws, uint64_t now_ms, void *user);
void ws_set_tick(struct ws_conn *ws, ws_tick_fn fn);

/* ---- cross-thread ---- */

/* Run fn(arg) on loop's thread soon (uv_async; coalesced; FIFO). Callable from any
 * thread. Fails with PARLEY_ERR_CLOSED once the loop is stopping. */
typedef void (*http_loop_fn)(void *arg);
PARLEY_WUR enum parley_err http_loop_post(struct http_loop *loop, http_loop_fn fn, void *arg);
/* Whether the calling thread is loop's own I/O thread. */
bool http_loop_is_current(const struct http_loop *loop);
/* Index of the I/O thread (0..threads-1), for sharding per-thread state. */
unsigned http_loop_index(const struct http_loop *loop);
uv_loop_t *http_loop_uv(struct http_loop *loop);

/* ---- observation (any thread; counters are atomic) ---- */

struct http_server_stats {
    uint64_t connections_open;
    uint64_t connections_total;
    uint64_t websockets_open;
    uint64_t requests_total;
    uint64_t protocol_errors; /* 4xx answered by the transport itself */
};
void http_server_stats(const struct http_server *srv, struct http_server_stats *out);

/* Called after every answered request (on the loop thread) with its route pattern
 * (or NULL when no route matched), status and latency; used for metrics and logs. */
typedef void (*http_observer_fn)(const struct http_request *req, int status,
                                 uint64_t latency_us, void *ctx);
void http_server_set_observer(struct http_server *srv, http_observer_fn fn, void *ctx);

#endif
