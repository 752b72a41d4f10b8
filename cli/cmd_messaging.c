/*
 * cmd_messaging.c — end-to-end encrypted messaging commands: send, recv, listen,
 * history, read, safety-number, chat. Each opens the client and a messenger
 * (parley/messaging.h: local store, device keys, stream) and prints in text or JSON
 * (output.h). recv/listen print one JSON object per line under --json, since they
 * stream.
 *
 * The CLI never sees keys or ciphertext: libparley encrypts, decrypts, stores and acks.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "output.h"
#include "parley/messaging.h"

enum {
    OPT_HELP = 'h',
    OPT_JSON = 256,
    OPT_EXPIRE,
    OPT_TIMEOUT,
    OPT_LIMIT,
    OPT_NO_ACK,
    OPT_ACCEPT,
    OPT_STDIN,
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static bool parse_u32(const char *s, uint32_t max, uint32_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > max)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* Open client + messenger; on failure prints and returns NULLs with *code set. */
static struct parley_messenger *open_messenger(struct cli_ctx *ctx, bool no_ack,
                                              struct parley_client **cp, int *code)
{
    *cp = cli_open(ctx, code);
    if (!*cp)
        return NULL;
    struct parley_messenger_options o = {.no_ack = no_ack};
    struct parley_messenger *m = NULL;
    enum parley_err rc = parley_messenger_open(*cp, &o, &m);
    if (rc) {
        *code = cli_fail(*cp, rc);
        parley_client_free(*cp);
        *cp = NULL;
        return NULL;
    }
    return m;
}

static void close_messenger(struct parley_messenger *m, struct parley_client *c)
{
    parley_messenger_free(m);
    parley_client_free(c);
}

static const char *ms_time(int64_t ms, char *buf, size_t len)
{
    const char *t = out_time(ms / 1000, buf, len);
    return t ? t : "-";
}

/* Print one event. Returns true when it was a message (or anything printed). */
static void print_event(const struct parley_event *ev, bool all)
{
    char tb[64];
    switch (ev->kind) {
    case PARLEY_EVENT_MESSAGE:
        if (out_is_json()) {
            json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:I, s:I, s:b, s:I}", "type",
                                  "message", "id", ev->id, "from", out_jstr(ev->from_username),
                                  "from_user_id", out_jstr(ev->from_user_id), "from_device",
                                  out_jstr(ev->from_device), "text", out_jstr(ev->text),
                                  "sent_at", (json_int_t)(ev->sent_at_ms / 1000), "sent_at_ms",
                                  (json_int_t)ev->sent_at_ms, "outgoing", ev->outgoing,
                                  "expire_after", (json_int_t)ev->expire_after_s);
            if (o && ev->outgoing && !ev->group_id)
                json_object_set_new(o, "to", out_jstr(ev->peer_username));
            if (o && ev->group_id)
                json_object_set_new(o, "group_id", out_jstr(ev->group_id));
            out_json(o);
        } else if (ev->group_id) {
            out_msg("[%s] %s @ group %s: %s", ms_time(ev->sent_at_ms, tb, sizeof tb),
                    ev->outgoing ? "you (other device)"
                                 : (ev->from_username ? ev->from_username : "?"),
                    ev->group_id, ev->text ? ev->text : "");
        } else if (ev->outgoing) {
            out_msg("[%s] you (other device) -> %s: %s", ms_time(ev->sent_at_ms, tb, sizeof tb),
                    ev->peer_username ? ev->peer_username : "?", ev->text ? ev->text : "");
        } else {
            out_msg("[%s] %s: %s", ms_time(ev->sent_at_ms, tb, sizeof tb),
                    ev->from_username ? ev->from_username : "?", ev->text ? ev->text : "");
        }
        break;
    case PARLEY_EVENT_RECEIPT:
        if (!all)
            break;
        if (out_is_json())
            out_json(json_pack("{s:s, s:s, s:s, s:o}", "type", "receipt", "id", ev->id, "status",
                               ev->read ? "read" : "delivered", "from",
                               out_jstr(ev->from_username)));
        else
            out_msg("(message %.8s %s by %s)", ev->id, ev->read ? "read" : "delivered",
                    ev->from_username ? ev->from_username : "?");
        break;
    case PARLEY_EVENT_EXPIRED:
        if (out_is_json() && all)
            out_json(json_pack("{s:s, s:s, s:o, s:I}", "type", "expired", "id", ev->id, "to",
                               out_jstr(ev->peer_username), "devices", (json_int_t)ev->count));
        else
            fprintf(stderr, "parley: message %.8s to %s expired undelivered (%u device(s))\n",
                    ev->id, ev->peer_username ? ev->peer_username : "?", ev->count);
        break;
    case PARLEY_EVENT_IDENTITY_CHANGED:
        fprintf(stderr,
                "parley: WARNING: the identity key of %s's device %s changed. Compare the "
                "safety number (parley safety-number %s) before trusting new messages.\n",
                ev->from_username ? ev->from_username : "?",
                ev->from_device ? ev->from_device : "?",
                ev->from_username ? ev->from_username : "USER");
        break;
    case PARLEY_EVENT_UNDECRYPTABLE:
        fprintf(stderr, "parley: a message from %s could not be decrypted and was dropped\n",
                ev->from_username ? ev->from_username : "?");
        break;
    case PARLEY_EVENT_DRAINED: break;
    }
    fflush(stdout);
}

