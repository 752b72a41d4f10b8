/*
 * consent.h — the consent purposes (POLICY P12, P15, P22, P28, P29) and the check every
 * consent-based feature calls before it acts.
 *
 * The purposes are one table in consent.c: name, what it covers, and the withdrawal hook
 * that deletes the data kept only for that purpose (P15: turning suggestions off deletes
 * their inputs). A purpose is off until the user grants it; a grant or withdrawal takes
 * effect at the next request (there is no cache), and every change is recorded with the
 * policy version then in force (store_consent_set).
 *
 * Accounts flagged parental_consent_required (EU users aged 13-16, P29) cannot grant
 * any purpose until an operator records a parent's consent
 * (`parleyd admin parental-consent`).
 *
 * Threads: consent_required and the hooks block (store): thread pool only.
 */
#ifndef PARLEY_SERVER_PRIVACY_CONSENT_H
#define PARLEY_SERVER_PRIVACY_CONSENT_H

#include <stdbool.h>
#include <stddef.h>
#include "parley/err.h"

struct store;
struct http_request;

/* Deletes what is kept only for the purpose, for user_id. Called after the withdrawal is
 * recorded; must be idempotent. */
typedef enum parley_err (*consent_withdraw_fn)(struct store *s, const char *user_id);

struct consent_purpose {
    const char *name;        /* wire name, e.g. "contacts_sync" */
    const char *description; /* one line for users and the export */
    const char *clause;      /* the POLICY row */
    consent_withdraw_fn on_withdraw;
};

/* The table, and its size. */
const struct consent_purpose *consent_purposes(size_t *n);
/* The purpose called name, or NULL. */
const struct consent_purpose *consent_purpose_find(const char *name);

/* PARLEY_OK if user_id has granted purpose; PARLEY_ERR_DENIED if not (never granted,
 * withdrawn, or an unknown purpose); store errors otherwise. A feature answers DENIED
 * with consent_respond_required. Thread pool. */
PARLEY_WUR enum parley_err consent_required(struct store *s, const char *user_id,
                                            const char *purpose);
/* 403 consent_required naming the purpose. Loop thread. */
void consent_respond_required(struct http_request *req, const char *purpose);

#endif
