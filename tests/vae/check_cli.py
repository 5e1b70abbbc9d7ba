"""ctest vae.cli: runs `infvsr run vae-encode` and `vae-decode` on a fixture stream and compares
every chunk with the reference outputs (relative error <= 1e-4).

  check_cli.py INFVSR FIXTURE_DIR NAME CONFIG [extra CLI args...]"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import st_io  # noqa: E402


def main():
    exe, fx, name, cfg, extra = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
    # One output file per device, so that the cpu and devsim runs can go in parallel.
    device = extra[extra.index("--device") + 1] if "--device" in extra[:-1] else "cpu"
    ref = st_io.load(os.path.join(fx, name + ".safetensors"))
    n = sum(1 for k in ref if k.startswith("frames_"))
    ok = True
    for mode, out_name in (("vae-encode", "latents"), ("vae-decode", "decoded")):
        out = os.path.join(fx, f"{name}_cli_{device.replace(':', '_')}_{out_name}.safetensors")
        cmd = [exe, "run", mode, "--model", os.path.join(fx, name + ".pth"), "--config", cfg,
               "--in", os.path.join(fx, name + ".safetensors"), "--out", out] + extra
        subprocess.run(cmd, check=True)
        got = st_io.load(out)
        for i in range(n):
            a, b = got[f"{out_name}_{i}"], ref[f"{out_name}_{i}"]
            err = float((a - b).norm() / b.norm()) if a.shape == b.shape else float("inf")
            print(f"{mode} on {device} chunk {i}: {tuple(a.shape)} rel err {err:.2e}")
            ok &= err <= 1e-4
    print("OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
