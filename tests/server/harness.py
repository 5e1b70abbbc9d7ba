"""Shared pieces of the infvsrd integration tests (stdlib only, /usr/bin/python3).

- Daemon: starts the real `infvsrd` on loopback (port 0 unless given), reads the chosen port
  from its `listening port=N` log line, waits for /readyz, and always kills it at the end
  (context manager + atexit + PR_SET_PDEATHSIG, so a ctest timeout cannot leave it behind).
- Client: small HTTP client on http.client that records every response (method, path,
  status, headers, JSON/text body) to a JSON-lines file; Suite.finish() runs
  openapi_check.mjs over all records so every response of every test is checked against
  proto/openapi.yaml.
- Helpers: ffprobe frame counts, /metrics parsing, spool listing, raw-socket requests.

Environment (set by tests/server/CMakeLists.txt): INFVSRD, INFVSR (CLI), SERVER_FIXTURES
(tiny model + clips), SERVER_NODE_MODULES, SERVER_SRC (tests/server), SOURCE_DIR, TEST_WORK.
"""
import atexit
import base64
import ctypes
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

ENV = os.environ
INFVSRD = ENV.get("INFVSRD", "")
FIXTURES = ENV.get("SERVER_FIXTURES", "")
NODE_MODULES = ENV.get("SERVER_NODE_MODULES", "")
SERVER_SRC = ENV.get("SERVER_SRC", os.path.dirname(os.path.abspath(__file__)))
SOURCE_DIR = ENV.get("SOURCE_DIR", os.path.abspath(os.path.join(SERVER_SRC, "..", "..")))
SPEC = os.path.join(SOURCE_DIR, "proto", "openapi.yaml")
# >1 in sanitizer builds (set by CMake): paced sources slow down by this factor
SLOWDOWN = float(ENV.get("SERVER_TEST_SLOWDOWN", "1") or 1)
# Deadlines of waits for a state (wait_state, read_output_when_ready) are this many times the
# time the wait needs on an idle machine: generous, since a state wait returns at once.
WAIT_SCALE = 5 * SLOWDOWN
ERRORS = os.path.join(SOURCE_DIR, "proto", "errors.json")

_live_daemons = []
_all_daemons = []
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "WARNING: ThreadSanitizer")


def log(*a):
    print(*a, flush=True)


def _pdeathsig():
    # The daemon dies with the test process even when ctest SIGKILLs the test on timeout.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fixture(name):
    p = os.path.join(FIXTURES, name)
    if not os.path.exists(p):
        raise SystemExit(f"fixture {p} missing (run the server.fixtures test first)")
    return p


