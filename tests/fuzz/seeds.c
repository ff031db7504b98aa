/* Writes each golden vector of docs/protocol.md to DIR/NAME, with a
 * leading byte of 0 (whole-chunk feeding, default limits), as the fuzzer's
 * seed corpus.  Usage: seeds PROTOCOL.md DIR */
#include <stdio.h>
#include <string.h>

int main(int argc, char** argv) {
  FILE* in;
  FILE* out = NULL;
  char line[512], path[4096];
  int count = 0;
  if (argc != 3) {
    fprintf(stderr, "usage: %s PROTOCOL.md DIR\n", argv[0]);
    return 2;
  }
  in = fopen(argv[1], "r");
  if (in == NULL) {
    perror(argv[1]);
    return 1;
  }
  while (fgets(line, sizeof(line), in)) {
    if (strncmp(line, "```hex golden=", 14) == 0) {
      line[strcspn(line, "\n")] = '\0';
      snprintf(path, sizeof(path), "%s/%s", argv[2], line + 14);
      out = fopen(path, "wb");
      if (out == NULL) {
        perror(path);
        return 1;
      }
      fputc(0, out);
      count++;
    } else if (out != NULL && strncmp(line, "```", 3) == 0) {
      fclose(out);
      out = NULL;
    } else if (out != NULL) {
      char* p = line;
      unsigned v;
      int used;
      while (sscanf(p, " %2x%n", &v, &used) == 1) {
        fputc((int)v, out);
        p += used;
      }
    }
  }
  fclose(in);
  if (count == 0) {
    fprintf(stderr, "no golden vectors in %s\n", argv[1]);
    return 1;
  }
  printf("%d seeds written to %s\n", count, argv[2]);
  return 0;
}
