/*
 * store_messaging.h — the messaging half of the store interface: device keys (X3DH
 * prekey bundles), groups, and the queue of envelopes waiting for recipient devices.
 * Included by store.h; same rules as there (any thread, blocking, `now` passed in,
 * wrappers check arguments, arrays returned are malloc'd and freed by the caller).
 *
 * Keys (POLICY P6): only public keys are stored. A device's identity key is fixed for
 * its life. One-time prekeys are handed out at most once each: store_keys_take_bundles
 * deletes the prekey it returns in the same transaction that reads it.
 *
 * Groups (P20): the server keeps only what fan-out needs: the name, the members, who is
 * admin, and times. Permission checks (who may add, remove, rename) belong to the API
 * layer; the store only keeps the rows consistent.
 *
 * Queue (P8, P9): one envelope row per recipient device, its body sealed at rest by the
 * caller (the store treats it as opaque bytes), with an expiry. All queue mutations go
 * through store_queue_apply, which applies a batch of sends and acks in ONE transaction
 * and one commit (group commit: many envelopes, one fsync). An envelope is deleted in
 * the transaction that records its ack. Envelope ids are assigned by the store, increase
 * strictly in the order sends are applied, and are never reused.
 *
 * Write-back (DESIGN "the hot path need not touch the disk"): a copy may be *held*: the
 * send is checked, remembered and given its envelope id like any other, but its row is
 * not written. The caller keeps it in memory, hands it to the connected device, and
 * either forgets it when that device acks it first or writes it later with a PUT op
 * under the id it was given. Ids are recorded as given (sqlite_sequence) in the
 * transaction that gives them out, so a held copy that is never written never has its
 * id reused.
 */
#ifndef PARLEY_SERVER_STORE_MESSAGING_H
#define PARLEY_SERVER_STORE_MESSAGING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "parley/err.h"

#define STORE_KEY_BYTES 32          /* Ed25519 identity key, X25519 prekeys */
#define STORE_SIG_BYTES 64          /* Ed25519 signature */
#define STORE_ONETIME_PER_UPLOAD 100
#define STORE_ONETIME_STOCK_MAX 200 /* one-time prekeys kept per device */
#define STORE_MSGID_BYTES 16        /* client message id */
#define STORE_GROUP_NAME_MAX 256    /* bytes: 64 code points */
#define STORE_GROUP_MEMBERS_MAX 256

struct store;

/* ---------------------------------------------------------------- keys */

struct store_prekey_pub {
    uint32_t id;
    uint8_t pk[STORE_KEY_BYTES];
};

/* Input of store_keys_put. The caller has verified spk_sig against identity_key. */
struct store_keys_upload {
    const char *user_id;
    const char *device_id;
    uint8_t identity_key[STORE_KEY_BYTES];
    bool has_signed_prekey; /* required on the first upload; replaces the old one */
    uint32_t spk_id;
    uint8_t spk[STORE_KEY_BYTES];
    uint8_t spk_sig[STORE_SIG_BYTES];
    const struct store_prekey_pub *onetime; /* added to the stock; same id replaces */
    size_t n_onetime;                        /* <= STORE_ONETIME_PER_UPLOAD */
    int64_t now;
};

/* One device's public bundle as handed out. has_opk false: the stock was empty. */
struct store_bundle {
    char user_id[STORE_ID_LEN + 1];
    char device_id[STORE_ID_LEN + 1];
    uint8_t identity_key[STORE_KEY_BYTES];
    uint32_t spk_id;
    uint8_t spk[STORE_KEY_BYTES];
    uint8_t spk_sig[STORE_SIG_BYTES];
    bool has_opk;
    uint32_t opk_id;
    uint8_t opk[STORE_KEY_BYTES];
};

struct store_user_device {
    char user_id[STORE_ID_LEN + 1];
    char device_id[STORE_ID_LEN + 1];
};

/* Upload keys for (user_id, device_id), atomically. Errors: NOTFOUND (no such device of
 * that user), EXISTS (identity_key differs from the one stored for the device), INVAL
 * (first upload without a signed prekey), LIMIT (stock would exceed
 * STORE_ONETIME_STOCK_MAX: nothing changed). *stock_out (may be NULL): one-time prekeys
 * in stock afterwards. */
PARLEY_WUR enum parley_err store_keys_put(struct store *s, const struct store_keys_upload *in,
                                          size_t *stock_out);
