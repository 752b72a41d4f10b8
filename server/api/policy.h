/*
 * policy.h — the privacy-policy API (POLICY P30): GET /v1/policy (no token: the current
 * version and its text) and POST /v1/policy/accept {"version"} (records acceptance).
 * The gate itself is in auth.c. Contract: docs/protocol.md, "Consent and policy".
 */
#ifndef PARLEY_SERVER_API_POLICY_H
#define PARLEY_SERVER_API_POLICY_H

#include "parley/err.h"

struct http_server;
struct app;

/* Register the policy routes with app as ctx. Main thread, before the server starts. */
PARLEY_WUR enum parley_err policy_register_routes(struct http_server *srv, struct app *app);

#endif
