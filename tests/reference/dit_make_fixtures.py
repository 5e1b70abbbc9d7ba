"""Generates DiT parity fixtures: random bf16 weights saved as InfVSR.ckpt is (torch.save zip of a
flat state dict), a chunk sequence with the KV cache, and the reference outputs.

    dit_make_fixtures.py --config config/models/infvsr-tiny.json --out DIR \
        [--layers N] [--scenes "6x10:3,3,3,2;4x6:3,1;48x64:3,3,1"] [--bad] [--seed S]

Writes into DIR:
    config.json           the model config actually used (num_layers overridden by --layers)
    model.ckpt            torch.save(state_dict) with bf16 tensors, MODEL-SPEC §4.9 key names
    inputs.safetensors    the `infvsr run dit` input (docs/VERIFY.md): context, latents_i,
                          start_frame_i, reset_i, context_i (new reference at a scene cut)
    expected.safetensors  pred_i, restored_i (f32) from the PyTorch reference
    expected_bf16.safetensors  the same from the reference in the official bf16 numerics
                          (dit_ref.py bf16=True), for the engine's bf16 activation mode
    bad_*.ckpt            (--bad) broken checkpoints for the loader's error tests
    stamp.txt             hash of the scripts and arguments; a rerun with the same stamp
                          reuses everything (the 30-layer fixture is 2.8 GB)

A scene is "HxW:T0,T1,...": latent grid height x width and the latent frames of each chunk.
Every scene after the first starts with a reset (scene cut) and a new context."""
import argparse
import hashlib
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dit_ref  # noqa: E402
import st_io  # noqa: E402


def parse_scenes(text):
    scenes = []
    for part in text.split(";"):
        grid, chunks = part.split(":")
        h, w = (int(v) for v in grid.lower().split("x"))
        scenes.append((h, w, [int(t) for t in chunks.split(",")]))
    return scenes


def init_weights(model, gen):
    """Random weights with O(1) activations, rounded to bf16: linear weights N(0, 1/fan_in),
    biases N(0, 0.05^2), norm gains 1 + N(0, 0.1^2), modulations N(0, 0.1^2)."""
    for name, p in model.named_parameters():
        shape = p.shape
        if name.endswith("modulation"):
            std, mean = 0.1, 0.0
        elif name.endswith("norm_q.weight") or name.endswith("norm_k.weight") or name.endswith("norm3.weight"):
            std, mean = 0.1, 1.0
        elif name.endswith("bias"):
            std, mean = 0.05, 0.0
        else:
            fan_in = p[0].numel()
            std, mean = 1.0 / fan_in ** 0.5, 0.0
        buf = torch.empty(shape, dtype=torch.float32)
        buf.normal_(mean, std, generator=gen)
        p.data.copy_(buf.to(torch.bfloat16))


def bf16_values(t):
    return t.to(torch.bfloat16).float()


def stamp_of(args):
    h = hashlib.sha256()
    here = os.path.dirname(os.path.abspath(__file__))
    for f in ("dit_ref.py", "dit_make_fixtures.py"):
        with open(os.path.join(here, f), "rb") as fh:
            h.update(fh.read())
    with open(args.config, "rb") as fh:
        h.update(fh.read())
    h.update(repr((args.layers, args.scenes, args.bad, args.seed)).encode())
    return h.hexdigest()


def write_bad(sd, out):
    """Broken checkpoints: each must be rejected with an error naming the key."""
    n_layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    dim = sd["head.head.weight"].shape[1]
    cases = {
        "missing": lambda d: d.pop("blocks.1.ffn.0.bias"),
        "shape": lambda d: d.__setitem__("blocks.0.self_attn.k.weight",
                                         torch.zeros(dim // 2, dim, dtype=torch.bfloat16)),
        "dtype": lambda d: d.__setitem__("head.head.bias",
                                         torch.zeros(d["head.head.bias"].shape, dtype=torch.int64)),
        "f64": lambda d: d.__setitem__("time_embedding.0.weight", d["time_embedding.0.weight"].double()),
        "extra": lambda d: d.__setitem__("blocks.%d.modulation" % n_layers,
                                         torch.zeros(1, 6, dim, dtype=torch.bfloat16)),
    }
    for name, edit in cases.items():
        d = dict(sd)
        edit(d)
        torch.save(d, os.path.join(out, "bad_%s.ckpt" % name))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", type=int, default=0)
    ap.add_argument("--scenes", default="6x10:3,3,3,2;4x6:3,1;48x64:3,3,1")
    ap.add_argument("--n-ctx", type=int, default=145)
    ap.add_argument("--bad", action="store_true")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--weights-only", action="store_true", help="write config.json + model.ckpt only")
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    stamp = stamp_of(args)
    stamp_path = os.path.join(args.out, "stamp.txt")
    if os.path.exists(stamp_path) and open(stamp_path).read().strip() == stamp:
        print("fixtures up to date in", args.out)
        return
    if os.path.exists(stamp_path):
        os.remove(stamp_path)

    with open(args.config) as fh:
        cfg = json.load(fh)
    if args.layers:
        cfg["dit"]["num_layers"] = args.layers
        cfg["name"] = cfg["name"] + "-%dl" % args.layers
    with open(os.path.join(args.out, "config.json"), "w") as fh:
        json.dump(cfg, fh, indent=2)

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    model = dit_ref.from_config(cfg["dit"])
    init_weights(model, gen)
    sd = model.state_dict()
    torch.save(sd, os.path.join(args.out, "model.ckpt"))
    print("weights: %d tensors, %.1f M params, %.1f s" %
          (len(sd), sum(v.numel() for v in sd.values()) / 1e6, time.time() - t0))
    if args.bad:
        write_bad(sd, args.out)
    if args.weights_only:
        with open(stamp_path, "w") as fh:
            fh.write(stamp + "\n")
        return

    d = cfg["dit"]
    inputs, expected, expected_bf16 = {}, {}, {}
    i = 0
    t0 = time.time()
    for s, (h, w, chunks) in enumerate(parse_scenes(args.scenes)):
        ctx = bf16_values(torch.randn(args.n_ctx, d["text_dim"], generator=gen))
        inputs["context" if s == 0 else "context_%d" % i] = ctx
        ckv, ckv16 = model.context(ctx), model.context(ctx, bf16=True)
        cache, cache16, start = None, None, 0
        for nf in chunks:
            lat = bf16_values(torch.randn(d["in_dim"], nf, h, w, generator=gen))
            pred, cache = model(lat, start, cache, ckv=ckv)
            pred16, cache16 = model(lat, start, cache16, ckv=ckv16, bf16=True)
            inputs["latents_%d" % i] = lat
            inputs["start_frame_%d" % i] = torch.tensor([start], dtype=torch.int64)
            inputs["reset_%d" % i] = torch.tensor([1 if (s > 0 and start == 0) else 0], dtype=torch.int64)
            expected["pred_%d" % i] = pred
            expected["restored_%d" % i] = dit_ref.restore(lat, pred)
            expected_bf16["pred_%d" % i] = pred16
            expected_bf16["restored_%d" % i] = dit_ref.restore(lat, pred16, bf16=True)
            start += nf
            i += 1
    st_io.save(os.path.join(args.out, "inputs.safetensors"), inputs)
    st_io.save(os.path.join(args.out, "expected.safetensors"), expected)
    st_io.save(os.path.join(args.out, "expected_bf16.safetensors"), expected_bf16)
    print("reference: %d chunks, %.1f s" % (i, time.time() - t0))
    with open(stamp_path, "w") as fh:
        fh.write(stamp + "\n")


if __name__ == "__main__":
    main()
