/*
 * pack.h — building the server's frames (ServerFrame) as ready-to-send bytes.
 *
 * A packed frame is an outmsg: the bytes plus what the owning loop must do with them
 * (a reply, an ack reply that opens the delivery window, a push of an envelope, or a
 * close order for a replaced or revoked connection). Outmsgs are made on any thread (the writer,
 * the thread pool, a loop) and handed to the connection's loop with stream_post
 * (stream_int.h), which owns them from then on.
 *
 * Privacy: an outmsg holds E2E ciphertext (never plaintext) and lives in memory only.
 */
#ifndef PARLEY_SERVER_STREAM_PACK_H
#define PARLEY_SERVER_STREAM_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "block_pool.h"
#include "proto/stream.pb-c.h"

struct sconn;
struct store_envelope;

enum out_kind {
    OUT_REPLY = 0, /* answer to a request: send as is */
    OUT_PUSH,      /* Envelope push with env_id: goes through delivery (dedup, window) */
    OUT_CLOSE,     /* no bytes: close the connection, it was replaced (4000) */
    OUT_REVOKE,    /* no bytes: close the connection, its session ended (4001) */
};

struct outmsg {
    struct outmsg *next;  /* free for the owner's lists */
    struct sconn *c;      /* set by stream_post (holds a reference) */
    struct block_pool *pool; /* where its memory goes back (NULL: free()) */
    enum out_kind kind;
    uint64_t env_id;      /* OUT_PUSH */
    size_t len;
    uint8_t data[];
};

/* Pushes are packed on the writer thread and freed on loops: those that fit take a
 * block of OUTMSG_BLOCK bytes (header included) from a block pool (block_pool.h) set
 * up with these sizes. */
#define OUTMSG_BLOCK 512
#define OUTMSG_POOL_MAX 8192
/* Free m (back to its pool if it came from one). Accepts NULL. */
void outmsg_free(struct outmsg *m);

/* Pack f into a new outmsg of the given kind (malloc'd; free with outmsg_free()). NULL
 * on OOM. */
struct outmsg *pack_frame(const Parley__Stream__ServerFrame *f, enum out_kind kind);
/* Pack f into buf (cap bytes): its length into *len, or false (nothing written) when f
 * needs more room or is malformed. For small replies sent at once, with no allocation. */
bool pack_frame_bytes(const Parley__Stream__ServerFrame *f, uint8_t *buf, size_t cap,
                      size_t *len);
/* Error{code, message} answering request id (0: a frame that could not be decoded). */
struct outmsg *pack_error(uint64_t id, const char *code, const char *message);
/* An Envelope push for a freshly committed MESSAGE (ciphertext as the sender gave it),
 * in a block of pool when it fits (pool may be NULL). */
struct outmsg *pack_message(struct block_pool *pool, uint64_t env_id, const char *sender_user,
                            const char *sender_username, const char *sender_device,
                            const uint8_t msgid[16], const char *group_id,
                            int64_t server_time_ms, const uint8_t *ct, size_t ct_len);
/* An Envelope push for a stored envelope e; ct is the unsealed ciphertext for a MESSAGE
 * (ignored for an EXPIRED notice). */
struct outmsg *pack_stored(const struct store_envelope *e, const uint8_t *ct, size_t ct_len);

#endif
