"""Per-client limits behind proxies and under many streams (issue 15 item 6). Null model.

Before the fix the per-IP connection cap (64) was libmicrohttpd's: a connection over it was
reset without an HTTP status, so 50 concurrent streams from one address (an upload and an
output reader each) lost 31 output GETs; and behind a proxy every client was the proxy.
  1. Over max_connections_per_ip a request gets 429 rate_limited + Retry-After + the JSON
     error + Connection: close (never a bare reset); probes are exempt; the count is per
     address and frees up when connections close.
  2. 50 concurrent streams from one address complete: (a) with default settings and
     clients that honour Retry-After on the admission 503 (the default admits 18 jobs at
     a time) and on the tenant's 429 (16 jobs without input at a time); (b) with 50 jobs
     alive at once (max_queued_jobs and max_awaiting_jobs_per_tenant raised, connection
     settings default): 50 output readers waiting, then 50 PUTs, i.e. 100+ connections from
     127.0.0.1. Every output is identical and complete; no request is reset.
  3. trusted_proxies: X-Forwarded-For names the client only when the peer is a trusted
     proxy (rightmost untrusted hop); that client is what max_jobs_per_client,
     max_connections_per_ip and max_requests_per_s count; from any other peer the header
     is ignored."""
import threading
import time

import harness as H
import rawhttp as R

Y4M = {"output": {"container": "y4m"}}


def get_on(sock, path, headers=()):
    req = f"GET {path} HTTP/1.1\r\nHost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return R.request_on(sock, req.encode())


def record(c, method, path, r, case):
    if r is not None:
        c.rec.add(method, path, r[0], r[1], r[2], case=case)


