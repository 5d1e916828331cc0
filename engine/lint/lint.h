/*
** lint/lint.h -- `ravand lint`: check BPMN files and their Lua rules
** without running anything.
**
** A file is parsed (model/), validated (graph rules), and every Lua text
** it carries -- conditions, mappings, correlation keys, office-scope and
** "=" timer/due expressions, multi-instance expressions, inline scripts --
** is compiled by rules/ against the deployment's scripts/ modules; every
** rv:function must name a function that a module exports.
*/
#ifndef RV_LINT_H
#define RV_LINT_H
#include "model/model.h"

/* Lint one BPMN file. scripts_dir may be NULL (function calls are then not
** checked, with a warning). Diagnostics are appended to d, with the line
** of the element or flow they concern (0 when none, e.g. a broken .lua).
** Returns the number of errors this call added. Borrows all arguments. */
int rv_lint_file(const char *path, const char *scripts_dir, rv_diags *d);

/* The CLI: argv[0] is the command name ("lint"), then
**   [--scripts DIR] [--json] FILE...
** Without --scripts, "scripts" in the working directory is used if it
** exists, else "../scripts" next to each file's directory. Prints
** "FILE:LINE: error: msg" lines (or, with --json, one JSON array of
** {file,line,level,message}) on stdout. Returns the exit code: 0 when no
** file has errors (warnings allowed), 1 when some has, 2 on usage error. */
int rv_lint_main(int argc, char **argv);

#endif
