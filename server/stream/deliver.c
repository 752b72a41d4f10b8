/*
 * deliver.c — getting envelopes to a connected device, on its loop thread.
 *
 * Two sources feed a connection: the store (a drain: store_queue_fetch pages on the
 * thread pool, from the last id sent) and pushes (the writer posts each envelope it
 * committed to the recipient's loop). Envelope ids increase in commit order and a
 * loop receives pushes in commit order, so one number, last_sent, deduplicates both:
 * anything with id <= last_sent was already sent on this connection.
 *
 * The race (an envelope commits while a drain runs) is closed by ordering: the
 * connection registers in the hub BEFORE its first fetch. An envelope committed before
 * registration is in the store before the fetch starts, so the drain finds it. One
 * committed after registration is pushed; while draining, pushes are held (up to
 * STREAM_PENDING_MAX) and sent when the drain reaches the end of the store, skipping
 * those the drain already sent. If more pushes arrive than can be held, they are
 * dropped and the drain simply fetches again before it ends (they are in the store:
 * the push was posted after the commit).
 *
 * Window: at most STREAM_WINDOW envelopes and STREAM_WINDOW_BYTES bytes are outstanding
 * (sent, not acked) per connection, so a large backlog streams at the client's pace
 * instead of filling the output queue. The outstanding ones sit in a ring in id order
 * (allocated only while non-empty, so idle connections stay small); an ack marks its
 * ids and the ring's acked front is popped. A live connection whose window is full
 * goes back to draining: later pushes are dropped (the store has them) and fetched
 * again from last_sent once acks open the window.
 */
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "clock.h"
#include "held.h"
#include "http_server.h"
#include "log.h"
#include "seal.h"
#include "stream_int.h"
#include "writer.h"

struct fetch_job {
    uv_work_t w;
    struct sconn *c;
    uint64_t after;
    size_t limit;
    int64_t now;
    enum parley_err err;
    size_t n_env;          /* envelopes the store returned */
    uint64_t last_id;      /* highest id among them */
    struct outmsg *head, *tail;
};

static void free_list(struct outmsg *m)
{
    while (m) {
        struct outmsg *next = m->next;
        outmsg_free(m);
        m = next;
    }
}

/* Move e into v (its body with it). */
static void env_move(struct store_envelope *v, struct store_envelope *e)
{
    *v = *e;
    e->body = NULL;
}

/* The queue as a drain sees it: the held copies (held.h) and the store's rows merged by
 * id, at most limit. Held first: a copy written and forgotten between the two reads is
 * in the store's read (then both have it: the store's row is kept). */
static enum parley_err fetch_queue(struct sconn *c, uint64_t after, size_t limit, int64_t now,
                                   struct store_envelope **out, size_t *n_out)
{
    struct store_envelope *h = NULL, *s = NULL, *v = NULL;
    size_t nh = 0, ns = 0, n = 0, i = 0, k = 0;
    enum parley_err err =
        held_fetch(writer_held(c->st->writer), c->device_id, after, limit, &h, &nh);
    if (!err)
        err = store_queue_fetch(c->st->app->store, c->device_id, after, limit, now, &s, &ns);
    if (!err && (!nh || !ns)) {
        *out = nh ? h : s;
        *n_out = nh ? nh : ns;
        if (nh)
            h = NULL, nh = 0;
        else
            s = NULL, ns = 0;
    } else if (!err && !(v = malloc((nh + ns) * sizeof *v))) {
        err = PARLEY_ERR_NOMEM;
    } else if (!err) {
        while (n < limit && (i < nh || k < ns)) {
            if (k < ns && i < nh && h[i].id == s[k].id)
                i++; /* written meanwhile: the store's row */
            else if (k < ns && (i == nh || s[k].id < h[i].id))
                env_move(&v[n++], &s[k++]);
            else
                env_move(&v[n++], &h[i++]);
        }
        *out = v;
        *n_out = n;
    }
    store_envelopes_free(h, nh);
    store_envelopes_free(s, ns);
    return err;
}

