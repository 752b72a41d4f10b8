/*
 * retention.c — the retention table and its jobs; see retention.h.
 *
 * Decisions recorded here (docs/operations.md repeats them):
 *  - sessions are deleted at expiry (stricter than the "one day after expiry" the
 *    brief allowed): an expired token is useless, so keeping it serves nothing;
 *  - consent history and policy acceptances are kept for the account's life: they are
 *    the proof of consent the controller must be able to show (GDPR art. 7(1)); they
 *    go with the account (P27) and are in the export (P28);
 *  - the audit log is kept indefinitely: it names accounts only by pseudonym, and
 *    deleting from a hash chain would break its verification.
 */
#include "retention.h"

#include <stdio.h>

#include "config.h"
#include "log.h"
#include "store/store.h"

static enum parley_err purge_cat(struct store *s, enum store_retention_cat cat, int64_t period,
                                 int64_t now, size_t *n)
{
    return store_retention_purge(s, cat, now - period, n);
}

static enum parley_err job_queue(struct store *s, const struct config *cfg, int64_t now,
                                 size_t *n_out)
{
    size_t total = 0;
    for (int round = 0; round < 100; round++) {
        struct store_envelope *notices = NULL;
        size_t n_notices = 0, n = 0;
        enum parley_err err = store_queue_purge_expired(s, now, 1000, cfg->queue_ttl_s, &notices,
                                                        &n_notices, &n);
        store_envelopes_free(notices, n_notices);
        if (err)
            return err;
        total += n;
        if (n < 1000)
            break;
    }
    *n_out = total;
    return PARLEY_OK;
}

static enum parley_err job_sessions(struct store *s, const struct config *cfg, int64_t now,
                                    size_t *n_out)
{
    (void)cfg;
    return store_session_purge_expired(s, now, n_out);
}

static enum parley_err job_call_quality(struct store *s, const struct config *cfg, int64_t now,
                                        size_t *n)
{
    (void)cfg;
    return purge_cat(s, STORE_RET_CALL_QUALITY, RETENTION_CALL_QUALITY_S, now, n);
}

static enum parley_err job_security(struct store *s, const struct config *cfg, int64_t now,
                                    size_t *n)
{
    (void)cfg;
    return purge_cat(s, STORE_RET_SECURITY_EVENTS, RETENTION_SECURITY_EVENTS_S, now, n);
}

static enum parley_err job_reports(struct store *s, const struct config *cfg, int64_t now,
                                   size_t *n)
{
    (void)cfg;
    return purge_cat(s, STORE_RET_REPORTS, RETENTION_REPORTS_S, now, n);
}

static enum parley_err job_purchases(struct store *s, const struct config *cfg, int64_t now,
                                     size_t *n)
{
    (void)cfg;
    return purge_cat(s, STORE_RET_PURCHASES, RETENTION_PURCHASES_S, now, n);
}

static const struct retention_rule rules[] = {
    {"queued_envelopes", "P8, P9", "queue_ttl (default and maximum 15 days)",
     "from receipt; deleted at once on the recipient device's ack",
     "store_queue_purge_expired (stream/purge.c), sender told EXPIRED", job_queue, true},
    {"sessions", "P2", "until expiry (session_ttl, default 30 days)",
     "from login; deleted at expiry, logout or device revocation",
     "store_session_purge_expired", job_sessions, false},
    {"call_quality", "P22", "90 days", "from receipt; no peer identity, no network address",
     "store_retention_purge(STORE_RET_CALL_QUALITY)", job_call_quality, false},
    {"security_events", "P23", "7 days", "from the event; the only place a network origin is kept",
     "store_retention_purge(STORE_RET_SECURITY_EVENTS)", job_security, false},
    {"reports", "P25", "1 year", "from filing", "store_retention_purge(STORE_RET_REPORTS)",
     job_reports, false},
    {"purchases", "P4", "6 years", "from purchase (tax law); pseudonymised at account erasure",
     "store_retention_purge(STORE_RET_PURCHASES)", job_purchases, false},
    {"account_profile", "P1, P31", "until the account is deleted", "basic account data",
     "store_user_delete (P27)", NULL, false},
    {"consents_and_history", "P28, P30", "until the account is deleted",
     "proof of consent (GDPR art. 7(1)); includes policy acceptances",
     "ON DELETE CASCADE from users", NULL, false},
    {"audit_log", "P26", "indefinitely", "append-only hash chain; accounts named by pseudonym",
     "none (never deleted)", NULL, false},
};

const struct retention_rule *retention_rules(size_t *n)
{
    *n = sizeof rules / sizeof rules[0];
    return rules;
}

enum parley_err retention_run_all(struct store *s, const struct config *cfg, int64_t now,
                                  bool include_stream, FILE *out)
{
    enum parley_err first = PARLEY_OK;
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        const struct retention_rule *r = &rules[i];
        size_t n = 0;
        if (!r->run || (r->stream_owned && !include_stream))
            continue;
        enum parley_err err = r->run(s, cfg, now, &n);
        if (err) {
            log_event(LOG_ERROR, "retention_job_failed", "category", r->category, "error",
                      parley_strerror(err), NULL);
            if (!first)
                first = err;
            continue;
        }
        if (n) {
            char num[24];
            snprintf(num, sizeof num, "%zu", n);
            log_event(LOG_INFO, "retention_purged", "category", r->category, "rows", num, NULL);
        }
        if (out)
            fprintf(out, "%s %zu\n", r->category, n);
    }
    return first;
}

void retention_print(const struct config *cfg, FILE *out)
{
    fprintf(out, "%-22s %-10s %-42s %s\n", "CATEGORY", "POLICY", "PERIOD", "ENFORCED BY");
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        const struct retention_rule *r = &rules[i];
        char period[96];
        if (!r->category[0])
            continue;
        if (r->run == job_queue)
            snprintf(period, sizeof period, "%s [now %llds]", r->period,
                     (long long)cfg->queue_ttl_s);
        else if (r->run == job_sessions)
            snprintf(period, sizeof period, "%s [now %llds]", r->period,
                     (long long)cfg->session_ttl_s);
        else
            snprintf(period, sizeof period, "%s", r->period);
        fprintf(out, "%-22s %-10s %-42s %s\n", r->category, r->clause, period, r->job);
        fprintf(out, "%-22s %-10s %s\n", "", "", r->basis);
    }
}
