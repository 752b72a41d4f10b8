/*
 * parley/messaging.h — end-to-end encrypted messaging on top of a logged-in
 * struct parley_client: device keys, sessions, sending, receiving, history, safety
 * numbers.
 *
 * A struct parley_messenger binds a client handle (borrowed: it must outlive the
 * messenger) to the device's encrypted local store (<home>/local.db, see docs/crypto.md
 * "Messaging"): private keys, Double Ratchet sessions, contacts, history and the ids of
 * messages already processed. Nothing secret ever leaves the device: the server only
 * sees ciphertext per recipient device (POLICY P10).
 *
 * Keys: parley_messenger_open makes sure this device has an identity key, a signed
 * prekey and one-time prekeys, and that they are uploaded (PUT /v1/keys); one-time
 * prekeys are topped up whenever the server reports its stock low.
 *
 * Sending: parley_messenger_send_text encrypts one copy for every device of the
 * recipient and every other device of the sender (X3DH on first contact with a device,
 * Double Ratchet after), and returns once the server answered OK (durably stored). When
 * the server says the device list is stale it fetches the missing devices' keys, drops
 * the extra ones and resends with the same message id (idempotent).
 *
 * Receiving: parley_messenger_next returns one event at a time. A message is decrypted,
 * deduplicated by message id, written to the local history and only then acknowledged
 * to the server, so a crash never loses one and a redelivery is never shown twice.
 * Delivery receipts go back to the sender automatically (inside the ciphertext).
 *
 * Trust: the first identity key seen for a contact's device is remembered (trust on
 * first use); a different key later is still used but reported (PARLEY_EVENT_IDENTITY_
 * CHANGED, and parley_contact_info.identity_changed) until the user re-verifies the
 * safety number.
 *
 * Blocking: every call blocks up to the client's timeout. Threads: one thread at a time
 * per messenger. Errors: enum parley_err, detail on the client handle
 * (parley_client_last_error).
 */
#ifndef PARLEY_MESSAGING_H
#define PARLEY_MESSAGING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "parley/client.h"
#include "parley/err.h"

#define PARLEY_MESSAGE_ID_HEX_BYTES 33U      /* 32 hex digits + NUL */
#define PARLEY_MESSAGE_MAX_TEXT (64U * 1024U) /* bytes of UTF-8 text per message */
#define PARLEY_PREKEY_BATCH 100U             /* one-time prekeys per upload */
#define PARLEY_PREKEY_LOW 20U                /* the server's "low" threshold */
#define PARLEY_SAFETY_NUMBER_TEXT_BYTES 61U  /* 60 digits + NUL */

struct parley_messenger;

struct parley_messenger_options {
    /* Diagnostics and tests only: store received messages but never acknowledge them,
     * so the server delivers them again (and local dedup must hide the copies). */
    bool no_ack;
    /* Do not send delivery receipts for received messages. */
    bool no_receipts;
};

/* Open the local store of c's home and make sure this device's keys exist and are
 * uploaded. c must be logged in (PARLEY_ERR_DENIED) and is borrowed until
 * parley_messenger_free. opts may be NULL (defaults). Errors: PARLEY_ERR_DENIED (not
 * logged in, or the local store's key/passphrase is wrong), PARLEY_ERR_STORE,
 * PARLEY_ERR_SERVER / IO / TIMEOUT (upload). *out only on success. */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_messenger_open(struct parley_client *c, const struct parley_messenger_options *opts,
                      struct parley_messenger **out);
/* Close the stream (waiting briefly for outstanding acks), close the store, wipe. NULL ok. */
PARLEY_EXPORT void parley_messenger_free(struct parley_messenger *m);

/* Upload more one-time prekeys if the server's stock is below PARLEY_PREKEY_LOW (called
 * by open; call it again in long-running programs). *stock (may be NULL) receives the
 * server's stock after the call. */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_messenger_refill_keys(struct parley_messenger *m,
                                                                      unsigned *stock);

