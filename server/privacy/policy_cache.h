/*
 * policy_cache.h — the policy version that gates the API (POLICY P30), cached in memory.
 *
 * The gate is the latest *material* policy version. auth_then asks for it on every
 * authenticated request, so it is kept in memory and re-read from the store at most
 * every POLICY_CACHE_REFRESH_MS: a version published by `parleyd admin policy publish`
 * (another process) gates the running server within that interval. Publishing inside
 * this process calls policy_cache_invalidate so it applies at once.
 *
 * Threads: policy_cache_gate blocks (store) when it refreshes: thread pool only; the
 * cache is mutex-protected. policy_cache_invalidate: any thread.
 */
#ifndef PARLEY_SERVER_PRIVACY_POLICY_CACHE_H
#define PARLEY_SERVER_PRIVACY_POLICY_CACHE_H

#include <stdbool.h>
#include "parley/err.h"
#include "store/store.h"

#define POLICY_CACHE_REFRESH_MS 2000

/* *have = a material version exists, then *gate is it. Store errors are returned (the
 * caller fails the request: an unknown gate must not open the API). */
PARLEY_WUR enum parley_err policy_cache_gate(struct store *s, struct store_policy_meta *gate,
                                             bool *have);
/* Forget the cached gate: the next call re-reads it. */
void policy_cache_invalidate(void);

#endif
