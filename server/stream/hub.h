/*
 * hub.h — which device is connected where: device id -> connection, across all I/O
 * threads. The writer looks recipients up here after a commit to push envelopes; the
 * purge job to push expiry notices. One connection per device: registering a device
 * that is already connected replaces the old connection, which the caller closes.
 *
 * Sharded (HUB_SHARDS mutexes, chained buckets) so loops registering and the writer
 * looking up rarely contend. The hub holds a reference on each registered connection.
 * A second index, user id -> that user's registered connections, serves revocation and
 * account deletion (stream_disconnect_user); it holds no references of its own and is
 * changed only together with the device index (lock order: device shard, then user
 * shard; never two user shards at once).
 * Threads: any. Memory: none per connected device (the chains run through struct sconn).
 */
#ifndef PARLEY_SERVER_STREAM_HUB_H
#define PARLEY_SERVER_STREAM_HUB_H

#include <stddef.h>

#include "parley/err.h"

struct hub;
struct sconn;

PARLEY_WUR enum parley_err hub_new(struct hub **out);
/* Drops the references of connections still registered. */
void hub_free(struct hub *h);
/* Register c under c->device_id (the hub takes a reference). If another connection was
 * registered for the device, *old gets it with the hub's reference handed to the caller
 * (who closes it and unrefs it); else NULL. Allocates nothing: returns PARLEY_OK (the
 * error return stays for callers written against a hub that allocates). */
PARLEY_WUR enum parley_err hub_register(struct hub *h, struct sconn *c, struct sconn **old);
/* Remove c if it is still the device's connection (a replaced one is not). */
void hub_unregister(struct hub *h, struct sconn *c);
/* The device's connection with a new reference (caller unrefs), or NULL. */
struct sconn *hub_lookup(struct hub *h, const char *device_id);
/* The user's registered connections, each with a new reference: *out is a malloc'd
 * array of *n pointers (NULL when *n is 0); the caller unrefs each and frees the array.
 * PARLEY_ERR_NOMEM. */
PARLEY_WUR enum parley_err hub_user_connections(struct hub *h, const char *user_id,
                                                struct sconn ***out, size_t *n);
/* Connected devices (for metrics and tests). */
size_t hub_size(struct hub *h);

#endif