/* send --stdin: one message per line of standard input (empty lines are skipped). A
 * line that cannot be sent is reported (stderr; with --json also a {"type":"failed"}
 * object) and the next line is tried. Returns the exit code of the last failure. */
static int send_lines(struct parley_messenger *m, struct parley_client *c, const char *to,
                      uint32_t expire)
{
    char line[PARLEY_MESSAGE_MAX_TEXT + 2];
    int code = CLI_OK;
    json_int_t n = 0;
    while (!stop_flag && fgets(line, sizeof line, stdin)) {
        n++;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\n') {
            line[--len] = 0;
        } else if (!feof(stdin)) {
            int ch;
            while ((ch = getchar()) != EOF && ch != '\n')
                ;
            fprintf(stderr, "parley: line %lld longer than %u bytes, not sent\n", (long long)n,
                    PARLEY_MESSAGE_MAX_TEXT);
            out_json(json_pack("{s:s, s:I, s:s}", "type", "failed", "line", n, "error",
                               "line too long"));
            code = CLI_USAGE;
            continue;
        }
        if (len && line[len - 1] == '\r')
            line[--len] = 0;
        if (!len)
            continue;
        char id[PARLEY_MESSAGE_ID_HEX_BYTES];
        enum parley_err rc = parley_messenger_send_text(m, to, line, expire, id);
        if (rc) {
            code = cli_fail(c, rc);
            out_json(json_pack("{s:s, s:I, s:s}", "type", "failed", "line", n, "error",
                               parley_strerror(rc)));
        } else {
            out_msg("Sent line %lld to %s (message %s).", (long long)n, to, id);
            out_json(json_pack("{s:s, s:I, s:s, s:s}", "type", "sent", "line", n, "id", id, "to",
                               to));
        }
        fflush(stdout);
    }
    return code;
}

