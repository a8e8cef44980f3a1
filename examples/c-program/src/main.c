#include <stdio.h>
#include <stdlib.h>

#include "greet.h"
#include "mathx.h"

/* Usage: calc NAME A B */
int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s NAME A B\n", argv[0]);
        return 64;
    }
    long a = strtol(argv[2], NULL, 10);
    long b = strtol(argv[3], NULL, 10);
    greet(argv[1]);
    printf("%ld + %ld = %ld\n", a, b, mathx_sum(a, b));
    printf("%ld * %ld = %ld\n", a, b, mathx_product(a, b));
    printf("%ld! = %ld\n", a, mathx_factorial(a));
    return 0;
}
