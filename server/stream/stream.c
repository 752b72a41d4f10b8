/*
 * stream.c — GET /v1/stream: authenticate (bearer token, before the upgrade), look the
 * user's name up, upgrade to WebSocket, register the device in the hub, start the
 * drain; then decode each binary message as a ClientFrame (frame.c) and answer every
 * request with a ServerFrame carrying its id: Ping -> Pong at once; Send and Ack go to
 * the writer (writer.c), whose results come back through stream_post.
 *
 * A bad frame (text, undecodable, id 0) is answered with Error{id 0, "invalid_frame"};
 * after STREAM_BAD_FRAMES_MAX of them the connection is closed with 1002. Nothing a
 * client sends can stop the server serving the others.
 *
 * Ending a session ends its stream (P27, P5): the handlers that revoke a device, log out
 * or delete an account call stream_disconnect_device/_user once the store committed,
 * and each connection also looks its session up again every STREAM_REVALIDATE_MS on
 * the thread pool, which catches what another process (parleyd admin) deleted and
 * sessions that expired. Either way the connection is closed with 4001 "revoked".
 *
 * Logs name devices only by log_pseudonym and never carry message content (P24).
 */
#include "stream.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/auth.h"
#include "api/respond.h"
#include "app.h"
#include "clock.h"
#include "config.h"
#include "frame.h"
#include "http_server.h"
#include "hub.h"
#include "log.h"
#include "ratelimit.h"
#include "seal.h"
#include "str.h"
#include "stream_int.h"
#include "writer.h"

/* ------------------------------------------------------------ connections */

void sconn_ref(struct sconn *c)
{
    atomic_fetch_add(&c->refs, 1);
}

void sconn_unref(struct sconn *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1)
        free(c);
}

/* Loop thread, c->ws set: the session behind c ended; why is "request" (a handler
 * called stream_disconnect_*) or "session_check" (the periodic lookup found it gone). */
static void close_revoked(struct sconn *c, const char *why)
{
    char pseudo[17];
    log_pseudonym(c->device_id, pseudo);
    log_event(LOG_INFO, "stream_revoked", "device", pseudo, "by", why, NULL);
    ws_close(c->ws, 4001, "revoked");
}

static void on_post(void *arg)
{
    struct outmsg *m = arg;
    struct sconn *c = m->c;
    if (c->ws) {
        switch (m->kind) {
        case OUT_REPLY:
            (void)stream_send_now(c, m);
            break;
        case OUT_PUSH:
            m->c = NULL;
            deliver_push(c, m); /* takes m */
            m = NULL;
            break;
        case OUT_CLOSE:
            ws_close(c->ws, 4000, "replaced by a newer connection of this device");
            break;
        case OUT_REVOKE:
            close_revoked(c, "request");
            break;
        }
    }
    outmsg_free(m);
    sconn_unref(c);
}

/* A list of outmsgs (through m->next) for one loop, in order. */
static void on_post_list(void *arg)
{
    struct outmsg *m = arg;
    while (m) {
        struct outmsg *next = m->next; /* on_post gives m away (deliver_push may relink it) */
        on_post(m);
        m = next;
    }
}

/* What stream_post gathers between stream_post_gather_begin and _end, per loop. */
#define GATHER_LOOPS 16
struct post_gather {
    struct http_loop *loop[GATHER_LOOPS];
    struct outmsg *head[GATHER_LOOPS], *tail[GATHER_LOOPS];
    size_t n;
};
static _Thread_local struct post_gather *gathering;
static _Thread_local struct post_gather gather_state;

void stream_post_gather_begin(void)
{
    gather_state.n = 0;
    gathering = &gather_state;
}

static void post_list(struct http_loop *loop, struct outmsg *head)
{
    if (http_loop_post(loop, on_post_list, head) == PARLEY_OK)
        return;
    while (head) { /* the loop is stopping: nobody will send these */
        struct outmsg *next = head->next;
        sconn_unref(head->c);
        outmsg_free(head);
        head = next;
    }
}

void stream_post_gather_end(void)
{
    struct post_gather *g = gathering;
    gathering = NULL;
    for (size_t i = 0; g && i < g->n; i++)
        post_list(g->loop[i], g->head[i]);
}

/* Add m (its c already referenced) to the gathered list of its loop; false when the
 * gather has no room for another loop. */