/* Bundles of every keyed device of user_id other than except_device (device_id NULL), or
 * of that one device, in device creation order; each consumes the device's lowest-id
 * one-time prekey, in one transaction. except_device (may be NULL) is the asking device,
 * which never needs its own bundle. NOTFOUND when there is no keyed device to return. */
PARLEY_WUR enum parley_err store_keys_take_bundles(struct store *s, const char *user_id,
                                                   const char *device_id,
                                                   const char *except_device,
                                                   struct store_bundle **out, size_t *n_out);
/* One-time prekeys left for device_id (0 when none or unknown device). */
PARLEY_WUR enum parley_err store_keys_stock(struct store *s, const char *device_id,
                                            size_t *n_out);
/* The user's devices that have uploaded keys (they can receive messages), oldest first.
 * An unknown user gives an empty list. */
PARLEY_WUR enum parley_err store_keyed_devices(struct store *s, const char *user_id,
                                               struct store_user_device **out, size_t *n_out);

/* ---------------------------------------------------------------- groups */

struct store_group {
    char id[STORE_ID_LEN + 1];
    char name[STORE_GROUP_NAME_MAX + 1];
    int64_t created_at;
    int64_t updated_at; /* name or membership changed */
};

struct store_group_member {
    char user_id[STORE_ID_LEN + 1];
    char username[STORE_USERNAME_MAX + 1]; /* filled on read; ignored on write */
    bool admin;
    int64_t joined_at;
};

/* Create g with its members (n >= 1; the caller puts the creator first, as admin).
 * EXISTS if the id is taken, NOTFOUND if a member's user does not exist, LIMIT if
 * n > STORE_GROUP_MEMBERS_MAX, INVAL on a repeated member. */
PARLEY_WUR enum parley_err store_group_create(struct store *s, const struct store_group *g,
                                              const struct store_group_member *members,
                                              size_t n);
/* The group and (if members is not NULL) its members in joining order. NOTFOUND. */
PARLEY_WUR enum parley_err store_group_get(struct store *s, const char *group_id,
                                           struct store_group *out,
                                           struct store_group_member **members,
                                           size_t *n_members);
/* The groups user_id is a member of, most recently updated first. */
PARLEY_WUR enum parley_err store_group_list(struct store *s, const char *user_id,
                                            struct store_group **out, size_t *n_out);
/* Add m (joined_at = now) or, if already a member, set its admin flag. NOTFOUND (group
 * or user), LIMIT (group full). Updates updated_at. */
PARLEY_WUR enum parley_err store_group_member_set(struct store *s, const char *group_id,
                                                  const struct store_group_member *m,
                                                  int64_t now);
/* Remove a member; the group is deleted with its last member. NOTFOUND if not a member. */
PARLEY_WUR enum parley_err store_group_member_remove(struct store *s, const char *group_id,
                                                     const char *user_id, int64_t now);
PARLEY_WUR enum parley_err store_group_rename(struct store *s, const char *group_id,
                                              const char *name, int64_t now);

/* ---------------------------------------------------------------- queue */

enum store_envelope_kind {
    STORE_ENV_MESSAGE = 0, /* ciphertext from a sender device */
    STORE_ENV_EXPIRED = 1, /* notice to a sender device: its message expired undelivered */
};

/* A queued envelope as read back (store_queue_fetch, store_queue_purge_expired). */
struct store_envelope {
    uint64_t id;
    enum store_envelope_kind kind;
    char device_id[STORE_ID_LEN + 1];     /* recipient device */
    char user_id[STORE_ID_LEN + 1];       /* recipient user */
    char sender_user[STORE_ID_LEN + 1];   /* MESSAGE: the author */
    char sender_username[STORE_USERNAME_MAX + 1]; /* filled on read ("" if gone) */
    char sender_device[STORE_ID_LEN + 1];
    uint8_t client_msg_id[STORE_MSGID_BYTES];
    char group_id[STORE_ID_LEN + 1];      /* "" for 1:1 */
    char peer_user[STORE_ID_LEN + 1];     /* EXPIRED: the recipient who never fetched it */
    uint32_t peer_devices;                /* EXPIRED: how many of its devices missed it */
    int64_t created_at_ms;
    int64_t expires_at;                   /* seconds */
    uint8_t *body;                        /* MESSAGE: sealed bytes as given; EXPIRED: NULL */
    size_t body_len;
};
/* Free an array of envelopes (their bodies too). Accepts NULL. */
void store_envelopes_free(struct store_envelope *e, size_t n);