class Daemon:
    """One infvsrd process. model: 'tiny' (the fixture's tiny model), 'null', or a directory."""

    def __init__(self, work, name="d", model="tiny", args=(), env=None, port=0, spool=None):
        self.work = work
        self.name = name
        self.spool = spool or os.path.join(work, f"spool-{name}")  # share one to restart on it
        self.logpath = os.path.join(work, f"infvsrd-{name}.log")
        self.model = model
        self.args = list(args)
        self.env = env
        self.port = port
        self.proc = None
        self.url = None

    def command(self):
        cmd = [INFVSRD, "--listen", f"127.0.0.1:{self.port}", "--spool-dir", self.spool]
        if "--instance" not in self.args:
            cmd += ["--instance", "local"]
        if "--drain-timeout-s" not in self.args:
            # stop() sends SIGTERM: running jobs get this long before they are cancelled
            cmd += ["--drain-timeout-s", "5"]
        if self.model == "null":
            cmd += ["--model", "null"]
        else:
            cmd += ["--model-dir", fixture("tiny") if self.model == "tiny" else self.model]
        return cmd + self.args

    def start(self, wait_ready=True, timeout=60, keep_spool=False):
        """keep_spool: restart on what a previous daemon left in the spool (restart tests)."""
        if not INFVSRD or not os.access(INFVSRD, os.X_OK):
            raise SystemExit(f"infvsrd binary not found: INFVSRD={INFVSRD!r}")
        if not keep_spool:
            shutil.rmtree(self.spool, ignore_errors=True)
        os.makedirs(self.spool, exist_ok=True)
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("INFVSR_"):
                del env[k]  # the tests' own settings only
        env.update(self.env or {})
        self.logf = open(self.logpath, "wb")
        cmd = self.command()
        log(f"[{self.name}] $ {' '.join(cmd)}")
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=_pdeathsig)
        _live_daemons.append(self)
        _all_daemons.append(self)
        self.killed = False
        deadline = time.time() + timeout
        port = None
        while time.time() < deadline and port is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"infvsrd exited with {self.proc.returncode} before listening:\n{self.log_text()[-3000:]}")
            port = self._find_port()
            if port is None:
                time.sleep(0.05)
        if port is None:
            raise RuntimeError(f"no 'listening port=N' in the log after {timeout}s:\n{self.log_text()[-3000:]}")
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        if wait_ready:
            self.wait_ready(deadline - time.time())
        return self

    def _find_port(self):
        for line in self.log_text().splitlines():
            m = re.search(r"listening port=(\d+)", line)
            if m:
                return int(m.group(1))
            if "listening" in line and line.lstrip().startswith("{"):
                try:
                    o = json.loads(line)
                    if "port" in o:
                        return int(o["port"])
                except ValueError:
                    pass
        return None

    def wait_ready(self, timeout=60):
        deadline = time.time() + max(timeout, 1)
        last = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"infvsrd exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/readyz")
                r = c.getresponse()
                last = (r.status, r.read()[:300])
                c.close()
                if r.status == 200:
                    return
            except OSError as e:
                last = repr(e)
            time.sleep(0.1)
        raise RuntimeError(f"/readyz not 200 after {timeout:.0f}s (last: {last})\n{self.log_text()[-3000:]}")

    def log_text(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def pid(self):
        return self.proc.pid

    def rss_kb(self, key="VmRSS"):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout):
        return self.proc.wait(timeout=timeout)

    def stop(self):
        """Kills the daemon (SIGKILL after a short SIGTERM grace) and returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            drain = 5.0
            if "--drain-timeout-s" in self.args:
                drain = float(self.args[self.args.index("--drain-timeout-s") + 1])
            try:
                self.proc.wait(timeout=drain + 10 * SLOWDOWN)
            except subprocess.TimeoutExpired:
                log(f"[{self.name}] did not exit {drain + 10 * SLOWDOWN:.0f} s after SIGTERM: SIGKILL")
                self.killed = True
                self.proc.kill()
                self.proc.wait()
        if self in _live_daemons:
            _live_daemons.remove(self)
        try:
            self.logf.close()
        except Exception:
            pass
        return self.proc.returncode

    def kill9(self):
        """SIGKILL, on purpose (crash tests): check_daemons then only looks for sanitizer reports."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.killed_on_purpose = True
        if self in _live_daemons:
            _live_daemons.remove(self)
        try:
            self.logf.close()
        except Exception:
            pass

    def spool_files(self):
        out = []
        for root, _dirs, files in os.walk(self.spool):
            for f in files:
                out.append(os.path.relpath(os.path.join(root, f), self.spool))
        return sorted(out)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@atexit.register
def _kill_all():
    for d in list(_live_daemons):
        try:
            if d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait(timeout=5)
        except Exception:
            pass


class Response:
    def __init__(self, status, headers, body, elapsed):
        self.aborted = None  # output streams: set when the server cut the stream
        self.status = status
        self.headers = headers  # lower-case name -> value (repeated headers joined by ", ")
        self.body = body
        self.elapsed = elapsed

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def code(self):
        """error.code of a JSON error body, or None."""
        try:
            return self.json()["error"]["code"]
        except Exception:
            return None

    def __repr__(self):
        return f"<{self.status} {self.headers.get('content-type', '')} {self.body[:300]!r}>"


def _headers_dict(msg):
    d = {}
    for k, v in msg.items():
        k = k.lower()
        d[k] = d[k] + ", " + v if k in d else v
    return d


def _textual(ct):
    ct = (ct or "").split(";")[0].strip().lower()
    return ct in ("application/json", "text/plain", "text/html", "") or ct.startswith("text/")


