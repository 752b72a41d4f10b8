/*
 * account_data.h — the account holder's own data rights over HTTP (POLICY P27, P28):
 *   GET    /v1/me/export   everything held about the account, one JSON document (export.h)
 *   DELETE /v1/me          {"password"}: erase the account (store_user_delete), after an
 *                          Argon2id re-check of the password on the thread pool
 * Contracts of both in docs/protocol.md "Your data: export and deletion".
 */
#ifndef PARLEY_SERVER_API_ACCOUNT_DATA_H
#define PARLEY_SERVER_API_ACCOUNT_DATA_H

#include "parley/err.h"

struct http_server;
struct app;

/* Largest export answered over HTTP (the client library reads at most 16 MiB). */
#define ACCOUNT_DATA_EXPORT_MAX ((size_t)15 << 20)

/* Register the routes above (main thread, before the server starts). */
PARLEY_WUR enum parley_err account_data_register_routes(struct http_server *srv, struct app *app);

#endif