int cmd_send(struct cli_ctx *ctx, int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("send");
    static const struct option opts[] = {
        {"help", no_argument, NULL, OPT_HELP},
        {"json", no_argument, NULL, OPT_JSON},
        {"expire", required_argument, NULL, OPT_EXPIRE},
        {"stdin", no_argument, NULL, OPT_STDIN},
        {NULL, 0, NULL, 0},
    };
    uint32_t expire = 0;
    bool from_stdin = false;
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_HELP: return cli_help(cmd);
        case OPT_JSON: cli_set_json(ctx); break;
        case OPT_EXPIRE:
            if (!parse_u32(optarg, 365u * 86400u, &expire))
                return cli_usage_error(cmd, "--expire wants seconds (0..31536000)");
            break;
        case OPT_STDIN: from_stdin = true; break;
        default: return cli_bad_option(cmd, argv);
        }
    }
    if (from_stdin && argc - optind != 1)
        return cli_usage_error(cmd, "with --stdin, want USERNAME only");
    if (!from_stdin && argc - optind != 2)
        return cli_usage_error(cmd, "want USERNAME and TEXT");
    const char *to = argv[optind], *text = from_stdin ? NULL : argv[optind + 1];
    int code = CLI_OK;
    struct parley_client *c = NULL;
    struct parley_messenger *m = open_messenger(ctx, false, &c, &code);
    if (!m)
        return code;
    if (from_stdin) {
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        code = send_lines(m, c, to, expire);
        close_messenger(m, c);
        return code;
    }
    char id[PARLEY_MESSAGE_ID_HEX_BYTES];
    enum parley_err rc = parley_messenger_send_text(m, to, text, expire, id);
    if (rc) {
        code = cli_fail(c, rc);
    } else {
        out_msg("Sent to %s (message %s).", to, id);
        out_json(json_pack("{s:s, s:s}", "id", id, "to", to));
    }
    close_messenger(m, c);
    return code;
}

/* recv and listen: drain (and with follow, keep waiting). */
static int receive(struct cli_ctx *ctx, const struct cli_command *cmd, int argc, char **argv,
                   bool follow)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, OPT_HELP},
        {"json", no_argument, NULL, OPT_JSON},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"no-ack", no_argument, NULL, OPT_NO_ACK},
        {NULL, 0, NULL, 0},
    };
    uint32_t timeout_s = 30;
    bool no_ack = false;
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_HELP: return cli_help(cmd);
        case OPT_JSON: cli_set_json(ctx); break;
        case OPT_TIMEOUT:
            if (!parse_u32(optarg, 86400, &timeout_s))
                return cli_usage_error(cmd, "--timeout wants seconds (0..86400)");
            break;
        case OPT_NO_ACK: no_ack = true; break;
        default: return cli_bad_option(cmd, argv);
        }
    }
    if (optind != argc)
        return cli_usage_error(cmd, "unexpected argument");
    int code = CLI_OK;
    struct parley_client *c = NULL;
    struct parley_messenger *m = open_messenger(ctx, no_ack, &c, &code);
    if (!m)
        return code;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    enum parley_err rc = parley_messenger_connect(m);
    size_t shown = 0;
    while (!rc && !stop_flag) {
        struct parley_event ev;
        /* Short waits so a signal ends listen promptly. */
        rc = parley_messenger_next(m, follow ? 500 : timeout_s * 1000, &ev);
        if (rc == PARLEY_ERR_TIMEOUT && follow) {
            rc = PARLEY_OK;
            continue;
        }
        if (rc == PARLEY_ERR_CLOSED && follow) {
            fprintf(stderr, "parley: stream closed; reconnecting\n");
            sleep(1);
            rc = PARLEY_OK;
            continue;
        }
        if (rc)
            break;
        if (ev.kind == PARLEY_EVENT_MESSAGE)
            shown++;
        print_event(&ev, follow);
        bool drained = ev.kind == PARLEY_EVENT_DRAINED;
        parley_event_cleanup(&ev);
        if (drained && !follow)
            break;
    }
    if (rc == PARLEY_ERR_TIMEOUT && !follow) {
        out_error("the server did not finish delivering the backlog in time", "timeout", 0);
        code = CLI_CONN;
    } else if (rc) {
        code = cli_fail(c, rc);
    } else if (!follow && shown == 0 && !out_is_json()) {
        fprintf(stderr, "No new messages.\n");
    }
    close_messenger(m, c);
    return code;
}

int cmd_recv(struct cli_ctx *ctx, int argc, char **argv)
{
    return receive(ctx, cli_find("recv"), argc, argv, false);
}

int cmd_listen(struct cli_ctx *ctx, int argc, char **argv)
{
    return receive(ctx, cli_find("listen"), argc, argv, true);
}

