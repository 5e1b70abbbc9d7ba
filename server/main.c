/* infvsrd: the streaming video super-resolution daemon.
 *
 *   infvsrd --listen 127.0.0.1:0 --model null --spool-dir /tmp/spool
 *   infvsrd --config /etc/infvsrd.conf --check-config
 *
 * Exit status: 0 after a clean drain (SIGTERM/SIGINT), 2 for a bad command line or
 * config, 1 when the daemon cannot start (port, spool, engine). */
#include <stdio.h>
#include <stdlib.h>

#include "srv.h"

int main(int argc, char ** argv) {
    static struct srv_config cfg;
    static struct srv srv;
    char err[1024] = "";
    enum srv_config_action a = srv_config_load(&cfg, argc, argv, NULL, stdout, err, sizeof(err));
    if (a == SRV_CONFIG_EXIT_ERROR) {
        fprintf(stderr, "infvsrd: %s\n", err);
        return 2;
    }
    if (a == SRV_CONFIG_EXIT_OK) return 0;
    srv_log_setup(cfg.log_format, cfg.log_level);
    if (srv_open(&srv, &cfg, err, sizeof(err)) != 0) {
        LOG_ERROR("cannot start: %s", err);
        return 1;
    }
    int rc = srv_run(&srv);
    srv_close(&srv);
    LOG_INFO("stopped");
    return rc;
}