def wait_connections(c, at_most, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if c.metrics().get("infvsrd_active_connections", 1e9) <= at_most:
            return True
        time.sleep(0.05)
    return False


# ---- 1 -------------------------------------------------------------------------------------------

def over_limit(t):
    d = H.Daemon(t.work, "perip", model="null", args=["--max-connections-per-ip", "4", "--retry-after-s", "3"]).start()
    c = t.client(d)
    held = []
    for i in range(4):
        s = R.connect(d.port)
        r = get_on(s, "/v1/models")
        record(c, "GET", "/v1/models", r, "held")
        t.eq(r and r[0], 200, f"connection {i + 1} of 4 served")
        held.append(s)
    s5 = R.connect(d.port)
    r = get_on(s5, "/v1/models")
    record(c, "GET", "/v1/models", r, "5th connection")
    code = H.Response(r[0], r[1], r[2], 0).code() if r else None
    t.eq((r and r[0], code, r and r[1].get("retry-after"), r and r[1].get("connection", "").lower()),
         (429, "rate_limited", "3", "close"),
         "5th connection from one address (limit 4): 429 rate_limited, Retry-After 3, Connection: close")
    s5.settimeout(5)
    try:
        eof = s5.recv(100) == b""
    except OSError:
        eof = True
    t.check(eof, "and the daemon closed that connection")
    s5.close()
    s6 = R.connect(d.port)
    r = get_on(s6, "/healthz")
    record(c, "GET", "/healthz", r, "probe over the limit")
    t.eq(r and r[0], 200, "a probe over the limit is still answered (probes exempt)")
    s6.close()
    s7 = R.connect(d.port, source="127.0.0.2")
    r = get_on(s7, "/v1/models")
    record(c, "GET", "/v1/models", r, "other address")
    t.eq(r and r[0], 200, "another address is not affected")
    s7.close()
    for s in held:
        s.close()
    t.check(wait_connections(c, 1), "the daemon saw the 4 connections close")
    held = [R.connect(d.port) for _ in range(4)]
    rs = [get_on(s, "/v1/models") for s in held]
    t.eq([r and r[0] for r in rs], [200] * 4, "after they closed, 4 new connections are served")
    for s in held:
        s.close()
    d.stop()


# ---- 2 -------------------------------------------------------------------------------------------

def put_two_phase(c, jid, clip, barrier):
    """A chunked PUT that sends half the input, waits at `barrier` with its connection open,
    then the rest. Returns the status (None when the connection was cut without one)."""
    s = R.connect(c.port, timeout=240)
    half = len(clip) // 2
    s.sendall(f"PUT /v1/jobs/{jid}/input HTTP/1.1\r\nHost: x\r\nContent-Type: video/mp2t\r\n"
              f"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode())
    s.sendall(b"%x\r\n%s\r\n" % (half, clip[:half]))
    barrier.wait(120)
    r = R.request_on(s, b"%x\r\n%s\r\n0\r\n\r\n" % (len(clip) - half, clip[half:]), timeout=240)
    s.close()
    if r is not None:
        c.rec.add("PUT", f"/v1/jobs/{jid}/input", r[0], r[1], r[2], case="two-phase PUT")
    return r[0] if r else None


def stream(c, clip, out, i, ready=None, go=None, barrier=None):
    """One client: create (honouring Retry-After on the admission 503 and on the 429 of
    max_awaiting_jobs_per_tenant: every client here is the one anonymous tenant, so at most
    16 of them may hold a job still waiting for input), read the output while uploading.
    With `ready`/`go`/`barrier`: the reader waits first, then the upload holds its
    connection open at the barrier (so every connection is open at once)."""
    try:
        deadline = time.time() + 240 * H.WAIT_SCALE
        while True:
            r = c.create_job(Y4M, expect=None)
            if r.status == 201:
                break
            if r.status not in (503, 429) or time.time() > deadline:
                raise AssertionError(f"POST /v1/jobs -> {r.status} {r.body[:200]!r}")
            out.setdefault("retries", 0)
            out["retries"] += 1
            time.sleep(float(r.headers.get("retry-after", "1")))
        jid = r.json()["id"]
        res = {}

        def read():
            try:
                res["r"] = c.read_output(jid)
            except Exception as e:  # noqa: BLE001
                res["e"] = repr(e)
        rd = threading.Thread(target=read)
        rd.start()
        if ready is not None:
            ready.release()
            go.wait(120)
            put = put_two_phase(c, jid, clip, barrier)
        else:
            put = c.put_input(jid, clip).status
        rd.join(240)
        resp = res.get("r", (None, None))[0]
        out[i] = {"put": put, "get": getattr(resp, "status", None), "body": getattr(resp, "body", None),
                  "aborted": getattr(resp, "aborted", None), "err": res.get("e")}
    except Exception as e:  # noqa: BLE001
        out[i] = {"err": repr(e)}


def fifty_streams(t, name, args, gate):
    d = H.Daemon(t.work, name, model="null", args=args).start()
    c = t.client(d, timeout=240 * H.SLOWDOWN)
    clip = open(H.fixture("small.ts"), "rb").read()
    out = {}
    ready = threading.Semaphore(0) if gate else None
    go = threading.Event() if gate else None
    barrier = threading.Barrier(51) if gate else None
    ths = [threading.Thread(target=stream, args=(c, clip, out, i, ready, go, barrier)) for i in range(50)]
    t0 = time.time()
    for th in ths:
        th.start()
    waiting = together = None
    if gate:  # all 50 readers connected and waiting, then 50 uploads half sent, all at once
        for _ in range(50):
            ready.acquire(timeout=120)
        deadline = time.time() + 30
        while time.time() < deadline:
            waiting = c.metrics().get("infvsrd_suspended_connections")
            if waiting >= 50:
                break
            time.sleep(0.1)
        go.set()
        deadline = time.time() + 60
        while time.time() < deadline:
            together = c.metrics().get("infvsrd_active_connections")
            if together >= 101:  # 50 readers + 50 uploads + this /metrics request
                break
            time.sleep(0.1)
        barrier.wait(120)
    conns = [together or 0]
    while any(th.is_alive() for th in ths):
        conns.append(c.metrics().get("infvsrd_active_connections", 0))
        time.sleep(0.2)
    for th in ths:
        th.join()
    dt = time.time() - t0
    streams = {i: o for i, o in out.items() if isinstance(i, int)}
    bad = {i: {k: (v if k != "body" else len(v or b"")) for k, v in o.items()} for i, o in streams.items()
           if o.get("err") or o.get("put") != 204 or o.get("get") != 200 or o.get("aborted")}
    bodies = {o.get("body") for o in streams.values() if o.get("get") == 200}
    H.log(f"{name}: 50 streams from 127.0.0.1 in {dt:.1f} s; connections peak {max(conns or [0]):.0f}; "
          f"readers waiting at once {waiting}; admission 503s retried {out.get('retries', 0)}")
    if gate:
        t.check(together >= 101, f"{name}: 50 readers and 50 uploads held their connections at once ({together:.0f} "
                                 "connections from 127.0.0.1, default max_connections_per_ip)", together)
    t.eq((len(streams), bad), (50, {}),
         f"{name}: all 50 streams complete (PUT 204, output 200 to the end, no reset)")
    t.eq(len(bodies), 1, f"{name}: all 50 outputs identical")
    body = next(iter(bodies), b"")
    p = H.ffprobe_video(body or b"", t.work)
    t.eq((p.get("width"), p.get("height"), p.get("frames")), (128, 96, 48), f"{name}: the output is 48 frames at 4x")
    m = c.metrics()
    # 429s of the tenant's awaiting-input limit are admission, retried like the 503s above
    t.eq(m.get('infvsrd_errors_total{code="rate_limited"}', 0.0) - m.get("infvsrd_tenant_limit_refusals_total", 0.0),
         0.0, f"{name}: no request hit a per-client limit")
    d.stop()
    return max(conns or [0])


# ---- 3 -------------------------------------------------------------------------------------------

PROXY = "127.0.0.2"


def create_as(c, port, source, xff, case):
    """POST /v1/jobs from `source` with X-Forwarded-For `xff`; returns (status, code, id)."""
    hdr = f"X-Forwarded-For: {xff}\r\n" if xff else ""
    data = (f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n{hdr}"
            f"Content-Length: 2\r\n\r\n{{}}").encode()
    rs, _, _ = R.exchange(port, data, source=source)
    if not rs:
        return None, None, None
    st, hd, b = rs[0]
    c.rec.add("POST", "/v1/jobs", st, hd, b, case=case)
    resp = H.Response(st, hd, b, 0)
    return st, resp.code(), resp.json().get("id") if st == 201 else None


def trusted_proxies(t):
    d = H.Daemon(t.work, "proxy", model="null", args=["--trusted-proxies", f"{PROXY}, 10.0.0.0/8",
                                                      "--max-jobs-per-client", "1",
                                                      "--max-connections-per-ip", "2"]).start()
    c = t.client(d)
    t.eq(create_as(c, d.port, PROXY, "203.0.113.1", "xff A")[:2], (201, None), "via the proxy, client A: job 201")
    t.eq(create_as(c, d.port, PROXY, "203.0.113.1", "xff A again")[:2], (429, "rate_limited"),
         "client A's second job: 429 (max_jobs_per_client counts A, not the proxy)")
    t.eq(create_as(c, d.port, PROXY, "203.0.113.2", "xff B")[0], 201, "client B through the same proxy: 201")
    t.eq(create_as(c, d.port, PROXY, "198.51.100.7, 203.0.113.1", "xff chain")[0], 429,
         "'198.51.100.7, 203.0.113.1': the rightmost untrusted hop (A) is the client: 429")
    t.eq(create_as(c, d.port, PROXY, "203.0.113.3, 10.1.2.3", "xff via 2 proxies")[0], 201,
         "'203.0.113.3, 10.1.2.3' (10.1.2.3 a trusted proxy): client 203.0.113.3: 201")
    t.eq(create_as(c, d.port, "127.0.0.3", "203.0.113.50", "untrusted xff 1")[0], 201,
         "an untrusted peer with X-Forwarded-For: 201")
    t.eq(create_as(c, d.port, "127.0.0.3", "203.0.113.51", "untrusted xff 2")[:2], (429, "rate_limited"),
         "the same untrusted peer claiming another X-Forwarded-For: 429 (the header is ignored, the peer counts)")

    def hold(source, xff):
        s = R.connect(d.port, source)
        r = get_on(s, "/v1/models", [("X-Forwarded-For", xff)] if xff else [])
        record(c, "GET", "/v1/models", r, f"hold {source} {xff}")
        return s, r and r[0], r
    a1, a2, a3 = hold(PROXY, "203.0.113.9"), hold(PROXY, "203.0.113.9"), hold(PROXY, "203.0.113.9")
    t.eq((a1[1], a2[1], a3[1]), (200, 200, 429),
         "max_connections_per_ip 2 via the proxy: client C's third connection 429")
    b1 = hold(PROXY, "203.0.113.10")
    t.eq(b1[1], 200, "client D through the proxy is counted apart (the proxy's own address is not a client)")
    p1, p2, p3 = hold("127.0.0.4", None), hold("127.0.0.4", None), hold("127.0.0.4", None)
    t.eq((p1[1], p2[1], p3[1]), (200, 200, 429), "a direct client's third connection 429")
    for s in (a1, a2, a3, b1, p1, p2, p3):
        s[0].close()
    d.stop()

    d = H.Daemon(t.work, "proxyrate", model="null", args=["--trusted-proxies", PROXY, "--max-requests-per-s", "1",
                                                          "--request-burst", "2"]).start()
    c = t.client(d)

    def models(source, xff):
        hdr = f"X-Forwarded-For: {xff}\r\n" if xff else ""
        rs, _, _ = R.exchange(d.port, f"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{hdr}\r\n".encode(),
                              source=source)
        if rs:
            c.rec.add("GET", "/v1/models", rs[0][0], rs[0][1], rs[0][2], case=f"rate {source} {xff}")
        return rs[0][0] if rs else None
    t.eq([models(PROXY, "203.0.113.20") for _ in range(3)], [200, 200, 429],
         "max_requests_per_s via the proxy: client E's burst of 2, then 429")
    t.eq(models(PROXY, "203.0.113.21"), 200, "client F through the same proxy has its own bucket")
    t.eq(models("127.0.0.3", "203.0.113.20"), 200, "an untrusted peer naming E has its own (the peer's) bucket")
    d.stop()


def body(t):
    over_limit(t)
    trusted_proxies(t)
    peak_a = fifty_streams(t, "defaults", [], gate=False)
    peak_b = fifty_streams(t, "fifty-alive", ["--max-queued-jobs", "64", "--max-awaiting-jobs-per-tenant", "64"],
                           gate=True)
    H.log(f"50 streams from one address: defaults (admission 18 at a time, Retry-After honoured) peak "
          f"{peak_a:.0f} connections; 50 jobs alive at once peak {peak_b:.0f} connections; all complete")


if __name__ == "__main__":
    H.run_main(H.Suite("client_limits"), body)
