/*
 * writer.c — see writer.h. One pthread, one mutex + condition variable (monotonic
 * clock) guarding two FIFOs of jobs (sends, acks). The store call runs without the lock
 * held, so loops keep submitting while a batch commits: the next batch is whatever
 * gathered meanwhile, which is what makes the commit cost per message shrink under load.
 *
 * Acks are matched against the held copies before they are queued, on the acker's loop
 * (writer_submit): a match is forgotten, never written, and when it was its send's last
 * held copy the sender gets SendResult OK right there. Only the ids left reach a batch.
 * One batch, in order: (1) the held copies that fell due become PUT ops; (2) each copy
 * of a send whose device is connected is marked hold while the set has room; (3) one
 * store_queue_apply; (4) results, the new holds, pushes.
 */
#include "writer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "clock.h"
#include "config.h"
#include "held.h"
#include "hub.h"
#include "log.h"
#include "seal.h"
#include "stream_int.h"

struct jobq {
    struct writer_job *head, *tail;
    size_t n, bytes; /* jobs, and the sum of their bytes */
};

/* Per-op memory of a batch, kept for the next one (writer thread): each array grows to
 * the largest batch seen, and a batch zeroes only the part it uses. */
struct batch_mem {
    struct store_queue_op *ops;
    struct store_copy *copies;   /* every send's copies, one send after another */
    struct held_copy **hcs;      /* parallel to copies: holds allocated, not yet added */
    struct sconn **conns;        /* parallel to copies: held copies' connections (refs) */
    struct store_envelope *puts; /* per due copy */
    size_t n, n_copies;          /* ops and copies of the batch */
    size_t cap_ops, cap_copies, cap_hcs, cap_conns, cap_puts;
};

struct writer {
    struct stream *st;
    struct held *held;
    pthread_t th;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct jobq sends, acks;
    size_t n_bytes;
    size_t ack_ids; /* ids in the queued acks */
    bool stopping;
    enum { W_BUSY, W_IDLE, W_GATHER } state; /* what the writer waits for (lock held) */
    size_t last_sends;                       /* sends in the previous batch */
    struct batch_mem mem;                    /* writer thread */
    struct block_pool jobs;                  /* blocks of send jobs (writer_job_new) */
};

/* Whether the gather may end: a full batch of sends, or (acks alone) enough ids. */
static bool gather_done(const struct writer *w)
{
    return w->stopping || w->sends.n >= WRITER_BATCH_MAX ||
           (!w->sends.n && w->ack_ids >= WRITER_ACK_BATCH_IDS);
}

/* What one batch applies (writer thread). */
struct batch {
    struct writer_job *sends, *acks; /* NULL-terminated lists */
    size_t n_sends, n_acks;
    struct held_copy **due;          /* held copies to write now */
    size_t n_due;
    bool flush;                      /* stopping: hold nothing new, write all held */
};

struct writer_job *writer_job_new(struct writer *w, size_t size)
{
    if (size > WRITER_JOB_BLOCK)
        return calloc(1, size);
    struct writer_job *j = block_pool_get(&w->jobs);
    if (!j)
        return NULL;
    memset(j, 0, size);
    j->pool = &w->jobs;
    return j;
}

void writer_job_free(struct writer_job *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->n_copies; i++) {
        if (!j->packed)
            free(j->copies[i].ct);
        free(j->copies[i].sealed);
    }
    if (!j->packed)
        free(j->copies);
    free(j->ids);
    if (j->c)
        sconn_unref(j->c);
    if (j->pool)
        block_pool_put(j->pool, j);
    else
        free(j);
}

enum parley_err writer_new(struct stream *st, struct writer **out)
{
    struct writer *w = calloc(1, sizeof *w);
    if (!w)
        return PARLEY_ERR_NOMEM;
    if (held_new(WRITER_HELD_MAX, st->key, &w->held) != PARLEY_OK) {
        free(w);
        return PARLEY_ERR_NOMEM;
    }
    w->st = st;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->mu, NULL);
    block_pool_init(&w->jobs, WRITER_JOB_BLOCK, WRITER_JOB_POOL_MAX);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    *out = w;
    return PARLEY_OK;
}

struct held *writer_held(struct writer *w)
{
    return w->held;
}

