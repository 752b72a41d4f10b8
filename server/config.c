/*
 * config.c — the configuration table and everything generated from it: defaults, the
 * config file parser ("key = value" lines, '#' comments), PARLEYD_<KEY> environment
 * overrides, --key value / --key=value flags, --help and the example config.
 *
 * Each entry names its field by offset into struct config, its type and bounds. Adding
 * an option is adding one row. Values are validated against the bounds wherever they
 * come from, and a bad value names its source (file:line, environment, flag).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "parley/version.h"

enum cfg_type { CFG_STR, CFG_BOOL, CFG_UINT, CFG_DURATION, CFG_SIZE };
enum cfg_width { W_NONE, W_U16, W_U32, W_U64, W_I64, W_SIZE, W_UNSIGNED };

#define CFG_SECRET 0x1u   /* never printed back */
#define CFG_TESTING 0x2u  /* for tests; hidden from the example config */

struct cfg_entry {
    const char *name;     /* key in the file and flag name (--name); '_' in files, '-' in flags */
    enum cfg_type type;
    size_t offset;
    enum cfg_width width;
    long long min, max;   /* bounds for numbers (durations in seconds / ms as stated) */
    const char *def;      /* default, as text, parsed like any other source */
    unsigned flags;
    const char *help;
};

#define F(field) offsetof(struct config, field)
#define DAY 86400LL

