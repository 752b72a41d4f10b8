/*
 * log.h — structured logs: one JSON object per line on stderr (or a file).
 *
 * Privacy rule (P24): callers never pass message content, passwords, tokens, phone
 * numbers or raw user ids. User ids go through log_pseudonym(), a keyed hash whose key
 * is random per process start unless set with log_set_pseudonym_key(), so log lines can
 * be correlated within a run but not joined to the database.
 * Thread-safe: each line is written with one write(2).
 */
#ifndef PARLEY_LOG_H
#define PARLEY_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Set the minimum level (default LOG_INFO) and the output fd (default 2). */
void log_init(enum log_level min_level, int fd);
/* Parse "debug" | "info" | "warn" | "error"; returns -1 if unknown. */
int log_level_parse(const char *s);
/* Key for pseudonyms (32 bytes). Without it a random key is chosen at first use. */
void log_set_pseudonym_key(const unsigned char key[32]);
/* Write {"ts":"...","level":"...","event":event, k1:v1, ...}. Arguments after event are
 * key/value pairs of const char *, terminated by NULL. Values are JSON-escaped. */
void log_event(enum log_level level, const char *event, ...) __attribute__((sentinel));
/* 16 hex chars naming id in logs without revealing it. out must hold 17 bytes. */
void log_pseudonym(const char *id, char out[17]);

#endif
