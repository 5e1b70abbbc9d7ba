"""`infvsr run visual` on the tiny fixtures: with the u8 `frame` and with the prepared `image` as
input (and the frame again on the float64 reference kernels), the written `context`/`tokens` must
match the PyTorch reference (rel err <= 1e-4); on `--device devsim` the outputs must be
bit-identical to the cpu run, and on `--device devsim --precision bf16` within BF16_TOL of the
reference run in torch.bfloat16 and, measured against the f32 reference, between BF16_MIN_RATIO
and BF16_MAX_RATIO times as far from it as that torch bf16 run (the criteria and the figures
behind them are in tests/visual/test_visual.c). A broken checkpoint must fail with exit code 1 and a message
naming the key; `--device cuda` on a build or machine without a usable GPU with exit code 1, a
message naming cuda and no output file; an unknown device or precision with exit code 2.

usage: check_cli.py INFVSR_BINARY FIXTURE_DIR CONFIG_JSON"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import st_io  # noqa: E402


# Kept equal to tests/visual/test_visual.c. Measured on the tiny fixture: 9.6e-3 / 9.8e-3 from the
# torch bf16 run (tokens / context), ratio 0.90 .. 0.92.
BF16_TOL = 1.7e-2
BF16_MAX_RATIO = 1.25
BF16_MIN_RATIO = 0.5


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def run_visual(exe, d, cfg, inp, out, flags):
    return subprocess.run([exe, "run", "visual", "--ram", os.path.join(d, "ram.pth"), "--dape",
                           os.path.join(d, "dape.pth"), "--config", cfg, "--in", inp, "--out", out] + flags,
                          capture_output=True, text=True)


def main():
    exe, d, cfg = sys.argv[1:4]
    ref = st_io.load(os.path.join(d, "case.safetensors"))
    failed = total = 0
    outputs = {}
    # (input tensor, extra flags): the u8 frame and the prepared image on the fast CPU kernels, the
    # frame on the float64 reference kernels (--ref), and the frame on devsim in f32 and in bf16
    for key, flags in (("frame", []), ("image", []), ("frame", ["--ref"]), ("frame", ["--device", "devsim"]),
                       ("frame", ["--device", "devsim", "--precision", "bf16"])):
        inp = os.path.join(d, f"cli_in_{key}.safetensors")
        label = " ".join([key] + flags)
        out = os.path.join(d, "cli_out_" + label.replace(" ", "_").replace("-", "") + ".safetensors")
        st_io.save(inp, {key: ref[key]})
        r = run_visual(exe, d, cfg, inp, out, flags)
        if r.returncode != 0:
            print(f"FAIL {label}: exit {r.returncode}: {r.stderr.strip()}")
            failed += 1
            total += 2
            continue
        got = outputs[label] = st_io.load(out)
        bf16 = "bf16" in flags
        for name in ("context", "tokens"):
            e = rel(got[name], ref[name + ("_bf16" if bf16 else "")])
            ok = got[name].shape == ref[name].shape and e <= (BF16_TOL if bf16 else 1e-4)
            note = ""
            if bf16 and ok:   # no further from f32 than the torch bf16 run, and not f32 itself
                ours, theirs = rel(got[name], ref[name]), rel(ref[name + "_bf16"], ref[name])
                ok = BF16_MIN_RATIO * theirs <= ours <= BF16_MAX_RATIO * theirs
                note = f"; vs f32 {ours:.3e}, torch bf16 vs f32 {theirs:.3e} (ratio {ours / theirs:.2f})"
            print(f"{'ok  ' if ok else 'FAIL'} input {label}: {name} {tuple(got[name].shape)} rel err {e:.3e}{note}")
            failed += not ok
            total += 1
    if "frame" in outputs and "frame --device devsim" in outputs:
        a, b = outputs["frame"], outputs["frame --device devsim"]
        ok = all(a[k].shape == b[k].shape and bool((a[k] == b[k]).all()) for k in ("image", "tokens", "context"))
        print(f"{'ok  ' if ok else 'FAIL'} devsim f32 outputs bit-identical to cpu")
        failed += not ok
        total += 1
    inp = os.path.join(d, "case.safetensors")
    bad = os.path.join(d, "cli_bad.safetensors")
    r = subprocess.run([exe, "run", "visual", "--ram", os.path.join(d, "ram.pth"), "--dape",
                        os.path.join(d, "dape_missing_b.pth"), "--config", cfg, "--in", inp, "--out", bad],
                       capture_output=True, text=True)
    ok = r.returncode == 1 and "layers.1.blocks.1.attn.qkv.lora_B" in r.stderr
    print(f"{'ok  ' if ok else 'FAIL'} missing lora_B: exit {r.returncode}: {r.stderr.strip()}")
    failed += not ok
    total += 1
    # --device cuda: runs where a GPU is usable, else a clear error and no output file
    cuda_out = os.path.join(d, "cli_out_cuda.safetensors")
    if os.path.exists(cuda_out):
        os.unlink(cuda_out)
    r = run_visual(exe, d, cfg, inp, cuda_out, ["--device", "cuda"])
    ok = r.returncode == 0 or (r.returncode == 1 and "cuda" in r.stderr.lower() and not os.path.exists(cuda_out))
    print(f"{'ok  ' if ok else 'FAIL'} --device cuda: exit {r.returncode}: {r.stderr.strip()}")
    failed += not ok
    total += 1
    for flags in (["--device", "tpu"], ["--precision", "fp8"]):
        r = run_visual(exe, d, cfg, inp, bad, flags)
        ok = r.returncode == 2 and r.stderr.strip() != ""
        print(f"{'ok  ' if ok else 'FAIL'} {' '.join(flags)}: exit {r.returncode}: {r.stderr.strip()}")
        failed += not ok
        total += 1
    print(f"{total - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
