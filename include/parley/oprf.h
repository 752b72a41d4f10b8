/*
 * parley/oprf.h — RFC 9497 OPRF, mode 0x00 (base OPRF, no verifiability), suite
 * ristretto255-SHA512, used for private contact discovery (POLICY P11): the client blinds
 * a phone number, the server evaluates the blinded element with its key, the client
 * unblinds and hashes. Reproduces RFC 9497 App. A.1.1 (DeriveKeyPair's skSm and both
 * vectors).
 *
 * Group elements are 32-byte ristretto255 encodings; scalars are 32-byte little-endian
 * integers reduced mod the group order. Every deserialisation rejects non-canonical
 * encodings, the identity element and (for scalars) zero and non-reduced values.
 *
 * All functions are thread-safe (no shared state); parley_crypto_init() first. On failure
 * every output is zeroed and the function returns PARLEY_ERR_INVAL (malformed argument) or
 * PARLEY_ERR_CRYPTO (invalid element or scalar, derivation failure), nothing more.
 */
#ifndef PARLEY_OPRF_H
#define PARLEY_OPRF_H

#include <stddef.h>
#include <stdint.h>

#include "parley/err.h"

#define PARLEY_OPRF_SCALAR_BYTES 32U
#define PARLEY_OPRF_ELEMENT_BYTES 32U
#define PARLEY_OPRF_OUTPUT_BYTES 64U
#define PARLEY_OPRF_SEED_BYTES 32U
/* Inputs and key info are length-prefixed with I2OSP(len, 2). */
#define PARLEY_OPRF_MAX_INPUT_BYTES 65535U
#define PARLEY_OPRF_MAX_INFO_BYTES 65535U

/* Server: a fresh random key pair (sk secret, caller-owned; pk = sk*G). */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_oprf_keygen(uint8_t sk[PARLEY_OPRF_SCALAR_BYTES],
                                                            uint8_t pk[PARLEY_OPRF_ELEMENT_BYTES]);

/*
 * Server: DeriveKeyPair (RFC 9497 Sec. 3.2.1) from a 32-byte seed and info (NULL allowed if
 * info_len is 0). pk may be NULL if not wanted.
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_oprf_derive_keypair(
    uint8_t sk[PARLEY_OPRF_SCALAR_BYTES], uint8_t pk[PARLEY_OPRF_ELEMENT_BYTES],
    const uint8_t seed[PARLEY_OPRF_SEED_BYTES], const uint8_t *info, size_t info_len);

/*
 * Client: Blind (Sec. 3.3.1). Picks a random blind (secret, caller keeps it until
 * Finalize, then wipes it) and writes blinded = blind * HashToGroup(input).
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_oprf_blind(uint8_t blind[PARLEY_OPRF_SCALAR_BYTES],
                  uint8_t blinded[PARLEY_OPRF_ELEMENT_BYTES], const uint8_t *input,
                  size_t input_len);

/*
 * Client: Blind with a caller-chosen blind scalar (for test vectors and deterministic
 * tests only; production code uses parley_oprf_blind). The blind must be canonical and
 * non-zero.
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_oprf_blind_with(uint8_t blinded[PARLEY_OPRF_ELEMENT_BYTES],
                       const uint8_t blind[PARLEY_OPRF_SCALAR_BYTES], const uint8_t *input,
                       size_t input_len);

/*
 * Server: BlindEvaluate (Sec. 3.3.1): evaluated = sk * blinded. blinded comes from the
 * network: it is rejected (PARLEY_ERR_CRYPTO) if invalid or the identity.
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_oprf_blind_evaluate(uint8_t evaluated[PARLEY_OPRF_ELEMENT_BYTES],
                           const uint8_t sk[PARLEY_OPRF_SCALAR_BYTES],
                           const uint8_t blinded[PARLEY_OPRF_ELEMENT_BYTES]);

/*
 * Client: Finalize (Sec. 3.3.1): output = SHA-512(len(input) || input || 32 ||
 * blind^-1 * evaluated || "Finalize"). evaluated comes from the network and is validated.
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_oprf_finalize(uint8_t output[PARLEY_OPRF_OUTPUT_BYTES], const uint8_t *input,
                     size_t input_len, const uint8_t blind[PARLEY_OPRF_SCALAR_BYTES],
                     const uint8_t evaluated[PARLEY_OPRF_ELEMENT_BYTES]);

/*
 * Server: Evaluate (Sec. 3.3.1) — the unblinded PRF output for an input the server knows
 * (to build the published filter of registered users). Equal to what a client obtains
 * from Blind/BlindEvaluate/Finalize on the same input.
 */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_oprf_evaluate(uint8_t output[PARLEY_OPRF_OUTPUT_BYTES],
                     const uint8_t sk[PARLEY_OPRF_SCALAR_BYTES], const uint8_t *input,
                     size_t input_len);

/*
 * Encoding checks exposed for tests and callers that validate before storing:
 * 1 if elem is a canonical ristretto255 encoding of a non-identity element, else 0.
 */
PARLEY_EXPORT int parley_oprf_element_is_valid(const uint8_t elem[PARLEY_OPRF_ELEMENT_BYTES]);
/* 1 if s is a canonical (reduced), non-zero scalar, else 0. Constant time. */
PARLEY_EXPORT int parley_oprf_scalar_is_valid(const uint8_t s[PARLEY_OPRF_SCALAR_BYTES]);

#endif
