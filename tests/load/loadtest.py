#!/usr/bin/python3
"""Load test of infvsrd: N concurrent streams, each  POST /v1/jobs -> PUT (chunked) input ->
GET output read while it is produced  (stdlib only: http.client + threads).

Reports job-creation latency p50/p95/p99, time to first output byte (from the first input
byte sent, and from job submission), per-stream and aggregate output frames/s, error rate
(by kind), per worker the frames and chunks it computed, its busy seconds and utilisation over
the output window (from the infvsrd_worker_* counters), and the server's peak RSS (VmHWM from /proc/PID/status when the daemon runs here,
and the peak of process_resident_memory_bytes sampled from /metrics every 0.2 s).

  # against a running daemon
  loadtest.py --url http://127.0.0.1:8080 --clip in.ts -n 8 [--pid PID]
  # or let it start one (port 0, temporary spool), tiny model or null model
  loadtest.py --infvsrd build/infvsrd --model-dir DIR -n 4 --clip in.ts
  loadtest.py --infvsrd build/infvsrd --model null    -n 8 --clip in.ts
  # ctest smoke (env INFVSRD, SERVER_FIXTURES): null model, N=2, fails on any error
  loadtest.py --smoke

Arrivals: --rate R starts a stream every 1/R s (open model: starts do not wait for earlier
streams, see SERVING-NOTES 4.2); default starts all N at once. --upload-rate B paces every
upload at B bytes/s (a live source); default as fast as the server takes it. Output frames
are counted from the job status (frames_out) and, with --verify, by ffprobe on the output."""
import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


class Target:
    def __init__(self, url, token=None):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.token = token

    def conn(self, timeout=600):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def hdrs(self, h=None):
        h = dict(h or {})
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        return h

    def request(self, method, path, body=None, headers=None):
        c = self.conn()
        try:
            c.request(method, path, body=body, headers=self.hdrs(headers))
            r = c.getresponse()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
        finally:
            c.close()


def stream(tg, data, spec, upload_rate, chunk, res, verify_dir):
    """One stream; fills res (dict)."""
    res["t_submit"] = time.time()
    try:
        st, hd, body = tg.request("POST", "/v1/jobs", json.dumps(spec).encode(), {"Content-Type": "application/json"})
    except OSError as e:
        res.update(error="create:" + type(e).__name__, t_created=time.time())
        return
    res["t_created"] = time.time()
    res["create_status"] = st
    if st != 201:
        res["error"] = f"create:{st}"
        return
    jid = json.loads(body)["id"]
    res["id"] = jid
    out = {"bytes": 0}

    def reader():
        deadline = time.time() + 600
        while time.time() < deadline:
            c = tg.conn()
            try:
                c.request("GET", f"/v1/jobs/{jid}/output", headers=tg.hdrs())
                r = c.getresponse()
                if r.status != 200:
                    r.read()
                    out["status"] = r.status
                    c.close()
                    time.sleep(0.05)
                    continue
                out["status"] = 200
                f = open(os.path.join(verify_dir, jid), "wb") if verify_dir else None
                while True:
                    b = r.read1(65536)
                    if not b:
                        break
                    if "t_first" not in out:
                        out["t_first"] = time.time()
                    out["bytes"] += len(b)
                    if f:
                        f.write(b)
                if f:
                    f.close()
                out["t_end"] = time.time()
                return
            except (OSError, http.client.HTTPException) as e:
                out["error"] = type(e).__name__
                return
            finally:
                c.close()

    rt = threading.Thread(target=reader, daemon=True)
    rt.start()
    c = tg.conn()
    try:
        c.putrequest("PUT", f"/v1/jobs/{jid}/input", skip_accept_encoding=True)
        for k, v in tg.hdrs({"Content-Type": "video/mp2t", "Transfer-Encoding": "chunked"}).items():
            c.putheader(k, v)
        c.endheaders()
        res["t_first_input"] = time.time()
        t0 = time.time()
        for i in range(0, len(data), chunk):
            piece = data[i:i + chunk]
            c.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            if upload_rate:
                ahead = (i + len(piece)) / upload_rate - (time.time() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        c.send(b"0\r\n\r\n")
        r = c.getresponse()
        r.read()
        res["put_status"] = r.status
        res["t_upload_end"] = time.time()
    except (OSError, http.client.HTTPException) as e:
        res["error"] = "upload:" + type(e).__name__
    finally:
        c.close()
    rt.join(900)
    res["out_bytes"] = out["bytes"]
    res["t_first_out"] = out.get("t_first")
    res["t_done"] = out.get("t_end", time.time())
    if res.get("put_status") not in (204, None) and "error" not in res:
        res["error"] = f"upload:{res['put_status']}"
    if out.get("status") != 200 and "error" not in res:
        res["error"] = f"output:{out.get('status')}"
    if out.get("error") and "error" not in res:
        res["error"] = "output:" + out["error"]
    try:
        st, _, body = tg.request("GET", f"/v1/jobs/{jid}")
        j = json.loads(body) if st == 200 else {}
    except (OSError, ValueError):
        j = {}
    res["state"] = j.get("state")
    res["frames_out"] = j.get("frames_out", 0)
    if res["state"] != "succeeded" and "error" not in res:
        res["error"] = f"job:{res['state']}"
    if verify_dir and os.path.exists(os.path.join(verify_dir, jid)):
        p = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                            "stream=nb_read_frames", "-of", "default=nw=1:nk=1", os.path.join(verify_dir, jid)],
                           capture_output=True, text=True)
        res["frames_probed"] = int((p.stdout.split() or ["0"])[0])
    try:
        tg.request("DELETE", f"/v1/jobs/{jid}")
    except OSError:
        pass


