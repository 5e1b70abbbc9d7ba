"""The daemon's defaults as the deployment checks see them.

Two sources, both read when both exist:
  - config/infvsrd.conf, the documented config file: `name = value` lines, and the
    commented-out `# name = value` lines that document a default;
  - `infvsrd --check-config` (the effective config of a daemon started with no file, flag
    or INFVSR_* variable), once the binary is built. The two must agree.
Also checks a config file or environment with the real parser (check_config_ok).
"""
import os
import re
import subprocess

LINE = re.compile(r"^\s*(#\s*)?([a-z][a-z0-9_]*)\s*=\s*(.*?)\s*$")
KEYS = ("listen", "model_dir", "spool_dir", "drain_timeout_s", "tokens_file", "instance",
        "peer_url_template", "workers", "max_queued_jobs")


# After drain_timeout_s the daemon cancels running jobs and exits at the latest this much
# later (server/core/loop.c, drain_step: hard deadline drain_timeout_s + 10 s). Grace
# periods must cover both.
DRAIN_EXIT_SLACK_S = 10


class DefaultsError(Exception):
    pass


def parse_conf_text(text):
    """{name: value} from config-file text: active lines win over commented defaults; of
    several commented `#name = value` lines the last counts (config/infvsrd.conf shows an
    example first, then the default)."""
    active, commented = {}, {}
    for raw in text.splitlines():
        m = LINE.match(raw)
        if not m:
            continue
        is_comment, name, value = m.group(1), m.group(2), m.group(3)
        # A trailing comment after the value is not part of it.
        value = re.sub(r"\s+#.*$", "", value).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if is_comment:
            commented[name] = value
        else:
            active[name] = value
    out = dict(commented)
    out.update(active)
    return out


def clean_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFVSR_")}
    env["HOSTNAME"] = "deploy-check"
    return env


def run_check_config(infvsrd, args=(), env_extra=None, cwd=None):
    env = clean_env()
    env.update(env_extra or {})
    try:
        p = subprocess.run([infvsrd, *args, "--check-config"], capture_output=True, text=True,
                           env=env, cwd=cwd, timeout=30)
    except OSError as e:
        raise DefaultsError(f"cannot run {infvsrd}: {e}")
    return p.returncode, p.stdout, p.stderr


def from_config_file(repo):
    path = os.path.join(repo, "config", "infvsrd.conf")
    if not os.path.isfile(path):
        raise DefaultsError(f"{path} does not exist (the Dockerfiles install it as /etc/infvsrd/infvsrd.conf)")
    with open(path, encoding="utf-8") as f:
        return parse_conf_text(f.read())


def from_binary(infvsrd):
    rc, out, err = run_check_config(infvsrd)
    if rc != 0:
        raise DefaultsError(f"{infvsrd} --check-config exited {rc}: {err.strip()}")
    values = parse_conf_text(out)
    if "listen" not in values:
        raise DefaultsError(f"{infvsrd} --check-config printed no 'listen' line:\n{out}")
    return values


def load(repo, infvsrd=None, log=print):
    """Returns (defaults dict with 'port' added, list of sources used)."""
    conf = from_config_file(repo)
    sources = ["config/infvsrd.conf"]
    values = dict(conf)
    if infvsrd:
        binv = from_binary(infvsrd)
        sources.append(f"{os.path.basename(infvsrd)} --check-config")
        for key in ("listen", "model_dir", "spool_dir", "drain_timeout_s"):
            if key not in conf:
                raise DefaultsError(f"config/infvsrd.conf does not document '{key}'")
            if conf[key] != binv.get(key):
                raise DefaultsError(f"'{key}': config/infvsrd.conf says {conf[key]!r}, "
                                    f"infvsrd --check-config says {binv.get(key)!r}")
        values.update(binv)
    for key in ("listen", "model_dir", "spool_dir", "drain_timeout_s"):
        if key not in values:
            raise DefaultsError(f"no default for '{key}' in {', '.join(sources)}")
    host, _, port = values["listen"].rpartition(":")
    if not host or not port.isdigit():
        raise DefaultsError(f"listen default {values['listen']!r} is not HOST:PORT")
    values["port"] = int(port)
    values["drain_timeout_s"] = int(values["drain_timeout_s"])
    log(f"defaults from {' and '.join(sources)}: listen={values['listen']} "
        f"model_dir={values['model_dir']} spool_dir={values['spool_dir']} "
        f"drain_timeout_s={values['drain_timeout_s']}")
    return values, sources


def health_paths(repo):
    """/healthz and /readyz must be routes of the API description (proto/openapi.yaml)."""
    path = os.path.join(repo, "proto", "openapi.yaml")
    if not os.path.isfile(path):
        raise DefaultsError(f"{path} does not exist")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    found = {p for p in ("/healthz", "/readyz", "/metrics") if re.search(rf"^\s*{re.escape(p)}:\s*$", text, re.M)}
    missing = {"/healthz", "/readyz", "/metrics"} - found
    if missing:
        raise DefaultsError(f"proto/openapi.yaml has no path(s) {', '.join(sorted(missing))}")
    return {"liveness": "/healthz", "readiness": "/readyz", "metrics": "/metrics"}


def main(argv):
    """deploy.defaults: config/infvsrd.conf and `infvsrd --check-config` agree on every
    directive the file documents, and the probe paths are API routes.
    Usage: deploy_defaults.py REPO [--infvsrd PATH]"""
    if len(argv) < 2:
        print("usage: deploy_defaults.py REPO [--infvsrd PATH]")
        return 2
    repo = argv[1]
    infvsrd = argv[argv.index("--infvsrd") + 1] if "--infvsrd" in argv else None
    if infvsrd and not os.path.isfile(infvsrd):
        print(f"note: {infvsrd} is not built: only config/infvsrd.conf is read")
        infvsrd = None
    passed = failed = 0
    try:
        values, sources = load(repo, infvsrd)
        passed += 1
        conf = from_config_file(repo)
        if infvsrd:
            binv = from_binary(infvsrd)
            # instance defaults to $HOSTNAME: host-dependent, not compared.
            for name in sorted(set(conf) - {"instance", "peer"}):
                same = conf[name] == binv.get(name)
                print(f"{'ok  ' if same else 'FAIL'} {name}: file {conf[name]!r}, binary {binv.get(name)!r}")
                passed, failed = passed + same, failed + (not same)
            undocumented = sorted(set(binv) - set(conf))
            print(f"{'ok  ' if not undocumented else 'FAIL'} every directive of --check-config is in "
                  f"config/infvsrd.conf{': missing ' + ', '.join(undocumented) if undocumented else ''}")
            passed, failed = passed + (not undocumented), failed + bool(undocumented)
        print(f"ok   probe/metrics paths are API routes: {health_paths(repo)}")
        passed += 1
    except DefaultsError as e:
        print(f"FAIL {e}")
        failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    import sys
    sys.exit(main(sys.argv))
