/*
 * parley/crypto.h — umbrella header of the end-to-end crypto core (library
 * parley_crypto, libsodium only). Call parley_crypto_init() once before anything else.
 * See docs/crypto.md for what is implemented, from which spec, and the wire formats.
 */
#ifndef PARLEY_CRYPTO_H
#define PARLEY_CRYPTO_H

#include "parley/err.h"
#include "parley/kdf.h"
#include "parley/oprf.h"
#include "parley/ratchet.h"
#include "parley/safety_number.h"
#include "parley/sender_key.h"
#include "parley/x3dh.h"

#endif
