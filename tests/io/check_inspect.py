"""Runs `infvsr inspect` on the io fixtures and checks it against the manifest written by
gen_fixtures.py: --json output (keys, dtypes, shapes, sha256 computed by PyTorch), the text
mode summary line, and the exit codes (0 ok, 1 bad file with a message, 2 usage).

usage: /usr/bin/python3 check_inspect.py INFVSR_BINARY FIXTURE_DIR"""
import json
import os
import subprocess
import sys

exe, fx = sys.argv[1], sys.argv[2]
manifest = json.load(open(os.path.join(fx, "manifest.json")))
failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL", msg)


def run(*args):
    return subprocess.run([exe, "inspect", *args], capture_output=True, text=True, timeout=60)


for g in manifest["good"]:
    path = os.path.join(fx, g["file"])
    if g.get("large"):  # > 4 GiB sparse file: text mode only (--json would hash every byte)
        r = run(path)
        if r.returncode != 0 or not r.stdout.strip().splitlines()[-1].startswith("%d tensors" % len(g["tensors"])):
            fail("%s: exit %d: %s" % (g["file"], r.returncode, r.stderr))
        continue
    r = run(path, "--json")
    if r.returncode != 0:
        fail("%s: exit %d: %s" % (g["file"], r.returncode, r.stderr))
        continue
    got = json.loads(r.stdout)
    want = {t["key"]: t for t in g["tensors"]}
    have = {t["key"]: t for t in got["tensors"]}
    if set(want) != set(have):
        fail("%s: keys differ: missing %s, extra %s" % (g["file"], sorted(set(want) - set(have))[:5],
                                                        sorted(set(have) - set(want))[:5]))
    for k in set(want) & set(have):
        for field in ("dtype", "shape", "sha256"):
            if want[k][field] != have[k][field]:
                fail("%s: %s.%s: %r != %r" % (g["file"], k, field, have[k][field], want[k][field]))
    if got["count"] != len(want):
        fail("%s: count %d != %d" % (g["file"], got["count"], len(want)))
    r = run(path)
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    if r.returncode != 0 or not last.startswith("%d tensors, " % len(want)):
        fail("%s: text mode exit %d, summary %r" % (g["file"], r.returncode, last))
    if len(r.stdout.strip().splitlines()) != len(want) + 1:
        fail("%s: text mode should print one line per tensor plus a summary" % g["file"])

for b in manifest["bad"][:10] + manifest["bad"][-3:]:
    r = run(os.path.join(fx, b["file"]))
    words = b["expect"] if isinstance(b["expect"], list) else [b["expect"]]
    if r.returncode != 1 or any(w not in r.stderr for w in words) or r.stdout:
        fail("%s: exit %d, stderr %r (want 1 and %r)" % (b["file"], r.returncode, r.stderr, b["expect"]))

for args, code in (((), 2), (("--bogus",), 2), (("a", "b"), 2), ((os.path.join(fx, "nope.pt"),), 1),
                   (("--help",), 0)):
    r = run(*args)
    if r.returncode != code:
        fail("inspect %s: exit %d, want %d" % (" ".join(args), r.returncode, code))

print("check_inspect: %d good files, %d failures" % (len(manifest["good"]), failures))
sys.exit(1 if failures else 0)
