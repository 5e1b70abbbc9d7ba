/* Unit tests of the infvsrd core pieces that do not need a running daemon. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "srv.h"

/* ---- config ------------------------------------------------------------------------------ */

static char cfg_err[1024];
static char cfg_out[16384];

/* Runs srv_config_load on a NULL-terminated argv (argv[0] added) and env. */
static enum srv_config_action load(struct srv_config * c, const char ** args, const char ** env) {
    const char * argv[64] = { "infvsrd" };
    int argc = 1;
    for (const char ** a = args; a && *a; a++) argv[argc++] = *a;
    const char * envp_default[] = { "HOSTNAME=testhost", NULL };
    cfg_err[0] = 0;
    FILE * out = fmemopen(cfg_out, sizeof(cfg_out), "w");
    enum srv_config_action act =
        srv_config_load(c, argc, (char **)argv, (char **)(env ? env : envp_default), out, cfg_err, sizeof(cfg_err));
    fclose(out);
    return act;
}

static const char * write_file(const char * name, const char * text) {
    static char path[4][600];
    static int slot;
    char * p = path[slot++ % 4];
    snprintf(p, 600, "%s/%s", TEST_WORK_DIR, name);
    FILE * f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    return p;
}

static void test_config_defaults(void) {
    struct srv_config c;
    CHECK_EQ_INT(load(&c, NULL, NULL), SRV_CONFIG_RUN);
    CHECK(strcmp(c.listen, "0.0.0.0:8080") == 0);
    CHECK_EQ_INT(c.listen_port, 8080);
    CHECK(strcmp(c.instance, "testhost") == 0);
    CHECK(strcmp(c.model, "infvsr") == 0);
    CHECK(strcmp(c.model_dir, "/models") == 0);
    CHECK(strcmp(c.spool_dir, "/var/spool/infvsrd") == 0);
    CHECK_EQ_INT(c.max_queued_jobs, 16);
    CHECK_EQ_INT(c.max_upload_bytes, 17179869184LL);
    CHECK_EQ_INT(c.input_lead_bytes, 33554432);
    CHECK_EQ_INT(c.max_frame_pixels, 2073600);
    CHECK_EQ_INT(c.max_connections, 512);
    CHECK_EQ_INT(c.connection_memory, 262144);
    CHECK_EQ_INT(c.drain_timeout_s, 30);
    CHECK_EQ_INT(c.n_peers, 0);
    CHECK(strcmp(c.log_format, "json") == 0);
}

static void test_config_precedence(void) {
    const char * file = write_file("prec.conf", "# comment\n\nmax_queued_jobs = 3\nworkers = 2\nlog_level = debug\n"
                                                "retry_after_s = 9   # trailing comment\n");
    struct srv_config c;
    const char * a1[] = { "--config", file, NULL };
    const char * env0[] = { NULL };
    CHECK_EQ_INT(load(&c, a1, env0), SRV_CONFIG_RUN);
    CHECK_EQ_INT(c.max_queued_jobs, 3); /* file > default */
    CHECK_EQ_INT(c.plan.n, 2);
    CHECK_EQ_INT(c.retry_after_s, 9);
    CHECK(strcmp(c.instance, "local") == 0 || c.instance[0]); /* no HOSTNAME: gethostname or local */

    const char * env1[] = { "INFVSR_MAX_QUEUED_JOBS=5", "INFVSR_LISTEN=127.0.0.1:9000", NULL };
    CHECK_EQ_INT(load(&c, a1, env1), SRV_CONFIG_RUN);
    CHECK_EQ_INT(c.max_queued_jobs, 5); /* env > file */
    CHECK_EQ_INT(c.plan.n, 2);
    CHECK_EQ_INT(c.listen_port, 9000);

    const char * a2[] = { "--config", file, "--max-queued-jobs", "7", "--listen=127.0.0.1:0", NULL };
    CHECK_EQ_INT(load(&c, a2, env1), SRV_CONFIG_RUN);
    CHECK_EQ_INT(c.max_queued_jobs, 7); /* flag > env */
    CHECK_EQ_INT(c.listen_port, 0);
    CHECK(strcmp(c.listen_host, "127.0.0.1") == 0);

    /* the config file can also come from INFVSR_CONFIG */
    char envcfg[700];
    snprintf(envcfg, sizeof(envcfg), "INFVSR_CONFIG=%s", file);
    const char * env2[] = { envcfg, NULL };
    CHECK_EQ_INT(load(&c, NULL, env2), SRV_CONFIG_RUN);
    CHECK_EQ_INT(c.max_queued_jobs, 3);

    /* --spool alias, --model null */
    const char * a3[] = { "--spool", "/tmp/x", "--model", "null", NULL };
    CHECK_EQ_INT(load(&c, a3, env0), SRV_CONFIG_RUN);
    CHECK(strcmp(c.spool_dir, "/tmp/x") == 0);
    CHECK(strcmp(c.model, "null") == 0);
}

