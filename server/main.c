/*
 * main.c — parleyd: load the configuration, open the data directory (master key,
 * store), register every route, start the I/O threads, and wait for SIGINT/SIGTERM to
 * shut down gracefully (stop accepting, finish in-flight requests, close the store).
 *
 * Signals are blocked in every thread and taken synchronously here with sigwait, so no
 * handler runs inside a loop thread.
 */
#include <limits.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <pthread.h>
#include <sodium.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "api/account_data.h"
#include "api/accounts.h"
#include "api/consents.h"
#include "api/groups.h"
#include "api/keys.h"
#include "api/ops.h"
#include "api/policy.h"
#include "api/web.h"
#include "app.h"
#include "clock.h"
#include "config.h"
#include "file_util.h"
#include "http_server.h"
#include "log.h"
#include "master_key.h"
#include "metrics.h"
#include "parley/version.h"
#include "ratelimit.h"
#include "store/keystore.h"
#include "store/store.h"
#include "stream/stream.h"

#ifndef PARLEY_WEB_DIR
#define PARLEY_WEB_DIR "web"
#endif

static bool is_loopback(const char *host)
{
    return !strncmp(host, "127.", 4) || !strcmp(host, "::1") || !strcmp(host, "localhost");
}

/* glibc gives memory back to the kernel as soon as 128 KiB are free at the top of a heap
 * and grows heaps by the bare need, so a messaging load that frees and re-allocates
 * (messages, frames, batches) keeps paying madvise/brk and page faults for the same
 * memory. Keep up to 16 MiB free per heap and grow in 4 MiB steps. Setting either turns
 * glibc's self-adjusting mmap threshold off (it would then stay at 128 KiB), so that is
 * set too, at 4 MiB: 1 MiB frames and bodies and the 4 MiB output queues stay in the heap.
 * Measured (scripts like bench's relay, 100 pairs, 5 s; issue #5): in the relay phase
 * madvise calls 14-395 -> 0, brk -> 0, page faults 10-50 % fewer, sysmalloc (~0.4 % of
 * server CPU) gone from the profile, resident +0.5-1 MB; msgs/s moved less than the
 * shared machine's noise (+-20 %); the idle stream's bytes per connection did not move.
 * 64/16 MiB did no better than 16/4 MiB, so the smaller retention was kept; M_ARENA_MAX=2
 * changed neither number and is left alone. MALLOC_*_ / GLIBC_TUNABLES still win. */
static void malloc_tune(void)
{
#if defined(__GLIBC__)
    if (getenv("MALLOC_TRIM_THRESHOLD_") || getenv("MALLOC_TOP_PAD_") ||
        getenv("MALLOC_MMAP_THRESHOLD_") || getenv("GLIBC_TUNABLES"))
        return;
    (void)mallopt(M_TRIM_THRESHOLD, 16 << 20);
    (void)mallopt(M_TOP_PAD, 4 << 20);
    (void)mallopt(M_MMAP_THRESHOLD, 4 << 20);
#endif
}

static void observe(const struct http_request *req, int status, uint64_t latency_us, void *ctx)
{
    struct app *app = ctx;
    metrics_record(app->metrics, req ? req->route : NULL, status, latency_us);
}

static enum parley_err make_limiters(struct app *app, const struct config *cfg)
{
    enum parley_err rc;
    if ((rc = ratelimit_new(cfg->rl_login_account_per_min, 60, 100000, &app->rl_login_account)))
        return rc;
    if ((rc = ratelimit_new(cfg->rl_login_ip_per_min, 60, 100000, &app->rl_login_ip)))
        return rc;
    if ((rc = ratelimit_new(cfg->rl_register_ip_per_hour, 3600, 100000, &app->rl_register_ip)))
        return rc;
    return ratelimit_new(cfg->rl_key_fetch_per_hour, 3600, 100000, &app->rl_key_fetch);
}

