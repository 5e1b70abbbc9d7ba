/* The `workers` directive: how many engine workers the daemon runs and on which device.
 *
 *   workers = auto                one worker per usable CUDA device, else one CPU worker
 *   workers = N                   N workers (1..16), all on `device` (cpu by default)
 *   workers = cuda:0,cuda:1       one worker per listed device (cpu, cuda[:N], devsim[:N])
 *
 * A list or `auto` names the devices itself and `device` is not used; `device` is the
 * device of a numeric `workers` (how the daemon worked before lists existed).
 * `devsim_faults` (tests only) = "devsim:1@400,devsim:0@9000": the worker on that device
 * fails with a device fault at its 400th backend op. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SRV_MAX_WORKERS 16

struct srv_worker_plan {
    int     n;
    bool    is_auto;                        /* resolved by srv_workers_resolve_auto   */
    char    device[SRV_MAX_WORKERS][32];    /* backend name per worker                 */
    char    name[SRV_MAX_WORKERS][48];      /* label: metrics worker="..", /healthz     */
    int64_t fault_at_op[SRV_MAX_WORKERS];   /* devsim_faults; 0 = none                 */
};

/* True when `d` is a backend name the engine takes: cpu, auto, cuda, cuda:N, devsim,
 * devsim:N (N at most 3 digits). */
bool srv_device_name_valid(const char * d);

/* Parses `workers` (and `device` for a numeric count) into p; false with a message. */
bool srv_workers_parse(const char * workers, const char * device, struct srv_worker_plan * p, char * err,
                       size_t err_len);
/* Applies `devsim_faults` to a parsed plan; every entry must name a devsim worker. */
bool srv_devsim_faults_parse(const char * spec, struct srv_worker_plan * p, char * err, size_t err_len);
/* `auto`: one worker per CUDA device that opens (cuda:0, cuda:1, ... until one does not),
 * else one cpu worker. Opens and frees each device once; call at startup. */
void srv_workers_resolve_auto(struct srv_worker_plan * p);
