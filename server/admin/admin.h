/*
 * admin.h — `parleyd admin COMMAND ...`: operator commands that run as a separate process
 * against the same data directory as a running parleyd (SQLite WAL allows it).
 *
 * Every command accepts the configuration flags --data DIR, --config FILE and
 * --clock-offset DURATION (tests) anywhere on its command line; admin_main strips them,
 * loads the configuration, opens the master key and the store, then calls the command
 * with the remaining arguments (argv[0] is the command name). Commands print results
 * to ctx->out and errors to ctx->err, and return an exit status: 0 done, 1 failed,
 * 2 usage error.
 *
 * Adding a command: write `int admin_cmd_<name>(struct admin_ctx *, int, char **)` in its
 * own file under server/admin/, declare it below, and add a row to the table in admin.c.
 */
#ifndef PARLEY_SERVER_ADMIN_H
#define PARLEY_SERVER_ADMIN_H

#include <stdio.h>
#include "config.h"

struct store;
struct keystore;

struct admin_ctx {
    struct config cfg;
    const unsigned char *master_key; /* MASTER_KEY_BYTES */
    struct store *store;
    struct keystore *keys; /* the accounts' data keys (DATA/keys.db) */
    FILE *out;
    FILE *err;
};

typedef int (*admin_cmd_fn)(struct admin_ctx *ctx, int argc, char **argv);

struct admin_cmd {
    const char *name;  /* first word after `admin` */
    const char *usage; /* arguments, for help */
    const char *help;  /* one line */
    admin_cmd_fn run;
};

/* The commands (one file each). */
int admin_cmd_close_underage(struct admin_ctx *ctx, int argc, char **argv); /* close_underage.c */
int admin_cmd_backup(struct admin_ctx *ctx, int argc, char **argv);         /* backup.c */
/* Consent, policy, retention, audit (POLICY P26, P29-P31): one file each. */
int admin_cmd_parental_consent(struct admin_ctx *ctx, int argc, char **argv);
int admin_cmd_policy(struct admin_ctx *ctx, int argc, char **argv);
int admin_cmd_retention(struct admin_ctx *ctx, int argc, char **argv);
int admin_cmd_audit(struct admin_ctx *ctx, int argc, char **argv);
int admin_cmd_transparency(struct admin_ctx *ctx, int argc, char **argv);
int admin_cmd_export(struct admin_ctx *ctx, int argc, char **argv);

/* Entry point from main(): argv[0] is "admin". Returns the process exit status. */
int admin_main(int argc, char **argv);

/* Helpers for commands: the value of `--name VALUE` in argv (NULL if absent), and
 * whether a bare `--name` flag is present. */
const char *admin_opt(int argc, char **argv, const char *name);
int admin_flag(int argc, char **argv, const char *name);

#endif
