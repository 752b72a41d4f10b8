/* main.c — parleyd entry point (being built: config, store, routes, signals). */
#include <stdio.h>
#include "parley/version.h"

int main(void)
{
    printf("parleyd %s\n", PARLEY_VERSION_STRING);
    return 0;
}
