/*
 * audit.h — the operator audit log (POLICY P26): every operator action that reads or
 * discloses user data is appended, hash-chained (store/audit_chain.h), and can be
 * verified and summarised (`parleyd admin audit verify`, `parleyd admin transparency`).
 *
 * Accounts are named in the log only by a keyed pseudonym, "u_" + 32 hex characters of
 * HMAC-SHA-256(K, user id) with K derived from the master key: the log survives the
 * account's erasure (P27) without naming it, and an operator holding the master key can
 * still find the entries of a given account by recomputing its pseudonym.
 *
 * Write-ahead: a command appends its entry BEFORE it discloses anything; if the append
 * fails, it discloses nothing.
 *
 * Threads: any; the calls block (store).
 */
#ifndef PARLEY_SERVER_PRIVACY_AUDIT_H
#define PARLEY_SERVER_PRIVACY_AUDIT_H

#include <stdint.h>
#include <stdio.h>
#include "parley/err.h"
#include "store/store.h"

#define AUDIT_SUBJECT_LEN 34 /* "u_" + 32 hex */

/* Kinds used by the admin tools (the transparency report counts by kind). */
#define AUDIT_KIND_LEGAL_EXPORT "legal_export"
#define AUDIT_KIND_PARENTAL_CONSENT "parental_consent"
#define AUDIT_KIND_REPORT_REVIEW "report_review"
#define AUDIT_KIND_UNDERAGE_CLOSURE "underage_closure"
#define AUDIT_KIND_POLICY_PUBLISH "policy_publish"

/* The pseudonym of user_id under master_key (MASTER_KEY_BYTES). */
void audit_subject(const unsigned char *master_key, const char *user_id,
                   char out[AUDIT_SUBJECT_LEN + 1]);

/* Append an entry at time now: actor (operator), kind, the account (user_id, or NULL for
 * none; pseudonymised here), detail (reason, reference; may be ""). Texts longer than
 * STORE_AUDIT_FIELD_MAX are refused (INVAL). *seq_out (may be NULL) gets the entry's
 * sequence number. */
PARLEY_WUR enum parley_err audit_record(struct store *s, const unsigned char *master_key,
                                        const char *actor, const char *kind, const char *user_id,
                                        const char *detail, int64_t now, int64_t *seq_out);

/* Walk the whole log and check the chain: sequence numbers 1, 2, 3... with no gap, each
 * prev_hash equal to the previous entry's hash, each hash recomputed. PARLEY_OK with
 * *n_out entries and the head hash (all zero for an empty log) when intact;
 * PARLEY_ERR_CRYPTO with *bad_seq (the first bad entry as stored) and reason filled
 * otherwise; store errors. */
PARLEY_WUR enum parley_err audit_verify(struct store *s, size_t *n_out,
                                        uint8_t head[STORE_AUDIT_HASH_BYTES], int64_t *bad_seq,
                                        char *reason, size_t reason_cap);

#endif
