/*
 * cmd_policy.c — the privacy policy in the CLI (POLICY P30):
 *   parley policy show                      the latest version and its text
 *   parley policy accept [--version V] [--yes]
 *                                           accept it (shows it and asks y/N on a
 *                                           terminal; --yes for scripts)
 * and what every other command does when the server refuses it with
 * 403 policy_consent_required (a material version awaits acceptance): on a terminal,
 * show the new policy and offer to accept it; otherwise say how, and exit 1 (refused).
 * Only the public libparley API (parley/policy.h). Server text passes through a filter
 * so it cannot drive the terminal.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "output.h"
#include "parley/policy.h"

enum { OPT_HELP = 'h', OPT_JSON = 256, OPT_YES, OPT_VERSION };

/* Ask on the terminal only: never in --json mode or when stdin is a pipe. */
static bool interactive(void)
{
    return !out_is_json() && isatty(STDIN_FILENO);
}

/* Write server text: C0 controls other than newline and tab, and DEL, shown as '?'. */
static void put_text(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        fputc(((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f) ? '?' : *p, f);
}

static void print_policy(FILE *f, const struct parley_policy *p)
{
    char t[40];
    const char *when = out_time(p->published_at, t, sizeof t);
    fputs("Privacy policy, version ", f);
    put_text(f, p->version);
    fprintf(f, " (%s%s%s)\n\n", p->material ? "a material change" : "a minor change",
            when ? ", published " : "", when ? when : "");
    put_text(f, p->text);
    size_t n = strlen(p->text);
    if (n == 0 || p->text[n - 1] != '\n')
        fputc('\n', f);
    fputc('\n', f);
}

/* "Accept ...? [y/N]" on stderr, the answer from stdin (a terminal). */
static bool ask_accept(const char *version)
{
    char line[32];
    fputs("Accept privacy policy version ", stderr);
    put_text(stderr, version);
    fputs("? [y/N] ", stderr);
    fflush(stderr);
    if (!fgets(line, sizeof line, stdin))
        return false;
    line[strcspn(line, "\r\n")] = '\0';
    return !strcasecmp(line, "y") || !strcasecmp(line, "yes");
}

static void how_to_accept(const char *version)
{
    fputs("parley: the privacy policy changed", stderr);
    if (version) {
        fputs(" (version ", stderr);
        put_text(stderr, version);
        fputc(')', stderr);
    }
    fputs(": read it with 'parley policy show', then accept it with 'parley policy accept'\n"
          "        (scripts: 'parley policy accept --yes'); until then the server refuses\n"
          "        this account's requests.\n",
          stderr);
}

/* ---- refusals from other commands ---- */

bool cli_policy_pending(struct parley_client *c)
{
    return parley_client_policy_required(c);
}

/* Show the latest policy on stderr and, if the user says so, accept it. Returns true
 * when accepted; *version (malloc'd, may stay NULL) names the version asked about. */
static bool offer(struct parley_client *c, char **version)
{
    struct parley_policy p;
    memset(&p, 0, sizeof p);
    *version = NULL;
    if (parley_client_get_policy(c, &p) != PARLEY_OK)
        return false;
    *version = strdup(p.version);
    bool ok = false;
    if (interactive()) {
        print_policy(stderr, &p);
        if (ask_accept(p.version)) {
            enum parley_err rc = parley_client_accept_policy(c, p.version, NULL);
            if (rc == PARLEY_OK) {
                fputs("Accepted privacy policy version ", stderr);
                put_text(stderr, p.version);
                fputs(".\n", stderr);
                ok = true;
            } else {
                const char *msg = NULL;
                parley_client_last_error(c, NULL, NULL, &msg);
                fprintf(stderr, "parley: could not accept the policy: %s\n",
                        msg && *msg ? msg : parley_strerror(rc));
            }
        }
    }
    parley_policy_cleanup(&p);
    return ok;
}

int cli_policy_required(struct parley_client *c)
{
    int status = 0;
    const char *code = NULL, *msg = NULL;
    parley_client_last_error(c, &status, &code, &msg);
    out_error(msg && *msg ? msg : "the privacy policy must be accepted", code, status);
    char *version = NULL;
    if (offer(c, &version))
        fputs("Run the command again.\n", stderr);
    else
        how_to_accept(version);
    free(version);
    return CLI_REFUSED; /* the command itself did not run */
}

char *cli_policy_after_login(struct parley_client *c)
{
    struct parley_profile p;
    memset(&p, 0, sizeof p);
    enum parley_err rc = parley_client_get_profile(c, &p); /* gated: the probe */
    parley_profile_cleanup(&p);
    if (rc != PARLEY_ERR_SERVER || !parley_client_policy_required(c))
        return NULL; /* usable (or another problem the next command reports) */
    char *version = NULL;
    if (offer(c, &version)) {
        free(version);
        return NULL;
    }
    how_to_accept(version);
    if (!version)
        version = strdup("?");
    return version;
}

/* ---- parley policy show | accept ---- */

static json_t *policy_json(const struct parley_policy *p)
{
    return json_pack("{s:s, s:b, s:o, s:s}", "version", p->version, "material", p->material,
                     "published_at", out_jtime(p->published_at), "text", p->text);
}

static int show(struct cli_ctx *ctx)
{
    int code = CLI_OK;
    struct parley_client *c = cli_open(ctx, &code);
    if (!c)
        return code;
    struct parley_policy p;
    memset(&p, 0, sizeof p);
    enum parley_err rc = parley_client_get_policy(c, &p);
    if (rc) {
        code = cli_fail(c, rc);
    } else {
        if (!out_is_json())
            print_policy(stdout, &p);
        out_json(policy_json(&p));
    }
    parley_policy_cleanup(&p);
    parley_client_free(c);
    return code;
}

static int accept_cmd(struct cli_ctx *ctx, const struct cli_command *cmd, const char *version,
                      bool yes)
{
    if (!yes && !interactive())
        return cli_usage_error(cmd, "not on a terminal: accept with --yes (read the policy "
                                    "first with: parley policy show)");
    int code = CLI_OK;
    struct parley_client *c = cli_open(ctx, &code);
    if (!c)
        return code;
    struct parley_policy p;
    memset(&p, 0, sizeof p);
    enum parley_err rc = PARLEY_OK;
    int64_t at = 0;
    if (!parley_client_logged_in(c)) {
        rc = PARLEY_ERR_DENIED;
        goto fail;
    }
    if (!version || !yes) {
        if ((rc = parley_client_get_policy(c, &p)))
            goto fail;
        if (!version)
            version = p.version;
    }
    if (!yes) {
        if (!strcmp(version, p.version))
            print_policy(stdout, &p);
        else
            out_msg("Version %s is not the latest one (%s).", version, p.version);
        fflush(stdout);
        if (!ask_accept(version)) {
            out_error("not accepted", NULL, 0);
            code = CLI_REFUSED;
            goto out;
        }
    }
    if ((rc = parley_client_accept_policy(c, version, &at)))
        goto fail;
    out_msg("Accepted privacy policy version %s.", version);
    out_json(json_pack("{s:s, s:o}", "version", version, "accepted_at", out_jtime(at)));
    goto out;
fail:
    code = cli_fail(c, rc);
out:
    parley_policy_cleanup(&p);
    parley_client_free(c);
    return code;
}

int cmd_policy(struct cli_ctx *ctx, int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("policy");
    static const struct option opts[] = {{"help", no_argument, NULL, OPT_HELP},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         {"yes", no_argument, NULL, OPT_YES},
                                         {"version", required_argument, NULL, OPT_VERSION},
                                         {NULL, 0, NULL, 0}};
    const char *version = NULL;
    bool yes = false, have_version = false;
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_HELP: return cli_help(cmd);
        case OPT_JSON: cli_set_json(ctx); break;
        case OPT_YES: yes = true; break;
        case OPT_VERSION:
            version = optarg;
            have_version = true;
            break;
        default: return cli_bad_option(cmd, argv);
        }
    }
    if (optind >= argc)
        return cli_usage_error(cmd, "say which: show or accept");
    const char *sub = argv[optind];
    if (optind + 1 < argc)
        return cli_usage_error(cmd, "unexpected argument");
    if (!strcmp(sub, "show")) {
        if (yes || have_version)
            return cli_usage_error(cmd, "--yes and --version go with accept");
        return show(ctx);
    }
    if (!strcmp(sub, "accept")) {
        if (have_version &&
            (!*version || strlen(version) > PARLEY_POLICY_VERSION_MAX))
            return cli_usage_error(cmd, "--version takes 1 to 32 bytes");
        return accept_cmd(ctx, cmd, version, yes);
    }
    char msg[160];
    snprintf(msg, sizeof msg, "unknown policy command '%.100s'", sub);
    return cli_usage_error(cmd, msg);
}