static void jobq_push(struct jobq *q, struct writer_job *j)
{
    j->next = NULL;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->n++;
    q->bytes += j->bytes;
}

/* Take up to max jobs off q's front as a NULL-terminated list; *n gets the count and
 * *bytes loses theirs. Taking the whole queue (the usual case) walks no job: each would
 * be a cache miss, under the lock the loops wait on. */
static struct writer_job *jobq_take(struct jobq *q, size_t max, size_t *n, size_t *bytes)
{
    struct writer_job *first = q->head, *last = q->tail;
    size_t k = q->n, taken = q->bytes;
    if (k > max) {
        last = NULL;
        taken = 0;
        k = 0;
        for (struct writer_job *j = q->head; k < max; j = j->next, k++) {
            taken += j->bytes;
            last = j;
        }
    }
    *n = k;
    if (!last)
        return NULL;
    *bytes -= taken;
    q->bytes -= taken;
    q->head = last->next;
    if (!q->head)
        q->tail = NULL;
    last->next = NULL;
    q->n -= k;
    return first;
}

static void free_list(struct writer_job *j)
{
    while (j) {
        struct writer_job *next = j->next;
        writer_job_free(j);
        j = next;
    }
}

static struct timespec mono_deadline(uint64_t at_us)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(at_us / 1000000u);
    ts.tv_nsec = (long)(at_us % 1000000u) * 1000;
    return ts;
}

static void reply(struct sconn *c, struct outmsg *m)
{
    if (m)
        stream_post(c, m);
}

static void reply_error(struct writer_job *j, const char *code, const char *msg)
{
    reply(j->c, pack_error(j->req_id, code, msg));
}

/* Answer j's sender with the SendResult for s (OK, DUPLICATE, or STALE with its lists). */
static void reply_send_result(struct writer_job *j, const struct store_queue_send *s)
{
    Parley__Stream__ServerFrame f = PARLEY__STREAM__SERVER_FRAME__INIT;
    Parley__Stream__SendResult r = PARLEY__STREAM__SEND_RESULT__INIT;
    Parley__Stream__UserDevice *ud = NULL, **pm = NULL, **pe = NULL;
    bool sent = false;
    size_t n = s->n_missing + s->n_extra;
    if (s->status == STORE_SEND_STALE && n) {
        ud = calloc(n, sizeof *ud);
        pm = calloc(s->n_missing ? s->n_missing : 1, sizeof *pm);
        pe = calloc(s->n_extra ? s->n_extra : 1, sizeof *pe);
        if (!ud || !pm || !pe)
            goto out;
        for (size_t i = 0; i < n; i++) {
            const struct store_user_device *d =
                i < s->n_missing ? &s->missing[i] : &s->extra[i - s->n_missing];
            parley__stream__user_device__init(&ud[i]);
            ud[i].user_id = (char *)d->user_id;
            ud[i].device_id = (char *)d->device_id;
            if (i < s->n_missing)
                pm[i] = &ud[i];
            else
                pe[i - s->n_missing] = &ud[i];
        }
        r.missing = pm;
        r.n_missing = s->n_missing;
        r.extra = pe;
        r.n_extra = s->n_extra;
    }
    if (s->status == STORE_SEND_OK)
        r.status = PARLEY__STREAM__SEND_RESULT__STATUS__OK;
    else if (s->status == STORE_SEND_DUPLICATE)
        r.status = PARLEY__STREAM__SEND_RESULT__STATUS__DUPLICATE;
    else
        r.status = PARLEY__STREAM__SEND_RESULT__STATUS__STALE_DEVICES;
    r.server_time_ms = j->created_ms;
    f.id = j->req_id;
    f.body_case = PARLEY__STREAM__SERVER_FRAME__BODY_SEND_RESULT;
    f.send_result = &r;
    sent = stream_reply(j->c, &f);
out:
    free(ud);
    free(pm);
    free(pe);
    if (!sent)
        reply_error(j, "unavailable", "out of memory");
}

static void reply_send_ok(struct writer_job *j)
{
    struct store_queue_send ok = {.status = STORE_SEND_OK};
    reply_send_result(j, &ok);
}

/* A send whose last held copy was acked or written (whoever took it out of the held set
 * got j): it is kept now; tell the sender. Any thread. */
static void send_kept(struct writer_job *j)
{
    if (!j)
        return;
    reply_send_ok(j);
    writer_job_free(j);
}

