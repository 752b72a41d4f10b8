/*
 * accounts_validate.h — the pure rules of account data: usernames, free text, passwords,
 * dates of birth and age, regions. No I/O, no allocation, no global state: unit tested
 * and fuzzed directly. All functions are thread-safe.
 *
 * Rules (docs/protocol.md, "Accounts"):
 *   username   3–32 bytes of [a-z0-9_.]
 *   text       valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF), no control
 *              characters (C0, DEL, C1), a bounded number of code points
 *   password   8–256 bytes
 *   dob        "YYYY-MM-DD", a real calendar date, 1900-01-01 .. today (UTC)
 *   region     ISO 3166-1 alpha-2, uppercase, officially assigned codes
 *   age        whole years from dob to now in UTC, birthday-exact; someone born on
 *              29 February turns a year older on 1 March in common years (never early)
 */
#ifndef PARLEY_SERVER_ACCOUNTS_VALIDATE_H
#define PARLEY_SERVER_ACCOUNTS_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACCOUNTS_USERNAME_MIN 3
#define ACCOUNTS_USERNAME_MAX 32
#define ACCOUNTS_NAME_MAX_CHARS 64
#define ACCOUNTS_GENDER_MAX_CHARS 32
#define ACCOUNTS_DEVICE_NAME_MAX_CHARS 64
#define ACCOUNTS_PASSWORD_MIN 8
#define ACCOUNTS_PASSWORD_MAX 256
#define ACCOUNTS_MIN_AGE 13     /* P29: no accounts under 13 */
#define ACCOUNTS_CONSENT_AGE 16 /* P29/GDPR art. 8: EU/EEA under 16 need consent */
#define ACCOUNTS_DOB_MIN_YEAR 1900

struct accounts_date {
    int year, month, day;
};

/* s[0..len) is a valid username. */
bool accounts_validate_username(const char *s, size_t len);

/* s[0..len) is valid UTF-8 without control characters and has between min_chars and
 * max_chars code points. */
bool accounts_validate_text(const char *s, size_t len, size_t min_chars, size_t max_chars);

/* Strict UTF-8 check; *n_chars (may be NULL) gets the number of code points. Control
 * characters are allowed here (see accounts_validate_text). */
bool accounts_utf8_valid(const char *s, size_t len, size_t *n_chars);

/* The password length is acceptable. */
bool accounts_validate_password_len(size_t len);

/* Parse exactly "YYYY-MM-DD" into a real calendar date. false if malformed or impossible
 * (2023-02-30, month 13, ...). Does not check the range against today. */
bool accounts_date_parse(const char *s, size_t len, struct accounts_date *out);

/* A date of birth must not be before 1900-01-01 nor after today (UTC at now_s). */
bool accounts_dob_in_range(const struct accounts_date *dob, int64_t now_s);

/* The UTC calendar date at now_s (seconds since the epoch). */
void accounts_date_from_time(int64_t now_s, struct accounts_date *out);

/* Age in whole years at now_s (UTC); negative if dob is in the future. */
int accounts_age_years(const struct accounts_date *dob, int64_t now_s);

/* region is an assigned ISO 3166-1 alpha-2 code (exactly two uppercase letters). */
bool accounts_region_valid(const char *region);

/* region is in the EU (27) or the rest of the EEA (IS, LI, NO). */
bool accounts_region_is_eea(const char *region);

enum accounts_age_gate {
    ACCOUNTS_AGE_OK,      /* may register */
    ACCOUNTS_AGE_CONSENT, /* may register; parental consent required (P29) */
    ACCOUNTS_AGE_REFUSED, /* under 13: refuse, store nothing */
};
/* The age gate for a date of birth and an optional region ("" or NULL for none). */
enum accounts_age_gate accounts_age_gate(const struct accounts_date *dob, const char *region,
                                         int64_t now_s);

#endif
