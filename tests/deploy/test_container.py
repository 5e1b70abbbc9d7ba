#!/usr/bin/env python3
"""Builds deploy/docker/Dockerfile.cpu and runs the image as a user would (issue 21).

No registry is reachable, so the `debian:12-slim` base is made here: debootstrap
--variant=minbase bookworm from the machine's own Debian mirror, `docker import`ed under
that name (the tarball is cached in the build folder between runs). The test starts its own
dockerd (overlay2 storage, vfs where a container cannot run on overlay2; its own data root
in the build folder, its own socket, its own bridge, no iptables changes; the image build
uses the host network so apt reaches the mirror), and removes it with every container, image and volume at the end.

Checks, each through the published port:
  1. `docker build` (legacy builder, DOCKER_BUILDKIT=0) succeeds; image size printed.
  2. `docker run -d -p PORT:8080 --stop-timeout 60 -v MODEL:/models:ro -v SPOOL:/var/spool/infvsrd`
     with the tiny model (`infvsr make-tiny-model`): /readyz and /healthz 200; the README's
     streaming job (POST, output read while `curl -T -` uploads) gives all frames at 4x
     (ffprobe); PID 1 is infvsrd with every uid/gid 10001; the spool volume holds the job's
     files owned by 10001; the image's HEALTHCHECK turns `healthy`; `docker stop` ends
     with exit code 0 well within the stop timeout.
  3. compose.yaml with the cpu profile, the README's command (`docker-compose`, Debian's
     compose v1, when `docker compose` is not there): the same checks, then `stop` / `down -v`.
  4. Deliberate breaks (--breaks, on in ctest): the same pipeline on a Dockerfile with a
     runtime library removed and on one with a wrong ENTRYPOINT must FAIL; they reuse the
     build cache, so they cost little.
Numbers (build, ready, drain seconds, image bytes) go to stdout and WORK/numbers.json.

Exit 77 (ctest: skipped) with the reason when not root, when docker/dockerd/debootstrap are
missing, or when dockerd does not start."""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SKIP = 77
T0 = time.time()


def log(msg):
    print(f"[{time.time() - T0:7.1f}s] {msg}", flush=True)


class Failed(Exception):
    pass


def check(cond, what, detail=""):
    if not cond:
        raise Failed(f"{what}" + (f": {detail}" if detail else ""))
    log(f"ok   {what}")


def skip(reason):
    print(f"SKIP: {reason}", flush=True)
    sys.exit(SKIP)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(cmd, env=None, timeout=600, check_rc=True, log_to=None, cwd=None):
    """Runs cmd; returns CompletedProcess (stdout+stderr in .stdout)."""
    if log_to:
        with open(log_to, "ab") as f:
            f.write(("$ " + " ".join(cmd) + "\n").encode())
            p = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout, cwd=cwd)
        p.stdout = open(log_to, "rb").read().decode("utf-8", "replace")[-4000:]
    else:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)
        p.stdout = (p.stdout or "") + (p.stderr or "")
    if check_rc and p.returncode != 0:
        raise Failed(f"{' '.join(cmd[:4])} ... exit {p.returncode}\n{p.stdout[-3000:]}")
    return p


def unmount_under(path):
    """Mounts a killed dockerd leaves (netns, container rootfs) under path, deepest first."""
    mounts = [ln.split()[1] for ln in open("/proc/mounts", encoding="utf-8")]
    for m in sorted((m for m in mounts if m.startswith(path.rstrip("/") + "/")), key=len, reverse=True):
        run(["umount", "-l", m], check_rc=False)


