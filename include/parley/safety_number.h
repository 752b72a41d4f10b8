/*
 * parley/safety_number.h — safety numbers: a 60-digit fingerprint of two identity keys that
 * both users see identically (order-independent) and compare out of band, like Signal's
 * "numeric fingerprint" (libsignal NumericFingerprintGenerator, iterated SHA-512).
 *
 * Per party: h = SHA-512(0x00 0x01 || IK || stable_id); 5200 times h = SHA-512(h || IK);
 * the first 30 bytes as six 5-byte big-endian integers, each mod 100000 as 5 digits -> 30
 * digits. The safety number is the two 30-digit strings, the smaller first. stable_id is
 * the user's stable identifier (e.g. the account id bytes), 0..PARLEY_SAFETY_NUMBER_MAX_ID_BYTES.
 * Thread-safe; about 2 x 5200 SHA-512 calls (~ a millisecond or two).
 */
#ifndef PARLEY_SAFETY_NUMBER_H
#define PARLEY_SAFETY_NUMBER_H

#include <stddef.h>
#include <stdint.h>

#include "parley/err.h"

#define PARLEY_SAFETY_NUMBER_DIGITS 60U
#define PARLEY_SAFETY_NUMBER_BYTES (PARLEY_SAFETY_NUMBER_DIGITS + 1U) /* with the NUL */
#define PARLEY_SAFETY_NUMBER_ITERATIONS 5200U
#define PARLEY_SAFETY_NUMBER_MAX_ID_BYTES 256U

/*
 * Write the NUL-terminated 60-digit safety number of (ik_a, id_a) and (ik_b, id_b) to out;
 * swapping a and b gives the same string. Keys are the Ed25519 identity public keys.
 * Errors: PARLEY_ERR_INVAL (NULL pointers, id too long); out is then the empty string.
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_safety_number(char out[PARLEY_SAFETY_NUMBER_BYTES],
                                                              const uint8_t ik_a[32],
                                                              const uint8_t *id_a, size_t id_a_len,
                                                              const uint8_t ik_b[32],
                                                              const uint8_t *id_b, size_t id_b_len);

#endif
