/* main.c — parley CLI entry point (being built). */
#include <stdio.h>
#include "parley/version.h"

int main(void)
{
    printf("parley %s\n", parley_version());
    return 0;
}
