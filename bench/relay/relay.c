/*
 * relay.c — the benchmark's bare relay (issue #5): the local ceiling for parleyd's relay
 * numbers. Same transport as parleyd (common/http_server.h: libuv, our WebSocket frames),
 * nothing else: no authentication, no storage, no acknowledgements.
 *
 * A client opens a WebSocket at /relay/{id} (id: decimal, below RELAY_MAX_IDS). Each
 * binary message starts with the 4-byte big-endian id of the destination; the relay
 * forwards the whole message to that connection if it is open and drops it otherwise.
 * One I/O thread (the connection table is not shared across threads).
 *
 *   bench_relay --port N
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_server.h"

#define RELAY_MAX_IDS (1u << 20)

struct peer {
    uint32_t id;
    struct ws_conn *ws;
};

static struct peer **table; /* id -> open connection; touched by the one loop thread only */

static void on_message(struct ws_conn *ws, bool binary, const uint8_t *data, size_t len,
                       void *user)
{
    uint32_t dest;
    struct peer *to;

    (void)ws;
    (void)user;
    if (!binary || len < 4)
        return;
    dest = ((uint32_t)data[0] << 24) | ((uint32_t)data[1] << 16) | ((uint32_t)data[2] << 8) |
           data[3];
    if (dest >= RELAY_MAX_IDS || !(to = table[dest]))
        return;
    if (ws_send(to->ws, true, data, len) != PARLEY_OK)
        return; /* the transport closes a connection whose output queue overflowed */
}

static void on_close(struct ws_conn *ws, uint16_t code, void *user)
{
    struct peer *p = user;

    (void)ws;
    (void)code;
    if (table[p->id] == p)
        table[p->id] = NULL;
    free(p);
}

static const struct ws_callbacks callbacks = {on_message, on_close};

static void on_relay(struct http_request *req, void *ctx)
{
    char *end = NULL;
    unsigned long id;
    struct peer *p;
    struct ws_conn *ws = NULL;

    (void)ctx;
    errno = 0;
    id = strtoul(req->params[0], &end, 10);
    if (errno || !end || *end || id >= RELAY_MAX_IDS) {
        http_respond_error(req, 400, "invalid_id", "id must be a number below 2^20");
        return;
    }
    if (!(p = calloc(1, sizeof *p))) {
        http_respond_error(req, 503, "unavailable", "out of memory");
        return;
    }
    p->id = (uint32_t)id;
    if (http_upgrade_websocket(req, &callbacks, p, &ws) != PARLEY_OK) {
        free(p);
        return;
    }
    p->ws = ws;
    if (table[id])
        ws_close(table[id]->ws, 4000, "replaced");
    table[id] = p;
}

static int usage(void)
{
    fputs("usage: bench_relay --port N\n", stderr);
    return 2;
}

int main(int argc, char **argv)
{
    struct http_server_config cfg;
    struct http_server *srv = NULL;
    unsigned long port = 0;
    sigset_t sigs;
    int sig = 0, status = 1;

    if (argc != 3 || strcmp(argv[1], "--port") != 0)
        return usage();
    errno = 0;
    port = strtoul(argv[2], NULL, 10);
    if (errno || port == 0 || port > 65535)
        return usage();
    table = calloc(RELAY_MAX_IDS, sizeof *table);
    if (!table)
        return 1;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    memset(&cfg, 0, sizeof cfg);
    cfg.host = "127.0.0.1";
    cfg.port = (uint16_t)port;
    cfg.threads = 1;
    if (http_server_new(&cfg, &srv) != PARLEY_OK ||
        http_server_route(srv, "GET", "/relay/{id}", on_relay, NULL) != PARLEY_OK ||
        http_server_start(srv) != PARLEY_OK) {
        fprintf(stderr, "bench_relay: cannot listen on 127.0.0.1:%lu\n", port);
        goto out;
    }
    fprintf(stderr, "bench_relay: listening on 127.0.0.1:%u\n", http_server_port(srv));
    sigwait(&sigs, &sig);
    http_server_stop(srv, 1000);
    status = 0;
out:
    http_server_free(srv);
    free(table);
    return status;
}
