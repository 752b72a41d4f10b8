/* parley/version.h — library version. */
#ifndef PARLEY_VERSION_H
#define PARLEY_VERSION_H
#include "parley/err.h"

#define PARLEY_VERSION_STRING "0.1.0"

/* The version of the linked library, e.g. "0.1.0". */
PARLEY_EXPORT const char *parley_version(void);

#endif