/* Connect the WebSocket stream (GET /v1/stream) if it is not connected. The send and
 * receive calls connect on demand; this is for callers that want to fail early. */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_messenger_connect(struct parley_messenger *m);

/* Send UTF-8 text (1..PARLEY_MESSAGE_MAX_TEXT bytes) to username. expire_after_s: the
 * disappearing timer (0 = keep). Returns when the server stored it (OK or DUPLICATE).
 * msg_id (may be NULL) receives the message id as 32 hex digits. Errors:
 * PARLEY_ERR_NOTFOUND (no such user, or the user has no keyed device: code "no_keys"),
 * PARLEY_ERR_INVAL, PARLEY_ERR_LIMIT (text too long; devices still stale after several
 * rounds), transport errors. */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_messenger_send_text(struct parley_messenger *m, const char *username, const char *text,
                           uint32_t expire_after_s, char msg_id[PARLEY_MESSAGE_ID_HEX_BYTES]);

/* Send a read receipt for every received message from username that is not marked
 * read yet, and mark them read locally. *count (may be NULL) receives how many. */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_messenger_mark_read(struct parley_messenger *m,
                                                                    const char *username,
                                                                    size_t *count);

enum parley_event_kind {
    PARLEY_EVENT_MESSAGE = 1,          /* a text message (or a sync copy of one of ours) */
    PARLEY_EVENT_RECEIPT = 2,          /* a delivery or read receipt for one of ours */
    PARLEY_EVENT_EXPIRED = 3,          /* one of ours expired on the server undelivered */
    PARLEY_EVENT_DRAINED = 4,          /* the backlog has been delivered */
    PARLEY_EVENT_IDENTITY_CHANGED = 5, /* a contact device's identity key changed */
    PARLEY_EVENT_UNDECRYPTABLE = 6,    /* a message that could not be decrypted (dropped) */
};

/* One event. Strings are owned by the event: release with parley_event_cleanup. */
struct parley_event {
    enum parley_event_kind kind;
    char id[PARLEY_MESSAGE_ID_HEX_BYTES]; /* message id (MESSAGE, RECEIPT, EXPIRED) */
    char *from_user_id;                   /* sender (MESSAGE, RECEIPT, IDENTITY_CHANGED...) */
    char *from_username;
    char *from_device;
    char *peer_username; /* the conversation's other user (sync copies: the recipient) */
    char *text;          /* MESSAGE */
    bool outgoing;       /* MESSAGE: a sync copy of a message sent by another own device */
    bool read;           /* RECEIPT: read (else delivered) */
    int64_t sent_at_ms;  /* sender's clock */
    int64_t server_time_ms;
    uint32_t expire_after_s;
    uint32_t count; /* DRAINED: envelopes delivered from the backlog */
    char *group_id; /* MESSAGE: the group of a group message; NULL for 1:1 */
};
PARLEY_EXPORT void parley_event_cleanup(struct parley_event *ev);

/* Wait up to timeout_ms for the next event (0: only what is already buffered). Messages
 * are stored and acknowledged before they are returned. PARLEY_ERR_TIMEOUT when none
 * came; PARLEY_ERR_CLOSED when the server closed the stream (the next call reconnects). */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_messenger_next(struct parley_messenger *m,
                                                               uint32_t timeout_ms,
                                                               struct parley_event *ev);

/* The stream's socket (for poll), or -1 when not connected. Before polling, call
 * parley_messenger_next(m, 0, ...) until it times out: events may be buffered. */
PARLEY_EXPORT int parley_messenger_fd(const struct parley_messenger *m);

/* ---- history ---- */

