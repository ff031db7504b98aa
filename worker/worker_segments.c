/* A worker's mappings of the segments its tasks' arguments are in: one
 * mapping of a segment's bytes while any queued or running task uses
 * them, so a value sent to many tasks is mapped once by a worker that
 * holds several of them, and unmapped when the last is over (a mapping
 * kept longer would keep the segment alive after the parent let go). */
#include <sys/stat.h>
#include <unistd.h>

#include "worker_internal.h"

struct vow__seg_map {
  vow__seg_map* next;
  dev_t dev;
  ino_t ino;
  uint64_t off, len;
  vow__shm_view view;
  unsigned users;
};

vow__seg_map* vow__seg_map_open(vow__seg_map** list, int fd, uint64_t off,
                                uint64_t len, char* why, size_t why_len) {
  struct stat st;
  vow__seg_map* m;
  if (fstat(fd, &st) == 0)
    for (m = *list; m != NULL; m = m->next)
      if (m->dev == st.st_dev && m->ino == st.st_ino && m->off == off &&
          m->len == len) {
        close(fd);
        m->users++;
        return m;
      }
  m = vow__calloc(1, sizeof(*m));
  if (m == NULL) {
    close(fd);
    snprintf(why, why_len, "worker out of memory");
    return NULL;
  }
  if (vow__shm_view_open(fd, off, len, VOW__SHM_MAP_ALL, &m->view, why,
                         why_len) != 0) {
    close(fd);
    vow__free(m);
    return NULL;
  }
  close(fd); /* the mapping keeps the segment */
  m->dev = st.st_dev;
  m->ino = st.st_ino;
  m->off = off;
  m->len = len;
  m->users = 1;
  m->next = *list;
  *list = m;
  return m;
}

const unsigned char* vow__seg_map_data(const vow__seg_map* m, size_t* len) {
  *len = m->view.len;
  return m->view.data;
}

void vow__seg_map_release(vow__seg_map** list, vow__seg_map* m) {
  vow__seg_map** at;
  if (m == NULL || --m->users > 0)
    return;
  for (at = list; *at != NULL; at = &(*at)->next)
    if (*at == m) {
      *at = m->next;
      break;
    }
  vow__shm_view_close(&m->view);
  vow__free(m);
}