static const struct cfg_entry table[] = {
    {"listen", CFG_STR, F(listen), W_NONE, 0, 0, "127.0.0.1:8080", 0,
     "HOST:PORT to listen on. Non-loopback addresses need TLS or --insecure-behind-proxy."},
    {"threads", CFG_UINT, F(threads), W_UNSIGNED, 0, 256, "0", 0,
     "I/O threads (one event loop each); 0 = one per core."},
    {"worker_threads", CFG_UINT, F(worker_threads), W_UNSIGNED, 1, 128, "16", 0,
     "Threads for blocking work (database, password hashing), shared by all I/O threads."},
    {"tls_cert", CFG_STR, F(tls_cert), W_NONE, 0, 0, "", 0, "TLS certificate chain (PEM)."},
    {"tls_key", CFG_STR, F(tls_key), W_NONE, 0, 0, "", CFG_SECRET, "TLS private key (PEM)."},
    {"insecure_behind_proxy", CFG_BOOL, F(insecure_behind_proxy), W_NONE, 0, 1, "false", 0,
     "Allow plain HTTP on a non-loopback address (a TLS-terminating proxy in front)."},
    {"data", CFG_STR, F(data_dir), W_NONE, 0, 0, "var", 0,
     "Data directory: SQLite database, master key. Created on first start (0700)."},
    {"max_body", CFG_SIZE, F(max_body), W_SIZE, 1024, 64LL << 20, "1048576", 0,
     "Largest accepted request body, in bytes."},
    {"request_timeout_ms", CFG_UINT, F(request_timeout_ms), W_U32, 100, 600000, "10000", 0,
     "A request must arrive completely within this many milliseconds (slow clients)."},
    {"idle_timeout_ms", CFG_UINT, F(idle_timeout_ms), W_U32, 100, 3600000, "60000", 0,
     "Close keep-alive connections idle for this many milliseconds."},
    {"session_ttl", CFG_DURATION, F(session_ttl_s), W_I64, 60, 365 * DAY, "30d", 0,
     "Login session lifetime (suffix s, m, h, d)."},
    {"max_devices", CFG_UINT, F(max_devices), W_UNSIGNED, 1, 16, "6", 0,
     "Devices (sessions) per account."},
    {"argon2_opslimit", CFG_UINT, F(argon2_opslimit), W_U64, 1, 16, "2", 0,
     "Argon2id passes for password hashing."},
    {"argon2_memlimit_kib", CFG_UINT, F(argon2_memlimit_kib), W_U64, 8, 4194304, "65536", 0,
     "Argon2id memory per password hash, in KiB (default 64 MiB)."},
    {"rl_login_account_per_min", CFG_UINT, F(rl_login_account_per_min), W_UNSIGNED, 1, 100000,
     "10", 0, "Login attempts per account per minute."},
    {"rl_login_ip_per_min", CFG_UINT, F(rl_login_ip_per_min), W_UNSIGNED, 1, 100000, "30", 0,
     "Login attempts per client IP per minute (memory only; IPs are never stored)."},
    {"rl_register_ip_per_hour", CFG_UINT, F(rl_register_ip_per_hour), W_UNSIGNED, 1, 1000000,
     "20", 0, "Registrations per client IP per hour."},
    {"rl_key_fetch_per_hour", CFG_UINT, F(rl_key_fetch_per_hour), W_UNSIGNED, 1, 1000000, "300",
     0, "Prekey bundle fetches (GET /v1/keys/{username}) per requesting device per hour."},
    {"queue_ttl", CFG_DURATION, F(queue_ttl_s), W_I64, 1, 15 * DAY, "15d", 0,
     "How long an undelivered message is kept (at most 15 days)."},
    {"purge_interval", CFG_DURATION, F(purge_interval_s), W_I64, 1, DAY, "60s", 0,
     "How often expired messages, sessions and other data past retention are purged."},
    {"max_envelope", CFG_SIZE, F(max_envelope), W_SIZE, 1024, 16LL << 20, "262144", 0,
     "Largest ciphertext for one device in a message, in bytes (256 KiB)."},
    {"max_queue_per_device", CFG_UINT, F(max_queue_per_device), W_SIZE, 10, 10000000,
     "100000", 0, "Undelivered messages held for one device; sends beyond are refused."},
    {"send_rate_per_min", CFG_UINT, F(send_rate_per_min), W_UNSIGNED, 1, 10000000, "6000", 0,
     "Messages one device may send per minute."},
    {"commit_delay_us", CFG_UINT, F(commit_delay_us), W_U32, 0, 100000, "1000", 0,
     "Group commit: how long the queue writer waits to gather more messages per commit "
     "(only while senders are concurrent: a lone message is committed at once)."},
    {"writeback_ms", CFG_UINT, F(writeback_ms), W_U32, 0, 10000, "500", 0,
     "Write-back: a message for a connected device is written only if not acked within "
     "this many ms (0: always written)."},
    {"sqlite_mmap_mib", CFG_UINT, F(sqlite_mmap_mib), W_U32, 0, 65536, "0", 0,
     "SQLite reads up to this many MiB of the database through a memory map instead of "
     "read() calls (0: never; see docs/operations.md)."},
    {"queue_seal", CFG_STR, F(queue_seal), W_NONE, 0, 0, "auto", 0,
     "Cipher sealing queued messages at rest: auto (AES-256-GCM where the CPU has AES-NI, "
     "else XChaCha20-Poly1305) or xchacha20 (portable: see docs/operations.md)."},
    {"log_level", CFG_STR, F(log_level), W_NONE, 0, 0, "info", 0,
     "debug, info, warn or error."},
    {"web_root", CFG_STR, F(web_root), W_NONE, 0, 0, "", 0,
     "Directory of the web client to serve at /; empty = the web/ folder of the source tree."},
    {"shutdown_grace_ms", CFG_UINT, F(shutdown_grace_ms), W_U32, 0, 600000, "5000", 0,
     "On SIGTERM/SIGINT, how long in-flight requests may take to finish."},
    {"clock_offset", CFG_DURATION, F(clock_offset_s), W_I64, -3650 * DAY, 3650 * DAY, "0",
     CFG_TESTING, "Tests only: shift the server's wall clock by this much."},
};

#define N_ENTRIES (sizeof table / sizeof table[0])

