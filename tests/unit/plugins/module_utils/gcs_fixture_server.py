"""A loopback server that speaks the part of the Cloud Storage JSON API the GCS store uses, and checks it.

It follows these documents (storage/v1), and answers what they say GCS answers:
- objects.insert, uploadType=multipart: https://cloud.google.com/storage/docs/uploading-objects and
  https://cloud.google.com/storage/docs/json_api/v1/objects/insert (multipart/related: JSON metadata, then media;
  a given md5Hash is checked, a mismatch is 400)
- resumable uploads: https://cloud.google.com/storage/docs/performing-resumable-uploads (POST uploadType=resumable
  answers 200 + Location with upload_id; each PUT carries Content-Range `bytes a-b/total`; chunks other than the
  last are multiples of 256 KiB; an incomplete upload answers 308 with `Range: bytes=0-N` (no Range when nothing
  arrived); `Content-Range: bytes */total` with an empty body asks for the status)
- objects.get: https://cloud.google.com/storage/docs/json_api/v1/objects/get (metadata, or alt=media with
  x-goog-generation and x-goog-hash; Range requests answer 206; ifGenerationMatch mismatch answers 412)
- objects.list: https://cloud.google.com/storage/docs/json_api/v1/objects/list (prefix, pageToken -> nextPageToken)
- objects.delete: https://cloud.google.com/storage/docs/json_api/v1/objects/delete (204)
- errors: https://cloud.google.com/storage/docs/json_api/v1/status-codes ({"error": {"code", "message", "errors"}})

It keeps objects in memory, so one server runs the store contract. Pages hold `page_size` items (GCS: up
to 1000) so paging is exercised with a few objects. A request the documents do not allow (no bearer
token, a chunk that is not a 256 KiB multiple, a Content-Range that skips bytes, ...) is answered 400 and
recorded in `problems`; the test fails on any. `faults` inject throttling, 5xx and cut connections.
"""
import base64
import hashlib
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

from ansible_collections.llmops.platform.tests.unit.plugins.module_utils.fault_injection import FaultInjector

TOKEN = "gcs-fixture-token"
QUANTUM = 256 * 1024
OBJECT_RE = re.compile(r"^/storage/v1/b/([^/]+)/o/(.+)$")
LIST_RE = re.compile(r"^/storage/v1/b/([^/]+)/o$")
UPLOAD_RE = re.compile(r"^/upload/storage/v1/b/([^/]+)/o$")


