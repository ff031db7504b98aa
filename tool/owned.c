/* Files and folders of ours. The queue keeps its socket, database, lock,
 * log and output next to a path the user chooses, which may be in a
 * folder others can write to (/tmp, with its sticky bit). There anyone
 * may have made a file of the name we are about to use: a database with
 * jobs of theirs, a log that collects ours, a folder whose entries are
 * links to the user's own files. So nothing there is used unless it is
 * ours: opened without following a link, then checked on the descriptor
 * itself (its owner, its mode, its type, its links), which no later
 * rename can change. In a sticky folder, what is ours stays ours: only
 * its owner may remove or rename it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue.h"

/* 0 when st (what is at path) is ours to use; else -1, and why in err. */
static int refuse(const char* path, const struct stat* st, bool dir, char* err,
                  size_t errlen) {
  if (dir ? !S_ISDIR(st->st_mode) : !S_ISREG(st->st_mode)) {
    snprintf(err, errlen, "%s is not a %s: refusing to use it", path,
             dir ? "folder" : "regular file");
    return -1;
  }
  if (st->st_uid != geteuid()) {
    snprintf(err, errlen,
             "%s belongs to uid %u, not to you (uid %u): refusing to use it "
             "(remove it, or give another --socket)",
             path, (unsigned)st->st_uid, (unsigned)geteuid());
    return -1;
  }
  if ((st->st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    snprintf(err, errlen,
             "%s may be written by others (mode %04o): refusing to use it "
             "(chmod go-w it)",
             path, (unsigned)(st->st_mode & 07777));
    return -1;
  }
  /* A hard link to one of the user's files, made where the folder is
   * shared, would pass every other check. */
  if (!dir && st->st_nlink > 1) {
    snprintf(err, errlen,
             "%s has %lu hard links: refusing to use it (another name "
             "for one of your files?)",
             path, (unsigned long)st->st_nlink);
    return -1;
  }
  return 0;
}

static int open_checked(int dirfd, const char* path, int flags, bool dir,
                        char* err, size_t errlen) {
  struct stat st;
  /* O_NONBLOCK: a FIFO planted under the name must not block the open. */
  int fd = openat(
      dirfd, path,
      flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | (dir ? O_DIRECTORY : 0),
      0600);
  if (fd < 0) {
    if (errno == ELOOP)
      snprintf(err, errlen,
               "%s is a symbolic link: refusing to follow it (remove it)",
               path);
    else if ((errno == ENOTDIR && dir) || (errno == EISDIR && !dir))
      snprintf(err, errlen, "%s is not a %s: refusing to use it", path,
               dir ? "folder" : "regular file");
    else
      snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    return -1;
  }
  if (fstat(fd, &st) != 0 || refuse(path, &st, dir, err, errlen) != 0) {
    if (err[0] == '\0')
      snprintf(err, errlen, "cannot look at %s: %s", path, strerror(errno));
    close(fd);
    return -1;
  }
  if (!dir)
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

int qf_open(int dirfd, const char* path, int flags, char* err, size_t errlen) {
  err[0] = '\0';
  return open_checked(dirfd < 0 ? AT_FDCWD : dirfd, path, flags, false, err,
                      errlen);
}

int qf_open_dir(const char* path, char* err, size_t errlen) {
  err[0] = '\0';
  if (mkdir(path, 0700) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "cannot make %s: %s", path, strerror(errno));
    return -1;
  }
  return open_checked(AT_FDCWD, path, O_RDONLY, true, err, errlen);
}

int qf_check(const char* path, char* err, size_t errlen) {
  struct stat st;
  err[0] = '\0';
  if (lstat(path, &st) != 0) {
    if (errno == ENOENT)
      return 0;
    snprintf(err, errlen, "cannot look at %s: %s", path, strerror(errno));
    return -1;
  }
  if (S_ISLNK(st.st_mode)) {
    snprintf(err, errlen,
             "%s is a symbolic link: refusing to follow it (remove it)", path);
    return -1;
  }
  return refuse(path, &st, false, err, errlen);
}