static void test_config_peers(void) {
    const char * file = write_file("peers.conf", "peer = a-0=http://10.0.0.1:8080/\npeer = a-1=http://10.0.0.2:8080\n");
    struct srv_config c;
    const char * a1[] = { "--config", file, NULL };
    const char * env0[] = { NULL };
    CHECK_EQ_INT(load(&c, a1, env0), SRV_CONFIG_RUN);
    CHECK_EQ_INT(c.n_peers, 2); /* repeated lines accumulate */
    char url[300];
    CHECK(srv_config_peer_url(&c, "a-0", url, sizeof(url)) && strcmp(url, "http://10.0.0.1:8080") == 0);
    CHECK(!srv_config_peer_url(&c, "a-2", url, sizeof(url)));
    /* env replaces the file's list */
    const char * env1[] = { "INFVSR_PEER=b-0=http://h0:1,b-1=http://h1:2", NULL };
    CHECK_EQ_INT(load(&c, a1, env1), SRV_CONFIG_RUN);
    CHECK_EQ_INT(c.n_peers, 2);
    CHECK(strcmp(c.peers[0].name, "b-0") == 0 && strcmp(c.peers[1].url, "http://h1:2") == 0);
    /* flags replace env, and accumulate among themselves */
    const char * a2[] = { "--peer", "c-0=http://x:1", "--peer", "c-1=https://y:2", "--peer-url-template",
                          "http://{instance}.svc:8080", NULL };
    CHECK_EQ_INT(load(&c, a2, env1), SRV_CONFIG_RUN);
    CHECK_EQ_INT(c.n_peers, 2);
    CHECK(strcmp(c.peers[1].name, "c-1") == 0);
    CHECK(srv_config_peer_url(&c, "zz-9", url, sizeof(url)) && strcmp(url, "http://zz-9.svc:8080") == 0);
    CHECK(srv_config_peer_url(&c, "c-0", url, sizeof(url)) && strcmp(url, "http://x:1") == 0);
}

static void expect_error(const char ** args, const char ** env, const char * needle) {
    struct srv_config c;
    enum srv_config_action a = load(&c, args, env);
    CHECK_EQ_INT(a, SRV_CONFIG_EXIT_ERROR);
    CHECK_STR_CONTAINS(cfg_err, needle);
}