static const struct cfg_entry *find(const char *name, size_t len)
{
    for (size_t i = 0; i < N_ENTRIES; i++) {
        const char *n = table[i].name;
        if (strlen(n) != len)
            continue;
        size_t j = 0;
        for (; j < len; j++) {
            char c = name[j] == '-' ? '_' : name[j];
            if (c != n[j])
                break;
        }
        if (j == len)
            return &table[i];
    }
    return NULL;
}

static bool parse_ll(const char *s, long long *out)
{
    if (!*s)
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

/* "90", "90s", "15m", "2h", "15d" -> seconds. */
static bool parse_duration(const char *s, long long *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 30)
        return false;
    char num[32];
    memcpy(num, s, n + 1);
    long long mult = 1;
    switch (num[n - 1]) {
    case 's': mult = 1; num[n - 1] = 0; break;
    case 'm': mult = 60; num[n - 1] = 0; break;
    case 'h': mult = 3600; num[n - 1] = 0; break;
    case 'd': mult = DAY; num[n - 1] = 0; break;
    default: break;
    }
    long long v;
    if (!parse_ll(num, &v))
        return false;
    if (v > LLONG_MAX / mult || v < LLONG_MIN / mult)
        return false;
    *out = v * mult;
    return true;
}

static void store_number(struct config *cfg, const struct cfg_entry *e, long long v)
{
    char *p = (char *)cfg + e->offset;
    switch (e->width) {
    case W_U16: *(uint16_t *)(void *)p = (uint16_t)v; break;
    case W_U32: *(uint32_t *)(void *)p = (uint32_t)v; break;
    case W_U64: *(uint64_t *)(void *)p = (uint64_t)v; break;
    case W_I64: *(int64_t *)(void *)p = (int64_t)v; break;
    case W_SIZE: *(size_t *)(void *)p = (size_t)v; break;
    case W_UNSIGNED: *(unsigned *)(void *)p = (unsigned)v; break;
    case W_NONE: break;
    }
}

/* Set one value; on failure writes "source: message" to err. */
static bool set_value(struct config *cfg, const struct cfg_entry *e, const char *value,
                      const char *source, FILE *err)
{
    char *p = (char *)cfg + e->offset;
    long long v = 0;
    switch (e->type) {
    case CFG_STR:
        if (strlen(value) >= CONFIG_STR_MAX) {
            fprintf(err, "%s: %s: value too long (at most %d bytes)\n", source, e->name,
                    CONFIG_STR_MAX - 1);
            return false;
        }
        memcpy(p, value, strlen(value) + 1);
        return true;
    case CFG_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "1") ||
            !strcmp(value, "on"))
            *(bool *)(void *)p = true;
        else if (!strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "0") ||
                 !strcmp(value, "off"))
            *(bool *)(void *)p = false;
        else {
            fprintf(err, "%s: %s: expected true or false, got \"%s\"\n", source, e->name, value);
            return false;
        }
        return true;
    case CFG_UINT:
    case CFG_SIZE:
        if (!parse_ll(value, &v)) {
            fprintf(err, "%s: %s: expected an integer, got \"%s\"\n", source, e->name, value);
            return false;
        }
        break;
    case CFG_DURATION:
        if (!parse_duration(value, &v)) {
            fprintf(err, "%s: %s: expected a duration like 90s, 15m, 2h or 15d, got \"%s\"\n",
                    source, e->name, value);
            return false;
        }
        break;
    }
    if (v < e->min || v > e->max) {
        fprintf(err, "%s: %s: %lld is out of range [%lld, %lld]\n", source, e->name, v, e->min,
                e->max);
        return false;
    }
    store_number(cfg, e, v);
    return true;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
    return s;
}

