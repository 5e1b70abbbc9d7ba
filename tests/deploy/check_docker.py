#!/usr/bin/python3
"""Checks deploy/docker/: both Dockerfiles and the compose file.

Parsing is done by real parsers in node (parse_docker.cjs: dockerfile-ast + its linter,
the compose-spec JSON schema); this file checks what they parsed:
  - every FROM is pinned (explicit tag, not latest); the CUDA image builds on a CUDA
    "devel" image and runs on the "runtime" image of the same CUDA version and OS (the
    runtime flavour carries cuBLAS/cuBLASLt, "base" does not); the CPU image is Debian 12;
  - every COPY/ADD source exists in the repository (the build context) and is not
    excluded by the Dockerfile's own .dockerignore, which does exclude build directories;
    every COPY --from names an earlier stage;
  - the build stage installs the build packages of deploy/install-deps.sh and runs cmake
    with -DINFVSR_BUILD_TESTS=OFF and the right -DINFVSR_CUDA, and npm (the web page);
  - the runtime stage runs as a non-root USER, installs no -dev package, installs the
    runtime package of every shared library infvsrd links (read from the built binary with
    readelf/ldd/dpkg when it exists), has HEALTHCHECK/EXPOSE/VOLUME on the daemon's
    defaults, ENTRYPOINT infvsrd in exec form (PID 1) and STOPSIGNAL SIGTERM;
  - compose: GPU reservation on the CUDA service only, profiles, build context = the
    repository, volumes on model_dir/spool_dir, the container port, healthcheck URL and a
    stop grace period longer than drain_timeout_s; INFVSR_* variables the daemon accepts.
Usage: check_docker.py REPO NPM_DIR WORK_DIR [--infvsrd PATH]
"""
import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys

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
        print(f"FAIL {what}{': ' + detail if detail else ''}")
    return cond


def substitute(text, args):
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), text)


def instructions(stage, keyword):
    return [i for i in stage["instructions"] if i["keyword"] == keyword]


def run_text(stage):
    return " ".join(" ".join(i["args"]) for i in instructions(stage, "RUN"))


def apt_packages(stage):
    """Package names of `apt-get install` in the stage's RUN lines."""
    pkgs = []
    for i in instructions(stage, "RUN"):
        words = i["args"]
        for k, w in enumerate(words):
            if w == "install" and k > 0 and words[k - 1] in ("apt-get", "apt"):
                for x in words[k + 1:]:
                    if x in ("&&", "||", ";", "\\"):
                        break
                    if not x.startswith("-"):
                        pkgs.append(x)
    return pkgs


