/*
 * accounts.h — the accounts API: registration, profile (/v1/me), login and logout
 * (/v1/sessions), devices (/v1/devices). Contract and error codes: docs/protocol.md,
 * "Accounts". Handlers run on the loop threads and do every store access and every
 * Argon2 computation through http_request_work.
 *
 * main.c, before http_server_start and once app's store and rate limiters
 * (rl_login_account, rl_login_ip, rl_register_ip; see ratelimit.h) exist:
 *     accounts_register_routes(srv, &app)
 */
#ifndef PARLEY_SERVER_API_ACCOUNTS_H
#define PARLEY_SERVER_API_ACCOUNTS_H

#include "parley/err.h"
#include "log.h"

struct http_server;
struct app;

/* Register every accounts route with app as the route ctx (app must outlive the
 * server). Fails only if the router does. Main thread. */
PARLEY_WUR enum parley_err accounts_register_routes(struct http_server *srv, struct app *app);

/* The parts, registered by accounts_register_routes. */
PARLEY_WUR enum parley_err sessions_register_routes(struct http_server *srv, struct app *app);
PARLEY_WUR enum parley_err devices_register_routes(struct http_server *srv, struct app *app);

/* Log an accounts event with pseudonymised ids only (P24); either id may be NULL. */
void accounts_log_event(enum log_level level, const char *event, const char *user_id,
                        const char *device_id, const char *reason);

#endif
