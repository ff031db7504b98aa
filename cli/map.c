/* vow map: a task function over JSON lines, on the worker pool. */
#include "cli.h"

int vow_cli_map(int argc, char** argv) {
  (void)argc;
  (void)argv;
  vow_cli_error("vow map is not built yet");
  return VOW_EXIT_ERROR;
}
