/* daemon/vow_serve.h — `vow serve`, the job queue's daemon, as the vow
 * command calls it. */
#ifndef VOW_DAEMON_VOW_SERVE_H
#define VOW_DAEMON_VOW_SERVE_H

int vow_cli_serve(int argc, char** argv);

#endif