def http_status(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None


# ---- dockerd ------------------------------------------------------------------------------

class Dockerd:
    """A private dockerd: data root under WORK, socket and exec root in a short /tmp dir."""

    def __init__(self, work, data_root=None, keep=False, driver="overlay2"):
        self.work = work
        self.driver = driver
        self.keep = keep
        self.data = data_root or os.path.join(work, "docker-data")
        self.exec_root = tempfile.mkdtemp(prefix="infvsr-dockerd.")
        self.sock = os.path.join(self.exec_root, "docker.sock")
        self.bridge = f"ivsr{os.getpid() % 100000}"
        self.proc = None
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}", DOCKER_BUILDKIT="0")
        self.env.pop("DOCKER_CONTEXT", None)
        self.log = os.path.join(work, "dockerd.log")
        self.state = os.path.join(work, "dockerd.state.json")

    def reap_stale(self):
        """A dockerd a killed earlier run left behind (ctest's timeout kills this script
        with SIGKILL; dockerd runs in its own session): the recorded pid, if it is still
        a dockerd on this data root, is stopped, and its bridge and exec root removed."""
        try:
            st = json.load(open(self.state))
        except (OSError, ValueError):
            return
        try:
            cmdline = open(f"/proc/{st['pid']}/cmdline", "rb").read().split(b"\0")
            if cmdline[0].endswith(b"dockerd") and self.data.encode() in cmdline:
                log(f"stopping dockerd {st['pid']} left by an earlier run")
                os.kill(st["pid"], signal.SIGTERM)
                for _ in range(120):
                    if not os.path.exists(f"/proc/{st['pid']}"):
                        break
                    time.sleep(0.5)
        except (OSError, KeyError):
            pass
        run(["ip", "link", "del", st.get("bridge", "")], check_rc=False)
        if st.get("exec_root"):
            unmount_under(st["exec_root"])
            shutil.rmtree(st["exec_root"], ignore_errors=True)
        unmount_under(self.data)
        os.remove(self.state)

    def _subnet(self):
        used = run(["ip", "-4", "route"], check_rc=False).stdout + run(["ip", "-4", "addr"], check_rc=False).stdout
        for i in range(os.getpid() % 200, os.getpid() % 200 + 50):
            net = f"10.231.{i % 250}"
            if net + "." not in used:
                return net
        raise Failed("no free 10.231.x.0/24 subnet for the test bridge")

    def start(self):
        self.reap_stale()
        if os.path.exists(self.data) and not self.keep:
            shutil.rmtree(self.data, ignore_errors=True)
        os.makedirs(self.data, exist_ok=True)
        run(["ip", "link", "del", self.bridge], check_rc=False)
        net = self._subnet()
        for c in (["ip", "link", "add", self.bridge, "type", "bridge"],
                  ["ip", "addr", "add", f"{net}.1/24", "dev", self.bridge],
                  ["ip", "link", "set", self.bridge, "up"]):
            p = run(c, check_rc=False)
            if p.returncode != 0:
                self.stop()
                skip(f"cannot create the test bridge ({' '.join(c)}): {p.stdout.strip()}")
        cmd = ["dockerd", "--data-root", self.data, "--exec-root", self.exec_root,
               "--pidfile", os.path.join(self.exec_root, "dockerd.pid"), "-H", f"unix://{self.sock}",
               "--storage-driver", self.driver, "--bridge", self.bridge,
               "--iptables=false", "--ip-masq=false", "--ip-forward=false",
               "--default-address-pool", f"base=10.232.{int(net.rsplit('.', 1)[1])}.0/24,size=28"]
        log("starting " + " ".join(cmd))
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        with open(self.state, "w") as f:
            json.dump({"pid": self.proc.pid, "exec_root": self.exec_root, "bridge": self.bridge}, f)
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            if run(["docker", "version"], env=self.env, check_rc=False, timeout=30).returncode == 0:
                got = run(["docker", "info", "-f", "{{.Driver}}"], env=self.env, check_rc=False).stdout.strip()
                if got != self.driver:
                    self.stop()
                    raise Failed(f"dockerd runs storage driver {got!r}, not {self.driver!r}")
                log(f"dockerd ready, storage driver {self.driver} ({time.time() - T0:.1f} s since start of test)")
                return
            time.sleep(0.5)
        tail = open(self.log, encoding="utf-8", errors="replace").read()[-2000:]
        self.stop()
        if self.driver != "vfs":
            raise Failed(f"dockerd with --storage-driver {self.driver} did not start:\n{tail}")
        skip(f"dockerd did not start within 90 s (log {self.log}):\n{tail}")

    def docker(self, *args, **kw):
        return run(["docker", *args], env=self.env, **kw)

    def stop(self):
        if self.keep and self.proc and self.proc.poll() is None:
            ids = self.docker("ps", "-aq", check_rc=False, timeout=60).stdout.split()
            if ids:
                self.docker("rm", "-f", "-v", *ids, check_rc=False, timeout=120)
        elif self.proc and self.proc.poll() is None:
            # Containers, images and volumes go first, so nothing is left mounted under the data root.
            ids = self.docker("ps", "-aq", check_rc=False, timeout=60).stdout.split()
            if ids:
                self.docker("rm", "-f", "-v", *ids, check_rc=False, timeout=120)
            self.docker("system", "prune", "-a", "-f", "--volumes", check_rc=False, timeout=300)
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.keep and self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)
        run(["ip", "link", "del", self.bridge], check_rc=False)
        unmount_under(self.exec_root)
        unmount_under(self.data)
        if not self.keep:
            shutil.rmtree(self.data, ignore_errors=True)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        if os.path.exists(self.state):
            os.remove(self.state)


