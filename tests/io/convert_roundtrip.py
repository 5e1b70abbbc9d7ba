"""`infvsr convert` and `infvsr verify-model` on a whole model (issue 19), and README's example.

  A  the tiny random model (make-tiny-model: four safetensors files)
  B  the same tensors as users download them: InfVSR.ckpt a Lightning checkpoint (state_dict
     with DataParallel's "module.", optimizer_states, hyper_parameters with a Namespace),
     Wan2.1_VAE.pth legacy torch.save under "model_state", ram_swin_large_14m.pth under
     "model" beside metadata (pickle protocol 4), DAPE.pth legacy under "ema"
  C  B's files converted back with `infvsr convert`

Checks: verify-model accepts A, B and C (exit 0, one "all found" line per file) and rejects a
broken copy of B (exit 1: the missing key with the nearest names, the wrong shape); convert
keeps every key, dtype, shape and byte (inspect --json) and records source + sha256;
`infvsr upscale` of one clip gives the same bytes with A, B and C; README's "Checkpoint
files" block runs as written (build/demo/ -> this build) in a directory holding B as `models`.

usage: /usr/bin/python3 convert_roundtrip.py INFVSR_BINARY WORK_DIR REPO_DIR"""
import argparse
import collections
import hashlib
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys

import numpy as np
import torch

TOOL, WORK, REPO = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])
sys.path.insert(0, os.path.join(REPO, "tests", "reference"))
import st_io  # noqa: E402

FILES = ["InfVSR", "Wan2.1_VAE", "ram_swin_large_14m", "DAPE"]
EXT = {"InfVSR": ".ckpt", "Wan2.1_VAE": ".pth", "ram_swin_large_14m": ".pth", "DAPE": ".pth"}
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL", what)


def run(*args, ok=(0,)):
    p = subprocess.run([TOOL, *args], capture_output=True, text=True, timeout=900)
    if p.returncode not in ok:
        print("command %s -> %d\n%s%s" % (" ".join(args), p.returncode, p.stdout[-2000:], p.stderr[-2000:]))
    return p


def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def inspect(path):
    p = run("inspect", path, "--json")
    return {t["key"]: (t["dtype"], t["shape"], t["sha256"]) for t in json.loads(p.stdout)["tensors"]} if p.returncode == 0 else {}


def write_torch_model(src, dst):
    """B: A's tensors in the containers real downloads use."""
    os.makedirs(dst, exist_ok=True)
    shutil.copy(os.path.join(src, "model.json"), dst)
    sd = {n: st_io.load(os.path.join(src, n + ".safetensors")) for n in FILES}
    dit = collections.OrderedDict(("module." + k, v) for k, v in sd["InfVSR"].items())
    first = next(iter(sd["InfVSR"].values()))
    torch.save({"epoch": 2, "global_step": 40, "pytorch-lightning_version": "2.1.0", "state_dict": dit,
                "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros_like(first)}}, "param_groups": [{"lr": 1e-4}]}],
                "callbacks": {"ModelCheckpoint{'monitor': None}": {"best_model_path": "x.ckpt"}},
                "hyper_parameters": {"args": argparse.Namespace(lr=1e-4), "size": torch.Size([64, 64])}},
               os.path.join(dst, "InfVSR.ckpt"))
    torch.save({"model_state": sd["Wan2.1_VAE"]}, os.path.join(dst, "Wan2.1_VAE.pth"), _use_new_zipfile_serialization=False)
    ram = collections.OrderedDict((k[len("model."):], v) for k, v in sd["ram_swin_large_14m"].items())
    torch.save({"model": ram, "epoch": 3, "score": np.float64(0.5), "tags": {"a", "b"}},
               os.path.join(dst, "ram_swin_large_14m.pth"), pickle_protocol=4)
    torch.save({"ema": sd["DAPE"], "step": 7}, os.path.join(dst, "DAPE.pth"), _use_new_zipfile_serialization=False)


