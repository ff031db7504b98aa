/* A plugin as an older vow built it: ABI 1's symbol, whose task
 * functions took their context last. */
#include "vow/worker.h"

VOW_EXTERN const vow_plugin_t vow_plugin_v1 = {1, NULL, 0};