/* Pushes of an OK send's copies to their connected devices, packed before any copy is
 * held (once held, an ack on another loop may complete the send and free j). */
struct pushes {
    struct sconn *to[8];
    struct outmsg *m[8];
    struct sconn **tov;
    struct outmsg **mv;
};

/* A held copy's connection was found by choose_holds (taken from conns); the others are
 * looked up now, after the commit, so a device that connected meanwhile gets its push
 * (or drains the stored copy: it registered before its first fetch). */
static bool pushes_pack(struct stream *st, const struct writer_job *j,
                        const struct store_queue_send *s, struct sconn **conns,
                        struct pushes *p)
{
    p->tov = p->to;
    p->mv = p->m;
    if (j->n_copies > 8) {
        p->tov = calloc(j->n_copies, sizeof *p->tov);
        p->mv = calloc(j->n_copies, sizeof *p->mv);
        if (!p->tov || !p->mv) {
            free(p->tov);
            free(p->mv);
            return false;
        }
    }
    for (size_t i = 0; i < j->n_copies; i++) {
        p->mv[i] = NULL;
        p->tov[i] = conns[i] ? conns[i] : hub_lookup(st->hub, j->copies[i].device_id);
        conns[i] = NULL;
        if (!p->tov[i])
            continue;
        p->mv[i] = pack_message(&st->pushes, s->copies[i].envelope_id, j->c->user_id,
                                j->c->username, j->c->device_id, j->msgid, j->group_id,
                                j->created_ms, j->copies[i].ct, j->copies[i].ct_len);
    }
    return true;
}

static void pushes_post(struct pushes *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p->mv[i])
            stream_post_ref(p->tov[i], p->mv[i]); /* the lookup's reference goes with it */
        else
            sconn_unref(p->tov[i]);
    }
    if (p->tov != p->to) {
        free(p->tov);
        free(p->mv);
    }
}

/* After the commit: answer the sender (unless copies are held: then when they are
 * acked or written), hold the held copies, push the copies to connected recipients.
 * Returns true when the held set took the job over (the caller must not touch it). */
static bool finish_send(struct writer *w, struct writer_job *j, const struct store_queue_send *s,
                        struct held_copy **hcs, struct sconn **conns, uint64_t due_us)
{
    struct stream *st = w->st;
    switch (s->status) {
    case STORE_SEND_OK: {
        atomic_fetch_add(&st->accepted, 1);
        size_t n_hold = 0, n = j->n_copies;
        for (size_t i = 0; i < n; i++) {
            memcpy(j->copies[i].user_id, s->copies[i].user_id, sizeof j->copies[i].user_id);
            n_hold += s->copies[i].hold;
        }
        struct pushes p;
        bool packed = pushes_pack(st, j, s, conns, &p);
        /* Held before the pushes go out: a drain meanwhile finds them held. From the
         * first held_add on, j may be completed and freed by an ack on another loop. */
        j->n_held = n_hold;
        for (size_t i = 0; i < n && n_hold; i++) {
            if (s->copies[i].hold) {
                held_add(w->held, hcs[i], j, i, s->copies[i].envelope_id, due_us);
                hcs[i] = NULL;
            }
        }
        if (packed)
            pushes_post(&p, n); /* a copy not pushed is fetched: it is held or stored */
        if (n_hold)
            return true;
        reply_send_ok(j);
        break;
    }
    case STORE_SEND_DUPLICATE:
    case STORE_SEND_STALE:
        reply_send_result(j, s);
        break;
    case STORE_SEND_NOT_MEMBER:
        reply_error(j, "not_member", "you are not a member of this group");
        break;
    case STORE_SEND_NO_TARGET:
        reply_error(j, "not_found", "no such user or group");
        break;
    case STORE_SEND_QUEUE_FULL:
        reply_error(j, "queue_full", "a recipient device holds too many undelivered messages");
        break;
    }
    return false;
}

