"""Cancel latency of a running job (a measurement script, not a ctest test).

Tiny model, one active slot. Per round: a job with the 8 s clip (long.ts) runs; after its
first output frames the script waits a random fraction of one chunk (so the DELETE lands
anywhere inside a chunk), sends DELETE and polls /metrics every 5 ms until
infvsrd_jobs_active is 0 (the slot and the gauges are free). Prints the latency of every
round, the median and the maximum, and the mean chunk time for comparison.

  cd build && ctest -R 'server.(fixtures|npm_setup)'   # once: tiny model + clips
  INFVSRD=build/infvsrd SERVER_FIXTURES=build/tests/server/fixtures \
      /usr/bin/python3 tests/server/measure_cancel_latency.py [rounds]
"""
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def wait(pred, timeout, poll=0.005):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(poll)
    return None


def metrics(c):
    return H.parse_metrics(c.request("GET", "/metrics", record=False).body.decode())


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    work = os.environ.get("TEST_WORK") or os.path.join(os.getcwd(), "measure_cancel_latency")
    os.makedirs(work, exist_ok=True)
    rec = H.Recorder(os.path.join(work, "responses.jsonl"))
    d = H.Daemon(work, "measure", model="tiny",
                 args=["--threads", "2", "--max-active-jobs-per-worker", "1"]).start()
    c = H.Client(d.url, rec)
    data = open(H.fixture("long.ts"), "rb").read()
    rng = random.Random(1)
    lat = []
    try:
        for i in range(rounds):
            jid = c.create_job({"output": {"container": "mpegts"}}).json()["id"]
            assert c.put_input(jid, data).status == 204
            j = wait(lambda: (lambda s: s if s.get("chunks", 0) >= 2 else None)(c.job(jid)), 120)
            assert j, "the job did not reach its second chunk"
            m = metrics(c)
            chunk_s = m["infvsrd_chunk_seconds_sum"] / max(1.0, m["infvsrd_chunk_seconds_count"])
            time.sleep(rng.random() * chunk_s)
            t0 = time.time()
            assert c.delete(f"/v1/jobs/{jid}").status == 204
            ok = wait(lambda: metrics(c).get("infvsrd_jobs_active") == 0.0, 600)
            dt = time.time() - t0
            assert ok, "jobs_active did not drop to 0"
            lat.append(dt)
            H.log(f"round {i}: DELETE -> jobs_active 0 in {dt * 1000:.0f} ms (mean chunk {chunk_s * 1000:.0f} ms)")
        H.log(f"cancel latency over {rounds} rounds: median {statistics.median(lat) * 1000:.0f} ms, "
              f"max {max(lat) * 1000:.0f} ms; mean chunk {chunk_s * 1000:.0f} ms")
    finally:
        d.stop()


if __name__ == "__main__":
    main()
