/*
 * cmd_account.c — account commands: register, login, logout, whoami, profile set,
 * devices (list, revoke). Each parses its options, calls one libparley function and
 * prints the result in text or JSON (output.h). Passwords come from prompt.h in
 * sodium_malloc'd buffers and are wiped as soon as the call returns; the session token
 * never reaches this file (libparley keeps it).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "cli.h"
#include "output.h"
#include "prompt.h"

enum {
    OPT_HELP = 'h',
    OPT_USERNAME = 256,
    OPT_NAME,
    OPT_DOB,
    OPT_REGION,
    OPT_GENDER,
    OPT_PASSWORD_STDIN,
    OPT_DEVICE_NAME,
    OPT_JSON,
};

#define COMMON_OPTS                                                                                \
    {"help", no_argument, NULL, OPT_HELP},                                                         \
    {                                                                                              \
        "json", no_argument, NULL, OPT_JSON                                                        \
    }

/* Handle the options every command takes. Returns -1 to go on, else an exit code. */
static int common_opt(int ch, const struct cli_command *cmd, struct cli_ctx *ctx, char **argv)
{
    switch (ch) {
    case OPT_HELP: return cli_help(cmd);
    case OPT_JSON: cli_set_json(ctx); return -1;
    default: return cli_bad_option(cmd, argv);
    }
}

static const struct cli_command *self(const char *name)
{
    return cli_find(name);
}

/* Password from stdin or the terminal (twice when confirm). NULL after printing why;
 * *code is the exit code then. */
static char *get_password(bool from_stdin, bool confirm, int *code)
{
    const char *err = NULL;
    char *pw = from_stdin ? prompt_secret_stdin(&err) : prompt_secret("Password: ", &err);
    if (!pw) {
        out_error(err, NULL, 0);
        *code = CLI_USAGE;
        return NULL;
    }
    if (confirm && !from_stdin) {
        char *again = prompt_secret("Repeat password: ", &err);
        if (!again) {
            prompt_free(pw);
            out_error(err, NULL, 0);
            *code = CLI_USAGE;
            return NULL;
        }
        bool same = strlen(pw) == strlen(again) && sodium_memcmp(pw, again, strlen(pw)) == 0;
        prompt_free(again);
        if (!same) {
            prompt_free(pw);
            out_error("the passwords do not match", NULL, 0);
            *code = CLI_USAGE;
            return NULL;
        }
    }
    return pw;
}

static int no_extra_args(const struct cli_command *cmd, int argc, char **argv)
{
    if (optind < argc) {
        char msg[160];
        snprintf(msg, sizeof msg, "unexpected argument '%.100s'", argv[optind]);
        return cli_usage_error(cmd, msg);
    }
    return -1;
}

/* ---- register ---- */

int cmd_register(struct cli_ctx *ctx, int argc, char **argv)
{
    const struct cli_command *cmd = self("register");
    static const struct option opts[] = {
        {"username", required_argument, NULL, OPT_USERNAME},
        {"name", required_argument, NULL, OPT_NAME},
        {"dob", required_argument, NULL, OPT_DOB},
        {"region", required_argument, NULL, OPT_REGION},
        {"gender", required_argument, NULL, OPT_GENDER},
        {"password-stdin", no_argument, NULL, OPT_PASSWORD_STDIN},
        COMMON_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct parley_account_params p;
    memset(&p, 0, sizeof p);
    bool pw_stdin = false;
    int ch, r;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_USERNAME: p.username = optarg; break;
        case OPT_NAME: p.name = optarg; break;
        case OPT_DOB: p.dob = optarg; break;
        case OPT_REGION: p.region = optarg; break;
        case OPT_GENDER: p.gender = optarg; break;
        case OPT_PASSWORD_STDIN: pw_stdin = true; break;
        default:
            if ((r = common_opt(ch, cmd, ctx, argv)) >= 0)
                return r;
        }
    }
    if ((r = no_extra_args(cmd, argc, argv)) >= 0)
        return r;
    if (!p.username || !p.name || !p.dob)
        return cli_usage_error(cmd, "--username, --name and --dob are required");

    int code = CLI_OK;
    struct parley_client *c = cli_open(ctx, &code);
    if (!c)
        return code;
    char *pw = get_password(pw_stdin, true, &code);
    if (!pw) {
        parley_client_free(c);
        return code;
    }
    p.password = pw;
    char *user_id = NULL;
    enum parley_err rc = parley_client_register(c, &p, &user_id);
    prompt_free(pw);
    if (rc) {
        code = cli_fail(c, rc);
    } else {
        out_msg("Registered %s (user id %s).", p.username, user_id);
        out_msg("Log in with: parley login --username %s", p.username);
        out_json(json_pack("{s:o, s:s}", "user_id", out_jstr(user_id), "username", p.username));
    }
    free(user_id);
    parley_client_free(c);
    return code;
}

/* ---- login / logout ---- */

