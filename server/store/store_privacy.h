/*
 * store_privacy.h — the privacy half of the store interface: per-purpose consents and
 * their history (P12, P15, P22, P28), parental-consent records (P29), policy versions
 * and acceptances (P30), the hash-chained audit log (P26), and the retention purges of
 * the categories the retention table names (P31; server/retention.h).
 * Included by store.h; same rules as there (any thread, blocking, `now` passed in,
 * wrappers check arguments, arrays returned are malloc'd and freed by the caller).
 *
 * The SQLite backend keeps these ops in their own small table (struct store_privacy_ops,
 * reached through store_ops.privacy) so the consent, policy and audit features have one room in the store.
 *
 * Audit log: append-only. store_audit_append computes the entry's hash inside the
 * write transaction that reads the previous entry (audit_chain.h), so two processes
 * appending at once (parleyd and `parleyd admin`) are serialised by SQLite's write
 * lock and the chain never forks. The SQLite schema also refuses UPDATE and DELETE on
 * the table with triggers; `parleyd admin audit verify` detects edits made around them.
 */
#ifndef PARLEY_SERVER_STORE_PRIVACY_H
#define PARLEY_SERVER_STORE_PRIVACY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "parley/err.h"

#define STORE_PURPOSE_MAX 32           /* bytes of a consent purpose name */
#define STORE_POLICY_VERSION_MAX 32    /* bytes of a policy version label */
#define STORE_POLICY_TEXT_MAX 262144   /* bytes of a policy text */
#define STORE_PARENTAL_REF_MAX 256     /* bytes of a parental-consent reference */
#define STORE_AUDIT_FIELD_MAX 512      /* bytes of each audit text field */
#define STORE_AUDIT_HASH_BYTES 32      /* SHA-256 */
#define STORE_CONSENTS_MAX 64          /* consent rows returned per user */

struct store;

/* ------------------------------------------------------------- consents */

struct store_consent {
    char purpose[STORE_PURPOSE_MAX + 1];
    bool granted;
    char policy_version[STORE_POLICY_VERSION_MAX + 1]; /* "" when no policy was published */
    int64_t updated_at;
};

/* ------------------------------------------------------------- policies */

struct store_policy_meta {
    int64_t seq; /* publication order, 1, 2, ... */
    char version[STORE_POLICY_VERSION_MAX + 1];
    bool material;
    int64_t published_at;
};

/* ------------------------------------------------------------- audit log */

struct store_audit_entry {
    int64_t seq; /* 1, 2, ... in append order */
    int64_t at;
    char actor[STORE_AUDIT_FIELD_MAX + 1];   /* who acted (operator name) */
    char kind[STORE_AUDIT_FIELD_MAX + 1];    /* what: "legal_export", "parental_consent"... */
    char subject[STORE_AUDIT_FIELD_MAX + 1]; /* whom: a pseudonym (audit.h), or "" */
    char detail[STORE_AUDIT_FIELD_MAX + 1];  /* why: reason, reference */
    uint8_t prev_hash[STORE_AUDIT_HASH_BYTES];
    uint8_t hash[STORE_AUDIT_HASH_BYTES];
};

/* ------------------------------------------------------------- retention */

/* Categories whose rows a retention job deletes by age (server/retention.c maps them to
 * periods). Queued envelopes and sessions have their own ops (store.h, the queue). */
enum store_retention_cat {
    STORE_RET_CALL_QUALITY,    /* call_quality.received_at */
    STORE_RET_SECURITY_EVENTS, /* security_events.at */
    STORE_RET_REPORTS,         /* reports.created_at */
    STORE_RET_PURCHASES,       /* purchases.purchased_at */
    STORE_RET__COUNT
};

