/*
 * messaging_int.h — the inside of libparley's messaging module (parley/messaging.h),
 * shared by its files only (SQLite's x.h / xInt.h model; the file map is in
 * messaging.c). Nothing outside lib/messaging*.c includes it.
 *
 * Conventions for every function here: m is the caller's messenger, borrowed; the
 * calling thread is the one that owns m (a messenger is not thread-safe). Functions
 * returning enum parley_err write their out-parameters only on success. json_t results
 * are new references the caller json_decref's. Functions that talk to the server leave
 * the detail of a failure on the client handle (client_set_error).
 */
#ifndef PARLEY_MESSAGING_INT_H
#define PARLEY_MESSAGING_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "client_int.h"
#include "http_client.h"
#include "local_store.h"
#include "parley/crypto.h"
#include "parley/messaging.h"
#include "proto/content.pb-c.h"
#include "proto/stream.pb-c.h"

#define MSGID_BYTES 16                   /* a message id inside Content and Send */
#define MAX_FRAME (8u << 20)             /* largest stream frame either way */
#define MAX_PENDING 100000u              /* pushed frames queued while awaiting an answer */
#define MAX_SEND_ROUNDS 5                /* STALE_DEVICES rounds before giving up */
#define PAD_BLOCK 128                    /* Content is padded to a multiple of this */
#define ID_MAX 64                        /* user and device ids are 32 hex digits; some slack */
#define SESSION_KEY_MAX (2 * ID_MAX + 8) /* "uid/did#k" */

struct frame_node {
    Parley__Stream__ServerFrame *f;
    struct frame_node *next;
};

struct event_node {
    struct parley_event ev;
    struct event_node *next;
};

struct parley_messenger {
    struct parley_client *c; /* borrowed */
    struct local_store *ls;
    struct parley_messenger_options o;
    struct parley_identity *id; /* sodium_malloc'd */
    struct ws_client *ws;       /* NULL: not connected */
    uint64_t next_req;
    struct frame_node *fq_head, *fq_tail; /* pushed frames not yet handled */
    size_t fq_len;
    struct event_node *eq_head, *eq_tail; /* events not yet returned */
    unsigned acks_inflight;
};

/* One recipient device of a send. */
struct target_dev {
    char uid[ID_MAX + 1];
    char did[ID_MAX + 1];
};

/* ---- messaging.c: helpers and local records ---- */

int64_t msg_now_ms(void);
/* out: 2n+1 bytes. */
void msg_to_hex(char *out, const uint8_t *in, size_t n);
/* Exactly 2n hex digits into n bytes. */
bool msg_from_hex(uint8_t *out, size_t n, const char *in);
/* URL-safe unpadded base64; malloc'd (caller frees), NULL when out of memory. */
char *msg_b64(const uint8_t *in, size_t n);
/* Decode exactly n bytes of URL-safe base64; in may be NULL (false). */
bool msg_unb64(uint8_t *out, size_t n, const char *in);
/* A user, device or group id: 1..ID_MAX of [0-9A-Za-z_-]. */
bool msg_id_ok(const char *s);
/* Record "<what>: <strerror(rc)>" on the client handle and return rc. */
enum parley_err msg_fail(struct parley_messenger *m, enum parley_err rc, const char *what);
/* META strings and numbers (PARLEY_ERR_NOTFOUND when missing, PARLEY_ERR_STORE when
 * the value does not fit or parse). */
enum parley_err msg_meta_get_str(struct parley_messenger *m, const char *k, char *out, size_t cap);
enum parley_err msg_meta_put_str(struct parley_messenger *m, const char *k, const char *v);
enum parley_err msg_meta_get_u32(struct parley_messenger *m, const char *k, uint32_t *out);
enum parley_err msg_meta_put_u32(struct parley_messenger *m, const char *k, uint32_t v);
/* A JSON object record of namespace ns (PARLEY_ERR_STORE when it is not an object). */
enum parley_err msg_json_get(struct parley_messenger *m, enum ls_ns ns, const char *k,
                             json_t **out);