static void test_config_errors(void) {
    const char * env0[] = { NULL };
    const char * f1 = write_file("bad1.conf", "workers = 1\nfoo = bar\n");
    const char * a1[] = { "--config", f1, NULL };
    expect_error(a1, env0, "bad1.conf:2: unknown directive 'foo'");
    const char * f2 = write_file("bad2.conf", "\nmax_queued_jobs = 2x\n");
    const char * a2[] = { "--config", f2, NULL };
    expect_error(a2, env0, "bad2.conf:2: max_queued_jobs: expected an integer in [0, 100000], got '2x'");
    const char * f3 = write_file("bad3.conf", "just words\n");
    const char * a3[] = { "--config", f3, NULL };
    expect_error(a3, env0, "bad3.conf:1: expected 'name = value'");
    const char * a4[] = { "--config", "/nonexistent/x.conf", NULL };
    expect_error(a4, env0, "/nonexistent/x.conf: cannot open config file");
    const char * a5[] = { "--nope", "1", NULL };
    expect_error(a5, env0, "unknown flag '--nope'");
    const char * a6[] = { "--workers", NULL };
    expect_error(a6, env0, "--workers: missing value");
    const char * a7[] = { "--workers", "0", NULL };
    expect_error(a7, env0, "workers: expected 1..16, auto or a device list, got '0'");
    const char * a7b[] = { "--workers", "devsim:0,devsim:0", NULL };
    expect_error(a7b, env0, "workers: device 'devsim:0' listed twice");
    const char * a7c[] = { "--workers", "cuda:0,", NULL };
    expect_error(a7c, env0, "workers: trailing comma");
    const char * a7d[] = { "--workers", "devsim:0", "--devsim-faults", "devsim:1@5", NULL };
    expect_error(a7d, env0, "devsim_faults: 'devsim:1' is not a devsim worker");
    const char * a8[] = { "--log-format", "xml", NULL };
    expect_error(a8, env0, "log_format: expected one of json|text, got 'xml'");
    const char * a9[] = { "--listen", "8080", NULL };
    expect_error(a9, env0, "listen: expected HOST:PORT");
    const char * a10[] = { "--listen", "1.2.3.4:70000", NULL };
    expect_error(a10, env0, "listen: expected HOST:PORT");
    const char * a11[] = { "--instance", "Bad_Name", NULL };
    expect_error(a11, env0, "instance: expected 1-63 of [a-z0-9-]");
    const char * a12[] = { "--peer", "noequals", NULL };
    expect_error(a12, env0, "--peer: peer: expected NAME=http://host:port");
    const char * a13[] = { "--peer-url-template", "http://x:1", NULL };
    expect_error(a13, env0, "peer_url_template: must contain {instance}");
    const char * a14[] = { "stray", NULL };
    expect_error(a14, env0, "unexpected argument 'stray'");
    const char * env1[] = { "INFVSR_WORKERS=many", NULL };
    expect_error(NULL, env1, "workers: 'many' is not a device");
    const char * a15[] = { "--max-upload-bytes", " 5", NULL };
    expect_error(a15, env0, "max_upload_bytes: expected an integer");
}

static void test_config_check_and_help(void) {
    struct srv_config c, c2;
    const char * env0[] = { NULL };
    const char * a1[] = { "--check-config", "--workers", "3", "--peer", "p-1=http://h:1", "--instance", "node-7", NULL };
    CHECK_EQ_INT(load(&c, a1, env0), SRV_CONFIG_EXIT_OK);
    CHECK_STR_CONTAINS(cfg_out, "workers = 3\n");
    CHECK_STR_CONTAINS(cfg_out, "peer = p-1=http://h:1\n");
    CHECK_STR_CONTAINS(cfg_out, "tokens_file = \"\"\n");
    /* the printed config is a config file that gives the same config back */
    const char * f = write_file("roundtrip.conf", cfg_out);
    const char * a2[] = { "--config", f, NULL };
    CHECK_EQ_INT(load(&c2, a2, env0), SRV_CONFIG_RUN);
    CHECK_EQ_INT(c2.plan.n, 3);
    CHECK_EQ_INT(c2.n_peers, 1);
    CHECK(strcmp(c2.instance, "node-7") == 0);
    CHECK(strcmp(c2.tokens_file, "") == 0);
    CHECK_EQ_INT(c2.max_upload_bytes, c.max_upload_bytes);
    const char * a3[] = { "--help", NULL };
    CHECK_EQ_INT(load(&c, a3, env0), SRV_CONFIG_EXIT_OK);
    CHECK_STR_CONTAINS(cfg_out, "--max-queued-jobs");
    CHECK_STR_CONTAINS(cfg_out, "--check-config");
    const char * a4[] = { "--version", NULL };
    CHECK_EQ_INT(load(&c, a4, env0), SRV_CONFIG_EXIT_OK);
    CHECK_STR_CONTAINS(cfg_out, "infvsrd ");
    /* an invalid config under --check-config is still an error (exit 2) */
    const char * a5[] = { "--check-config", "--workers", "99", NULL };
    CHECK_EQ_INT(load(&c, a5, env0), SRV_CONFIG_EXIT_ERROR);
}

