/*
 * held.c — see held.h. Two views of the same copies:
 *   - a FIFO in the order they were held (= id order = due order: every copy is due a
 *     fixed delay after it was held), which held_due walks; a copy that left the set
 *     stays in the FIFO marked gone until it reaches the front, so leaving is O(1);
 *   - per device, a doubly linked list in id order (chained hash of devices), which
 *     acks and drains search; acks usually name the oldest copies, found at the front.
 */
#include "held.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "seal.h"
#include "str.h"
#include "stream_int.h"
#include "writer.h"

#define HELD_BUCKETS 4096 /* devices with something held: at most the connected ones */
#define HELD_POOL_MAX 4096 /* freed copies (and device entries) kept for reuse */

struct held_dev;

struct held_copy {
    struct held_dev *spare;        /* allocated with the copy: adding cannot fail */
    struct held_copy *fifo_next;
    struct held_copy *prev, *next; /* in the device's list */
    struct held_dev *dev;          /* NULL once gone */
    struct writer_job *job;
    uint32_t k;
    bool writing; /* chosen by held_due: acks leave it to the store */
    uint64_t id;
    uint64_t due_us;
};

struct held_dev {
    struct held_dev *chain;
    struct held_copy *head, *tail;
    char device_id[STORE_ID_LEN + 1];
};

struct held {
    pthread_mutex_t mu;
    const struct seal_key *key;
    size_t max, n; /* copies held (not gone) */
    struct held_copy *fifo_head, *fifo_tail;
    struct held_dev *buckets[HELD_BUCKETS];
    /* Freed copies and device entries, for the writer's next ones: copies are allocated
     * on the writer thread and freed on loops, which glibc's per-thread caches handle
     * badly (every such free and malloc took its slow path). Linked through fifo_next
     * and chain. */
    struct held_copy *free_copies;
    struct held_dev *free_devs;
    size_t n_free_copies, n_free_devs;
    /* The writer's own share of them (writer thread only, no lock): refilled with the
     * whole shared lists when it runs out, so a batch takes the mutex about once for
     * its copies' bookkeeping, not once a copy. */
    struct held_copy *stash_copies;
    struct held_dev *stash_devs;
};

/* Pools (mutex held): keep what fits, free the rest. */
static void copy_put(struct held *h, struct held_copy *hc)
{
    if (h->n_free_copies >= HELD_POOL_MAX) {
        free(hc);
        return;
    }
    hc->fifo_next = h->free_copies;
    h->free_copies = hc;
    h->n_free_copies++;
}

static void dev_put(struct held *h, struct held_dev *d)
{
    if (!d)
        return;
    if (h->n_free_devs >= HELD_POOL_MAX) {
        free(d);
        return;
    }
    d->chain = h->free_devs;
    h->free_devs = d;
    h->n_free_devs++;
}

enum parley_err held_new(size_t max_copies, const struct seal_key *key, struct held **out)
{
    struct held *h = calloc(1, sizeof *h);
    if (!h)
        return PARLEY_ERR_NOMEM;
    pthread_mutex_init(&h->mu, NULL);
    h->key = key;
    h->max = max_copies;
    *out = h;
    return PARLEY_OK;
}

static size_t bucket_of(const char *device_id)
{
    uint64_t x = str_hash(STR_HASH_INIT, device_id);
    return (size_t)((x ^ x >> 32) % HELD_BUCKETS);
}

/* The device's entry (mutex held); when there is none and spare is not NULL, *spare
 * becomes it (and *spare NULL). */
static struct held_dev *dev_find(struct held *h, const char *device_id, struct held_dev **spare)
{
    struct held_dev **slot = &h->buckets[bucket_of(device_id)];
    for (struct held_dev *d = *slot; d; d = d->chain)
        if (!strcmp(d->device_id, device_id))
            return d;
    if (!spare)
        return NULL;
    struct held_dev *d = *spare;
    *spare = NULL;
    memset(d, 0, sizeof *d);
    snprintf(d->device_id, sizeof d->device_id, "%s", device_id);
    d->chain = *slot;
    *slot = d;
    return d;
}

static void dev_drop(struct held *h, struct held_dev *d)
{
    struct held_dev **slot = &h->buckets[bucket_of(d->device_id)];
    while (*slot != d)
        slot = &(*slot)->chain;
    *slot = d->chain;
    dev_put(h, d);
}

/* Take hc out of its device's list (mutex held); it stays in the FIFO, gone. Returns its
 * job if that was the job's last held copy. */
static struct writer_job *unlink_copy(struct held *h, struct held_copy *hc)
{
    struct held_dev *d = hc->dev;
    if (hc->prev)
        hc->prev->next = hc->next;
    else
        d->head = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    else
        d->tail = hc->prev;
    if (!d->head)
        dev_drop(h, d);
    hc->dev = NULL;
    h->n--;
    return --hc->job->n_held == 0 ? hc->job : NULL;
}

