"""Checks `infvsr run dit` on a fixture directory (dit_make_fixtures.py): outputs match the
reference (rel err <= 1e-4 per tensor), and bad inputs exit 1 (usage errors 2) with a clear
message.

    dit_check_cli.py INFVSR_BINARY FIXTURE_DIR"""
import os
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

TOL = 1e-4


def run(binary, fx, inp, out, model=None):
    cmd = [binary, "run", "dit", "--model", model or os.path.join(fx, "model.ckpt"),
           "--config", os.path.join(fx, "config.json"), "--in", inp, "--out", out]
    return subprocess.run(cmd, capture_output=True, text=True)


def expect_fail(name, proc, code, text):
    ok = proc.returncode == code and text in proc.stderr
    print("%s %s: exit %d, %s" % ("ok  " if ok else "FAIL", name, proc.returncode, proc.stderr.strip()))
    return ok


def main():
    binary, fx = sys.argv[1], sys.argv[2]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.safetensors")
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
            print("%s %s %s rel err %.2e" % ("ok  " if ok else "FAIL", k, tuple(got[k].shape), e))

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
