#ifndef VOW_TESTS_SHM_FUNCTIONS_H
#define VOW_TESTS_SHM_FUNCTIONS_H

#include "vow/worker.h"

extern const vow_function_t shm_test_functions[];
extern const size_t shm_test_nfunctions;

/* The segments of vow's shared memory (memfd "vow") that process pid
 * holds, mapped or open: how many distinct ones. */
int shm_segments_held(int pid);

#endif