class Recorder:
    """Appends every response to a JSON-lines file for openapi_check.mjs."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.count = 0
        open(path, "w").close()

    def add(self, method, path, status, headers, body=None, body_len=None, case=None, sse=None, mhd=False,
            body_omitted=False):
        rec = {"method": method, "path": path, "status": status, "headers": headers,
               "body_len": len(body) if body is not None else (body_len or 0)}
        ct = headers.get("content-type", "")
        if body is not None and _textual(ct) and "event-stream" not in ct:
            rec["body"] = body[:262144].decode("utf-8", "replace")
        else:
            rec["body"] = None
            rec["body_omitted"] = bool(body_omitted or (body is not None and len(body) > 0))
        if case:
            rec["case"] = case
        if sse is not None:
            rec["sse"] = sse
        if mhd:
            rec["mhd"] = True
        with self.lock:
            with open(self.path, "a") as f:
                f.write(json.dumps(rec) + "\n")
            self.count += 1


class Client:
    def __init__(self, base_url, recorder, token=None, timeout=60):
        u = urllib.parse.urlsplit(base_url)
        self.host, self.port = u.hostname, u.port
        self.base = base_url.rstrip("/")
        self.rec = recorder
        self.token = token
        self.timeout = timeout

    def _hdrs(self, headers):
        h = dict(headers or {})
        if self.token and "Authorization" not in h:
            h["Authorization"] = f"Bearer {self.token}"
        return h

    def request(self, method, path, body=None, headers=None, json_body=None, case=None, record=True,
                mhd=False):
        h = self._hdrs(headers)
        if json_body is not None:
            body = json.dumps(json_body).encode()
            h.setdefault("Content-Type", "application/json")
        t0 = time.time()
        c = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read() if method != "HEAD" else b""
            resp = Response(r.status, _headers_dict(r.msg), data, time.time() - t0)
        finally:
            c.close()
        if record:
            self.rec.add(method, path, resp.status, resp.headers, resp.body, case=case, mhd=mhd)
        return resp

    # convenience
    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def create_job(self, spec=None, headers=None, expect=(201,), case=None):
        r = self.request("POST", "/v1/jobs", json_body=spec if spec is not None else {}, headers=headers, case=case)
        if expect and r.status not in expect:
            raise AssertionError(f"POST /v1/jobs {spec} -> {r.status} {r.body[:500]!r}")
        return r

    def job(self, job_id):
        r = self.get(f"/v1/jobs/{job_id}")
        if r.status != 200:
            raise AssertionError(f"GET /v1/jobs/{job_id} -> {r!r}")
        return r.json()

    def put_input(self, job_id, data, chunked=False, chunk_size=65536, delay=0.0, content_type="video/mp2t",
                  case=None, extra_headers=None):
        """PUT the input; chunked=True sends it with Transfer-Encoding: chunked, pieces of
        chunk_size every `delay` seconds."""
        h = self._hdrs({"Content-Type": content_type, **(extra_headers or {})})
        path = f"/v1/jobs/{job_id}/input"
        c = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        t0 = time.time()
        send_error = None
        try:
            c.putrequest("PUT", path, skip_accept_encoding=True)
            for k, v in h.items():
                c.putheader(k, v)
            if chunked:
                c.putheader("Transfer-Encoding", "chunked")
            else:
                c.putheader("Content-Length", str(len(data)))
            c.endheaders()
            # The server may answer early (413, 422, 409...) and stop reading: a failed send
            # is remembered and the response is still read.
            try:
                early = False
                for i in range(0, len(data), chunk_size):
                    piece = data[i:i + chunk_size]
                    c.send(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                    if delay:
                        time.sleep(delay)
                    # an answer before the body is complete (413, 410...): stop sending
                    if select.select([c.sock], [], [], 0)[0]:
                        early = True
                        break
                if chunked and not early:
                    c.send(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError) as e:
                send_error = e
            try:
                r = c.getresponse()
                body = r.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                raise ConnectionError(f"PUT {path}: no response ({e!r}; send error {send_error!r})")
            resp = Response(r.status, _headers_dict(r.msg), body, time.time() - t0)
            resp.send_error = send_error
        finally:
            c.close()
        self.rec.add("PUT", path, resp.status, resp.headers, resp.body, case=case)
        return resp

    def open_output(self, job_id, headers=None):
        """Starts GET /output; returns (conn, response) for incremental reads. Call
        finish_stream() afterwards to record it."""
        c = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        c.request("GET", f"/v1/jobs/{job_id}/output", headers=self._hdrs(headers))
        return c, c.getresponse()

    def record_stream(self, method, path, r, nbytes, sse=None):
        self.rec.add(method, path, r.status, _headers_dict(r.msg), None, body_len=nbytes, sse=sse,
                     body_omitted=nbytes > 0)

    def read_output(self, job_id, headers=None, on_first_byte=None):
        """Reads the whole output; returns (Response, t_first_byte)."""
        c, r = self.open_output(job_id, headers)
        t0 = time.time()
        buf = bytearray()
        t_first = None
        aborted = None
        try:
            while True:
                try:
                    piece = r.read1(65536) if hasattr(r, "read1") else r.read(65536)
                except (http.client.IncompleteRead, ConnectionError) as e:
                    # the server cut the stream (an in-band error after the first byte)
                    aborted = repr(e)
                    break
                if not piece:
                    break
                if t_first is None:
                    t_first = time.time()
                    if on_first_byte:
                        on_first_byte(t_first)
                buf += piece
        finally:
            c.close()
        hd = _headers_dict(r.msg)
        ct = hd.get("content-type", "")
        if _textual(ct):
            self.rec.add("GET", f"/v1/jobs/{job_id}/output", r.status, hd, bytes(buf))
        else:
            self.rec.add("GET", f"/v1/jobs/{job_id}/output", r.status, hd, None, body_len=len(buf),
                         body_omitted=len(buf) > 0)
        resp = Response(r.status, hd, bytes(buf), time.time() - t0)
        resp.aborted = aborted
        return resp, t_first

    def read_output_when_ready(self, job_id, timeout=60):
        """GET /output, repeated every 50 ms while the job has no output yet (a non-200
        answer before the job runs, e.g. 409); returns (Response, t_first_byte)."""
        deadline = time.time() + timeout * WAIT_SCALE
        while True:
            r, tfb = self.read_output(job_id)
            if r.status == 200 or time.time() > deadline or r.status in (404, 401, 307):
                return r, tfb
            time.sleep(0.05)

    def events(self, job_id, timeout=120):
        """Reads the SSE stream to its end; returns the list of {event, data}."""
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        path = f"/v1/jobs/{job_id}/events"
        c.request("GET", path, headers=self._hdrs({"Accept": "text/event-stream"}))
        r = c.getresponse()
        evs = []
        if r.status != 200:
            body = r.read()
            c.close()
            self.rec.add("GET", path, r.status, _headers_dict(r.msg), body)
            return r.status, evs
        cur = {"event": "message", "data": []}
        n = 0
        self.events_closed = True
        while True:
            try:
                line = r.fp.readline()
            except (socket.timeout, TimeoutError):
                self.events_closed = False  # still open 5 s after the final event
                break
            if not line:
                break
            n += len(line)
            line = line.decode("utf-8", "replace").rstrip("\r\n")
            if line == "":
                if cur["data"]:
                    evs.append({"event": cur["event"], "data": "\n".join(cur["data"])})
                    if cur["event"] in ("done", "error"):
                        # the stream must end after the final event: wait at most 5 s
                        if c.sock is not None:
                            c.sock.settimeout(5)
                cur = {"event": "message", "data": []}
                continue
            if line.startswith(":"):
                continue
            k, _, v = line.partition(":")
            v = v[1:] if v.startswith(" ") else v
            if k == "event":
                cur["event"] = v
            elif k == "data":
                cur["data"].append(v)
        c.close()
        self.record_stream("GET", path, r, n, sse=evs)
        return r.status, evs

    def wait_state(self, job_id, states, timeout=120, poll=0.1):
        """The job's status once its state is one of `states`. `timeout` is what the wait takes
        on an idle machine, with room; the deadline is WAIT_SCALE times that, because a wait
        for a state ends as soon as the state is reached and a loaded CI machine (or a
        sanitizer build) must not fail a test whose job is merely slow."""
        timeout *= WAIT_SCALE
        deadline = time.time() + timeout
        j = None
        while time.time() < deadline:
            r = self.get(f"/v1/jobs/{job_id}", record=False)
            if r.status == 200:
                j = r.json()
                if j["state"] in states:
                    self.rec.add("GET", f"/v1/jobs/{job_id}", r.status, r.headers, r.body)
                    return j
            time.sleep(poll)
        raise AssertionError(f"job {job_id} not in {states} after {timeout}s (last {j})")

    def metrics(self):
        r = self.get("/metrics")
        if r.status != 200:
            raise AssertionError(f"/metrics -> {r!r}")
        return parse_metrics(r.body.decode())


def gauges_settled(client, timeout=None):
    """(active, queued, awaiting input) once all are 0, or their last values after `timeout` s
    (default 60 s x SERVER_TEST_SLOWDOWN: returns as soon as they settle, so a generous
    deadline costs nothing when they do): slots are released asynchronously (at the worker's
    next DiT block or VAE layer) after a job ends, later on a loaded machine."""
    deadline = time.time() + (timeout if timeout is not None else 60 * SLOWDOWN)
    while True:
        m = client.metrics()
        v = (m.get("infvsrd_jobs_active"), m.get("infvsrd_jobs_queued"), m.get("infvsrd_jobs_awaiting_input"))
        if v == (0.0, 0.0, 0.0) or time.time() > deadline:
            return v
        time.sleep(0.1)


def parse_metrics(text):
    """Prometheus text -> {'name{labels}': value} plus {'name': value} for unlabelled ones."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)", line)
        if m:
            try:
                out[m.group(1)] = float(m.group(2))
            except ValueError:
                pass
    return out


