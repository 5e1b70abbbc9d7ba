#!/usr/bin/python3
"""PyTorch reference of the whole InfVSR pipeline (MODEL-SPEC.md §2, §3.1, §7), written here from
the spec on top of the module references (dit_ref, vae_ref, visual_ref) and the scheduler
reference (scene_ref: ContentDetector on OpenCV's cvtColor, FlashFilter MERGE, drain()).

Per chunk (start, n, new_scene, update) of scene_ref.schedule():
  new_scene: DiT cache empty, VAE stream reset, position 0
  update or first: ctx = visual(prepare_reference(frames[0])), DiT cross K/V
  x = u8 / 255 * 2 - 1 (f32) -> interpolate(bicubic, x4, antialias=True) (f32, no clamp)
  replicate pad right/bottom to 16, time to L' = 1 mod 4 (scene start) / 0 mod 4
  VAE encode -> DiT step (start_frame = position; position += T) -> restore -> VAE decode
  crop [:L, :H, :W]; u8 = trunc(clamp((x + 1) * 127.5, 0, 255))
Everything computes in f32 with the weights exactly as stored (the C engine's contract).
With bf16=True the same pipeline runs in the official bf16 numerics (MODEL-SPEC §2.4): the
reference image cast to bf16 into Swin-L (model.to(bfloat16)), the upscale in f32 cast to bf16,
the VAE as model.to(bfloat16), the DiT and the restore in dit_ref's bf16 mode, the decoded bf16
frames quantised through f32 (§2.6).

As a fixture generator:
    pipeline_ref.py OUT_DIR [--height 26 --width 38 --frames 60 --seed 7]
writes OUT_DIR/model/ (the four official files in torch.save format + model.json, random
weights) and OUT_DIR/case.safetensors:
    lr        [N, h, w, 3] u8    the input clip (hard cut + slow drift for a reference refresh)
    sr_f32    [N, 3, H, W] f32   decoded frames before quantisation (cropped)
    sr_u8     [N, H, W, 3] u8    quantised output frames
    chunks    [C, 6] i64         first, n, new_scene, update, n_padded, start_frame
    cuts      [K] i64            cut frames reported by the ContentDetector reference
and the same for the run without scene detection as *_noscene; with --bf16 also the run with
scene detection in bf16 as sr_f32_bf16, sr_u8_bf16, chunks_bf16 (the schedule is the same)."""
import argparse
import copy
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dit_make_fixtures  # noqa: E402
import dit_ref  # noqa: E402
import scene_ref  # noqa: E402
import st_io  # noqa: E402
import vae_ref  # noqa: E402
import visual_ref  # noqa: E402

TINY_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "config", "models",
                           "infvsr-tiny.json")


# ---------------------------------------------------------------- model files (official formats)

def write_model(d, cfg, seed):
    """Random weights for `cfg`, saved as the four official files; returns the f32 modules."""
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    gen = torch.Generator().manual_seed(seed)
    dit = dit_ref.from_config(cfg["dit"])
    dit_make_fixtures.init_weights(dit, gen)
    torch.save(dit.state_dict(), os.path.join(d, "InfVSR.ckpt"))          # flat, bf16

    vc = cfg["vae"]
    vae = vae_ref.VideoVAE(dim=vc["dim"], dim_mult=tuple(vc["dim_mult"]),
                           num_res_blocks=vc["num_res_blocks"]).eval()
    vae_ref.random_weights_(vae, seed + 1)
    torch.save({"model_state": vae.state_dict()}, os.path.join(d, "Wan2.1_VAE.pth"))   # nested, f32

    vis, vgen = visual_ref.build(cfg["visual"], seed + 2)
    torch.save(visual_ref.ram_file_dict(vis, vgen), os.path.join(d, "ram_swin_large_14m.pth"))
    dape = visual_ref.random_dape(cfg["visual"], vgen)
    torch.save(dape, os.path.join(d, "DAPE.pth"))
    visual_ref.merge_dape(vis, dape, cfg["visual"])
    return dit, vae, vis


# ---------------------------------------------------------------- the pipeline

def upscale(frames_u8, scale):
    """[L, h, w, 3] u8 -> [3, L, scale*h, scale*w] f32 in model range (§2.1, §3.1)."""
    x = torch.from_numpy(np.ascontiguousarray(frames_u8)).permute(0, 3, 1, 2).to(torch.float32)
    x = x / 255.0 * 2.0 - 1.0
    y = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False, antialias=True)
    return y.permute(1, 0, 2, 3).contiguous()


def pad(x, first):
    """Replicate right/bottom to multiples of 16 and in time to L' = 1 / 0 (mod 4) (§2.4)."""
    _, L, H, W = x.shape
    x = F.pad(x, (0, (-W) % 16, 0, (-H) % 16), mode="replicate")
    tp = ((1 if first else 0) - L) % 4
    if tp:
        x = torch.cat([x, x[:, -1:].expand(-1, tp, -1, -1)], dim=1)
    return x


def quantise(y):
    """[3, L, H, W] in [-1, 1] -> [L, H, W, 3] u8: trunc(clamp((x + 1) * 127.5, 0, 255)) (§2.6)."""
    v = ((y + 1.0) * 127.5).clamp(0, 255)
    return v.to(torch.uint8).permute(1, 2, 3, 0).contiguous()