static void finish_ack(struct stream *st, struct writer_job *j, const struct store_queue_ack *a)
{
    Parley__Stream__ServerFrame f = PARLEY__STREAM__SERVER_FRAME__INIT;
    Parley__Stream__AckResult r = PARLEY__STREAM__ACK_RESULT__INIT;
    size_t deleted = a->deleted + j->held_acked;
    r.deleted = (uint32_t)deleted;
    f.id = j->req_id;
    f.body_case = PARLEY__STREAM__SERVER_FRAME__BODY_ACK_RESULT;
    f.ack_result = &r;
    atomic_fetch_add(&st->acked, deleted);
    if (j->req_id == 0)
        return; /* an ack with id 0 wants no answer */
    if (!stream_reply(j->c, &f))
        reply_error(j, "unavailable", "out of memory");
}

/* An ack's ids that name held copies forget them (never written), on the acker's loop:
 * the ids left go to the store. A send whose last held copy this was is answered now. */
static void ack_held(struct writer *w, struct writer_job *j)
{
    struct writer_job *done = NULL;
    j->held_acked = held_ack(w->held, j->c->device_id, j->ids, &j->n_ids, &done);
    atomic_fetch_add(&w->st->held_acked, j->held_acked);
    while (done) {
        struct writer_job *next = done->next;
        send_kept(done);
        done = next;
    }
}

enum parley_err writer_submit(struct writer *w, struct writer_job *j)
{
    if (j->kind == WJOB_ACK) {
        ack_held(w, j);
        if (!j->n_ids) { /* every id named a held copy: nothing to write */
            struct store_queue_ack none = {0};
            finish_ack(w->st, j, &none);
            writer_job_free(j);
            return PARLEY_OK;
        }
    }
    pthread_mutex_lock(&w->mu);
    if (w->stopping) {
        pthread_mutex_unlock(&w->mu);
        return PARLEY_ERR_CLOSED;
    }
    if (w->sends.n + w->acks.n >= WRITER_MAX_JOBS || j->bytes > WRITER_MAX_BYTES - w->n_bytes) {
        pthread_mutex_unlock(&w->mu);
        return PARLEY_ERR_LIMIT;
    }
    jobq_push(j->kind == WJOB_ACK ? &w->acks : &w->sends, j);
    w->n_bytes += j->bytes;
    if (j->kind == WJOB_ACK)
        w->ack_ids += j->n_ids;
    /* Wake the writer only when this job changes what it does: an idle writer starts a
     * batch, a gathering one stops waiting once the batch is full. Waking it for every
     * job while it gathers costs two context switches per message on a shared core. */
    bool first_send = j->kind == WJOB_SEND && w->sends.n == 1; /* ends an acks-only wait */
    bool wake = w->state == W_IDLE || (w->state == W_GATHER && (gather_done(w) || first_send));
    pthread_mutex_unlock(&w->mu);
    /* After the unlock: woken while this thread still held the mutex, the writer (often
     * on the same core) would run only to block on it again, two context switches more. */
    if (wake)
        pthread_cond_signal(&w->cv);
    return PARLEY_OK;
}

/* Step 2: which copies of a send to hold: those whose device is connected now, while
 * the set has room (*room: what is left of it in this batch) and a copy's bookkeeping can
 * be allocated. A held copy keeps the connection found (conns[k], a reference) for its
 * push: if that connection goes meanwhile, the device's next one drains the held copy. */
static void choose_holds(struct writer *w, const struct batch *b, struct writer_job *j,
                         struct store_copy *copies, struct held_copy **hcs,
                         struct sconn **conns, size_t *room)
{
    const struct config *cfg = w->st->app->cfg;
    for (size_t k = 0; k < j->n_copies; k++) {
        copies[k].hold = false;
        if (!cfg->writeback_ms || b->flush || !*room)
            continue;
        struct sconn *rc = hub_lookup(w->st->hub, j->copies[k].device_id);
        if (!rc)
            continue;
        if (!(hcs[k] = held_copy_new(w->held))) {
            sconn_unref(rc);
            continue;
        }
        conns[k] = rc;
        copies[k].hold = true;
        (*room)--;
    }
}

/* Seal copy k for writing (once). */
static enum parley_err seal_copy(struct writer *w, struct writer_job *j, size_t k)
{
    struct writer_copy *cp = &j->copies[k];
    if (cp->sealed)
        return PARLEY_OK;
    uint8_t *sealed = malloc(cp->ct_len + SEAL_OVERHEAD);
    if (!sealed)
        return PARLEY_ERR_NOMEM;
    size_t sealed_len = 0;
    enum parley_err err = seal_envelope(w->st->key, cp->device_id, j->c->device_id, j->msgid,
                                        cp->ct, cp->ct_len, sealed, &sealed_len);
    if (err) {
        free(sealed);
        return err;
    }
    cp->sealed = sealed;
    cp->sealed_len = sealed_len;
    return PARLEY_OK;
}

