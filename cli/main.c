/*
 * main.c — the parley command-line client: global options, the command table, dispatch.
 *
 *   parley [--server URL] [--home DIR] [--json] [--ca-file FILE] [--insecure] COMMAND ...
 *
 * Precedence for the server: --server, then $PARLEY_SERVER, then the server saved at
 * login, then http://127.0.0.1:8080 (the library applies the last two). Home: --home,
 * then $PARLEY_HOME, then the library's default (~/.local/share/parley).
 * Exit codes: 0 ok, 1 refused by the server, 2 usage, 3 connection (see cli.h).
 */
#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <sodium.h>

#include "cli.h"
#include "output.h"
#include "parley/version.h"

static const struct cli_command commands[] = {
    {"register", "create an account",
     "usage: parley register --username U --name N --dob YYYY-MM-DD [--region R]\n"
     "                       [--gender G] [--password-stdin]\n"
     "Create an account. The password is asked twice on the terminal (no echo), or\n"
     "read as one line from stdin with --password-stdin. Does not log in.\n",
     cmd_register},
    {"login", "log this device in",
     "usage: parley login --username U [--password-stdin] [--device-name NAME]\n"
     "Create a session for this device and save it (with the server URL) in the home\n"
     "directory. The password is asked on the terminal unless --password-stdin.\n",
     cmd_login},
    {"logout", "end this device's session",
     "usage: parley logout\n"
     "End the session on the server and forget the saved credentials.\n",
     cmd_logout},
    {"whoami", "show the logged-in account",
     "usage: parley whoami\n"
     "Show the profile of the logged-in account (GET /v1/me).\n",
     cmd_whoami},
    {"profile", "change the profile",
     "usage: parley profile set [--name N] [--region R] [--gender G]\n"
     "Change the given profile fields and show the updated profile.\n",
     cmd_profile},
    {"devices", "list or revoke devices",
     "usage: parley devices            list the account's devices\n"
     "       parley devices revoke ID  revoke a device (its session ends)\n",
     cmd_devices},
    {"send", "send an end-to-end encrypted message",
     "usage: parley send [--expire SECONDS] USERNAME TEXT\n"
     "       parley send [--expire SECONDS] --stdin USERNAME\n"
     "Encrypt TEXT for every device of USERNAME (and your other devices) and send it.\n"
     "Exits 0 once the server has stored it. --expire sets a disappearing timer.\n"
     "--stdin sends one message per line of standard input (empty lines skipped); a line\n"
     "that fails is reported and the next one tried; the exit status is the last failure's.\n",
     cmd_send},
    {"recv", "fetch, print and acknowledge pending messages",
     "usage: parley recv [--json] [--timeout SECONDS] [--no-ack]\n"
     "Receive the messages waiting on the server, decrypt them, store them in the local\n"
     "history, acknowledge them, print them and exit. --json prints one object per line\n"
     "(type, id, from, text, sent_at, sent_at_ms, ...). --no-ack (diagnostics) stores\n"
     "but leaves them on the server; a later recv does not show them again.\n",
     cmd_recv},
    {"listen", "print messages as they arrive",
     "usage: parley listen [--json]\n"
     "Like recv, but keeps running (Ctrl-C to stop) and also shows receipts.\n",
     cmd_listen},
    {"history", "show the conversation with a user",
     "usage: parley history [--limit N] USERNAME\n"
     "Show the stored conversation with USERNAME from this device's local store.\n",
     cmd_history},
    {"read", "mark a conversation read",
     "usage: parley read USERNAME\n"
     "Send read receipts for USERNAME's unread messages and mark them read.\n",
     cmd_read},
    {"safety-number", "show the safety number with a user",
     "usage: parley safety-number [--accept] USERNAME\n"
     "Show the 60-digit safety number of your account and USERNAME's. Compare it with\n"
     "them in person or on a call. --accept clears a key-change warning.\n",
     cmd_safety_number},
    {"chat", "interactive conversation",
     "usage: parley chat USERNAME\n"
     "Send each line typed to USERNAME and print messages as they arrive (Ctrl-D ends).\n",
     cmd_chat},
    {"group", "groups: create, list, show, add, remove, send, history",
     "usage: parley group create NAME [USERNAME...]   new group with these members\n"
     "       parley group list                       your groups\n"
     "       parley group show GROUP                 members\n"
     "       parley group [--admin] add GROUP USERNAME\n"
     "       parley group remove GROUP USERNAME      (yourself: leave)\n"
     "       parley group [--expire S] send GROUP TEXT\n"
     "       parley group [--limit N] history GROUP\n"
     "GROUP is a group id or the name of one of your groups. Group messages are\n"
     "end-to-end encrypted with Sender Keys; after a member leaves, the next message\n"
     "uses a new sender key the former member never receives. Received group messages\n"
     "arrive with parley recv / listen.\n",
     cmd_group},
    {"export", "download everything the server holds about you",
     "usage: parley export --out FILE\n"
     "Writes one JSON document (mode 0600): profile, devices, sessions, groups, keys,\n"
     "queued message metadata, consents and the rest, with the report of categories,\n"
     "sources, purposes, recipients and retention (docs/privacy.md).\n",
     cmd_export},
    {"delete-account", "delete your account and all its data, permanently",
     "usage: parley delete-account [--yes] [--password-stdin]\n"
     "Asks you to type your username to confirm (--yes skips this), then your password.\n"
     "Everything the server holds about the account is deleted and cannot be recovered.\n",
     cmd_delete_account},
    {"policy", "show or accept the privacy policy",
     "usage: parley policy show                         the latest version and its text\n"
     "       parley policy accept [--version V] [--yes]  accept it (default: the latest)\n"
     "accept shows the policy and asks y/N on a terminal; --yes accepts without asking\n"
     "(scripts). After a material change the server refuses the account's requests\n"
     "until it is accepted.\n",
     cmd_policy},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

const struct cli_command *cli_find(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void main_usage(FILE *f)
{
    fprintf(f, "usage: parley [options] COMMAND [args]\n"
               "\n"
               "Options (before the command):\n"
               "  --server URL     server (default: $PARLEY_SERVER, the one saved at login,\n"
               "                   or " PARLEY_DEFAULT_SERVER ")\n"
               "  --home DIR       where credentials live (default: $PARLEY_HOME or\n"
               "                   ~/.local/share/parley)\n"
               "  --json           machine-readable output: one JSON object\n"
               "  --ca-file FILE   trust this CA for https\n"
               "  --insecure       skip TLS verification (testing only)\n"
               "  -h, --help       this help;  parley COMMAND --help for a command\n"
               "  -V, --version    print the version\n"
               "\n"
               "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nExit status: 0 ok, 1 refused by the server, 2 usage error, "
               "3 connection error.\n");
}

int cli_usage_error(const struct cli_command *cmd, const char *msg)
{
    fprintf(stderr, "parley: %s\n", msg);
    if (cmd)
        fputs(cmd->usage, stderr);
    else
        main_usage(stderr);
    return CLI_USAGE;
}

int cli_help(const struct cli_command *cmd)
{
    fputs(cmd->usage, stdout);
    return CLI_OK;
}

struct parley_client *cli_open(const struct cli_ctx *ctx, int *code)
{
    struct parley_client_options o = {
        .server_url = ctx->server,
        .home_dir = ctx->home,
        .ca_file = ctx->ca_file,
        .insecure_skip_verify = ctx->insecure,
    };
    struct parley_client *c = NULL;
    enum parley_err rc = parley_client_open(&o, &c);
    if (rc == PARLEY_OK) {
        *code = CLI_OK;
        return c;
    }
    if (rc == PARLEY_ERR_INVAL) {
        out_error("invalid server URL (want http://host[:port] or https://...)", NULL, 0);
        *code = CLI_USAGE;
    } else if (rc == PARLEY_ERR_STORE) {
        out_error("cannot read the saved credentials in the home directory", NULL, 0);
        *code = CLI_REFUSED;
    } else {
        out_error(parley_strerror(rc), NULL, 0);
        *code = CLI_REFUSED;
    }
    return NULL;
}

int cli_fail(struct parley_client *c, enum parley_err rc)
{
    int status = 0;
    const char *code = NULL, *msg = NULL;
    if (rc == PARLEY_ERR_SERVER && cli_policy_pending(c))
        return cli_policy_required(c);
    parley_client_last_error(c, &status, &code, &msg);
    if (!msg || !*msg)
        msg = parley_strerror(rc);
    switch (rc) {
    case PARLEY_ERR_IO:
    case PARLEY_ERR_TIMEOUT:
    case PARLEY_ERR_CLOSED: {
        char line[700];
        snprintf(line, sizeof line, "cannot reach %s: %s", parley_client_server(c), msg);
        out_error(line, NULL, 0);
        return CLI_CONN;
    }
    case PARLEY_ERR_INVAL: out_error(msg, code, status); return CLI_USAGE;
    case PARLEY_ERR_DENIED:
        if (!parley_client_logged_in(c)) {
            out_error("not logged in; run: parley login --username NAME", "not_logged_in", 0);
            return CLI_REFUSED;
        }
        out_error(msg, code, status);
        return CLI_REFUSED;
    case PARLEY_ERR_SERVER:
        if (status == 429 && parley_client_retry_after(c)) {
            char line[700];
            snprintf(line, sizeof line, "%s; retry in %u s", msg,
                     (unsigned)parley_client_retry_after(c));
            out_error(line, code, status);
            return CLI_REFUSED;
        }
        if (status == 401 && parley_client_logged_in(c)) {
            char line[700];
            snprintf(line, sizeof line, "%s; log in again with: parley login --username %s", msg,
                     parley_client_username(c));
            out_error(line, code, status);
            return CLI_REFUSED;
        }
        out_error(msg, code, status);
        return CLI_REFUSED;
    default: out_error(msg, code, status); return CLI_REFUSED;
    }
}

/* jansson allocates with these: every block is wiped when freed, so passwords and
 * tokens that pass through JSON (request bodies, answers, their growth copies) do not
 * linger in freed heap. The size sits in a header aligned like malloc's result. */
#define WIPE_HDR (sizeof(max_align_t))
static void *wipe_malloc(size_t n)
{
    if (n > SIZE_MAX - WIPE_HDR)
        return NULL;
    unsigned char *p = malloc(n + WIPE_HDR);
    if (!p)
        return NULL;
    memcpy(p, &n, sizeof n);
    return p + WIPE_HDR;
}

static void wipe_free(void *q)
{
    if (!q)
        return;
    unsigned char *p = (unsigned char *)q - WIPE_HDR;
    size_t n;
    memcpy(&n, p, sizeof n);
    sodium_memzero(p, n + WIPE_HDR);
    free(p);
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0) {
        fputs("parley: cannot initialise libsodium\n", stderr);
        return CLI_REFUSED;
    }
    json_set_alloc_funcs(wipe_malloc, wipe_free);
    struct cli_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.server = getenv("PARLEY_SERVER");
    ctx.home = getenv("PARLEY_HOME");
    if (ctx.server && !*ctx.server)
        ctx.server = NULL;
    if (ctx.home && !*ctx.home)
        ctx.home = NULL;

    enum { OPT_SERVER = 256, OPT_HOME, OPT_JSON, OPT_CA, OPT_INSECURE };
    static const struct option opts[] = {
        {"server", required_argument, NULL, OPT_SERVER},
        {"home", required_argument, NULL, OPT_HOME},
        {"json", no_argument, NULL, OPT_JSON},
        {"ca-file", required_argument, NULL, OPT_CA},
        {"insecure", no_argument, NULL, OPT_INSECURE},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int ch;
    /* "+": stop at the command name; what follows belongs to the command. */
    while ((ch = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_SERVER: ctx.server = optarg; break;
        case OPT_HOME: ctx.home = optarg; break;
        case OPT_JSON: ctx.json = true; break;
        case OPT_CA: ctx.ca_file = optarg; break;
        case OPT_INSECURE: ctx.insecure = true; break;
        case 'h': main_usage(stdout); return CLI_OK;
        case 'V': printf("parley %s\n", parley_version()); return CLI_OK;
        default: {
            char msg[128];
            snprintf(msg, sizeof msg, "unknown or incomplete option '%s'", argv[optind - 1]);
            return cli_usage_error(NULL, msg);
        }
        }
    }
    out_init(ctx.json);
    if (optind >= argc)
        return cli_usage_error(NULL, "no command given");
    const char *name = argv[optind];
    if (strcmp(name, "help") == 0) {
        const struct cli_command *h = optind + 1 < argc ? cli_find(argv[optind + 1]) : NULL;
        if (h)
            return cli_help(h);
        main_usage(stdout);
        return CLI_OK;
    }
    const struct cli_command *cmd = cli_find(name);
    if (!cmd) {
        char msg[160];
        snprintf(msg, sizeof msg, "unknown command '%.100s'", name);
        return cli_usage_error(NULL, msg);
    }
    int cargc = argc - optind;
    char **cargv = argv + optind;
    optind = 0; /* full getopt reset (glibc) for the command's own parsing */
    return cmd->run(&ctx, cargc, cargv);
}
