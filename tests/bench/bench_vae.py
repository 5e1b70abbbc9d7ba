"""PyTorch side of the VAE benchmark (tests/bench/bench_vae.sh).

Full-width Wan VAE (base dim 96) with random weights, saved as WORK/vae96.pth; one scene of two
chunks at HxW (9 frames, then 12), saved as WORK/frames.safetensors (frames_0, frames_1) and
the reference latents as WORK/latents.safetensors (latents_0, latents_1). Times the PyTorch f32
CPU streaming encode and decode of each chunk (median of --repeat runs, each from a fresh
session) with --threads threads and prints lines `torch encode chunk I: S s` for the shell
script. When WORK already holds vae96.pth, the same model and frames are reused (the shell
script alternates PyTorch and C rounds so that load from other processes hits both alike).
`--check OUT_ENC OUT_DEC` instead compares the C outputs with the reference. `--bf16` times the
same model and frames in torch.bfloat16 instead (vae_ref runs natively in the tensors' dtype;
lines `torch-bf16 encode chunk I: S s`); it needs WORK/vae96.pth from an f32 run."""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import st_io  # noqa: E402
import vae_ref  # noqa: E402


def rel(a, b):
    return float((a - b).norm() / b.norm())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--check", nargs=2, metavar=("ENC", "DEC"))
    ap.add_argument("--bf16", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    w = a.work
    if a.check:
        lat = st_io.load(os.path.join(w, "latents.safetensors"))
        dec = st_io.load(os.path.join(w, "decoded.safetensors"))
        enc_c, dec_c = st_io.load(a.check[0]), st_io.load(a.check[1])
        for i in range(2):
            print(f"parity chunk {i}: encode rel err {rel(enc_c[f'latents_{i}'], lat[f'latents_{i}']):.2e}, "
                  f"decode rel err {rel(dec_c[f'decoded_{i}'], dec[f'decoded_{i}']):.2e}")
        return
    model = vae_ref.VideoVAE(dim=96).eval()
    pth = os.path.join(w, "vae96.pth")
    if os.path.exists(pth):   # later rounds: same model and frames
        model.load_state_dict(torch.load(pth))
        fr = st_io.load(os.path.join(w, "frames.safetensors"))
        frames = [fr["frames_0"], fr["frames_1"]]
    else:
        torch.manual_seed(0)
        vae_ref.random_weights_(model, 0)
        torch.save(model.state_dict(), pth)
        frames = [torch.rand(3, n, a.height, a.width) * 2 - 1 for n in (9, 12)]
        st_io.save(os.path.join(w, "frames.safetensors"), {f"frames_{i}": f for i, f in enumerate(frames)})

    if a.bf16:
        model = model.to(torch.bfloat16)
        frames = [f.to(torch.bfloat16) for f in frames]
    enc_t, dec_t = [[], []], [[], []]
    for _ in range(a.repeat):
        s = vae_ref.StreamingVAE(model, a.height, a.width)
        lats = []
        for i, f in enumerate(frames):
            t0 = time.perf_counter()
            with torch.no_grad():
                lats.append(s.encode_chunk(f, i == 0))
            enc_t[i].append(time.perf_counter() - t0)
        s = vae_ref.StreamingVAE(model, a.height, a.width)
        decs = []
        for i, z in enumerate(lats):
            t0 = time.perf_counter()
            with torch.no_grad():
                decs.append(s.decode_chunk(z))
            dec_t[i].append(time.perf_counter() - t0)
    tag = "torch-bf16" if a.bf16 else "torch"
    if not a.bf16:  # the f32 outputs are the parity reference and the C decoder's input
        st_io.save(os.path.join(w, "latents.safetensors"), {f"latents_{i}": z for i, z in enumerate(lats)})
        st_io.save(os.path.join(w, "decoded.safetensors"), {f"decoded_{i}": d for i, d in enumerate(decs)})
    for i in range(2):
        print(f"{tag} encode chunk {i}: {statistics.median(enc_t[i]):.4f} s")
        print(f"{tag} decode chunk {i}: {statistics.median(dec_t[i]):.4f} s")

if __name__ == "__main__":
    main()