def install_deps_packages(repo):
    """The PKGS=( ... ) list of deploy/install-deps.sh."""
    with open(os.path.join(repo, "deploy", "install-deps.sh"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"^PKGS=\((.*?)^\)", text, re.S | re.M)
    if not m:
        raise RuntimeError("deploy/install-deps.sh: no PKGS=( ... ) list")
    words = []
    for line in m.group(1).splitlines():
        words += line.split("#", 1)[0].split()
    return words


def dockerignore_included(patterns, path):
    """Docker's .dockerignore rule: the last pattern that matches the path or one of its
    parent directories decides; '!' re-includes."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    included = True
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.strip("/")
        for pre in prefixes:
            if fnmatch.fnmatchcase(pre, p) and ("/" in p or "/" not in pre or p.count("/") == pre.count("/")):
                included = neg
                break
    return included


def read_dockerignore(dockerfile):
    path = dockerfile + ".dockerignore"
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.strip().startswith("#")]


SANITIZER_LIB = re.compile(r"^lib(asan|ubsan|tsan|lsan|hwasan)\.so")
CUDA_LIB = re.compile(r"^lib(cuda|cudart|cublas|cublasLt|cudnn|nvrtc|nvJitLink|cufft|curand|cusparse|cusolver)\.so")


def family(pkg):
    """libavformat59 / libavformat60 -> libavformat; libuv1t64 -> libuv."""
    p = re.sub(r"t64$", "", pkg)
    p = re.sub(r"-pthread$|-openmp$|-serial$", "", p)
    return re.sub(r"[0-9.]+$", "", p)


def linked_runtime_packages(infvsrd):
    """Debian packages of the shared libraries the binary links directly (DT_NEEDED)."""
    needed = re.findall(r"Shared library: \[(.+?)\]",
                        subprocess.run(["readelf", "-d", infvsrd], capture_output=True, text=True).stdout)
    ldd = subprocess.run(["ldd", infvsrd], capture_output=True, text=True).stdout
    where = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
    pkgs = {}
    for lib in needed:
        path = where.get(lib)
        if not path:
            pkgs[lib] = None
            continue
        cands = [path, os.path.realpath(path)]
        cands += [c.replace("/lib/", "/usr/lib/", 1) for c in cands if c.startswith("/lib/")]
        owner = None
        for c in cands:
            p = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True)
            if p.returncode == 0:
                owner = p.stdout.split(":")[0].strip()
                break
        pkgs[lib] = owner
    return pkgs


def check_dockerfile(repo, rel, parsed, defaults, cuda, linked):
    name = os.path.basename(rel)
    df = parsed["dockerfiles"][rel]
    args = dict(df["global_args"])
    stages = df["stages"]
    ok(len(stages) >= 2, f"{name}: multi-stage ({len(stages)} stages)")
    names = [s["name"] for s in stages]
    ok("build" in names and names[-1] == "runtime", f"{name}: stages 'build' ... 'runtime'", str(names))
    build = stages[names.index("build")] if "build" in names else stages[0]
    runtime = stages[-1]

    images = [substitute(s["from"], args) for s in stages]
    for s, img in zip(stages, images):
        tag = img.rsplit(":", 1)[1] if ":" in img.rsplit("/", 1)[-1] else ""
        ok(tag and tag != "latest" and "$" not in img, f"{name}: FROM {img} is pinned")
    if cuda:
        # the "cudnn" variants add cuDNN 9 (the conv3d path); build and run on the same one
        mb = re.fullmatch(r"nvidia/cuda:([0-9.]+)-(cudnn-)?devel-(ubuntu[0-9.]+)", images[names.index("build")])
        mr = re.fullmatch(r"nvidia/cuda:([0-9.]+)-(cudnn-)?runtime-(ubuntu[0-9.]+)", images[-1])
        ok(mb and mr and mb.groups() == mr.groups(),
           f"{name}: build on nvidia/cuda devel, run on the runtime image of the same CUDA/OS/cuDNN",
           f"{images}")
        with open(os.path.join(repo, rel), encoding="utf-8") as f:
            builds_cudnn = "-DINFVSR_CUDNN=ON" in f.read()
        if builds_cudnn:
            ok(mr and mr.group(2), f"{name}: built with cuDNN (dlopen()ed at run time), runs on a cudnn image",
               images[-1])
    else:
        ok(all(re.fullmatch(r"debian:12[.0-9]*(-slim)?", i) for i in images),
           f"{name}: Debian 12 images", str(images))

    # COPY / ADD sources
    ignore = read_dockerignore(os.path.join(repo, rel))
    ok(ignore is not None, f"{name}: has its own {name}.dockerignore")
    if ignore is not None:
        ok(not dockerignore_included(ignore, "build-x/CMakeCache.txt")
           and not dockerignore_included(ignore, ".git/HEAD"),
           f"{name}.dockerignore keeps build dirs and .git out of the context")
    earlier = set()
    for s in stages:
        for ins in s["instructions"]:
            if ins["keyword"] not in ("COPY", "ADD"):
                continue
            srcs = ins["args"][:-1]
            if "from" in ins["flags"]:
                ok(ins["flags"]["from"] in earlier,
                   f"{name}:{ins['line']}: COPY --from={ins['flags']['from']} names an earlier stage")
                continue
            for src in srcs:
                path = os.path.normpath(os.path.join(repo, src))
                exists = not os.path.isabs(src) and path.startswith(os.path.realpath(repo)) and os.path.exists(path)
                ok(exists, f"{name}:{ins['line']}: {ins['keyword']} source '{src}' exists in the repository")
                if exists and ignore is not None:
                    probe = src.rstrip("/")
                    if os.path.isdir(path):
                        inner = next((os.path.join(r, f) for r, _d, fs in os.walk(path) for f in fs), None)
                        if inner:
                            probe = os.path.relpath(inner, repo)
                    ok(dockerignore_included(ignore, probe),
                       f"{name}:{ins['line']}: '{probe}' is not excluded by {name}.dockerignore")
        if s["name"]:
            earlier.add(s["name"])

    # build stage: every top-level directory the root CMakeLists.txt names ("base/src/*.c",
    # add_subdirectory(server)) is copied in (base/ was missing once: cmake failed in the image)
    cml = open(os.path.join(repo, "CMakeLists.txt"), encoding="utf-8").read()
    used = sorted(d for d in os.listdir(repo)
                  if os.path.isdir(os.path.join(repo, d)) and not d.startswith((".", "build"))
                  and d != "tests"  # only with INFVSR_BUILD_TESTS, OFF in the images
                  and re.search(r"(^|[\s(/{}])" + re.escape(d) + r"(/|\))", cml, re.M))
    copied = {a.rstrip("/").split("/")[0] for i in instructions(build, "COPY") if "from" not in i["flags"]
              for a in i["args"][:-1]}
    ok(not [d for d in used if d not in copied],
       f"{name}: the build stage copies every directory CMakeLists.txt uses ({', '.join(used)})",
       f"missing {[d for d in used if d not in copied]}")
    text = run_text(build)
    ok("-DINFVSR_BUILD_TESTS=OFF" in text, f"{name}: cmake -DINFVSR_BUILD_TESTS=OFF")
    ok(f"-DINFVSR_CUDA={'ON' if cuda else 'OFF'}" in text, f"{name}: cmake -DINFVSR_CUDA={'ON' if cuda else 'OFF'}")
    ok(re.search(r"--target\s+[^&]*\binfvsrd\b", text) is not None, f"{name}: builds the infvsrd target")
    want = [p for p in install_deps_packages(repo)
            if p.endswith("-dev") or p in ("build-essential", "cmake", "pkg-config", "ninja-build")]
    have = set(apt_packages(build))
    missing = [p for p in want if p not in have and p != "valgrind"]
    # without npm the build embeds a stub instead of tus-js-client and the web page cannot upload
    ok("npm" in have, f"{name}: build stage installs npm (the web page's tus-js-client, server/web/fetch_tus.sh)", str(sorted(have)))
    ok(not missing, f"{name}: build stage installs the build packages of install-deps.sh ({len(want)})",
       f"missing {missing}")

    # runtime stage
    rt_pkgs = apt_packages(runtime)
    ok(not [p for p in rt_pkgs if p.endswith("-dev")], f"{name}: runtime installs no -dev package", str(rt_pkgs))
    if linked:
        fams = {family(p) for p in rt_pkgs}
        base = {"libc6", "libgcc-s1", "libstdc++6"}
        # The binary checked is this build's: sanitizer runtimes (ASan CI run) are not part
        # of an image; CUDA libraries come with the nvidia/cuda runtime image and are not
        # linked at all by the CPU image's -DINFVSR_CUDA=OFF build.
        cuda_libs = sorted(lib for lib in linked if CUDA_LIB.match(lib))
        linked = {lib: pkg for lib, pkg in linked.items()
                  if not SANITIZER_LIB.match(lib) and not CUDA_LIB.match(lib)}
        if cuda_libs and cuda:
            print(f"note: {', '.join(cuda_libs)} come with the nvidia/cuda runtime image")
        lacking = sorted(f"{lib} ({pkg})" for lib, pkg in linked.items()
                         if pkg not in base and (pkg is None or family(pkg) not in fams))
        ok(not lacking, f"{name}: runtime installs the package of each library infvsrd links "
                        f"({len(linked)} DT_NEEDED)", f"missing {lacking}")
        if not cuda:
            exact = sorted(f"{lib} ({pkg})" for lib, pkg in linked.items()
                           if pkg not in base and pkg not in rt_pkgs)
            ok(not exact, f"{name}: Debian 12 runtime package names match this machine's dpkg", f"{exact}")
    users = instructions(runtime, "USER")
    user = users[-1]["args"][0] if users else "root"
    ok(user.split(":")[0] not in ("root", "0"), f"{name}: runtime runs as non-root USER {user}")

    port = defaults["port"]
    expose = [a.split("/")[0] for i in instructions(runtime, "EXPOSE") for a in i["args"]]
    ok(str(port) in expose, f"{name}: EXPOSE {port} (listen default {defaults['listen']})", str(expose))
    hc = instructions(runtime, "HEALTHCHECK")
    hc_cmd = ""
    if hc:
        words = hc[-1]["args"]
        rest = " ".join(words[words.index("CMD") + 1:]) if "CMD" in words else ""
        try:
            hc_cmd = " ".join(json.loads(rest)) if rest.startswith("[") else rest
        except json.JSONDecodeError:
            hc_cmd = rest
    url = f"http://127.0.0.1:{port}/healthz"
    ok(url in hc_cmd, f"{name}: HEALTHCHECK requests {url}", hc_cmd or "no HEALTHCHECK")
    tool = hc_cmd.split()[0] if hc_cmd else ""
    ok(tool in rt_pkgs, f"{name}: the HEALTHCHECK tool '{tool}' is installed in the runtime stage")
    vols = []
    for i in instructions(runtime, "VOLUME"):
        raw = " ".join(i["args"])
        vols += json.loads(raw) if raw.startswith("[") else i["args"]
    for key in ("model_dir", "spool_dir"):
        ok(defaults[key] in vols, f"{name}: VOLUME {defaults[key]} ({key} default)", str(vols))
    ep = instructions(runtime, "ENTRYPOINT")
    ok(ep and ep[-1].get("json") and os.path.basename(ep[-1]["json"][0]) == "infvsrd",
       f"{name}: ENTRYPOINT runs infvsrd in exec form (PID 1, gets SIGTERM)")
    ss = instructions(runtime, "STOPSIGNAL")
    ok(ss and ss[-1]["args"][0] == "SIGTERM", f"{name}: STOPSIGNAL SIGTERM")
    copies = [i for i in instructions(runtime, "COPY") if i["flags"].get("from") == "build"]
    ok(any("/build/infvsrd" in a for i in copies for a in i["args"]), f"{name}: copies the built infvsrd")
    return hc_cmd


def check_compose(repo, rel, parsed, defaults, infvsrd):
    name = os.path.basename(rel)
    c = parsed["compose"][rel]
    services = c.get("services", {})
    port = defaults["port"]
    gpu = [n for n, s in services.items() if "Dockerfile" == os.path.basename((s.get("build") or {}).get("dockerfile", ""))]
    cpu = [n for n, s in services.items() if (s.get("build") or {}).get("dockerfile", "").endswith("Dockerfile.cpu")]
    ok(len(gpu) == 1 and len(cpu) == 1, f"{name}: one CUDA and one CPU service", f"{list(services)}")
    for n, s in services.items():
        b = s.get("build") or {}
        ctx = os.path.normpath(os.path.join(os.path.dirname(os.path.join(repo, rel)), b.get("context", ".")))
        ok(os.path.samefile(ctx, repo), f"{name}: {n} builds with the repository as context")
        ok(os.path.isfile(os.path.join(ctx, b.get("dockerfile", "Dockerfile"))), f"{name}: {n} dockerfile exists")
        ok(bool(s.get("profiles")), f"{name}: {n} is in a profile ({s.get('profiles')})")
        devices = (((s.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices") or []
        has_gpu = any("gpu" in (d.get("capabilities") or []) and d.get("driver") == "nvidia" for d in devices)
        ok(has_gpu == (n in gpu), f"{name}: {n} {'reserves' if n in gpu else 'does not reserve'} an NVIDIA GPU")
        ports = [str(p).rsplit(":", 1)[-1].split("/")[0] if not isinstance(p, dict) else str(p.get("target"))
                 for p in s.get("ports", [])]
        ok(str(port) in ports, f"{name}: {n} publishes container port {port}", str(ports))
        targets = [v["target"] if isinstance(v, dict) else v.split(":")[1] for v in s.get("volumes", [])]
        for key in ("model_dir", "spool_dir"):
            ok(defaults[key] in targets, f"{name}: {n} mounts {defaults[key]} ({key})", str(targets))
        test = (s.get("healthcheck") or {}).get("test") or []
        test = " ".join(test[1:]) if isinstance(test, list) else test
        ok(f"http://127.0.0.1:{port}/healthz" in test, f"{name}: {n} healthcheck on /healthz port {port}", test)
        grace = str(s.get("stop_grace_period", "10s"))
        m = re.fullmatch(r"(\d+)s", grace) or re.fullmatch(r"(\d+)m", grace)
        secs = int(m.group(1)) * (60 if grace.endswith("m") else 1) if m else 0
        need = defaults["drain_timeout_s"] + deploy_defaults.DRAIN_EXIT_SLACK_S
        ok(secs > need, f"{name}: {n} stop_grace_period {grace} > drain_timeout_s {defaults['drain_timeout_s']} "
                        f"+ exit deadline {deploy_defaults.DRAIN_EXIT_SLACK_S}")
        ok(s.get("stop_signal", "SIGTERM") == "SIGTERM", f"{name}: {n} stop_signal SIGTERM")
        env = s.get("environment") or []
        pairs = dict(e.split("=", 1) if "=" in e else (e, "") for e in env) if isinstance(env, list) else dict(env)
        set_vars = {k: v for k, v in pairs.items() if k.startswith("INFVSR_") and v}
        if infvsrd:
            rc, _o, err = deploy_defaults.run_check_config(infvsrd, env_extra=set_vars)
            ok(rc == 0, f"{name}: {n} environment {sorted(set_vars)} accepted by infvsrd --check-config",
               err.strip())


def main(argv):
    if len(argv) < 4:
        print("usage: check_docker.py REPO NPM_DIR WORK_DIR [--infvsrd PATH]", file=sys.stderr)
        return 2
    repo, npm_dir, work = argv[1], argv[2], argv[3]
    infvsrd = argv[argv.index("--infvsrd") + 1] if "--infvsrd" in argv else None
    if infvsrd and not os.path.isfile(infvsrd):
        print(f"note: {infvsrd} is not built; defaults come from config/infvsrd.conf only")
        infvsrd = None
    os.makedirs(work, exist_ok=True)
    files = ["deploy/docker/Dockerfile", "deploy/docker/Dockerfile.cpu", "deploy/docker/compose.yaml"]
    out = os.path.join(work, "docker-parsed.json")
    p = subprocess.run(["node", os.path.join(HERE, "parse_docker.cjs"), npm_dir, out, *files],
                       cwd=repo, capture_output=True, text=True)
    sys.stdout.write(p.stdout)
    ok(p.returncode == 0, "parse_docker.cjs: Dockerfiles parse and lint clean, compose matches its schema",
       p.stderr.strip()[-2000:])
    if p.returncode != 0 and not os.path.isfile(out):
        print(f"{passed} passed, {failed} failed")
        return 1
    with open(out) as f:
        parsed = json.load(f)
    try:
        defaults, _src = deploy_defaults.load(repo, infvsrd)
    except deploy_defaults.DefaultsError as e:
        ok(False, "daemon defaults", str(e))
        print(f"{passed} passed, {failed} failed")
        return 1
    linked = linked_runtime_packages(infvsrd) if infvsrd else None
    if linked is None:
        print("note: infvsrd not built: the runtime library check is skipped")
    for rel in files[:2]:
        check_dockerfile(repo, rel, parsed, defaults, cuda=not rel.endswith(".cpu"), linked=linked)
    check_compose(repo, files[2], parsed, defaults, infvsrd)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
