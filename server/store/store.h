/*
 * store.h — parleyd's storage interface: accounts, devices, sessions (and, in
 * store_messaging.h, keys, groups and the message queue).
 *
 * A store is a struct of function pointers (struct store_ops) plus backend state, so a
 * PostgreSQL backend and fault-injecting test backends can stand behind the same calls
 * (SQLite's VFS is the model). The rest of the server calls only the store_<noun>_<verb>
 * wrappers below, never the ops directly.
 *
 * Threads: every operation may be called from any thread, concurrently (libuv's thread
 * pool runs them). Operations block (disk, locks): never call them on a loop thread.
 * store_open_* and store_close run on the main thread, with no operation in flight.
 *
 * Data minimisation (POLICY P1, P2, P5, P23): users hold only the profile fields P1
 * allows and an Argon2id hash; sessions hold only a hash of the token; ids are random
 * and opaque (STORE_ID_LEN hex characters, 128 random bits); no IP address is stored.
 *
 * Time: operations that depend on time take `now` (seconds since the epoch, normally
 * clock_now_s()) so expiry can be tested by moving the clock.
 *
 * Devices and sessions: each login creates a new device and one session for it. A
 * device lives as long as it has a live session: logging out (store_session_delete)
 * or expiry removes the device too (store_session_create and store_session_purge_expired
 * sweep devices whose sessions all expired), so a stale login never counts against the
 * device limit.
 */
#ifndef PARLEY_SERVER_STORE_H
#define PARLEY_SERVER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "parley/err.h"

#define STORE_ID_LEN 32           /* hex characters of a user or device id (16 bytes) */
#define STORE_TOKEN_HASH_BYTES 32 /* SHA-256 of the raw session token */
#define STORE_USERNAME_MAX 32     /* bytes */
#define STORE_NAME_MAX 256        /* bytes: 64 code points of up to 4 bytes */
#define STORE_DOB_LEN 10          /* "YYYY-MM-DD" */
#define STORE_REGION_LEN 2        /* ISO 3166-1 alpha-2 */
#define STORE_GENDER_MAX 128      /* bytes: 32 code points of up to 4 bytes */
#define STORE_PWHASH_MAX 128      /* crypto_pwhash_STRBYTES, including the NUL */
#define STORE_DEVICE_NAME_MAX 256 /* bytes: 64 code points */

