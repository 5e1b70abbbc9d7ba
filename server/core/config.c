/* infvsrd configuration: the directive table, the three parsers (file, environment,
 * flags) and validation. See config.h for the precedence rules and config/infvsrd.conf
 * for the documentation of every directive. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SRV_VERSION "0.1.0"

extern char ** environ;

enum dtype { D_STR, D_INT, D_I64, D_ENUM, D_PEER };

struct directive {
    const char * name;
    enum dtype   type;
    size_t       off;        /* offset in struct srv_config                       */
    size_t       size;       /* D_STR: buffer size                                */
    const char * def;        /* default as text ("" for empty)                    */
    int64_t      min, max;   /* D_INT / D_I64                                     */
    const char * choices;    /* D_ENUM: '|'-separated                             */
    const char * help;
};

#define OFF(f) offsetof(struct srv_config, f)
#define STR(f, def, help)         { #f, D_STR, OFF(f), sizeof(((struct srv_config *)0)->f), def, 0, 0, NULL, help }
#define INT(f, def, lo, hi, help) { #f, D_INT, OFF(f), 0, def, lo, hi, NULL, help }
#define I64(f, def, lo, hi, help) { #f, D_I64, OFF(f), 0, def, lo, hi, NULL, help }
#define ENUM(f, def, ch, help)    { #f, D_ENUM, OFF(f), sizeof(((struct srv_config *)0)->f), def, 0, 0, ch, help }

static const struct directive directives[] = {
    STR(listen, "0.0.0.0:8080", "HTTP address:port (port 0 = pick a free one)"),
    STR(instance, "", "this daemon's name, prefix of its job ids (default: $HOSTNAME lowercased, else local)"),
    { "peer", D_PEER, 0, 0, "", 0, 0, NULL, "NAME=URL of another instance (repeatable)" },
    STR(peer_url_template, "", "URL of instance {instance}, e.g. http://{instance}.svc:8080"),
    ENUM(model, "infvsr", "infvsr|null", "infvsr (model_dir) or null (identity x scale)"),
    STR(model_dir, "/models", "directory with the model files"),
    STR(spool_dir, "/var/spool/infvsrd", "job inputs and outputs; created if missing"),
    STR(workers, "1", "auto (one per usable GPU, else one cpu), N workers on `device`, or a device list: cuda:0,cuda:1"),
    INT(threads, "0", 0, 1024, "CPU kernel threads per worker (0 = all cores)"),
    STR(device, "cpu", "backend of a numeric `workers`: cpu, cuda, cuda:N, auto (a usable GPU, else the CPU), devsim (tests)"),
    ENUM(precision, "auto", "auto|f32|bf16", "activation dtype: auto = the device's own (f32 on cpu, bf16 on cuda)"),
    INT(device_reserve_mb, "512", 0, 1 << 20, "device memory per worker that job placement leaves free (MiB)"),
    STR(devsim_faults, "", "tests only: DEVICE@OP,... the devsim worker fails with a device fault at its OPth op"),
    INT(max_active_jobs_per_worker, "2", 1, 64, "jobs a worker interleaves chunk by chunk"),
    INT(max_queued_jobs, "16", 0, 100000, "non-terminal jobs beyond the active ones"),
    INT(max_awaiting_jobs_per_tenant, "16", 1, 100000, "jobs one tenant may hold before their first input byte; more -> 429"),
    INT(max_jobs_per_client, "0", 0, 100000, "non-terminal jobs one client address may hold (0 = no limit); more -> 429"),
    INT(max_requests_per_s, "0", 0, 1000000, "requests per second one client address may make, probes exempt (0 = no limit); more -> 429"),
    INT(request_burst, "20", 1, 1000000, "requests a client may make at once before max_requests_per_s applies"),
    I64(max_json_bytes, "65536", 256, 16777216, "largest JSON request body"),
    I64(max_upload_bytes, "17179869184", 1, INT64_MAX / 2, "largest input of one job"),
    I64(input_lead_bytes, "33554432", 65536, INT64_MAX / 2, "how far an upload may run ahead of the decoder"),
    INT(frame_queue, "24", 1, 4096, "LR frames buffered per job"),
    INT(output_queue, "24", 1, 4096, "SR frames buffered per job"),
    I64(max_frame_pixels, "2073600", 1, INT64_C(1) << 40, "LR width*height limit"),
    INT(max_connections, "512", 1, 65536, "connection limit"),
    INT(max_connections_per_ip, "256", 0, 65536, "connections one client address may hold (0 = no limit); more -> 429"),
    STR(trusted_proxies, "", "addresses/CIDRs of proxies whose X-Forwarded-For names the client (comma-separated)"),
    I64(connection_memory, "262144", 8192, 16777216, "per-connection memory pool (caps headers)"),
    INT(idle_timeout_s, "60", 0, 86400, "inactivity timeout (0 = none)"),
    INT(header_timeout_s, "20", 0, 86400, "a request's whole header must arrive within this (0 = no limit)"),
    I64(min_upload_rate, "1024", 0, INT64_MAX / 2, "bytes/s over 30 s below which an upload is cut off (0 = off)"),
    INT(max_suspend_s, "300", 1, 86400, "longest a connection may stay suspended"),
    INT(input_wait_s, "60", 1, 86400, "GET output of a job without input waits this long for an upload, then 409"),
    INT(job_ttl_s, "3600", 1, 86400 * 365, "finished jobs are deleted this long after finishing"),
    INT(upload_expiry_s, "86400", 1, 86400 * 365, "unfinished uploads with no data for this long are deleted"),
    INT(input_wait_timeout_s, "300", 1, 86400 * 365, "jobs without an input byte this long after creation are deleted"),
    INT(drain_timeout_s, "30", 0, 86400, "SIGTERM: time running jobs get before they are cancelled"),
    INT(retry_after_s, "5", 1, 3600, "Retry-After on 503"),
    STR(tokens_file, "", "bearer tokens, one per line: TOKEN [TENANT [admin]] (empty = no auth; env INFVSR_TOKENS=a,b also works)"),
    ENUM(web_ui, "on", "on|off", "serve the web page at / (off: / and /ui/* answer 404)"),
    ENUM(log_format, "json", "json|text", "json lines or text"),
    ENUM(log_level, "info", "error|warn|info|debug", "log level"),
};
#define N_DIRECTIVES (sizeof(directives) / sizeof(directives[0]))

