/*
 * cli.h — what the parley CLI's command files share: the global options, the command
 * table entry, exit codes, and the helpers that open a client, report errors and parse
 * the options every command shares.
 *
 * A command is one row in main.c's table: name, one-line summary, usage text and a run
 * function that gets argv starting at the command name (argv[0] = "login"), parses its
 * own options (getopt_long) and returns an exit code. Adding a command family (send,
 * recv, listen, chat, group…) is a new cmd_<family>.c plus rows in the table.
 * The CLI speaks only the public libparley API (include/parley/).
 */
#ifndef PARLEY_CLI_H
#define PARLEY_CLI_H

#include <stdbool.h>
#include "parley/client.h"
#include "parley/err.h"

enum cli_exit {
    CLI_OK = 0,
    CLI_REFUSED = 1, /* the server (or local state) refused: not logged in, 4xx, 5xx */
    CLI_USAGE = 2,   /* bad command line */
    CLI_CONN = 3,    /* could not talk to the server: connect, TLS, timeout */
};

struct cli_ctx {
    const char *server;  /* --server or $PARLEY_SERVER; NULL = saved/default */
    const char *home;    /* --home or $PARLEY_HOME; NULL = default */
    const char *ca_file; /* --ca-file */
    bool insecure;       /* --insecure (tests with self-signed certificates) */
    bool json;           /* --json */
};

struct cli_command {
    const char *name;
    const char *summary;
    const char *usage; /* full help text for "parley NAME --help" */
    int (*run)(struct cli_ctx *ctx, int argc, char **argv);
};

/* Open a client for ctx. On failure prints the reason and returns NULL with *code set
 * to the exit code. */
struct parley_client *cli_open(const struct cli_ctx *ctx, int *code);
/* Report a failed libparley call (detail from the handle) and return the exit code
 * for rc. */
int cli_fail(struct parley_client *c, enum parley_err rc);
/* Print a usage error for cmd ("parley: msg" + usage) and return CLI_USAGE. */
int cli_usage_error(const struct cli_command *cmd, const char *msg);
/* Print cmd's help on stdout and return 0. */
int cli_help(const struct cli_command *cmd);
/* The table entry for name (main.c), or NULL. */
const struct cli_command *cli_find(const char *name);
/* A command's --json option: JSON output from here on (util.c). */
void cli_set_json(struct cli_ctx *ctx);
/* The usage error for the option getopt_long just refused (argv[optind - 1]); returns
 * CLI_USAGE (util.c). */
int cli_bad_option(const struct cli_command *cmd, char **argv);

/* cmd_account.c */
int cmd_register(struct cli_ctx *ctx, int argc, char **argv);
int cmd_login(struct cli_ctx *ctx, int argc, char **argv);
int cmd_logout(struct cli_ctx *ctx, int argc, char **argv);
int cmd_whoami(struct cli_ctx *ctx, int argc, char **argv);
int cmd_profile(struct cli_ctx *ctx, int argc, char **argv);
int cmd_devices(struct cli_ctx *ctx, int argc, char **argv);

/* cmd_messaging.c */
int cmd_send(struct cli_ctx *ctx, int argc, char **argv);
int cmd_recv(struct cli_ctx *ctx, int argc, char **argv);
int cmd_listen(struct cli_ctx *ctx, int argc, char **argv);
int cmd_history(struct cli_ctx *ctx, int argc, char **argv);
int cmd_read(struct cli_ctx *ctx, int argc, char **argv);
int cmd_safety_number(struct cli_ctx *ctx, int argc, char **argv);
int cmd_chat(struct cli_ctx *ctx, int argc, char **argv);
int cmd_group(struct cli_ctx *ctx, int argc, char **argv);
/* After a successful login: create and upload the device keys (warns on failure). */
void cli_messaging_after_login(struct parley_client *c);

/* cmd_export.c */
int cmd_export(struct cli_ctx *ctx, int argc, char **argv);
int cmd_delete_account(struct cli_ctx *ctx, int argc, char **argv);

/* cmd_policy.c (P30) */
int cmd_policy(struct cli_ctx *ctx, int argc, char **argv);
/* True when c's last call was refused with 403 policy_consent_required. */
bool cli_policy_pending(struct parley_client *c);
/* Report that refusal: on a terminal show the new policy and offer to accept it, else
 * say how to. Returns CLI_REFUSED (the command did not run). */
int cli_policy_required(struct parley_client *c);
/* Right after a login: if the account must accept a new policy, offer it as above.
 * NULL when the account is usable, else the pending version (malloc'd; free()). */
char *cli_policy_after_login(struct parley_client *c);

#endif
