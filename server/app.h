/*
 * app.h — the state every handler shares: configuration, store, rate limiters, metrics.
 * Built once by main.c before the server starts, read-only afterwards except through
 * the thread-safe objects it points to. Handlers get it as their route ctx.
 */
#ifndef PARLEY_SERVER_APP_H
#define PARLEY_SERVER_APP_H

#include "config.h"

struct store;
struct metrics;
struct ratelimit;
struct http_server;
struct stream;

struct app {
    const struct config *cfg;
    const unsigned char *master_key; /* MASTER_KEY_BYTES, sodium_malloc'd, read-only */
    struct store *store;
    struct metrics *metrics;
    struct ratelimit *rl_login_account;
    struct ratelimit *rl_login_ip;
    struct ratelimit *rl_register_ip;
    struct ratelimit *rl_key_fetch; /* prekey bundle fetches per requesting device */
    struct stream *stream; /* the WebSocket stream and message queue (stream/stream.h) */
};

#endif
