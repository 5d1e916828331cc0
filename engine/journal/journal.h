/*
** journal/journal.h -- record and replay: recordings, replays, impact
** reports and process tests.
**
** The engine journals every external input of an instance (engine.c,
** table `journal`): start variables, task completions (data and actor),
** messages, signals, timer firings, adapter answers, cancels, retries and
** task claims/transfers (runtime/taskops.c), each with the instant of its
** command, the instance it applied to and the history mark (max history
** id when the command began). The history table holds what the engine did
** in response.
**
** Adding a kind of input: journal it like engine.c's journal() does (the
** instance, the element and ei of its target, no database ids needed to
** find it again, the mark), and teach apply_input() in replay.c to apply
** it; until then replays report it as "not applied".
**
** A RECORDING (`ravand record`) is one instance tree (a root instance and
** the instances its call activities started) written as JSON Lines, one
** object per line, keys in a fixed order, nested objects with sorted keys:
**
**   {"ravand":"recording","format":2,...}     header: root process, version,
**                                             definition hash, recorded time
**   {"instance":K,...}                        one per instance of the tree
**   {"deployment":D,"created":MS,...}         the deployments the tree ran
**   {"file":NAME,"kind":"bpmn"|"lua",...}     followed by the file's lines,
**   {"src":NAME,"text":LINE}                  one JSON line per source line
**   {"in":KIND,"at":MS,"inst":K,...}          an input, in journal order (with
**                                             "answers": the adapter answers given
**                                             inside its command, applied with it),
**   {"out":KIND,"inst":K,...}                 followed by the outputs it caused
**   {"out":"end","inst":K,...}                the final state of each instance
**
** Instances are numbered 1.. in creation order within the tree, never by
** database id, so a replay on a fresh database produces the same lines.
** docs/testing.md lists every line kind and its fields.
**
** A REPLAY deploys the embedded files on a fresh temporary database,
** applies the inputs in order on a virtual clock set to each input's
** instant, answers jobs with the recorded adapter answers (matched by
** element and order, never by id), and compares the outputs it produces
** with the recorded ones. Gateway decisions are carried along with the
** values their conditions read, but they are not compared (a changed
** condition text alone is no divergence); they explain divergences.
** Ledger rows written by the payroll/finance adapters are carried the same
** way (a replay calls no adapter); the job input that asked for them is
** compared.
**
** Clock values handed to Lua: inside a command, Lua's now() is the
** command's instant (engine.c freezes it), which is the `at` journaled
** with the input; a replay sets its virtual clock to that instant before
** applying the input, so every clock value Lua saw is reproduced without
** journaling each read. Timer due times derive from the same instants.
**
** Not reproduced: signals or messages thrown by instances outside the
** tree (they are not inputs of this tree's journal), and rule changes that
** depend on anything but variables and the clock (there is no such Lua
** facility in the sandbox: no os, io or random).
*/
#ifndef RV_JOURNAL_H
#define RV_JOURNAL_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "core/err.h"
#include "runtime/engine.h"

/* Write a recording of the instance tree that contains `instance` (its
** root and all descendants) to out, read in one snapshot; the engine
** clock gives the "recorded" time. RV_NOTFOUND for an unknown instance.
** Borrows e and out (not closed). */
rv_status rv_journal_record(rv_engine *e, int64_t instance, FILE *out, rv_err *err);

/* Root instances of a process (all versions, any status), oldest first.
** Returns: new array in *out (caller frees with free()), count in *n. */
rv_status rv_journal_roots(rv_engine *e, const char *process_id, int64_t **out /* OUT */,
                           int *n /* OUT */, rv_err *err);

typedef enum rv_replay_verdict {
  RV_REPLAY_IDENTICAL = 0,  /* every output and the end state as recorded */
  RV_REPLAY_SAME_PATH,      /* same elements in the same order; other outputs differ */
  RV_REPLAY_DIVERGED,       /* the path differs */
  RV_REPLAY_NEEDS_INPUT,    /* waits for an input the recording never had */
  RV_REPLAY_INCIDENT,       /* the replay raised an incident the recording did not */
  RV_REPLAY_ERROR           /* could not replay (bad file, deploy failed) */
} rv_replay_verdict;

const char *rv_replay_verdict_name(rv_replay_verdict v);   /* "identical", ... */

typedef struct rv_replay_opts {
  const char *against;      /* BPMN file replacing the recorded root process; NULL: none */
  const char *scripts_dir;  /* with against: Lua modules replacing the recorded ones */
  const char *emit;         /* write the replayed run as a recording to this path */
} rv_replay_opts;

typedef struct rv_replay_result {
  rv_replay_verdict verdict;
  char  where[256];         /* one line: the element and what differed */
  char *report;             /* several lines for humans; free with free() */
  int   n_inputs, n_outputs;
} rv_replay_result;

/* Replay the recording at path. RV_OK means the replay ran (the verdict
** says how it compared); an error means the file could not be used.
** Returns: out->report is new, caller frees it (also on error). */
rv_status rv_journal_replay(const char *path, const rv_replay_opts *opts,
                            rv_replay_result *out /* OUT */, rv_err *err);

/* `ravand replay FILE...`: print "FILE: identical" or the first
** divergence for each (JSON with json); returns the exit code (0 only if
** all are identical). Borrows files and out. */
int rv_journal_replay_main(const char *const *files, int n, bool json, FILE *out);

/* `ravand replay --against FILE.bpmn FILES...`: the impact report
** (scripts_dir may be NULL). Returns 0 if every recording keeps its path,
** 1 otherwise. Borrows its arguments. */
int rv_journal_impact_main(const char *against, const char *scripts_dir,
                           const char *const *files, int n, bool json, FILE *out);

/* `ravand test DIR...`: run every *.jsonl under the directories (process
** tests and recordings), print results and coverage per process.
** Returns the exit code (0 only if at least one file ran and all passed).
** Borrows its arguments. */
int rv_journal_test_main(const char *const *dirs, int n, bool json, FILE *out);

#endif
