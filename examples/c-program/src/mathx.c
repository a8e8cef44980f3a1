#include "mathx.h"

long mathx_sum(long a, long b) { return a + b; }

long mathx_product(long a, long b) { return a * b; }

long mathx_factorial(long n) {
    if (n < 0 || n > 20) return -1;
    long result = 1;
    for (long i = 2; i <= n; i++) result *= i;
    return result;
}