/* workers = auto | N | list (workerspec.h); `device` is the device of a numeric count. */
static void test_workers_plan(void) {
    struct srv_config c;
    const char * env0[] = { NULL };
    const char * a1[] = { "--workers", "devsim:0,devsim:1,cpu", "--device", "cuda:3", "--devsim-faults", "devsim:1@2000", NULL };
    CHECK_EQ_INT(load(&c, a1, env0), SRV_CONFIG_RUN);
    CHECK_EQ_INT(c.plan.n, 3);
    CHECK(strcmp(c.plan.device[0], "devsim:0") == 0 && strcmp(c.plan.device[2], "cpu") == 0);
    CHECK(strcmp(c.plan.name[1], "devsim:1") == 0);
    CHECK(c.plan.fault_at_op[1] == 2000 && c.plan.fault_at_op[0] == 0);
    const char * a2[] = { "--workers", "2", "--device", "devsim", NULL };
    CHECK_EQ_INT(load(&c, a2, env0), SRV_CONFIG_RUN);
    CHECK_EQ_INT(c.plan.n, 2);
    CHECK(strcmp(c.plan.device[1], "devsim") == 0 && strcmp(c.plan.name[1], "devsim/1") == 0);
    const char * a3[] = { "--workers", "auto", NULL };
    CHECK_EQ_INT(load(&c, a3, env0), SRV_CONFIG_RUN);
    CHECK(c.plan.is_auto);
    srv_workers_resolve_auto(&c.plan); /* no CUDA here (or GPUs): cuda:N each, else one cpu */
    CHECK(c.plan.n >= 1 && (strcmp(c.plan.device[0], "cpu") == 0 || strncmp(c.plan.device[0], "cuda:", 5) == 0));
}

static void test_instance_from_hostname(void) {
    struct srv_config c;
    const char * env1[] = { "HOSTNAME=InfVSRd-0.infvsrd-headless.default.svc", NULL };
    CHECK_EQ_INT(load(&c, NULL, env1), SRV_CONFIG_RUN);
    CHECK(strcmp(c.instance, "infvsrd-0") == 0);
    const char * env2[] = { "HOSTNAME=gpu_node_1", NULL };
    CHECK_EQ_INT(load(&c, NULL, env2), SRV_CONFIG_RUN);
    CHECK(strcmp(c.instance, "gpu-node-1") == 0);
}

/* config/infvsrd.conf shows every directive, commented out, with its default. */
static void test_conf_file_documents_every_directive(void) {
    char path[600];
    snprintf(path, sizeof(path), "%s/config/infvsrd.conf", INFVSR_SOURCE_DIR);
    FILE * f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f) return;
    char line[1024];
    size_t n = srv_config_n_directives();
    int * seen = calloc(n, sizeof(int));
    while (fgets(line, sizeof(line), f)) {
        if (line[0] != '#' || line[1] == ' ' || line[1] == '\n' || line[1] == '#') continue;
        char name[64], value[512];
        if (sscanf(line + 1, "%63[a-z_] = %511[^\n]", name, value) != 2) continue;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(srv_config_directive_name(i), name) != 0) continue;
            const char * def = srv_config_directive_default(i);
            /* instance/peer have computed or example values; "" is written as "" */
            bool ok = strcmp(name, "instance") == 0 || strcmp(name, "peer") == 0 ||
                      strcmp(value, def) == 0 || (def[0] == 0 && strcmp(value, "\"\"") == 0) ||
                      strcmp(name, "peer_url_template") == 0;
            CHECK_MSG(ok, "%s: documented default '%s' != compiled default '%s'", name, value, def);
            if (strcmp(name, "peer_url_template") != 0 || strcmp(value, "\"\"") == 0) seen[i]++;
        }
    }
    fclose(f);
    for (size_t i = 0; i < n; i++) CHECK_MSG(seen[i] > 0, "directive %s is not documented", srv_config_directive_name(i));
    free(seen);
    /* and the file itself loads */
    struct srv_config c;
    const char * a[] = { "--config", path, NULL };
    const char * env0[] = { NULL };
    CHECK_EQ_INT(load(&c, a, env0), SRV_CONFIG_RUN);
}

/* ---- error table ---------------------------------------------------------------------------- */

