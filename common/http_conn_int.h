/*
 * http_conn_int.h — internals shared by the server-side transport files:
 * http_server.c (loops, threads, lifecycle), http_conn.c (connection state machine,
 * HTTP parsing, responses, output batching), ws_server.c (WebSocket frames).
 * Not for use outside these files (and the transport's tests / fuzz target).
 *
 * Ownership and threads: a struct http_loop and everything hanging off it (connections,
 * requests, WebSockets) belong to that loop's thread; only the post queue and the stop
 * request fields are shared, under loop->mu.
 *
 * Connection life: accepted -> [HTTP: receive request -> dispatched (active) -> answered
 * -> ...] -> optionally upgraded to WebSocket -> closing -> reaped (uv_close) -> freed in
 * the close callback. A connection is never freed from inside one of its own callbacks:
 * http_conn_close() only marks it and puts it on the loop's dirty list; the end-of-pass
 * hook (uv_check) reaps it. A request that is dispatched but unanswered when its
 * connection goes away is orphaned (conn = NULL) and freed when the handler answers.
 *
 * Output batching: everything queued for a connection during one loop pass goes into
 * conn->out (plaintext in conn->pout first when TLS is on, encrypted once at flush); the
 * uv_check hook of the loop flushes each dirty connection with one uv_write. A uv_idle
 * handle is started while the dirty list is non-empty so the loop never blocks in poll
 * with unflushed output.
 */
#ifndef PARLEY_HTTP_CONN_INT_H
#define PARLEY_HTTP_CONN_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <http_parser.h>
#include <uv.h>

#include "buf.h"
#include "http_router.h"
#include "http_server.h"
#include "tls_server.h"

#define HTTP_READ_BUF_SIZE (64 * 1024)  /* per-loop read buffer (shared by connections) */
#define HTTP_OUT_SPARES 32              /* written output buffers kept for reuse ... */
#define HTTP_OUT_SPARE_MAX (64 * 1024)  /* ... unless larger than this */
#define HTTP_TLS_BUF_SIZE (16 * 1024)   /* per-loop TLS plaintext scratch */
#define HTTP_IN_HIGH (64 * 1024)        /* stop reading when this much input is queued */
#define WS_RX_POOL_MAX 64               /* idle WebSocket receive states kept per loop */
#define WS_CLOSE_WAIT_MS 3000           /* wait this long for the peer's close frame */

struct http_post {
    http_loop_fn fn;
    void *arg;
    struct http_post *next;
};

struct http_server {
    struct http_server_config cfg; /* strings point to the owned copies below */
    char *host, *cert_file, *key_file;
    struct http_router *router;
    struct tls_server *tls;
    unsigned n_loops;
    struct http_loop *loops;
    uint16_t port;
    int state; /* 0 created, 1 started, 2 stopped */
    http_observer_fn observer;
    void *observer_ctx;
    atomic_uint_fast64_t connections_open;
    atomic_uint_fast64_t connections_total;
    atomic_uint_fast64_t websockets_open;
    atomic_uint_fast64_t requests_total;
    atomic_uint_fast64_t protocol_errors;
};

struct ws_rx; /* ws_server.c: a WebSocket's partial frame/message receive state */

struct http_loop {
    struct http_server *srv;
    unsigned index;
    uv_loop_t uv;
    uv_thread_t thread;
    bool thread_started;
    bool uv_ready;                /* uv loop and handles initialised */
    int listen_fd;                /* -1 when none */
    uv_tcp_t listener;
    bool listener_open;
    uv_async_t async;
    uv_check_t check;
    uv_idle_t idle;
    uv_timer_t sweep;
    uv_timer_t grace;
    uv_mutex_t mu; /* lives until http_server_free: other threads may still post */
    bool mu_live;
    /* under mu */
    struct http_post *post_head, *post_tail;
    bool post_closed;
    bool stop_requested;
    uint32_t grace_ms;
    /* loop thread only */
    bool stopping, grace_over, finished;
    struct http_conn *conns;      /* every live connection (doubly linked) */
    size_t n_conns;
    struct http_conn *dirty;      /* singly linked via dirty_next */
    struct conn_req *reqs;        /* dispatched, unanswered requests (doubly linked) */
    size_t n_reqs;
    uint32_t sweep_ms;
    uint8_t *rbuf;                /* HTTP_READ_BUF_SIZE */
    struct buf out_spare[HTTP_OUT_SPARES]; /* memory of outputs written in full (http_conn.c) */
    unsigned n_out_spare;
    uint8_t *tbuf;                /* HTTP_TLS_BUF_SIZE */
    /* WebSocket (ws_server.c). Frames are read by ws_frame.c: receive states (struct
     * ws_rx, about 200 B) are pooled here while no connection has a partial frame or
     * message, and whole frames are unmasked into ws_scratch (allocated on first use)
     * and delivered from there. */
    uint8_t *ws_scratch;
    struct ws_rx *ws_rx_pool[WS_RX_POOL_MAX];
    size_t ws_rx_pool_n;
    struct buf *capture;          /* socketless mode (fuzz/tests): output goes here */
};

