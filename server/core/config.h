/* infvsrd configuration: one table of directives, four sources.
 *
 * Every directive `name` can be set in the config file (`name = value`), as a flag
 * (`--name value` or `--name=value`, underscores written as dashes) and as an environment
 * variable (`INFVSR_NAME`). Precedence: flag > environment > file > default. `peer` is the
 * only list: repeated lines/flags accumulate within one source, and the highest source
 * that sets any peer replaces the lower sources' lists (env: comma-separated).
 *
 * Not thread-safe; parse once at startup, then treat as read-only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "netaddr.h"
#include "workerspec.h"

#define SRV_MAX_PEERS 64

struct srv_peer {
    char name[64];
    char url[256];
};

struct srv_config {
    char    listen[128];
    char    instance[64];
    struct srv_peer peers[SRV_MAX_PEERS];
    int     n_peers;
    char    peer_url_template[256];
    char    model[16];             /* "infvsr" or "null"                                */
    char    model_dir[512];
    char    spool_dir[512];
    char    workers[256];          /* auto | N | device list (workerspec.h)            */
    int     threads;
    char    device[32];            /* backend of the workers: cpu, cuda[:N], auto, devsim[:N] */
    char    precision[8];          /* auto, f32 or bf16                                 */
    int     device_reserve_mb;     /* device memory kept free of sessions per worker     */
    char    devsim_faults[256];    /* tests: DEVICE@OP,... (workerspec.h)               */
    int     max_active_jobs_per_worker;
    int     max_queued_jobs;
    int     max_awaiting_jobs_per_tenant;
    int     max_jobs_per_client;
    int     max_requests_per_s;
    int     request_burst;
    int64_t max_json_bytes;
    int64_t max_upload_bytes;
    int64_t input_lead_bytes;
    int     frame_queue;
    int     output_queue;
    int64_t max_frame_pixels;
    int     max_connections;
    int     max_connections_per_ip;
    int64_t connection_memory;
    int     idle_timeout_s;
    int     header_timeout_s;
    char    trusted_proxies[1024];
    int64_t min_upload_rate;
    int     max_suspend_s;
    int     input_wait_s;
    int     job_ttl_s;
    int     upload_expiry_s;
    int     input_wait_timeout_s;
    int     drain_timeout_s;
    int     retry_after_s;
    char    tokens_file[512];
    char    web_ui[4];             /* "on" or "off": the page at / (web.c)              */
    char    log_format[8];         /* "json" or "text"                                  */
    char    log_level[8];          /* "error" "warn" "info" "debug"                     */

    /* derived, not directives */
    char    listen_host[96];
    int     listen_port;
    char    config_file[512];      /* "" when none                                      */
    struct srv_cidr trusted[SRV_MAX_TRUSTED_PROXIES]; /* trusted_proxies, parsed         */
    int     n_trusted;
    struct srv_worker_plan plan;   /* workers + device + devsim_faults, parsed          */
};

enum srv_config_action { SRV_CONFIG_RUN, SRV_CONFIG_EXIT_OK, SRV_CONFIG_EXIT_ERROR };

/* Fills `c` from defaults, the config file (--config FILE or INFVSR_CONFIG), the
 * environment and argv, then validates. `--help`/`--version`/`--check-config` print to
 * `out` and return SRV_CONFIG_EXIT_OK (or EXIT_ERROR for a bad config). Errors are
 * written to `err` (a message naming file:line, flag or variable) and return
 * SRV_CONFIG_EXIT_ERROR (exit status 2). `envp` NULL = the process environment. */
enum srv_config_action srv_config_load(struct srv_config * c, int argc, char ** argv,
                                       char ** envp, FILE * out, char * err, size_t err_len);

/* Writes the effective configuration in config-file syntax. */
void srv_config_print(const struct srv_config * c, FILE * out);

/* Returns the URL of instance `name` from `peer` entries, else from peer_url_template
 * ("{instance}" replaced); false when neither knows it. */
bool srv_config_peer_url(const struct srv_config * c, const char * name, char * url, size_t url_len);

/* The directive table, for --help and for the test that config/infvsrd.conf documents
 * every directive with its default. */
size_t srv_config_n_directives(void);
const char * srv_config_directive_name(size_t i);
const char * srv_config_directive_default(size_t i); /* "" = empty/none */

/* True when `s` is a valid instance name: [a-z0-9-]{1,63}, not starting with '-'. */
bool srv_instance_name_valid(const char * s);
