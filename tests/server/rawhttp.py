"""Raw-socket HTTP for the hostile-client tests (smuggling, numeric headers, connection
limits, slowloris): exact bytes out, every response that comes back, whether the server
closed the connection, and a chosen loopback source address (127.0.0.x) so that
per-address limits see several clients. Stdlib only."""
import socket
import time


def connect(port, source=None, timeout=10):
    """A TCP connection to 127.0.0.1:port from `source` (an address like '127.0.0.7')."""
    return socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(source, 0) if source else None)


def parse_responses(data):
    """Splits the bytes a server sent into responses: [(status, headers dict, body)]. Bodies
    are framed by Content-Length or chunked encoding; an unframed body runs to the end."""
    out = []
    rest = data
    while rest.startswith(b"HTTP/"):
        head, sep, after = rest.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split()[1])
        except (IndexError, ValueError):
            break
        hd = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            k = k.strip().lower()
            hd[k] = hd[k] + ", " + v.strip() if k in hd else v.strip()
        if "content-length" in hd:
            n = int(hd["content-length"])
            body, rest = after[:n], after[n:]
        elif hd.get("transfer-encoding", "").lower() == "chunked":
            body, rest = b"", after
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                try:
                    n = int(size_line.split(b";")[0], 16)
                except ValueError:
                    rest = b""
                    break
                body += rest[:n]
                rest = rest[n + 2:]
                if n == 0:
                    break
        else:
            body, rest = after, b""
        out.append((status, hd, body))
    return out


def exchange(port, data, timeout=10, source=None, settle=0.0):
    """Sends `data`, half-closes nothing, reads until the server closes or `timeout` passes
    without a byte. Returns (responses, closed_by_server, raw bytes)."""
    s = connect(port, source, timeout)
    buf = b""
    closed = False
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if settle:
            time.sleep(settle)
        s.settimeout(timeout)
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not b:
                closed = True
                break
            buf += b
    finally:
        s.close()
    return parse_responses(buf), closed, buf


def request_on(sock, data, timeout=10):
    """One request on an open keep-alive socket; returns (status, headers, body) or None
    when the server closed (or reset) it without a response."""
    sock.settimeout(timeout)
    try:
        sock.sendall(data)
    except OSError:
        return None
    buf = b""
    while True:
        rs = parse_responses(buf)
        if rs and _complete(buf):
            return rs[0]
        try:
            b = sock.recv(65536)
        except (socket.timeout, OSError):
            return None
        if not b:
            rs = parse_responses(buf)
            return rs[0] if rs else None
        buf += b


def _complete(buf):
    head, sep, after = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.decode("latin-1").split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            return len(after) >= int(v.strip())
    return True
