/*
 * export.h — everything parleyd holds about one account, as one JSON document (POLICY
 * P28: access and portability, with the GDPR/CCPA report of categories, sources,
 * purposes, recipients and retention). Used by GET /v1/me/export and by the operator's
 * export for legal requests (`parleyd admin export`).
 *
 * The export is driven by a registry: one section per table (or small group of tables),
 * each read by one query or one function, each carrying its report entry. Every table
 * of the database is either covered by a section or listed in export_no_user_data with
 * the reason; tests/unit/test_export.c enumerates sqlite_master and fails on a table
 * that is in neither list, so a new table cannot be forgotten.
 *
 * Document schema (docs/privacy.md "Export format"):
 *   {"format":"parley-export","version":1,"generated_at":SECONDS,"user_id":ID,
 *    "sections":{"profile":{...},"devices":[ROW...],...},
 *    "report":{"sections":[{"section","tables","categories","sources","purposes",
 *              "recipients","retention"}...],"sold_or_shared":...,"not_exported":[...]}}
 * Rows are objects of column name to value: integers and text as JSON, binary columns
 * (public keys, message ids) as unpadded base64url, absent values null. Never exported:
 * the password hash, session token hashes, message bodies (end-to-end ciphertext), the
 * account's data key.
 *
 * Threads: export_user_json blocks on the store; call it off the loop threads.
 */
#ifndef PARLEY_SERVER_EXPORT_H
#define PARLEY_SERVER_EXPORT_H

#include <stddef.h>
#include <stdint.h>
#include "parley/err.h"

struct store;
struct json_t;

#define EXPORT_FORMAT_VERSION 1

/* Receives the document in pieces, in order. A non-OK result stops the export and is
 * returned by export_user_json (e.g. PARLEY_ERR_LIMIT from a bounded buffer). */
typedef enum parley_err (*export_write_fn)(void *ctx, const char *data, size_t len);

struct export_section {
    const char *name;   /* key under "sections" */
    const char *tables; /* the tables it covers, comma-separated, no spaces */
    /* Exactly one of sql and build: sql reads rows (?1 = the user id) into an array;
     * build makes the section's value (a new jansson reference in *out). */
    const char *sql;
    enum parley_err (*build)(struct store *s, const char *user_id, struct json_t **out);
    /* The report entry (GDPR art. 15, CCPA "right to know"). */
    const char *categories;
    const char *sources;
    const char *purposes;
    const char *recipients;
    const char *retention;
};

struct export_no_user_data {
    const char *table;
    const char *reason;
};

extern const struct export_section export_registry[];
extern const size_t export_registry_count;
extern const struct export_no_user_data export_no_user_data[];
extern const size_t export_no_user_data_count;

/* Write the export of user_id, generated at `now`, through write(ctx, ...).
 * PARLEY_ERR_NOTFOUND if there is no such account (nothing is written then),
 * PARLEY_ERR_STORE / NOMEM, or the writer's error. */
PARLEY_WUR enum parley_err export_user_json(struct store *s, const char *user_id, int64_t now,
                                            export_write_fn write, void *ctx);

#endif
