#ifndef VOW_TESTS_POOL_FUNCTIONS_H
#define VOW_TESTS_POOL_FUNCTIONS_H

#include "vow/worker.h"

extern const vow_function_t test_functions[];
extern const size_t test_nfunctions;

#endif