# ---- base image ---------------------------------------------------------------------------

def host_mirror():
    """The Debian mirror this machine's apt uses (deb822 or one-line sources)."""
    for path in ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"]:
        try:
            text = open(path, encoding="utf-8").read()
        except OSError:
            continue
        m = re.search(r"^URIs:\s*(\S+)", text, re.M) or re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\b", text, re.M)
        if m and "security" not in m.group(1):
            return m.group(1)
    return "http://deb.debian.org/debian"


def base_tarball(cache_dir, work):
    """debootstrap --variant=minbase bookworm, trimmed like debian:12-slim; cached."""
    tarball = os.path.join(cache_dir, "debian-12-minbase.tar.gz")
    if os.path.exists(tarball):
        log(f"base: cached {tarball}")
        return tarball
    os.makedirs(cache_dir, exist_ok=True)
    root = os.path.join(work, "rootfs")
    shutil.rmtree(root, ignore_errors=True)
    mirror = host_mirror()
    t = time.time()
    run(["debootstrap", "--variant=minbase", "bookworm", root, mirror], timeout=900,
        log_to=os.path.join(work, "debootstrap.log"))
    # What the official slim image has: apt sources in deb822 form (with updates and
    # security), no docs/man/locales for packages installed later.
    src = "/etc/apt/sources.list.d/debian.sources"
    if os.path.exists(src):
        shutil.copy(src, os.path.join(root, "etc/apt/sources.list.d/debian.sources"))
        os.remove(os.path.join(root, "etc/apt/sources.list"))
    # The mirrors here may be dated snapshots: do not reject an expired Release file.
    with open(os.path.join(root, "etc/apt/apt.conf.d/99infvsr-test-mirror"), "w") as f:
        f.write('Acquire::Check-Valid-Until "false";\n')
    with open(os.path.join(root, "etc/dpkg/dpkg.cfg.d/docker"), "w") as f:
        f.write("path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\n"
                "path-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\npath-exclude /usr/share/info/*\n")
    for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for e in os.listdir(os.path.join(root, d)):
            p = os.path.join(root, d, e)
            if os.path.isfile(p):
                os.remove(p)
    tmp = tarball + ".tmp"
    subprocess.run(f"tar -C '{root}' --numeric-owner -c . | gzip -1 > '{tmp}'", shell=True, check=True)
    os.rename(tmp, tarball)
    shutil.rmtree(root, ignore_errors=True)
    log(f"base: debootstrap + tarball in {time.time() - t:.1f} s ({os.path.getsize(tarball) >> 20} MiB)")
    return tarball


# ---- the user-level checks ----------------------------------------------------------------

JOB_SCRIPT = r"""
set -e -o pipefail
id=$(curl -fsS -X POST localhost:PORT/v1/jobs -H 'Content-Type: application/json' \
       -d '{"output":{"container":"matroska"}}' | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p')
curl -fsS localhost:PORT/v1/jobs/$id/output -o out.mkv & reader=$!
ffmpeg -v error -i in.mp4 -c copy -f matroska - | curl -fsS -T - localhost:PORT/v1/jobs/$id/input
wait $reader; curl -fsS localhost:PORT/v1/jobs/$id
"""


def make_inputs(work, infvsr):
    model = os.path.join(work, "model")
    if not os.path.exists(os.path.join(model, ".done")):
        shutil.rmtree(model, ignore_errors=True)
        run([infvsr, "make-tiny-model", model], timeout=300)
        open(os.path.join(model, ".done"), "w").close()
    # The container user (10001) reads the bind mount: world-readable files and dirs.
    os.chmod(model, 0o755)
    for f in os.listdir(model):
        os.chmod(os.path.join(model, f), 0o644)
    clip = os.path.join(work, "in.mp4")
    if not os.path.exists(clip):
        run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=32x24:rate=24:duration=2",
             "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-movflags", "+faststart", clip + ".tmp.mp4"], timeout=120)
        os.rename(clip + ".tmp.mp4", clip)
    return model, clip


