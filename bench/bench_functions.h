#ifndef VOW_BENCH_FUNCTIONS_H
#define VOW_BENCH_FUNCTIONS_H

#include "vow/worker.h"

extern const vow_function_t bench_functions[];
extern const size_t bench_nfunctions;
int bench_spin(uint64_t iterations, uint64_t* out);

#endif
