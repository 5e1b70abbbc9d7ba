#!/usr/bin/python3
"""Memory stays flat with video length: `infvsr upscale` (tiny random model, LR 8x8 -> 32x32)
on a 3000-frame y4m peaks (VmHWM, getrusage maxrss of the process) within 2% of the same
run on 300 frames. The clip has a scene cut every 37..113 frames and moving content, so
every path (scene resets, reference refreshes, short chunks before cuts) runs many times.

On a device backend (--device devsim) the session's backend bytes must also be equal.

usage: memory_test.py INFVSR_BINARY WORK_DIR [SHORT LONG] [--device D]"""
import json
import os
import subprocess
import sys

import numpy as np

ARGS = sys.argv[1:]
DEVICE = "cpu"
if "--device" in ARGS[:-1]:
    i = ARGS.index("--device")
    DEVICE = ARGS[i + 1]
    del ARGS[i:i + 2]
TOOL, WORK = os.path.abspath(ARGS[0]), os.path.abspath(ARGS[1])
SHORT, LONG = (int(ARGS[2]), int(ARGS[3])) if len(ARGS) > 3 else (300, 3000)
W = H = 8


def write_y4m(path, n, seed=11):
    """yuv420p frames: scenes of random base colour with a moving bright square and noise."""
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(b"YUV4MPEG2 W%d H%d F25:1 Ip A1:1 C420jpeg\n" % (W, H))
        t = 0
        while t < n:
            length = int(rng.integers(37, 114))
            base = rng.integers(16, 236, 3)
            for u in range(min(length, n - t)):
                y = np.full((H, W), base[0], np.float64) + rng.normal(0, 3, (H, W))
                x0 = (u // 3) % (W - 2)
                y[2:4, x0:x0 + 2] = 235
                cb = np.full((H // 2, W // 2), base[1], np.float64) + rng.normal(0, 2, (H // 2, W // 2))
                cr = np.full((H // 2, W // 2), base[2], np.float64) + rng.normal(0, 2, (H // 2, W // 2))
                f.write(b"FRAME\n")
                for p in (y, cb, cr):
                    f.write(np.clip(np.rint(p), 0, 255).astype(np.uint8).tobytes())
            t += length


def run(n):
    src = os.path.join(WORK, "mem_%s_%d.y4m" % (DEVICE, n))
    out = os.path.join(WORK, "mem_%s_%d_out.y4m" % (DEVICE, n))
    write_y4m(src, n)
    p = subprocess.run([TOOL, "upscale", src, out, "--model-dir", os.path.join(WORK, "tiny"), "--json", "--force",
                        "--threads", "2", "--device", DEVICE], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("upscale %d frames failed: %s" % (n, p.stderr))
    done = [json.loads(l) for l in p.stdout.splitlines() if '"done"' in l][-1]
    os.remove(out)
    os.remove(src)
    return done


def main():
    os.makedirs(WORK, exist_ok=True)
    subprocess.run([TOOL, "make-tiny-model", os.path.join(WORK, "tiny")], check=True, capture_output=True)
    a, b = run(SHORT), run(LONG)
    ok = a["frames"] == SHORT and b["frames"] == LONG
    growth = (b["peak_rss_kb"] - a["peak_rss_kb"]) / a["peak_rss_kb"]
    for n, d in ((SHORT, a), (LONG, b)):
        print("%d frames on %s: peak RSS %d kB, session %d B on the backend, model %d B, %d chunks, %d scenes, "
              "%d references, %.1f fps" % (n, d["backend"]["name"], d["peak_rss_kb"], d["session_bytes"],
                                            d["model_bytes"], d["chunks"], d["scenes"], d["references"], d["fps"]))
    print("growth %.2f%% (limit 2%%)" % (100 * growth))
    if not ok:
        print("FAIL frame counts", a["frames"], b["frames"])
    if a["session_bytes"] != b["session_bytes"] or a["backend"]["name"] != DEVICE:
        print("FAIL session bytes differ or wrong backend")
        ok = False
    if not growth <= 0.02:
        print("FAIL peak RSS grows with length")
        ok = False
    print("%d passed, %d failed" % (1 if ok else 0, 0 if ok else 1))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
