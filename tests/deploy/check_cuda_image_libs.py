#!/usr/bin/env python3
"""The CUDA image's runtime stage against `ldd` of a CUDA build made here (issue 21 item 3).

The nvidia/cuda base images cannot be pulled here, so the image is never built in the tests;
what can be checked is that every shared library a CUDA build of infvsrd loads has a source
in deploy/docker/Dockerfile's runtime stage. Everything is read from the Dockerfile (not a
copy of its lists): the runtime stage is the last FROM, its base image tag names the CUDA
flavour (base < runtime < cudnn-runtime), its packages are the `apt-get install` arguments.

Every library `ldd infvsrd` resolves (the whole closure, 140+ here), plus any `lib*.so.N`
name in the binary that ldd does not list (a dlopen by name), is classified:
  - C runtime (libc, libm, ld-linux, ...): in every base image;
  - NVIDIA: CUDA libraries by the flavour that ships them (cudart: base; cuBLAS, cuBLASLt,
    cuFFT, ...: runtime; cuDNN: cudnn-runtime), the driver (libcuda, libnvidia-*) from the
    host through the NVIDIA container toolkit; the stage's flavour must include the library;
  - everything else: its Debian package here (dpkg -S). The package must be one the
    stage installs (matched by library family: the stage is Ubuntu 24.04, so libavformat60
    there is libavformat59 here and libuv1t64 is libuv1) or in the Depends closure (as
    recorded by dpkg here) of those packages or of the base image's libc6/libgcc-s1/libstdc++6.
    A library infvsrd links directly (DT_NEEDED) must be installed by name, not only pulled in.
Limits: the closure is Debian 12's dependency graph standing in for Ubuntu 24.04's (the
same libraries, packaged the same way, different sonames); the image is not run.

Usage: check_cuda_image_libs.py DOCKERFILE BINARY... (infvsrd and infvsr: the image ships both)
Exit 0 all covered, 1 a library has no source, 77 INFVSRD is not a CUDA build (no nvcc)."""
import os
import re
import subprocess
import sys

C_RUNTIME = re.compile(r"^(linux-vdso|ld-linux[-\w.]*|libc|libm|libdl|libpthread|librt|libresolv|libutil)\.so")
BASE_PACKAGES = ["libc6", "libgcc-s1", "libstdc++6"]  # in ubuntu:24.04 and every nvidia/cuda image
FLAVOURS = ["base", "runtime", "cudnn-runtime"]
# Which flavour of nvidia/cuda first ships each NVIDIA library (NVIDIA's image recipes:
# base = cuda-cudart + compat; runtime = + cuda-libraries (cuBLAS, cuFFT, cuRAND, cuSOLVER,
# cuSPARSE, NPP, nvJPEG, NVRTC, nvJitLink), NCCL; cudnn-runtime = + cuDNN).
NVIDIA_LIBS = [
    (re.compile(r"^libcudart\.so"), "base"),
    (re.compile(r"^lib(cublas|cublasLt|cufft|cufftw|curand|cusolver|cusolverMg|cusparse|nvrtc|nvrtc-builtins|"
                r"nvJitLink|npp\w*|nvjpeg|nccl|nvblas|cufile)\.so"), "runtime"),
    (re.compile(r"^libcudnn\w*\.so"), "cudnn-runtime"),
    (re.compile(r"^lib(cuda|nvidia-\w+|nvcuvid|nvidia-ml)\.so"), "host driver"),
]


def dockerfile_stages(path):
    """[(from_image, [lines])] with continuations joined and global ARG defaults applied."""
    text = re.sub(r"\\\n", " ", open(path, encoding="utf-8").read())
    args, stages = {}, []
    for ln in text.splitlines():
        s = ln.strip()
        if not s or s.startswith("#"):
            continue
        kw, _, rest = s.partition(" ")
        kw = kw.upper()
        if kw == "ARG" and not stages:
            name, _, val = rest.strip().partition("=")
            args[name] = val.strip().strip('"')
        elif kw == "FROM":
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), ""),
                           rest.split()[0] if not rest.startswith("--") else rest.split()[1])
            stages.append((image, []))
        elif stages:
            stages[-1][1].append(s)
    return stages


def apt_installs(lines):
    pkgs = []
    for ln in lines:
        if not ln.upper().startswith("RUN "):
            continue
        for part in re.split(r"&&|;|\|\|", ln[4:]):
            w = part.split()
            if "apt-get" in w and "install" in w:
                pkgs += [x for x in w[w.index("install") + 1:] if not x.startswith("-")]
    return pkgs


def family(pkg):
    """libavformat59 / libavformat60 -> libavformat; libuv1t64 -> libuv; libopenblas0-pthread -> libopenblas."""
    p = re.sub(r"t64$", "", pkg)
    p = re.sub(r"-(pthread|openmp|serial)$", "", p)
    return re.sub(r"[0-9.]+$", "", p)