enum parley_err msg_json_put(struct parley_messenger *m, enum ls_ns ns, const char *k,
                             const json_t *o);

/* ---- messaging_keys.c: device keys ---- */

/* Make sure the store holds keys for the client's current device, creating them (and
 * dropping old keys and sessions) for a new device id. *fresh: keys were created. */
enum parley_err keys_ensure(struct parley_messenger *m, bool *fresh);
/* Our signed prekey / one-time prekey by id (PARLEY_ERR_NOTFOUND: none or used). */
enum parley_err keys_get_spk(struct parley_messenger *m, uint32_t id,
                             struct parley_signed_prekey *spk);
enum parley_err keys_get_opk(struct parley_messenger *m, uint32_t id, struct parley_prekey *opk);
/* Delete a used one-time prekey (id 0: nothing). Call inside the storing transaction. */
enum parley_err keys_drop_opk(struct parley_messenger *m, uint32_t id);

/* ---- messaging_stream.c: the WebSocket stream ---- */

/* Drop the connection (no closing handshake); in-flight acks are forgotten. */
void stream_close(struct parley_messenger *m);
/* Send one frame; on failure the stream is closed. */
enum parley_err stream_send_frame(struct parley_messenger *m, Parley__Stream__ClientFrame *f);
/* Read one frame within timeout_ms (PARLEY_ERR_TIMEOUT: none yet, stream still open).
 * *out: caller frees with parley__stream__server_frame__free_unpacked. */
enum parley_err stream_read_frame(struct parley_messenger *m, uint32_t timeout_ms,
                                  Parley__Stream__ServerFrame **out);
/* Wait (client timeout, default 30 s) for the answer to request req; pushed frames
 * that arrive meanwhile are queued for stream_pop_frame. */
enum parley_err stream_await_answer(struct parley_messenger *m, uint64_t req,
                                    Parley__Stream__ServerFrame **out);
/* The oldest queued pushed frame, or NULL. Caller frees it. */
Parley__Stream__ServerFrame *stream_pop_frame(struct parley_messenger *m);
/* Ack one envelope (nothing with the no_ack option or without a stream). */
enum parley_err stream_send_ack(struct parley_messenger *m, uint64_t envelope_id);
/* Wait briefly for outstanding acks, close the stream politely, free queued frames. */
void stream_shutdown(struct parley_messenger *m);

/* ---- messaging_session.c: X3DH and ratchet sessions ---- */

/* The store key of the current session of (uid, did); out: SESSION_KEY_MAX bytes. */
void session_key(char *out, size_t cap, const char *uid, const char *did);
/* The current session of (uid, did); caller parley_ratchet_free's it. */
enum parley_err session_load(struct parley_messenger *m, const char *uid, const char *did,
                             struct parley_ratchet **out);
/* Store s as the current session of (uid, did). */
enum parley_err session_save(struct parley_messenger *m, const char *uid, const char *did,
                             const struct parley_ratchet *s);
/* Store s as current after it decrypted from `slot` (0 current, k>0 archived, -1 new
 * from X3DH); the previous current session is archived. */
enum parley_err session_commit(struct parley_messenger *m, const char *uid, const char *did,
                               int slot, const struct parley_ratchet *s);
/* Forget every session (current and archived) of (uid, did). */
enum parley_err session_drop(struct parley_messenger *m, const char *uid, const char *did);
/* GET /v1/keys/<username>[?device=]: PARLEY_ERR_NOTFOUND for 404. */
enum parley_err session_fetch_bundles(struct parley_messenger *m, const char *username,
                                      const char *device, json_t **out);
/* X3DH as initiator with every device of a bundles answer (ours skipped; a device whose
 * bundle does not verify is skipped); records the devices in contact ct and saves it.
 * One transaction. */