@torch.no_grad()
def run(frames, dit, vae, vis, cfg, scale=4, scene_detection=True, max_frames=None, bf16=False):
    n_all, h, w, _ = frames.shape
    _, cuts, chunks = scene_ref.schedule(list(frames), scene_detection=scene_detection, max_frames=max_frames)
    H, W = scale * h, scale * w
    img = cfg["visual"]["img_size"]
    act = torch.bfloat16 if bf16 else torch.float32
    if bf16:   # the official pipeline's model.to(torch.bfloat16), on copies
        vae, vis = copy.deepcopy(vae).to(act), copy.deepcopy(vis).to(act)
    stream = vae_ref.StreamingVAE(vae, H + (-H) % 16, W + (-W) % 16)
    sr, rows = [], []
    ckv = cache = None
    position = 0
    for start, n, new_scene, update in chunks:
        first = new_scene or cache is None and position == 0
        if new_scene:
            cache, position = None, 0
        chunk = frames[start:start + n]
        if update or ckv is None:
            image = visual_ref.prepare_reference(torch.from_numpy(np.ascontiguousarray(chunk[0])), img)
            _, ctx = vis(image.to(act))
            ckv = dit.context(ctx.float(), bf16=bf16)
        x = pad(upscale(chunk, scale), first).to(act)   # replication commutes with the rounding
        lat = stream.encode_chunk(x, first).float()
        pred, cache = dit(lat, position, cache, ckv=ckv, bf16=bf16)
        restored = dit_ref.restore(lat, pred, bf16=bf16)
        rows.append([start, n, int(new_scene), int(update), x.shape[1], position])
        position += lat.shape[1]
        y = stream.decode_chunk(restored.to(act)).float()
        assert y.shape[1] == x.shape[1], (y.shape, x.shape)
        sr.append(y[:, :n, :H, :W])
    sr = torch.cat(sr, dim=1)                                   # [3, N, H, W]
    return sr.permute(1, 0, 2, 3).contiguous(), quantise(sr), rows, cuts


# ---------------------------------------------------------------- the test clip

def make_clip(h, w, n, seed):
    """A slow colour drift (consecutive frames far below 27, the reference 15+ frames back far
    above: a reference refresh without a cut) with a moving box, then a hard cut to another
    scene with a textured moving pattern."""
    rng = np.random.default_rng(seed)
    cut = n // 2
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for t in range(n):
        if t < cut:
            a = t / max(1, cut - 1)
            base = np.array([30 + 200 * a, 180 - 130 * a, 60 + 120 * a])
            img = np.zeros((h, w, 3)) + base
            img += 25 * np.sin((xx[..., None] + 2 * t) / 4.0 + np.array([0, 1, 2]))
            bx, by = (3 + t) % max(1, w - 8), (2 + t // 2) % max(1, h - 6)
            img[by:by + 6, bx:bx + 8] = (250, 250, 250)
        else:
            u = t - cut
            img = np.zeros((h, w, 3)) + np.array([200, 40, 90])
            img += 40 * np.cos((yy[..., None] + u) / 6.0 + (xx[..., None] - u / 2.0) / 8.0 + np.array([0, 2, 4]))
        img += rng.normal(0, 4, img.shape)
        out.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    return np.stack(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--config", default=TINY_CONFIG)
    ap.add_argument("--height", type=int, default=26)
    ap.add_argument("--width", type=int, default=38)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--bf16", action="store_true", help="also the run with scene detection in bf16")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    with open(a.config) as f:
        cfg = json.load(f)
    t0 = time.time()
    dit, vae, vis = write_model(os.path.join(a.out, "model"), cfg, a.seed)
    frames = make_clip(a.height, a.width, a.frames, a.seed)
    out = {"lr": torch.from_numpy(frames)}
    summary = []
    runs = [("", {}), ("_noscene", dict(scene_detection=False))]
    if a.bf16:
        runs.append(("_bf16", dict(bf16=True)))
    for key, kw in runs:
        t1 = time.time()
        sr_f32, sr_u8, rows, cuts = run(frames, dit, vae, vis, cfg, **kw)
        out["sr_f32" + key] = sr_f32
        out["sr_u8" + key] = sr_u8
        out["chunks" + key] = torch.tensor(rows, dtype=torch.int64)
        out["cuts" + key] = torch.tensor(cuts if cuts else [-1], dtype=torch.int64)
        clamped = (sr_f32.abs() >= 1).float().mean().item()
        summary.append("run%s: chunks %s cuts %s, clamped %.3f, rms %.3f, %.1f s" % (
            key or "(default)", [r[:4] for r in rows], cuts, clamped, sr_f32.pow(2).mean().sqrt().item(),
            time.time() - t1))
    if a.bf16:
        d = (out["sr_f32_bf16"] - out["sr_f32"]).norm() / out["sr_f32"].norm()
        du8 = (out["sr_u8_bf16"].int() - out["sr_u8"].int()).abs()
        summary.append("bf16 vs f32: decoded rel err %.3e, u8 max |diff| %d, mean |diff| %.3f" % (
            d.item(), du8.max().item(), du8.float().mean().item()))
    rows = out["chunks"].tolist()
    assert any(r[2] for r in rows[1:]), "the clip must contain a scene cut"
    assert any(r[3] and not r[2] for r in rows), "the clip must contain a reference refresh without a cut"
    st_io.save(os.path.join(a.out, "case.safetensors"), out)
    print("\n".join(summary))
    print("pipeline_ref: %d frames %dx%d -> x4, %.1f s" % (a.frames, a.width, a.height, time.time() - t0))


if __name__ == "__main__":
    main()