static bool gather_add(struct post_gather *g, struct outmsg *m)
{
    size_t i = 0;
    while (i < g->n && g->loop[i] != m->c->loop)
        i++;
    if (i == g->n) {
        if (g->n == GATHER_LOOPS)
            return false;
        g->loop[g->n] = m->c->loop;
        g->head[g->n] = g->tail[g->n] = NULL;
        g->n++;
    }
    m->next = NULL;
    if (g->tail[i])
        g->tail[i]->next = m;
    else
        g->head[i] = m;
    g->tail[i] = m;
    return true;
}

/* A reply for a connection of this thread's loop, outside a gather, goes out at once. */
static bool send_at_once(struct sconn *c, struct outmsg *m)
{
    if (m->kind != OUT_REPLY || gathering || !http_loop_is_current(c->loop))
        return false;
    (void)stream_send_now(c, m);
    outmsg_free(m);
    return true;
}

/* m->c takes a reference the caller holds. */
static void post_with_ref(struct sconn *c, struct outmsg *m)
{
    m->c = c;
    if (gathering && gather_add(gathering, m))
        return;
    m->next = NULL;
    post_list(c->loop, m);
}

void stream_post(struct sconn *c, struct outmsg *m)
{
    if (send_at_once(c, m))
        return;
    sconn_ref(c);
    post_with_ref(c, m);
}

void stream_post_ref(struct sconn *c, struct outmsg *m)
{
    if (send_at_once(c, m)) {
        sconn_unref(c);
        return;
    }
    post_with_ref(c, m);
}

static bool send_bytes(struct sconn *c, const uint8_t *data, size_t len)
{
    return c->ws && ws_send(c->ws, true, data, len) == PARLEY_OK;
}

bool stream_reply(struct sconn *c, const Parley__Stream__ServerFrame *f)
{
    if (!gathering && http_loop_is_current(c->loop)) {
        uint8_t buf[STREAM_REPLY_INLINE];
        size_t n = 0;
        if (pack_frame_bytes(f, buf, sizeof buf, &n)) {
            (void)send_bytes(c, buf, n); /* false: c is closing, the reply goes nowhere */
            return true;
        }
    }
    struct outmsg *m = pack_frame(f, OUT_REPLY);
    if (!m)
        return false;
    stream_post(c, m);
    return true;
}

bool stream_send_now(struct sconn *c, const struct outmsg *m)
{
    return send_bytes(c, m->data, m->len);
}

static void send_error(struct sconn *c, uint64_t id, const char *code, const char *msg)
{
    struct outmsg *m = pack_error(id, code, msg);
    if (m)
        (void)stream_send_now(c, m);
    outmsg_free(m);
}

/* ------------------------------------------------------------ requests */

static void bad_frame(struct sconn *c, const char *code, const char *msg)
{
    send_error(c, 0, code, msg);
    if (++c->bad_frames >= STREAM_BAD_FRAMES_MAX && c->ws)
        ws_close(c->ws, 1002, "invalid frames");
}

static void do_ping(struct sconn *c, uint64_t id)
{
    Parley__Stream__ServerFrame f = PARLEY__STREAM__SERVER_FRAME__INIT;
    Parley__Stream__Pong p = PARLEY__STREAM__PONG__INIT;
    p.server_time_ms = clock_now_ms();
    f.id = id;
    f.body_case = PARLEY__STREAM__SERVER_FRAME__BODY_PONG;
    f.pong = &p;
    struct outmsg *m = pack_frame(&f, OUT_REPLY);
    if (m)
        (void)stream_send_now(c, m);
    outmsg_free(m);
}

static void submit(struct sconn *c, struct writer_job *j)
{
    enum parley_err rc = writer_submit(c->st->writer, j);
    if (rc == PARLEY_OK)
        return;
    send_error(c, j->req_id, "unavailable",
               rc == PARLEY_ERR_LIMIT ? "server busy, retry later" : "server stopping");
    writer_job_free(j);
}

static void do_ack(struct sconn *c, uint64_t id, const Parley__Stream__Ack *a)
{
    struct writer_job *j = calloc(1, sizeof *j);
    if (j)
        j->ids = malloc(a->n_envelope_ids * sizeof *j->ids);
    if (!j || !j->ids) {
        free(j);
        send_error(c, id, "unavailable", "out of memory");
        return;
    }
    memcpy(j->ids, a->envelope_ids, a->n_envelope_ids * sizeof *j->ids);
    j->n_ids = a->n_envelope_ids;
    /* The client has these: they no longer occupy the delivery window, whether or not
     * the ack is committed yet (later fetches start after them anyway). */
    deliver_acked(c, j->ids, j->n_ids);
    j->kind = WJOB_ACK;
    j->req_id = id;
    j->bytes = sizeof *j + j->n_ids * sizeof *j->ids;
    sconn_ref(c);
    j->c = c;
    submit(c, j);
}