/* ---- small helpers ----------------------------------------------------------------- */

static void errf(char * err, size_t len, const char * fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char * err, size_t len, const char * fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (err && len) vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

static const struct directive * find_directive(const char * name) {
    for (size_t i = 0; i < N_DIRECTIVES; i++)
        if (strcmp(directives[i].name, name) == 0) return &directives[i];
    return NULL;
}

static bool choice_ok(const char * choices, const char * v) {
    size_t n = strlen(v);
    for (const char * p = choices; *p;) {
        const char * bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0) return true;
        p += len + (bar ? 1 : 0);
    }
    return false;
}

/* Strict integer: optional sign, digits only, no trailing garbage, in [min, max]. */
static bool parse_i64(const char * s, int64_t lo, int64_t hi, int64_t * out) {
    if (!*s || isspace((unsigned char)*s)) return false;
    errno = 0;
    char * end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool srv_instance_name_valid(const char * s) {
    size_t n = strlen(s);
    if (n < 1 || n > 63 || s[0] == '-') return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-')) return false;
    return true;
}

static bool peer_parse(const char * v, struct srv_peer * p) {
    const char * eq = strchr(v, '=');
    if (!eq || eq == v || (size_t)(eq - v) >= sizeof(p->name) || strlen(eq + 1) >= sizeof(p->url)) return false;
    memcpy(p->name, v, (size_t)(eq - v));
    p->name[eq - v] = 0;
    snprintf(p->url, sizeof(p->url), "%s", eq + 1);
    size_t ul = strlen(p->url);
    while (ul > 0 && p->url[ul - 1] == '/') p->url[--ul] = 0; /* we append paths */
    if (!srv_instance_name_valid(p->name)) return false;
    return strncmp(p->url, "http://", 7) == 0 || strncmp(p->url, "https://", 8) == 0;
}

/* Sets one directive from text. `where` names the source for the message
 * ("file.conf:12", "--max-queued-jobs", "INFVSR_MAX_QUEUED_JOBS"). `peer_reset` clears
 * the peer list before the first peer of a new source. */
static bool set_value(struct srv_config * c, const struct directive * d, const char * v,
                      const char * where, bool * peer_reset, char * err, size_t err_len) {
    char * base = (char *)c;
    int64_t x = 0;
    switch (d->type) {
    case D_STR:
        if (strlen(v) >= d->size) {
            errf(err, err_len, "%s: %s: value too long (max %zu bytes)", where, d->name, d->size - 1);
            return false;
        }
        snprintf(base + d->off, d->size, "%s", v);
        return true;
    case D_ENUM:
        if (!choice_ok(d->choices, v)) {
            errf(err, err_len, "%s: %s: expected one of %s, got '%s'", where, d->name, d->choices, v);
            return false;
        }
        snprintf(base + d->off, d->size, "%s", v);
        return true;
    case D_INT:
    case D_I64:
        if (!parse_i64(v, d->min, d->max, &x)) {
            errf(err, err_len, "%s: %s: expected an integer in [%lld, %lld], got '%s'", where, d->name,
                 (long long)d->min, (long long)d->max, v);
            return false;
        }
        if (d->type == D_INT) *(int *)(base + d->off) = (int)x;
        else *(int64_t *)(base + d->off) = x;
        return true;
    case D_PEER:
        if (peer_reset && *peer_reset) {
            c->n_peers = 0;
            *peer_reset = false;
        }
        if (c->n_peers >= SRV_MAX_PEERS) {
            errf(err, err_len, "%s: peer: more than %d peers", where, SRV_MAX_PEERS);
            return false;
        }
        if (!peer_parse(v, &c->peers[c->n_peers])) {
            errf(err, err_len, "%s: peer: expected NAME=http://host:port with NAME in [a-z0-9-], got '%s'", where, v);
            return false;
        }
        c->n_peers++;
        return true;
    }
    return false;
}

static void set_defaults(struct srv_config * c) {
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < N_DIRECTIVES; i++)
        if (directives[i].type != D_PEER) set_value(c, &directives[i], directives[i].def, "default", NULL, NULL, 0);
}

