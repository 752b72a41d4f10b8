/*
 * prompt.h — reading secrets for the CLI: a no-echo prompt on the controlling terminal
 * (termios), or one line from stdin (--password-stdin, for scripts).
 *
 * Buffers come from sodium_malloc and must be released with prompt_free(), which wipes
 * them. The terminal's echo is restored on every path, Ctrl-C included.
 */
#ifndef PARLEY_CLI_PROMPT_H
#define PARLEY_CLI_PROMPT_H

#include <stddef.h>

/* Longest secret accepted, in bytes. */
#define PROMPT_MAX 1024

/* Show prompt on /dev/tty and read one line without echo. Returns a sodium_malloc'd
 * string (without the newline) or NULL with *err set to a static reason: no terminal,
 * read error, too long, or empty. */
char *prompt_secret(const char *prompt, const char **err);
/* Read one line from stdin (trailing "\n" or "\r\n" removed). Same contract. */
char *prompt_secret_stdin(const char **err);
/* Wipe and free a secret from the functions above. Accepts NULL. */
void prompt_free(char *secret);

#endif