static bool load_file(struct config *cfg, const char *path, FILE *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(err, "%s: cannot open config file: %s\n", path, strerror(errno));
        return false;
    }
    char line[2048];
    unsigned lineno = 0;
    bool ok = true;
    while (ok && fgets(line, sizeof line, f)) {
        lineno++;
        char source[CONFIG_STR_MAX + 32];
        snprintf(source, sizeof source, "%s:%u", path, lineno);
        if (!strchr(line, '\n') && !feof(f)) {
            fprintf(err, "%s: line too long\n", source);
            ok = false;
            break;
        }
        char *s = trim(line);
        if (*s == 0 || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            fprintf(err, "%s: expected \"key = value\"\n", source);
            ok = false;
            break;
        }
        *eq = 0;
        char *key = trim(s), *value = trim(eq + 1);
        size_t vn = strlen(value);
        if (vn >= 2 && value[0] == '"' && value[vn - 1] == '"') {
            value[vn - 1] = 0;
            value++;
        }
        const struct cfg_entry *e = find(key, strlen(key));
        if (!e) {
            fprintf(err, "%s: unknown key \"%s\"\n", source, key);
            ok = false;
            break;
        }
        ok = set_value(cfg, e, value, source, err);
    }
    fclose(f);
    return ok;
}

static bool derive(struct config *cfg, FILE *err)
{
    /* listen = HOST:PORT, or [v6]:PORT */
    const char *l = cfg->listen;
    const char *colon = strrchr(l, ':');
    if (!colon || colon == l) {
        fprintf(err, "listen: expected HOST:PORT, got \"%s\"\n", l);
        return false;
    }
    size_t hl = (size_t)(colon - l);
    const char *h = l;
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    memcpy(cfg->listen_host, h, hl);
    cfg->listen_host[hl] = 0;
    long long port;
    if (!parse_ll(colon + 1, &port) || port < 0 || port > 65535) {
        fprintf(err, "listen: invalid port in \"%s\"\n", l);
        return false;
    }
    cfg->listen_port = (uint16_t)port;
    if (log_level_valid(cfg->log_level) == false) {
        fprintf(err, "log_level: expected debug, info, warn or error, got \"%s\"\n",
                cfg->log_level);
        return false;
    }
    if (strcmp(cfg->queue_seal, "auto") != 0 && strcmp(cfg->queue_seal, "xchacha20") != 0) {
        fprintf(err, "queue_seal: expected auto or xchacha20, got \"%s\"\n", cfg->queue_seal);
        return false;
    }
    if ((cfg->tls_cert[0] != 0) != (cfg->tls_key[0] != 0)) {
        fprintf(err, "tls_cert and tls_key must be given together\n");
        return false;
    }
    return true;
}

bool log_level_valid(const char *s)
{
    return !strcmp(s, "debug") || !strcmp(s, "info") || !strcmp(s, "warn") ||
           !strcmp(s, "error");
}