struct parley_history_item {
    char id[PARLEY_MESSAGE_ID_HEX_BYTES];
    bool outgoing;
    char *from_username; /* sender */
    char *text;
    int64_t sent_at_ms;
    int64_t received_at_ms; /* incoming: when this device stored it; outgoing: 0 */
    uint32_t expire_after_s;
    /* Outgoing: "sent", "delivered", "read" or "expired"; incoming: "received", "read". */
    char status[12];
};
struct parley_history {
    struct parley_history_item *items;
    size_t count;
};
PARLEY_EXPORT void parley_history_cleanup(struct parley_history *h);

/* The conversation with username from the local store, oldest first, at most limit
 * newest messages (0 = all). Messages whose disappearing timer ran out are deleted
 * instead of returned. PARLEY_ERR_NOTFOUND when there is no such contact. */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_messenger_history(struct parley_messenger *m,
                                                                  const char *username,
                                                                  size_t limit,
                                                                  struct parley_history *out);

/* ---- contacts and verification ---- */

struct parley_contact_info {
    char *user_id;
    char *username;
    size_t devices;        /* devices with a session or a known key */
    bool identity_changed; /* a device's identity key changed since first seen */
};
PARLEY_EXPORT void parley_contact_info_cleanup(struct parley_contact_info *ci);

/* The safety number of this account with username: 60 digits (as 12 groups of 5 when
 * printed), the same on both sides when both see the same device keys. Fetches the
 * contact's keys if this device has never talked to it. Computing it also marks the
 * contact's current keys as the verified baseline (clears identity_changed) when
 * accept_changes is true. info (may be NULL) receives the contact's summary. */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_messenger_safety_number(struct parley_messenger *m, const char *username,
                               bool accept_changes, char out[PARLEY_SAFETY_NUMBER_TEXT_BYTES],
                               struct parley_contact_info *info);

/* ---- groups (Sender Keys) ----
 *
 * Group messages are encrypted once with this device's sender key for the group and
 * sent as one copy per member device; a device that has not yet received the current
 * sender key gets it in the same copy, inside the pairwise Double Ratchet session. When
 * a member leaves (or a device disappears), the next send starts a NEW sender key, so a
 * removed member cannot read later messages. */

struct parley_group_member {
    char *user_id;
    char *username;
    bool admin;
    int64_t joined_at; /* seconds since the epoch */
};
struct parley_group {
    char *group_id;
    char *name;
    int64_t created_at;
    int64_t updated_at;
    struct parley_group_member *members;
    size_t member_count;
};
struct parley_group_list {
    struct parley_group *items;
    size_t count;
};
PARLEY_EXPORT void parley_group_cleanup(struct parley_group *g);
PARLEY_EXPORT void parley_group_list_cleanup(struct parley_group_list *l);

/* POST /v1/groups: a group named name with the given other members (usernames; the
 * caller joins as admin). out (may be NULL) receives the group. */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_messenger_group_create(struct parley_messenger *m, const char *name,
                              const char *const *usernames, size_t n, struct parley_group *out);
/* GET /v1/groups (the caller's groups) and GET /v1/groups/{id}. */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_messenger_group_list(struct parley_messenger *m,
                                                                     struct parley_group_list *out);
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_messenger_group_get(struct parley_messenger *m,
                                                                    const char *group_id,
                                                                    struct parley_group *out);
/* Add or remove a member (server rules: admins manage; anyone may remove themself).
 * Removing anyone makes this device start a new sender key at its next group send. */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_messenger_group_add(struct parley_messenger *m,
                                                                    const char *group_id,
                                                                    const char *username,
                                                                    bool admin);
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_messenger_group_remove(struct parley_messenger *m, const char *group_id,
                              const char *username);
/* Send text to every member device of the group (other than this one). Same contract
 * as parley_messenger_send_text. */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_messenger_group_send_text(struct parley_messenger *m, const char *group_id,
                                 const char *text, uint32_t expire_after_s,
                                 char msg_id[PARLEY_MESSAGE_ID_HEX_BYTES]);
/* The group's stored conversation (as parley_messenger_history). */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_messenger_group_history(struct parley_messenger *m, const char *group_id, size_t limit,
                               struct parley_history *out);

#endif