static char * trim(char * s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

/* ---- sources ------------------------------------------------------------------------ */

static bool load_file(struct srv_config * c, const char * path, char * err, size_t err_len) {
    FILE * f = fopen(path, "r");
    if (!f) {
        errf(err, err_len, "%s: cannot open config file: %s", path, strerror(errno));
        return false;
    }
    char line[4096], where[600];
    int lineno = 0;
    bool peer_reset = true, ok = true;
    while (ok && fgets(line, sizeof(line), f)) {
        lineno++;
        snprintf(where, sizeof(where), "%s:%d", path, lineno);
        if (!strchr(line, '\n') && !feof(f)) {
            errf(err, err_len, "%s: line too long", where);
            ok = false;
            break;
        }
        char * hash = strchr(line, '#');
        if (hash) *hash = 0;
        char * s = trim(line);
        if (!*s) continue;
        char * eq = strchr(s, '=');
        if (!eq) {
            errf(err, err_len, "%s: expected 'name = value', got '%s'", where, s);
            ok = false;
            break;
        }
        *eq = 0;
        char * name = trim(s), * value = trim(eq + 1);
        size_t vl = strlen(value); /* optional quotes: name = "value" */
        if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
            value[vl - 1] = 0;
            value++;
        }
        const struct directive * d = find_directive(name);
        if (!d) {
            errf(err, err_len, "%s: unknown directive '%s'", where, name);
            ok = false;
            break;
        }
        ok = set_value(c, d, value, where, &peer_reset, err, err_len);
    }
    fclose(f);
    return ok;
}

