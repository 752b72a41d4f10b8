/*
 * writer.c — see writer.h. One pthread, one mutex + condition variable (monotonic
 * clock) guarding a FIFO of jobs. The store call runs without the lock held, so loops
 * keep submitting while a batch commits: the next batch is whatever gathered meanwhile,
 * which is what makes the commit cost per message shrink under load.
 */
#include "writer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "clock.h"
#include "config.h"
#include "hub.h"
#include "log.h"
#include "stream_int.h"

struct writer {
    struct stream *st;
    pthread_t th;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct writer_job *head, *tail;
    size_t n_jobs, n_bytes;
    bool stopping;
};

void writer_job_free(struct writer_job *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->n_copies; i++) {
        free(j->copies[i].ct);
        free(j->copies[i].sealed);
    }
    free(j->copies);
    free(j->ids);
    if (j->c)
        sconn_unref(j->c);
    free(j);
}

enum parley_err writer_new(struct stream *st, struct writer **out)
{
    struct writer *w = calloc(1, sizeof *w);
    if (!w)
        return PARLEY_ERR_NOMEM;
    w->st = st;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    *out = w;
    return PARLEY_OK;
}

enum parley_err writer_submit(struct writer *w, struct writer_job *j)
{
    pthread_mutex_lock(&w->mu);
    if (w->stopping) {
        pthread_mutex_unlock(&w->mu);
        return PARLEY_ERR_CLOSED;
    }
    if (w->n_jobs >= WRITER_MAX_JOBS || j->bytes > WRITER_MAX_BYTES - w->n_bytes) {
        pthread_mutex_unlock(&w->mu);
        return PARLEY_ERR_LIMIT;
    }
    j->next = NULL;
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    w->n_jobs++;
    w->n_bytes += j->bytes;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return PARLEY_OK;
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

static struct outmsg *send_result(const struct writer_job *j, const struct store_queue_send *s)
{
    Parley__Stream__ServerFrame f = PARLEY__STREAM__SERVER_FRAME__INIT;
    Parley__Stream__SendResult r = PARLEY__STREAM__SEND_RESULT__INIT;
    Parley__Stream__UserDevice *ud = NULL, **pm = NULL, **pe = NULL;
    struct outmsg *m = NULL;
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
    m = pack_frame(&f, OUT_REPLY);
out:
    free(ud);
    free(pm);
    free(pe);
    return m;
}

/* After the commit: answer the sender and push the copies to connected recipients. */
static void finish_send(struct stream *st, struct writer_job *j, const struct store_queue_send *s)
{
    switch (s->status) {
    case STORE_SEND_OK:
        atomic_fetch_add(&st->accepted, 1);
        for (size_t i = 0; i < j->n_copies; i++) {
            struct sconn *rc = hub_lookup(st->hub, j->copies[i].device_id);
            if (!rc)
                continue;
            struct outmsg *m = pack_message(s->copies[i].envelope_id, j->c->user_id,
                                            j->c->username, j->c->device_id, j->msgid,
                                            j->group_id, j->created_ms, j->copies[i].ct,
                                            j->copies[i].ct_len);
            if (m)
                stream_post(rc, m);
            sconn_unref(rc);
        }
        /* fall through */
    case STORE_SEND_DUPLICATE:
    case STORE_SEND_STALE: {
        struct outmsg *m = send_result(j, s);
        if (m)
            reply(j->c, m);
        else
            reply_error(j, "unavailable", "out of memory");
        break;
    }
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
}

static void finish_ack(struct stream *st, struct writer_job *j, const struct store_queue_ack *a)
{
    Parley__Stream__ServerFrame f = PARLEY__STREAM__SERVER_FRAME__INIT;
    Parley__Stream__AckResult r = PARLEY__STREAM__ACK_RESULT__INIT;
    r.deleted = (uint32_t)a->deleted;
    f.id = j->req_id;
    f.body_case = PARLEY__STREAM__SERVER_FRAME__BODY_ACK_RESULT;
    f.ack_result = &r;
    atomic_fetch_add(&st->acked, a->deleted);
    struct outmsg *m = pack_frame(&f, OUT_REPLY);
    if (!m) {
        reply_error(j, "unavailable", "out of memory");
        return;
    }
    reply(j->c, m);
}

static void commit_batch(struct writer *w, struct writer_job *batch, size_t n)
{
    struct stream *st = w->st;
    const struct config *cfg = st->app->cfg;
    struct store_queue_op *ops = calloc(n, sizeof *ops);
    struct store_copy **copies = calloc(n, sizeof *copies);
    struct writer_job *j;
    size_t i;
    enum parley_err rc = PARLEY_ERR_NOMEM;
    int64_t now = clock_now_s();
    if (!ops || !copies)
        goto fail;
    for (i = 0, j = batch; j; j = j->next, i++) {
        struct store_queue_op *op = &ops[i];
        if (j->kind == WJOB_ACK) {
            op->kind = STORE_QOP_ACK;
            op->u.ack.device_id = j->c->device_id;
            op->u.ack.ids = j->ids;
            op->u.ack.n_ids = j->n_ids;
            continue;
        }
        op->kind = STORE_QOP_SEND;
        struct store_queue_send *s = &op->u.send;
        copies[i] = calloc(j->n_copies, sizeof *copies[i]);
        if (!copies[i])
            goto fail;
        for (size_t k = 0; k < j->n_copies; k++) {
            copies[i][k].device_id = j->copies[k].device_id;
            copies[i][k].body = j->copies[k].sealed;
            copies[i][k].body_len = j->copies[k].sealed_len;
        }
        s->sender_user = j->c->user_id;
        s->sender_device = j->c->device_id;
        memcpy(s->client_msg_id, j->msgid, sizeof s->client_msg_id);
        s->to_user = j->to_user[0] ? j->to_user : NULL;
        s->group_id = j->group_id[0] ? j->group_id : NULL;
        s->copies = copies[i];
        s->n_copies = j->n_copies;
        s->created_at_ms = j->created_ms;
        s->expires_at = now + cfg->queue_ttl_s;
        s->max_queue = cfg->max_queue_per_device;
    }
    rc = store_queue_apply(st->app->store, ops, n, now);
    if (rc)
        goto fail;
    atomic_fetch_add(&st->commits, 1);
    atomic_fetch_add(&st->commit_ops, n);
    for (i = 0, j = batch; j; j = j->next, i++) {
        if (j->kind == WJOB_SEND)
            finish_send(st, j, &ops[i].u.send);
        else
            finish_ack(st, j, &ops[i].u.ack);
        store_queue_op_cleanup(&ops[i]);
    }
    goto out;
fail:
    log_event(LOG_ERROR, "queue_commit_failed", "error", parley_strerror(rc), NULL);
    for (j = batch; j; j = j->next)
        reply_error(j, "unavailable", "storage unavailable, retry later");
out:
    if (copies)
        for (i = 0; i < n; i++)
            free(copies[i]);
    free(copies);
    free(ops);
    while (batch) {
        j = batch->next;
        writer_job_free(batch);
        batch = j;
    }
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    const struct config *cfg = w->st->app->cfg;
    uint64_t purge_every_us =
        cfg->purge_interval_s > 0 ? (uint64_t)cfg->purge_interval_s * 1000000u : 0;
    uint64_t next_purge = clock_mono_us() + purge_every_us;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stopping) {
            if (!purge_every_us) {
                pthread_cond_wait(&w->cv, &w->mu);
                continue;
            }
            if (clock_mono_us() >= next_purge)
                break;
            struct timespec ts = mono_deadline(next_purge);
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        }
        if (purge_every_us && clock_mono_us() >= next_purge && !w->stopping) {
            pthread_mutex_unlock(&w->mu);
            purge_run(w->st);
            next_purge = clock_mono_us() + purge_every_us;
            pthread_mutex_lock(&w->mu);
            continue;
        }
        if (!w->head && w->stopping)
            break;
        /* Gather: wait up to commit_delay_us for more, unless the batch is full. */
        if (cfg->commit_delay_us && !w->stopping && w->n_jobs < WRITER_BATCH_MAX) {
            uint64_t until = clock_mono_us() + cfg->commit_delay_us;
            struct timespec ts = mono_deadline(until);
            while (!w->stopping && w->n_jobs < WRITER_BATCH_MAX && clock_mono_us() < until)
                pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        }
        struct writer_job *batch = w->head, *last = w->head;
        size_t n = 1;
        w->n_bytes -= last->bytes;
        while (n < WRITER_BATCH_MAX && last->next) {
            last = last->next;
            w->n_bytes -= last->bytes;
            n++;
        }
        w->head = last->next;
        if (!w->head)
            w->tail = NULL;
        last->next = NULL;
        w->n_jobs -= n;
        pthread_mutex_unlock(&w->mu);
        commit_batch(w, batch, n);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
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
    /* Never started: drop what was queued. */
    while (w->head) {
        struct writer_job *j = w->head;
        w->head = j->next;
        writer_job_free(j);
    }
    w->tail = NULL;
    w->n_jobs = w->n_bytes = 0;
}

void writer_free(struct writer *w)
{
    if (!w)
        return;
    writer_stop(w);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
