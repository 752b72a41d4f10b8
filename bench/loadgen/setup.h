/*
 * setup.h — creating parleyd accounts for the benchmark over the real HTTP API
 * (register, log in, upload keys), with the blocking client of common/http_client.h.
 * Runs before any measurement; the server should run with fast Argon2 flags.
 */
#ifndef PARLEY_BENCH_SETUP_H
#define PARLEY_BENCH_SETUP_H

#include <stdbool.h>
#include <stdint.h>

struct http_client;

struct pdevice {
    char user_id[33];
    char device_id[33];
    char token[64];
};

/* Connect the setup client to http://127.0.0.1:port (https with tls; the certificate is
 * the script's self-signed one, so it is not verified). */
int setup_open(uint16_t port, bool tls, struct http_client **out);
/* Register username, then log in n_devices times (one device each), filling out[0..n-1];
 * with keys, each device uploads a valid key set (PUT /v1/keys) so it is a recipient.
 * 0 or -1 (the failing step on stderr). */
int setup_user(struct http_client *hc, const char *username, unsigned n_devices, bool keys,
               struct pdevice *out);

#endif
