"""Errors after the first output byte arrive in-band (issue 7, proto/openapi.yaml getOutput):
a y4m upload whose second half is a different stream (32x24, then a new 64x48 y4m header in
the middle of the frame data) is decodable for its first 48 frames, then unprocessable.
The output stream (read while the job runs) has already started with 200, so the failure
cannot be a status code: the stream ends early (fewer than all frames), the job status is
failed with error.code unprocessable_video, and the SSE stream carries an `error` event.
Null model (x4 nearest neighbour), y4m output (no encoder delay)."""
import threading

import harness as H


def body(t):
    d = H.Daemon(t.work, "inband", model="null", args=["--frame-queue", "4", "--output-queue", "4"]).start()
    c = t.client(d)
    data = open(H.fixture("small.y4m"), "rb").read() + open(H.fixture("clip.y4m"), "rb").read()
    jid = c.create_job({"input": {"format": "yuv4mpegpipe"}, "output": {"container": "y4m", "codec": "rawvideo"}}).json()["id"]
    res = {}
    to = threading.Thread(target=lambda: res.update(out=c.read_output_when_ready(jid)))
    te = threading.Thread(target=lambda: res.update(ev=c.events(jid, timeout=60)))
    te.start()
    to.start()
    r = c.put_input(jid, data, chunked=True, chunk_size=8192, delay=0.02)
    H.log(f"PUT -> {r.status} {r.body[:200]!r}")
    t.check(r.status in (204, 422), "PUT answered 204 (accepted before the decoder failed) or 422", r.status)
    j = c.wait_state(jid, ("succeeded", "failed", "cancelled"), timeout=60)
    to.join(30)
    te.join(30)
    e = j.get("error") or {}
    t.eq((j["state"], e.get("code") or (e.get("error") or {}).get("code")), ("failed", "unprocessable_video"),
         "job failed with unprocessable_video")
    out, _ = res.get("out", (None, None))
    p = H.ffprobe_video(out.body, t.work) if out is not None and out.body else {"frames": 0}
    H.log(f"output: {getattr(out, 'status', None)}, {len(getattr(out, 'body', b''))} bytes, {p}, "
          f"aborted: {getattr(out, 'aborted', None)}")
    t.eq(getattr(out, "status", None), 200, "the output stream had started (200) before the failure")
    t.check(1 <= p.get("frames", 0) <= 48, "the output stream ended early with only the decodable frames (1..48)", p)
    st, evs = res.get("ev", (None, []))
    kinds = [x["event"] for x in evs]
    t.check("error" in kinds, "the SSE stream reported the failure in-band (event: error)", kinds)
    c.delete(f"/v1/jobs/{jid}")
    d.stop()


if __name__ == "__main__":
    H.run_main(H.Suite("inband_error"), body)