/* One recipient device's copy inside a send. */
struct store_copy {
    const char *device_id;
    const uint8_t *body; /* sealed by the caller; may be NULL when held */
    size_t body_len;
    bool hold;           /* write-back: give it an id, but do not write the row */
    /* out, when the send is STORE_SEND_OK: */
    uint64_t envelope_id;
    char user_id[STORE_ID_LEN + 1];
};

enum store_send_status {
    STORE_SEND_OK = 0,
    STORE_SEND_DUPLICATE,   /* (sender_device, client_msg_id) accepted before, and a copy
                               of it written (a send whose copies were all held counts
                               once one of them is written by a PUT) */
    STORE_SEND_STALE,       /* copies do not match the recipients: see missing/extra */
    STORE_SEND_NOT_MEMBER,  /* group send from a non-member */
    STORE_SEND_NO_TARGET,   /* to_user or group unknown */
    STORE_SEND_QUEUE_FULL,  /* a recipient device already holds max_queue envelopes */
};

struct store_queue_send {
    /* in */
    const char *sender_user;
    const char *sender_device;
    uint8_t client_msg_id[STORE_MSGID_BYTES];
    const char *to_user;  /* exactly one of to_user and group_id is non-NULL */
    const char *group_id;
    struct store_copy *copies;
    size_t n_copies;
    int64_t created_at_ms;
    int64_t expires_at;   /* seconds; also how long the id is remembered for DUPLICATE */
    size_t max_queue;     /* per recipient device */
    /* out */
    enum store_send_status status;
    struct store_user_device *missing; /* STALE: malloc'd; free with free() */
    size_t n_missing;
    struct store_user_device *extra;
    size_t n_extra;
};

struct store_queue_ack {
    /* in */
    const char *device_id;  /* only this device's envelopes are deleted */
    const uint64_t *ids;
    size_t n_ids;
    /* out */
    size_t deleted;
};

/* Write a held copy (see "Write-back" above): env->id is the id its send gave it, the
 * other fields as store_queue_fetch would return them (kind MESSAGE; sender_username
 * ignored), env->body sealed. Written only if the device still exists (it may have been
 * revoked or its account deleted while the copy was held); never refused otherwise. */
struct store_queue_put {
    /* in */
    const struct store_envelope *env;
    /* out */
    bool stored;
};

enum store_queue_op_kind { STORE_QOP_SEND, STORE_QOP_ACK, STORE_QOP_PUT };

struct store_queue_op {
    enum store_queue_op_kind kind;
    union {
        struct store_queue_send send;
        struct store_queue_ack ack;
        struct store_queue_put put;
    } u;
};

/*
 * Apply ops in order, in one transaction with one commit. Recipients of a send: for
 * to_user, the keyed devices of to_user and of sender_user, minus sender_device; for
 * group_id, the keyed devices of every member, minus sender_device. Each op gets its
 * own status (a STALE send does not affect the others). Returns PARLEY_OK when the
 * transaction committed (then every op's out fields are set), else PARLEY_ERR_STORE /
 * NOMEM and nothing was applied (out fields unspecified; missing/extra freed).
 * Free the missing/extra arrays of each send with store_queue_op_cleanup.
 */
PARLEY_WUR enum parley_err store_queue_apply(struct store *s, struct store_queue_op *ops,
                                             size_t n, int64_t now);
void store_queue_op_cleanup(struct store_queue_op *op);
/* Up to limit envelopes of device_id with id > after_id and expires_at > now, by id. */
PARLEY_WUR enum parley_err store_queue_fetch(struct store *s, const char *device_id,
                                             uint64_t after_id, size_t limit, int64_t now,
                                             struct store_envelope **out, size_t *n_out);
/* Envelopes currently held for device_id. */
PARLEY_WUR enum parley_err store_queue_count(struct store *s, const char *device_id,
                                             size_t *n_out);
/*
 * Retention (P9): in one transaction, delete up to limit envelopes with expires_at <= now
 * and the remembered client message ids past their expiry; for every expired MESSAGE,
 * queue one EXPIRED notice per (message, recipient user other than the sender) to each
 * keyed device of its sender (expiring at now + notice_ttl_s), unless the sender is gone
 * (a sync copy to the sender's own device expiring is not news). Returns the
 * notices created (with ids) so the caller can push them; *n_purged (may be NULL) gets
 * the number of envelopes deleted.
 */
PARLEY_WUR enum parley_err store_queue_purge_expired(struct store *s, int64_t now,
                                                     size_t limit, int64_t notice_ttl_s,
                                                     struct store_envelope **notices,
                                                     size_t *n_notices, size_t *n_purged);

#endif