/* Free the gone copies at the FIFO's front (mutex held). */
static void fifo_trim(struct held *h)
{
    while (h->fifo_head && !h->fifo_head->dev) {
        struct held_copy *hc = h->fifo_head;
        h->fifo_head = hc->fifo_next;
        copy_put(h, hc);
    }
    if (!h->fifo_head)
        h->fifo_tail = NULL;
}

void held_free(struct held *h)
{
    if (!h)
        return;
    while (h->fifo_head) {
        struct held_copy *hc = h->fifo_head;
        h->fifo_head = hc->fifo_next;
        if (hc->dev) {
            struct writer_job *j = unlink_copy(h, hc);
            if (j)
                writer_job_free(j);
        }
        free(hc);
    }
    struct held_copy *copy_lists[] = {h->free_copies, h->stash_copies};
    struct held_dev *dev_lists[] = {h->free_devs, h->stash_devs};
    for (size_t i = 0; i < 2; i++) {
        while (copy_lists[i]) {
            struct held_copy *hc = copy_lists[i];
            copy_lists[i] = hc->fifo_next;
            free(hc);
        }
        while (dev_lists[i]) {
            struct held_dev *d = dev_lists[i];
            dev_lists[i] = d->chain;
            free(d);
        }
    }
    pthread_mutex_destroy(&h->mu);
    free(h);
}

size_t held_count(struct held *h)
{
    pthread_mutex_lock(&h->mu);
    size_t n = h->n;
    pthread_mutex_unlock(&h->mu);
    return n;
}

size_t held_room(struct held *h)
{
    pthread_mutex_lock(&h->mu);
    size_t room = h->n < h->max ? h->max - h->n : 0;
    pthread_mutex_unlock(&h->mu);
    return room;
}

struct held_copy *held_copy_new(struct held *h)
{
    if (!h->stash_copies || !h->stash_devs) {
        pthread_mutex_lock(&h->mu);
        if (!h->stash_copies) {
            h->stash_copies = h->free_copies;
            h->free_copies = NULL;
            h->n_free_copies = 0;
        }
        if (!h->stash_devs) {
            h->stash_devs = h->free_devs;
            h->free_devs = NULL;
            h->n_free_devs = 0;
        }
        pthread_mutex_unlock(&h->mu);
    }
    struct held_copy *hc = h->stash_copies;
    if (hc)
        h->stash_copies = hc->fifo_next;
    else
        hc = malloc(sizeof *hc);
    struct held_dev *d = h->stash_devs;
    if (d)
        h->stash_devs = d->chain;
    else
        d = malloc(sizeof *d);
    if (!hc || !d) {
        free(hc);
        free(d);
        return NULL;
    }
    memset(hc, 0, sizeof *hc);
    hc->spare = d;
    return hc;
}

void held_copy_free(struct held *h, struct held_copy *hc)
{
    if (!hc)
        return;
    if (hc->spare) {
        hc->spare->chain = h->stash_devs;
        h->stash_devs = hc->spare;
    }
    hc->fifo_next = h->stash_copies;
    h->stash_copies = hc;
}

void held_add(struct held *h, struct held_copy *hc, struct writer_job *j, size_t k, uint64_t id,
              uint64_t due_us)
{
    hc->job = j;
    hc->k = (uint32_t)k;
    hc->id = id;
    hc->due_us = due_us;
    pthread_mutex_lock(&h->mu);
    struct held_dev *d = dev_find(h, j->copies[k].device_id, &hc->spare);
    hc->dev = d;
    hc->prev = d->tail;
    if (d->tail)
        d->tail->next = hc;
    else
        d->head = hc;
    d->tail = hc;
    if (h->fifo_tail)
        h->fifo_tail->fifo_next = hc;
    else
        h->fifo_head = hc;
    h->fifo_tail = hc;
    h->n++;
    dev_put(h, hc->spare);
    hc->spare = NULL;
    pthread_mutex_unlock(&h->mu);
}

/* d's held copy with this id, not being written (mutex held); NULL if none. */
static struct held_copy *find_ackable(struct held_dev *d, uint64_t id)
{
    for (struct held_copy *hc = d->head; hc && hc->id <= id; hc = hc->next)
        if (hc->id == id)
            return hc->writing ? NULL : hc;
    return NULL;
}

size_t held_ack(struct held *h, const char *device_id, uint64_t *ids, size_t *n,
                struct writer_job **done)
{
    size_t keep = 0, matched = 0;
    pthread_mutex_lock(&h->mu);
    struct held_dev *d = dev_find(h, device_id, NULL);
    for (size_t i = 0; i < *n; i++) {
        /* d goes when its last copy does: look it up again only then */
        struct held_copy *hc = d ? find_ackable(d, ids[i]) : NULL;
        if (!hc) {
            ids[keep++] = ids[i];
            continue;
        }
        matched++;
        bool last_of_device = d->head == hc && d->tail == hc;
        struct writer_job *j = unlink_copy(h, hc);
        if (last_of_device)
            d = NULL;
        if (j) {
            j->next = *done;
            *done = j;
        }
    }
    pthread_mutex_unlock(&h->mu);
    *n = keep;
    return matched;
}

