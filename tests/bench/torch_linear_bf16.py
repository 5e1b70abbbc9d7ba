"""PyTorch's bf16 and f32 linear (oneDNN matmul in bf16: brg:avx512_core_bf16 or _amx_bf16 with
ONEDNN_VERBOSE=1) on the DiT's GEMM shapes: the PyTorch side of bench_cpu's `dit` rows.

    /usr/bin/python3 tests/bench/torch_linear_bf16.py [threads] [repeats]
Prints one line per shape: median ms and GFLOP/s of F.linear in f32 and in bf16. With
BENCH_CPU_TIME=1 the times are process CPU seconds / threads (as bench_cpu's), which on a shared
machine is closer to what the cores would take unshared (OpenMP's spin-waits count too)."""
import os
import sys
import time

import torch
import torch.nn.functional as F

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
torch.set_num_threads(threads)
for M, K, N in ((192, 1536, 1536), (192, 1536, 8960), (192, 8960, 1536)):
    res = []
    for dt in (torch.float32, torch.bfloat16):
        x, w = torch.randn(M, K).to(dt), (torch.randn(N, K) * 0.1).to(dt)
        F.linear(x, w)
        ts = []
        clock = (lambda: time.process_time() / threads) if os.environ.get("BENCH_CPU_TIME") == "1" else time.perf_counter
        for _ in range(reps):
            t0 = clock()
            F.linear(x, w)
            ts.append(clock() - t0)
        t = sorted(ts)[len(ts) // 2]
        res.append((t * 1e3, 2.0 * M * K * N / t * 1e-9))
    print("torch linear M=%-5d K=%-5d N=%-5d  f32 %8.2f ms %7.1f GF/s | bf16 %8.2f ms %7.1f GF/s"
          % (M, K, N, res[0][0], res[0][1], res[1][0], res[1][1]))