enum deadline_kind {
    DL_NONE = 0,
    DL_REQUEST, /* a request must complete: 408 if bytes came, silent close otherwise */
    DL_IDLE,    /* keep-alive idle: silent close */
    DL_HARD,    /* closing and waiting for output/peer: hard close */
};
_Static_assert(DL_HARD < 4, "http_conn.deadline_kind is a 2-bit field");

/* The WebSocket state of an upgraded connection, embedded in its http_conn (the handle
 * applications get is &conn->ws). Receive state lives in a per-loop pool (struct ws_rx,
 * ws_server.c) and is attached only while a frame or fragmented message is partly in. */
struct ws_conn {
    const struct ws_callbacks *cb; /* borrowed: the caller's (static) table */
    void *user;
    ws_tick_fn tick;
    struct ws_rx *rx;              /* only while a frame or message is partially in */
    uint64_t quiet_since_ms;       /* last receive, or the ping sent after it (uv_now) */
    uint16_t close_code;
    bool ping_sent, close_sent, close_rcvd, failed;
};

/* HTTP-phase state: unused once a connection is upgraded, so it shares its memory with
 * the WebSocket state (issue #5: an idle stream connection must stay under 1 KiB). */
struct conn_http {
    http_parser parser;
    struct conn_req *req;          /* being received */
    struct conn_req *active;       /* dispatched, not yet answered */
};

struct http_conn {
    uv_tcp_t tcp;                  /* tcp.data == this */
    struct http_loop *loop;
    struct http_conn *prev, *next; /* loop->conns */
    struct http_conn *dirty_next;
    union {
        struct conn_http h;        /* while !upgraded */
        struct ws_conn ws;         /* once upgraded */
    };
    struct tls_conn *tls;
    struct buf in;                 /* received but not yet parsed */
    struct buf out;                /* wire bytes queued this pass */
    struct buf pout;               /* TLS: plaintext queued this pass */
    struct conn_write *w;          /* the uv_write in flight (http_conn.c), or NULL: an
                                      idle connection keeps no write request */
    uint64_t deadline;             /* uv_now() ms */
    /* Flags (loop thread only), packed: every byte counts 10,000 times over. */
    unsigned deadline_kind : 2;    /* enum deadline_kind */
    unsigned err : 3;              /* pending transport error (enum tx_err, http_conn.c) */
    bool upgraded : 1;             /* ws is live (set by the upgrade, kept until freed) */
    bool in_dirty : 1, closing : 1, reaped : 1;
    bool close_after_flush : 1;    /* close once out/pout/w are empty */
    bool read_paused : 1, read_eof : 1, in_parse : 1, need_resume : 1;
    bool http_done : 1;            /* no more HTTP requests on this connection */
    bool socketless : 1;           /* fuzz/tests: no uv handle */
    bool lingering : 1;            /* output done, FIN sent, draining input until EOF */
};

/* The connection a WebSocket is embedded in. */
static inline struct http_conn *ws_conn_of(const struct ws_conn *ws)
{
    return (struct http_conn *)((char *)ws - offsetof(struct http_conn, ws));
}

enum hdr_state { HS_URL = 0, HS_FIELD, HS_VALUE };

struct conn_req {
    struct http_request pub;       /* first: the handler's pointer is this */
    struct http_conn *conn;        /* NULL once the connection is gone */
    struct http_loop *loop;
    struct conn_req *prev, *next;  /* loop->reqs while dispatched */
    struct buf head;               /* url\0 name\0 value\0 ... then path\0 query\0 params */
    struct buf body;
    struct http_header *hdrs;
    size_t url_len, n_hdrs, hdr_bytes;
    uint8_t hstate;
    bool complete, keep_alive, is_head, upgrade, dispatched, listed;
    uint64_t t_start_us;
};