def probe_frames(path):
    p = run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
             "stream=width,height,nb_read_frames", "-of", "json", path], check_rc=False)
    try:
        s = json.loads(p.stdout)["streams"][0]
        return s["width"], s["height"], int(s["nb_read_frames"])
    except (ValueError, KeyError, IndexError):
        return None


def inspect(d, name, fmt):
    return d.docker("inspect", "-f", fmt, name, check_rc=False).stdout.strip()


def wait_ready(d, name, port, deadline_s):
    """Seconds until /readyz answers 200 through the published port; fails fast if the container exits."""
    t = time.time()
    while time.time() - t < deadline_s:
        if http_status(f"http://127.0.0.1:{port}/readyz") == 200:
            return time.time() - t
        if inspect(d, name, "{{.State.Running}}") == "false":
            logs = d.docker("logs", "--tail", "30", name, check_rc=False).stdout
            raise Failed(f"{name} exited (code {inspect(d, name, '{{.State.ExitCode}}')}) before /readyz was 200:\n{logs}")
        time.sleep(0.25)
    raise Failed(f"{name}: /readyz not 200 within {deadline_s} s")


def user_checks(d, name, port, work, label, frames_in, size_in):
    """Probes, the streaming job, uid, spool, HEALTHCHECK. `name` is the container."""
    check(http_status(f"http://127.0.0.1:{port}/healthz") == 200, f"{label}: /healthz 200 on published port {port}")
    check(http_status(f"http://127.0.0.1:{port}/readyz") == 200, f"{label}: /readyz 200 on published port {port}")
    # PID 1 of the container, seen from the host: infvsrd with every uid and gid 10001.
    pid = inspect(d, name, "{{.State.Pid}}")
    status = open(f"/proc/{pid}/status", encoding="utf-8").read()
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
    gids = re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()
    comm = re.search(r"^Name:\s+(.*)$", status, re.M).group(1)
    check(comm == "infvsrd" and set(uids) == {"10001"} and set(gids) == {"10001"},
          f"{label}: PID 1 is infvsrd running as uid/gid 10001", f"{comm} uid {uids} gid {gids}")
    # The README's streaming job: output read while the upload runs.
    jobdir = os.path.join(work, f"job-{label}")
    os.makedirs(jobdir, exist_ok=True)
    shutil.copy(os.path.join(work, "in.mp4"), os.path.join(jobdir, "in.mp4"))
    t = time.time()
    p = subprocess.run(["bash", "-c", JOB_SCRIPT.replace("PORT", str(port))], cwd=jobdir,
                       capture_output=True, text=True, timeout=300)
    check(p.returncode == 0, f"{label}: streaming job (curl upload, output read while uploading) "
                             f"in {time.time() - t:.1f} s", p.stdout[-1500:] + p.stderr[-1500:])
    check('"state":"succeeded"' in p.stdout.replace(" ", ""), f"{label}: job status succeeded", p.stdout[-800:])
    got = probe_frames(os.path.join(jobdir, "out.mkv"))
    want = (size_in[0] * 4, size_in[1] * 4, frames_in)
    check(got == want, f"{label}: out.mkv has all {frames_in} frames at 4x ({want[0]}x{want[1]})", str(got))
    # The spool volume: written by the non-root user.
    mounts = json.loads(inspect(d, name, "{{json .Mounts}}") or "[]")
    spool = [m for m in mounts if m.get("Destination") == "/var/spool/infvsrd"]
    check(spool and spool[0].get("Type") == "volume", f"{label}: /var/spool/infvsrd is a volume", str(mounts))
    owners = set()
    for r, _ds, fs in os.walk(spool[0]["Source"]):
        for f in fs:
            owners.add(os.stat(os.path.join(r, f)).st_uid)
    check(owners == {10001}, f"{label}: the spool volume holds the job's files, owned by 10001", str(owners))
    # HEALTHCHECK: the first probe runs one interval (30 s) after start.
    t = time.time()
    while time.time() - t < 150:
        h = inspect(d, name, "{{.State.Health.Status}}")
        if h in ("healthy", "unhealthy"):
            break
        time.sleep(1)
    check(h == "healthy", f"{label}: HEALTHCHECK turned healthy", h)


