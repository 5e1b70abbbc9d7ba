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


class DefaultsError(Exception):
    pass


def parse_conf_text(text):
    """{name: value} from config-file text: active lines win over commented defaults; the
    first commented `# name = value` of a name counts (later ones are usually examples)."""
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
            commented.setdefault(name, value)
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
