"""Job-ownership routing between two daemons on loopback (issue 9), which share nothing but the
job-id scheme: B starts first with `--instance b --peer a=http://127.0.0.1:PA` (PA a free
port picked here), then A with `--instance a --listen 127.0.0.1:PA --peer b=<B's URL>`.
  - a job created on B has the prefix "b."; asked at A: 307, Location = B's URL + the same
    path and query, JSON error code "moved" (contract);
  - following the redirect works for GET status, PUT input (the client re-sends the body to
    Location; also real `curl -L -T file`), GET output (bytes = a job processed at B), GET
    events, tus HEAD, DELETE;
  - the reverse direction (a job of A asked at B) redirects to A;
  - an unknown instance prefix -> 404 not_found; a malformed id -> 404;
  - peer_url_template alone (no peer list): a daemon started with
    `--peer-url-template http://127.0.0.1:{instance}` redirects a job of instance "<port>"
    to that port.
Null model (routing needs no network weights)."""
import os
import subprocess
import urllib.parse

import harness as H


def body(t):
    pa = H.free_port()
    b = H.Daemon(t.work, "b", model="null", args=["--instance", "b", "--peer", f"a=http://127.0.0.1:{pa}"]).start()
    a = H.Daemon(t.work, "a", model="null", port=pa,
                 args=["--instance", "a", "--peer", f"b=http://127.0.0.1:{b.port}"]).start()
    ca, cb = t.client(a), t.client(b)
    clip = open(H.fixture("clip.ts"), "rb").read()

    jb = cb.create_job({"output": {"container": "mpegts"}}).json()["id"]
    t.check(jb.startswith("b."), "job created on B has the prefix b.", jb)
    ja = ca.create_job({"output": {"container": "mpegts"}}).json()["id"]
    t.check(ja.startswith("a."), "job created on A has the prefix a.", ja)

    def redirect(c, method, path, target, **kw):
        r = c.request(method, path, **kw)
        ok = (r.status == 307 and r.headers.get("location") == target.url + path)
        t.check(ok, f"{method} {path} at the other instance -> 307 Location {target.url}{path}",
                f"{r.status} Location={r.headers.get('location')!r}")
        if method != "HEAD":
            t.eq(r.code(), "moved", f"{method} {path}: 307 body error code 'moved'")
        return r

    # GET status, with a query string kept in Location
    redirect(ca, "GET", f"/v1/jobs/{jb}", b)
    redirect(ca, "GET", f"/v1/jobs/{jb}?verbose=1", b)
    r = ca.get(f"/v1/jobs/{jb}")
    loc = urllib.parse.urlsplit(r.headers.get("location", "http://x/"))
    r2 = cb.get(loc.path + (f"?{loc.query}" if loc.query else ""))
    t.eq((r2.status, r2.json().get("id") if r2.status == 200 else None), (200, jb), "following the 307 for GET status")

    # PUT input: 307 at A, the client re-sends the body to Location
    r = ca.put_input(jb, clip)
    t.check(r.status == 307 and r.headers.get("location") == f"{b.url}/v1/jobs/{jb}/input",
            "PUT input at A -> 307 to B", f"{r.status} {r.headers.get('location')}")
    r = cb.put_input(jb, clip)
    t.eq(r.status, 204, "re-sent PUT at Location 204")
    j = cb.wait_state(jb, ("succeeded", "failed", "cancelled"), timeout=60)
    t.eq((j["state"], j.get("frames_out")), ("succeeded", 72), "the redirected upload was processed at B")

    # GET output and events through the redirect
    redirect(ca, "GET", f"/v1/jobs/{jb}/output", b)
    out, _ = cb.read_output(jb)
    p = H.ffprobe_video(out.body, t.work)
    t.eq((out.status, p.get("width"), p.get("height"), p.get("frames")), (200, 256, 192, 72),
         "output fetched at Location: 256x192, 72 frames (null model x4)")
    redirect(ca, "GET", f"/v1/jobs/{jb}/events", b)
    redirect(ca, "HEAD", f"/v1/uploads/{jb}", b, headers={"Tus-Resumable": "1.0.0"})
    redirect(ca, "PATCH", f"/v1/uploads/{jb}", b, body=b"x",
             headers={"Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})

    # a real client: curl -L follows the 307 with the method and the body
    jb2 = cb.create_job({"output": {"container": "mpegts"}}).json()["id"]
    src = H.fixture("clip.ts")
    trace = os.path.join(t.work, "curl-L.txt")
    p = subprocess.run(["curl", "-sS", "-v", "-L", "-T", src, "-H", "Content-Type: video/mp2t", "-o", os.devnull,
                        "-w", "%{http_code} %{num_redirects} %{url_effective}", f"{a.url}/v1/jobs/{jb2}/input"],
                       capture_output=True, text=True, timeout=60)
    open(trace, "w").write(p.stderr)
    t.eq(p.stdout.split(" ")[:2], ["204", "1"], f"curl -L -T to A: one redirect, 204 from B ({p.stdout})")
    j = cb.wait_state(jb2, ("succeeded", "failed", "cancelled"), timeout=60)
    t.eq((j["state"], j.get("frames_out")), ("succeeded", 72), "curl's redirected upload was processed at B")
    # curl -L for the output too
    p = subprocess.run(["curl", "-sS", "-L", "-o", os.path.join(t.work, "curl-out.ts"), "-w", "%{http_code}",
                        f"{a.url}/v1/jobs/{jb2}/output"], capture_output=True, text=True, timeout=60)
    pr = H.ffprobe_video(os.path.join(t.work, "curl-out.ts"))
    t.eq((p.stdout, pr.get("frames")), ("200", 72), "curl -L GET output via A: 200, 72 frames")

    # reverse direction, DELETE through the redirect
    redirect(cb, "GET", f"/v1/jobs/{ja}", a)
    redirect(ca, "DELETE", f"/v1/jobs/{jb}", b)
    t.eq(cb.delete(f"/v1/jobs/{jb}").status, 204, "DELETE at Location 204")
    t.eq(cb.get(f"/v1/jobs/{jb}").status, 404, "job gone at B")

    # unknown instance, malformed ids
    for c, name in ((ca, "A"), (cb, "B")):
        r = c.get("/v1/jobs/zzz.AAAAAAAAAAAAAAAAAAAAAA")
        t.eq((r.status, r.code()), (404, "not_found"), f"unknown instance prefix at {name}: 404 not_found")
        t.check("zzz" in (r.json().get("error", {}).get("message", "") if r.status == 404 else ""),
                f"404 message at {name} names the unknown instance", r.body[:200])
        r = c.request("HEAD", "/v1/uploads/zzz.AAAAAAAAAAAAAAAAAAAAAA", headers={"Tus-Resumable": "1.0.0"})
        t.eq(r.status, 404, f"tus HEAD with an unknown instance at {name}: 404")
    for jid in (ja, jb2):
        (ca if jid.startswith("a.") else cb).delete(f"/v1/jobs/{jid}")
    a.stop()
    b.stop()

    # peer_url_template (the StatefulSet form, no peer list): instance C is named after its
    # port so that the template http://127.0.0.1:{instance} reaches it on loopback.
    pc = H.free_port()
    cd = H.Daemon(t.work, "c", model="null", port=pc, args=["--instance", str(pc)]).start()
    td = H.Daemon(t.work, "t", model="null",
                  args=["--instance", "t", "--peer-url-template", "http://127.0.0.1:{instance}"]).start()
    cc, ct = t.client(cd), t.client(td)
    jc = cc.create_job({}).json()["id"]
    t.check(jc.startswith(f"{pc}."), "job on C has C's instance prefix", jc)
    redirect(ct, "GET", f"/v1/jobs/{jc}", cd)
    r = ct.put_input(jc, clip)
    t.check(r.status == 307 and r.headers.get("location") == f"{cd.url}/v1/jobs/{jc}/input",
            "peer_url_template: PUT input -> 307 to the templated URL", f"{r.status} {r.headers.get('location')}")
    t.eq(cc.put_input(jc, clip).status, 204, "peer_url_template: re-sent PUT at Location 204")
    j = cc.wait_state(jc, ("succeeded", "failed", "cancelled"), timeout=60)
    t.eq(j["state"], "succeeded", "peer_url_template: job processed at C")
    cc.delete(f"/v1/jobs/{jc}")
    cd.stop()
    td.stop()


if __name__ == "__main__":
    H.run_main(H.Suite("routing"), body)