static void do_send(struct sconn *c, uint64_t id, const Parley__Stream__Send *s)
{
    uint32_t retry = 0;
    /* The loop's clock (read once a pass), not a clock read a message. */
    uint64_t now_us = uv_now(http_loop_uv(c->loop)) * 1000;
    if (!ratelimit_take_digest(c->st->rl_send, c->send_rl, now_us, &retry)) {
        char msg[64];
        snprintf(msg, sizeof msg, "too many messages, retry in %u s", (unsigned)retry);
        send_error(c, id, "rate_limited", msg);
        return;
    }
    /* One allocation: the job, its copies, then their ciphertexts (writer_job.packed). */
    size_t size = sizeof(struct writer_job) + s->n_copies * sizeof(struct writer_copy);
    for (size_t i = 0; i < s->n_copies; i++)
        size += s->copies[i]->ciphertext.len;
    struct writer_job *j = writer_job_new(c->st->writer, size);
    if (!j)
        goto oom;
    sconn_ref(c);
    j->c = c;
    j->kind = WJOB_SEND;
    j->packed = true;
    j->req_id = id;
    memcpy(j->msgid, s->client_message_id.data, sizeof j->msgid);
    if (s->target_case == PARLEY__STREAM__SEND__TARGET_TO_USER)
        str_copy(j->to_user, sizeof j->to_user, s->to_user);
    else
        str_copy(j->group_id, sizeof j->group_id, s->group_id);
    j->copies = (struct writer_copy *)(j + 1);
    j->n_copies = s->n_copies;
    j->bytes = sizeof *j;
    uint8_t *ct = (uint8_t *)(j->copies + s->n_copies);
    for (size_t i = 0; i < s->n_copies; i++) {
        const Parley__Stream__DeviceCiphertext *dc = s->copies[i];
        struct writer_copy *wc = &j->copies[i];
        str_copy(wc->device_id, sizeof wc->device_id, dc->device_id);
        wc->ct_len = dc->ciphertext.len;
        wc->ct = ct;
        memcpy(ct, dc->ciphertext.data, wc->ct_len);
        ct += wc->ct_len;
        /* Sealed by the writer, and only if it is written (held copies acked in time never are). */
        j->bytes += 2 * wc->ct_len + SEAL_OVERHEAD + sizeof *wc;
    }
    submit(c, j);
    return;
oom:
    writer_job_free(j);
    send_error(c, id, "unavailable", "out of memory");
}

static void on_message(struct ws_conn *ws, bool binary, const uint8_t *data, size_t len,
                       void *user)
{
    (void)ws;
    struct sconn *c = user;
    if (!binary) {
        bad_frame(c, "invalid_frame", "text frames are not used: send binary ClientFrames");
        return;
    }
    struct frame_limits lim = {c->st->app->cfg->max_envelope, 0, 0};
    struct frame_result r;
    enum frame_status fs = frame_decode(data, len, &lim, &r);
    if (fs == FRAME_INVALID) {
        bad_frame(c, r.code, r.message);
    } else if (fs == FRAME_REFUSED) {
        send_error(c, r.id, r.code, r.message);
    } else {
        switch (r.cf->body_case) {
        case PARLEY__STREAM__CLIENT_FRAME__BODY_PING:
            do_ping(c, r.id);
            break;
        case PARLEY__STREAM__CLIENT_FRAME__BODY_ACK:
            do_ack(c, r.id, r.cf->ack);
            break;
        case PARLEY__STREAM__CLIENT_FRAME__BODY_SEND:
            do_send(c, r.id, r.cf->send);
            break;
        default:
            break;
        }
    }
    frame_release(&r);
}

static void on_close(struct ws_conn *ws, uint16_t code, void *user)
{
    (void)ws;
    struct sconn *c = user;
    char pseudo[17], cs[8];
    log_pseudonym(c->device_id, pseudo);
    snprintf(cs, sizeof cs, "%u", (unsigned)code);
    log_event(LOG_DEBUG, "stream_closed", "device", pseudo, "code", cs, NULL);
    c->ws = NULL;
    deliver_closed(c);
    hub_unregister(c->st->hub, c);
    sconn_unref(c); /* the WebSocket's reference */
}