struct store_privacy_ops {
    enum parley_err (*consent_list)(struct store *s, const char *user_id,
                                    struct store_consent **out, size_t *n_out);
    enum parley_err (*consent_set)(struct store *s, const char *user_id, const char *purpose,
                                   bool granted, const char *policy_version, int64_t now);
    enum parley_err (*consent_get)(struct store *s, const char *user_id, const char *purpose,
                                   bool *granted);
    enum parley_err (*parental_record)(struct store *s, const char *user_id, const char *reference,
                                       int64_t now);
    enum parley_err (*parental_get)(struct store *s, const char *user_id, bool *recorded);
    enum parley_err (*policy_publish)(struct store *s, const char *version, bool material,
                                      const char *text, size_t len, int64_t now);
    enum parley_err (*policy_latest)(struct store *s, bool material_only,
                                     struct store_policy_meta *out);
    enum parley_err (*policy_text)(struct store *s, int64_t seq, char **text, size_t *len);
    enum parley_err (*policy_accept)(struct store *s, const char *user_id, const char *version,
                                     int64_t now);
    enum parley_err (*policy_accepted)(struct store *s, const char *user_id,
                                       const struct store_policy_meta *gate, bool *ok);
    enum parley_err (*audit_append)(struct store *s, struct store_audit_entry *e);
    enum parley_err (*audit_list)(struct store *s, int64_t after_seq, size_t limit,
                                  struct store_audit_entry **out, size_t *n_out);
    enum parley_err (*retention_purge)(struct store *s, enum store_retention_cat cat,
                                       int64_t cutoff, size_t *n_out);
};

/* ---- consents ---- */

/* The user's recorded consents (purposes never set are absent), by purpose name.
 * *out is malloc'd (NULL when none). */
PARLEY_WUR enum parley_err store_consent_list(struct store *s, const char *user_id,
                                              struct store_consent **out, size_t *n_out);
/* Record a consent change: the current value and a consent_history row (purpose, value,
 * policy_version, now) in one transaction. NOTFOUND if the user is gone. */
PARLEY_WUR enum parley_err store_consent_set(struct store *s, const char *user_id,
                                             const char *purpose, bool granted,
                                             const char *policy_version, int64_t now);
/* *granted = the recorded value (false when never set). */
PARLEY_WUR enum parley_err store_consent_get(struct store *s, const char *user_id,
                                             const char *purpose, bool *granted);
/* Record a parent's consent for the account (P29), replacing an earlier record.
 * NOTFOUND if the user is gone. */
PARLEY_WUR enum parley_err store_parental_record(struct store *s, const char *user_id,
                                                 const char *reference, int64_t now);
PARLEY_WUR enum parley_err store_parental_get(struct store *s, const char *user_id,
                                              bool *recorded);

/* ---- policies ---- */

/* Publish a new version (text: len bytes of UTF-8, len <= STORE_POLICY_TEXT_MAX).
 * EXISTS if the version label was used before. */
PARLEY_WUR enum parley_err store_policy_publish(struct store *s, const char *version, bool material,
                                                const char *text, size_t len, int64_t now);
/* The latest published version (material_only: the latest material one). NOTFOUND if
 * none. */
PARLEY_WUR enum parley_err store_policy_latest(struct store *s, bool material_only,
                                               struct store_policy_meta *out);
/* The text of version seq, malloc'd and NUL-terminated; free() it. NOTFOUND. */
PARLEY_WUR enum parley_err store_policy_text(struct store *s, int64_t seq, char **text,
                                             size_t *len);
/* Record that user_id accepted version (idempotent). NOTFOUND if no such version or
 * user. */
PARLEY_WUR enum parley_err store_policy_accept(struct store *s, const char *user_id,
                                               const char *version, int64_t now);
/* *ok = the user accepted gate or a later version, or registered at or after gate was
 * published (registration accepts the policy then in force). */
PARLEY_WUR enum parley_err store_policy_accepted(struct store *s, const char *user_id,
                                                 const struct store_policy_meta *gate, bool *ok);

/* ---- audit log ---- */

/* Append e (at, actor, kind, subject, detail set by the caller; each at most
 * STORE_AUDIT_FIELD_MAX bytes): the store sets seq, prev_hash and hash. */
PARLEY_WUR enum parley_err store_audit_append(struct store *s, struct store_audit_entry *e);
/* Up to limit entries with seq > after_seq, in seq order (rows as stored, unverified). */
PARLEY_WUR enum parley_err store_audit_list(struct store *s, int64_t after_seq, size_t limit,
                                            struct store_audit_entry **out, size_t *n_out);

/* ---- retention ---- */

/* Delete the rows of cat whose time is <= cutoff; *n_out (may be NULL) gets the count. */
PARLEY_WUR enum parley_err store_retention_purge(struct store *s, enum store_retention_cat cat,
                                                 int64_t cutoff, size_t *n_out);

#endif
