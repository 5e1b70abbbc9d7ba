"""`infvsr run visual` on the tiny fixtures: with the u8 `frame` and with the prepared `image` as
input (and the frame again on the float64 reference kernels), the written `context`/`tokens` must
match the PyTorch reference (rel err <= 1e-4), and a broken checkpoint must fail with exit code 1
and a message naming the key.

usage: check_cli.py INFVSR_BINARY FIXTURE_DIR CONFIG_JSON"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import st_io  # noqa: E402


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def main():
    exe, d, cfg = sys.argv[1:4]
    ref = st_io.load(os.path.join(d, "case.safetensors"))
    failed = total = 0
    # (input tensor, extra flags): the u8 frame and the prepared image on the fast CPU kernels, and
    # the frame on the float64 reference kernels (--ref)
    for key, flags in (("frame", []), ("image", []), ("frame", ["--ref"])):
        inp = os.path.join(d, f"cli_in_{key}.safetensors")
        out = os.path.join(d, f"cli_out_{key}.safetensors")
        st_io.save(inp, {key: ref[key]})
        r = subprocess.run([exe, "run", "visual", "--ram", os.path.join(d, "ram.pth"), "--dape",
                            os.path.join(d, "dape.pth"), "--config", cfg, "--in", inp, "--out", out] + flags,
                           capture_output=True, text=True)
        key = " ".join([key] + flags)
        if r.returncode != 0:
            print(f"FAIL {key}: exit {r.returncode}: {r.stderr.strip()}")
            failed += 1
            total += 2
            continue
        got = st_io.load(out)
        for name in ("context", "tokens"):
            e = rel(got[name], ref[name])
            ok = got[name].shape == ref[name].shape and e <= 1e-4
            print(f"{'ok  ' if ok else 'FAIL'} input {key}: {name} {tuple(got[name].shape)} rel err {e:.3e}")
            failed += not ok
            total += 1
    r = subprocess.run([exe, "run", "visual", "--ram", os.path.join(d, "ram.pth"), "--dape",
                        os.path.join(d, "dape_missing_b.pth"), "--config", cfg, "--in",
                        os.path.join(d, "case.safetensors"), "--out", os.path.join(d, "cli_bad.safetensors")],
                       capture_output=True, text=True)
    ok = r.returncode == 1 and "layers.1.blocks.1.attn.qkv.lora_B" in r.stderr
    print(f"{'ok  ' if ok else 'FAIL'} missing lora_B: exit {r.returncode}: {r.stderr.strip()}")
    failed += not ok
    total += 1
    print(f"{total - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
