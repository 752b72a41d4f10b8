/*
 * ratelimit.h — token-bucket rate limiters keyed by a string (an IP, a username).
 *
 * Memory only, by design (POLICY P23: IP addresses are not stored at rest beyond
 * rate-limiting state in memory). Keys are not even kept in memory: each is replaced by
 * a keyed SipHash-128 digest (the key random per limiter), which also makes the hash table
 * immune to chosen-key flooding.
 *
 * A limiter allows `limit` events per `period_s` seconds per key, with bursts up to
 * `limit` (a bucket holds `limit` tokens and refills continuously). limit == 0 disables
 * the limiter: every event is allowed.
 *
 * Memory is bounded by max_keys. When the table is full, buckets that have refilled
 * completely are dropped first (forgetting a full bucket loses nothing); if none is
 * full, the fullest bucket is dropped (the key that has spent the least).
 *
 * Threads: every function but ratelimit_new/ratelimit_free may be called from any
 * thread concurrently (striped locks). Calls never block on I/O: safe on a loop thread.
 */
#ifndef PARLEY_SERVER_RATELIMIT_H
#define PARLEY_SERVER_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "parley/err.h"

struct ratelimit;

/* Create a limiter. max_keys 0 means a default of 65536. period_s must be > 0.
 * PARLEY_ERR_INVAL on bad arguments, PARLEY_ERR_NOMEM. Free with ratelimit_free. */
PARLEY_WUR enum parley_err ratelimit_new(unsigned limit, uint32_t period_s, size_t max_keys,
                                         struct ratelimit **out);
void ratelimit_free(struct ratelimit *rl);

/* Take one token from key's bucket, at monotonic time now_us (clock_mono_us()).
 * Returns true if allowed. If not allowed and retry_after_s is not NULL, it gets the
 * number of whole seconds (>= 1) until a token is available. */
bool ratelimit_take_at(struct ratelimit *rl, const char *key, uint64_t now_us,
                       uint32_t *retry_after_s);
/* The same at the current monotonic time. */
bool ratelimit_take(struct ratelimit *rl, const char *key, uint32_t *retry_after_s);

/* For a caller that takes from one key often (a connection's device): the key's digest
 * under rl, computed once, then taken from without hashing the key again. A NULL or
 * disabled rl gives a digest of zeros (taking from it is always allowed). */
#define RATELIMIT_DIGEST_BYTES 16
void ratelimit_digest(const struct ratelimit *rl, const char *key,
                      uint8_t d[RATELIMIT_DIGEST_BYTES]);
bool ratelimit_take_digest(struct ratelimit *rl, const uint8_t d[RATELIMIT_DIGEST_BYTES],
                           uint64_t now_us, uint32_t *retry_after_s);

/* Number of keys currently tracked (for tests and metrics). */
size_t ratelimit_size(struct ratelimit *rl);

#endif