/* Options: --json, --help only; exactly `npos` positional arguments. */
static int simple(struct cli_ctx *ctx, const struct cli_command *cmd, int argc, char **argv,
                  int npos, uint32_t *limit, bool *accept)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, OPT_HELP},   {"json", no_argument, NULL, OPT_JSON},
        {"limit", required_argument, NULL, OPT_LIMIT},
        {"accept", no_argument, NULL, OPT_ACCEPT}, {NULL, 0, NULL, 0},
    };
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_HELP: return cli_help(cmd);
        case OPT_JSON: cli_set_json(ctx); break;
        case OPT_LIMIT:
            if (!limit || !parse_u32(optarg, 1000000, limit))
                return limit ? cli_usage_error(cmd, "--limit wants a count")
                             : cli_bad_option(cmd, argv);
            break;
        case OPT_ACCEPT:
            if (!accept)
                return cli_bad_option(cmd, argv);
            *accept = true;
            break;
        default: return cli_bad_option(cmd, argv);
        }
    }
    if (argc - optind != npos)
        return cli_usage_error(cmd, "want USERNAME");
    return -1;
}

static int history_print(struct parley_history *h, const char *with);

int cmd_history(struct cli_ctx *ctx, int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("history");
    uint32_t limit = 0;
    int r = simple(ctx, cmd, argc, argv, 1, &limit, NULL);
    if (r >= 0)
        return r;
    const char *who = argv[optind];
    int code = CLI_OK;
    struct parley_client *c = NULL;
    struct parley_messenger *m = open_messenger(ctx, false, &c, &code);
    if (!m)
        return code;
    struct parley_history h;
    enum parley_err rc = parley_messenger_history(m, who, limit, &h);
    if (rc) {
        code = cli_fail(c, rc);
    } else {
        code = history_print(&h, who);
        parley_history_cleanup(&h);
    }
    close_messenger(m, c);
    return code;
}

int cmd_read(struct cli_ctx *ctx, int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("read");
    int r = simple(ctx, cmd, argc, argv, 1, NULL, NULL);
    if (r >= 0)
        return r;
    const char *who = argv[optind];
    int code = CLI_OK;
    struct parley_client *c = NULL;
    struct parley_messenger *m = open_messenger(ctx, false, &c, &code);
    if (!m)
        return code;
    size_t n = 0;
    enum parley_err rc = parley_messenger_mark_read(m, who, &n);
    if (rc) {
        code = cli_fail(c, rc);
    } else {
        out_msg("Marked %zu message(s) from %s as read.", n, who);
        out_json(json_pack("{s:s, s:I}", "with", who, "marked", (json_int_t)n));
    }
    close_messenger(m, c);
    return code;
}

int cmd_safety_number(struct cli_ctx *ctx, int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("safety-number");
    bool accept = false;
    int r = simple(ctx, cmd, argc, argv, 1, NULL, &accept);
    if (r >= 0)
        return r;
    const char *who = argv[optind];
    int code = CLI_OK;
    struct parley_client *c = NULL;
    struct parley_messenger *m = open_messenger(ctx, false, &c, &code);
    if (!m)
        return code;
    char sn[PARLEY_SAFETY_NUMBER_TEXT_BYTES];
    struct parley_contact_info info = {0};
    enum parley_err rc = parley_messenger_safety_number(m, who, accept, sn, &info);
    if (rc) {
        code = cli_fail(c, rc);
    } else {
        char grouped[PARLEY_SAFETY_NUMBER_TEXT_BYTES + 12];
        size_t o = 0;
        for (size_t i = 0; sn[i]; i++) {
            if (i && i % 5 == 0)
                grouped[o++] = (i % 30 == 0) ? '\n' : ' ';
            grouped[o++] = sn[i];
        }
        grouped[o] = 0;
        out_msg("Safety number with %s (%zu device(s)):", who, info.devices);
        out_msg("%s", grouped);
        if (info.identity_changed && !accept)
            fprintf(stderr, "parley: WARNING: a device key of %s changed since first seen; "
                            "compare this number with %s, then run with --accept.\n",
                    who, who);
        out_json(json_pack("{s:s, s:s, s:I, s:b}", "with", who, "safety_number", sn, "devices",
                           (json_int_t)info.devices, "identity_changed",
                           info.identity_changed && !accept));
    }
    parley_contact_info_cleanup(&info);
    close_messenger(m, c);
    return code;
}

