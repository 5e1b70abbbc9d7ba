#!/usr/bin/env python3
"""The PyTorch ceiling for tests/cuda/run_gpu_checks.sh: the shapes of bench_cuda (and the
VAE's 720p convolutions) through PyTorch on the same GPU, bf16, timed the same way (CUDA
events, warm-up, median of N calls, random inputs), so that our kernels' TFLOP/s can be
read against what cuBLAS / FlashAttention / cuDNN reach through the framework.

    python3 tests/cuda/torch_ceiling.py [--iters N] [--deadline-s S] [--only gemm,attention,conv]

Prints one markdown row per probe in bench_cuda's columns (op, shape, ms, TFLOP/s, -, -).
Never fails the check run for want of PyTorch: without torch or without a CUDA device it
prints "PyTorch ceiling: not available (<reason>)" and exits 0. A probe that raises (a
backend PyTorch lacks for a shape, out of memory) is a row saying so, not an exit.
Stops starting probes once --deadline-s has passed (the caller also holds a timeout)."""
import argparse
import sys
import time

def median_ms(torch, fn, iters):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        e0 = torch.cuda.Event(enable_timing=True)
        e1 = torch.cuda.Event(enable_timing=True)
        e0.record()
        fn()
        e1.record()
        e1.synchronize()
        times.append(e0.elapsed_time(e1))
    times.sort()
    return times[len(times) // 2]


def row(op, shape, ms, flops, note=""):
    tf = flops / (ms * 1e-3) / 1e12 if ms > 0 else 0.0
    print(f"| {op:<26} | {shape:<30} | {ms:9.3f} | {tf:8.1f} | {'-':>8} | {'-':>5} |{(' ' + note) if note else ''}",
          flush=True)


# ---- GEMM: bench_cuda's linear rows (y = x w^T + b, bf16, fp32 accumulate) ----
def gemm_probes(torch, F):
    out = []
    for m, k, n, what in ((10800, 1536, 1536, "qkvo"), (10800, 1536, 8960, "ffn up"), (10800, 8960, 1536, "ffn down")):
        def make(m=m, k=k, n=n):
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.05
            b = torch.randn(n, device="cuda", dtype=torch.bfloat16) * 0.5
            return lambda: F.linear(x, w, b)
        out.append((f"torch linear bf16 ({what})", f"[{m},{k}]x[{n},{k}]^T", 2.0 * m * k * n, make))
    return out


# ---- attention: the DiT's 720p shape (Nq 10800, Nk 10800 + 10800, H 12, D 128), the
# 1k-query slice bench_cuda also runs on SIMT, and the VAE's single 384-wide head ----
def attention_probes(torch, F):
    out = []
    for nq, nk, h, d, what in ((10800, 21600, 12, 128, "sdpa bf16"), (1024, 21600, 12, 128, "sdpa bf16 (1k q)"),
                               (14400, 14400, 1, 384, "sdpa bf16 D384")):
        def make(nq=nq, nk=nk, h=h, d=d):
            q = torch.randn(1, h, nq, d, device="cuda", dtype=torch.bfloat16)
            k = torch.randn(1, h, nk, d, device="cuda", dtype=torch.bfloat16)
            v = torch.randn(1, h, nk, d, device="cuda", dtype=torch.bfloat16)
            return lambda: F.scaled_dot_product_attention(q, k, v)
        out.append((f"torch {what}", f"Nq={nq} Nk={nk} H={h} D={d}", 4.0 * nq * nk * d * h, make))
    return out


# ---- conv3d 3x3x3, time unpadded (the causal cache supplies the 2 front frames), space
# padded by 1: bench_cuda's quarter-size stage, then the VAE decoder's stages at 720p
# output (MODEL-SPEC 5.4: latent 90x160 at 384 ch, 2h at 384, 4h at 192, 8h at 96) ----
def conv_probes(torch, F):
    out = []
    for cin, cout, t_out, hh, ww, what in ((96, 96, 4, 180, 320, "bench stage"),
                                          (384, 384, 1, 90, 160, "dec latent"),
                                          (384, 384, 2, 180, 320, "dec 2h"),
                                          (192, 192, 4, 360, 640, "dec 4h"),
                                          (96, 96, 4, 720, 1280, "dec 8h")):
        def make(cin=cin, cout=cout, t_out=t_out, hh=hh, ww=ww):
            x = torch.randn(1, cin, t_out + 2, hh, ww, device="cuda", dtype=torch.bfloat16)
            w = torch.randn(cout, cin, 3, 3, 3, device="cuda", dtype=torch.bfloat16) * 0.05
            b = torch.randn(cout, device="cuda", dtype=torch.bfloat16) * 0.5
            return lambda: F.conv3d(x, w, b, padding=(0, 1, 1))
        flops = 2.0 * cin * cout * 27 * t_out * hh * ww
        out.append((f"torch conv3d bf16 ({what})", f"{cin}->{cout} 3x3x3 [{t_out + 2},{hh},{ww}]", flops, make))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--deadline-s", type=float, default=100.0)
    ap.add_argument("--only", default="gemm,attention,conv")
    args = ap.parse_args()
    t0 = time.monotonic()
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001 - any import failure means "no ceiling here"
        print(f"PyTorch ceiling: not available (cannot import torch: {type(e).__name__}: {e})")
        return 0
    if not torch.cuda.is_available():
        print(f"PyTorch ceiling: not available (torch {torch.__version__} sees no CUDA device)")
        return 0
    torch.backends.cudnn.benchmark = True  # cuDNN picks its fastest algorithm per shape, as ours should
    torch.backends.cuda.matmul.allow_tf32 = False
    print(f"PyTorch ceiling: torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
          f"{torch.backends.cudnn.version()}, {torch.cuda.get_device_name(0)}, median of {args.iters} calls")
    families = {"gemm": gemm_probes, "attention": attention_probes, "conv": conv_probes}
    wanted = [f for f in args.only.split(",") if f]
    for fam in wanted:
        if fam not in families:
            print(f"unknown family {fam!r} (known: {', '.join(families)})")
            return 2
        for op, shape, flops, make in families[fam](torch, F):
            if time.monotonic() - t0 > args.deadline_s:
                print(f"| {op:<26} | {shape:<30} | {'-':>9} | {'-':>8} | {'-':>8} | {'-':>5} | skipped: deadline")
                continue
            fn = None
            try:
                fn = make()
                ms = median_ms(torch, fn, args.iters)
                row(op, shape, ms, flops)
            except Exception as e:  # noqa: BLE001 - report and go on with the next shape
                msg = str(e).splitlines()[0][:80] if str(e) else type(e).__name__
                print(f"| {op:<26} | {shape:<30} | {'-':>9} | {'-':>8} | {'-':>8} | {'-':>5} | failed: {msg}")
            finally:
                fn = None  # drop this probe's tensors before the next one allocates
                torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