/* A user row. Strings are NUL-terminated; region/gender are "" when absent. */
struct store_user {
    char id[STORE_ID_LEN + 1];
    char username[STORE_USERNAME_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    char dob[STORE_DOB_LEN + 1];
    char region[STORE_REGION_LEN + 1];
    char gender[STORE_GENDER_MAX + 1];
    char password_hash[STORE_PWHASH_MAX];
    bool parental_consent_required;
    int64_t created_at;
};

/* A change to the rectifiable profile fields (PATCH /v1/me). Only the fields whose
 * STORE_PATCH_* bit is set in `fields` change; "" clears region or gender. */
enum {
    STORE_PATCH_NAME = 1u << 0,
    STORE_PATCH_REGION = 1u << 1,
    STORE_PATCH_GENDER = 1u << 2,
    STORE_PATCH_CONSENT = 1u << 3, /* set parental_consent_required to true */
};
struct store_profile_patch {
    unsigned fields;
    char name[STORE_NAME_MAX + 1];
    char region[STORE_REGION_LEN + 1];
    char gender[STORE_GENDER_MAX + 1];
};

struct store_device {
    char id[STORE_ID_LEN + 1];
    char name[STORE_DEVICE_NAME_MAX + 1]; /* "" when the client gave none */
    int64_t created_at;
    int64_t last_seen;
};

/* What a valid session token stands for. */
struct store_session {
    char user_id[STORE_ID_LEN + 1];
    char device_id[STORE_ID_LEN + 1];
    int64_t expires_at;
};

/* Input of store_session_create. */
struct store_session_new {
    const char *user_id;
    const char *device_name;   /* "" or NULL for none */
    const uint8_t *token_hash; /* STORE_TOKEN_HASH_BYTES */
    int64_t now;
    int64_t expires_at;
    unsigned max_devices; /* PARLEY_ERR_LIMIT if the user already has this many */
};

struct store;
struct keystore;
struct store_keys_upload;
struct store_bundle;
struct store_user_device;
struct store_group;
struct store_group_member;
struct store_queue_op;
struct store_envelope;
struct store_privacy_ops;

/* One column value of a row read by store_user_rows. Text and blob bytes are borrowed
 * for the duration of the callback only. */
enum store_value_type { STORE_V_NULL, STORE_V_INT, STORE_V_REAL, STORE_V_TEXT, STORE_V_BLOB };
struct store_value {
    enum store_value_type type;
    int64_t i;
    double r;
    const void *p; /* TEXT (not NUL-terminated) or BLOB bytes */
    size_t len;
};
/* Called once per row; a non-OK result stops the read and is returned. */
typedef enum parley_err (*store_row_fn)(void *ctx, size_t ncols, const char *const *names,
                                        const struct store_value *vals);

/* The backend's operations; see the wrappers below for the contracts. */
struct store_ops {
    const char *name;
    enum parley_err (*user_create)(struct store *s, const struct store_user *u);
    enum parley_err (*user_get_by_id)(struct store *s, const char *id, struct store_user *out);
    enum parley_err (*user_get_by_username)(struct store *s, const char *username,
                                            struct store_user *out);
    enum parley_err (*user_update_profile)(struct store *s, const char *id,
                                           const struct store_profile_patch *p,
                                           struct store_user *out);
    enum parley_err (*session_create)(struct store *s, const struct store_session_new *in,
                                      char device_id_out[STORE_ID_LEN + 1]);
    enum parley_err (*session_lookup)(struct store *s, const uint8_t *token_hash, int64_t now,
                                      struct store_session *out);
    enum parley_err (*session_delete)(struct store *s, const uint8_t *token_hash);
    enum parley_err (*session_purge_expired)(struct store *s, int64_t now, size_t *n_out);
    enum parley_err (*device_list)(struct store *s, const char *user_id, struct store_device **out,
                                   size_t *n_out);
    enum parley_err (*device_delete)(struct store *s, const char *user_id, const char *device_id);
    /* keys, groups, queue: contracts in store_messaging.h */
    enum parley_err (*keys_put)(struct store *s, const struct store_keys_upload *in,
                                size_t *stock_out);
    enum parley_err (*keys_take_bundles)(struct store *s, const char *user_id,
                                         const char *device_id, const char *except_device,
                                         struct store_bundle **out, size_t *n_out);
    enum parley_err (*keys_stock)(struct store *s, const char *device_id, size_t *n_out);
    enum parley_err (*keyed_devices)(struct store *s, const char *user_id,
                                     struct store_user_device **out, size_t *n_out);
    /* groups */
    enum parley_err (*group_create)(struct store *s, const struct store_group *g,
                                    const struct store_group_member *members, size_t n);
    enum parley_err (*group_get)(struct store *s, const char *group_id, struct store_group *out,
                                 struct store_group_member **members, size_t *n_members);
    enum parley_err (*group_list)(struct store *s, const char *user_id, struct store_group **out,
                                  size_t *n_out);
    enum parley_err (*group_member_set)(struct store *s, const char *group_id,
                                        const struct store_group_member *m, int64_t now);
    enum parley_err (*group_member_remove)(struct store *s, const char *group_id,
                                           const char *user_id, int64_t now);
    enum parley_err (*group_rename)(struct store *s, const char *group_id, const char *name,
                                    int64_t now);
    /* message queue */
    enum parley_err (*queue_apply)(struct store *s, struct store_queue_op *ops, size_t n,
                                   int64_t now);
    enum parley_err (*queue_fetch)(struct store *s, const char *device_id, uint64_t after_id,
                                   size_t limit, int64_t now, struct store_envelope **out,
                                   size_t *n_out);
    enum parley_err (*queue_count)(struct store *s, const char *device_id, size_t *n_out);
    enum parley_err (*queue_purge_expired)(struct store *s, int64_t now, size_t limit,
                                           int64_t notice_ttl_s, struct store_envelope **notices,
                                           size_t *n_notices, size_t *n_purged);
    /* rights (P27, P28): contracts below */
    enum parley_err (*user_delete)(struct store *s, const char *user_id);
    enum parley_err (*user_rows)(struct store *s, const char *sql, const char *user_id,
                                 store_row_fn fn, void *ctx);
    /* consents, policies, audit log, retention: contracts in store_privacy.h */
    const struct store_privacy_ops *privacy;
    void (*close)(struct store *s);
};

/* Every backend embeds this as its first member. */
struct store {
    const struct store_ops *ops;
};

/* ---- lifecycle (main thread) ---- */

/* Open (creating if needed, mode 0600) the SQLite database at path, apply pending
 * migrations, and return a store that owns a small pool of connections. Errors:
 * PARLEY_ERR_IO (cannot create/open the file), PARLEY_ERR_STORE (SQLite error, or the
 * database has a newer schema than this binary knows), PARLEY_ERR_NOMEM.
 * Free with store_close. */
PARLEY_WUR enum parley_err store_open_sqlite(const char *path, struct store **out);
/* Process-wide SQLite settings; call once before any database is opened (parleyd's
 * main). Without it everything works, only slower. mmap_bytes: how much of each
 * database SQLite may read through a memory map (0: none, every page read is a
 * pread() and a copy). */
void store_sqlite_global_init(uint64_t mmap_bytes);
/* The same with the key store (keystore.h) that holds the accounts' data keys: the
 * personal profile fields are then stored encrypted with each account's key, rows
 * written before are encrypted in place at open, keys left without an account for over
 * an hour are destroyed, and store_user_delete destroys the account's key. ks is
 * borrowed and must outlive the store. parleyd and `parleyd admin` always open the
 * store this way; store_open_sqlite (no key store: profile fields in plaintext) is for
 * tests of other parts only. */
PARLEY_WUR enum parley_err store_open_sqlite_keyed(const char *path, struct keystore *ks,
                                                   struct store **out);
/* Close the store and free it. Accepts NULL. No operation may be in flight. */
void store_close(struct store *s);
/* Schema version of the migrations compiled into this binary. */
int store_schema_version_latest(void);

/* ---- users ---- */

/* Insert u (id, username, profile, password hash, created_at all set by the caller).
 * PARLEY_ERR_EXISTS when the username (or id) is taken; PARLEY_ERR_STORE otherwise. */
PARLEY_WUR enum parley_err store_user_create(struct store *s, const struct store_user *u);
/* Fill *out. PARLEY_ERR_NOTFOUND if there is no such user. */
PARLEY_WUR enum parley_err store_user_get_by_id(struct store *s, const char *id,
                                                struct store_user *out);
PARLEY_WUR enum parley_err store_user_get_by_username(struct store *s, const char *username,
                                                      struct store_user *out);
/* Apply p atomically and return the updated row in *out (may be NULL).
 * PARLEY_ERR_NOTFOUND if there is no such user. */
PARLEY_WUR enum parley_err store_user_update_profile(struct store *s, const char *id,
                                                     const struct store_profile_patch *p,
                                                     struct store_user *out);

/* ---- sessions ---- */

/* Atomically: drop the user's devices that no longer have a live session, refuse with
 * PARLEY_ERR_LIMIT if max_devices remain, else create a device (random id written to
 * device_id_out) and a session for it. PARLEY_ERR_NOTFOUND if the user is gone,
 * PARLEY_ERR_EXISTS if the token hash collides. */
PARLEY_WUR enum parley_err store_session_create(struct store *s, const struct store_session_new *in,
                                                char device_id_out[STORE_ID_LEN + 1]);
/* Find the live session (expires_at > now) whose token hashes to token_hash.
 * PARLEY_ERR_NOTFOUND if none. Also sets the device's last_seen to now when it is at
 * least a minute old (so an active device costs one write a minute, not one a request). */
PARLEY_WUR enum parley_err store_session_lookup(struct store *s, const uint8_t *token_hash,
                                                int64_t now, struct store_session *out);
/* Log out: delete the session and its device (a device has one login). NOTFOUND if
 * there is no such session. */
PARLEY_WUR enum parley_err store_session_delete(struct store *s, const uint8_t *token_hash);
/* Retention: delete every session with expires_at <= now and the devices left without
 * a session. *n_out (may be NULL) gets the number of sessions deleted. */
PARLEY_WUR enum parley_err store_session_purge_expired(struct store *s, int64_t now, size_t *n_out);

/* ---- devices ---- */

/* The user's devices, oldest first, in a malloc'd array the caller frees with free()
 * (NULL when there are none). */
PARLEY_WUR enum parley_err store_device_list(struct store *s, const char *user_id,
                                             struct store_device **out, size_t *n_out);
/* Revoke: delete the device and its sessions, if it belongs to user_id.
 * PARLEY_ERR_NOTFOUND otherwise. */
PARLEY_WUR enum parley_err store_device_delete(struct store *s, const char *user_id,
                                               const char *device_id);

/* ---- rights: erasure and access (POLICY P27, P28) ---- */

/* Erase the account (P27): in one transaction delete every row tied to it in every
 * table — the user, its devices and sessions (tokens stop working at once), their keys
 * and prekeys, group memberships (a group left empty goes too), queued envelopes it sent,
 * that wait for it or that name it, remembered message ids, and the rows of any table
 * with a user column (user_id or a *_user / *_user_id column). After the commit the WAL
 * is checkpointed and truncated, then the account's data key is destroyed (crypto-
 * shredding). PARLEY_ERR_NOTFOUND if there is no such user. */
PARLEY_WUR enum parley_err store_user_delete(struct store *s, const char *user_id);
/* Access (P28): run the read-only query sql (one statement, ?1 bound to user_id) in a
 * read transaction and call fn for every row. For the export registry (export.c);
 * the SQL is the caller's own constant text, never input. */
PARLEY_WUR enum parley_err store_user_rows(struct store *s, const char *sql, const char *user_id,
                                           store_row_fn fn, void *ctx);

/* ---- helpers ---- */

/* A fresh random id: STORE_ID_LEN lowercase hex characters and a NUL. Thread-safe. */
void store_id_new(char out[STORE_ID_LEN + 1]);
/* True if s looks like an id (exactly STORE_ID_LEN lowercase hex characters). */
bool store_id_valid(const char *s);

#include "store_messaging.h"
#include "store_privacy.h"

#endif
