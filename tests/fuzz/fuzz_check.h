/*
 * fuzz_check.h — what every libFuzzer target here shares: the entry point's prototype
 * (-Wmissing-prototypes) and CHECK, an invariant that aborts (the fuzzer's crash) when
 * it does not hold, in every build type (assert would vanish under NDEBUG).
 */
#ifndef PARLEY_TESTS_FUZZ_CHECK_H
#define PARLEY_TESTS_FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            abort();                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
