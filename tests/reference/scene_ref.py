#!/usr/bin/python3
"""Reference for scene detection and the chunk scheduler (MODEL-SPEC §2.2, §2.3).

Written here from the spec (not copied from PySceneDetect): ContentDetector with the
0.6.7.1 defaults on OpenCV's real cv2.cvtColor(BGR2HSV), FlashFilter MERGE, and the
streaming drain(limit, final) scheduler. Generates synthetic videos and writes, into
OUT_DIR:
  hsv_all.u8          cv2 HSV planes (H, S, V) of all 2^24 colours, in the order
                      r*65536 + g*256 + b (the C test generates the same image)
  hsv_rand.json/.u8   random images and their cv2 HSV planes
  <video>.u8          N frames of (H, W, 3) RGB u8
  <video>.json        width, height, frames, scores, cuts, and chunk lists for several
                      scheduler configurations (start, n, new_scene, update)

usage: scene_ref.py OUT_DIR
"""
import json
import os
import sys
import zlib

import cv2
import numpy as np

THRESHOLD = 27.0
MIN_SCENE_LEN = 15


def hsv(rgb):
    """HSV planes (3, H, W) of an RGB u8 image; the detector sees BGR (MODEL-SPEC §2.1)."""
    out = cv2.cvtColor(np.ascontiguousarray(rgb[:, :, ::-1]), cv2.COLOR_BGR2HSV)
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def mean_pixel_distance(a, b):
    return np.sum(np.abs(a.astype(np.int32) - b.astype(np.int32))) / float(a.shape[0] * a.shape[1])


class ContentDetector:
    def __init__(self, threshold=THRESHOLD, min_scene_len=MIN_SCENE_LEN):
        self.threshold = threshold
        self.length = min_scene_len
        self.last_hsv = None
        self.last_above = None
        self.merge_enabled = False
        self.merge_triggered = False
        self.merge_start = None

    def score(self, rgb):
        cur = hsv(rgb)
        if self.last_hsv is None:
            self.last_hsv = cur
            return 0.0
        comps = [mean_pixel_distance(cur[c], self.last_hsv[c]) for c in range(3)] + [0.0]
        weights = [1.0, 1.0, 1.0, 0.0]
        self.last_hsv = cur
        return sum(c * w for c, w in zip(comps, weights)) / sum(abs(w) for w in weights)

    def filter(self, f, above):
        if not self.length > 0:
            return [f] if above else []
        if self.last_above is None:
            self.last_above = f
        min_len_met = (f - self.last_above) >= self.length
        if above:
            self.last_above = f
        if self.merge_triggered:
            if min_len_met and not above and (self.last_above - self.merge_start) >= self.length:
                self.merge_triggered = False
                return [self.last_above]
            return []
        if not above:
            return []
        if min_len_met:
            self.merge_enabled = True
            return [f]
        if self.merge_enabled:
            self.merge_triggered = True
            self.merge_start = f
        return []

    def process_frame(self, f, rgb):
        s = self.score(rgb)
        return s, self.filter(f, s >= self.threshold)


def reference_changed(ref, cur, threshold=THRESHOLD):
    det = ContentDetector(threshold, 0)
    det.process_frame(0, ref)
    _, cuts = det.process_frame(1, cur)
    return len(cuts) > 0


def schedule(frames, scene_detection=True, max_frames=None):
    """Returns (scores, cuts, chunks) with chunks as [start, n, new_scene, update]."""
    if max_frames is not None:
        frames = frames[:max_frames]
    chunks, scores, all_cuts = [], [], []
    if not scene_detection:
        start = 0
        while start < len(frames):
            n = min(9 if start == 0 else 12, len(frames) - start)
            chunks.append([start, n, start == 0, start == 0])
            start += n
        return scores, all_cuts, chunks

    det = ContentDetector()
    st = dict(pending=[], cuts=[], start=0, new_scene=True, ref=None, ref_index=None)

    def drain(limit, final):
        while st["pending"] and st["start"] < limit:
            if st["cuts"] and st["cuts"][0] == st["start"]:
                st["cuts"].pop(0)
                st["new_scene"] = True
            boundary = st["cuts"][0] if st["cuts"] else None
            stop = min(limit, boundary) if boundary is not None else limit
            size = 9 if st["new_scene"] else 12
            available = stop - st["start"]
            if available < size and not (final or boundary == stop):
                break
            n = min(size, available)
            take, st["pending"] = st["pending"][:n], st["pending"][n:]
            first = take[0]
            if st["new_scene"]:
                update = True
            elif st["start"] - st["ref_index"] >= 15:
                update = reference_changed(st["ref"], first)
            else:
                update = False
            if update:
                st["ref"], st["ref_index"] = first, st["start"]
            chunks.append([st["start"], n, st["new_scene"], update])
            st["start"] += n
            st["new_scene"] = False

    count = 0
    for index, frame in enumerate(frames):
        st["pending"].append(frame)
        s, cuts = det.process_frame(index, frame)
        scores.append(s)
        all_cuts += cuts
        st["cuts"] += cuts
        count = index + 1
        drain(max(0, count - 15), False)
    drain(count, True)
    return scores, all_cuts, chunks


# ---- synthetic videos ------------------------------------------------------------------

W, H = 64, 48