static enum parley_err register_routes(struct http_server *srv, struct app *app,
                                       const struct config *cfg)
{
    enum parley_err rc;
    if ((rc = ops_register_routes(srv, app)))
        return rc;
    if ((rc = accounts_register_routes(srv, app)) || (rc = account_data_register_routes(srv, app)))
        return rc;
    if ((rc = keys_register_routes(srv, app)) || (rc = groups_register_routes(srv, app)))
        return rc;
    if ((rc = consents_register_routes(srv, app)) || (rc = policy_register_routes(srv, app)))
        return rc;
    if ((rc = stream_register_routes(srv, app)))
        return rc;
    return web_register_routes(srv, cfg->web_root[0] ? cfg->web_root : PARLEY_WEB_DIR);
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct app app;
    struct http_server *srv = NULL;
    unsigned char *master_key = NULL;
    struct keystore *keystore = NULL;
    int status = 1;
    bool help = false;

    memset(&app, 0, sizeof app);
    if (argc >= 2 && !strcmp(argv[1], "admin"))
        return admin_main(argc - 1, argv + 1);
    if (config_load(&cfg, argc, argv, stderr, &help) != PARLEY_OK)
        return 2;
    if (help)
        return 0;
    malloc_tune(); /* before any thread starts */
    if (sodium_init() < 0) {
        fprintf(stderr, "parleyd: libsodium failed to initialise\n");
        return 1;
    }
    log_init((enum log_level)log_level_parse(cfg.log_level), 2);
    /* libuv sizes its pool from the environment on first use, which comes later. */
    char pool[16];
    snprintf(pool, sizeof pool, "%u", cfg.worker_threads);
    setenv("UV_THREADPOOL_SIZE", pool, 1);
    clock_set_offset_s(cfg.clock_offset_s);

    if (!is_loopback(cfg.listen_host) && !cfg.tls_cert[0] && !cfg.insecure_behind_proxy) {
        fprintf(stderr, "parleyd: refusing plain HTTP on %s: give tls_cert/tls_key, or "
                        "--insecure-behind-proxy when a TLS proxy terminates connections\n",
                cfg.listen_host);
        return 2;
    }

    /* Signals: block everywhere (threads inherit the mask), wait for them below. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (file_mkdirs(cfg.data_dir, 0700) != PARLEY_OK) {
        fprintf(stderr, "parleyd: cannot create data directory %s\n", cfg.data_dir);
        goto out;
    }
    if (master_key_load(cfg.data_dir, stderr, &master_key) != PARLEY_OK)
        goto out;

    char db_path[PATH_MAX];
    if (snprintf(db_path, sizeof db_path, "%s/parley.db", cfg.data_dir) >= (int)sizeof db_path) {
        fprintf(stderr, "parleyd: data directory path too long\n");
        goto out;
    }
    app.cfg = &cfg;
    app.master_key = master_key;
    store_sqlite_global_init((uint64_t)cfg.sqlite_mmap_mib << 20);
    char keys_path[PATH_MAX];
    if (snprintf(keys_path, sizeof keys_path, "%s/keys.db", cfg.data_dir) >= (int)sizeof keys_path ||
        keystore_open(keys_path, master_key, &keystore) != PARLEY_OK) {
        fprintf(stderr, "parleyd: cannot open the key store in %s\n", cfg.data_dir);
        goto out;
    }
    if (store_open_sqlite_keyed(db_path, keystore, &app.store) != PARLEY_OK) {
        fprintf(stderr, "parleyd: cannot open the store %s\n", db_path);
        goto out;
    }
    if (metrics_new(&app.metrics) != PARLEY_OK || make_limiters(&app, &cfg) != PARLEY_OK) {
        fprintf(stderr, "parleyd: out of memory\n");
        goto out;
    }
    if (stream_new(&app, &app.stream) != PARLEY_OK || stream_start(app.stream) != PARLEY_OK) {
        fprintf(stderr, "parleyd: cannot set up the message stream\n");
        goto out;
    }
    metrics_set_extra(app.metrics, stream_metrics_render, app.stream);

    struct http_server_config hc;
    memset(&hc, 0, sizeof hc);
    hc.host = cfg.listen_host;
    hc.port = cfg.listen_port;
    hc.threads = cfg.threads;
    hc.tls_cert_file = cfg.tls_cert[0] ? cfg.tls_cert : NULL;
    hc.tls_key_file = cfg.tls_key[0] ? cfg.tls_key : NULL;
    hc.limits.max_body = cfg.max_body;
    hc.limits.request_timeout_ms = cfg.request_timeout_ms;
    hc.limits.idle_timeout_ms = cfg.idle_timeout_ms;
    if (http_server_new(&hc, &srv) != PARLEY_OK || register_routes(srv, &app, &cfg) != PARLEY_OK) {
        fprintf(stderr, "parleyd: cannot set up the HTTP server\n");
        goto out;
    }
    http_server_set_observer(srv, observe, &app);
    if (http_server_start(srv) != PARLEY_OK) {
        fprintf(stderr, "parleyd: cannot listen on %s\n", cfg.listen);
        goto out;
    }
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)http_server_port(srv));
    log_event(LOG_INFO, "listening", "host", cfg.listen_host, "port", port, "version",
              PARLEY_VERSION_STRING, "tls", cfg.tls_cert[0] ? "on" : "off", NULL);

    int sig = 0;
    sigwait(&sigs, &sig);
    log_event(LOG_INFO, "shutdown", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM", NULL);
    http_server_stop(srv, cfg.shutdown_grace_ms);
    stream_stop(app.stream); /* commits what the writer still holds */
    status = 0;
out:
    http_server_free(srv);
    stream_free(app.stream);
    ratelimit_free(app.rl_key_fetch);
    ratelimit_free(app.rl_register_ip);
    ratelimit_free(app.rl_login_ip);
    ratelimit_free(app.rl_login_account);
    metrics_free(app.metrics);
    if (app.store)
        store_close(app.store);
    keystore_close(keystore);
    master_key_free(master_key);
    if (status == 0)
        log_event(LOG_INFO, "stopped", NULL);
    return status;
}
