/*
 * test_rand.h: the unit tests' deterministic pseudo-random numbers (a linear
 * congruential generator), so that a failing run can be repeated exactly.
 */
#ifndef BULLETIN_TEST_RAND_H
#define BULLETIN_TEST_RAND_H

/* Advance *state and return 24 pseudo-random bits from it. */
static inline unsigned test_rand(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return (*state >> 8) & 0xffffff;
}

#endif