static const struct ws_callbacks ws_cbs = {on_message, on_close};

/* ------------------------------------------------------------ revocation */

/* The session checks that fall due in one sweep of one loop go to the thread pool as one
 * job: a job per connection would keep about a third of all connections' jobs (~160
 * bytes each) allocated after every sweep, which is most of an idle stream's memory
 * budget (issue #5). The batch collecting on a loop thread is that thread's own state;
 * it is handed to the pool by a post that runs after the sweep. */
struct reval_item {
    struct sconn *c; /* a reference */
    bool gone;       /* the session no longer exists (worker) */
};

struct reval_batch {
    uv_work_t w;
    struct http_loop *loop;
    int64_t now;
    size_t n, cap;
    struct reval_item *v;
};

static _Thread_local struct reval_batch *reval_open; /* being filled on this loop thread */

static void reval_work(uv_work_t *w)
{
    struct reval_batch *b = w->data;
    for (size_t i = 0; i < b->n; i++) {
        struct sconn *c = b->v[i].c;
        struct store_session sess;
        enum parley_err err = store_session_lookup(c->st->app->store, c->token_hash, b->now,
                                                   &sess);
        /* A store failure is not a revocation: try again at the next period. A device
         * mismatch cannot happen (a session has one device) but would count as gone. */
        b->v[i].gone = err == PARLEY_ERR_NOTFOUND ||
                       (err == PARLEY_OK && strcmp(sess.device_id, c->device_id) != 0);
        sodium_memzero(&sess, sizeof sess);
    }
}

static void reval_done(uv_work_t *w, int status)
{
    struct reval_batch *b = w->data;
    for (size_t i = 0; i < b->n; i++) {
        struct sconn *c = b->v[i].c;
        c->reval_busy = false;
        if (status == 0 && c->ws && b->v[i].gone)
            close_revoked(c, "session_check");
        sconn_unref(c);
    }
    free(b->v);
    free(b);
}

/* Posted when a batch was opened: runs after the sweep that filled it. */
static void reval_submit(void *arg)
{
    struct reval_batch *b = arg;
    if (reval_open == b)
        reval_open = NULL;
    if (uv_queue_work(http_loop_uv(b->loop), &b->w, reval_work, reval_done) != 0)
        reval_done(&b->w, -1);
}

static struct reval_batch *reval_batch_open(struct http_loop *loop)
{
    if (reval_open)
        return reval_open;
    struct reval_batch *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->w.data = b;
    b->loop = loop;
    b->now = clock_now_s();
    if (http_loop_post(loop, reval_submit, b) != PARLEY_OK) {
        free(b);
        return NULL; /* the loop is stopping */
    }
    reval_open = b;
    return b;
}

/* The transport's sweep (ws_set_tick, about once a second) asks every open stream; due
 * ones join this loop's batch. No timer per connection: a uv_timer_t is 152 bytes and
 * an idle stream must stay small (issue #5). */
static void on_reval_tick(struct ws_conn *ws, uint64_t now_ms, void *user)
{
    (void)ws;
    struct sconn *c = user;
    if (now_ms < c->reval_at)
        return;
    /* Keep the cadence (and the spread) rather than drift by the sweep's lateness. */
    c->reval_at += STREAM_REVALIDATE_MS;
    if (c->reval_at <= now_ms)
        c->reval_at = now_ms + STREAM_REVALIDATE_MS;
    if (!c->ws || c->reval_busy)
        return;
    struct reval_batch *b = reval_batch_open(c->loop);
    if (!b)
        return; /* next period */
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        struct reval_item *v = realloc(b->v, cap * sizeof *v);
        if (!v)
            return; /* next period */
        b->v = v;
        b->cap = cap;
    }
    sconn_ref(c);
    b->v[b->n].c = c;
    b->v[b->n].gone = false;
    b->n++;
    c->reval_busy = true;
}

/* Loop thread, right after the upgrade: the first check comes after a random part of
 * the period so that connections spread out; the WebSocket stops ticking when it closes
 * (no reference needed: the ticks come from the WebSocket itself). */