def raw_request(port, data, timeout=20, read_limit=1 << 20):
    """Sends raw bytes on a fresh connection; returns (status, headers dict, body bytes) of
    the first response, or (None, {}, b'') when the server closed without answering."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = http.client.HTTPResponse(s)
        try:
            r.begin()
        except (http.client.RemoteDisconnected, ConnectionResetError, http.client.BadStatusLine, socket.timeout):
            return None, {}, b""
        try:
            body = r.read(read_limit)
        except (http.client.IncompleteRead, ConnectionResetError) as e:
            body = getattr(e, "partial", b"")
        return r.status, _headers_dict(r.msg), body
    finally:
        s.close()


def partial_put(port, job_id, data, token=None, content_type="video/mp2t"):
    """Starts a chunked PUT of `data` (one chunk, no end) and leaves it open: the job has input
    and holds its admission place until the returned socket is closed (the daemon then cancels
    the job: its PUT ended early)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    hdr = (f"PUT /v1/jobs/{job_id}/input HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
           "Transfer-Encoding: chunked\r\n")
    if token:
        hdr += f"Authorization: Bearer {token}\r\n"
    s.sendall(hdr.encode() + b"\r\n" + b"%x\r\n%s\r\n" % (len(data), data))
    return s


def ffprobe_video(path_or_bytes, work=None):
    """{'width','height','frames'} of the first video stream (frames decoded and counted)."""
    path = path_or_bytes
    tmp = None
    if isinstance(path_or_bytes, (bytes, bytearray)):
        tmp = os.path.join(work, f"probe-{threading.get_ident()}-{time.time_ns()}.bin")
        with open(tmp, "wb") as f:
            f.write(path_or_bytes)
        path = tmp
    try:
        p = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                            "-show_entries", "stream=width,height,nb_read_frames", "-of", "json", path],
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            return {"error": p.stderr.strip()[-500:], "frames": 0, "width": 0, "height": 0}
        st = json.loads(p.stdout).get("streams", [])
        if not st:
            return {"error": "no video stream", "frames": 0, "width": 0, "height": 0}
        s = st[0]
        return {"width": s.get("width", 0), "height": s.get("height", 0),
                "frames": int(s.get("nb_read_frames", 0) or 0)}
    finally:
        if tmp:
            os.unlink(tmp)


