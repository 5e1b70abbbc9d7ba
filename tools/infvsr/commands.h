/* Subcommands of the `infvsr` CLI. Each returns a process exit code:
 * 0 success, 1 runtime failure (bad input file, model mismatch), 2 usage error. */
#pragma once

int infvsr_cmd_inspect(int argc, char ** argv);
int infvsr_cmd_run(int argc, char ** argv);
int infvsr_cmd_make_tiny(int argc, char ** argv);
int infvsr_cmd_upscale(int argc, char ** argv);
int infvsr_cmd_submit(int argc, char ** argv);