static void test_error_table_matches_errors_json(void) {
    char path[600];
    snprintf(path, sizeof(path), "%s/proto/errors.json", INFVSR_SOURCE_DIR);
    json_error_t je;
    json_t * root = json_load_file(path, 0, &je);
    CHECK_MSG(root != NULL, "%s: %s", path, je.text);
    if (!root) return;
    json_t * arr = json_object_get(root, "errors");
    CHECK(json_is_array(arr));
    CHECK_EQ_INT(json_array_size(arr), SRV_E_COUNT);
    for (size_t i = 0; i < json_array_size(arr) && i < SRV_E_COUNT; i++) {
        json_t * e = json_array_get(arr, i);
        const char * code = json_string_value(json_object_get(e, "code"));
        int status = (int)json_integer_value(json_object_get(e, "status"));
        CHECK_MSG(code && strcmp(code, srv_errors[i].code) == 0, "row %zu: %s vs %s", i, code, srv_errors[i].code);
        CHECK_EQ_INT(status, srv_errors[i].status);
    }
    json_decref(root);
    CHECK_EQ_INT(srv_error_status(SRV_E_MOVED), 307);
    CHECK_EQ_INT(srv_error_status(SRV_E_OFFSET_MISMATCH), 409);
    CHECK(strcmp(srv_error_code(SRV_E_UNPROCESSABLE_VIDEO), "unprocessable_video") == 0);
}

/* ---- ids, compare, base64 ------------------------------------------------------------------- */

static void test_job_id_format(void) {
    char ids[200][SRV_JOB_ID_MAX];
    for (int i = 0; i < 200; i++) {
        CHECK(srv_job_id_new("infvsrd-0", ids[i], sizeof(ids[i])));
        char inst[64] = "";
        CHECK(srv_job_id_parse(ids[i], inst, sizeof(inst)));
        CHECK(strcmp(inst, "infvsrd-0") == 0);
        const char * r = strchr(ids[i], '.') + 1;
        CHECK_EQ_INT(strlen(r), 22);
        for (const char * p = r; *p; p++)
            CHECK(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p) != NULL);
        for (int k = 0; k < i; k++) CHECK(strcmp(ids[i], ids[k]) != 0);
    }
    char small[16];
    CHECK(!srv_job_id_new("infvsrd-0", small, sizeof(small))); /* does not fit: refused */
    CHECK(srv_job_id_parse("a.AAAAAAAAAAAAAAAAAAAAAA", NULL, 0));
    CHECK(!srv_job_id_parse("A.AAAAAAAAAAAAAAAAAAAAAA", NULL, 0));     /* uppercase instance */
    CHECK(!srv_job_id_parse("a.AAAAAAAAAAAAAAAAAAAAA", NULL, 0));      /* 21 chars */
    CHECK(!srv_job_id_parse("a.AAAAAAAAAAAAAAAAAAAAAAA", NULL, 0));    /* 23 chars */
    CHECK(!srv_job_id_parse("a.AAAAAAAAAAAAAAAAAAAA+A", NULL, 0));     /* not base64url */
    CHECK(!srv_job_id_parse("AAAAAAAAAAAAAAAAAAAAAA", NULL, 0));       /* no instance */
    CHECK(!srv_job_id_parse(".AAAAAAAAAAAAAAAAAAAAAA", NULL, 0));
    CHECK(!srv_job_id_parse("-a.AAAAAAAAAAAAAAAAAAAAAA", NULL, 0));
    CHECK(!srv_job_id_parse("a.b.AAAAAAAAAAAAAAAAAAAA", NULL, 0));
}

static void test_constant_time_compare(void) {
    CHECK(srv_ct_equal("secret", 6, "secret", 6));
    CHECK(!srv_ct_equal("secreT", 6, "secret", 6));
    CHECK(!srv_ct_equal("Secret", 6, "secret", 6));
    CHECK(!srv_ct_equal("secre", 5, "secret", 6));   /* prefix */
    CHECK(!srv_ct_equal("secrets", 7, "secret", 6)); /* longer */
    CHECK(!srv_ct_equal("", 0, "secret", 6));
    CHECK(srv_ct_equal("", 0, "", 0));
    CHECK(!srv_ct_equal("x", 1, "", 0));
    /* a difference only in the length, with equal common bytes */
    char a[64], b[64];
    memset(a, 'k', sizeof(a));
    memset(b, 'k', sizeof(b));
    CHECK(srv_ct_equal(a, 64, b, 64));
    CHECK(!srv_ct_equal(a, 63, b, 64));
    b[63] = 'K';
    CHECK(!srv_ct_equal(a, 64, b, 64));
}