size_t held_due(struct held *h, uint64_t now_us, bool all, struct held_copy **out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&h->mu);
    fifo_trim(h);
    for (struct held_copy *hc = h->fifo_head; hc && n < max; hc = hc->fifo_next) {
        if (!hc->dev || hc->writing)
            continue;
        if (!all && hc->due_us > now_us)
            break;
        hc->writing = true;
        out[n++] = hc;
    }
    pthread_mutex_unlock(&h->mu);
    return n;
}

void held_unmark(struct held *h, struct held_copy **hcs, size_t n)
{
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < n; i++)
        hcs[i]->writing = false;
    pthread_mutex_unlock(&h->mu);
}

uint64_t held_next_due(struct held *h)
{
    pthread_mutex_lock(&h->mu);
    fifo_trim(h);
    uint64_t due = h->fifo_head ? h->fifo_head->due_us : 0;
    pthread_mutex_unlock(&h->mu);
    return due;
}


struct writer_job *held_written(struct held *h, struct held_copy *hc)
{
    pthread_mutex_lock(&h->mu);
    struct writer_job *j = unlink_copy(h, hc);
    pthread_mutex_unlock(&h->mu);
    return j;
}

struct writer_job *held_copy_job(const struct held_copy *hc, size_t *k)
{
    *k = hc->k;
    return hc->job;
}

/* Every field of hc's envelope but the body and sender_username. */
static void envelope_fields(const struct held_copy *hc, struct store_envelope *e)
{
    const struct writer_job *j = hc->job;
    const struct writer_copy *cp = &j->copies[hc->k];
    memset(e, 0, sizeof *e);
    e->id = hc->id;
    e->kind = STORE_ENV_MESSAGE;
    memcpy(e->device_id, cp->device_id, sizeof e->device_id);
    memcpy(e->user_id, cp->user_id, sizeof e->user_id);
    memcpy(e->sender_user, j->c->user_id, sizeof e->sender_user);
    memcpy(e->sender_device, j->c->device_id, sizeof e->sender_device);
    memcpy(e->client_msg_id, j->msgid, sizeof e->client_msg_id);
    memcpy(e->group_id, j->group_id, sizeof e->group_id);
    e->created_at_ms = j->created_ms;
    e->expires_at = j->expires_at;
}

void held_envelope(const struct held_copy *hc, struct store_envelope *e)
{
    const struct writer_copy *cp = &hc->job->copies[hc->k];
    envelope_fields(hc, e);
    e->body = cp->sealed;
    e->body_len = cp->sealed_len;
}

/* hc as store_queue_fetch would return it, sealed here from the sender's ciphertext
 * (never from the writer's sealed copy, which the writer may be making meanwhile). Mutex
 * held. */
static enum parley_err fetched_envelope(const struct held *h, const struct held_copy *hc,
                                        struct store_envelope *e)
{
    const struct writer_job *j = hc->job;
    const struct writer_copy *cp = &j->copies[hc->k];
    envelope_fields(hc, e);
    memcpy(e->sender_username, j->c->username, sizeof e->sender_username);
    e->body_len = 0;
    e->body = malloc(cp->ct_len + SEAL_OVERHEAD);
    if (!e->body)
        return PARLEY_ERR_NOMEM;
    enum parley_err err = seal_envelope(h->key, cp->device_id, j->c->device_id, j->msgid, cp->ct,
                                        cp->ct_len, e->body, &e->body_len);
    if (err) {
        free(e->body);
        e->body = NULL;
    }
    return err;
}

enum parley_err held_fetch(struct held *h, const char *device_id, uint64_t after, size_t limit,
                           struct store_envelope **out, size_t *n_out)
{
    enum parley_err err = PARLEY_OK;
    struct store_envelope *v = NULL;
    size_t n = 0, cap = 0;
    pthread_mutex_lock(&h->mu);
    struct held_dev *d = dev_find(h, device_id, NULL);
    for (struct held_copy *hc = d ? d->head : NULL; hc && n < limit; hc = hc->next) {
        if (hc->id <= after)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            struct store_envelope *nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                err = PARLEY_ERR_NOMEM;
                break;
            }
            v = nv;
            cap = ncap;
        }
        if ((err = fetched_envelope(h, hc, &v[n])))
            break;
        n++;
    }
    pthread_mutex_unlock(&h->mu);
    if (err) {
        store_envelopes_free(v, n);
        return err;
    }
    *out = v;
    *n_out = n;
    return PARLEY_OK;
}