def curl_trace_response(path):
    """(status, headers) of the last HTTP response in a `curl -v` stderr trace."""
    status, hd = None, {}
    for line in open(path, "rb").read().decode("utf-8", "replace").splitlines():
        if line.startswith("< HTTP/"):
            status, hd = int(line.split()[2]), {}
        elif line.startswith("< ") and ":" in line and status is not None:
            k, v = line[2:].split(":", 1)
            k = k.strip().lower()
            hd[k] = hd[k] + ", " + v.strip() if k in hd else v.strip()
    return status, hd


def b64(s):
    return base64.b64encode(s.encode()).decode()


class Suite:
    """Collects named checks; finish() validates the recorded responses and exits 0/1."""

    def __init__(self, name):
        self.name = name
        self.work = ENV.get("TEST_WORK") or os.path.join(os.getcwd(), name)
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work, exist_ok=True)
        self.rec = Recorder(os.path.join(self.work, "responses.jsonl"))
        self.passed = 0
        self.failed = []
        self.t0 = time.time()

    def client(self, daemon_or_url, token=None, timeout=60):
        url = daemon_or_url if isinstance(daemon_or_url, str) else daemon_or_url.url
        return Client(url, self.rec, token=token, timeout=timeout)

    def check(self, cond, what, detail=""):
        if cond:
            self.passed += 1
            log(f"  ok   {what}")
        else:
            self.failed.append(f"{what}: {detail}")
            log(f"  FAIL {what}: {detail}")
        return cond

    def eq(self, got, want, what):
        return self.check(got == want, what, f"expected {want!r}, got {got!r}")

    def validate_responses(self):
        node = shutil.which("node")
        if not node or not NODE_MODULES or not os.path.isdir(os.path.join(NODE_MODULES, "ajv")):
            self.check(False, "OpenAPI validation of all responses",
                       f"node or node_modules missing (SERVER_NODE_MODULES={NODE_MODULES!r}); run server.npm_setup")
            return
        env = dict(os.environ, NODE_PATH=NODE_MODULES)
        p = subprocess.run([node, os.path.join(SERVER_SRC, "openapi_check.mjs"), SPEC, ERRORS, self.rec.path],
                           capture_output=True, text=True, env=env, timeout=120)
        out = (p.stdout + p.stderr).strip()
        print(out)
        with open(self.rec.path) as f:
            n = sum(1 for line in f if line.strip())
        self.check(p.returncode == 0 and n > 0,
                   f"OpenAPI validation of all {n} recorded responses",
                   out.splitlines()[-1] if out else f"exit {p.returncode}")

    def check_daemons(self):
        """Every daemon of the test exited 0 after SIGTERM (the contract) and its log has no
        sanitizer report (the ASan/UBSan build runs these tests too)."""
        for d in _all_daemons:
            if d.proc is None:
                continue
            if d.proc.poll() is None:
                d.stop()
            text = d.log_text()
            marks = [m for m in SANITIZER_MARKS if m in text]
            self.check(not marks, f"daemon {d.name}: no sanitizer report in its log",
                       f"{marks} in {d.logpath}")
            if getattr(d, "killed_on_purpose", False):
                continue
            self.check(d.proc.returncode == 0 and not getattr(d, "killed", False),
                       f"daemon {d.name} exited 0 after SIGTERM",
                       f"exit status {d.proc.returncode}{' (SIGKILLed: still running drain_timeout_s + 10 s after SIGTERM)' if getattr(d, 'killed', False) else ''}"
                       f"; log {d.logpath}")

    def finish(self, validate=True):
        if validate:
            self.validate_responses()
        self.check_daemons()
        _kill_all()
        dt = time.time() - self.t0
        log(f"{self.name}: {self.passed} passed, {len(self.failed)} failed ({dt:.1f} s)")
        for f in self.failed:
            log(f"  FAILED: {f}")
        sys.exit(1 if self.failed else 0)


def run_main(suite, body):
    """Runs body(suite); an exception is a failure (with the daemon logs' tails)."""
    try:
        body(suite)
    except Exception as e:  # noqa: BLE001 - report everything as a test failure
        import traceback
        traceback.print_exc()
        suite.check(False, "test body ran to the end", repr(e))
        for d in list(_live_daemons):
            log(f"--- tail of {d.logpath} ---\n{d.log_text()[-4000:]}")
    suite.finish()