static const char * env_get(char ** envp, const char * key) {
    size_t kl = strlen(key);
    for (char ** e = envp; e && *e; e++)
        if (strncmp(*e, key, kl) == 0 && (*e)[kl] == '=') return *e + kl + 1;
    return NULL;
}

static void env_name(const char * name, char * out, size_t len) {
    size_t o = (size_t)snprintf(out, len, "INFVSR_");
    for (const char * p = name; *p && o + 1 < len; p++) out[o++] = (char)toupper((unsigned char)*p);
    out[o] = 0;
}

static bool load_env(struct srv_config * c, char ** envp, char * err, size_t err_len) {
    char key[96];
    for (size_t i = 0; i < N_DIRECTIVES; i++) {
        const struct directive * d = &directives[i];
        env_name(d->name, key, sizeof(key));
        const char * v = env_get(envp, key);
        if (!v) continue;
        if (d->type != D_PEER) {
            if (!set_value(c, d, v, key, NULL, err, err_len)) return false;
            continue;
        }
        bool reset = true; /* comma-separated list replaces the file's peers */
        char buf[8192];
        snprintf(buf, sizeof(buf), "%s", v);
        for (char * save = NULL, * tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
            if (!set_value(c, d, trim(tok), key, &reset, err, err_len)) return false;
    }
    return true;
}

static void usage(FILE * out) {
    fprintf(out,
            "usage: infvsrd [--config FILE] [--NAME VALUE ...] [--check-config] [--help] [--version]\n"
            "\n"
            "Streaming video super-resolution daemon. Every directive can be set in the config\n"
            "file (name = value), as a flag (--name value, '_' written '-') or as an environment\n"
            "variable INFVSR_NAME. Precedence: flag > environment > file > default.\n"
            "\n"
            "  --config FILE        config file (env INFVSR_CONFIG)\n"
            "  --spool DIR          same as --spool-dir DIR\n"
            "  --check-config       print the effective config and exit (0, or 2 on error)\n"
            "  --help, --version\n"
            "\ndirectives (default):\n");
    for (size_t i = 0; i < N_DIRECTIVES; i++) {
        char flag[64];
        snprintf(flag, sizeof(flag), "--%s", directives[i].name);
        for (char * p = flag; *p; p++)
            if (*p == '_') *p = '-';
        fprintf(out, "  %-30s %s (%s)\n", flag, directives[i].help,
                directives[i].def[0] ? directives[i].def : "none");
    }
}

/* Finds a directive from a flag name written with dashes (plus short aliases). */
static const struct directive * flag_directive(const char * flag, size_t len) {
    static const char * const aliases[][2] = { { "spool", "spool_dir" } };
    char name[64];
    if (len >= sizeof(name)) return NULL;
    for (size_t i = 0; i < len; i++) name[i] = flag[i] == '-' ? '_' : flag[i];
    name[len] = 0;
    for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
        if (aliases[i][1] && strcmp(name, aliases[i][0]) == 0) return find_directive(aliases[i][1]);
    return find_directive(name);
}

/* ---- derived values and validation ------------------------------------------------- */

static bool parse_listen(struct srv_config * c, char * err, size_t err_len) {
    const char * s = c->listen, * colon;
    char host[96];
    if (s[0] == '[') { /* [v6]:port */
        const char * rb = strchr(s, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof(host)) goto bad;
        memcpy(host, s + 1, (size_t)(rb - s - 1));
        host[rb - s - 1] = 0;
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof(host)) goto bad;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = 0;
    }
    int64_t port;
    if (!parse_i64(colon + 1, 0, 65535, &port)) goto bad;
    if (!host[0] || strcmp(host, "*") == 0) snprintf(host, sizeof(host), "0.0.0.0");
    snprintf(c->listen_host, sizeof(c->listen_host), "%s", host);
    c->listen_port = (int)port;
    return true;
bad:
    errf(err, err_len, "listen: expected HOST:PORT (e.g. 0.0.0.0:8080, [::]:8080, 127.0.0.1:0), got '%s'", s);
    return false;
}

