/*
 * consents.h — the consent API (POLICY P12, P15, P22, P28, P29):
 * GET /v1/me/consents (every purpose with its state) and
 * PUT /v1/me/consents/{purpose} {"granted": true|false}. Contract and error codes:
 * docs/protocol.md, "Consent and policy".
 */
#ifndef PARLEY_SERVER_API_CONSENTS_H
#define PARLEY_SERVER_API_CONSENTS_H

#include "parley/err.h"

struct http_server;
struct app;

/* Register the consent routes with app as ctx. Main thread, before the server starts. */
PARLEY_WUR enum parley_err consents_register_routes(struct http_server *srv, struct app *app);

#endif