static void reval_start(struct sconn *c)
{
    c->reval_at = uv_now(http_loop_uv(c->loop)) + 1 + randombytes_uniform(STREAM_REVALIDATE_MS);
    ws_set_tick(c->ws, on_reval_tick);
}

static size_t post_revoke(struct sconn *c)
{
    struct outmsg *m = calloc(1, sizeof *m);
    if (!m)
        return 0; /* the re-validation closes it within STREAM_REVALIDATE_MS */
    m->kind = OUT_REVOKE;
    stream_post(c, m);
    return 1;
}

size_t stream_disconnect_device(struct stream *st, const char *device_id)
{
    if (!st || !device_id)
        return 0;
    struct sconn *c = hub_lookup(st->hub, device_id);
    if (!c)
        return 0;
    size_t n = post_revoke(c);
    sconn_unref(c);
    return n;
}

size_t stream_disconnect_user(struct stream *st, const char *user_id)
{
    struct sconn **v = NULL;
    size_t n = 0, done = 0;
    if (!st || !user_id || hub_user_connections(st->hub, user_id, &v, &n) != PARLEY_OK)
        return 0; /* out of memory: the re-validation closes them */
    for (size_t i = 0; i < n; i++) {
        done += post_revoke(v[i]);
        sconn_unref(v[i]);
    }
    free(v);
    return done;
}

/* ------------------------------------------------------------ the route */

struct connect_job {
    struct app *app;
    char user_id[STORE_ID_LEN + 1];
    char device_id[STORE_ID_LEN + 1];
    uint8_t token_hash[STORE_TOKEN_HASH_BYTES];
    enum parley_err err;
    struct store_user user;
};

static void connect_work(void *arg)
{
    struct connect_job *j = arg;
    j->err = store_user_get_by_id(j->app->store, j->user_id, &j->user);
}

static void connect_done(struct http_request *req, void *arg)
{
    struct connect_job *j = arg;
    struct stream *st = j->app->stream;
    struct sconn *c = NULL;
    if (j->err == PARLEY_ERR_NOTFOUND) {
        http_respond_error(req, 401, "unauthorized", "missing, invalid or expired token");
        goto out;
    }
    if (j->err) {
        respond_failure(req, j->err);
        goto out;
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        respond_failure(req, PARLEY_ERR_NOMEM);
        goto out;
    }
    atomic_init(&c->refs, 1); /* the WebSocket's, dropped in on_close */
    c->st = st;
    memcpy(c->user_id, j->user_id, sizeof c->user_id);
    memcpy(c->device_id, j->device_id, sizeof c->device_id);
    memcpy(c->token_hash, j->token_hash, sizeof c->token_hash);
    str_copy(c->username, sizeof c->username, j->user.username);
    ratelimit_digest(st->rl_send, c->device_id, c->send_rl);
    struct ws_conn *ws = NULL;
    if (http_upgrade_websocket(req, &ws_cbs, c, &ws) != PARLEY_OK) {
        free(c);
        goto out;
    }
    c->ws = ws;
    c->loop = ws_loop(ws);
    reval_start(c);
    struct sconn *old = NULL;
    if (hub_register(st->hub, c, &old) != PARLEY_OK) {
        ws_close(ws, 1011, "out of memory");
        goto out;
    }
    if (old) {
        struct outmsg *m = calloc(1, sizeof *m);
        if (m) {
            m->kind = OUT_CLOSE;
            stream_post(old, m);
        }
        sconn_unref(old);
    }
    char pseudo[17];
    log_pseudonym(c->device_id, pseudo);
    log_event(LOG_DEBUG, "stream_open", "device", pseudo, NULL);
    deliver_start(c);
out:
    sodium_memzero(j, sizeof *j);
    free(j);
}

static void on_authed(struct http_request *req, struct app *app, const struct auth_info *who,
                      void *arg)
{
    (void)arg;
    struct connect_job *j = calloc(1, sizeof *j);
    if (!j) {
        respond_failure(req, PARLEY_ERR_NOMEM);
        return;
    }
    j->app = app;
    memcpy(j->user_id, who->user_id, sizeof j->user_id);
    memcpy(j->device_id, who->device_id, sizeof j->device_id);
    memcpy(j->token_hash, who->token_hash, sizeof j->token_hash);
    enum parley_err rc = http_request_work(req, connect_work, connect_done, j);
    if (rc) {
        free(j);
        respond_failure(req, rc);
    }
}