static void default_instance(struct srv_config * c, char ** envp) {
    const char * h = env_get(envp, "HOSTNAME");
    char buf[256] = "";
    if (h && *h) snprintf(buf, sizeof(buf), "%s", h);
    else if (gethostname(buf, sizeof(buf) - 1) != 0) buf[0] = 0;
    /* "infvsrd-0.example.org" -> "infvsrd-0": the first label, lowercased */
    size_t o = 0;
    for (size_t i = 0; buf[i] && buf[i] != '.' && o < sizeof(c->instance) - 1 && o < 63; i++) {
        char ch = (char)tolower((unsigned char)buf[i]);
        c->instance[o++] = (islower((unsigned char)ch) || isdigit((unsigned char)ch)) ? ch : '-';
    }
    c->instance[o] = 0;
    if (!srv_instance_name_valid(c->instance)) snprintf(c->instance, sizeof(c->instance), "local");
}

static bool validate(struct srv_config * c, char ** envp, char * err, size_t err_len) {
    /* whether a device exists is only known when a worker opens it (a failed open makes
     * that worker unhealthy; none healthy: readyz 503) */
    if (!srv_device_name_valid(c->device)) {
        errf(err, err_len, "device: expected cpu, cuda, cuda:N, auto, devsim or devsim:N, got '%s'", c->device);
        return false;
    }
    if (!srv_workers_parse(c->workers, c->device, &c->plan, err, err_len)) return false;
    if (!srv_devsim_faults_parse(c->devsim_faults, &c->plan, err, err_len)) return false;
    if (!parse_listen(c, err, err_len)) return false;
    if (!c->instance[0]) default_instance(c, envp);
    if (!srv_instance_name_valid(c->instance)) {
        errf(err, err_len, "instance: expected 1-63 of [a-z0-9-] not starting with '-', got '%s'", c->instance);
        return false;
    }
    if (c->peer_url_template[0] && !strstr(c->peer_url_template, "{instance}")) {
        errf(err, err_len, "peer_url_template: must contain {instance}, got '%s'", c->peer_url_template);
        return false;
    }
    char why[160];
    if (!srv_cidr_list_parse(c->trusted_proxies, c->trusted, SRV_MAX_TRUSTED_PROXIES, &c->n_trusted, why, sizeof(why))) {
        errf(err, err_len, "trusted_proxies: %s", why);
        return false;
    }
    if (!c->spool_dir[0]) {
        errf(err, err_len, "spool_dir: must not be empty");
        return false;
    }
    if (strcmp(c->model, "infvsr") == 0 && !c->model_dir[0]) {
        errf(err, err_len, "model_dir: must not be empty when model = infvsr");
        return false;
    }
    if (c->input_lead_bytes > c->max_upload_bytes && c->max_upload_bytes >= 65536) {
        /* harmless but almost certainly a typo */
    }
    return true;
}

/* ---- entry points ------------------------------------------------------------------- */