static void fetch_work(uv_work_t *w)
{
    struct fetch_job *f = w->data;
    struct sconn *c = f->c;
    struct store_envelope *env = NULL;
    size_t n = 0;
    f->err = fetch_queue(c, f->after, f->limit, f->now, &env, &n);
    if (f->err)
        return;
    f->n_env = n;
    /* One scratch buffer for the unsealed bodies of the page, grown to the largest: a
     * malloc per envelope was a visible part of the drain (issue #5). */
    uint8_t *ct = NULL;
    size_t ct_cap = 0;
    for (size_t i = 0; i < n; i++) {
        struct store_envelope *e = &env[i];
        struct outmsg *m = NULL;
        if (e->id > f->last_id)
            f->last_id = e->id;
        if (e->kind == STORE_ENV_MESSAGE) {
            if (e->body_len < SEAL_MIN_OVERHEAD)
                continue;
            /* seal_open's output never exceeds body_len, whatever the seal version. */
            if (e->body_len > ct_cap || !ct) {
                free(ct);
                ct_cap = e->body_len > 4096 ? e->body_len : 4096;
                if (!(ct = malloc(ct_cap))) {
                    f->err = PARLEY_ERR_NOMEM;
                    break;
                }
            }
            size_t ct_len = 0;
            if (seal_open(c->st->key, e->device_id, e->sender_device, e->client_msg_id, e->body,
                          e->body_len, ct, &ct_len) != PARLEY_OK) {
                /* Altered or sealed under another key: undeliverable, left to expire. */
                log_event(LOG_WARN, "envelope_unseal_failed", NULL);
                continue;
            }
            m = pack_stored(e, ct, ct_len);
        } else {
            m = pack_stored(e, NULL, 0);
        }
        if (!m) {
            f->err = PARLEY_ERR_NOMEM;
            break;
        }
        if (f->tail)
            f->tail->next = m;
        else
            f->head = m;
        f->tail = m;
    }
    free(ct);
    store_envelopes_free(env, n);
}

static void maybe_fetch(struct sconn *c);

/* Room for one more envelope? Always when nothing is outstanding, so an envelope
 * larger than the byte window still goes out (alone). */
static bool window_open(const struct sconn *c)
{
    return c->fl_n == 0 || (c->fl_n < STREAM_WINDOW && c->fl_bytes < STREAM_WINDOW_BYTES);
}

static void send_envelope(struct sconn *c, struct outmsg *m)
{
    if (m->env_id <= c->last_sent)
        return;
    if (!c->fl) {
        c->fl = malloc(STREAM_WINDOW * sizeof *c->fl);
        c->fl_head = c->fl_n = c->fl_bytes = 0;
        if (!c->fl) {
            ws_close(c->ws, 1011, "out of memory");
            return;
        }
    }
    if (c->fl_n >= STREAM_WINDOW || !stream_send_now(c, m))
        return;
    struct inflight *e = &c->fl[(c->fl_head + c->fl_n) % STREAM_WINDOW];
    e->id = m->env_id;
    e->len = m->len;
    e->acked = false;
    c->fl_n++;
    c->fl_bytes += m->len;
    c->last_sent = m->env_id;
    atomic_fetch_add(&c->st->delivered, 1);
}

static struct inflight *fl_at(struct sconn *c, size_t i)
{
    return &c->fl[(c->fl_head + i) % STREAM_WINDOW];
}

void deliver_acked(struct sconn *c, const uint64_t *ids, size_t n)
{
    if (!c->fl_n)
        return;
    for (size_t k = 0; k < n; k++) {
        size_t lo = 0, hi = c->fl_n; /* the ring is in increasing id order */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            struct inflight *e = fl_at(c, mid);
            if (e->id == ids[k]) {
                if (!e->acked) {
                    e->acked = true;
                    c->fl_bytes -= e->len;
                }
                break;
            }
            if (e->id < ids[k])
                lo = mid + 1;
            else
                hi = mid;
        }
    }
    while (c->fl_n && fl_at(c, 0)->acked) {
        c->fl_head = (c->fl_head + 1) % STREAM_WINDOW;
        c->fl_n--;
    }
    if (!c->fl_n) {
        free(c->fl);
        c->fl = NULL;
        c->fl_bytes = 0;
    }
    maybe_fetch(c);
}

