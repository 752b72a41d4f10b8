/*
 * config.h — parleyd's configuration: one table (name, type, bounds, default, flags,
 * help) in config.c from which the config file parser, the command-line flags, the
 * PARLEYD_* environment overrides and `parleyd --help` all come (Redis's config.c).
 * Precedence: defaults < config file < environment < command line.
 * The struct is filled once at start-up and read-only afterwards (any thread).
 */
#ifndef PARLEY_SERVER_CONFIG_H
#define PARLEY_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "parley/err.h"

#define CONFIG_STR_MAX 512

struct config {
    /* network */
    char listen[CONFIG_STR_MAX];        /* HOST:PORT, default 127.0.0.1:8080 */
    char listen_host[CONFIG_STR_MAX];   /* derived from listen */
    uint16_t listen_port;               /* derived from listen */
    unsigned threads;                   /* I/O threads, 0 = cores */
    unsigned worker_threads;            /* blocking-work pool (SQLite, Argon2) */
    char tls_cert[CONFIG_STR_MAX];
    char tls_key[CONFIG_STR_MAX];
    bool insecure_behind_proxy;
    /* storage */
    char data_dir[CONFIG_STR_MAX];      /* default ./var */
    /* limits */
    size_t max_body;                    /* bytes */
    uint32_t request_timeout_ms;
    uint32_t idle_timeout_ms;
    /* accounts */
    int64_t session_ttl_s;              /* default 30 days */
    unsigned max_devices;               /* default 6 */
    uint64_t argon2_opslimit;
    uint64_t argon2_memlimit_kib;
    unsigned rl_login_account_per_min;  /* login attempts per account per minute */
    unsigned rl_login_ip_per_min;       /* login attempts per IP per minute */
    unsigned rl_register_ip_per_hour;   /* registrations per IP per hour */
    unsigned rl_key_fetch_per_hour;     /* prekey bundle fetches per device per hour */
    /* messaging */
    int64_t queue_ttl_s;                /* default and maximum 15 days */
    int64_t purge_interval_s;           /* retention jobs run this often */
    size_t max_envelope;                /* bytes of one device's ciphertext */
    size_t max_queue_per_device;        /* envelopes held per device */
    unsigned send_rate_per_min;         /* sends per device per minute */
    uint32_t commit_delay_us;           /* group commit gathering window */
    uint32_t writeback_ms;              /* held copies are written after this (held.h) */
    uint32_t sqlite_mmap_mib;           /* SQLite reads the database through mmap, up to this */
    /* operations */
    char log_level[CONFIG_STR_MAX];
    char queue_seal[CONFIG_STR_MAX];    /* "auto" or "xchacha20" (seal.h) */
    char web_root[CONFIG_STR_MAX];      /* static web client; "" = built-in default */
    int64_t clock_offset_s;             /* tests only: shift the wall clock */
    uint32_t shutdown_grace_ms;
};

/* Fill cfg with defaults, then apply the config file (--config or PARLEYD_CONFIG),
 * the environment and argv. On a bad value writes a clear message to err and returns
 * PARLEY_ERR_INVAL. Sets *help_shown when --help or --version was handled (exit 0). */
PARLEY_WUR enum parley_err config_load(struct config *cfg, int argc, char **argv, FILE *err,
                                       bool *help_shown);
/* Print the help generated from the table. */
void config_print_help(FILE *out, const char *prog);
/* Print an example config file (every key, its default and help as comments). */
void config_print_example(FILE *out);
/* true for "debug", "info", "warn", "error". */
bool log_level_valid(const char *s);

#endif
