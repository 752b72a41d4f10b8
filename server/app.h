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

struct app {
    const struct config *cfg;
    struct store *store;
    struct metrics *metrics;
    struct ratelimit *rl_login_account;
    struct ratelimit *rl_login_ip;
    struct ratelimit *rl_register_ip;
};

#endif