/* Interactive: lines typed are sent to USERNAME; its messages are printed as they come. */
int cmd_chat(struct cli_ctx *ctx, int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("chat");
    int r = simple(ctx, cmd, argc, argv, 1, NULL, NULL);
    if (r >= 0)
        return r;
    const char *who = argv[optind];
    int code = CLI_OK;
    struct parley_client *c = NULL;
    struct parley_messenger *m = open_messenger(ctx, false, &c, &code);
    if (!m)
        return code;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    enum parley_err rc = parley_messenger_connect(m);
    if (!rc && !out_is_json())
        fprintf(stderr, "Chatting with %s. Type a line and Enter to send; Ctrl-D to quit.\n", who);
    char line[PARLEY_MESSAGE_MAX_TEXT + 2];
    size_t have = 0;
    while (!rc && !stop_flag) {
        struct parley_event ev;
        /* Everything already buffered first (poll() cannot see it). */
        while (!rc && (rc = parley_messenger_next(m, 0, &ev)) == PARLEY_OK) {
            print_event(&ev, true);
            parley_event_cleanup(&ev);
        }
        if (rc == PARLEY_ERR_TIMEOUT)
            rc = PARLEY_OK;
        if (rc == PARLEY_ERR_CLOSED) {
            fprintf(stderr, "parley: stream closed; reconnecting\n");
            sleep(1);
            rc = parley_messenger_connect(m);
            continue;
        }
        if (rc)
            break;
        struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = parley_messenger_fd(m), .events = POLLIN}};
        int pr = poll(p, 2, 1000);
        if (pr < 0 && errno != EINTR) {
            rc = PARLEY_ERR_IO;
            break;
        }
        if (pr <= 0 || !(p[0].revents & (POLLIN | POLLHUP)))
            continue;
        ssize_t n = read(0, line + have, sizeof line - 1 - have);
        if (n <= 0)
            break; /* EOF */
        have += (size_t)n;
        char *nl;
        while ((nl = memchr(line, '\n', have)) != NULL) {
            *nl = 0;
            if (nl > line) {
                char id[PARLEY_MESSAGE_ID_HEX_BYTES];
                rc = parley_messenger_send_text(m, who, line, 0, id);
                if (rc)
                    break;
                if (out_is_json())
                    out_json(json_pack("{s:s, s:s, s:s}", "type", "sent", "id", id, "to", who));
            }
            size_t used = (size_t)(nl - line) + 1;
            memmove(line, nl + 1, have - used);
            have -= used;
        }
        if (have == sizeof line - 1) {
            fprintf(stderr, "parley: line too long (max %u bytes)\n", PARLEY_MESSAGE_MAX_TEXT);
            have = 0;
        }
    }
    if (rc)
        code = cli_fail(c, rc);
    close_messenger(m, c);
    return code;
}

/* ---- groups ---- */

static json_t *group_json(const struct parley_group *g)
{
    json_t *mem = json_array();
    for (size_t i = 0; i < g->member_count; i++)
        json_array_append_new(mem, json_pack("{s:s, s:s, s:b, s:I}", "user_id",
                                             g->members[i].user_id, "username",
                                             g->members[i].username, "admin", g->members[i].admin,
                                             "joined_at", (json_int_t)g->members[i].joined_at));
    return json_pack("{s:s, s:s, s:I, s:I, s:o}", "group_id", g->group_id, "name", g->name,
                     "created_at", (json_int_t)g->created_at, "updated_at",
                     (json_int_t)g->updated_at, "members", mem);
}

static void print_group(const struct parley_group *g)
{
    out_msg("%s  %s  (%zu member(s))", g->group_id, g->name, g->member_count);
    for (size_t i = 0; i < g->member_count; i++)
        out_msg("    %s%s", g->members[i].username, g->members[i].admin ? " (admin)" : "");
}