static void stream_route(struct http_request *req, void *ctx)
{
    auth_then(req, ctx, on_authed, NULL);
}

/* ------------------------------------------------------------ lifecycle */

enum parley_err stream_new(struct app *app, struct stream **out)
{
    enum parley_err rc = PARLEY_ERR_NOMEM;
    struct stream *st = calloc(1, sizeof *st);
    if (!st)
        return PARLEY_ERR_NOMEM;
    st->app = app;
    block_pool_init(&st->pushes, OUTMSG_BLOCK, OUTMSG_POOL_MAX);
    if ((rc = strcmp(app->cfg->queue_seal, "xchacha20") == 0
                  ? seal_key_new_version(app->master_key, SEAL_V1, &st->key)
                  : seal_key_new(app->master_key, &st->key)))
        goto fail;
    if ((rc = hub_new(&st->hub)))
        goto fail;
    if ((rc = writer_new(st, &st->writer)))
        goto fail;
    if ((rc = ratelimit_new(app->cfg->send_rate_per_min, 60, 0, &st->rl_send)))
        goto fail;
    *out = st;
    return PARLEY_OK;
fail:
    stream_free(st);
    return rc;
}

enum parley_err stream_register_routes(struct http_server *srv, struct app *app)
{
    return http_server_route(srv, "GET", "/v1/stream", stream_route, app);
}

enum parley_err stream_start(struct stream *st)
{
    return writer_start(st->writer);
}

void stream_stop(struct stream *st)
{
    if (st)
        writer_stop(st->writer);
}

void stream_free(struct stream *st)
{
    if (!st)
        return;
    writer_free(st->writer);
    block_pool_cleanup(&st->pushes); /* after the loops and the writer: no push is left */
    hub_free(st->hub);
    ratelimit_free(st->rl_send);
    seal_key_free(st->key);
    free(st);
}

enum parley_err stream_metrics_render(void *ctx, struct buf *out)
{
    struct stream *st = ctx;
    if (!st)
        return PARLEY_OK;
    return buf_printf(
        out,
        "# HELP parley_messages_accepted_total Sends committed to the queue.\n"
        "# TYPE parley_messages_accepted_total counter\n"
        "parley_messages_accepted_total %llu\n"
        "# HELP parley_envelopes_delivered_total Envelopes sent to connected devices.\n"
        "# TYPE parley_envelopes_delivered_total counter\n"
        "parley_envelopes_delivered_total %llu\n"
        "# HELP parley_envelopes_acked_total Envelopes deleted by acknowledgements.\n"
        "# TYPE parley_envelopes_acked_total counter\n"
        "parley_envelopes_acked_total %llu\n"
        "# HELP parley_envelopes_purged_total Envelopes deleted at expiry.\n"
        "# TYPE parley_envelopes_purged_total counter\n"
        "parley_envelopes_purged_total %llu\n"
        "# HELP parley_expiry_notices_total Expiry notices queued to senders.\n"
        "# TYPE parley_expiry_notices_total counter\n"
        "parley_expiry_notices_total %llu\n"
        "# HELP parley_queue_commits_total Group commits (transactions) of the queue writer.\n"
        "# TYPE parley_queue_commits_total counter\n"
        "parley_queue_commits_total %llu\n"
        "# HELP parley_queue_commit_ops_total Sends and acks applied by those commits.\n"
        "# TYPE parley_queue_commit_ops_total counter\n"
        "parley_queue_commit_ops_total %llu\n"
        "# HELP parley_queue_held_acked_total Copies acked while held (write-back): never "
        "written.\n"
        "# TYPE parley_queue_held_acked_total counter\n"
        "parley_queue_held_acked_total %llu\n"
        "# HELP parley_queue_held_written_total Held copies written because no ack came in "
        "time.\n"
        "# TYPE parley_queue_held_written_total counter\n"
        "parley_queue_held_written_total %llu\n",
        (unsigned long long)atomic_load(&st->accepted),
        (unsigned long long)atomic_load(&st->delivered),
        (unsigned long long)atomic_load(&st->acked), (unsigned long long)atomic_load(&st->purged),
        (unsigned long long)atomic_load(&st->notices),
        (unsigned long long)atomic_load(&st->commits),
        (unsigned long long)atomic_load(&st->commit_ops),
        (unsigned long long)atomic_load(&st->held_acked),
        (unsigned long long)atomic_load(&st->held_written));
}
