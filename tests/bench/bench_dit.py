"""DiT benchmark: the full 30-layer DiT forward on one chunk, C (`infvsr run dit --timing`) vs the
PyTorch f32 reference (tests/reference/dit_ref.py) and PyTorch in bf16 (torch_dit_bf16.py: the
DiT's shapes in torch.bfloat16) with the same thread count.

    /usr/bin/python3 tests/bench/bench_dit.py --infvsr build/infvsr [--model InfVSR-like.ckpt]
        [--dir DIR] [--grid 16x16] [--frames 3] [--threads N] [--repeat 3] [--base OLD/infvsr]
        [--no-torch] [--precision f32|bf16] [--layers L]

--precision: the C side's (default f32); the PyTorch f32 and bf16 columns are always both run.
--layers L: only the first L blocks on every side (a quicker run; GFLOP/s stay comparable).

--base: every repetition also runs that (older) binary right after the new one, on the same
inputs, and the summary adds its medians and the ratio new/base (before/after comparisons of
a change; < 1 means the new build is faster). --no-torch skips the PyTorch side.

Without --model, full-size random bf16 weights are generated once into DIR
(default $INFVSR_BENCH_DIR or ./bench-dit; 2.8 GB, reused while up to date).
The sequence is two chunks of the same size: chunk 0 without cache (first chunk of a scene),
chunk 1 with the previous chunk cached (steady state). Prints for each: median ms of C and
PyTorch, the ratio, GFLOP/s (2 x MACs of the linears + 4*Nq*Nk*D*H attention), and the C
process's peak RSS. The PyTorch side keeps f32 copies of the weights so that it times GEMMs,
not bf16->f32 casts."""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import dit_ref  # noqa: E402
import st_io  # noqa: E402


