/*
 * retention.h — THE retention table (POLICY P31): every category of data the server
 * keeps, how long, why, and the job that enforces it. `parleyd admin retention` prints
 * it, docs/operations.md mirrors it, and the purge pass (stream/purge.c, every
 * purge_interval) runs every job in it.
 *
 * A job deletes the rows of its category older than the period at `now`, so moving the
 * clock (--clock-offset, or `now` in unit tests) proves each period without waiting.
 * Categories kept for the account's life (profile, contacts, consents...) have no job:
 * they go with the account (P27) and are listed so the table is complete.
 *
 * Threads: retention_run_* block (store): the writer thread or an admin process.
 */
#ifndef PARLEY_SERVER_RETENTION_H
#define PARLEY_SERVER_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "parley/err.h"

struct store;
struct config;

#define RETENTION_DAY_S 86400
#define RETENTION_CALL_QUALITY_S (90 * RETENTION_DAY_S)
#define RETENTION_SECURITY_EVENTS_S (7 * RETENTION_DAY_S)
#define RETENTION_REPORTS_S (365 * RETENTION_DAY_S)
#define RETENTION_PURCHASES_S (2191 * RETENTION_DAY_S) /* 6 years with the leap days */

/* A job: delete what is due at now; *n_out gets the number of rows deleted. */
typedef enum parley_err (*retention_job_fn)(struct store *s, const struct config *cfg,
                                            int64_t now, size_t *n_out);

struct retention_rule {
    const char *category; /* stable name, e.g. "call_quality" */
    const char *clause;   /* POLICY rows */
    const char *period;   /* human text of the period */
    const char *basis;    /* what starts the clock / why this long */
    const char *job;      /* the function or mechanism that enforces it */
    retention_job_fn run; /* NULL: kept for the account's life, deleted with it (P27) */
    bool stream_owned;    /* run by the stream's purge pass itself (it pushes notices) */
};

/* The table and its size. */
const struct retention_rule *retention_rules(size_t *n);

/* Run every job (include_stream: also the queue job, whose expiry notices then wait in
 * the queue for the senders' next drain instead of being pushed live). Failures are
 * logged and the other jobs still run; the first error is returned. If out is not NULL
 * a line per job with its count is printed there. */
PARLEY_WUR enum parley_err retention_run_all(struct store *s, const struct config *cfg,
                                             int64_t now, bool include_stream, FILE *out);

/* Print the table (for `parleyd admin retention`), periods resolved with cfg. */
void retention_print(const struct config *cfg, FILE *out);

#endif