enum parley_err session_start_all(struct parley_messenger *m, json_t *ans, json_t *ct);
/* The contact for username, fetching keys and starting sessions on first contact. */
enum parley_err session_ensure_contact(struct parley_messenger *m, const char *username,
                                       json_t **out);
/* Decrypt ctx from envelope e's sender device with a stored session (current or
 * archived) or, for a prekey message, a new one from X3DH. On success: *sess the
 * advanced session (caller frees), *slot where it came from (see session_commit),
 * *used_opk the one-time prekey to delete (0 none), *pt and *pt_len the plaintext
 * (sodium_free). Failures: PARLEY_ERR_CRYPTO (no oracle) or PARLEY_ERR_NOMEM. */
enum parley_err session_decrypt(struct parley_messenger *m, const Parley__Stream__Envelope *e,
                                const uint8_t *ctx, size_t ctx_len, struct parley_ratchet **sess,
                                int *slot, uint32_t *used_opk, uint8_t **pt, size_t *pt_len);

/* ---- messaging_payload.c: Content ---- */

/* The associated data of a copy from sender_dev to recip_dev; 0 when it does not fit. */
size_t payload_ad(uint8_t *ad, size_t cap, const char *sender_dev, const char *recip_dev);
/* Pack ct padded to a multiple of PAD_BLOCK (ct->padding is overwritten and left
 * pointing to a stack buffer: reset it before reuse). *out: sodium_free. */
enum parley_err payload_pack(Parley__Content__Content *ct, uint8_t **out, size_t *len);
/* Fill ct (and tx) as a new text message: a random message id in mid, hex in hex, the
 * sender clock in *sent. Borrows text, which must outlive ct. */
void payload_text(Parley__Content__Content *ct, Parley__Content__Text *tx, const char *text,
                  uint32_t expire_after_s, uint8_t mid[MSGID_BYTES],
                  char hex[PARLEY_MESSAGE_ID_HEX_BYTES], int64_t *sent);
/* Unpack a decrypted Content and check it belongs to envelope e (same message id and,
 * for a group envelope, same group). NULL when it does not: drop it as undecryptable. */
Parley__Content__Content *payload_unpack(const uint8_t *pt, size_t len,
                                         const Parley__Stream__Envelope *e);

/* ---- messaging_send.c ---- */

/* Append contact ct's devices (but skip_did) to *list. */
enum parley_err send_add_devices(json_t *ct, const char *skip_did, struct target_dev **list,
                                 size_t *n);
/* Free n copies (NULL entries allowed) and the array. */
void send_free_copies(Parley__Stream__DeviceCiphertext **copies, size_t n);
/* Apply a STALE_DEVICES answer: start sessions with missing devices, forget extra ones.
 * contacts: user id -> contact of every recipient user. *dropped (may be NULL) is set
 * when a device was removed. */
enum parley_err send_fix_devices(struct parley_messenger *m, const Parley__Stream__SendResult *r,
                                 json_t *contacts, bool *dropped);
/* One Send frame (to_user or group_id) with the copies (consumed, always freed), and
 * its answer. If the connection fails after the frame may have left, reconnect and
 * resend the same bytes until the client timeout (default 30 s). PARLEY_OK: *ans is a
 * SEND_RESULT frame (caller frees); an ERROR answer is PARLEY_ERR_SERVER. */
enum parley_err send_copies(struct parley_messenger *m, const ProtobufCBinaryData *message_id,
                            const char *to_user, const char *group_id,
                            Parley__Stream__DeviceCiphertext **copies, size_t nc,
                            Parley__Stream__ServerFrame **ans);
/* A delivery (read false) or read receipt for n message ids to peer (a contact). */
enum parley_err send_receipt(struct parley_messenger *m, json_t *peer, bool read,
                             ProtobufCBinaryData *ids, size_t n);

/* ---- messaging_recv.c ---- */