def flops(cfg, n, n_cached, n_ctx):
    dim, ffn, L = cfg["dim"], cfg["ffn_dim"], cfg["num_layers"]
    lin = n * (6 * dim * dim + 2 * dim * ffn)
    attn = 2 * n * (n + n_cached) * dim + 2 * n * n_ctx * dim
    outer = n * (cfg["in_dim"] * 4 * dim + dim * cfg["out_dim"] * 4)
    return 2.0 * (L * (lin + attn) + outer)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--infvsr", required=True)
    ap.add_argument("--model")
    ap.add_argument("--dir", default=os.environ.get("INFVSR_BENCH_DIR", "bench-dit"))
    ap.add_argument("--config", default=os.path.join(ROOT, "config", "models", "infvsr-full.json"))
    ap.add_argument("--grid", default="16x16", help="latent h x w (patch grid is half of each)")
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--base", help="an older infvsr binary to compare with (before/after)")
    ap.add_argument("--no-torch", action="store_true", help="time only the C binaries")
    ap.add_argument("--precision", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--layers", type=int, default=0)
    args = ap.parse_args()

    os.makedirs(args.dir, exist_ok=True)
    model_path = args.model
    if not model_path:
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "reference", "dit_make_fixtures.py"),
                        "--config", args.config, "--out", args.dir, "--weights-only"], check=True)
        model_path = os.path.join(args.dir, "model.ckpt")
    with open(args.config) as fh:
        cfg = json.load(fh)["dit"]
    if args.layers:
        # the C side reads its layer count from a config copy; the checkpoint's later blocks are unused
        full = json.load(open(args.config))
        full["dit"]["num_layers"] = cfg["num_layers"] = args.layers
        args.config = os.path.join(args.dir, "bench_config_%d_layers.json" % args.layers)
        with open(args.config, "w") as fh:
            json.dump(full, fh)

    h, w = (int(v) for v in args.grid.lower().split("x"))
    gen = torch.Generator().manual_seed(7)
    ctx = torch.randn(145, cfg["text_dim"], generator=gen).to(torch.bfloat16).float()
    lats = [torch.randn(cfg["in_dim"], args.frames, h, w, generator=gen).to(torch.bfloat16).float() for _ in range(2)]
    inp = os.path.join(args.dir, "bench_inputs.safetensors")
    out = os.path.join(args.dir, "bench_outputs.safetensors")
    st_io.save(inp, {"context": ctx, "latents_0": lats[0], "latents_1": lats[1]})
    n = args.frames * (h // 2) * (w // 2)

    # C and PyTorch alternate, one repetition each at a time, so that a change in machine load
    # during the run affects both sides alike (medians over the repetitions).
    torch.set_num_threads(args.threads)
    t0 = time.time()
    model, ckv = None, None
    if not args.no_torch:
        model = dit_ref.from_config(cfg)
        sd = torch.load(model_path)
        model.load_state_dict(sd)
        del sd
        if args.layers:
            model.blocks = model.blocks[:args.layers]
        model.upcast_weights()
        ckv = model.context(ctx)
        import torch_dit_bf16
        bmodel, bckv, bxs = torch_dit_bf16.make(cfg, torch.bfloat16, n)
    t_load = time.time() - t0

    cmd = [args.infvsr, "run", "dit", "--model", model_path, "--config", args.config, "--in", inp, "--out", out,
           "--threads", str(args.threads), "--repeat", "1", "--timing", "--precision", args.precision]
    c_runs, py_ms, rss, load_ms = [[], []], [[], []], 0.0, 0.0
    bf_ms = [[], []]
    b_runs, b_rss = [[], []], 0.0
    def warm_page_cache():
        # The CPU in bf16 pages out the checkpoint pages of the weights it packed
        # (kernels/cpu/weight_pack.c): read the file before every C run, so that no run pays
        # for the disk reads the previous one left behind.
        with open(model_path, "rb") as fh:
            while fh.read(1 << 24):
                pass

    for r in range(args.repeat):
        warm_page_cache()
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            print(p.stdout, p.stderr)
            sys.exit("infvsr run dit failed")
        for i, v in enumerate(re.findall(r"median_ms ([0-9.]+)", p.stdout)):
            c_runs[i].append(float(v))
        rss = max(rss, float(re.search(r"peak_rss_mib ([0-9.]+)", p.stdout).group(1)))
        load_ms = float(re.search(r"load_ms ([0-9.]+)", p.stdout).group(1))
        c_out = st_io.load(out)
        if args.base:
            warm_page_cache()
            pb = subprocess.run([args.base] + cmd[1:], capture_output=True, text=True)
            if pb.returncode != 0:
                print(pb.stdout, pb.stderr)
                sys.exit("base infvsr run dit failed")
            for i, v in enumerate(re.findall(r"median_ms ([0-9.]+)", pb.stdout)):
                b_runs[i].append(float(v))
            b_rss = max(b_rss, float(re.search(r"peak_rss_mib ([0-9.]+)", pb.stdout).group(1)))
            if r == 0:
                b_out = st_io.load(out)
                for i in range(2):
                    e = float(torch.linalg.norm(c_out["pred_%d" % i] - b_out["pred_%d" % i]) /
                              torch.linalg.norm(b_out["pred_%d" % i]))
                    print("chunk %d: new vs base pred rel err %.2e" % (i, e))
        if args.no_torch:
            print("repetition %d: C %s ms%s" % (r, ["%.0f" % c_runs[i][-1] for i in range(2)],
                                               ", base %s ms" % ["%.0f" % b_runs[i][-1] for i in range(2)]
                                               if args.base else ""))
            continue
        cache = None
        for i in range(2):
            t0 = time.perf_counter()
            pred, cache = model(lats[i], i * args.frames, cache, ckv=ckv)
            py_ms[i].append((time.perf_counter() - t0) * 1e3)
            if r == 0:
                e = float(torch.linalg.norm(c_out["pred_%d" % i] - pred) / torch.linalg.norm(pred))
                print("chunk %d: C vs PyTorch pred rel err %.2e" % (i, e))
        for i, v in enumerate(torch_dit_bf16.chunk_ms(bmodel, bckv, bxs)):
            bf_ms[i].append(v)
        print("repetition %d: C %s ms, PyTorch f32 %s ms, PyTorch bf16 %s ms"
              % (r, ["%.0f" % c_runs[i][-1] for i in range(2)], ["%.0f" % py_ms[i][-1] for i in range(2)],
                 ["%.0f" % bf_ms[i][-1] for i in range(2)]))
    c_ms = [statistics.median(c_runs[i]) for i in range(2)]

    print("DiT %d layers, dim %d, chunk %d frames x %dx%d latents = %d tokens, %d threads, median of %d, C in %s"
          % (cfg["num_layers"], cfg["dim"], args.frames, h, w, n, args.threads, args.repeat, args.precision))
    print("C model load %.0f ms (mmap + validate + constants); PyTorch load+upcast %.0f ms" % (load_ms, t_load * 1e3))
    for i, label in enumerate(["first chunk (no cache)", "steady chunk (cache of %d tokens)" % n]):
        f = flops(cfg, n, 0 if i == 0 else n, 145)
        if args.base:
            bm = statistics.median(b_runs[i])
            print("%-36s new %9.1f ms   base %9.1f ms   new/base %.3f" % (label, c_ms[i], bm, c_ms[i] / bm))
        if args.no_torch:
            continue
        pm, bm = statistics.median(py_ms[i]), statistics.median(bf_ms[i])
        print("%-36s C %9.1f ms (%6.1f GFLOP/s)   PyTorch f32 %9.1f ms (%6.1f GFLOP/s)   PyTorch bf16 %9.1f ms "
              "(%6.1f GFLOP/s)   C speedup vs f32 %.2fx, vs bf16 %.2fx"
              % (label, c_ms[i], f / c_ms[i] / 1e6, pm, f / pm / 1e6, bm, f / bm / 1e6, pm / c_ms[i], bm / c_ms[i]))
    print("C peak RSS %.0f MiB (weights: bf16, read in place from the mmapped checkpoint; %s activations)"
          % (rss, args.precision))
    if args.base:
        print("base peak RSS %.0f MiB, new/base %.3f" % (b_rss, rss / b_rss))


if __name__ == "__main__":
    main()
