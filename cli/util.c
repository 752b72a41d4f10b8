/*
 * util.c — option-parsing helpers the CLI's command files share (declared in cli.h):
 * the per-command --json switch and the "unknown or incomplete option" usage error.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "output.h"

void cli_set_json(struct cli_ctx *ctx)
{
    ctx->json = true;
    out_init(true);
}

int cli_bad_option(const struct cli_command *cmd, char **argv)
{
    char msg[160];
    snprintf(msg, sizeof msg, "unknown or incomplete option '%.100s'", argv[optind - 1]);
    return cli_usage_error(cmd, msg);
}