def sh(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def owners(paths):
    """{path: Debian package} for the paths dpkg knows (as given, resolved, /lib <-> /usr/lib)."""
    cands = {}
    for path in paths:
        cs = [path, os.path.realpath(path)]
        cs += [c.replace("/lib/", "/usr/lib/", 1) for c in list(cs) if c.startswith("/lib/")]
        cs += [c.replace("/usr/lib/", "/lib/", 1) for c in list(cs) if c.startswith("/usr/lib/")]
        cs += [c.replace("/lib64/", "/usr/lib64/", 1) for c in list(cs) if c.startswith("/lib64/")]
        cands[path] = cs
    known = {}
    out = sh("dpkg", "-S", *sorted({c for cs in cands.values() for c in cs})).stdout
    for ln in out.splitlines():
        pkg, _, f = ln.partition(": ")
        known.setdefault(f.strip(), pkg.split(":")[0].split(",")[0].strip())
    return {path: next((known[c] for c in cs if c in known), None) for path, cs in cands.items()}


def installed_depends():
    """{installed package: [its Depends/Pre-Depends alternatives]} in one dpkg-query."""
    out = sh("dpkg-query", "-W", "-f", "${Package}\t${Status}\t${Depends},${Pre-Depends}\n").stdout
    deps = {}
    for ln in out.splitlines():
        pkg, status, dl = (ln.split("\t") + ["", ""])[:3]
        if status.endswith("install ok installed"):
            deps[pkg] = [re.sub(r"\(.*?\)", "", d).strip().split(":")[0]
                         for alt in dl.split(",") for d in alt.split("|")]
    return deps


def depends_closure(roots, deps):
    seen, todo = set(), [r for r in roots if r in deps]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo += [d for d in deps[p] if d in deps and d not in seen]
    return seen


def main(argv):
    if len(argv) < 3:
        print(__doc__)
        return 2
    dockerfile, binaries = argv[1], argv[2:]
    libs, needed, named = [], set(), set()
    for b in binaries:
        if not os.path.exists(b):
            print(f"SKIP: {b} not built")
            return 77
        for n, p in re.findall(r"^\s*(\S+)(?: => (\S+))?\s*\(0x", sh("ldd", b).stdout, re.M):
            if n not in {x for x, _ in libs}:
                libs.append((n, p))
        needed |= set(re.findall(r"Shared library: \[(.+?)\]", sh("readelf", "-d", b).stdout))
        named |= set(re.findall(rb"\blib[A-Za-z0-9_+-]+\.so(?:\.[0-9]+)*", open(b, "rb").read()))
    if not any(n.startswith("libcudart.so") for n, _p in libs):
        print(f"SKIP: {' '.join(binaries)}: not a CUDA build (no libcudart in ldd): configure with nvcc present")
        return 77
    listed = {n for n, _p in libs}
    extra = sorted(n.decode() for n in named if n.decode() not in listed)

    stages = dockerfile_stages(dockerfile)
    image, lines = stages[-1]
    m = re.fullmatch(r"nvidia/cuda:([0-9.]+)-(base|runtime|cudnn[0-9]*-runtime)-(ubuntu[0-9.]+)", image)
    if not m:
        print(f"FAIL: runtime stage FROM {image!r} is not an nvidia/cuda base/runtime/cudnn-runtime image")
        return 1
    flavour = re.sub(r"cudnn[0-9]*-", "cudnn-", m.group(2))
    pkgs = apt_installs(lines)
    print(f"runtime stage: FROM {image} (flavour {flavour}); apt installs {' '.join(pkgs)}")

    deps = installed_depends()
    installed = set(deps)
    by_family = {}
    for p in installed:
        if not p.endswith("-dev"):
            by_family.setdefault(family(p), set()).add(p)
    stage_fams = {family(p) for p in pkgs}
    local = set()  # this machine's (Debian 12) equivalents of the stage's packages
    for p in pkgs:
        local |= {p} if p in installed else by_family.get(family(p), set())
    closure = depends_closure(sorted(local) + BASE_PACKAGES, deps)
    pkg_of = owners([p for _n, p in libs if p and p != "not"])

    rows, bad = [], []
    for name, path in libs + [(n, None) for n in extra]:
        direct = name in needed
        if C_RUNTIME.match(os.path.basename(name)):
            rows.append((name, "libc6", "base image (C runtime)"))
            continue
        nv = next((fl for rx, fl in NVIDIA_LIBS if rx.match(name)), None)
        if nv == "host driver":
            rows.append((name, "NVIDIA driver", "host, through the NVIDIA container toolkit"))
            continue
        if nv or (path and "/cuda" in path):
            need = nv or "runtime"
            okk = FLAVOURS.index(flavour) >= FLAVOURS.index(need)
            rows.append((name, f"nvidia/cuda {need}", f"base image ({flavour})" if okk else "MISSING"))
            if not okk:
                bad.append(f"{name}: needs the nvidia/cuda '{need}' flavour, the stage runs on '{flavour}'")
            continue
        if path is None or path == "not":
            rows.append((name, "?", "MISSING (not found here)"))
            bad.append(f"{name}: not found on this machine (ldd: not found, or a dlopen name)")
            continue
        pkg = pkg_of.get(path)
        if pkg is None:
            rows.append((name, "?", "MISSING (no package owns it)"))
            bad.append(f"{name} ({path}): no Debian package owns it, and it is not an NVIDIA library")
            continue
        if direct and pkg not in BASE_PACKAGES:
            okk = family(pkg) in stage_fams
            rows.append((name, pkg, "installed by name (DT_NEEDED)" if okk else "MISSING (DT_NEEDED)"))
            if not okk:
                bad.append(f"{name}: a binary links it directly; its package {pkg} (family {family(pkg)}) "
                           f"is not installed by the runtime stage")
            continue
        if pkg in closure:
            rows.append((name, pkg, "dependency of the stage's packages"))
        else:
            rows.append((name, pkg, "MISSING"))
            bad.append(f"{name}: its package {pkg} is neither installed by the stage nor a dependency of one")
    w = max(len(r[0]) for r in rows)
    for r in rows:
        print(f"  {r[0]:<{w}}  {r[1]:<28} {r[2]}")
    print(f"{len(rows)} libraries ({len(needed)} DT_NEEDED, {len(extra)} dlopen names), {len(bad)} without a source")
    for b in bad:
        print(f"FAIL: {b}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
