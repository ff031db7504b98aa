/* A plugin as a future vow might build it: another ABI's symbol. */
#include "vow/worker.h"

VOW_EXTERN const vow_plugin_t vow_plugin_v2 = {2, NULL, 0};
