/*
 * writer.h — the one writer thread of the message queue: group commit.
 *
 * Loops submit jobs (a send with its sealed copies, or an ack). The writer takes what
 * is queued, waits up to cfg commit_delay_us for more (never longer, and not at all
 * once WRITER_BATCH_MAX sends wait), applies the batch with ONE store_queue_apply call
 * (one transaction, one fsync), and only then posts the results back to the owning
 * loops: SendResult / AckResult, and the new envelopes to the recipient devices
 * connected anywhere (hub). Pushes are posted in id order, so each loop sees envelope
 * ids increasing.
 *
 * Write-back (held.h): a copy for a device connected at the time is held, not written;
 * SendResult OK goes out once every copy of the send is written or acked by its device.
 * writer_submit matches an ack's ids against the held copies at once, on the acker's
 * loop, so acks of held copies never wait for a batch; the other ids are queued (acks
 * in their own queue; every batch takes all of them). A copy not acked within cfg
 * writeback_ms is written. With writeback_ms 0 nothing is held: OK follows the commit.
 *
 * The input queue is bounded (WRITER_MAX_JOBS and WRITER_MAX_BYTES): writer_submit
 * refuses with PARLEY_ERR_LIMIT rather than grow, and the connection answers the request
 * with Error "unavailable" (back-pressure). The writer also runs the retention pass
 * (purge_run) every cfg purge_interval_s, between batches.
 *
 * Threads: writer_submit from any thread; new/start/stop/free from the main thread.
 */
#ifndef PARLEY_SERVER_STREAM_WRITER_H
#define PARLEY_SERVER_STREAM_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "block_pool.h"
#include "parley/err.h"
#include "store/store.h"

#define WRITER_MAX_JOBS 65536 /* 1,000 clients x 64 in flight; the bytes bound caps memory */
#define WRITER_MAX_BYTES (128u << 20)
#define WRITER_BATCH_MAX 512
#define WRITER_HELD_MAX 100000 /* copies held at once (write-back); beyond, written */
#define WRITER_ACK_GATHER_US 20000 /* a batch of acks only waits this long for more ... */
#define WRITER_ACK_BATCH_IDS 8192  /* ... unless this many ids are queued */

struct stream;
struct sconn;
struct writer;
struct held;

struct writer_copy {
    char device_id[STORE_ID_LEN + 1];
    char user_id[STORE_ID_LEN + 1]; /* the device's user: set by the commit */
    uint8_t *ct;      /* as the sender gave it (for pushes) */
    size_t ct_len;
    uint8_t *sealed;  /* sealed at rest (seal.h) by the writer when it is written; else NULL */
    size_t sealed_len;
};

enum writer_job_kind { WJOB_SEND, WJOB_ACK };

/* One request. Built by the connection's loop, owned by the writer once submitted. */
/* The fields every pass over a batch reads come first, in one cache line: a batch walks
 * hundreds of jobs that have left the cache since their loop made them. */
struct writer_job {
    struct writer_job *next;
    size_t bytes;     /* for the queue bound */
    struct sconn *c;  /* the requester (a reference) */
    struct writer_copy *copies;
    size_t n_copies;
    size_t n_held;    /* copies held (writer thread; held.c) */
    uint64_t req_id;
    enum writer_job_kind kind;
    bool packed;         /* copies and their ct live in the job's own allocation */
    /* send */
    int64_t created_ms;  /* set by the writer: when its batch accepted it */
    int64_t expires_at;  /* set by the writer */
    char to_user[STORE_ID_LEN + 1];  /* "" or the user id */
    char group_id[STORE_ID_LEN + 1]; /* "" or the group id */
    uint8_t msgid[STORE_MSGID_BYTES];
    /* ack */
    uint64_t *ids;
    size_t n_ids;
    size_t held_acked;   /* ids that named held copies (writer thread) */
    struct block_pool *pool; /* the pool its block came from, or NULL (malloc) */
};

#define WRITER_JOB_BLOCK 1024     /* send jobs up to this size come from the pool ... */
#define WRITER_JOB_POOL_MAX 4096  /* ... which keeps at most this many free blocks */

/* A zeroed send job of size bytes (the job, its copies, their ciphertexts:
 * writer_job.packed). Up to WRITER_JOB_BLOCK it is a block from w's pool: jobs come and
 * go a batch at a time, more at once than glibc's per-thread caches keep, so each
 * malloc and free of them took the slow path. NULL on OOM. */
struct writer_job *writer_job_new(struct writer *w, size_t size);
/* Free a job and everything it owns (drops its connection reference). Accepts NULL. */
void writer_job_free(struct writer_job *j);

PARLEY_WUR enum parley_err writer_new(struct stream *st, struct writer **out);
/* Start the thread. */
PARLEY_WUR enum parley_err writer_start(struct writer *w);
/* Queue j. On success the writer owns it; on error (LIMIT: queue full, CLOSED: the
 * writer is stopping) the caller still owns it. */
PARLEY_WUR enum parley_err writer_submit(struct writer *w, struct writer_job *j);
/* The held copies (deliver.c reads them in drains). */
struct held *writer_held(struct writer *w);
/* Commit what is queued and write what is held, then stop and join the thread.
 * Idempotent. */
void writer_stop(struct writer *w);
void writer_free(struct writer *w);

#endif