def stop_checks(d, name, label, stop_cmd, timeout_s, env=None):
    t = time.time()
    p = run(stop_cmd, env=env or d.env, check_rc=False, timeout=timeout_s + 60)
    drain = time.time() - t
    check(p.returncode == 0, f"{label}: {' '.join(stop_cmd[1:3])} returned", p.stdout)
    code = inspect(d, name, "{{.State.ExitCode}}")
    oom = inspect(d, name, "{{.State.OOMKilled}}")
    check(code == "0" and oom == "false", f"{label}: stopped with exit code 0 (SIGTERM drain, not SIGKILL)",
          f"exit {code} oom {oom}\n" + d.docker("logs", "--tail", "20", name, check_rc=False).stdout)
    check(drain < timeout_s - 5, f"{label}: drained in {drain:.1f} s, within the {timeout_s} s stop timeout")
    return drain


def docker_run_pipeline(d, args, dockerfile, work, tag, numbers, key=""):
    """Build `dockerfile` as `tag`, run it as the README does, check everything."""
    t = time.time()
    blog = os.path.join(work, f"build{key}.log")
    if os.path.exists(blog):
        os.remove(blog)
    p = run(["docker", "build", "--network", "host", "-f", dockerfile, "-t", tag, args.repo],
            env=d.env, check_rc=False, timeout=1500, log_to=blog)
    build_s = time.time() - t
    check(p.returncode == 0, f"docker build -f {os.path.relpath(dockerfile, args.repo)} ({build_s:.1f} s)",
          f"exit {p.returncode}, log {blog}:\n{p.stdout[-2500:]}")
    size = int(d.docker("image", "inspect", "-f", "{{.Size}}", tag).stdout.strip())
    log(f"image {tag}: {size} bytes ({size / 1e6:.0f} MB)")
    numbers.update({f"build_s{key}": round(build_s, 1), f"image_bytes{key}": size})

    model, clip = make_inputs(work, args.infvsr)
    frames_in = probe_frames(clip)
    name = "infvsrd" + key
    port = free_port()
    t = time.time()
    d.docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", "--stop-timeout", "60",
             "-v", f"{model}:/models:ro", "-v", f"infvsrd-spool{key}:/var/spool/infvsrd", tag)
    wait_ready(d, name, port, 300)
    ready = time.time() - t  # from `docker run` (container creation; vfs copies the image) to ready
    check(True, f"docker run: /readyz 200 {ready:.1f} s after `docker run`")
    numbers[f"ready_s{key}"] = round(ready, 1)
    user_checks(d, name, port, work, "docker run", frames_in[2], frames_in[:2])
    numbers[f"drain_s{key}"] = round(stop_checks(d, name, "docker run", ["docker", "stop", "-t", "60", name], 60), 1)
    d.docker("rm", "-v", name, check_rc=False)
    d.docker("volume", "rm", f"infvsrd-spool{key}", check_rc=False)


