"""infvsrd basics on loopback with the tiny model: probes, models, metrics names, one job per
input container (MPEG-TS, Matroska, y4m) with a plain PUT, output read after completion and
checked with ffprobe (4x dimensions, every frame), output containers and their MIME types,
SSE progress events, X-Request-Id, structured JSON logs with request/job ids. 32x24 clips
(-> 128x96) keep it fast. Every response is checked against proto/openapi.yaml."""
import json
import threading
import time

import harness as H

METRICS = [
    "infvsrd_jobs_queued", "infvsrd_jobs_active", "infvsrd_jobs_awaiting_input", "infvsrd_frames_in_total",
    "infvsrd_frames_out_total",
    "infvsrd_chunks_total", "infvsrd_upload_bytes_total", "infvsrd_output_bytes_total",
    "infvsrd_ready", "infvsrd_active_connections", "infvsrd_suspended_connections",
    "process_resident_memory_bytes",
]
HISTOGRAMS = ["infvsrd_chunk_seconds", "infvsrd_time_to_first_frame_seconds", "infvsrd_queue_seconds"]
MIME = {"matroska": "video/x-matroska", "mpegts": "video/mp2t", "mp4": "video/mp4", "y4m": "video/x-yuv4mpeg"}


def body(t):
    d = H.Daemon(t.work, "basics", model="tiny", args=["--threads", "2"]).start()
    c = t.client(d)

    r = c.get("/healthz")
    t.eq(r.status, 200, "GET /healthz 200")
    r = c.get("/readyz")
    t.eq(r.status, 200, "GET /readyz 200")
    t.eq(r.json().get("status"), "ok", "readyz status ok")
    # the startup summary: one line per model file, the one `infvsr verify-model` prints (issue 19)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and d.log_text().count("model file ") < 4:
        time.sleep(0.05)
    lines = [l for l in d.log_text().splitlines() if "model file " in l]
    t.check(len(lines) == 4, "startup log: one 'model file' line per file", lines)
    for name in ("InfVSR.ckpt", "Wan2.1_VAE.pth", "ram_swin_large_14m.pth", "DAPE.pth"):
        t.check(any("model file " + name in l and "all found, shapes and dtypes ok" in l for l in lines),
                f"startup log summarises {name}", lines)
    r = c.get("/v1/models")
    t.eq(r.status, 200, "GET /v1/models 200")
    models = r.json().get("models", [])
    t.check(any(m.get("ready") for m in models), "a ready model is listed", models)

    m = c.metrics()
    names = {k.split("{")[0] for k in m}
    for n in METRICS:
        t.check(n in names, f"metric {n} exported", sorted(names)[:40])
    for n in HISTOGRAMS:
        t.check(f"{n}_count" in names and f"{n}_bucket" in names, f"histogram {n} exported")
    t.check(any(k.startswith("infvsrd_worker_healthy") for k in m), "metric infvsrd_worker_healthy exported")
    t.eq(m.get("infvsrd_ready"), 1.0, "infvsrd_ready 1")
    t.check(all(r2.headers.get("x-request-id") for r2 in [r]), "X-Request-Id on responses")

    cases = [
        ("small.ts", {}, "matroska", 48),
        ("small.mkv", {"output": {"container": "mpegts"}}, "mpegts", 48),
        ("small.y4m", {"input": {"format": "yuv4mpegpipe"}, "output": {"container": "y4m", "codec": "rawvideo"}}, "y4m", 48),
        ("small.ts", {"output": {"container": "mp4"}}, "mp4", 48),
    ]
    succeeded = 0
    for clip, spec, container, frames in cases:
        label = f"{clip} -> {container}"
        r = c.create_job(spec)
        t.eq(r.status, 201, f"{label}: POST /v1/jobs 201")
        job = r.json()
        jid = job["id"]
        t.check(jid.startswith("local.") or "." in jid, f"{label}: job id has an instance prefix", jid)
        t.eq(job["state"], "created", f"{label}: new job state")
        t.check(r.headers.get("location", "").endswith(f"/v1/jobs/{jid}"), f"{label}: Location names the job",
                r.headers.get("location"))
        if succeeded == 0:  # a job without input holds no queue place: not a scaling signal
            m = c.metrics()
            t.eq((m.get("infvsrd_jobs_queued"), m.get("infvsrd_jobs_awaiting_input")), (0.0, 1.0),
                 f"{label}: created job counts as awaiting input, not queued (metrics)")
            h = c.get("/healthz").json()
            t.eq((h.get("jobs_queued"), h.get("jobs_awaiting_input")), (0, 1), f"{label}: the same in /healthz")
        with open(H.fixture(clip), "rb") as f:
            data = f.read()
        r = c.put_input(jid, data, content_type="application/octet-stream")
        t.eq(r.status, 204, f"{label}: PUT input 204")
        j = c.wait_state(jid, ("succeeded", "failed", "cancelled"), timeout=90)
        t.eq(j["state"], "succeeded", f"{label}: job succeeded")
        succeeded += j["state"] == "succeeded"
        t.eq(j.get("frames_in"), frames, f"{label}: status frames_in")
        t.eq(j.get("frames_out"), frames, f"{label}: status frames_out")
        t.eq(j.get("input", {}).get("bytes_received"), len(data), f"{label}: input.bytes_received")
        inp = j.get("input", {})
        t.eq((inp.get("width"), inp.get("height"), round(inp.get("fps") or 0)), (32, 24, 24),
             f"{label}: status input width/height/fps after probing")
        out, _ = c.read_output(jid)
        t.eq(out.status, 200, f"{label}: GET output 200")
        t.eq(out.headers.get("content-type", "").split(";")[0], MIME[container], f"{label}: output MIME type")
        p = H.ffprobe_video(out.body, t.work)
        t.eq((p.get("width"), p.get("height"), p.get("frames")), (128, 96, frames),
             f"{label}: output 128x96 (4x), every frame (ffprobe -count_frames)")
        if container == "matroska":
            st, evs = c.events(jid)
            t.eq(st, 200, f"{label}: GET events of a finished job 200")
            t.check(evs and evs[-1]["event"] == "done", f"{label}: events end with done", [e["event"] for e in evs])
            t.check(c.events_closed, f"{label}: events stream of a finished job closes after done",
                    "still open 5 s after the done event")
        r = c.delete(f"/v1/jobs/{jid}")
        t.eq(r.status, 204, f"{label}: DELETE 204")
        r = c.get(f"/v1/jobs/{jid}")
        t.eq(r.status, 404, f"{label}: GET after DELETE 404")

    # scale 2 (the engine resizes its x4 output) with input.max_frames 12: 12 frames at 64x48
    r = c.create_job({"scale": 2, "input": {"max_frames": 12}, "output": {"container": "mpegts"}})
    jid = r.json()["id"]
    t.eq(c.put_input(jid, open(H.fixture("small.ts"), "rb").read()).status, 204, "scale 2 + max_frames 12: PUT 204")
    j = c.wait_state(jid, ("succeeded", "failed", "cancelled"), timeout=90)
    t.eq((j["state"], j.get("frames_out")), ("succeeded", 12), "scale 2 + max_frames 12: succeeded with 12 frames")
    out, _ = c.read_output(jid)
    p = H.ffprobe_video(out.body, t.work)
    t.eq((p.get("width"), p.get("height"), p.get("frames")), (64, 48, 12), "scale 2 + max_frames 12: output 64x48, 12 frames")
    c.delete(f"/v1/jobs/{jid}")

    # SSE while running: progress events, then done with the final job.
    r = c.create_job({})
    jid = r.json()["id"]
    res = {}
    th = threading.Thread(target=lambda: res.update(ev=c.events(jid)))
    th.start()
    with open(H.fixture("small.ts"), "rb") as f:
        c.put_input(jid, f.read(), chunked=True, chunk_size=4096, delay=0.05)
    th.join(120)
    st, evs = res.get("ev", (None, []))
    t.eq(st, 200, "events stream 200")
    kinds = [e["event"] for e in evs]
    t.check("progress" in kinds, "events: at least one progress event", kinds)
    t.check(kinds and kinds[-1] == "done", "events: last event is done", kinds)
    t.check(c.events_closed, "events stream closes after done", "still open 5 s after the done event")
    if kinds and kinds[-1] == "done":
        t.eq(json.loads(evs[-1]["data"]).get("frames_out"), 48, "events: done carries frames_out 48")
    c.delete(f"/v1/jobs/{jid}")

    m = c.metrics()
    succeeded += 2  # the scale-2 job and the SSE job
    t.check(m.get("infvsrd_frames_out_total", 0) >= 48 * (succeeded - 1) + 12, "frames_out_total counts the jobs' frames",
            m.get("infvsrd_frames_out_total"))
    t.check(m.get('infvsrd_jobs_total{state="succeeded"}', 0) == succeeded,
            f"jobs_total{{state=succeeded}} == {succeeded} (the jobs that succeeded)",
            {k: v for k, v in m.items() if k.startswith("infvsrd_jobs_total")})
    t.eq(H.gauges_settled(c), (0.0, 0.0, 0.0), "no active/queued jobs at the end")
    deadline = time.time() + 60 * H.SLOWDOWN  # a state wait: generous, returns at once
    while d.spool_files() and time.time() < deadline:
        time.sleep(0.1)
    t.eq(d.spool_files(), [], "spool empty after deleting every job")
    d.stop()

    # structured logs (log_format json, the default): one JSON object per line with ts,
    # level, msg; request lines carry the request id the client saw in X-Request-Id
    lines = [x for x in d.log_text().splitlines() if x.strip()]
    bad = []
    objs = []
    for x in lines:
        try:
            o = json.loads(x)
            if not all(k in o for k in ("ts", "level", "msg")):
                bad.append(x)
            objs.append(o)
        except ValueError:
            bad.append(x)
    t.check(lines and not bad, f"every log line is a JSON object with ts/level/msg ({len(lines)} lines)", bad[:3])
    rids = {o.get("request_id") for o in objs if o.get("request_id")}
    t.check(r.headers.get("x-request-id") in rids, "the X-Request-Id of a response appears in the log",
            r.headers.get("x-request-id"))
    t.check(any(o.get("job_id") for o in objs), "job log lines carry job_id")


if __name__ == "__main__":
    H.run_main(H.Suite("basics"), body)
