/* stfixture.h - what the tests against committed PyTorch fixtures share (tests/fixtures/nn, read
 * through the engine's safetensors reader): one fixture tensor as a float array. cmocka asserts
 * inside. */
#ifndef STFIXTURE_H
#define STFIXTURE_H

#include <stddef.h>

#include "safetensors.h"

/* Fixture tensor `name` of f as a malloc'd fp32 array of exactly n values; the test fails when it
 * is missing, has another size or cannot be read. */
float *stfx_get(st_file_t *f, const char *name, size_t n);

#endif /* STFIXTURE_H */