/* ---- http_conn.c ---- */
/* Accept a pending connection on l's listener (libuv connection callback body). */
void http_conn_accept(struct http_loop *l);
/* End-of-pass hook: resume, flush and reap dirty connections. */
void http_loop_pass(struct http_loop *l);
/* Timer: timeouts and WebSocket pings. */
void http_loop_sweep(struct http_loop *l);
/* Graceful stop began on l / grace expired: close what can be closed. */
void http_loop_stop_conns(struct http_loop *l, bool force);
void http_conn_mark_dirty(struct http_conn *c);
/* The buffer application bytes (plaintext) for c are appended to: out, or pout under
 * TLS; given the loop's spare memory when it has none. */
struct buf *http_conn_output(struct http_conn *c);
/* Queue application bytes (plaintext) for c. PARLEY_ERR_LIMIT past max_output_queue
 * (c is then closed), PARLEY_ERR_CLOSED when c is closing. */
PARLEY_WUR enum parley_err http_conn_queue(struct http_conn *c, const void *p, size_t n);
/* Bytes queued and not yet written. */
size_t http_conn_queued(const struct http_conn *c);
void http_conn_close(struct http_conn *c);
void http_conn_close_after_flush(struct http_conn *c);
/* Arm c's single timer-wheel slot: kind fires after ms (DL_NONE disarms). */
void http_conn_set_deadline(struct http_conn *c, enum deadline_kind kind, uint32_t ms);
/* The upgrade is taking c out of the HTTP phase: forget the active request (the caller
 * answers it: it stays alive, owned by the loop's list) and free any request being
 * received, so that c->h can be reused as c->ws. */
void http_conn_leave_http(struct http_conn *c);
/* Free requests still alive when l is torn down (handlers that never answered). */
void http_loop_free_reqs(struct http_loop *l);
/* Queue one formatted response (http_response.c); closes c if it does not fit. */
void http_conn_write_response(struct http_conn *c, int status, const char *ctype,
                              const void *body, size_t len, const char *extra, bool keep,
                              bool is_head);
/* Answer r (see http_respond); extra may be NULL. */
void http_req_answer(struct conn_req *r, int status, const char *content_type,
                     const void *body, size_t len, const char *extra);

/* ---- ws_server.c ---- */
/* Frame bytes received on an upgraded connection. */
void ws_feed(struct ws_conn *ws, const uint8_t *data, size_t len);
/* The connection is being reaped: call on_close and free ws. */
void ws_finish(struct ws_conn *ws);
/* Periodic: send pings, close dead peers. */
void ws_tick(struct ws_conn *ws, uint64_t now_ms);
/* Per-loop WebSocket state: the receive-state pool and the unmask scratch buffer (both
 * filled on demand); ws_loop_cleanup frees them and may be called twice. */
PARLEY_WUR enum parley_err ws_loop_init(struct http_loop *l);
void ws_loop_cleanup(struct http_loop *l);

/* ---- http_server.c ---- */
/* Initialise l's uv loop and handles (no listener). Loop thread-to-be, before it runs. */
PARLEY_WUR enum parley_err http_loop_init(struct http_loop *l, struct http_server *srv,
                                          unsigned index);
/* Close l's handles, run the loop until they are closed, release everything. */
void http_loop_cleanup(struct http_loop *l);
/* End of a pass while stopping: finish the loop once nothing is left. */
void http_loop_stop_check(struct http_loop *l);
/* Fill zero fields with defaults. */
void http_limits_defaults(struct http_limits *lim);

/* ---- socketless entry for the fuzz target and tests ----
 * Runs data through one connection with no socket on a private loop of a server built
 * from limits (zero fields = defaults) with these routes: GET / (200 "{}"),
 * POST /echo (echoes the body), GET /items/{id} (returns the id), GET /ws (WebSocket
 * upgrade; echoes messages). data is fed in pieces of at most chunk bytes (0 = all at
 * once); every byte the server would write is appended to out (limit errors in out are
 * ignored). Returns PARLEY_ERR_NOMEM only when the set-up failed. */
PARLEY_WUR enum parley_err http_conn_feed_socketless(const struct http_limits *limits,
                                                     const uint8_t *data, size_t len,
                                                     size_t chunk, struct buf *out);

#endif