def md5_b64(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


class GcsFixture(FaultInjector):
    def __init__(self, bucket="llmops-ut", page_size=2):
        self.bucket, self.page_size = bucket, page_size
        self.objects = {}  # name -> {"data", "generation", "md5"}
        self.sessions = {}  # upload_id -> {"name", "size", "md5", "data"}
        self.problems, self.log, self.faults = [], [], []
        self.corrupt_downloads = 0  # flip a byte in the next N downloads
        self.generation = 1000
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def verify(self):
        assert not self.problems, "requests the GCS JSON API would refuse:\n  " + "\n  ".join(self.problems)

    # -- answers -----------------------------------------------------------------------------------
    @staticmethod
    def error(status, message, reason="invalid"):
        return status, {"Content-Type": "application/json"}, json.dumps(
            {"error": {"code": status, "message": message, "errors": [{"reason": reason, "message": message}]}}).encode()

    def problem(self, status, message):
        self.problems.append(message)
        return self.error(status, "fixture: " + message)

    def resource(self, name):
        obj = self.objects[name]
        return {"kind": "storage#object", "bucket": self.bucket, "name": name, "size": str(len(obj["data"])),
                "generation": str(obj["generation"]), "md5Hash": obj["md5"]}

    def finalize(self, name, data, md5):
        if md5 and md5 != md5_b64(data):
            return self.error(400, "Provided MD5 hash \"%s\" doesn't match calculated MD5 hash \"%s\"."
                              % (md5, md5_b64(data)))
        self.generation += 1
        self.objects[name] = {"data": bytes(data), "generation": self.generation, "md5": md5_b64(data)}
        return 200, {"Content-Type": "application/json"}, json.dumps(self.resource(name)).encode()

    def answer(self, method, raw_path, headers, body):
        parts = urlsplit(raw_path)
        path, query = parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))
        self.log.append((method, path, query))
        if not headers.get("Authorization", "").startswith("Bearer "):
            return self.problem(401, "%s %s without a bearer token" % (method, path))
        if headers["Authorization"] != "Bearer %s" % TOKEN:
            return self.error(401, "Invalid Credentials", reason="authError")
        for fault in self.faults:
            if fault.matches(method, path, parts.query) and fault.cut is None:
                if fault.skip:
                    fault.skip -= 1
                    continue
                fault.times -= 1
                if fault.after:
                    self.route(method, path, query, headers, body)
                return self.error(fault.status, "injected fault", reason="backendError" if fault.status >= 500
                                  else "rateLimitExceeded")
        match = OBJECT_RE.match(path) or LIST_RE.match(path) or UPLOAD_RE.match(path)
        if match and unquote(match.group(1)) != self.bucket:
            return self.error(404, "The specified bucket does not exist.", reason="notFound")
        return self.route(method, path, query, headers, body)

    def route(self, method, path, query, headers, body):
        match = OBJECT_RE.match(path)
        if match:
            name = unquote(match.group(2))
            if method == "DELETE":
                if self.objects.pop(name, None) is None:
                    return self.error(404, "No such object: %s/%s" % (self.bucket, name), reason="notFound")
                return 204, {}, b""
            if method == "GET":
                return self.get(name, query, headers)
        if LIST_RE.match(path) and method == "GET":
            return self.list(query)
        if UPLOAD_RE.match(path):
            kind = query.get("uploadType")
            if method == "POST" and kind == "multipart":
                return self.multipart(headers, body)
            if method == "POST" and kind == "resumable":
                return self.start_resumable(headers, body)
            if method == "PUT" and kind == "resumable" and query.get("upload_id"):
                return self.resumable_chunk(query["upload_id"], headers, body)
        return self.problem(400, "%s %s %s is not an operation of the JSON API the store should use" % (method, path, query))

    def get(self, name, query, headers):
        obj = self.objects.get(name)
        if obj is None:
            return self.error(404, "No such object: %s/%s" % (self.bucket, name), reason="notFound")
        if "ifGenerationMatch" in query and query["ifGenerationMatch"] != str(obj["generation"]):
            return self.error(412, "At least one of the pre-conditions you specified did not hold.",
                              reason="conditionNotMet")
        if query.get("alt") != "media":
            resource = self.resource(name)
            if query.get("fields"):
                resource = dict((k, v) for k, v in resource.items() if k in query["fields"].split(","))
            return 200, {"Content-Type": "application/json"}, json.dumps(resource).encode()
        data, status = obj["data"], 200
        out = {"Content-Type": "application/octet-stream", "x-goog-generation": str(obj["generation"]),
               "x-goog-hash": "crc32c=AAAAAA==,md5=%s" % obj["md5"]}
        ranged = headers.get("Range")
        if ranged:
            match = re.match(r"^bytes=(\d+)-$", ranged)
            if not match:
                return self.problem(400, "Range %r is not the open-ended form the store sends" % ranged)
            start = int(match.group(1))
            out["Content-Range"] = "bytes %d-%d/%d" % (start, len(data) - 1, len(data))
            data, status = data[start:], 206
        return status, out, data

    def list(self, query):
        prefix = query.get("prefix", "")
        names = sorted(n for n in self.objects if n.startswith(prefix))
        start = int(query.get("pageToken") or 0)
        page = {"kind": "storage#objects", "items": [{"name": n} for n in names[start:start + self.page_size]]}
        if start + self.page_size < len(names):
            page["nextPageToken"] = str(start + self.page_size)
        return 200, {"Content-Type": "application/json"}, json.dumps(page).encode()

    def multipart(self, headers, body):
        match = re.match(r"^multipart/related; boundary=(.+)$", headers.get("Content-Type", ""))
        if not match:
            return self.problem(400, "multipart upload without multipart/related Content-Type")
        boundary = ("--" + match.group(1)).encode()
        parts = body.split(boundary)
        # ['', metadata part, media part, '--\r\n']
        if len(parts) != 4 or not parts[3].startswith(b"--"):
            return self.problem(400, "multipart body is not metadata + media")
        meta_head, meta_body = parts[1].split(b"\r\n\r\n", 1)
        media_head, media = parts[2].split(b"\r\n\r\n", 1)
        if b"application/json" not in meta_head:
            return self.problem(400, "first multipart part is not JSON metadata")
        metadata = json.loads(meta_body.strip())
        if not metadata.get("name"):
            return self.problem(400, "metadata without a name")
        return self.finalize(metadata["name"], media[:-2], metadata.get("md5Hash"))  # strip the CRLF before --

    def start_resumable(self, headers, body):
        metadata = json.loads(body or b"{}")
        if not metadata.get("name") or not headers.get("X-Upload-Content-Length"):
            return self.problem(400, "resumable start needs metadata.name and X-Upload-Content-Length")
        upload_id = uuid.uuid4().hex
        self.sessions[upload_id] = {"name": metadata["name"], "size": int(headers["X-Upload-Content-Length"]),
                                    "md5": metadata.get("md5Hash"), "data": bytearray()}
        location = "%s/upload/storage/v1/b/%s/o?uploadType=resumable&upload_id=%s" % (self.url, self.bucket, upload_id)
        return 200, {"Location": location}, b""

    def resumable_chunk(self, upload_id, headers, body):
        session = self.sessions.get(upload_id)
        if session is None:
            return self.error(404, "No such upload session", reason="notFound")
        content_range = headers.get("Content-Range", "")
        have = len(session["data"])
        status_query = re.match(r"^bytes \*/(\d+)$", content_range)
        chunk = re.match(r"^bytes (\d+)-(\d+)/(\d+)$", content_range)
        if status_query:
            if body:
                return self.problem(400, "a status query carries no body")
        elif chunk:
            first, last, total = (int(x) for x in chunk.groups())
            if total != session["size"] or last - first + 1 != len(body):
                return self.problem(400, "Content-Range %s does not match the body (%d bytes) or the upload size %d"
                                    % (content_range, len(body), session["size"]))
            if first != have:
                return self.problem(400, "chunk starts at %d but the session holds %d bytes" % (first, have))
            if last + 1 != total and len(body) % QUANTUM:
                return self.problem(400, "chunk of %d bytes is not a multiple of 256 KiB" % len(body))
            session["data"].extend(body)
        else:
            return self.problem(400, "resumable PUT without a valid Content-Range: %r" % content_range)
        if len(session["data"]) == session["size"]:
            del self.sessions[upload_id]
            return self.finalize(session["name"], session["data"], session["md5"])
        out = {"Range": "bytes=0-%d" % (len(session["data"]) - 1)} if session["data"] else {}
        return 308, out, b""

    # -- HTTP --------------------------------------------------------------------------------------
    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with server.lock:
                    status, headers, data = server.answer(self.command, self.path, self.headers, body)
                parts = urlsplit(self.path)
                fault = server.cut_for(self.command, parts.path, parts.query) if status in (200, 206) else None
                cut = fault.cut if fault else None
                if server.corrupt_downloads and status in (200, 206) and "alt=media" in self.path and data:
                    server.corrupt_downloads -= 1
                    data = bytes([data[0] ^ 0xFF]) + data[1:]  # a bit flip on the way, after the checksum
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                if cut is not None:
                    self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data if cut is None else data[:cut])
                if cut is not None:
                    self.close_connection = True
                    if fault.then:
                        with server.lock:
                            fault.then(server)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args):
                pass

        return Handler
