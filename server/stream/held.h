/*
 * held.h — write-back: copies handed to connected devices before they are written.
 *
 * DESIGN: "the sender's acknowledgement means durable once the envelope is committed or
 * once every recipient device has acknowledged it; an envelope acknowledged before the
 * next group commit is never written." The writer commits a send's checks, its
 * remembered id and its envelope ids, but holds (store_copy.hold) each copy whose device
 * is connected instead of writing its row, and pushes it. A held copy then ends in one
 * of two ways:
 *   - the device acks it (held_ack): forgotten, never written — the hot path of a chat
 *     between two online devices never touches the disk for the message itself;
 *   - it is still unacked writeback_ms later (held_due): the writer writes it with a PUT
 *     op under its id and forgets it once that commits (held_written).
 * The sender's SendResult OK waits until every copy is written or acked, so "OK" still
 * means "kept": in the store, or in the hands of every recipient device. A crash loses
 * only held copies whose senders were not yet told OK (they resend the same id).
 *
 * Drains read the set too (held_fetch), so "queued" means "in the store or held": a
 * connection that starts a drain, or falls back to one when its window is full, while a
 * copy is held still finds it. Read held first, then the store: a copy written and
 * forgotten between the two reads is in the store's read.
 *
 * Threads: the writer adds, takes due copies and marks them written; loops match acks
 * (writer_submit) and the thread pool reads drains; one mutex guards the lists. A held
 * copy points at its writer_job; whoever takes the job's last copy out of the set gets
 * the job back and answers the sender (the job is not touched by anyone else after).
 */
#ifndef PARLEY_SERVER_STREAM_HELD_H
#define PARLEY_SERVER_STREAM_HELD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parley/err.h"

struct held;
struct held_copy;
struct writer_job;
struct store_envelope;
struct seal_key;

/* A set holding at most max_copies copies at a time; drains get copies sealed with key
 * (held copies are not sealed: most are never written). */
PARLEY_WUR enum parley_err held_new(size_t max_copies, const struct seal_key *key,
                                    struct held **out);
/* Free the set. Copies still held are dropped; a job whose copies all went is freed. */
void held_free(struct held *h);

/* Copies held now; how many more fit. */
size_t held_count(struct held *h);
size_t held_room(struct held *h);

/* A copy's bookkeeping, allocated before the commit that gives it its id so that
 * holding it afterwards cannot fail. NULL on OOM (then write the copy instead). */
struct held_copy *held_copy_new(struct held *h);
/* Give back one that was not added (its send was refused or the batch failed). These two
 * run on the writer thread only. */
void held_copy_free(struct held *h, struct held_copy *hc);
/* Hold copy k of send j as hc (its envelope id given, j->n_held counting it), due for
 * writing at due_us (monotonic). Copies must be added in increasing id order. */
void held_add(struct held *h, struct held_copy *hc, struct writer_job *j, size_t k, uint64_t id,
              uint64_t due_us);

/* device_id acked ids[0..*n). An id naming a held copy forgets it (never written) and
 * leaves ids; the others (not held, or being written: the store has them, or will once
 * the write commits) keep their order and *n becomes their count. Returns how many ids
 * matched. A send whose last held copy this was is linked through ->next onto *done. */
size_t held_ack(struct held *h, const char *device_id, uint64_t *ids, size_t *n,
                struct writer_job **done);

/* Up to max copies due by now_us (every copy when all), oldest first, into out, marked
 * as being written: acks no longer take them. They stay held until held_written, or
 * held_unmark if the write failed. */
size_t held_due(struct held *h, uint64_t now_us, bool all, struct held_copy **out, size_t max);
void held_unmark(struct held *h, struct held_copy **hcs, size_t n);
/* When the next copy falls due (monotonic µs), or 0 when nothing is held. */
uint64_t held_next_due(struct held *h);
/* A due copy's send and the copy's index in it (the writer seals it before the PUT). */
struct writer_job *held_copy_job(const struct held_copy *hc, size_t *k);
/* hc as the envelope to write (a PUT): every field but sender_username filled; e->body
 * is the job's sealed copy (NULL until the writer sealed it). Writer thread. */
void held_envelope(const struct held_copy *hc, struct store_envelope *e);
/* The due copy hc was written (or its device is gone): forget it. Returns its job when
 * that was its last held copy, else NULL. */
struct writer_job *held_written(struct held *h, struct held_copy *hc);

/* Held copies for device_id with id > after, at most limit, in id order, as envelopes
 * like store_queue_fetch returns (sealed bodies copied). Free with store_envelopes_free. */
PARLEY_WUR enum parley_err held_fetch(struct held *h, const char *device_id, uint64_t after,
                                      size_t limit, struct store_envelope **out, size_t *n_out);

#endif
