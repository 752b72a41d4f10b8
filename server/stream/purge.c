/*
 * purge.c — the retention pass of the message queue (POLICY P9), run by the writer
 * thread every cfg purge_interval_s (so it is serialised with the group commits and its
 * notices reach the loops in envelope-id order like every other push).
 *
 * One pass: delete expired envelopes in chunks of PURGE_CHUNK (each chunk one store
 * transaction, which also queues an EXPIRED notice per (message, recipient user) to
 * the sender's devices), push those notices to sender devices that are connected (the
 * others get them on their next drain: notices are queued envelopes, acked like
 * messages), then run every other job of the retention table (server/retention.h:
 * sessions, call quality, security events, reports, purchases). Logs counts only.
 */
#include <stdio.h>

#include "app.h"
#include "clock.h"
#include "config.h"
#include "hub.h"
#include "log.h"
#include "retention.h"
#include "stream_int.h"

#define PURGE_CHUNK 1000
#define PURGE_CHUNKS_MAX 100 /* per pass; the rest waits for the next pass */

void purge_run(struct stream *st)
{
    const struct config *cfg = st->app->cfg;
    int64_t now = clock_now_s();
    size_t total = 0, total_notices = 0;
    for (size_t round = 0; round < PURGE_CHUNKS_MAX; round++) {
        struct store_envelope *notices = NULL;
        size_t n_notices = 0, n_purged = 0;
        enum parley_err rc = store_queue_purge_expired(st->app->store, now, PURGE_CHUNK,
                                                       cfg->queue_ttl_s, &notices, &n_notices,
                                                       &n_purged);
        if (rc) {
            log_event(LOG_ERROR, "queue_purge_failed", "error", parley_strerror(rc), NULL);
            break;
        }
        for (size_t i = 0; i < n_notices; i++) {
            struct sconn *c = hub_lookup(st->hub, notices[i].device_id);
            if (!c)
                continue;
            struct outmsg *m = pack_stored(&notices[i], NULL, 0);
            if (m)
                stream_post(c, m);
            sconn_unref(c);
        }
        store_envelopes_free(notices, n_notices);
        total += n_purged;
        total_notices += n_notices;
        if (n_purged < PURGE_CHUNK)
            break;
    }
    /* Every other job of the retention table (P31): sessions, call quality, security
     * events, reports, purchases. Each logs its own count and failure. */
    (void)!retention_run_all(st->app->store, cfg, now, false, NULL);
    atomic_fetch_add(&st->purged, total);
    atomic_fetch_add(&st->notices, total_notices);
    if (total || total_notices) {
        char a[24], b[24];
        snprintf(a, sizeof a, "%zu", total);
        snprintf(b, sizeof b, "%zu", total_notices);
        log_event(LOG_INFO, "queue_purged", "envelopes", a, "notices", b, NULL);
    }
}