/* The per-client token bucket and its table (ratelimit.c), with a fake clock. */
static void test_rate_limit(void) {
    struct srv s;
    memset(&s, 0, sizeof(s));
    s.cfg.max_requests_per_s = 2;
    s.cfg.request_burst = 3;
    double wait = -1;
    for (int i = 0; i < 3; i++) CHECK(srv_rate_take(&s, "10.0.0.1", 100.0, &wait)); /* the burst */
    CHECK(!srv_rate_take(&s, "10.0.0.1", 100.0, &wait));
    CHECK(wait > 0.49 && wait < 0.51); /* one token at 2/s: 0.5 s */
    CHECK(srv_rate_take(&s, "10.0.0.2", 100.0, &wait)); /* another client has its own bucket */
    CHECK(!srv_rate_take(&s, "10.0.0.1", 100.25, &wait)); /* half a token */
    CHECK(srv_rate_take(&s, "10.0.0.1", 100.5, &wait)); /* refilled one */
    CHECK(!srv_rate_take(&s, "10.0.0.1", 100.5, &wait));
    CHECK(srv_rate_take(&s, "", 100.5, &wait)); /* unknown address: not limited */
    /* 100k clients at once: the table stops at its cap (32768 tracked), the rest pass
     * untracked; once their buckets have refilled they are forgotten and tracking resumes */
    char addr[48];
    int limited = 0;
    for (int i = 0; i < 100000; i++) {
        snprintf(addr, sizeof(addr), "fd00::%x", i);
        for (int k = 0; k < 4; k++) limited += !srv_rate_take(&s, addr, 200.0, &wait);
    }
    CHECK(s.rl_n <= 32768 && s.rl_n >= 30000);
    CHECK_EQ_INT(limited, (int)s.rl_n); /* each tracked client: 3 pass, the 4th is limited */
    CHECK(s.rate_untracked > 0);
    uint64_t untracked = s.rate_untracked;
    CHECK(srv_rate_take(&s, "10.9.9.9", 202.0, &wait)); /* 2 s later every bucket has refilled */
    CHECK(s.rate_untracked == untracked && s.rl_n == 1);
    for (int i = 0; i < 3; i++) srv_rate_take(&s, "10.9.9.9", 202.0, &wait);
    CHECK(!srv_rate_take(&s, "10.9.9.9", 202.0, &wait));
    s.cfg.max_requests_per_s = 0; /* off */
    CHECK(srv_rate_take(&s, "10.9.9.9", 202.0, &wait));
    srv_rate_free(&s);
}

static void test_base64(void) {
    char out[64];
    size_t n = 0;
    CHECK(srv_base64_decode("aW5mdnNyZC0wLkFBQQ==", 20, out, sizeof(out), &n));
    CHECK(n == 13 && strcmp(out, "infvsrd-0.AAA") == 0);
    CHECK(srv_base64_decode("aW5mdnNyZC0wLkFBQQ", 18, out, sizeof(out), &n) && n == 13); /* unpadded */
    CHECK(!srv_base64_decode("a$==", 4, out, sizeof(out), &n));
    CHECK(!srv_base64_decode("aW5mdnNyZC0wLkFBQQ==", 20, out, 5, &n)); /* does not fit */
}

/* ---- JobSpec parsing ---------------------------------------------------------------------------- */

static const char * const models[] = { "infvsr", "infvsr-tiny", NULL };

static bool parse(const char * json, struct srv_spec_result * r) {
    bool ok = srv_spec_parse(json, strlen(json), models, 1000000, r);
    if (!ok) CHECK(r->canonical == NULL);
    return ok;
}

