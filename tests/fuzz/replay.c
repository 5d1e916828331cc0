/*
** tests/fuzz/replay.c -- run LLVMFuzzerTestOneInput over files without
** libFuzzer: each argument is a file or a directory whose regular files
** (one level) are replayed in sorted order. Exit 0 when every input ran
** (the target never "fails"; crashes and sanitizer reports abort).
*/
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path){
  FILE *fp = fopen(path, "rb");
  unsigned char *buf;
  long n;
  if (fp == NULL) { perror(path); return 1; }
  fseek(fp, 0, SEEK_END);
  n = ftell(fp);
  rewind(fp);
  buf = malloc(n > 0 ? (size_t)n : 1);
  if (buf == NULL || (n > 0 && fread(buf, 1, (size_t)n, fp) != (size_t)n)) {
    fprintf(stderr, "%s: read failed\n", path);
    fclose(fp);
    free(buf);
    return 1;
  }
  fclose(fp);
  LLVMFuzzerTestOneInput(buf, (size_t)n);
  free(buf);
  return 0;
}

static int cmp(const void *a, const void *b){
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_dir(const char *dir, int *count){
  DIR *d = opendir(dir);
  struct dirent *de;
  char **names = NULL;
  size_t n = 0;
  int bad = 0;
  if (d == NULL) { perror(dir); return 1; }
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.') continue;
    names = realloc(names, sizeof *names * (n + 1));
    names[n++] = strdup(de->d_name);
  }
  closedir(d);
  qsort(names, n, sizeof *names, cmp);
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(dir) + strlen(names[i]) + 2;
    char *p = malloc(len);
    struct stat st;
    snprintf(p, len, "%s/%s", dir, names[i]);
    if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) { bad |= replay_file(p); (*count)++; }
    free(p);
    free(names[i]);
  }
  free(names);
  return bad;
}

int main(int argc, char **argv){
  int bad = 0, count = 0;
  if (argc < 2) { fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]); return 2; }
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) { perror(argv[i]); bad = 1; continue; }
    if (S_ISDIR(st.st_mode)) bad |= replay_dir(argv[i], &count);
    else { bad |= replay_file(argv[i]); count++; }
  }
  printf("replayed %d input(s)\n", count);
  return bad;
}
