/* vow-worker: the stock worker. Loads a shared library that exports its
 * task functions with VOW_PLUGIN() and serves them.
 *
 *   vow-worker PLUGIN.so
 *
 * Started by a pool, which sets the channel in the environment; anything
 * wrong with the plugin is said on stderr, which the pool attaches to the
 * failure of the worker's start, and the exit status says that trying
 * again will not help (VOW_WORKER_EXIT_CANNOT_SERVE). */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "vow/worker.h"

int main(int argc, char** argv) {
  void* lib;
  const vow_plugin_t* plugin;
  char other[32];
  int v;
  if (argc != 2 || strcmp(argv[1], "--help") == 0) {
    fprintf(stderr,
            "usage: vow-worker PLUGIN.so\n"
            "A vow pool starts this with a plugin that exports its "
            "task functions (VOW_PLUGIN in <vow/worker.h>).\n");
    return 2;
  }
  lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    fprintf(stderr, "vow-worker: cannot load plugin: %s\n", dlerror());
    return VOW_WORKER_EXIT_CANNOT_SERVE;
  }
  plugin = dlsym(lib, VOW_PLUGIN_SYMBOL);
  if (plugin == NULL) {
    for (v = 0; v < 100; v++) {
      snprintf(other, sizeof(other), "vow_plugin_v%d", v);
      if (dlsym(lib, other) != NULL) {
        fprintf(stderr,
                "vow-worker: %s was built for plugin ABI %d; this "
                "vow-worker speaks ABI %d (symbol %s): rebuild the plugin "
                "against this vow\n",
                argv[1], v, VOW_PLUGIN_ABI, VOW_PLUGIN_SYMBOL);
        return VOW_WORKER_EXIT_CANNOT_SERVE;
      }
    }
    fprintf(stderr,
            "vow-worker: %s exports no %s symbol: is it a vow plugin "
            "(VOW_PLUGIN in <vow/worker.h>)?\n",
            argv[1], VOW_PLUGIN_SYMBOL);
    return VOW_WORKER_EXIT_CANNOT_SERVE;
  }
  if (plugin->abi != VOW_PLUGIN_ABI) {
    fprintf(stderr,
            "vow-worker: %s declares plugin ABI %u; this vow-worker speaks "
            "ABI %d: rebuild the plugin against this vow\n",
            argv[1], plugin->abi, VOW_PLUGIN_ABI);
    return VOW_WORKER_EXIT_CANNOT_SERVE;
  }
  return vow_worker_serve(plugin->functions, plugin->count);
}
