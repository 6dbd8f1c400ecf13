/*
 * 14 — Files, as promises
 *
 * Make a directory tree, write a file and append to it, read it back whole,
 * stat it, list a directory with for-await, stream the file line by line,
 * move it, and see what a missing file's error says — every step awaited,
 * none of them blocking the loop: the system calls run on libuv's thread
 * pool, one pool job per call.
 *
 * The JavaScript this mirrors (node prints the same lines):
 *
 *   import { mkdtemp, mkdir, writeFile, readFile, opendir, stat, rename, rm } from 'node:fs/promises';
 *   import { createReadStream } from 'node:fs';
 *   import { createInterface } from 'node:readline';
 *
 *   const dir = await mkdtemp(join(tmpdir(), 'vow-example-'));
 *   process.chdir(dir);
 *   await mkdir('notes/old', { recursive: true });
 *   await writeFile('notes/todo.txt', 'buy milk\nwrite C\n');
 *   await writeFile('notes/todo.txt', 'call mum\n', { flag: 'a' });
 *   console.log(JSON.stringify(await readFile('notes/todo.txt', 'utf8')));
 *   const s = await stat('notes/todo.txt');
 *   console.log(`todo.txt: ${s.size} bytes, a file: ${s.isFile()}`);
 *   const names = [];
 *   for await (const e of await opendir('notes')) names.push(`${e.name}${e.isDirectory() ? '/' : ''}`);
 *   console.log('notes holds:', names.sort().join(' '));
 *   let n = 0;
 *   for await (const line of createInterface({ input: createReadStream('notes/todo.txt') }))
 *     console.log(`line ${++n}: ${line}`);
 *   await rename('notes/todo.txt', 'notes/old/todo.txt');
 *   try { await readFile('notes/todo.txt'); } catch (e) { console.log(e.message); }
 *   await rm(dir, { recursive: true });
 *   console.log('cleaned up');
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vow.h>

/* `await p` that gives up on the whole program when p rejects. */
static vow_value must(vow_promise *p) {
  vow_value v;
  if (vow_await(p, &v) != 0) {
    fprintf(stderr, "%s\n", vow_error_message(v));
    exit(1);
  }
  return v;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static vow_value main_async(vow_loop *loop, void *arg) {
  (void)arg;
  char dir[] = "/tmp/vow-example-XXXXXX"; /* mkdtemp: not a promise in vow */
  if (!mkdtemp(dir) || chdir(dir) != 0) return vow_throw(vow_error(VOW_EINVAL, "no temp dir"));

  vow_fs_mkdir_options parents = {.recursive = 1};
  vow_unref(must(vow_fs_mkdir(loop, "notes/old", &parents)));
  const char *todo = "buy milk\nwrite C\n";
  vow_unref(must(vow_fs_write_file(loop, "notes/todo.txt", todo, strlen(todo), NULL)));
  vow_fs_write_options append = {.append = 1};
  vow_unref(must(vow_fs_write_file(loop, "notes/todo.txt", "call mum\n", 9, &append)));

  vow_value text = must(vow_fs_read_file(loop, "notes/todo.txt", NULL));
  vow_value_print(stdout, text); /* JSON.stringify */
  printf("\n");
  vow_unref(text);

  vow_value st = must(vow_fs_stat(loop, "notes/todo.txt"));
  const vow_stat *s = vow_as_stat(st);
  printf("todo.txt: %llu bytes, a file: %s\n", (unsigned long long)s->size,
         s->type == VOW_FILE_REGULAR ? "true" : "false");
  vow_unref(st);

  char *names[16];
  size_t count = 0;
  vow_for_await it;
  vow_for_await_gen(&it, vow_fs_readdir(loop, "notes"));
  VOW_FOR_AWAIT(&it, entry) {
    const vow_dirent *e = vow_as_dirent(entry);
    if (count < 16 && (names[count] = malloc(strlen(e->name) + 2)))
      sprintf(names[count++], "%s%s", e->name, e->type == VOW_FILE_DIRECTORY ? "/" : "");
  }
  vow_for_await_end(&it, NULL);
  qsort(names, count, sizeof *names, by_name);
  printf("notes holds:");
  for (size_t i = 0; i < count; i++) printf(" %s", names[i]), free(names[i]);
  printf("\n");

  /* The file as a stream: read from disk only while the loop below asks. */
  vow_value file = must(vow_fs_open_read(loop, "notes/todo.txt", NULL));
  int n = 0;
  vow_for_await_gen(&it, vow_stream_lines(vow_as_stream(file), 0));
  VOW_FOR_AWAIT(&it, line) printf("line %d: %s\n", ++n, vow_str(line));
  vow_for_await_end(&it, NULL);
  vow_unref(file); /* its last reference: the file is closed */

  vow_unref(must(vow_fs_rename(loop, "notes/todo.txt", "notes/old/todo.txt")));
  vow_value err;
  if (vow_await(vow_fs_read_file(loop, "notes/todo.txt", NULL), &err) == VOW_EREJECTED)
    printf("%s\n", vow_error_message(err));
  vow_unref(err);

  vow_fs_rm_options tree = {.recursive = 1};
  vow_unref(must(vow_fs_rm(loop, dir, &tree)));
  printf("cleaned up\n");
  return vow_undefined();
}

int main(void) {
  return vow_run(main_async, NULL, NULL, NULL) == 0 ? 0 : 1;
}
