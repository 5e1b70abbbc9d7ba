/* Runners of `infvsr run <module>`; one per run_<module>.c file. */
#pragma once
int infvsr_run_dit(int argc, char ** argv);
int infvsr_run_vae(int argc, char ** argv);
int infvsr_run_visual(int argc, char ** argv);
