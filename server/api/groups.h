/*
 * groups.h — the groups API: create, list, read, rename a group, add members or change
 * their admin flag, remove members or leave (/v1/groups...). The server knows only what
 * fan-out needs (POLICY P20): the name, the members, who is admin, and times; messages
 * to a group are end-to-end encrypted by the clients (Sender Keys). Contract and error
 * codes: docs/protocol.md, "Groups".
 *
 * Permissions are decided here (the store only keeps rows consistent): only members see
 * a group (anyone else gets 404 not_found, never 403, so group ids cannot be probed);
 * only admins rename, add, change admin flags or remove others; any member may leave.
 * A group always keeps an admin: when the last admin leaves, the longest-standing
 * remaining member becomes admin; demoting the last admin is refused.
 *
 * Each request's checks and writes run as separate store calls, so two admins acting at
 * the same moment may both pass a check (e.g. demote each other); the store keeps the
 * rows consistent either way.
 *
 * main.c, before http_server_start, once app's store exists:
 *     groups_register_routes(srv, &app)
 */
#ifndef PARLEY_SERVER_API_GROUPS_H
#define PARLEY_SERVER_API_GROUPS_H

#include "parley/err.h"

struct http_server;
struct app;

/* Register the groups routes with app as the route ctx (app must outlive the server).
 * Fails only if the router does. Main thread. */
PARLEY_WUR enum parley_err groups_register_routes(struct http_server *srv, struct app *app);

#endif
