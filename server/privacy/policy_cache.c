/* policy_cache.c — the cached material policy version; see policy_cache.h. */
#include "policy_cache.h"

#include <pthread.h>
#include <string.h>

#include "clock.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static bool valid;          /* the fields below hold a reading */
static uint64_t read_at_us; /* monotonic time of that reading */
static bool have_gate;
static struct store_policy_meta cached;

enum parley_err policy_cache_gate(struct store *s, struct store_policy_meta *gate, bool *have)
{
    uint64_t now = clock_mono_us();
    pthread_mutex_lock(&mu);
    if (valid && now - read_at_us < (uint64_t)POLICY_CACHE_REFRESH_MS * 1000u) {
        *have = have_gate;
        *gate = cached;
        pthread_mutex_unlock(&mu);
        return PARLEY_OK;
    }
    pthread_mutex_unlock(&mu);

    /* Read outside the lock: concurrent refreshes read the same row, which is harmless. */
    struct store_policy_meta m;
    memset(&m, 0, sizeof m);
    enum parley_err err = store_policy_latest(s, true, &m);
    if (err && err != PARLEY_ERR_NOTFOUND)
        return err;
    pthread_mutex_lock(&mu);
    have_gate = err == PARLEY_OK;
    cached = m;
    valid = true;
    read_at_us = now;
    *have = have_gate;
    *gate = cached;
    pthread_mutex_unlock(&mu);
    return PARLEY_OK;
}

void policy_cache_invalidate(void)
{
    pthread_mutex_lock(&mu);
    valid = false;
    pthread_mutex_unlock(&mu);
}