enum parley_err config_load(struct config *cfg, int argc, char **argv, FILE *err,
                            bool *help_shown)
{
    memset(cfg, 0, sizeof *cfg);
    *help_shown = false;
    for (size_t i = 0; i < N_ENTRIES; i++)
        if (!set_value(cfg, &table[i], table[i].def, "default", err))
            return PARLEY_ERR_INVAL;

    /* Pass 1: --help, --version, --config (the file comes before env and flags). */
    const char *file = getenv("PARLEYD_CONFIG");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            config_print_help(stdout, argv[0]);
            *help_shown = true;
            return PARLEY_OK;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("parleyd %s\n", PARLEY_VERSION_STRING);
            *help_shown = true;
            return PARLEY_OK;
        }
        if (!strcmp(argv[i], "--print-example-config")) {
            config_print_example(stdout);
            *help_shown = true;
            return PARLEY_OK;
        }
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                fprintf(err, "--config: missing file name\n");
                return PARLEY_ERR_INVAL;
            }
            file = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            file = argv[i] + 9;
        }
    }
    if (file && *file && !load_file(cfg, file, err))
        return PARLEY_ERR_INVAL;

    /* Environment: PARLEYD_<KEY in upper case>. */
    for (size_t i = 0; i < N_ENTRIES; i++) {
        char name[96] = "PARLEYD_";
        size_t n = strlen(name);
        for (const char *p = table[i].name; *p && n + 1 < sizeof name; p++)
            name[n++] = (char)toupper((unsigned char)*p);
        name[n] = 0;
        const char *v = getenv(name);
        if (v && !set_value(cfg, &table[i], v, name, err))
            return PARLEY_ERR_INVAL;
    }

    /* Flags. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (!strncmp(a, "--config=", 9))
            continue;
        if (strncmp(a, "--", 2) != 0) {
            fprintf(err, "unexpected argument \"%s\" (see --help)\n", a);
            return PARLEY_ERR_INVAL;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const struct cfg_entry *e = find(name, len);
        if (!e) {
            fprintf(err, "unknown option \"%.*s\" (see --help)\n", (int)(len + 2), a);
            return PARLEY_ERR_INVAL;
        }
        const char *value;
        if (eq)
            value = eq + 1;
        else if (e->type == CFG_BOOL)
            value = "true";
        else if (i + 1 < argc)
            value = argv[++i];
        else {
            fprintf(err, "--%s: missing value\n", e->name);
            return PARLEY_ERR_INVAL;
        }
        char source[96];
        snprintf(source, sizeof source, "--%.*s", (int)len, name);
        if (!set_value(cfg, e, value, source, err))
            return PARLEY_ERR_INVAL;
    }
    return derive(cfg, err) ? PARLEY_OK : PARLEY_ERR_INVAL;
}

static void flag_name(const char *name, char *out, size_t n)
{
    size_t i = 0;
    for (; name[i] && i + 1 < n; i++)
        out[i] = name[i] == '_' ? '-' : name[i];
    out[i] = 0;
}

static const char *type_hint(enum cfg_type t)
{
    switch (t) {
    case CFG_STR: return "TEXT";
    case CFG_BOOL: return "";
    case CFG_UINT: return "N";
    case CFG_SIZE: return "BYTES";
    case CFG_DURATION: return "DURATION";
    }
    return "";
}

void config_print_help(FILE *out, const char *prog)
{
    fprintf(out,
            "usage: %s [--config FILE] [--OPTION VALUE ...]\n"
            "       %s admin COMMAND ... (operator commands; see `%s admin help`)\n\n"
            "parleyd %s — the parley messaging server.\n"
            "Every option can also be set in the config file (key = value) or in the\n"
            "environment as PARLEYD_<KEY>. Precedence: default < file < environment < flag.\n\n"
            "options:\n",
            prog, prog, prog, PARLEY_VERSION_STRING);
    for (size_t i = 0; i < N_ENTRIES; i++) {
        const struct cfg_entry *e = &table[i];
        char flag[64], left[96];
        flag_name(e->name, flag, sizeof flag);
        snprintf(left, sizeof left, "--%s %s", flag, type_hint(e->type));
        fprintf(out, "  %-34s %s", left, e->help);
        if (!(e->flags & CFG_SECRET) && e->def[0])
            fprintf(out, " [default: %s]", e->def);
        fputc('\n', out);
    }
    fprintf(out, "  %-34s %s\n  %-34s %s\n  %-34s %s\n  %-34s %s\n", "--config FILE",
            "Read options from FILE (also PARLEYD_CONFIG).", "--print-example-config",
            "Print a commented config file with every option.", "--version",
            "Print the version.", "--help", "This text.");
}

void config_print_example(FILE *out)
{
    fprintf(out, "# parleyd configuration — every option with its default.\n"
                 "# Format: key = value. Durations take s, m, h or d. Generated by\n"
                 "# `parleyd --print-example-config` from the option table.\n");
    for (size_t i = 0; i < N_ENTRIES; i++) {
        const struct cfg_entry *e = &table[i];
        if (e->flags & CFG_TESTING)
            continue;
        fprintf(out, "\n# %s\n%s%s = %s\n", e->help, e->def[0] ? "" : "# ", e->name,
                e->def[0] ? e->def : "");
    }
}