/* GROUP on the command line: a group id, or the name of exactly one of our groups. */
static int resolve_group(struct parley_messenger *m, struct parley_client *c, const char *arg,
                         char *out, size_t cap)
{
    struct parley_group_list l;
    enum parley_err rc = parley_messenger_group_list(m, &l);
    if (rc)
        return cli_fail(c, rc);
    size_t hits = 0;
    for (size_t i = 0; i < l.count; i++) {
        if (strcmp(l.items[i].group_id, arg) == 0) {
            hits = 1;
            snprintf(out, cap, "%s", l.items[i].group_id);
            break;
        }
        if (strcmp(l.items[i].name, arg) == 0) {
            hits++;
            snprintf(out, cap, "%s", l.items[i].group_id);
        }
    }
    parley_group_list_cleanup(&l);
    if (hits == 1)
        return -1;
    out_error(hits ? "several groups have that name; use the group id" : "no such group",
              hits ? "ambiguous" : "not_found", 0);
    return CLI_REFUSED;
}

static int history_print(struct parley_history *h, const char *with)
{
    json_t *arr = json_array();
    char tb[64];
    for (size_t i = 0; i < h->count; i++) {
        const struct parley_history_item *it = &h->items[i];
        if (out_is_json()) {
            json_array_append_new(
                arr, json_pack("{s:s, s:o, s:o, s:b, s:I, s:I, s:s, s:I}", "id", it->id, "from",
                               out_jstr(it->from_username), "text", out_jstr(it->text),
                               "outgoing", it->outgoing, "sent_at",
                               (json_int_t)(it->sent_at_ms / 1000), "sent_at_ms",
                               (json_int_t)it->sent_at_ms, "status", it->status, "expire_after",
                               (json_int_t)it->expire_after_s));
        } else {
            out_msg("[%s] %s: %s%s%s%s", ms_time(it->sent_at_ms, tb, sizeof tb),
                    it->outgoing ? "you" : (it->from_username ? it->from_username : "?"),
                    it->text ? it->text : "", it->outgoing ? "  (" : "",
                    it->outgoing ? it->status : "", it->outgoing ? ")" : "");
        }
    }
    out_json(json_pack("{s:s, s:o}", "with", with, "messages", arr));
    if (!out_is_json() && h->count == 0)
        out_msg("No messages with %s.", with);
    return CLI_OK;
}

