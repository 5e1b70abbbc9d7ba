"""Checks `infvsr run dit` on a fixture directory (dit_make_fixtures.py): outputs match the
reference (rel err <= 1e-4 per tensor), bad inputs exit 1 (usage errors 2) with a clear
message, and a device this build or machine does not have (`--device cuda` without CUDA or
without a usable GPU) exits 3 with a message naming the reason and writes no output file.

    dit_check_cli.py INFVSR_BINARY FIXTURE_DIR [--device D]    (default cpu; f32 devices only)"""
import os
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

TOL = 1e-4


DEVICE = "cpu"


def run(binary, fx, inp, out, model=None, device=None):
    cmd = [binary, "run", "dit", "--model", model or os.path.join(fx, "model.ckpt"),
           "--config", os.path.join(fx, "config.json"), "--in", inp, "--out", out, "--device", device or DEVICE]
    return subprocess.run(cmd, capture_output=True, text=True)


def expect_fail(name, proc, code, text):
    ok = proc.returncode == code and text in proc.stderr
    print("%s %s: exit %d, %s" % ("ok  " if ok else "FAIL", name, proc.returncode, proc.stderr.strip()))
    return ok


def check_unavailable_device(binary, fx, tmp):
    """`--device cuda`: exit 3 and no output where CUDA is missing (the binary or a GPU)."""
    out = os.path.join(tmp, "cuda.safetensors")
    p = run(binary, fx, os.path.join(fx, "inputs.safetensors"), out, device="cuda")
    if p.returncode == 0:
        print("skip --device cuda: this build has CUDA and a usable GPU")
        return True
    ok = p.returncode == 3 and "--device cuda: CUDA" in p.stderr  # the reason: built without it, no usable device
    ok &= not os.path.exists(out)
    print("%s --device cuda: exit %d, %s, output %s" % ("ok  " if ok else "FAIL", p.returncode, p.stderr.strip(),
                                                      "written" if os.path.exists(out) else "absent"))
    p = run(binary, fx, os.path.join(fx, "inputs.safetensors"), out, device="tpu")
    ok2 = p.returncode == 2 and "unknown" in p.stderr and not os.path.exists(out)
    print("%s --device tpu: exit %d, %s" % ("ok  " if ok2 else "FAIL", p.returncode, p.stderr.strip()))
    return ok and ok2


def main():
    global DEVICE
    binary, fx = sys.argv[1], sys.argv[2]
    if len(sys.argv) > 4 and sys.argv[3] == "--device":
        DEVICE = sys.argv[4]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.safetensors")
        failures += not check_unavailable_device(binary, fx, tmp)
        p = run(binary, fx, os.path.join(fx, "inputs.safetensors"), out)
        if p.returncode != 0:
            print("FAIL run:", p.stderr)
            return 1
        got, exp = st_io.load(out), st_io.load(os.path.join(fx, "expected.safetensors"))
        if sorted(got) != sorted(exp):
            print("FAIL names:", sorted(got), "vs", sorted(exp))
            failures += 1
        for k in sorted(exp):
            if k not in got:
                continue
            e = float(torch.linalg.norm(got[k].float() - exp[k]) / torch.linalg.norm(exp[k]))
            ok = got[k].shape == exp[k].shape and e <= TOL
            failures += not ok
            print("%s %s %s on %s: rel err %.2e" % ("ok  " if ok else "FAIL", k, tuple(got[k].shape), DEVICE, e))

        # No context tensor.
        failures += not expect_fail("missing context", run(binary, fx, os.path.join(fx, "expected.safetensors"), out),
                                    1, "no 'context' tensor")
        # Latents of the wrong channel count.
        bad = os.path.join(tmp, "bad.safetensors")
        ins = st_io.load(os.path.join(fx, "inputs.safetensors"))
        st_io.save(bad, {"context": ins["context"], "latents_0": torch.zeros(8, 1, 4, 4)})
        failures += not expect_fail("wrong latents shape", run(binary, fx, bad, out), 1, "'latents_0' has shape")
        st_io.save(bad, {"context": ins["context"][:, :7], "latents_0": ins["latents_0"]})
        failures += not expect_fail("wrong context shape", run(binary, fx, bad, out), 1, "dit context: shape")
        # A broken model file names the key.
        failures += not expect_fail("missing key", run(binary, fx, os.path.join(fx, "inputs.safetensors"), out,
                                                       model=os.path.join(fx, "bad_missing.ckpt")),
                                    1, "blocks.1.ffn.0.bias")
        p = subprocess.run([binary, "run", "dit", "--model", "x"], capture_output=True, text=True)
        failures += not expect_fail("usage", p, 2, "required")
    print("%d failures" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
