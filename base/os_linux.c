/* base/os_linux.c — the Linux side of base/os.h: prctl, madvise,
 * pipe2, eventfd, POLLRDHUP, SO_PEERCRED and /proc. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "os.h"

/* The kernel sends the parent-death signal when the *thread* that started
 * us exits, and a parent drives its pool from whichever thread waits: a
 * worker started by a thread that has since ended must live on. So the
 * signal is one of ours, and it ends us only if the parent process is
 * gone (we have been given another parent); otherwise the thread that
 * will send it next is another of the same parent's. */
static pid_t parent_at_start;

static void on_parent_death_signal(int sig) {
  (void)sig;
  if (getppid() != parent_at_start)
    kill(getpid(), SIGKILL);
}

void vow__os_die_with_parent(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_parent_death_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  parent_at_start = getppid();
  if (sigaction(VOW__PARENT_DEATH_SIGNAL, &sa, NULL) != 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* the old way, thread and all */
    return;
  }
  prctl(PR_SET_PDEATHSIG, VOW__PARENT_DEATH_SIGNAL);
}

void vow__os_timer_slack(unsigned long slack_ns) {
  prctl(PR_SET_TIMERSLACK, slack_ns);
}

void vow__os_set_name(const char* name) {
  prctl(PR_SET_NAME, name, 0, 0, 0);
}

void vow__os_advise_huge_pages(void* at, size_t bytes) {
  madvise(at, bytes, MADV_HUGEPAGE);
}

bool vow__os_populate_pages(void* at, size_t bytes) {
#ifdef MADV_POPULATE_WRITE
  return madvise(at, bytes, MADV_POPULATE_WRITE) == 0;
#else
  (void)at;
  (void)bytes;
  return false;
#endif
}

int vow__os_pipe(int fds[2], bool nonblock) {
  return pipe2(fds, O_CLOEXEC | (nonblock ? O_NONBLOCK : 0));
}

int vow__os_wake_fd(void) {
  return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

short vow__os_hangup_events(void) {
  return POLLRDHUP;
}

int vow__os_peer_uid(int fd, uid_t* uid, pid_t* pid) {
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return -1;
  *uid = cred.uid;
  *pid = cred.pid;
  return 0;
}

const char* vow__os_self_exe(void) {
  return "/proc/self/exe";
}

/* Reads a small file whole into buf, NUL-terminated; its length in *len. */
static bool read_small(const char* path, char* buf, size_t size, size_t* len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t r;
  *len = 0;
  if (fd < 0)
    return false;
  while (*len < size - 1 && ((r = read(fd, buf + *len, size - 1 - *len)) > 0 ||
                             (r < 0 && errno == EINTR)))
    if (r > 0)
      *len += (size_t)r;
  close(fd);
  buf[*len] = '\0';
  return true;
}

bool vow__os_boot_id(char* buf, size_t size) {
  size_t n = 0;
  if (!read_small("/proc/sys/kernel/random/boot_id", buf, size, &n))
    n = 0;
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
    n--;
  buf[n] = '\0';
  return n > 0;
}

int vow__os_running_processes(void) {
  char buf[256];
  size_t n;
  double a, b, c;
  int running, total;
  if (!read_small("/proc/loadavg", buf, sizeof(buf), &n) ||
      sscanf(buf, "%lf %lf %lf %d/%d", &a, &b, &c, &running, &total) != 5)
    return -1;
  return running;
}

double vow__os_memory_available(void) {
  FILE* f = fopen("/proc/meminfo", "re");
  char line[256];
  double kb = -1;
  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f) != NULL)
    if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1)
      break;
  fclose(f);
  return kb < 0 ? -1 : kb * 1024;
}

bool vow__os_process_ids(pid_t pid, long long* pgrp, long long* sid,
                         long long* start_ticks) {
  char path[64], buf[1024];
  size_t n;
  char* p;
  int field;
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  if (!read_small(path, buf, sizeof(buf), &n))
    return false;
  p = strrchr(buf, ')'); /* the command name may hold anything */
  if (p == NULL || sscanf(p + 2, "%*c %*d %lld %lld", pgrp, sid) != 2)
    return false;
  /* Field 3 starts after ") "; starttime is field 22. */
  for (field = 2; field < 22 && p != NULL; field++)
    p = strchr(p + 1, ' ');
  return p != NULL && sscanf(p + 1, "%lld", start_ticks) == 1;
}

bool vow__os_process_environ(pid_t pid, char* buf, size_t size, size_t* len) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
  return read_small(path, buf, size, len);
}

bool vow__os_each_process(bool (*fn)(pid_t pid, void* arg), void* arg) {
  DIR* d = opendir("/proc");
  struct dirent* e;
  if (d == NULL)
    return false;
  while ((e = readdir(d)) != NULL) {
    int pid = atoi(e->d_name);
    if (pid > 0 && !fn((pid_t)pid, arg))
      break;
  }
  closedir(d);
  return true;
}
