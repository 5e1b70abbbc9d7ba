#!/usr/bin/env python3
"""The PyTorch ceiling for tests/cuda/run_gpu_checks.sh: the shapes of bench_cuda (and the
VAE's 720p convolutions) through PyTorch on the same GPU, bf16, timed the same way (CUDA
events, warm-up, median of N calls, random inputs), so that our kernels' TFLOP/s can be
read against what cuBLAS / FlashAttention / cuDNN reach through the framework.

    python3 tests/cuda/torch_ceiling.py [--iters N] [--deadline-s S] [--only gemm,attention,conv]
    python3 tests/cuda/torch_ceiling.py --self-test   # no GPU: every probe built on torch's
                                                      # meta device, output shapes checked

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
def gemm_probes(torch, F, dev):
    out = []
    for m, k, n, what in ((10800, 1536, 1536, "qkvo"), (10800, 1536, 8960, "ffn up"), (10800, 8960, 1536, "ffn down")):
        def make(m=m, k=k, n=n):
            x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
            w = torch.randn(n, k, device=dev, dtype=torch.bfloat16) * 0.05
            b = torch.randn(n, device=dev, dtype=torch.bfloat16) * 0.5
            return lambda: F.linear(x, w, b)
        out.append((f"torch linear bf16 ({what})", f"[{m},{k}]x[{n},{k}]^T", 2.0 * m * k * n, make, (m, n)))
    return out


# ---- attention: the DiT's 720p shape (Nq 10800, Nk 10800 + 10800, H 12, D 128), the
# 1k-query slice bench_cuda also runs on SIMT, and the VAE's single 384-wide head ----
def attention_probes(torch, F, dev):
    out = []
    for nq, nk, h, d, what in ((10800, 21600, 12, 128, "sdpa bf16"), (1024, 21600, 12, 128, "sdpa bf16 (1k q)"),
                               (14400, 14400, 1, 384, "sdpa bf16 D384")):
        def make(nq=nq, nk=nk, h=h, d=d):
            q = torch.randn(1, h, nq, d, device=dev, dtype=torch.bfloat16)
            k = torch.randn(1, h, nk, d, device=dev, dtype=torch.bfloat16)
            v = torch.randn(1, h, nk, d, device=dev, dtype=torch.bfloat16)
            return lambda: F.scaled_dot_product_attention(q, k, v)
        out.append((f"torch {what}", f"Nq={nq} Nk={nk} H={h} D={d}", 4.0 * nq * nk * d * h, make, (1, h, nq, d)))
    return out


# ---- conv3d, time unpadded (the causal cache supplies the front frames), space padded:
# bench_cuda's VAE shapes (96 ch at 180x320, 384 ch at 90x160, the 1x3x3 stride-2
# downsample whose bottom/right zero padding is applied to the input beforehand), then the
# VAE decoder's 3x3x3 stages at 720p output (MODEL-SPEC 5.4: 2h at 384 ch, 4h at 192, 8h
# at 96 ch, frames per call in the steady state) ----
def conv_probes(torch, F, dev):
    out = []
    # cin, cout, (kt, kh, kw), stride (h, w), frames out, h out, w out, what
    shapes = ((96, 96, (3, 3, 3), 1, 4, 180, 320, "bench stage"),
              (384, 384, (3, 3, 3), 1, 4, 90, 160, "bench latent"),
              (96, 96, (1, 3, 3), 2, 1, 180, 320, "bench downsample"),
              (384, 384, (3, 3, 3), 1, 2, 180, 320, "dec 2h"),
              (192, 192, (3, 3, 3), 1, 4, 360, 640, "dec 4h"),
              (96, 96, (3, 3, 3), 1, 4, 720, 1280, "dec 8h"))
    for cin, cout, k, st, t_out, ho, wo, what in shapes:
        kt, kh, kw = k
        t_in = t_out + kt - 1
        if st == 1:  # 'same' spatial padding inside the conv
            h_in, w_in, pad = ho, wo, (0, kh // 2, kw // 2)
        else:        # the downsample: input [2 ho + 1, 2 wo + 1] after its bottom/right pad
            h_in, w_in, pad = st * ho + 1, st * wo + 1, (0, 0, 0)

        def make(cin=cin, cout=cout, k=k, st=st, t_in=t_in, h_in=h_in, w_in=w_in, pad=pad):
            x = torch.randn(1, cin, t_in, h_in, w_in, device=dev, dtype=torch.bfloat16)
            w = torch.randn(cout, cin, *k, device=dev, dtype=torch.bfloat16) * 0.05
            b = torch.randn(cout, device=dev, dtype=torch.bfloat16) * 0.5
            return lambda: F.conv3d(x, w, b, stride=(1, st, st), padding=pad)
        flops = 2.0 * cin * cout * kt * kh * kw * t_out * ho * wo
        out.append((f"torch conv3d bf16 ({what})", f"{cin}->{cout} {kt}x{kh}x{kw}/{st} [{t_in},{h_in},{w_in}]", flops,
                    make, (1, cout, t_out, ho, wo)))
    return out


def self_test(torch, F, families):
    """Every probe built on the meta device (shapes only, no memory, no GPU): the output
    shape must be the one its FLOP count assumes. SDPA is skipped where this torch lacks it
    (Debian's 1.13 on CI)."""
    ok = bad = 0
    for fam, probes in families.items():
        if fam == "attention" and not hasattr(F, "scaled_dot_product_attention"):
            print(f"skip {fam}: torch {torch.__version__} has no scaled_dot_product_attention")
            continue
        for op, shape, _flops, make, want in probes(torch, F, "meta"):
            got = tuple(make()().shape)
            if got == tuple(want):
                ok += 1
                print(f"ok   {op} {shape} -> {got}")
            else:
                bad += 1
                print(f"FAIL {op} {shape} -> {got}, expected {tuple(want)}")
    print(f"{ok} passed, {bad} failed")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--deadline-s", type=float, default=100.0)
    ap.add_argument("--only", default="gemm,attention,conv")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    t0 = time.monotonic()
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001 - any import failure means "no ceiling here"
        print(f"PyTorch ceiling: not available (cannot import torch: {type(e).__name__}: {e})")
        return 1 if args.self_test else 0  # the self-test has nothing to test without torch
    families = {"gemm": gemm_probes, "attention": attention_probes, "conv": conv_probes}
    if args.self_test:
        return self_test(torch, F, families)
    if not torch.cuda.is_available():
        print(f"PyTorch ceiling: not available (torch {torch.__version__} sees no CUDA device)")
        return 0
    torch.backends.cudnn.benchmark = True  # cuDNN picks its fastest algorithm per shape, as ours should
    torch.backends.cuda.matmul.allow_tf32 = False
    print(f"PyTorch ceiling: torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
          f"{torch.backends.cudnn.version()}, {torch.cuda.get_device_name(0)}, median of {args.iters} calls")
    wanted = [f for f in args.only.split(",") if f]
    for fam in wanted:
        if fam not in families:
            print(f"unknown family {fam!r} (known: {', '.join(families)})")
            return 2
        for op, shape, flops, make, _ in families[fam](torch, F, "cuda"):
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