static void test_spec_defaults_and_full(void) {
    struct srv_spec_result r;
    CHECK(parse("{}", &r));
    CHECK_EQ_INT(r.spec.scale, 4);
    CHECK_EQ_INT(r.spec.container, PL_CONTAINER_MATROSKA);
    CHECK_EQ_INT(r.spec.codec, PL_CODEC_H264);
    CHECK_EQ_INT(r.spec.crf, 15);
    CHECK(r.spec.copy_audio && r.spec.scene_detect);
    CHECK(r.spec.scene_threshold == 27.0);
    CHECK(strcmp(r.model, "infvsr") == 0);
    char * c0 = r.canonical;

    CHECK(parse("{\"model\":\"infvsr-tiny\",\"scale\":2,\"input\":{\"format\":\"mpegts\",\"expected_bytes\":1000,"
                "\"max_frames\":50},\"output\":{\"container\":\"mpegts\",\"codec\":\"h264\",\"crf\":20,"
                "\"pixel_format\":\"yuv444p\",\"copy_audio\":false},\"scenes\":{\"detect\":false,\"threshold\":12.5,"
                "\"reference_threshold\":3}}", &r));
    CHECK(strcmp(r.model, "infvsr-tiny") == 0);
    CHECK_EQ_INT(r.spec.scale, 2);
    CHECK(strcmp(r.spec.input_format, "mpegts") == 0);
    CHECK_EQ_INT(r.expected_bytes, 1000);
    CHECK_EQ_INT(r.spec.max_frames, 50);
    CHECK_EQ_INT(r.spec.container, PL_CONTAINER_MPEGTS);
    CHECK_EQ_INT(r.spec.crf, 20);
    CHECK_EQ_INT(r.spec.pix_fmt, PL_PIX_YUV444P);
    CHECK(!r.spec.copy_audio && !r.spec.scene_detect);
    CHECK(r.spec.scene_threshold == 12.5 && r.spec.reference_threshold == 3.0);
    free(r.canonical);

    /* y4m defaults to rawvideo */
    CHECK(parse("{\"output\":{\"container\":\"y4m\"}}", &r));
    CHECK_EQ_INT(r.spec.codec, PL_CODEC_RAWVIDEO);
    free(r.canonical);

    /* canonical form: key order, whitespace and spelled-out defaults do not matter */
    CHECK(parse(" { \"output\" : {\"crf\":15, \"container\":\"matroska\"}, \"scale\" : 4 } ", &r));
    CHECK_MSG(strcmp(r.canonical, c0) == 0, "%s vs %s", r.canonical, c0);
    free(r.canonical);
    CHECK(parse("{\"scale\":3}", &r));
    CHECK(strcmp(r.canonical, c0) != 0);
    free(r.canonical);
    free(c0);
}

static void expect_spec_error(const char * json, enum srv_error e, const char * needle) {
    struct srv_spec_result r;
    CHECK_MSG(!parse(json, &r), "accepted: %s", json);
    CHECK_MSG(r.err == e, "%s: error %s, expected %s (%s)", json, srv_error_code(r.err), srv_error_code(e), r.msg);
    CHECK_STR_CONTAINS(r.msg, needle);
}

