#ifndef MATHX_H
#define MATHX_H

long mathx_sum(long a, long b);
long mathx_product(long a, long b);
/* n! for 0 <= n <= 20; -1 otherwise. */
long mathx_factorial(long n);

#endif
