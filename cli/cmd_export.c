/*
 * cmd_export.c — the data-rights commands (POLICY P27, P28):
 *   parley export --out FILE           everything the server holds about the account
 *   parley delete-account [--yes] [--password-stdin]
 *                                      erase the account permanently (asks to confirm,
 *                                      then for the password)
 * Only the public libparley API (parley/export.h).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "output.h"
#include "parley/export.h"
#include "prompt.h"

enum { OPT_HELP = 'h', OPT_OUT = 256, OPT_JSON, OPT_YES, OPT_PASSWORD_STDIN };

/* Progress on stderr, only on a terminal (never in --json mode or into a pipe). */
static void progress(void *ctx, const char *stage, uint64_t bytes)
{
    (void)ctx;
    if (!strcmp(stage, "requesting"))
        fprintf(stderr, "\rexport: asking the server...          ");
    else if (!strcmp(stage, "writing"))
        fprintf(stderr, "\rexport: writing %llu KiB...          ",
                (unsigned long long)((bytes + 1023) / 1024));
    else
        fprintf(stderr, "\rexport: done                          \n");
    fflush(stderr);
}

int cmd_export(struct cli_ctx *ctx, int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("export");
    static const struct option opts[] = {{"help", no_argument, NULL, OPT_HELP},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         {"out", required_argument, NULL, OPT_OUT},
                                         {NULL, 0, NULL, 0}};
    const char *out = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_HELP: return cli_help(cmd);
        case OPT_JSON: cli_set_json(ctx); break;
        case 'o':
        case OPT_OUT: out = optarg; break;
        default: return cli_bad_option(cmd, argv);
        }
    }
    if (!out || !*out)
        return cli_usage_error(cmd, "--out FILE is required");
    if (optind < argc)
        return cli_usage_error(cmd, "unexpected argument");
    int code = CLI_OK;
    struct parley_client *c = cli_open(ctx, &code);
    if (!c)
        return code;
    size_t bytes = 0;
    bool tty = !ctx->json && isatty(STDERR_FILENO);
    enum parley_err rc = parley_client_export(c, out, tty ? progress : NULL, NULL, &bytes);
    if (rc) {
        if (tty)
            fputc('\n', stderr);
        code = cli_fail(c, rc);
    } else {
        out_msg("Exported everything the server holds about you to %s (%zu bytes).", out, bytes);
        out_json(json_pack("{s:s,s:I}", "file", out, "bytes", (json_int_t)bytes));
    }
    parley_client_free(c);
    return code;
}

/* Ask on the terminal to type the username; true if it matches. */
static bool confirm(const char *username)
{
    char line[128];
    fprintf(stderr,
            "This deletes the account '%s' and everything the server holds about it,\n"
            "permanently: it cannot be undone or recovered. Type the username to confirm: ",
            username);
    fflush(stderr);
    if (!fgets(line, sizeof line, stdin))
        return false;
    line[strcspn(line, "\r\n")] = '\0';
    return !strcmp(line, username);
}

int cmd_delete_account(struct cli_ctx *ctx, int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("delete-account");
    static const struct option opts[] = {{"help", no_argument, NULL, OPT_HELP},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         {"yes", no_argument, NULL, OPT_YES},
                                         {"password-stdin", no_argument, NULL, OPT_PASSWORD_STDIN},
                                         {NULL, 0, NULL, 0}};
    bool yes = false, pw_stdin = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_HELP: return cli_help(cmd);
        case OPT_JSON: cli_set_json(ctx); break;
        case OPT_YES: yes = true; break;
        case OPT_PASSWORD_STDIN: pw_stdin = true; break;
        default: return cli_bad_option(cmd, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error(cmd, "unexpected argument");
    if (!yes && (pw_stdin || !isatty(STDIN_FILENO)))
        return cli_usage_error(cmd, "not on a terminal: confirm with --yes");
    int code = CLI_OK;
    struct parley_client *c = cli_open(ctx, &code);
    if (!c)
        return code;
    const char *username = parley_client_username(c);
    if (!parley_client_logged_in(c) || !username) {
        out_error("not logged in", NULL, 0);
        parley_client_free(c);
        return CLI_REFUSED;
    }
    if (!yes && !confirm(username)) {
        out_error("not confirmed: nothing was deleted", NULL, 0);
        parley_client_free(c);
        return CLI_REFUSED;
    }
    const char *err = NULL;
    char *pw = pw_stdin ? prompt_secret_stdin(&err) : prompt_secret("Password: ", &err);
    if (!pw) {
        out_error(err, NULL, 0);
        parley_client_free(c);
        return CLI_USAGE;
    }
    enum parley_err rc = parley_client_delete_account(c, pw);
    prompt_free(pw);
    if (rc) {
        code = cli_fail(c, rc);
    } else {
        out_msg("The account is deleted. Everything the server held about it is gone.");
        out_json(json_pack("{s:b}", "deleted", 1));
    }
    parley_client_free(c);
    return code;
}
