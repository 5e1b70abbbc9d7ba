#!/usr/bin/python3
"""Compares tests/deploy/kustomize_lite.py with the real kustomize, where one is installed.

Renders deploy/k8s/base, every deploy/k8s/overlays/* and every kustomize_cases/ case that
has expected.yaml with both, and requires the same objects in the same order. kustomize is
not in Debian 12, so CI normally has neither `kustomize` nor `kubectl kustomize`: then this
prints why and exits 77 (ctest: skipped).
Usage: check_kustomize_crosscheck.py REPO_ROOT
"""
import os
import shutil
import subprocess
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import kustomize_lite  # noqa: E402
from test_kustomize_lite import first_difference  # noqa: E402


def real_kustomize():
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        probe = subprocess.run(["kubectl", "kustomize", "--help"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["kubectl", "kustomize"]
    return None


def main(argv):
    if len(argv) != 2:
        print("usage: check_kustomize_crosscheck.py REPO_ROOT", file=sys.stderr)
        return 2
    root = argv[1]
    cmd = real_kustomize()
    if not cmd:
        print("SKIP: neither kustomize nor kubectl (with kustomize) is installed")
        return 77
    version = subprocess.run(cmd[:1] + (["version"] if cmd[0] == "kustomize" else ["version", "--client"]),
                             capture_output=True, text=True).stdout.strip().replace("\n", "; ")
    print(f"reference: {' '.join(cmd)} ({version})")
    dirs = [os.path.join(root, "deploy/k8s/base")]
    overlays = os.path.join(root, "deploy/k8s/overlays")
    dirs += sorted(os.path.join(overlays, d) for d in os.listdir(overlays))
    for r, _d, files in sorted(os.walk(os.path.join(HERE, "kustomize_cases"))):
        if "expected.yaml" in files:
            dirs.append(r)
    passed = failed = 0
    for d in dirs:
        name = os.path.relpath(d, root)
        ref = subprocess.run(cmd + [d], capture_output=True, text=True)
        if ref.returncode != 0:
            print(f"FAIL {name}: {' '.join(cmd)} failed: {ref.stderr.strip()[:500]}")
            failed += 1
            continue
        want = [x for x in yaml.safe_load_all(ref.stdout) if x is not None]
        try:
            got = kustomize_lite.render(d)
        except kustomize_lite.KustomizeError as e:
            print(f"FAIL {name}: kustomize_lite: {e}")
            failed += 1
            continue
        diff = first_difference(got, want)
        if diff:
            print(f"FAIL {name}: {diff}")
            failed += 1
        else:
            print(f"ok   {name}: {len(got)} objects identical")
            passed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