def y4m(path, w=32, h=24, n=10):
    rnd = random.Random(5)
    with open(path, "wb") as f:
        f.write(b"YUV4MPEG2 W%d H%d F25:1 Ip A1:1 C420jpeg\n" % (w, h))
        for i in range(n):
            f.write(b"FRAME\n" + bytes(rnd.randrange(256) for _ in range(w * h * 3 // 2)))


def verify_ok(d, what):
    p = run("verify-model", d)
    lines = [l for l in p.stdout.splitlines() if l.split(":")[0].split(" ")[0] in ("InfVSR.ckpt", "Wan2.1_VAE.pth", "ram_swin_large_14m.pth", "DAPE.pth")]
    check(p.returncode == 0 and len(lines) == 4 and all("all found, shapes and dtypes ok" in l for l in lines),
          "verify-model %s: exit 0, 4 good lines: %r" % (what, p.stdout))
    return lines


def main():
    os.makedirs(WORK, exist_ok=True)
    a, b, c = (os.path.join(WORK, x) for x in ("A", "B", "C"))
    for d in (a, b, c):
        shutil.rmtree(d, ignore_errors=True)
    run("make-tiny-model", a, "--seed", "11")
    write_torch_model(a, b)
    verify_ok(a, "A (safetensors)")
    lines = verify_ok(b, "B (torch files)")
    check(any("legacy torch.save" in l and "under 'model_state.'" in l for l in lines), "B: VAE line names legacy + wrapper: %r" % lines)
    check(any(l.startswith("InfVSR.ckpt: torch zip") and "under 'state_dict.module.'" in l for l in lines),
          "B: DiT under state_dict.module.: %r" % lines)

    os.makedirs(c)
    shutil.copy(os.path.join(a, "model.json"), c)
    for n in FILES:
        src, dst = os.path.join(b, n + EXT[n]), os.path.join(c, n + ".safetensors")
        p = run("convert", src, dst)
        check(p.returncode == 0 and p.stdout.startswith("wrote " + dst), "convert %s: %s" % (n, p.stdout + p.stderr))
        with open(dst, "rb") as f:
            hl = struct.unpack("<Q", f.read(8))[0]
            meta = json.loads(f.read(hl))["__metadata__"]
        check(meta.get("source") == n + EXT[n] and meta.get("source_sha256") == sha_file(src)
              and meta.get("converted_by") == "infvsr convert", "%s: metadata names the source and its sha256: %r" % (n, meta))
        want, got = inspect(src), inspect(dst)
        check(want and want == got, "%s: converted keys, dtypes, shapes and bytes identical (%d tensors)" % (n, len(got)))
        if n == "InfVSR":
            check(all(v[0] == "bf16" for k, v in got.items() if k.startswith("state_dict.module.")), "DiT stays bf16")
    verify_ok(c, "C (converted)")

    # the same module outputs: one clip through the whole pipeline with A, B and C
    clip = os.path.join(WORK, "clip.y4m")
    y4m(clip)
    outs = []
    for d in (a, b, c):
        out = os.path.join(WORK, os.path.basename(d) + ".y4m")
        p = run("upscale", clip, out, "--model-dir", d, "--quiet", "--force", "--threads", "2")
        check(p.returncode == 0, "upscale with %s: %s" % (d, p.stderr[-500:]))
        outs.append(sha_file(out) if p.returncode == 0 else None)
    check(outs[0] is not None and outs[0] == outs[1] == outs[2], "upscale output identical with A, B, C: %s" % outs)

    # a broken copy of B: a LoRA key renamed, a DiT tensor of the wrong shape
    d = os.path.join(WORK, "D")
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(b, d)
    dape = torch.load(os.path.join(d, "DAPE.pth"))
    k0 = next(iter(dape["ema"]))
    dape["ema"][k0.replace("lora_A", "lora_a")] = dape["ema"].pop(k0)
    torch.save(dape, os.path.join(d, "DAPE.pth"))
    ck = torch.load(os.path.join(d, "InfVSR.ckpt"))
    ck["state_dict"]["module.head.modulation"] = torch.zeros(1, 3, 5, dtype=torch.bfloat16)
    torch.save(ck, os.path.join(d, "InfVSR.ckpt"))
    p = run("verify-model", d, ok=(1,))
    check(p.returncode == 1, "verify-model D: exit 1 (%d)" % p.returncode)
    check("missing '%s'" % k0 in p.stdout and "nearest keys: 'ema.%s'" % k0.replace("lora_A", "lora_a") in p.stdout,
          "D: the missing LoRA key with its nearest name: %s" % p.stdout)
    check("'head.modulation': shape [1, 3, 5], expected [1, 2, " in p.stdout and "1 wrong shape" in p.stdout, "D: wrong shape: %s" % p.stdout)
    check("top-level entries: ema (" in p.stdout and "step (an int)" in p.stdout, "D: the top-level entries are listed: %s" % p.stdout)
    p = run("upscale", clip, os.path.join(WORK, "D.y4m"), "--model-dir", d, "--quiet", ok=(1,))
    check(p.returncode == 1 and "nearest keys" in p.stderr or "expected shape" in p.stderr, "upscale with D fails clearly: %s" % p.stderr)
    p = run("verify-model", os.path.join(WORK, "nope"), ok=(1,))
    check(p.returncode == 1 and p.stdout.count(": missing (looked for") == 4, "verify-model of an empty path: 4 missing, exit 1")
    check(run("verify-model", ok=(2,)).returncode == 2 and run("convert", "x", ok=(2,)).returncode == 2, "usage errors exit 2")
    check(run("convert", os.path.join(WORK, "clip.y4m"), os.path.join(WORK, "x.safetensors"), ok=(1,)).returncode == 1,
          "convert of a non-checkpoint exits 1")

    # README's example, as written
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    block = re.search(r"```sh\n(.*?)```", text.split("\n### Checkpoint files\n", 1)[1], re.S).group(1)
    rd = os.path.join(WORK, "readme")
    shutil.rmtree(rd, ignore_errors=True)
    os.makedirs(rd)
    shutil.copytree(b, os.path.join(rd, "models"))
    script = block.replace("build/demo/", os.path.dirname(TOOL) + "/")
    check("build/demo/" in block, "README block uses build/demo/")
    p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=rd, capture_output=True, text=True, timeout=600)
    check(p.returncode == 0 and "all found" in p.stdout and "wrote InfVSR.safetensors" in p.stdout,
          "README block runs: %d %s %s" % (p.returncode, p.stdout[-800:], p.stderr[-800:]))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


main()