/* The send's op; copies[k].hold already chosen. Copies to be written are sealed. The
 * send is accepted now, at now_ms: its server time (one clock read a batch, not one a
 * message on the loop). */
static enum parley_err build_send(struct writer *w, struct writer_job *j,
                                  struct store_queue_send *s, struct store_copy *copies,
                                  int64_t now_ms)
{
    const struct config *cfg = w->st->app->cfg;
    for (size_t k = 0; k < j->n_copies; k++) {
        copies[k].device_id = j->copies[k].device_id;
        if (copies[k].hold)
            continue;
        enum parley_err err = seal_copy(w, j, k);
        if (err)
            return err;
        copies[k].body = j->copies[k].sealed;
        copies[k].body_len = j->copies[k].sealed_len;
    }
    j->created_ms = now_ms;
    j->expires_at = now_ms / 1000 + cfg->queue_ttl_s;
    s->sender_user = j->c->user_id;
    s->sender_device = j->c->device_id;
    memcpy(s->client_msg_id, j->msgid, sizeof s->client_msg_id);
    s->to_user = j->to_user[0] ? j->to_user : NULL;
    s->group_id = j->group_id[0] ? j->group_id : NULL;
    s->copies = copies;
    s->n_copies = j->n_copies;
    s->created_at_ms = j->created_ms;
    s->expires_at = j->expires_at;
    s->max_queue = cfg->max_queue_per_device;
    return PARLEY_OK;
}

/* Grow *p to hold n elements of size bytes (contents not kept). */
static bool mem_room(void **p, size_t *cap, size_t n, size_t size)
{
    if (n <= *cap)
        return true;
    size_t c = *cap ? *cap : 64;
    while (c < n)
        c *= 2;
    free(*p);
    *cap = 0;
    if (c > SIZE_MAX / size || !(*p = malloc(c * size)))
        return false;
    *cap = c;
    return true;
}

#define MEM_ROOM(p, cap, n) mem_room((void **)&(p), &(cap), (n), sizeof *(p))

/* Size m for batch b and zero what it uses. */
static bool batch_mem_prepare(struct batch_mem *m, const struct batch *b)
{
    m->n = b->n_sends + b->n_acks + b->n_due;
    m->n_copies = 0;
    for (const struct writer_job *j = b->sends; j; j = j->next)
        m->n_copies += j->n_copies;
    if (!MEM_ROOM(m->ops, m->cap_ops, m->n) || !MEM_ROOM(m->copies, m->cap_copies, m->n_copies) ||
        !MEM_ROOM(m->hcs, m->cap_hcs, m->n_copies) ||
        !MEM_ROOM(m->conns, m->cap_conns, m->n_copies) ||
        !MEM_ROOM(m->puts, m->cap_puts, b->n_due)) {
        m->n_copies = 0; /* nothing to release */
        return false;
    }
    if (m->n)
        memset(m->ops, 0, m->n * sizeof *m->ops);
    if (m->n_copies) {
        memset(m->copies, 0, m->n_copies * sizeof *m->copies);
        memset(m->hcs, 0, m->n_copies * sizeof *m->hcs);
        memset(m->conns, 0, m->n_copies * sizeof *m->conns);
    }
    if (b->n_due)
        memset(m->puts, 0, b->n_due * sizeof *m->puts);
    return true;
}

/* What a batch left in m: holds not added, connection references. */
static void batch_mem_release(struct batch_mem *m, struct held *h)
{
    for (size_t k = 0; k < m->n_copies; k++) {
        held_copy_free(h, m->hcs[k]);
        if (m->conns[k])
            sconn_unref(m->conns[k]);
    }
    m->n = m->n_copies = 0;
}

static void batch_mem_free(struct batch_mem *m)
{
    free(m->ops);
    free(m->copies);
    free(m->hcs);
    free(m->conns);
    free(m->puts);
    memset(m, 0, sizeof *m);
}

