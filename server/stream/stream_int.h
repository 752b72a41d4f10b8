/*
 * stream_int.h — private to server/stream/: the stream object and the per-connection
 * state shared by stream.c (the route and frames), deliver.c (drain and pushes),
 * writer.c (group commit), hub.c (who is connected where) and purge.c (expiry).
 *
 * A connection (struct sconn) is reference-counted because several threads hold it:
 * its WebSocket (until on_close), the hub (while registered), writer jobs, posted
 * outmsgs and thread-pool fetches. Everything below "loop thread only" is touched only
 * on the connection's own loop; ws is NULL once the WebSocket closed, and every
 * callback that arrives later checks it and drops its work.
 */
#ifndef PARLEY_SERVER_STREAM_INT_H
#define PARLEY_SERVER_STREAM_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "pack.h"
#include "ratelimit.h"
#include "store/store.h"

struct app;
struct hub;
struct writer;
struct seal_key;
struct ratelimit;
struct http_loop;
struct ws_conn;

#define STREAM_WINDOW 256      /* envelopes delivered but not yet acked, per connection */
#define STREAM_WINDOW_BYTES (2u << 20) /* and their bytes (the output queue holds 4 MiB) */
#define STREAM_PENDING_MAX 256 /* pushes held while a drain runs; beyond: refetch */
#define STREAM_BAD_FRAMES_MAX 3 /* undecodable frames before close 1002 */
#define STREAM_REPLY_INLINE 256 /* replies up to this size are encoded on the stack */
/* Every connection looks its session up again this often (the first time after a random
 * part of it, so connections spread out) and closes with 4001 when the session is gone:
 * the bound for a revocation or deletion made by another process (parleyd admin). */
#define STREAM_REVALIDATE_MS 3000

struct stream {
    struct app *app;
    struct seal_key *key;
    struct hub *hub;
    struct writer *writer;
    struct block_pool pushes; /* memory of the writer's pushes (pack.h: OUTMSG_BLOCK) */
    struct ratelimit *rl_send;
    /* counters (any thread) */
    atomic_uint_fast64_t accepted, delivered, acked, purged, commits, commit_ops, notices;
    atomic_uint_fast64_t held_acked, held_written; /* write-back (held.h) */
};

struct inflight {
    uint64_t id;
    size_t len;
    bool acked;
};

/* Laid out for size (issue #5: an idle stream, transport included, stays under 1 KiB):
 * pointers and 64-bit fields first, then the narrow counters and the flags, the strings
 * last (no padding between them): 232 bytes, a 240-byte malloc chunk (was 288). */
struct sconn {
    atomic_uint refs;
    uint32_t fl_bytes;  /* loop thread only: bytes of the in-flight envelopes */
    struct stream *st;
    struct http_loop *loop;
    struct sconn *hub_next, *hub_user_next; /* hub.c's chains, under its shard locks */
    /* loop thread only */
    struct ws_conn *ws;
    struct inflight *fl; /* ring of STREAM_WINDOW sent, unacked envelopes (id order);
                            allocated only while something is in flight */
    struct outmsg *pend_head, *pend_tail;
    uint64_t reval_at;  /* uv_now ms of the next session re-validation (stream.c) */
    uint64_t last_sent; /* highest envelope id sent on this connection */
    uint32_t backlog_sent;
    uint16_t fl_head, fl_n; /* < STREAM_WINDOW */
    uint16_t n_pend;        /* <= STREAM_PENDING_MAX */
    uint8_t bad_frames;     /* <= STREAM_BAD_FRAMES_MAX */
    bool reval_busy : 1;    /* a lookup is on the thread pool */
    bool draining : 1;      /* delivering from the store rather than from pushes */
    bool fetching : 1;      /* a fetch is on the thread pool */
    bool refetch : 1;       /* pushes were dropped while draining: fetch again at the end */
    bool drained_sent : 1;
    /* set before the connection is shared, read-only after */
    char user_id[STORE_ID_LEN + 1];
    char device_id[STORE_ID_LEN + 1];
    char username[STORE_USERNAME_MAX + 1];
    uint8_t token_hash[STORE_TOKEN_HASH_BYTES]; /* of the session that opened it */
    uint8_t send_rl[RATELIMIT_DIGEST_BYTES];    /* device_id's digest in st->rl_send */
};

_Static_assert(STREAM_WINDOW <= UINT16_MAX && STREAM_PENDING_MAX <= UINT16_MAX &&
                   STREAM_BAD_FRAMES_MAX < UINT8_MAX,
               "struct sconn's narrow counters");
/* The byte window is checked before each send, so fl_bytes stays below it plus one
 * envelope, itself bounded by the output queue (4 MiB by default). */
_Static_assert(STREAM_WINDOW_BYTES <= UINT32_MAX / 2, "struct sconn.fl_bytes");

void sconn_ref(struct sconn *c);
void sconn_unref(struct sconn *c);

/* Hand m to c's loop (any thread); consumes m in every case. A reply (OUT_REPLY) for a
 * connection of the calling thread's own loop is sent at once: an ack that completes a
 * send from a sender on the same loop needs no post to itself. */
void stream_post(struct sconn *c, struct outmsg *m);
/* The same, taking over a reference to c the caller holds (no atomic pair per post). */
void stream_post_ref(struct sconn *c, struct outmsg *m);
/* Between these two calls (on one thread), stream_post gathers outmsgs per loop instead of
 * posting each: the end posts one list per loop, in the order they were given. The writer
 * brackets each batch's results with them (one post per loop per batch, not per message). */
void stream_post_gather_begin(void);
void stream_post_gather_end(void);
/* Answer c with the reply frame f (any thread): on c's own loop outside a gather it is
 * encoded on the stack and queued at once, with no allocation; otherwise packed and
 * posted as stream_post does. false only when out of memory (nothing sent). */
bool stream_reply(struct sconn *c, const Parley__Stream__ServerFrame *f);
/* Send bytes now (loop thread); false if the connection is closed or closing. */
bool stream_send_now(struct sconn *c, const struct outmsg *m);

/* deliver.c (loop thread): start the drain of a freshly registered connection; a push
 * arrived (takes m); the client acked ids (opens the window); the connection closed. */
void deliver_start(struct sconn *c);
void deliver_push(struct sconn *c, struct outmsg *m);
void deliver_acked(struct sconn *c, const uint64_t *ids, size_t n);
void deliver_closed(struct sconn *c);

/* purge.c (writer thread): one retention pass (expired envelopes, notices, sessions). */
void purge_run(struct stream *st);

#endif
