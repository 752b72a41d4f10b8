/*
 * parley/export.h — the account holder's data rights from the client side (POLICY P27,
 * P28): download everything the server holds about the account (GET /v1/me/export) to
 * a file, and delete the account (DELETE /v1/me).
 *
 * Same conventions as parley/client.h: blocking calls on a handle, enum parley_err,
 * server refusals as PARLEY_ERR_SERVER with the detail on the handle.
 */
#ifndef PARLEY_EXPORT_H
#define PARLEY_EXPORT_H

#include <stddef.h>
#include <stdint.h>
#include "parley/client.h"
#include "parley/err.h"

/* Progress of an export: stage is "requesting", "writing" or "done"; bytes is the size
 * of the document once known (0 before). Called on the caller's thread. */
typedef void (*parley_progress_fn)(void *ctx, const char *stage, uint64_t bytes);

/* GET /v1/me/export and write the JSON document (as the server sent it, pretty-printed
 * with sorted keys) to path: a temp file beside it, fsync, rename, mode 0600 — an
 * export is personal data. progress may be NULL. *bytes_out (may be NULL) gets the size
 * written. PARLEY_ERR_DENIED when not logged in; PARLEY_ERR_IO when the file cannot be
 * written (reason on the handle); PARLEY_ERR_PROTO on a malformed answer. */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_client_export(struct parley_client *c,
                                                              const char *path,
                                                              parley_progress_fn progress,
                                                              void *ctx, size_t *bytes_out);

/* DELETE /v1/me with the password (borrowed, wiped from the library's buffers): the
 * server erases the account and everything tied to it, permanently. On success the
 * saved credentials are forgotten (the token is dead). A wrong password is
 * PARLEY_ERR_SERVER with status 401 and code "wrong_password" on the handle. */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_client_delete_account(struct parley_client *c,
                                                                      const char *password);

#endif
