#!/usr/bin/python3
"""Checks deploy/systemd/.

Default mode: the unit's settings against the daemon (Type=simple: no sd_notify;
SIGTERM; TimeoutStopSec > drain_timeout_s; restart; hardening; the spool writable and
created by tmpfiles for the sysusers user; ExecStart with the config file; the port the
header comment promises = the listen default).
--verify: `systemd-analyze verify` on a copy of the unit whose ExecStart binary is the
built infvsrd (or /bin/true before it is built; verify insists the binary exists); any
message it prints is a failure. Exit 77 (skipped) when systemd-analyze is not installed.
Usage: check_systemd.py [--verify] REPO [--infvsrd PATH]
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import deploy_defaults  # noqa: E402

passed = failed = 0


def ok(cond, what, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what}{': ' + str(detail) if detail else ''}")
    return bool(cond)


def parse_unit(text):
    """{section: {key: [values]}} (systemd allows repeated keys)."""
    units, section = {}, None
    for line in text.splitlines():
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("[") and s.endswith("]"):
            section = units.setdefault(s[1:-1], {})
            continue
        key, _, value = s.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return units


def seconds(value):
    m = re.fullmatch(r"(\d+)\s*(s|sec|min|m)?", value)
    if not m:
        return None
    return int(m.group(1)) * (60 if m.group(2) in ("min", "m") else 1)


def verify(repo, infvsrd):
    tool = shutil.which("systemd-analyze")
    if not tool:
        print("SKIP: systemd-analyze is not installed (Debian package systemd)")
        return 77
    with open(os.path.join(repo, "deploy/systemd/infvsrd.service")) as f:
        text = f.read()
    binary = os.path.abspath(infvsrd) if infvsrd and os.path.isfile(infvsrd) else "/bin/true"
    with tempfile.TemporaryDirectory() as tmp:
        unit = os.path.join(tmp, "infvsrd.service")
        with open(unit, "w") as f:
            f.write(text.replace("/usr/local/bin/infvsrd", binary))
        p = subprocess.run([tool, "verify", unit], capture_output=True, text=True)
    msgs = (p.stdout + p.stderr).strip()
    print(f"systemd-analyze verify (ExecStart binary {binary}): rc={p.returncode}")
    ok(p.returncode == 0 and not msgs, "systemd-analyze verify reports nothing", msgs)
    # The verifier must be able to fail: an unknown key and a bad value are reported.
    with tempfile.TemporaryDirectory() as tmp:
        unit = os.path.join(tmp, "bad.service")
        with open(unit, "w") as f:
            f.write("[Service]\nType=simple\nExecStart=/bin/true\nKillSignl=SIGTERM\nKillMode=bogus\n")
        p = subprocess.run([tool, "verify", unit], capture_output=True, text=True)
    ok("KillSignl" in p.stderr and "bogus" in p.stderr, "self-test: verify reports a misspelt key and a bad value")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def check(repo, infvsrd):
    d = os.path.join(repo, "deploy/systemd")
    with open(os.path.join(d, "infvsrd.service")) as f:
        text = f.read()
    u = parse_unit(text)
    svc = u.get("Service", {})
    one = lambda k: (svc.get(k) or [""])[-1]  # noqa: E731
    try:
        defaults, _ = deploy_defaults.load(repo, infvsrd)
    except deploy_defaults.DefaultsError as e:
        ok(False, "daemon defaults", e)
        print(f"{passed} passed, {failed} failed")
        return 1
    drain = defaults["drain_timeout_s"]
    ok(one("Type") == "simple", "Type=simple (infvsrd does not speak sd_notify)", one("Type"))
    ok(one("KillSignal") == "SIGTERM", "KillSignal=SIGTERM")
    ts = seconds(one("TimeoutStopSec"))
    slack = deploy_defaults.DRAIN_EXIT_SLACK_S
    ok(ts is not None and ts > drain + slack,
       f"TimeoutStopSec {one('TimeoutStopSec')} > drain_timeout_s {drain} + exit deadline {slack}")
    ok(one("Restart") == "on-failure", "Restart=on-failure")
    for key, want in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                      ("ProtectHome", "yes")):
        ok(one(key) == want, f"{key}={want}")
    rw = " ".join(svc.get("ReadWritePaths", [])).split()
    ok(defaults["spool_dir"] in rw, f"ReadWritePaths has spool_dir {defaults['spool_dir']}", rw)
    ok(any(v.lstrip("-") for v in svc.get("EnvironmentFile", [])), "EnvironmentFile set")
    user = one("User")
    ok((user and user != "root") or one("DynamicUser") == "yes", f"runs as a dedicated user ({user})")
    exec_start = one("ExecStart").split()
    ok(exec_start and os.path.basename(exec_start[0]) == "infvsrd", "ExecStart runs infvsrd", exec_start)
    ok("--config" in exec_start and exec_start[exec_start.index("--config") + 1] == "/etc/infvsrd/infvsrd.conf",
       "ExecStart --config /etc/infvsrd/infvsrd.conf (the file config/infvsrd.conf installs as)")
    ok(f"Listens on {defaults['listen']} by default" in text,
       f"the unit's header states the listen default {defaults['listen']}")
    ok(u.get("Install", {}).get("WantedBy") == ["multi-user.target"], "WantedBy=multi-user.target")

    with open(os.path.join(d, "infvsrd.sysusers")) as f:
        sysusers = [ln.split() for ln in f if ln.strip() and not ln.startswith("#")]
    ok(any(x[0] == "u" and x[1] == user for x in sysusers), f"sysusers creates user {user}")
    with open(os.path.join(d, "infvsrd.tmpfiles")) as f:
        tmpfiles = [ln.split() for ln in f if ln.strip() and not ln.startswith("#")]
    ok(any(x[0] == "d" and x[1] == defaults["spool_dir"] and x[3] == user for x in tmpfiles),
       f"tmpfiles creates {defaults['spool_dir']} owned by {user}")
    env_file = os.path.join(d, "infvsrd.env")
    ok(os.path.isfile(env_file), "an example EnvironmentFile (infvsrd.env)")
    if infvsrd and os.path.isfile(env_file):
        with open(env_file) as f:
            names = re.findall(r"^#?(INFVSR_[A-Z_]+)=", f.read(), re.M)
        with tempfile.NamedTemporaryFile("w") as tok:
            tok.write("t\n")
            tok.flush()
            env = {n: {"INFVSR_TOKENS_FILE": tok.name, "INFVSR_INSTANCE": "gpu0"}.get(n, "x") for n in names}
            rc, _o, err = deploy_defaults.run_check_config(infvsrd, env_extra=env)
        ok(rc == 0, f"infvsrd accepts the variables infvsrd.env names {names}", err.strip())
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def main(argv):
    args = argv[1:]
    mode_verify = "--verify" in args
    if mode_verify:
        args.remove("--verify")
    infvsrd = None
    if "--infvsrd" in args:
        i = args.index("--infvsrd")
        infvsrd = args[i + 1]
        del args[i:i + 2]
        if not os.path.isfile(infvsrd):
            print(f"note: {infvsrd} is not built")
            infvsrd = None
    if len(args) != 1:
        print("usage: check_systemd.py [--verify] REPO [--infvsrd PATH]", file=sys.stderr)
        return 2
    return verify(args[0], infvsrd) if mode_verify else check(args[0], infvsrd)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
