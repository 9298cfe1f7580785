# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A loopback proxy in front of a storage emulator (Azurite, gcp-storage-emulator) that fails on purpose.

The emulators answer every request correctly; what they cannot do on demand is what the stores must
survive: a 503 or 429, an answer lost after the data arrived, a download cut off or corrupted on the way,
an object replaced between two reads. Everything else passes through unchanged, and every request is
logged (method, path, query, headers, raw query) so tests can assert how the SDK talked to the service.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import http.client
import http.server
import ssl
import sys
import threading

try:
    from urllib.parse import parse_qsl, urlsplit
except ImportError:  # pragma: no cover - Python 2
    from urlparse import parse_qsl, urlsplit

HOP_BY_HOP = ("connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade")


class Fault(object):
    """The next `times` matching requests (after letting `skip` through) are answered `status` with `body`
    and `headers` (the service's documented error), or have their answer cut after `cut` bytes, or one
    byte of it flipped (`corrupt`). `after=True` forwards the request first, then answers the error: the
    data arrived, the answer was lost. `then()` runs once the fault was delivered."""

    def __init__(self, method, path_part, status=503, body=b"", headers=None, times=1, skip=0, after=False,
                 query_part=None, cut=None, corrupt=False, then=None):
        self.method, self.path_part, self.query_part = method, path_part, query_part
        self.status, self.body, self.headers = status, body, dict(headers or {})
        self.times, self.skip, self.after, self.cut, self.corrupt, self.then = times, skip, after, cut, corrupt, then

    def matches(self, method, path, query):
        return (self.times > 0 and method == self.method and self.path_part in path
                and (self.query_part is None or self.query_part in query))


class FaultProxy(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream, cafile=None):
        """`upstream`: the emulator's root URL; an https one (Azurite with a token) is checked against `cafile`.
        The proxy itself speaks plain HTTP on loopback."""
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname, parts.port
        self.tls = ssl.create_default_context(cafile=cafile) if parts.scheme == "https" else None
        self.upstream = "%s:%d" % (self.upstream_host, self.upstream_port)
        self.faults, self.log, self.lock = [], [], threading.Lock()
        http.server.ThreadingHTTPServer.__init__(self, ("127.0.0.1", 0), _Relay)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server_address[1]

    def fault(self, *args, **kwargs):
        self.faults.append(Fault(*args, **kwargs))

    def take_fault(self, method, path, query):
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path, query):
                    if fault.skip:
                        fault.skip -= 1
                        return None
                    fault.times -= 1
                    return fault
        return None

    def requests(self, method=None, path_part="", query_part=""):
        """Logged (method, path, query dict, headers dict, raw query) that match."""
        return [entry for entry in self.log if (method is None or entry[0] == method) and path_part in entry[1]
                and query_part in entry[4]]

    def _connect(self):
        if self.tls:
            return http.client.HTTPSConnection(self.upstream_host, self.upstream_port, timeout=60, context=self.tls)
        return http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)

    def handle_error(self, request, client_address):
        """A client that drops a cut connection is expected here; anything else is reported."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            http.server.ThreadingHTTPServer.handle_error(self, request, client_address)

    def close(self):
        self.shutdown()
        self.server_close()


class _Relay(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest's output clean
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if not size:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, status, headers, body, declared=None):
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if declared is None else declared))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _relay(self):
        server = self.server
        raw_path, dummy, raw_query = self.path.partition("?")
        body = self._body()
        server.log.append((self.command, raw_path, dict(parse_qsl(raw_query)), dict(self.headers.items()), raw_query))
        fault = server.take_fault(self.command, raw_path, raw_query)
        if fault and fault.cut is None and not fault.corrupt and not fault.after:
            return self._fail(fault)
        upstream = server._connect()
        headers = dict((k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP)
        headers["Content-Length"] = str(len(body))
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        answer = response.read()
        # Session URIs (GCS resumable uploads) name the emulator: point them back at the proxy.
        out_headers = [(k, v.replace(server.upstream, "127.0.0.1:%d" % server.server_address[1]))
                       for k, v in response.getheaders()]
        upstream.close()
        if fault and fault.after:
            return self._fail(fault)
        if fault and fault.corrupt and answer:
            answer = answer[:-1] + bytes([answer[-1] ^ 0xFF])
        if fault and fault.cut is not None:
            # Declare the whole length, send only part of it, and drop the connection.
            self._answer(response.status, out_headers, answer[:fault.cut], declared=len(answer))
            self.close_connection = True
        else:
            self._answer(response.status, out_headers, answer)
        if fault and fault.then:
            fault.then()
        return None

    def _fail(self, fault):
        self._answer(fault.status, list(fault.headers.items()), fault.body)
        if fault.then:
            fault.then()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _relay
