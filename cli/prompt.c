/*
 * prompt.c — no-echo secret entry; see prompt.h.
 *
 * The prompt talks to /dev/tty, not stdin/stdout, so it works when output is piped.
 * While echo is off, SIGINT/SIGTERM/SIGHUP/SIGTSTP handlers restore the terminal
 * before the signal takes its default course (a shell left without echo is a bug).
 */
#include "prompt.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <sodium.h>

static volatile sig_atomic_t tty_saved;
static int tty_fd = -1;
static struct termios tty_orig;

static void restore_and_reraise(int sig)
{
    if (tty_saved)
        tcsetattr(tty_fd, TCSAFLUSH, &tty_orig);
    signal(sig, SIG_DFL);
    raise(sig);
}

void prompt_free(char *secret)
{
    if (secret)
        sodium_free(secret); /* wipes */
}

/* Read one line from fd into a fresh secure buffer. */
static char *read_line(int fd, const char **err)
{
    char *buf = sodium_malloc(PROMPT_MAX + 2);
    if (!buf) {
        *err = "out of memory";
        return NULL;
    }
    size_t len = 0;
    for (;;) {
        char ch;
        ssize_t r = read(fd, &ch, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *err = "cannot read the password";
            goto fail;
        }
        if (r == 0 || ch == '\n')
            break;
        if (len >= PROMPT_MAX) {
            *err = "password too long";
            goto fail;
        }
        buf[len++] = ch;
    }
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    buf[len] = 0;
    if (len == 0) {
        *err = "empty password";
        goto fail;
    }
    return buf;
fail:
    sodium_free(buf);
    return NULL;
}

char *prompt_secret_stdin(const char **err)
{
    return read_line(STDIN_FILENO, err);
}

char *prompt_secret(const char *prompt, const char **err)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        *err = "no terminal to ask for the password (use --password-stdin)";
        return NULL;
    }
    struct termios t;
    if (tcgetattr(fd, &t) != 0) {
        close(fd);
        *err = "no terminal to ask for the password (use --password-stdin)";
        return NULL;
    }
    tty_fd = fd;
    tty_orig = t;
    tty_saved = 1;
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGTSTP, SIGQUIT};
    struct sigaction sa, old[5];
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = restore_and_reraise;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < 5; i++)
        sigaction(sigs[i], &sa, &old[i]);

    t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    t.c_lflag |= ICANON;
    (void)!write(fd, prompt, strlen(prompt));
    char *s = NULL;
    if (tcsetattr(fd, TCSAFLUSH, &t) != 0) {
        *err = "cannot turn off echo";
    } else {
        s = read_line(fd, err);
        tcsetattr(fd, TCSAFLUSH, &tty_orig);
        (void)!write(fd, "\n", 1);
    }
    tty_saved = 0;
    for (size_t i = 0; i < 5; i++)
        sigaction(sigs[i], &old[i], NULL);
    tty_fd = -1;
    close(fd);
    return s;
}
