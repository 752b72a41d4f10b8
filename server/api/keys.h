/*
 * keys.h — the keys API: upload of a device's public prekeys (PUT /v1/keys), its own
 * one-time prekey stock (GET /v1/keys) and the fetch of another user's prekey bundles
 * (GET /v1/keys/{username}), which hands out each one-time prekey at most once.
 * Contract and error codes: docs/protocol.md, "Keys". Only public keys ever reach the
 * server (POLICY P6); signatures are verified before anything is stored.
 *
 * main.c, before http_server_start, once app's store and app->rl_key_fetch exist:
 *     keys_register_routes(srv, &app)
 */
#ifndef PARLEY_SERVER_API_KEYS_H
#define PARLEY_SERVER_API_KEYS_H

#include "parley/err.h"

struct http_server;
struct app;

/* Below this many one-time prekeys in stock, answers say "low": true (upload more). */
#define KEYS_LOW_STOCK 20

/* Register the keys routes with app as the route ctx (app must outlive the server).
 * Fails only if the router does. Main thread. */
PARLEY_WUR enum parley_err keys_register_routes(struct http_server *srv, struct app *app);

#endif
