/*
 * admin.c — the `parleyd admin` dispatcher: the command table, configuration flags,
 * opening the data directory, and help. See admin.h.
 */
#include "admin.h"

#include <limits.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "master_key.h"
#include "store/keystore.h"
#include "store/store.h"

static int cmd_help(struct admin_ctx *ctx, int argc, char **argv);

static const struct admin_cmd commands[] = {
    {"help", "", "List the admin commands.", cmd_help},
    {"close-underage", "USER",
     "Under-13 found (P29): delete the account (username or id) as in P27, and audit it.",
     admin_cmd_close_underage},
    {"backup", "--out DIR",
     "Back up parley.db and keys.db (online) into DIR; keep key-store backups shorter.",
     admin_cmd_backup},
    {"parental-consent", "USER --reference TEXT [--operator NAME]",
     "Record a parent's consent for an account (P29); audited.", admin_cmd_parental_consent},
    {"policy", "publish --version V --file TEXT (--material|--minor)",
     "Publish a privacy-policy version; material ones gate the API until accepted (P30).",
     admin_cmd_policy},
    {"retention", "[--run]", "Print the retention table (P31); --run runs every job now.",
     admin_cmd_retention},
    {"audit", "verify", "Verify the audit log's hash chain; names the first bad entry (P26).",
     admin_cmd_audit},
    {"transparency", "--since YYYY-MM-DD", "Counts of audited operator actions by kind (P26).",
     admin_cmd_transparency},
    {"export", "USER --reason TEXT [--operator NAME] [--out FILE]",
     "Export an account's data for a legal request; audited first (P26).", admin_cmd_export},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static int cmd_help(struct admin_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(ctx->out, "usage: parleyd admin COMMAND [ARGS] [--data DIR] [--config FILE]\n\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(ctx->out, "  %s %s\n      %s\n", commands[i].name, commands[i].usage,
                commands[i].help);
    return 0;
}

const char *admin_opt(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return NULL;
}

int admin_flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], name))
            return 1;
    return 0;
}

static bool is_config_flag(const char *a)
{
    return !strcmp(a, "--data") || !strcmp(a, "--config") || !strcmp(a, "--clock-offset");
}

static const struct admin_cmd *find(const char *name)
{
    if (!strcmp(name, "--help") || !strcmp(name, "-h"))
        name = "help";
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

/* Split argv (after "admin") into configuration flags (cargv, with a program name first)
 * and the command's own words (rargv). Both arrays hold argc + 1 pointers. */
static bool split_args(int argc, char **argv, char **cargv, int *cargc, char **rargv, int *rargc)
{
    static char prog[] = "parleyd";
    *cargc = 0;
    *rargc = 0;
    cargv[(*cargc)++] = prog;
    for (int i = 1; i < argc; i++) {
        if (is_config_flag(argv[i])) {
            if (i + 1 >= argc)
                return false;
            cargv[(*cargc)++] = argv[i];
            cargv[(*cargc)++] = argv[++i];
        } else {
            rargv[(*rargc)++] = argv[i];
        }
    }
    cargv[*cargc] = NULL;
    rargv[*rargc] = NULL;
    return true;
}

int admin_main(int argc, char **argv)
{
    struct admin_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.out = stdout;
    ctx.err = stderr;
    char **cargv = calloc((size_t)argc + 2, sizeof *cargv);
    char **rargv = calloc((size_t)argc + 2, sizeof *rargv);
    unsigned char *key = NULL;
    int cargc = 0, rargc = 0, status = 2;
    if (!cargv || !rargv) {
        fprintf(stderr, "parleyd admin: out of memory\n");
        status = 1;
        goto out;
    }
    if (!split_args(argc, argv, cargv, &cargc, rargv, &rargc)) {
        fprintf(stderr, "parleyd admin: a configuration flag is missing its value\n");
        goto out;
    }
    if (rargc == 0) {
        cmd_help(&ctx, 0, NULL);
        goto out;
    }
    const struct admin_cmd *cmd = find(rargv[0]);
    if (!cmd) {
        fprintf(stderr, "parleyd admin: unknown command '%s' (see: parleyd admin help)\n",
                rargv[0]);
        goto out;
    }
    if (cmd->run == cmd_help) {
        status = cmd_help(&ctx, rargc, rargv);
        goto out;
    }
    bool help = false;
    if (config_load(&ctx.cfg, cargc, cargv, stderr, &help) != PARLEY_OK || help)
        goto out;
    if (sodium_init() < 0) {
        fprintf(stderr, "parleyd admin: libsodium failed to initialise\n");
        status = 1;
        goto out;
    }
    clock_set_offset_s(ctx.cfg.clock_offset_s);
    status = 1;
    if (master_key_load(ctx.cfg.data_dir, stderr, &key) != PARLEY_OK)
        goto out;
    ctx.master_key = key;
    char db_path[PATH_MAX], keys_path[PATH_MAX];
    if (snprintf(keys_path, sizeof keys_path, "%s/keys.db", ctx.cfg.data_dir) >=
            (int)sizeof keys_path ||
        keystore_open(keys_path, key, &ctx.keys) != PARLEY_OK) {
        fprintf(stderr, "parleyd admin: cannot open the key store in %s\n", ctx.cfg.data_dir);
        goto out;
    }
    if (snprintf(db_path, sizeof db_path, "%s/parley.db", ctx.cfg.data_dir) >=
            (int)sizeof db_path ||
        store_open_sqlite_keyed(db_path, ctx.keys, &ctx.store) != PARLEY_OK) {
        fprintf(stderr, "parleyd admin: cannot open the store in %s\n", ctx.cfg.data_dir);
        goto out;
    }
    status = cmd->run(&ctx, rargc, rargv);
out:
    if (ctx.store)
        store_close(ctx.store);
    keystore_close(ctx.keys);
    master_key_free(key);
    free(cargv);
    free(rargv);
    return status;
}
