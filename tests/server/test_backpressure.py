"""Backpressure (issue 7 "Behaviour"): an upload that runs ahead of the decoder is suspended
(MHD_suspend_connection), not buffered without bound, and resumed when there is room.
Tiny model, small queues: --input-lead-bytes 65536 (the minimum) --frame-queue 4
--output-queue 4; the 8 s 32x24 clip (138 KB, 192 frames) is sent as fast as the socket
takes it. Checks: while the upload runs, infvsrd_suspended_connections is seen >= 1; the
PUT lasts a good part of the processing (it cannot finish before the decoder has read all
but 64 KiB); the upload completes (204), the job succeeds with all 192 frames, the output
read concurrently is complete, and the suspended gauge returns to 0."""
import threading
import time

import harness as H


def body(t):
    d = H.Daemon(t.work, "bp", model="tiny", args=["--threads", "2", "--input-lead-bytes", "65536",
                                                     "--frame-queue", "4", "--output-queue", "4"]).start()
    c = t.client(d)
    data = open(H.fixture("small_long.ts"), "rb").read()
    jid = c.create_job({"output": {"container": "mpegts"}}).json()["id"]
    samples = []
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            m = c.metrics()
            r = c.get(f"/v1/jobs/{jid}", record=False)
            j = r.json() if r.status == 200 else {}
            samples.append((time.time(), m.get("infvsrd_suspended_connections", -1),
                            j.get("input", {}).get("bytes_received", 0), j.get("frames_in", 0)))
            stop.wait(0.1)

    out = {}
    rd = threading.Thread(target=lambda: out.update(r=c.read_output_when_ready(jid)))
    rd.start()
    time.sleep(0.5)
    # the waiting output reader may itself be a suspended connection: the baseline
    base = c.metrics().get("infvsrd_suspended_connections", 0)
    ts = threading.Thread(target=sampler)
    ts.start()
    t0 = time.time()
    r = c.put_input(jid, data, chunk_size=65536)
    t_put = time.time() - t0
    t.eq(r.status, 204, "PUT completes (204) after being suspended")
    j = c.wait_state(jid, ("succeeded", "failed", "cancelled"), timeout=150)
    t_job = time.time() - t0
    time.sleep(0.3)
    stop.set()
    ts.join(5)
    rd.join(60)
    susp = max((s[1] for s in samples if s[0] - t0 < t_put), default=-1)
    H.log(f"PUT took {t_put:.2f} s, job {t_job:.2f} s; suspended_connections baseline {base}, max during PUT {susp}; "
          f"{len(samples)} samples")
    t.check(susp >= base + 1, "infvsrd_suspended_connections rose above its baseline while the upload was ahead "
            "of the decoder", f"baseline {base}, max during the PUT {susp}")
    t.check(t_put > 1.0 and t_put > 0.25 * t_job,
            f"the upload was held back by the decoder (PUT {t_put:.1f} s of a {t_job:.1f} s job; unthrottled it "
            f"takes milliseconds)")
    t.eq((j["state"], j.get("frames_out")), ("succeeded", 192), "the job succeeded with all 192 frames")
    resp, _ = out.get("r", (None, None))
    p = H.ffprobe_video(resp.body, t.work) if resp is not None and resp.status == 200 else {}
    t.eq((p.get("width"), p.get("height"), p.get("frames")), (128, 96, 192), "output read concurrently: 128x96, 192 frames")
    t.eq(c.metrics().get("infvsrd_suspended_connections"), 0.0, "no suspended connection left")
    c.delete(f"/v1/jobs/{jid}")
    d.stop()


if __name__ == "__main__":
    H.run_main(H.Suite("backpressure"), body)
