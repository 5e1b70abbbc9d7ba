"""Media error reasons (issue 15 item 9): corrupted or unsuitable uploads fail with
unprocessable_video and a message that names the real cause, not FFmpeg's symptom
("Input/output error" for a truncated Matroska header, "Invalid argument" for a format
outside the allow-list, "no decoder" for an unrecognised codec, a moov hint for any MP4
fault). Each input is built here from the fixture clips (or ffmpeg), deterministically:

  truncated Matroska header (100 bytes)     -> "ends too early (truncated)"
  MPEG-TS cut before its first picture      -> "picture size is unknown"
  random bytes                              -> "not a recognised media format"
  ffconcat list / a PNG image               -> "the input is ... (concat|png_pipe), not one
                                               of the accepted video containers"
  Matroska with an unknown video CodecID    -> "video codec is not recognised"
  MP4 whose moov is after a >64 KiB mdat    -> "index (moov) comes after the media data"
  faststart MP4 with a corrupt sample table -> "index (moov) is missing or corrupt"

For every case the job ends failed with unprocessable_video, the PUT answers 422 or 204
(when the failure comes after the answer), the message contains the expected phrase, and
FFmpeg's own text, when present, only follows the explanation in "(FFmpeg: ...)". Null
model."""
import os
import random
import struct
import subprocess

import harness as H

MISLEADING = ("Input/output error", "Cannot allocate memory", "Invalid argument", "Device or resource busy")


def ffmpeg(work, name, *args):
    out = os.path.join(work, name)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args, out], check=True)
    return open(out, "rb").read()


def atom_offset(b, name):
    i = b.find(name)
    assert i >= 4, f"no {name!r} atom"
    return i - 4


def cases(work):
    clip_mkv = open(H.fixture("clip.mkv"), "rb").read()
    small_ts = open(H.fixture("small.ts"), "rb").read()
    out = [
        ("truncated Matroska header", clip_mkv[:100], "the input ends too early (truncated)"),
        ("MPEG-TS cut before its first picture", small_ts[:1000], "the video's picture size is unknown"),
        ("random bytes", bytes(random.Random(3).getrandbits(8) for _ in range(20000)),
         "not a recognised media format"),
        ("ffconcat list", b"ffconcat version 1.0\nfile /etc/passwd\n",
         "(concat), not one of the accepted video containers"),
    ]
    png = ffmpeg(work, "frame.png", "-f", "lavfi", "-i", "testsrc2=size=32x24", "-frames:v", "1")
    out.append(("PNG image", png, "(png_pipe), not one of the accepted video containers"))
    assert clip_mkv.count(b"V_MPEG4/ISO/AVC") == 1
    out.append(("Matroska with an unknown video CodecID", clip_mkv.replace(b"V_MPEG4/ISO/AVC", b"V_QQQQQ/ISO/AVC"),
                "the video codec is not recognised"))
    # The index after >64 KiB of media data: out of the reader's I/O buffer when found.
    moov_end = ffmpeg(work, "moov_end.mp4", "-f", "lavfi", "-i", "testsrc2=size=128x96:rate=24", "-t", "3",
                      "-c:v", "libx264", "-preset", "veryfast", "-qp", "5", "-pix_fmt", "yuv420p")
    assert atom_offset(moov_end, b"moov") > atom_offset(moov_end, b"mdat") + 65536, "mdat too small for the case"
    out.append(("MP4 with its index after the media data", moov_end,
                "the MP4/MOV index (moov) comes after the media data"))
    fast = bytearray(ffmpeg(work, "fast.mp4", "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=24", "-t", "1",
                            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-movflags", "+faststart"))
    struct.pack_into(">I", fast, atom_offset(fast, b"stsz") + 16, 0x3FFFFFFF)  # sample count
    out.append(("faststart MP4 with a corrupt sample table", bytes(fast), "the MP4/MOV index (moov) is missing or corrupt"))
    return out


def body(t):
    d = H.Daemon(t.work, "media", model="null").start()
    c = t.client(d)
    for name, data, phrase in cases(t.work):
        jid = c.create_job({}).json()["id"]
        r = c.put_input(jid, data, content_type="application/octet-stream", case=name)
        j = c.wait_state(jid, ("succeeded", "failed", "cancelled"), timeout=60 * H.SLOWDOWN)
        e = j.get("error") or {}
        msg = e.get("message", "")
        H.log(f"{name}: PUT {r.status}, {j['state']} {e.get('code')}: {msg}")
        t.check(r.status in (422, 204), f"{name}: PUT 422 (or 204)", r)
        t.eq((j["state"], e.get("code")), ("failed", "unprocessable_video"), f"{name}: failed, unprocessable_video")
        t.check(phrase in msg, f"{name}: the message names the cause", f"{phrase!r} not in {msg!r}")
        reason = msg.split(" (FFmpeg: ")[0]
        t.check(not any(m in reason for m in MISLEADING), f"{name}: no misleading FFmpeg symptom as the reason", msg)
        c.delete(f"/v1/jobs/{jid}")
    t.eq(H.gauges_settled(c, 60 * H.SLOWDOWN), (0.0, 0.0, 0.0), "gauges 0")
    d.stop()


if __name__ == "__main__":
    H.run_main(H.Suite("media_errors"), body)