def compose_client(d):
    if run(["docker", "compose", "version"], env=d.env, check_rc=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def compose_pipeline(d, args, work, numbers):
    client = compose_client(d)
    if not client:
        raise Failed("no compose client: neither `docker compose` nor `docker-compose` (deploy/install-deps.sh installs docker-compose)")
    readme = open(os.path.join(args.repo, "README.md"), encoding="utf-8").read()
    line = next(ln for ln in readme.splitlines() if "compose.yaml --profile cpu up" in ln)
    # The README's line, run as written except for the client (Debian 12 packages compose v1,
    # `docker-compose`) and the host port (INFVSR_PORT; 8080 may be taken on a shared machine).
    argv = line.split()
    check(argv[0].startswith("INFVSR_MODELS=") and argv[1:3] == ["docker", "compose"],
          "README: `INFVSR_MODELS=... docker compose ... --profile cpu up -d --build`", line)
    model, clip = make_inputs(work, args.infvsr)
    frames_in = probe_frames(clip)
    port = free_port()
    # COMPOSE_HTTP_TIMEOUT: v1 gives up on a Docker API call after 60 s, and creating the
    # container on the vfs fallback (it copies the 500 MB image) takes longer than that on a
    # loaded 2-core machine.
    env = dict(d.env, INFVSR_MODELS=model, INFVSR_PORT=str(port), COMPOSE_HTTP_TIMEOUT="600")
    opts = argv[3:argv.index("up")]
    if client == ["docker-compose"]:
        # Compose v1 rejects the spec's top-level `name:`; the same file without that line,
        # with its name as -p and its own directory as the project directory (relative
        # paths and the build context resolve as before).
        src = os.path.join(args.repo, opts[opts.index("-f") + 1])
        text = open(src, encoding="utf-8").read()
        m = re.search(r"^name:\s*(\S+)\n", text, re.M)
        if m:
            text = text[:m.start()] + text[m.end():]
            # v1 also wants the GPU reservation's `count` as a YAML integer, and an
            # interpolated `${INFVSR_GPUS:-1}` is a string to it (even for the other profile):
            # the value v2 would coerce, written in.
            text = re.sub(r"(count:\s*)\$\{(\w+):-(\w+)\}",
                          lambda c: c.group(1) + os.environ.get(c.group(2), c.group(3)), text)
            v1 = os.path.join(work, "compose.v1.yaml")
            with open(v1, "w", encoding="utf-8") as f:
                f.write(text)
            opts[opts.index("-f") + 1] = v1
            opts = ["-p", m.group(1), "--project-directory", os.path.dirname(src)] + opts
    up = client + opts + argv[argv.index("up"):]
    compose = client + opts
    log(f"compose client: {' '.join(client)} ({run(client + ['version'], env=env, check_rc=False).stdout.splitlines()[0]})")
    t = time.time()
    try:
        p = run(up, env=env, check_rc=False, timeout=1200, cwd=args.repo,
                log_to=os.path.join(work, "compose-up.log"))
        check(p.returncode == 0, f"compose up ({' '.join(up[1:])}) in {time.time() - t:.1f} s", p.stdout[-2500:])
        cid = run(compose + ["ps", "-q", "infvsrd-cpu"], env=env, cwd=args.repo).stdout.split()
        check(len(cid) == 1, "compose: one infvsrd-cpu container", str(cid))
        wait_ready(d, cid[0], port, 300)
        ready = time.time() - t  # from `compose up` (a cached build, container creation) to ready
        check(True, f"compose: /readyz 200 {ready:.1f} s after `compose up`")
        numbers["compose_ready_s"] = round(ready, 1)
        user_checks(d, cid[0], port, work, "compose", frames_in[2], frames_in[:2])
        numbers["compose_drain_s"] = round(stop_checks(d, cid[0], "compose", compose + ["stop"], 60, env), 1)
    finally:
        run(compose + ["down", "-v"], env=env, check_rc=False, cwd=args.repo, timeout=300)


def mutate(src, dst, what):
    text = open(src, encoding="utf-8").read()
    if what == "library":
        # The runtime stage's apt list without libjansson4 (infvsrd links libjansson.so.4).
        runtime = text.index("AS runtime")
        head, tail = text[:runtime], text[runtime:]
        new = tail.replace(" libjansson4", "", 1)
        assert new != tail, "libjansson4 not in the runtime stage"
        text = head + new
    elif what == "entrypoint":
        new = re.sub(r'^ENTRYPOINT .*$', 'ENTRYPOINT ["/usr/local/bin/infvsr"]', text, flags=re.M)
        assert new != text
        text = new
    with open(dst, "w", encoding="utf-8") as f:
        f.write(text)
    return dst


def start_dockerd(args, work, numbers):
    """dockerd with debian:12-slim imported, on the first storage driver that runs a container.

    overlay2 first: vfs copies the whole file system for every layer and every container
    (the build's ~25 steps, each a full copy of a 0.5-1.5 GB tree), which made the image
    build take 7 minutes of a 2-core machine. vfs is the fallback where the kernel or the
    build folder's file system cannot host overlay mounts (the smoke run fails)."""
    drivers = ["overlay2", "vfs"] if args.storage_driver == "auto" else [args.storage_driver]
    t = time.time()
    tarball = base_tarball(args.cache or os.path.join(os.path.dirname(work), "container-cache"), work)
    for i, driver in enumerate(drivers):
        d = Dockerd(work, args.data_root or os.path.join(work, f"docker-data-{driver}"), args.keep, driver)
        try:
            d.start()
            # A kept data root (--keep) already has it: a second import would be a new image
            # and void the build cache.
            if d.docker("image", "inspect", "debian:12-slim", check_rc=False).returncode != 0:
                d.docker("import", "--change", 'CMD ["bash"]', tarball, "debian:12-slim", timeout=300)
            p = d.docker("run", "--rm", "--network", "none", "debian:12-slim", "true", check_rc=False, timeout=300)
            if p.returncode != 0:
                raise Failed(f"a container does not run on storage driver {driver}: {p.stdout.strip()[-800:]}")
        except Failed as e:
            d.stop()
            if i == len(drivers) - 1:
                raise
            log(f"storage driver {driver} unusable here, trying {drivers[i + 1]}: {str(e)[:600]}")
            continue
        numbers["storage_driver"] = driver
        numbers["base_s"] = round(time.time() - t, 1)
        check(True, f"debian:12-slim imported, a container runs on {driver} ({numbers['base_s']} s)")
        return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--cache", help="where the debootstrap tarball is kept (default WORK/../container-cache)")
    ap.add_argument("--infvsr", required=True, help="the infvsr CLI of this build (make-tiny-model)")
    ap.add_argument("--dockerfile", default="deploy/docker/Dockerfile.cpu")
    ap.add_argument("--no-compose", action="store_true")
    ap.add_argument("--data-root", help="dockerd data root (default WORK/docker-data-DRIVER)")
    ap.add_argument("--storage-driver", choices=["auto", "overlay2", "vfs"], default="auto",
                    help="dockerd storage driver; auto: overlay2, vfs where overlay2 cannot run a container")
    ap.add_argument("--keep", action="store_true",
                    help="development: keep the data root (images, build cache) instead of removing it")
    ap.add_argument("--breaks", action="store_true", help="also check that deliberate breaks fail")
    args = ap.parse_args()
    args.repo = os.path.abspath(args.repo)
    work = os.path.abspath(args.work)
    if os.geteuid() != 0:
        skip("needs root: it starts its own dockerd and runs debootstrap")
    os.makedirs(work, exist_ok=True)
    for tool in ("docker", "dockerd", "debootstrap", "ip", "curl", "ffmpeg", "ffprobe"):
        if not shutil.which(tool):
            skip(f"`{tool}` not found (deploy/install-deps.sh installs docker.io, debootstrap, iproute2)")
    # SIGTERM (a timeout, ^C from a wrapper) still runs the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(Failed("terminated (SIGTERM)")))
    numbers = {}
    d = None
    status = 0
    try:
        d = start_dockerd(args, work, numbers)
        dockerfile = os.path.join(args.repo, args.dockerfile)
        docker_run_pipeline(d, args, dockerfile, work, "infvsrd:cpu", numbers)
        if not args.no_compose:
            compose_pipeline(d, args, work, numbers)
        if args.breaks:
            # Each must fail for its own reason, not for an unrelated one (a network error).
            expect = {"library": "libjansson.so.4 => not found", "entrypoint": "exited (code"}
            for what in ("library", "entrypoint"):
                bad = mutate(dockerfile, os.path.join(work, f"Dockerfile.cpu.broken-{what}"), what)
                try:
                    docker_run_pipeline(d, args, bad, work, f"infvsrd:broken-{what}", {}, key=f"-{what}")
                except Failed as e:
                    check(expect[what] in str(e), f"deliberate break ({what}) fails the pipeline: "
                                                  f"{str(e).splitlines()[0][:160]}", str(e)[-1500:])
                    d.docker("rm", "-f", "-v", f"infvsrd-{what}", check_rc=False)
                else:
                    raise Failed(f"deliberate break ({what}) passed every check: the test cannot see it")
    except Failed as e:
        print(f"FAIL: {e}", flush=True)
        status = 1
    finally:
        t = time.time()
        if d:
            d.stop()
        log(f"dockerd stopped{'' if args.keep else ', data root with every image and volume removed'} "
            f"({time.time() - t:.1f} s)")
    numbers["total_s"] = round(time.time() - T0, 1)
    with open(os.path.join(work, "numbers.json"), "w") as f:
        json.dump(numbers, f, indent=1)
    print("numbers: " + json.dumps(numbers), flush=True)
    print("FAILED" if status else "PASSED", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