static void finish_drain(struct sconn *c)
{
    if (c->refetch) {
        c->refetch = false;
        maybe_fetch(c);
        return;
    }
    struct outmsg *p = c->pend_head;
    c->pend_head = c->pend_tail = NULL;
    c->n_pend = 0;
    c->draining = false;
    for (struct outmsg *m = p; m && c->ws; m = m->next) {
        if (!window_open(c)) {
            /* The rest is in the store: catch up from last_sent as acks come. */
            c->draining = true;
            break;
        }
        send_envelope(c, m);
    }
    free_list(p);
    if (c->draining)
        return;
    if (!c->drained_sent && c->ws) {
        Parley__Stream__ServerFrame f = PARLEY__STREAM__SERVER_FRAME__INIT;
        Parley__Stream__Drained d = PARLEY__STREAM__DRAINED__INIT;
        d.delivered = c->backlog_sent;
        f.body_case = PARLEY__STREAM__SERVER_FRAME__BODY_DRAINED;
        f.drained = &d;
        struct outmsg *m = pack_frame(&f, OUT_REPLY);
        if (m && stream_send_now(c, m))
            c->drained_sent = true;
        outmsg_free(m);
    }
}

static void fetch_done(uv_work_t *w, int status)
{
    struct fetch_job *f = w->data;
    struct sconn *c = f->c;
    c->fetching = false;
    if (!c->ws) {
        /* closed meanwhile */
    } else if (status != 0 || f->err) {
        log_event(LOG_ERROR, "queue_fetch_failed", "error",
                  status ? "cancelled" : parley_strerror(f->err), NULL);
        ws_close(c->ws, 1011, "temporarily unavailable");
    } else {
        bool cut = false;
        for (struct outmsg *m = f->head; m && c->ws; m = m->next) {
            if (!window_open(c)) {
                cut = true; /* the rest is fetched again after the acks */
                break;
            }
            uint64_t before = c->last_sent;
            send_envelope(c, m);
            if (c->last_sent != before)
                c->backlog_sent++;
        }
        if (!cut && f->last_id > c->last_sent)
            c->last_sent = f->last_id; /* skipped (undecryptable) ones too */
        if (c->ws && !cut) {
            if (f->n_env < f->limit)
                finish_drain(c);
            else
                maybe_fetch(c);
        }
    }
    free_list(f->head);
    sconn_unref(c);
    free(f);
}

static void maybe_fetch(struct sconn *c)
{
    if (!c->ws || !c->draining || c->fetching || !window_open(c))
        return;
    struct fetch_job *f = calloc(1, sizeof *f);
    if (!f) {
        ws_close(c->ws, 1011, "out of memory");
        return;
    }
    f->w.data = f;
    f->c = c;
    f->after = c->last_sent;
    f->limit = STREAM_WINDOW - c->fl_n;
    f->now = clock_now_s();
    sconn_ref(c);
    if (uv_queue_work(http_loop_uv(c->loop), &f->w, fetch_work, fetch_done) != 0) {
        sconn_unref(c);
        free(f);
        ws_close(c->ws, 1011, "temporarily unavailable");
        return;
    }
    c->fetching = true;
}

void deliver_start(struct sconn *c)
{
    c->draining = true;
    maybe_fetch(c);
}

void deliver_push(struct sconn *c, struct outmsg *m)
{
    if (m->env_id <= c->last_sent) {
        outmsg_free(m);
        return;
    }
    if (c->draining) {
        if (c->n_pend >= STREAM_PENDING_MAX) {
            free_list(c->pend_head);
            c->pend_head = c->pend_tail = NULL;
            c->n_pend = 0;
            c->refetch = true;
            outmsg_free(m);
            return;
        }
        m->next = NULL;
        if (c->pend_tail)
            c->pend_tail->next = m;
        else
            c->pend_head = m;
        c->pend_tail = m;
        c->n_pend++;
        return;
    }
    if (!window_open(c)) {
        /* A window behind: the store has it; catch up from there when acks come. */
        outmsg_free(m);
        c->draining = true;
        return;
    }
    send_envelope(c, m);
    outmsg_free(m);
}

void deliver_closed(struct sconn *c)
{
    free(c->fl);
    c->fl = NULL;
    c->fl_n = c->fl_bytes = 0;
    free_list(c->pend_head);
    c->pend_head = c->pend_tail = NULL;
    c->n_pend = 0;
}
