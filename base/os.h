/* base/os.h — every call vow makes that Linux has and POSIX does not, in
 * one place, so that a port to another kernel starts and ends in
 * os_linux.c (and shm.c, whose segments are Linux memfds: a kernel
 * without them offers no segments, and values keep the channel). Each
 * says what it does where the kernel cannot: most are advice or
 * information and then do nothing or report "unknown". */
#ifndef VOW_BASE_OS_H
#define VOW_BASE_OS_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Ends this process (SIGKILL) when the process that started it dies,
 * through the kernel's parent-death signal: VOW__PARENT_DEATH_SIGNAL,
 * whose handler tells the exit of the thread that started us (the
 * parent lives on) from the parent's. Not inherited across fork. */
#define VOW__PARENT_DEATH_SIGNAL (SIGRTMIN + 6)
void vow__os_die_with_parent(void);
/* Lets the kernel merge this process's timer wake-ups no later than
 * slack_ns apart (the default is 50 us). */
void vow__os_timer_slack(unsigned long slack_ns);
/* The name ps and pgrep show for this process (15 bytes at most). */
void vow__os_set_name(const char* name);

/* Advice on memory about to be written: the range in huge pages. */
void vow__os_advise_huge_pages(void* at, size_t bytes);
/* Faults the pages of a range in, writable, in one call. False where the
 * kernel cannot (nothing changed). */
bool vow__os_populate_pages(void* at, size_t bytes);

/* A pipe whose ends close on exec (and do not block, with nonblock).
 * 0, or -1 with errno set. */
int vow__os_pipe(int fds[2], bool nonblock);
/* A descriptor that wakes a poll(): writing an 8-byte count makes it
 * readable, reading those 8 bytes makes it quiet again. Close-on-exec and
 * non-blocking. -1 with errno set when it cannot be made. */
int vow__os_wake_fd(void);
/* The poll() events, besides POLLHUP, that say the other end of a pipe
 * or socket has gone even while its data is unread. */
short vow__os_hangup_events(void);

/* The uid of the process at the other end of a connected unix socket.
 * 0, or -1 with errno set; *pid gets its pid. */
int vow__os_peer_uid(int fd, uid_t* uid, pid_t* pid);

/* The path that runs this program again. */
const char* vow__os_self_exe(void);
/* This boot's identity, as text, in buf (size at least 40). False, with
 * buf empty, where the kernel has none. */
bool vow__os_boot_id(char* buf, size_t size);
/* Runnable processes on the machine now, or -1 when unknown. */
int vow__os_running_processes(void);
/* Memory available to new work, in bytes, or -1 when unknown. */
double vow__os_memory_available(void);

/* A process's group, session and start time (in clock ticks since boot).
 * False when pid is gone or unreadable. */
bool vow__os_process_ids(pid_t pid, long long* pgrp, long long* sid,
                         long long* start_ticks);
/* A process's environment, NUL-separated, in buf (its last byte a NUL).
 * False when pid is gone or unreadable. */
bool vow__os_process_environ(pid_t pid, char* buf, size_t size, size_t* len);
/* Calls fn on every process id on the machine until fn returns false.
 * False when the list cannot be read. */
bool vow__os_each_process(bool (*fn)(pid_t pid, void* arg), void* arg);

#endif
