/* Runners of `infvsr run <module>`; one per run_<module>.c file. */
#pragma once
