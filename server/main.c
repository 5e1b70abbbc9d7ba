/* infvsrd: the streaming video super-resolution daemon.
 *
 *   infvsrd --listen 127.0.0.1:0 --model null --spool-dir /tmp/spool
 *   infvsrd --config /etc/infvsrd.conf --check-config
 *
 * Exit status: 0 after a clean drain (SIGTERM/SIGINT), 2 for a bad command line or
 * config, 1 when the daemon cannot start (port, spool, engine). */
#include <libavutil/log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv.h"

/* FFmpeg (decoders, x264) logs through av_log from the pipeline's threads; route it into
 * the structured log so stderr stays one JSON object per line. FFmpeg errors are per-job
 * input problems (warn), its info chatter is debug. */
static void av_log_to_srv(void * avcl, int level, const char * fmt, va_list vl) {
    if (level > av_log_get_level()) return;
    enum srv_log_level l = level <= AV_LOG_ERROR ? SRV_LOG_WARN : level <= AV_LOG_WARNING ? SRV_LOG_INFO : SRV_LOG_DEBUG;
    if (l > srv_log_threshold) return;
    char line[1024];
    int print_prefix = 1;
    av_log_format_line2(avcl, level, fmt, vl, line, sizeof(line), &print_prefix);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    if (n > 0) srv_log_write(l, "ffmpeg", NULL, NULL, "%s", line);
}

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
    av_log_set_callback(av_log_to_srv);
    if (srv_open(&srv, &cfg, err, sizeof(err)) != 0) {
        LOG_ERROR("cannot start: %s", err);
        return 1;
    }
    int rc = srv_run(&srv);
    srv_close(&srv);
    LOG_INFO("stopped");
    return rc;
}