/* Append an event for parley_messenger_next (consumes n). */
void recv_push_event(struct parley_messenger *m, struct event_node *n);
/* A new event of kind about envelope e (sender, device, id, server time); NULL: no memory. */
struct event_node *recv_new_event(enum parley_event_kind kind, const Parley__Stream__Envelope *e);
/* Inside the caller's transaction: record the sender's contact (and the identity key
 * of its device from s, when a pairwise session decrypted), commit s (may be NULL),
 * delete the used one-time prekey and mark the message seen. *sender: the contact. */
enum parley_err recv_commit(struct parley_messenger *m, const Parley__Stream__Envelope *e,
                            const struct parley_ratchet *s, int slot, uint32_t used_opk,
                            const char *seen_key, json_t **sender);
/* Inside the caller's transaction: store a text Content in the history of peer and make
 * its MESSAGE event (*ev, pushed by the caller after the commit). group_id may be NULL. */
enum parley_err recv_store_text(struct parley_messenger *m, const Parley__Stream__Envelope *e,
                                const Parley__Content__Content *ct, const char *peer,
                                const char *idhex, bool from_self, const char *peer_name,
                                struct event_node **ev);

/* End the storing transaction begun at depth lvl with rc; then queue ev (may be NULL)
 * if it committed, or free it if not. Returns the transaction's result. */
enum parley_err recv_finish(struct parley_messenger *m, unsigned lvl, enum parley_err rc,
                            struct event_node *ev);

/* ---- messaging_contacts.c ---- */

enum parley_err contact_get(struct parley_messenger *m, const char *uid, json_t **out);
enum parley_err contact_by_name(struct parley_messenger *m, const char *username, json_t **out);
/* A new, unsaved record (username may be NULL). */
enum parley_err contact_new(const char *uid, const char *username, json_t **out);
/* Save ct and its username -> user id index. */
enum parley_err contact_save(struct parley_messenger *m, json_t *ct);
/* The record for uid or a new one; a non-empty username updates it (not saved). */
enum parley_err contact_or_new(struct parley_messenger *m, const char *uid, const char *username,
                               json_t **out);
/* Record the identity key of device did in ct (not saved). Trust on first use: a new
 * key for a known device sets "changed" and queues an IDENTITY_CHANGED event. */
void contact_note_identity(struct parley_messenger *m, json_t *ct, const char *did,
                           const uint8_t ik[PARLEY_IDENTITY_PUBLIC_BYTES]);

/* ---- messaging_history.c ---- */

/* Add a record to peer's history (PARLEY_ERR_EXISTS when the id is there already). */
enum parley_err history_add(struct parley_messenger *m, const char *peer, const char *idhex,
                            bool out, const char *from, const char *text, int64_t sent_at,
                            int64_t recv_at, uint32_t exp, const char *status);
/* Record a message this device just sent ("sent"; already there is fine). A failure
 * is described on the handle as sent but not saved. */
enum parley_err history_add_sent(struct parley_messenger *m, const char *peer, const char *idhex,
                                 const char *text, int64_t sent_at, uint32_t exp);
/* Move a record's status forward (never back; only_out: outgoing records only). */
enum parley_err history_set_status(struct parley_messenger *m, const char *peer, const char *idhex,
                                   const char *status, bool only_out);

/* ---- messaging_groups.c / messaging_sender_keys.c ---- */

/* The history key of a group conversation: "g:<group id>"; cap >= ID_MAX + 4. */
void group_peer(char *out, size_t cap, const char *gid);
/* Forget our sender key for group gid: the next group message starts a new one. */
enum parley_err skey_forget_own(struct parley_messenger *m, const char *gid);
/* A group envelope whose seen mark (seen_key) is absent: decrypt, store, queue its
 * event, inside the caller's transaction. PARLEY_OK means "ack it". */
enum parley_err skey_receive(struct parley_messenger *m, const Parley__Stream__Envelope *e,
                             const char *seen_key, const char *idhex);

#endif