int cmd_login(struct cli_ctx *ctx, int argc, char **argv)
{
    const struct cli_command *cmd = self("login");
    static const struct option opts[] = {
        {"username", required_argument, NULL, OPT_USERNAME},
        {"device-name", required_argument, NULL, OPT_DEVICE_NAME},
        {"password-stdin", no_argument, NULL, OPT_PASSWORD_STDIN},
        COMMON_OPTS,
        {NULL, 0, NULL, 0},
    };
    const char *username = NULL, *device_name = NULL;
    bool pw_stdin = false;
    int ch, r;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_USERNAME: username = optarg; break;
        case OPT_DEVICE_NAME: device_name = optarg; break;
        case OPT_PASSWORD_STDIN: pw_stdin = true; break;
        default:
            if ((r = common_opt(ch, cmd, ctx, argv)) >= 0)
                return r;
        }
    }
    if ((r = no_extra_args(cmd, argc, argv)) >= 0)
        return r;
    if (!username)
        return cli_usage_error(cmd, "--username is required");

    int code = CLI_OK;
    struct parley_client *c = cli_open(ctx, &code);
    if (!c)
        return code;
    char *pw = get_password(pw_stdin, false, &code);
    if (!pw) {
        parley_client_free(c);
        return code;
    }
    enum parley_err rc = parley_client_login(c, username, pw, device_name);
    prompt_free(pw);
    if (rc) {
        code = cli_fail(c, rc);
    } else {
        out_msg("Logged in as %s on %s (device %s).", parley_client_username(c),
                parley_client_server(c), parley_client_device_id(c));
        /* P30: a new material policy must be accepted before the account can be used
         * (offered here on a terminal); if it is not, the login stands but exits 1. */
        char *pending = cli_policy_after_login(c);
        out_json(json_pack("{s:s, s:s, s:s, s:s, s:o}", "username", parley_client_username(c),
                           "user_id", parley_client_user_id(c), "device_id",
                           parley_client_device_id(c), "server", parley_client_server(c),
                           "policy_pending", out_jstr(pending)));
        if (pending)
            code = CLI_REFUSED; /* cli_policy_after_login said how to accept */
        else
            cli_messaging_after_login(c);
        free(pending);
    }
    parley_client_free(c);
    return code;
}

/* Commands with no options of their own share this. */
static int simple_opts(const struct cli_command *cmd, struct cli_ctx *ctx, int argc, char **argv,
                       int max_pos)
{
    static const struct option opts[] = {COMMON_OPTS, {NULL, 0, NULL, 0}};
    int ch, r;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1)
        if ((r = common_opt(ch, cmd, ctx, argv)) >= 0)
            return r;
    if (argc - optind > max_pos) {
        char msg[160];
        snprintf(msg, sizeof msg, "unexpected argument '%.100s'", argv[optind + max_pos]);
        return cli_usage_error(cmd, msg);
    }
    return -1;
}

int cmd_logout(struct cli_ctx *ctx, int argc, char **argv)
{
    int r = simple_opts(self("logout"), ctx, argc, argv, 0);
    if (r >= 0)
        return r;
    int code = CLI_OK;
    struct parley_client *c = cli_open(ctx, &code);
    if (!c)
        return code;
    enum parley_err rc = parley_client_logout(c);
    if (rc) {
        code = cli_fail(c, rc);
    } else {
        out_msg("Logged out.");
        out_json(json_pack("{s:b}", "logged_out", 1));
    }
    parley_client_free(c);
    return code;
}

/* ---- whoami / profile ---- */

static void print_profile(struct parley_client *c, const struct parley_profile *p)
{
    out_field("username", p->username);
    out_field("user id", p->user_id);
    out_field("name", p->name);
    out_field("date of birth", p->dob);
    out_field("region", p->region);
    out_field("gender", p->gender);
    out_field("parental consent required", p->parental_consent_required ? "yes" : "no");
    char tbuf[40];
    out_field("created", out_time(p->created_at, tbuf, sizeof tbuf));
    out_field("device id", parley_client_device_id(c));
    out_field("server", parley_client_server(c));
    out_json(json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:o, s:o, s:s}", "user_id", out_jstr(p->user_id),
        "username", out_jstr(p->username), "name", out_jstr(p->name), "dob", out_jstr(p->dob),
        "region", out_jstr(p->region), "gender", out_jstr(p->gender), "parental_consent_required",
        p->parental_consent_required, "created_at", out_jtime(p->created_at), "device_id",
        out_jstr(parley_client_device_id(c)), "server", parley_client_server(c)));
}

int cmd_whoami(struct cli_ctx *ctx, int argc, char **argv)
{
    int r = simple_opts(self("whoami"), ctx, argc, argv, 0);
    if (r >= 0)
        return r;
    int code = CLI_OK;
    struct parley_client *c = cli_open(ctx, &code);
    if (!c)
        return code;
    struct parley_profile p;
    memset(&p, 0, sizeof p);
    enum parley_err rc = parley_client_get_profile(c, &p);
    if (rc)
        code = cli_fail(c, rc);
    else
        print_profile(c, &p);
    parley_profile_cleanup(&p);
    parley_client_free(c);
    return code;
}