def sample_rss(tg, pid, stop, peak):
    while not stop.is_set():
        try:
            st, _, body = tg.request("GET", "/metrics")
            m = re.search(rb"^process_resident_memory_bytes\s+(\S+)", body, re.M)
            if m:
                peak["metrics_rss"] = max(peak.get("metrics_rss", 0), float(m.group(1)))
        except OSError:
            pass
        if pid:
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak["vmhwm_kb"] = int(line.split()[1])
            except OSError:
                pass
        stop.wait(0.2)


WORKER_SERIES = ("infvsrd_worker_busy_seconds_total", "infvsrd_worker_frames_total", "infvsrd_worker_chunks_total")


def worker_counters(tg):
    """{worker: {metric: value}} of the per-worker counters in /metrics ({} when unreachable)."""
    out = {}
    try:
        st, _, body = tg.request("GET", "/metrics")
    except OSError:
        return out
    if st != 200:
        return out
    for m in re.finditer(rb'^(infvsrd_worker_[a-z_]+)\{worker="([^"]+)"\}\s+(\S+)', body, re.M):
        name, worker = m.group(1).decode(), m.group(2).decode()
        if name in WORKER_SERIES:
            out.setdefault(worker, {})[name] = float(m.group(3))
    return out


def run(args, url, pid):
    tg = Target(url, args.token)
    data = open(args.clip, "rb").read()
    spec = json.loads(args.spec)
    verify_dir = tempfile.mkdtemp(prefix="loadtest-out-") if args.verify else None
    results = [dict() for _ in range(args.n)]
    stop = threading.Event()
    peak = {}
    sm = threading.Thread(target=sample_rss, args=(tg, pid, stop, peak), daemon=True)
    sm.start()
    w_before = worker_counters(tg)
    t0 = time.time()
    threads = []
    for i in range(args.n):
        th = threading.Thread(target=stream, args=(tg, data, spec, args.upload_rate, args.chunk, results[i], verify_dir))
        th.start()
        threads.append(th)
        if args.rate:
            time.sleep(1.0 / args.rate)
    for th in threads:
        th.join()
    wall = time.time() - t0
    w_after = worker_counters(tg)
    stop.set()
    sm.join(2)
    if verify_dir:
        shutil.rmtree(verify_dir, ignore_errors=True)

    ok = [r for r in results if "error" not in r]
    errs = {}
    for r in results:
        if "error" in r:
            errs[r["error"]] = errs.get(r["error"], 0) + 1
    create_ms = [1000 * (r["t_created"] - r["t_submit"]) for r in results if "t_created" in r]
    ttfb_in = [r["t_first_out"] - r["t_first_input"] for r in ok if r.get("t_first_out")]
    ttfb_sub = [r["t_first_out"] - r["t_submit"] for r in ok if r.get("t_first_out")]
    fps = [r["frames_out"] / max(r["t_done"] - r["t_first_input"], 1e-9) for r in ok]
    frames = sum(r.get("frames_out", 0) for r in ok)
    # the output window: first submission to the last output byte (excludes the client's
    # own ffprobe/DELETE work after the streams)
    span = (max((r["t_done"] for r in ok), default=t0) - min((r["t_submit"] for r in results if "t_submit" in r),
                                                                default=t0)) or wall
    rep = {
        "streams": args.n, "ok": len(ok), "error_rate": (args.n - len(ok)) / args.n, "errors": errs,
        "wall_s": wall,
        "create_ms": {"p50": pct(create_ms, 50), "p95": pct(create_ms, 95), "p99": pct(create_ms, 99),
                      "max": max(create_ms or [float("nan")])},
        "ttfb_from_first_input_s": {"p50": pct(ttfb_in, 50), "p95": pct(ttfb_in, 95), "p99": pct(ttfb_in, 99)},
        "ttfb_from_submit_s": {"p50": pct(ttfb_sub, 50), "p95": pct(ttfb_sub, 95), "p99": pct(ttfb_sub, 99)},
        "frames_out_total": frames, "output_window_s": span, "aggregate_fps": frames / span if span > 0 else 0,
        "per_stream_fps": {"p50": pct(fps, 50), "min": min(fps or [float("nan")])},
        "server_peak_rss_mib": {"vmhwm": peak["vmhwm_kb"] / 1024 if "vmhwm_kb" in peak else None,
                                "metrics_sampled": peak["metrics_rss"] / 2**20 if "metrics_rss" in peak else None},
    }
    # per worker: what it computed during the run and how busy it was over the output window
    workers = {}
    total_w_frames = sum(a.get("infvsrd_worker_frames_total", 0) - w_before.get(w, {}).get("infvsrd_worker_frames_total", 0)
                         for w, a in w_after.items())
    for w, a in sorted(w_after.items()):
        b = w_before.get(w, {})
        d = {k: a.get(k, 0) - b.get(k, 0) for k in WORKER_SERIES}
        workers[w] = {"frames": d["infvsrd_worker_frames_total"], "chunks": d["infvsrd_worker_chunks_total"],
                      "busy_s": d["infvsrd_worker_busy_seconds_total"],
                      "utilisation": d["infvsrd_worker_busy_seconds_total"] / span if span > 0 else 0,
                      "share": d["infvsrd_worker_frames_total"] / total_w_frames if total_w_frames else 0}
    rep["workers"] = workers
    if args.verify:
        rep["frames_probed_equal_status"] = all(r.get("frames_probed") == r.get("frames_out") for r in ok)
    print(f"streams {args.n}: ok {len(ok)}, error rate {rep['error_rate']:.3f} {errs or ''}, wall {wall:.2f} s")
    c = rep["create_ms"]
    print(f"job creation latency ms: p50 {c['p50']:.2f}  p95 {c['p95']:.2f}  p99 {c['p99']:.2f}  max {c['max']:.2f}")
    f = rep["ttfb_from_first_input_s"]
    print(f"time to first output byte s (from first input byte): p50 {f['p50']:.3f}  p95 {f['p95']:.3f}  "
          f"p99 {f['p99']:.3f}")
    f = rep["ttfb_from_submit_s"]
    print(f"time to first output byte s (from job submission):   p50 {f['p50']:.3f}  p95 {f['p95']:.3f}  "
          f"p99 {f['p99']:.3f}")
    print(f"output frames: {frames} total in {span:.2f} s, aggregate {rep['aggregate_fps']:.1f} frames/s, per stream p50 "
          f"{rep['per_stream_fps']['p50']:.2f} min {rep['per_stream_fps']['min']:.2f} frames/s")
    for w, v in workers.items():
        print(f"worker {w}: {v['frames']:.0f} frames ({100 * v['share']:.0f}% of all), {v['chunks']:.0f} chunks, "
              f"busy {v['busy_s']:.2f} s = {100 * v['utilisation']:.0f}% of the output window")
    pr = rep["server_peak_rss_mib"]
    print("server peak RSS MiB: VmHWM " + (f"{pr['vmhwm']:.1f}" if pr["vmhwm"] is not None else "n/a") +
          ", process_resident_memory_bytes sampled max " +
          (f"{pr['metrics_sampled']:.1f}" if pr["metrics_sampled"] is not None else "n/a"))
    if args.json:
        print("JSON " + json.dumps(rep))
    return rep


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url")
    ap.add_argument("--pid", type=int, help="daemon PID on this machine (VmHWM)")
    ap.add_argument("--infvsrd", help="start this daemon binary (port 0, temp spool)")
    ap.add_argument("--model", default=None, help="'null' for the identity model")
    ap.add_argument("--model-dir", default=None)
    ap.add_argument("--daemon-arg", action="append", default=[], help="extra daemon flag (repeatable)")
    ap.add_argument("-n", type=int, default=4, help="concurrent streams")
    ap.add_argument("--clip", help="input video (any container the server demuxes)")
    ap.add_argument("--spec", default='{"output": {"container": "mpegts"}}', help="job spec JSON")
    ap.add_argument("--rate", type=float, default=0.0, help="stream starts per second (0 = all at once)")
    ap.add_argument("--upload-rate", type=float, default=0.0, help="bytes/s per upload (0 = unpaced)")
    ap.add_argument("--chunk", type=int, default=16384)
    ap.add_argument("--token")
    ap.add_argument("--verify", action="store_true", help="ffprobe every output (frame count)")
    ap.add_argument("--json", action="store_true", help="also print the report as one JSON line")
    ap.add_argument("--smoke", action="store_true", help="ctest: null model, N=2, env INFVSRD/SERVER_FIXTURES")
    args = ap.parse_args()

    if args.smoke:
        fx = os.environ["SERVER_FIXTURES"]
        args.infvsrd = os.environ["INFVSRD"]
        args.model, args.n, args.clip, args.verify, args.json = "null", 2, os.path.join(fx, "clip.ts"), True, True
    if not args.clip:
        ap.error("--clip is required")
    daemon = None
    url, pid = args.url, args.pid
    if args.infvsrd:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
        import harness
        harness.INFVSRD = os.path.abspath(args.infvsrd)
        work = tempfile.mkdtemp(prefix="loadtest-")
        model = "null" if args.model == "null" else (args.model_dir or args.model)
        extra = ["--max-active-jobs-per-worker", str(max(args.n, 2)), "--max-queued-jobs", str(max(args.n, 16)),
                 "--max-awaiting-jobs-per-tenant", str(max(args.n, 16))]  # N creations may precede their uploads
        daemon = harness.Daemon(work, "load", model=model, args=extra + args.daemon_arg).start()
        url, pid = daemon.url, daemon.pid()
        print(f"daemon: {' '.join(daemon.command())} (pid {pid})")
    if not url:
        ap.error("--url or --infvsrd is required")
    try:
        rep = run(args, url, pid)
    finally:
        if daemon:
            daemon.stop()
            shutil.rmtree(daemon.work, ignore_errors=True)
    if args.smoke:
        good = rep["ok"] == args.n and rep.get("frames_probed_equal_status") and rep["frames_out_total"] == 72 * args.n
        print("loadtest smoke:", "passed" if good else "FAILED")
        sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()