def scene_frame(rng, base_rgb, t, noise=6, box_rgb=(250, 250, 250), speed=2):
    img = np.empty((H, W, 3), np.float64)
    img[:] = base_rgb
    img += rng.normal(0, noise, img.shape)
    x = (5 + speed * t) % (W - 12)
    y = (3 + t) % (H - 10)
    img[y:y + 10, x:x + 12] = box_rgb
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def video_mixed(rng):
    """Hard cuts, a 2-frame flash, a slow colour drift (reference refresh without a cut),
    two scenes shorter than 15 frames, and a last scene shorter than 9 frames."""
    fr = []
    fr += [scene_frame(rng, (40, 90, 160), t) for t in range(40)]                 # A
    fr += [scene_frame(rng, (200, 60, 30), t, box_rgb=(0, 0, 0)) for t in range(14)]  # B
    flash = [scene_frame(rng, (200, 60, 30), t) for t in range(14, 30)]
    for k in (0, 1):                                                               # flash
        flash[5 + k] = np.full((H, W, 3), 255, np.uint8)
    fr += flash
    # C: a slow hue drift, each step well below 27 but large against a 15-frame-old reference
    for t in range(48):
        a = t / 47.0
        base = (int(30 + 200 * a), int(180 - 120 * a), int(60 + 100 * a))
        fr += [scene_frame(rng, base, t, noise=3)]
    fr += [scene_frame(rng, (20, 200, 40), t) for t in range(10)]                  # D short
    fr += [scene_frame(rng, (120, 20, 200), t) for t in range(20)]                 # E
    fr += [scene_frame(rng, (250, 220, 10), t) for t in range(6)]                  # F < 9
    return np.stack(fr)


def video_short_scenes(rng):
    """Scenes of 5..17 frames: cuts are suppressed or merged by the flash filter."""
    fr = []
    colours = [(10, 10, 200), (200, 10, 10), (10, 200, 10), (220, 220, 30), (30, 220, 220),
               (120, 120, 120), (250, 128, 0), (0, 0, 0), (255, 255, 255), (90, 10, 160)]
    lengths = [17, 5, 8, 16, 3, 30, 15, 14, 9, 7]
    for c, n in zip(colours, lengths):
        fr += [scene_frame(rng, c, t, noise=4) for t in range(n)]
    return np.stack(fr)


def video_static(rng):
    """One scene, nothing moves much: 9, 12, 12, ... with a short last chunk."""
    return np.stack([scene_frame(rng, (100, 100, 100), t, noise=2, speed=0) for t in range(50)])


def video_short_tail(rng):
    """A cut 6 frames before the end: the last scene's first chunk has fewer than 9 frames."""
    fr = [scene_frame(rng, (60, 60, 200), t, noise=3) for t in range(30)]
    fr += [scene_frame(rng, (230, 200, 40), t, noise=3) for t in range(6)]
    return np.stack(fr)


def write_video(out_dir, name, frames):
    frames.tofile(os.path.join(out_dir, name + ".u8"))
    configs = {}
    for key, kw in [("default", {}), ("max37", dict(max_frames=37)), ("max1", dict(max_frames=1)),
                    ("noscene", dict(scene_detection=False)),
                    ("noscene_max20", dict(scene_detection=False, max_frames=20))]:
        scores, cuts, chunks = schedule(list(frames), **kw)
        configs[key] = dict(kw, chunks=chunks)
        if key == "default":
            all_scores, all_cuts = scores, cuts
    # Sanity of the scheduler itself: every frame exactly once, in order.
    for key, cfg in configs.items():
        n_expected = min(len(frames), cfg.get("max_frames") or len(frames))
        pos = 0
        for start, n, _, _ in cfg["chunks"]:
            assert start == pos and 1 <= n <= 12, (name, key, start, n)
            pos += n
        assert pos == n_expected, (name, key, pos, n_expected)
    meta = dict(name=name, width=int(frames.shape[2]), height=int(frames.shape[1]),
                frames=int(frames.shape[0]), threshold=THRESHOLD, scores=all_scores,
                cuts=all_cuts, configs=configs)
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(meta, f)   # floats as repr: exact round trip
    return meta


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    # Every colour once: r*65536 + g*256 + b, as one 4096x4096 image.
    idx = np.arange(1 << 24, dtype=np.uint32)
    rgb = np.stack([(idx >> 16) & 255, (idx >> 8) & 255, idx & 255], axis=-1).astype(np.uint8)
    hsv(rgb.reshape(4096, 4096, 3)).tofile(os.path.join(out, "hsv_all.u8"))
    rng = np.random.default_rng(1234)
    rand = rng.integers(0, 256, (3, 37, 53, 3), dtype=np.uint8)
    rand.tofile(os.path.join(out, "hsv_rand_rgb.u8"))
    np.stack([hsv(im) for im in rand]).tofile(os.path.join(out, "hsv_rand_hsv.u8"))
    with open(os.path.join(out, "hsv_rand.json"), "w") as f:
        json.dump(dict(count=3, height=37, width=53), f)

    summary = []
    for name, fn in [("mixed", video_mixed), ("short_scenes", video_short_scenes), ("static", video_static),
                     ("short_tail", video_short_tail)]:
        meta = write_video(out, name, fn(np.random.default_rng(zlib.crc32(name.encode()))))
        summary.append("%s: %d frames, cuts %s, %d chunks, updates without cut at %s" % (
            name, meta["frames"], meta["cuts"], len(meta["configs"]["default"]["chunks"]),
            [c[0] for c in meta["configs"]["default"]["chunks"] if c[3] and not c[2]]))
    print("\n".join(summary))


if __name__ == "__main__":
    main()