/* Steps 1-3: the ops of a batch, then one store call. */
static enum parley_err apply_batch(struct writer *w, struct batch *b, struct batch_mem *m,
                                   int64_t now_ms)
{
    int64_t now = now_ms / 1000;
    size_t i = 0, off = 0, room = held_room(w->held);
    for (struct writer_job *j = b->sends; j; off += j->n_copies, j = j->next, i++) {
        m->ops[i].kind = STORE_QOP_SEND;
        choose_holds(w, b, j, m->copies + off, m->hcs + off, m->conns + off, &room);
        enum parley_err err = build_send(w, j, &m->ops[i].u.send, m->copies + off, now_ms);
        if (err)
            return err;
    }
    bool store_work = b->n_sends || b->n_due;
    for (struct writer_job *j = b->acks; j; j = j->next, i++) {
        m->ops[i].kind = STORE_QOP_ACK;
        m->ops[i].u.ack.device_id = j->c->device_id;
        m->ops[i].u.ack.ids = j->ids;
        m->ops[i].u.ack.n_ids = j->n_ids;
        store_work |= j->n_ids > 0;
    }
    for (size_t k = 0; k < b->n_due; k++, i++) {
        size_t ci = 0;
        struct writer_job *hj = held_copy_job(b->due[k], &ci);
        enum parley_err err = seal_copy(w, hj, ci);
        if (err)
            return err;
        held_envelope(b->due[k], &m->puts[k]);
        m->ops[i].kind = STORE_QOP_PUT;
        m->ops[i].u.put.env = &m->puts[k];
    }
    /* Acks that named only held copies: nothing to write, no transaction. */
    if (!store_work)
        return PARLEY_OK;
    atomic_fetch_add(&w->st->commits, 1);
    atomic_fetch_add(&w->st->commit_ops, m->n);
    return store_queue_apply(w->st->app->store, m->ops, m->n, now);
}

static void commit_batch(struct writer *w, struct batch *b)
{
    struct stream *st = w->st;
    struct batch_mem *m = &w->mem;
    int64_t now_ms = clock_now_ms();
    uint64_t due_us = clock_mono_us() + (uint64_t)st->app->cfg->writeback_ms * 1000u;
    enum parley_err rc = PARLEY_ERR_NOMEM;
    b->n_due = held_due(w->held, clock_mono_us(), b->flush, b->due, WRITER_BATCH_MAX);
    if (batch_mem_prepare(m, b))
        rc = apply_batch(w, b, m, now_ms);
    if (rc) {
        log_event(LOG_ERROR, "queue_commit_failed", "error", parley_strerror(rc), NULL);
        for (struct writer_job *j = b->sends; j; j = j->next)
            reply_error(j, "unavailable", "storage unavailable, retry later");
        for (struct writer_job *j = b->acks; j; j = j->next)
            reply_error(j, "unavailable", "storage unavailable, retry later");
        free_list(b->sends);
        b->sends = NULL;
        held_unmark(w->held, b->due, b->n_due); /* still held: a later batch writes them */
    } else {
        size_t i = 0, off = 0;
        struct writer_job *j = b->sends;
        while (j) {
            struct writer_job *next = j->next;
            size_t n_copies = j->n_copies;
            bool kept = finish_send(w, j, &m->ops[i].u.send, m->hcs + off, m->conns + off, due_us);
            off += n_copies;
            store_queue_op_cleanup(&m->ops[i]);
            if (!kept)
                writer_job_free(j);
            j = next;
            i++;
        }
        b->sends = NULL;
        for (j = b->acks; j; j = j->next, i++)
            finish_ack(st, j, &m->ops[i].u.ack);
        for (size_t k = 0; k < b->n_due; k++) {
            atomic_fetch_add(&st->held_written, 1);
            send_kept(held_written(w->held, b->due[k]));
        }
    }
    batch_mem_release(m, w->held);
    free_list(b->acks);
    b->acks = NULL;
}

/* How long the writer may sleep: until the next purge or held copy falls due
 * (0: nothing timed). Called with the lock held. */
static uint64_t next_wakeup(struct writer *w, uint64_t next_purge)
{
    uint64_t due = held_next_due(w->held);
    if (!next_purge)
        return due;
    return due && due < next_purge ? due : next_purge;
}

/* Take a batch off the queues (lock held): every queued ack and up to WRITER_BATCH_MAX
 * sends; commit_batch adds the held copies due (all of them once stopping). */
