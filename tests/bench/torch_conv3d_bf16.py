"""PyTorch's bf16 and f32 conv3d (oneDNN in bf16) on the VAE's conv shapes: the PyTorch side of
bench_cpu's `conv3d` rows (same shapes, in the same order).

    /usr/bin/python3 tests/bench/torch_conv3d_bf16.py [threads] [repeats]
Prints one line per shape: median ms and GFLOP/s (the direct conv's flops) of F.conv3d in f32
and in bf16, the two alternating. With BENCH_CPU_TIME=1 the times are process CPU seconds /
threads (as bench_cpu's)."""
import os
import sys
import time

import torch
import torch.nn.functional as F

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
torch.set_num_threads(threads)
clock = (lambda: time.process_time() / threads) if os.environ.get("BENCH_CPU_TIME") == "1" else time.perf_counter
# (Cin, Cout, kt, k, stride, output frames, output H = W): bench_cpu.c's bench_conv3d calls;
# k = 3: padding 1, or with stride 2 the VAE's downsampling (pad right/bottom 1)
SHAPES = ((96, 96, 3, 3, 1, 4, 64), (192, 192, 3, 3, 1, 4, 32), (384, 384, 3, 3, 1, 2, 16), (384, 384, 3, 3, 1, 1, 8),
          (192, 96, 1, 3, 1, 4, 64), (384, 192, 1, 3, 1, 4, 32), (96, 96, 3, 3, 1, 4, 128),
          (96, 96, 1, 3, 2, 4, 32), (192, 192, 1, 3, 2, 4, 16), (96, 192, 1, 1, 1, 4, 32), (192, 384, 1, 1, 1, 2, 16))
with torch.no_grad():
    for cin, cout, kt, k, s, T, hw in SHAPES:
        args = {}
        for dt in (torch.float32, torch.bfloat16):
            x = (torch.rand(1, cin, T + kt - 1, s * hw, s * hw) * 2 - 1).to(dt)
            if k == 3 and s == 2:
                x = F.pad(x, (0, 1, 0, 1))  # the VAE pads right and bottom, then convolves unpadded
            w = ((torch.rand(cout, cin, kt, k, k) * 2 - 1) * 0.05).to(dt)
            b = ((torch.rand(cout) * 2 - 1) * 0.1).to(dt)
            pad = (0, 1, 1) if k == 3 and s == 1 else 0
            args[dt] = (x, w, b, pad)
            F.conv3d(x, w, b, stride=(1, s, s), padding=pad)
        ts = {dt: [] for dt in args}
        for _ in range(reps):
            for dt, (x, w, b, pad) in args.items():
                t0 = clock()
                F.conv3d(x, w, b, stride=(1, s, s), padding=pad)
                ts[dt].append(clock() - t0)
        flop = 2.0 * cout * cin * kt * k * k * T * hw * hw
        med = {dt: sorted(v)[len(v) // 2] for dt, v in ts.items()}
        print("torch conv3d %3d->%-3d %dx%dx%d%s %d frames %3dx%-3d f32 %7.2f ms %6.1f GF/s | bf16 %7.2f ms %6.1f GF/s"
              % (cin, cout, kt, k, k, " s2" if s == 2 else "   ", T, hw, hw, med[torch.float32] * 1e3,
                 flop / med[torch.float32] * 1e-9, med[torch.bfloat16] * 1e3, flop / med[torch.bfloat16] * 1e-9))
