"""Generates VAE test fixtures: random weights saved as Wan2.1_VAE.pth (torch.save zip) and a
stream of chunks with the reference's per-chunk outputs (safetensors).

  vae_gen.py --out DIR --name CASE [--dim 8] [--height 48 --width 80] [--layout nested|flat]
             [--wdtype f32|bf16] [--tile-threshold N --tile T --stride S] [--chunks 9,12,12,12,5]
             [--bf16-ref]

Writes DIR/CASE.pth and DIR/CASE.safetensors holding, for chunk i:
  frames_i   [3, L'_i, H, W] f32  padded chunk (a short last chunk is time-padded by replicating
                                   its last frame to L' = 0 mod 4, section 2.4)
  latents_i  [16, T_i, H/8, W/8]  reference streaming encode of frames_i (first_of_scene for i = 0)
  decoded_i  [3, L'_i, H, W]      reference streaming decode of latents_i, clamped
and metadata (tile threshold, tile, stride, dims) for the C test to open the same session.
The reference runs in float32 with exactly the weights stored in the file (bf16-valued for
--wdtype bf16). With --bf16-ref the stream is also run the way the official pipeline runs
it in bf16 (model.to(torch.bfloat16), inputs cast to bf16, bf16 tile accumulation), stored
as f32 values:
  latents_bf16_i  bf16 streaming encode of frames_i
  decoded_bf16_i  bf16 streaming decode of latents_i (the f32 reference latents, cast)"""
import copy
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402
import vae_ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--dim", type=int, default=8)
    ap.add_argument("--height", type=int, default=48)
    ap.add_argument("--width", type=int, default=80)
    ap.add_argument("--layout", choices=["nested", "flat"], default="nested")
    ap.add_argument("--wdtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--tile-threshold", type=int, default=1024)
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--stride", type=int, default=110)
    ap.add_argument("--chunks", default="9,12,12,12,5")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bf16-ref", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)

    model = vae_ref.VideoVAE(dim=a.dim).eval()
    vae_ref.random_weights_(model, a.seed)
    sd = model.state_dict()
    if a.wdtype == "bf16":
        sd = {k: v.to(torch.bfloat16) for k, v in sd.items()}
        # The reference computes in f32 with the bf16-valued weights.
        model.load_state_dict({k: v.float() for k, v in sd.items()})
    torch.save({"model_state": sd} if a.layout == "nested" else sd, os.path.join(a.out, a.name + ".pth"))

    vae = vae_ref.StreamingVAE(model, a.height, a.width, a.tile_threshold, a.tile, a.stride)
    vae16 = None
    if a.bf16_ref:
        vae16 = vae_ref.StreamingVAE(copy.deepcopy(model).to(torch.bfloat16), a.height, a.width,
                                     a.tile_threshold, a.tile, a.stride)
    out = {}
    lengths = [int(c) for c in a.chunks.split(",")]
    for i, n in enumerate(lengths):
        first = i == 0
        frames = torch.rand(3, n, a.height, a.width) * 2 - 1
        pad = ((1 if first else 0) - n) % 4
        if pad:
            frames = torch.cat([frames, frames[:, -1:].expand(-1, pad, -1, -1)], dim=1)
        lat = vae.encode_chunk(frames, first)
        dec = vae.decode_chunk(lat)
        assert dec.shape[1] == frames.shape[1], (dec.shape, frames.shape)
        out[f"frames_{i}"] = frames.contiguous()
        out[f"latents_{i}"] = lat.contiguous()
        out[f"decoded_{i}"] = dec.contiguous()
        if vae16 is not None:
            lat16 = vae16.encode_chunk(frames.to(torch.bfloat16), first).float()
            dec16 = vae16.decode_chunk(lat.to(torch.bfloat16)).float()
            out[f"latents_bf16_{i}"] = lat16.contiguous()
            out[f"decoded_bf16_{i}"] = dec16.contiguous()
            print(f"  bf16 reference vs f32: latents rel err {float((lat16 - lat).norm() / lat.norm()):.2e}, "
                  f"decoded rel err {float((dec16 - dec).norm() / dec.norm()):.2e}")
        print(f"chunk {i}: frames {tuple(frames.shape)} latents {tuple(lat.shape)} "
              f"|lat| {lat.abs().mean():.3f} decoded {tuple(dec.shape)} "
              f"clamped {(dec.abs() >= 1).float().mean():.2f}")
    meta = {"n_chunks": len(lengths), "tile_threshold": a.tile_threshold, "tile": a.tile,
            "stride": a.stride, "n_tiles": len(vae.tiles), "dim": a.dim}
    st_io.save(os.path.join(a.out, a.name + ".safetensors"), out, meta)
    print(f"{a.name}: {len(vae.tiles)} tile(s), weights {a.wdtype} {a.layout}")


if __name__ == "__main__":
    main()