enum srv_config_action srv_config_load(struct srv_config * c, int argc, char ** argv, char ** envp,
                                       FILE * out, char * err, size_t err_len) {
    if (!envp) envp = environ;
    set_defaults(c);
    bool check_only = false;

    /* Pass 1: actions and --config (the file must be read before env and flags). */
    const char * cfg = env_get(envp, "INFVSR_CONFIG");
    for (int i = 1; i < argc; i++) {
        const char * a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(out);
            return SRV_CONFIG_EXIT_OK;
        }
        if (strcmp(a, "--version") == 0) {
            fprintf(out, "infvsrd %s\n", SRV_VERSION);
            return SRV_CONFIG_EXIT_OK;
        }
        if (strcmp(a, "--check-config") == 0) check_only = true;
        else if (strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                errf(err, err_len, "--config: missing value");
                return SRV_CONFIG_EXIT_ERROR;
            }
            cfg = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) cfg = a + 9;
    }
    if (cfg && *cfg) {
        snprintf(c->config_file, sizeof(c->config_file), "%s", cfg);
        if (!load_file(c, cfg, err, err_len)) return SRV_CONFIG_EXIT_ERROR;
    }
    if (!load_env(c, envp, err, err_len)) return SRV_CONFIG_EXIT_ERROR;

    /* Pass 2: directive flags. */
    bool peer_reset = true;
    for (int i = 1; i < argc; i++) {
        const char * a = argv[i];
        if (strcmp(a, "--check-config") == 0) continue;
        if (strcmp(a, "--config") == 0) {
            i++;
            continue;
        }
        if (strncmp(a, "--config=", 9) == 0) continue;
        if (strncmp(a, "--", 2) != 0) {
            errf(err, err_len, "unexpected argument '%s' (see --help)", a);
            return SRV_CONFIG_EXIT_ERROR;
        }
        const char * name = a + 2, * eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        const struct directive * d = flag_directive(name, nl);
        if (!d) {
            errf(err, err_len, "unknown flag '%.*s' (see --help)", (int)(nl + 2), a);
            return SRV_CONFIG_EXIT_ERROR;
        }
        const char * v = eq ? eq + 1 : NULL;
        if (!v) {
            if (i + 1 >= argc) {
                errf(err, err_len, "%s: missing value", a);
                return SRV_CONFIG_EXIT_ERROR;
            }
            v = argv[++i];
        }
        char where[80];
        snprintf(where, sizeof(where), "--%.*s", (int)nl, name);
        if (!set_value(c, d, v, where, &peer_reset, err, err_len)) return SRV_CONFIG_EXIT_ERROR;
    }
    if (!validate(c, envp, err, err_len)) return SRV_CONFIG_EXIT_ERROR;
    if (check_only) {
        srv_config_print(c, out);
        return SRV_CONFIG_EXIT_OK;
    }
    return SRV_CONFIG_RUN;
}

void srv_config_print(const struct srv_config * c, FILE * out) {
    const char * base = (const char *)c;
    if (c->config_file[0]) fprintf(out, "# config file: %s\n", c->config_file);
    for (size_t i = 0; i < N_DIRECTIVES; i++) {
        const struct directive * d = &directives[i];
        switch (d->type) {
        case D_STR:
        case D_ENUM: {
            const char * v = base + d->off;
            fprintf(out, v[0] ? "%s = %s\n" : "%s = \"%s\"\n", d->name, v);
            break;
        }
        case D_INT: fprintf(out, "%s = %d\n", d->name, *(const int *)(base + d->off)); break;
        case D_I64: fprintf(out, "%s = %lld\n", d->name, (long long)*(const int64_t *)(base + d->off)); break;
        case D_PEER:
            for (int p = 0; p < c->n_peers; p++) fprintf(out, "peer = %s=%s\n", c->peers[p].name, c->peers[p].url);
            break;
        }
    }
}

bool srv_config_peer_url(const struct srv_config * c, const char * name, char * url, size_t url_len) {
    for (int i = 0; i < c->n_peers; i++)
        if (strcmp(c->peers[i].name, name) == 0) {
            snprintf(url, url_len, "%s", c->peers[i].url);
            return true;
        }
    const char * t = c->peer_url_template, * p = strstr(t, "{instance}");
    if (!t[0] || !p) return false;
    snprintf(url, url_len, "%.*s%s%s", (int)(p - t), t, name, p + strlen("{instance}"));
    size_t ul = strlen(url);
    while (ul > 0 && url[ul - 1] == '/') url[--ul] = 0;
    return true;
}

size_t srv_config_n_directives(void) { return N_DIRECTIVES; }
const char * srv_config_directive_name(size_t i) { return i < N_DIRECTIVES ? directives[i].name : NULL; }
const char * srv_config_directive_default(size_t i) { return i < N_DIRECTIVES ? directives[i].def : NULL; }