int cmd_profile(struct cli_ctx *ctx, int argc, char **argv)
{
    const struct cli_command *cmd = self("profile");
    static const struct option opts[] = {
        {"name", required_argument, NULL, OPT_NAME},
        {"region", required_argument, NULL, OPT_REGION},
        {"gender", required_argument, NULL, OPT_GENDER},
        COMMON_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct parley_profile_update u;
    memset(&u, 0, sizeof u);
    int ch, r;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_NAME: u.name = optarg; break;
        case OPT_REGION: u.region = optarg; break;
        case OPT_GENDER: u.gender = optarg; break;
        default:
            if ((r = common_opt(ch, cmd, ctx, argv)) >= 0)
                return r;
        }
    }
    if (optind >= argc || strcmp(argv[optind], "set") != 0)
        return cli_usage_error(cmd, "expected: profile set [--name N] [--region R] "
                                    "[--gender G]");
    if (argc - optind > 1) {
        char msg[160];
        snprintf(msg, sizeof msg, "unexpected argument '%.100s'", argv[optind + 1]);
        return cli_usage_error(cmd, msg);
    }
    if (!u.name && !u.region && !u.gender)
        return cli_usage_error(cmd, "give at least one of --name, --region, --gender");

    int code = CLI_OK;
    struct parley_client *c = cli_open(ctx, &code);
    if (!c)
        return code;
    struct parley_profile p;
    memset(&p, 0, sizeof p);
    enum parley_err rc = parley_client_update_profile(c, &u, &p);
    if (rc)
        code = cli_fail(c, rc);
    else
        print_profile(c, &p);
    parley_profile_cleanup(&p);
    parley_client_free(c);
    return code;
}

/* ---- devices ---- */

static int devices_list(struct parley_client *c)
{
    struct parley_device_list l;
    memset(&l, 0, sizeof l);
    enum parley_err rc = parley_client_list_devices(c, &l);
    if (rc)
        return cli_fail(c, rc);
    int w[2] = {11, 6};
    for (size_t i = 0; i < l.count; i++) {
        const struct parley_device *d = &l.items[i];
        int lens[2] = {(int)strlen(d->device_id), d->name ? (int)strlen(d->name) : 1};
        for (int k = 0; k < 2; k++)
            if (lens[k] + 2 > w[k])
                w[k] = lens[k] + 2 > 64 ? 64 : lens[k] + 2;
    }
    if (!out_is_json()) {
        static const char *const head[5] = {"DEVICE ID", "NAME", "CREATED", "LAST SEEN", ""};
        int hw[5] = {w[0], w[1], 25, 25, 0};
        out_row(head, hw, 4);
        for (size_t i = 0; i < l.count; i++) {
            const struct parley_device *d = &l.items[i];
            char t1[40], t2[40];
            const char *cols[5] = {d->device_id, d->name, out_time(d->created_at, t1, sizeof t1),
                                   out_time(d->last_seen, t2, sizeof t2),
                                   d->current ? "(this device)" : ""};
            out_row(cols, hw, d->current ? 5 : 4);
        }
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < l.count; i++) {
        const struct parley_device *d = &l.items[i];
        json_array_append_new(arr, json_pack("{s:o, s:o, s:o, s:o, s:b}", "device_id",
                                             out_jstr(d->device_id), "name", out_jstr(d->name),
                                             "created_at", out_jtime(d->created_at), "last_seen",
                                             out_jtime(d->last_seen), "current", d->current));
    }
    out_json(json_pack("{s:o}", "devices", arr ? arr : json_array()));
    parley_device_list_cleanup(&l);
    return CLI_OK;
}

int cmd_devices(struct cli_ctx *ctx, int argc, char **argv)
{
    const struct cli_command *cmd = self("devices");
    int r = simple_opts(cmd, ctx, argc, argv, 2);
    if (r >= 0)
        return r;
    const char *sub = optind < argc ? argv[optind] : "list";
    const char *id = NULL;
    if (strcmp(sub, "list") == 0) {
        if (argc - optind > 1)
            return cli_usage_error(cmd, "devices list takes no argument");
    } else if (strcmp(sub, "revoke") == 0) {
        if (argc - optind != 2)
            return cli_usage_error(cmd, "expected: devices revoke ID");
        id = argv[optind + 1];
    } else {
        return cli_usage_error(cmd, "expected: devices [list] | devices revoke ID");
    }
    int code = CLI_OK;
    struct parley_client *c = cli_open(ctx, &code);
    if (!c)
        return code;
    if (!id) {
        code = devices_list(c);
    } else {
        enum parley_err rc = parley_client_revoke_device(c, id);
        if (rc) {
            code = cli_fail(c, rc);
        } else {
            out_msg("Revoked device %s.", id);
            out_json(json_pack("{s:s}", "revoked", id));
        }
    }
    parley_client_free(c);
    return code;
}