static void test_spec_errors(void) {
    expect_spec_error("{\"bitrate\":5}", SRV_E_UNKNOWN_FIELD, "unknown field 'bitrate'");
    expect_spec_error("{\"output\":{\"bitrate\":5}}", SRV_E_UNKNOWN_FIELD, "unknown field 'output.bitrate'");
    expect_spec_error("{\"input\":{\"fmt\":\"x\"}}", SRV_E_UNKNOWN_FIELD, "unknown field 'input.fmt'");
    expect_spec_error("{\"scenes\":{\"on\":true}}", SRV_E_UNKNOWN_FIELD, "unknown field 'scenes.on'");
    expect_spec_error("{\"scale\":\"4\"}", SRV_E_BAD_REQUEST, "scale: expected an integer");
    expect_spec_error("{\"scale\":4.5}", SRV_E_BAD_REQUEST, "scale: expected an integer");
    expect_spec_error("{\"scale\":9}", SRV_E_BAD_REQUEST, "scale: 9 is outside [1, 8]");
    expect_spec_error("{\"scale\":0}", SRV_E_BAD_REQUEST, "scale: 0 is outside");
    expect_spec_error("{\"output\":{\"crf\":52}}", SRV_E_BAD_REQUEST, "output.crf: 52 is outside [0, 51]");
    expect_spec_error("{\"output\":{\"container\":\"avi\"}}", SRV_E_BAD_REQUEST, "output.container: 'avi' is not one of");
    expect_spec_error("{\"output\":{\"container\":3}}", SRV_E_BAD_REQUEST, "output.container: expected one of");
    expect_spec_error("{\"output\":{\"copy_audio\":\"yes\"}}", SRV_E_BAD_REQUEST, "output.copy_audio: expected true or false");
    expect_spec_error("{\"output\":{\"codec\":\"ffv1\",\"container\":\"mp4\"}}", SRV_E_BAD_REQUEST, "ffv1 needs");
    expect_spec_error("{\"output\":{\"codec\":\"rawvideo\"}}", SRV_E_BAD_REQUEST, "rawvideo");
    expect_spec_error("{\"output\":[]}", SRV_E_BAD_REQUEST, "output: expected an object");
    expect_spec_error("{\"scenes\":{\"threshold\":0}}", SRV_E_BAD_REQUEST, "scenes.threshold");
    expect_spec_error("{\"scenes\":{\"threshold\":\"x\"}}", SRV_E_BAD_REQUEST, "scenes.threshold");
    expect_spec_error("{\"input\":{\"format\":\"../etc\"}}", SRV_E_BAD_REQUEST, "input.format");
    expect_spec_error("{\"input\":{\"format\":\"\"}}", SRV_E_BAD_REQUEST, "input.format");
    expect_spec_error("{\"input\":{\"max_frames\":0}}", SRV_E_BAD_REQUEST, "input.max_frames");
    expect_spec_error("{\"input\":{\"expected_bytes\":2000000}}", SRV_E_PAYLOAD_TOO_LARGE, "max_upload_bytes");
    expect_spec_error("{\"model\":\"other\"}", SRV_E_BAD_REQUEST, "model: unknown model 'other'");
    expect_spec_error("{\"model\":1}", SRV_E_BAD_REQUEST, "model:");
    expect_spec_error("[]", SRV_E_BAD_REQUEST, "expected a JSON object");
    expect_spec_error("\"x\"", SRV_E_BAD_REQUEST, "invalid JSON"); /* jansson wants an array/object */
    expect_spec_error("{\"scale\":2", SRV_E_BAD_REQUEST, "invalid JSON at line 1");
    expect_spec_error("{\"scale\":2,\"scale\":3}", SRV_E_BAD_REQUEST, "invalid JSON");
    expect_spec_error("", SRV_E_BAD_REQUEST, "empty body");
    expect_spec_error("{} {}", SRV_E_BAD_REQUEST, "invalid JSON");
}

static void test_json_string_escaping(void) {
    struct srv_buf b = { 0 };
    srv_buf_json_str(&b, "a\"b\\c\n\x01");
    CHECK(b.p && strcmp(b.p, "\"a\\\"b\\\\c\\u000a\\u0001\"") == 0);
    json_error_t je;
    json_t * v = json_loads(b.p, JSON_DECODE_ANY, &je);
    CHECK(v && json_is_string(v) && strcmp(json_string_value(v), "a\"b\\c\n\x01") == 0);
    json_decref(v);
    free(b.p);
    /* invalid UTF-8 (a truncated sequence, a lone byte, a surrogate) -> U+FFFD; valid kept */
    struct srv_buf u = { 0 };
    srv_buf_json_str(&u, "\xc3\xa9|\xff|\xc3|\xed\xa0\x80|\xf0\x9f\x98\x80|\x7f");
    CHECK_MSG(u.p && strcmp(u.p, "\"\xc3\xa9|\\ufffd|\\ufffd|\\ufffd\\ufffd\\ufffd|\xf0\x9f\x98\x80|\\u007f\"") == 0, "%s", u.p);
    v = json_loads(u.p, JSON_DECODE_ANY, &je);
    CHECK_MSG(v && json_is_string(v), "not valid JSON: %s", u.p);
    json_decref(v);
    free(u.p);
}

static const struct test_case tests[] = {
    TEST(test_config_defaults),
    TEST(test_config_precedence),
    TEST(test_config_peers),
    TEST(test_config_errors),
    TEST(test_config_check_and_help),
    TEST(test_workers_plan),
    TEST(test_instance_from_hostname),
    TEST(test_conf_file_documents_every_directive),
    TEST(test_error_table_matches_errors_json),
    TEST(test_job_id_format),
    TEST(test_constant_time_compare),
    TEST(test_rate_limit),
    TEST(test_base64),
    TEST(test_spec_defaults_and_full),
    TEST(test_spec_errors),
    TEST(test_json_string_escaping),
    { 0 },
};

int main(int argc, char ** argv) { return test_main(argc, argv, tests); }