int cmd_group(struct cli_ctx *ctx, int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("group");
    static const struct option opts[] = {
        {"help", no_argument, NULL, OPT_HELP},
        {"json", no_argument, NULL, OPT_JSON},
        {"admin", no_argument, NULL, OPT_ACCEPT},
        {"expire", required_argument, NULL, OPT_EXPIRE},
        {"limit", required_argument, NULL, OPT_LIMIT},
        {NULL, 0, NULL, 0},
    };
    bool admin = false;
    uint32_t expire = 0, limit = 0;
    int ch;
    opterr = 0;
    /* "+": options come before the positional arguments (TEXT may start with '-'). */
    while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_HELP: return cli_help(cmd);
        case OPT_JSON: cli_set_json(ctx); break;
        case OPT_ACCEPT: admin = true; break;
        case OPT_EXPIRE:
            if (!parse_u32(optarg, 365u * 86400u, &expire))
                return cli_usage_error(cmd, "--expire wants seconds (0..31536000)");
            break;
        case OPT_LIMIT:
            if (!parse_u32(optarg, 1000000, &limit))
                return cli_usage_error(cmd, "--limit wants a count");
            break;
        default: return cli_bad_option(cmd, argv);
        }
    }
    int npos = argc - optind;
    if (npos < 1)
        return cli_usage_error(cmd, "want a subcommand: create, list, show, add, remove, send, "
                                    "history");
    const char *sub = argv[optind];
    char **pos = argv + optind + 1;
    npos--;
    struct {
        const char *name;
        int min, max;
    } subs[] = {{"create", 1, 256}, {"list", 0, 0},   {"show", 1, 1},   {"add", 2, 2},
                {"remove", 2, 2},   {"send", 2, 2},   {"history", 1, 1}};
    size_t si = 0;
    while (si < sizeof subs / sizeof subs[0] && strcmp(subs[si].name, sub) != 0)
        si++;
    if (si == sizeof subs / sizeof subs[0])
        return cli_usage_error(cmd, "unknown group subcommand");
    if (npos < subs[si].min || npos > subs[si].max)
        return cli_usage_error(cmd, "wrong number of arguments");

    int code = CLI_OK;
    struct parley_client *c = NULL;
    struct parley_messenger *m = open_messenger(ctx, false, &c, &code);
    if (!m)
        return code;
    enum parley_err rc = PARLEY_OK;
    char gid[80] = "";
    if (strcmp(sub, "create") != 0 && strcmp(sub, "list") != 0) {
        int r = resolve_group(m, c, pos[0], gid, sizeof gid);
        if (r >= 0) {
            close_messenger(m, c);
            return r;
        }
    }
    if (strcmp(sub, "create") == 0) {
        struct parley_group g;
        rc = parley_messenger_group_create(m, pos[0], (const char *const *)pos + 1,
                                           (size_t)npos - 1, &g);
        if (!rc) {
            out_msg("Created group %s (%s).", g.name, g.group_id);
            out_json(group_json(&g));
            parley_group_cleanup(&g);
        }
    } else if (strcmp(sub, "list") == 0) {
        struct parley_group_list l;
        rc = parley_messenger_group_list(m, &l);
        if (!rc) {
            json_t *arr = json_array();
            for (size_t i = 0; i < l.count; i++) {
                if (out_is_json())
                    json_array_append_new(arr, group_json(&l.items[i]));
                else
                    print_group(&l.items[i]);
            }
            out_json(json_pack("{s:o}", "groups", arr));
            if (!out_is_json() && l.count == 0)
                out_msg("No groups.");
            parley_group_list_cleanup(&l);
        }
    } else if (strcmp(sub, "show") == 0) {
        struct parley_group g;
        rc = parley_messenger_group_get(m, gid, &g);
        if (!rc) {
            print_group(&g);
            out_json(group_json(&g));
            parley_group_cleanup(&g);
        }
    } else if (strcmp(sub, "add") == 0) {
        rc = parley_messenger_group_add(m, gid, pos[1], admin);
        if (!rc) {
            out_msg("Added %s to the group.", pos[1]);
            out_json(json_pack("{s:s, s:s}", "group_id", gid, "added", pos[1]));
        }
    } else if (strcmp(sub, "remove") == 0) {
        rc = parley_messenger_group_remove(m, gid, pos[1]);
        if (!rc) {
            out_msg("Removed %s from the group; the next message uses a new sender key.",
                    pos[1]);
            out_json(json_pack("{s:s, s:s}", "group_id", gid, "removed", pos[1]));
        }
    } else if (strcmp(sub, "send") == 0) {
        char id[PARLEY_MESSAGE_ID_HEX_BYTES];
        rc = parley_messenger_group_send_text(m, gid, pos[1], expire, id);
        if (!rc) {
            out_msg("Sent to the group (message %s).", id);
            out_json(json_pack("{s:s, s:s}", "id", id, "group_id", gid));
        }
    } else if (strcmp(sub, "history") == 0) {
        struct parley_history h;
        rc = parley_messenger_group_history(m, gid, limit, &h);
        if (!rc) {
            code = history_print(&h, gid);
            parley_history_cleanup(&h);
        }
    }
    if (rc)
        code = cli_fail(c, rc);
    close_messenger(m, c);
    return code;
}

/* Called by login: create and upload this device's keys right away, so others can
 * message it before it runs any messaging command. Failure is a warning only (the
 * next messaging command retries). */
void cli_messaging_after_login(struct parley_client *c)
{
    struct parley_messenger *m = NULL;
    enum parley_err rc = parley_messenger_open(c, NULL, &m);
    if (rc) {
        const char *msg = NULL;
        parley_client_last_error(c, NULL, NULL, &msg);
        fprintf(stderr,
                "parley: warning: device keys not uploaded yet (%s); the next messaging "
                "command will retry\n",
                msg && *msg ? msg : parley_strerror(rc));
    }
    parley_messenger_free(m);
}
