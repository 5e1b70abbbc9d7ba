#!/usr/bin/python3
"""Slowloris against infvsrd, loopback only: hostile clients on several 127.0.0.x source
addresses open connections and trickle one header line at a time, never finishing a
request; meanwhile /healthz is probed from 127.0.0.1 and its latency recorded. Prints
connections held vs health-check latency (median / max). Stdlib only.

  # soak against a running daemon (issue 15's scenario: 50 addresses, a line every 5 s)
  slowloris.py --port 8080 --addresses 50 --per-address 11 --interval 5 --duration 120
  # or start one (null model, temporary spool) with its defaults or chosen settings
  slowloris.py --infvsrd build/infvsrd --addresses 50 --per-address 11 --interval 5 --duration 120 \
      [-- --header-timeout-s 20 ...]

The ctest server.slowloris (tests/server/test_slowloris.py) uses the same classes with short
timeouts and a smaller server so it takes seconds. Exit status: 0 when every health probe
got 200, 1 otherwise."""
import argparse
import http.client
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TRICKLE_FIRST = b"GET /healthz HTTP/1.1\r\nHost: slow\r\n"


class Slowloris:
    """`addresses` x `per_address` connections from 127.0.0.2.. that each send one more
    header line every `interval` s and never the blank line. A connection the server closes
    is reopened after `reconnect_delay` s (so the pressure stays)."""

    def __init__(self, port, addresses=10, per_address=10, interval=1.0, reconnect_delay=0.1, first_octet=2):
        self.port = port
        self.sources = [f"127.0.0.{first_octet + i}" for i in range(addresses)]
        self.per_address = per_address
        self.interval = interval
        self.reconnect_delay = reconnect_delay
        self.lock = threading.Lock()
        self.held = 0            # connections open now (our side)
        self.opened = 0
        self.closed_by_server = 0
        self.connect_failures = 0
        self.stop_ev = threading.Event()
        self.threads = []

    def _open(self, src):
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5, source_address=(src, 0))
            s.sendall(TRICKLE_FIRST)
            s.setblocking(False)
            with self.lock:
                self.held += 1
                self.opened += 1
            return s
        except OSError:
            with self.lock:
                self.connect_failures += 1
            return None

    def _lost(self, s):
        try:
            s.close()
        except OSError:
            pass
        with self.lock:
            self.held -= 1
            self.closed_by_server += 1

    def _run(self, src):
        socks = []
        next_line = time.time() + self.interval
        line = 0
        while not self.stop_ev.is_set():
            while len(socks) < self.per_address and not self.stop_ev.is_set():
                s = self._open(src)
                if s is None:
                    self.stop_ev.wait(self.reconnect_delay)
                    break
                socks.append(s)
            # server closes show up as readable + EOF (or a reset)
            r, _, _ = select.select(socks, [], [], 0.05) if socks else ([], [], [])
            for s in r:
                try:
                    data = s.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:  # EOF or reset: the server gave up on it
                    socks.remove(s)
                    self._lost(s)
                    if self.reconnect_delay:
                        self.stop_ev.wait(self.reconnect_delay)
            if time.time() >= next_line:
                line += 1
                for s in list(socks):
                    try:
                        s.send(b"X-Trickle-%d: %d\r\n" % (line, line))
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        socks.remove(s)
                        self._lost(s)
                next_line += self.interval
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
            with self.lock:
                self.held -= 1

    def start(self):
        for src in self.sources:
            th = threading.Thread(target=self._run, args=(src,), daemon=True)
            th.start()
            self.threads.append(th)
        return self

    def stop(self):
        self.stop_ev.set()
        for th in self.threads:
            th.join(10)

    def snapshot(self):
        with self.lock:
            return {"held": self.held, "opened": self.opened, "closed_by_server": self.closed_by_server,
                    "connect_failures": self.connect_failures}


def probe(port, timeout=10.0, path="/healthz", source="127.0.0.1"):
    """One GET on a fresh connection: (status or None, seconds)."""
    t0 = time.time()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
        c.request("GET", path, headers={"Connection": "close"})
        r = c.getresponse()
        r.read()
        c.close()
        return r.status, time.time() - t0
    except (OSError, http.client.HTTPException):
        return None, time.time() - t0


def server_connections(port):
    """infvsrd_active_connections from /metrics (None when unreachable)."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/metrics", headers={"Connection": "close"})
        text = c.getresponse().read().decode()
        c.close()
    except (OSError, http.client.HTTPException):
        return None
    for line in text.splitlines():
        if line.startswith("infvsrd_active_connections "):
            return float(line.split()[1])
    return None


def probe_loop(port, duration, period, attack=None):
    """Probes /healthz every `period` s for `duration` s; returns the samples
    [(t, status, latency, hostile connections held)]."""
    samples = []
    t_end = time.time() + duration
    while time.time() < t_end:
        t0 = time.time()
        st, dt = probe(port)
        held = attack.snapshot()["held"] if attack else 0
        samples.append((t0, st, dt, held))
        time.sleep(max(0.0, period - (time.time() - t0)))
    return samples


def summary(samples):
    lat = [s[2] for s in samples]
    ok = [s for s in samples if s[1] == 200]
    held = [s[3] for s in samples]
    return {"probes": len(samples), "ok": len(ok), "failed": len(samples) - len(ok),
            "median_ms": statistics.median(lat) * 1e3 if lat else float("nan"),
            "max_ms": max(lat) * 1e3 if lat else float("nan"),
            "held_min": min(held) if held else 0, "held_max": max(held) if held else 0}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int)
    ap.add_argument("--infvsrd", help="start this daemon (null model) instead of --port")
    ap.add_argument("--addresses", type=int, default=50)
    ap.add_argument("--per-address", type=int, default=11)
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between trickled header lines")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--period", type=float, default=0.5, help="seconds between health probes")
    ap.add_argument("daemon_args", nargs="*", help="extra infvsrd flags (after --)")
    a = ap.parse_args()
    proc = None
    port = a.port
    if a.infvsrd:
        spool = tempfile.mkdtemp(prefix="slowloris-spool-")
        log = open(os.path.join(spool, "infvsrd.log"), "wb")
        proc = subprocess.Popen([a.infvsrd, "--listen", "127.0.0.1:0", "--model", "null", "--spool-dir", spool,
                                 "--instance", "local", *a.daemon_args], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while port is None and time.time() < deadline:
            time.sleep(0.1)
            for line in open(log.name, errors="replace"):
                if "listening port=" in line:
                    port = int(line.split("listening port=")[1].split()[0].strip('",'))
        if port is None:
            sys.exit("the daemon did not start")
    try:
        base = summary(probe_loop(port, 3, a.period))
        print(f"baseline: {base}")
        atk = Slowloris(port, a.addresses, a.per_address, a.interval).start()
        time.sleep(min(5.0, a.duration / 4))
        samples = probe_loop(port, a.duration, a.period, atk)
        print(f"server connections at the end: {server_connections(port)}")
        atk.stop()
        s = summary(samples)
        print(f"under attack ({a.addresses} addresses x {a.per_address} connections, a header line every "
              f"{a.interval} s): {s}; attack {atk.snapshot()}")
        sys.exit(0 if s["failed"] == 0 else 1)
    finally:
        if proc:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