static void take_batch(struct writer *w, struct batch *b, struct held_copy **due)
{
    b->sends = jobq_take(&w->sends, WRITER_BATCH_MAX, &b->n_sends, &w->n_bytes);
    b->acks = jobq_take(&w->acks, WRITER_MAX_JOBS, &b->n_acks, &w->n_bytes);
    w->ack_ids = 0;
    b->due = due;
    b->flush = w->stopping;
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    const struct config *cfg = w->st->app->cfg;
    uint64_t purge_every_us =
        cfg->purge_interval_s > 0 ? (uint64_t)cfg->purge_interval_s * 1000000u : 0;
    uint64_t next_purge = purge_every_us ? clock_mono_us() + purge_every_us : 0;
    struct held_copy **due = malloc(WRITER_BATCH_MAX * sizeof *due);
    if (!due) {
        log_event(LOG_ERROR, "queue_writer_failed", "error", "out of memory", NULL);
        return NULL;
    }
    pthread_mutex_lock(&w->mu);
    for (;;) {
        uint64_t wake = 0;
        w->state = W_IDLE;
        while (!w->sends.n && !w->acks.n && !w->stopping) {
            wake = next_wakeup(w, next_purge);
            if (wake && clock_mono_us() >= wake)
                break;
            if (!wake) {
                pthread_cond_wait(&w->cv, &w->mu);
                continue;
            }
            struct timespec ts = mono_deadline(wake);
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        }
        if (next_purge && clock_mono_us() >= next_purge && !w->stopping) {
            pthread_mutex_unlock(&w->mu);
            purge_run(w->st);
            next_purge = clock_mono_us() + purge_every_us;
            pthread_mutex_lock(&w->mu);
            continue;
        }
        if (w->stopping && !w->sends.n && !w->acks.n && !held_count(w->held))
            break;
        /* Gather: wait up to commit_delay_us for more sends, unless the batch is full.
         * Acks alone (of stored envelopes: a drain) wait longer for company: deleting
         * thousands of rows in one transaction costs far less per row, and the drain
         * they compete with for the CPU does not wait for them. A send arriving meanwhile
         * shortens the wait back to commit_delay_us. */
        uint64_t gather_from = clock_mono_us();
        /* Sends wait only under concurrency (the previous batch had company): a lone
         * sender, like a conversation's back and forth, is committed at once. */
        uint64_t send_gather = w->last_sends > 1 ? cfg->commit_delay_us : 0;
        w->state = W_GATHER;
        while (!gather_done(w)) {
            uint64_t until = gather_from + (w->sends.n ? send_gather : WRITER_ACK_GATHER_US);
            if (clock_mono_us() >= until)
                break;
            struct timespec ts = mono_deadline(until);
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        }
        w->state = W_BUSY;
        struct batch b = {0};
        take_batch(w, &b, due);
        w->last_sends = b.n_sends;
        size_t held_before = held_count(w->held);
        pthread_mutex_unlock(&w->mu);
        stream_post_gather_begin(); /* one post per loop for the batch's results */
        commit_batch(w, &b);
        stream_post_gather_end();
        pthread_mutex_lock(&w->mu);
        /* Stopping and the last writes failed: give up on them (their senders were never
         * told OK, and resend). */
        if (b.flush && !b.n_sends && !b.n_acks && held_count(w->held) >= held_before)
            break;
    }
    pthread_mutex_unlock(&w->mu);
    free(due);
    return NULL;
}

enum parley_err writer_start(struct writer *w)
{
    if (pthread_create(&w->th, NULL, writer_main, w) != 0)
        return PARLEY_ERR_NOMEM;
    w->started = true;
    return PARLEY_OK;
}

void writer_stop(struct writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->started)
        pthread_join(w->th, NULL);
    w->started = false;
    /* Never started (or gave up): drop what was queued. */
    free_list(w->sends.head);
    free_list(w->acks.head);
    memset(&w->sends, 0, sizeof w->sends);
    memset(&w->acks, 0, sizeof w->acks);
    w->n_bytes = 0;
}

void writer_free(struct writer *w)
{
    if (!w)
        return;
    writer_stop(w);
    batch_mem_free(&w->mem);
    held_free(w->held); /* its jobs go back to the pool */
    block_pool_cleanup(&w->jobs);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
