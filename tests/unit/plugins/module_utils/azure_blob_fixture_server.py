"""A loopback HTTPS server that speaks the part of the Azure Blob service REST API the azure store uses, and checks it.

It follows these documents (x-ms-version 2023-11-03), and answers what they say the service answers:
- Put Blob: https://learn.microsoft.com/en-us/rest/api/storageservices/put-blob (x-ms-blob-type: BlockBlob;
  Content-MD5 is checked on arrival, a mismatch is 400 Md5Mismatch; 201)
- Put Block: https://learn.microsoft.com/en-us/rest/api/storageservices/put-block (comp=block, blockid base64 of
  at most 64 bytes, every id of one blob the same length; 201)
- Put Block List: https://learn.microsoft.com/en-us/rest/api/storageservices/put-block-list (XML <BlockList> of
  <Latest>/<Committed>/<Uncommitted>; an unknown id is 400 InvalidBlockList; uncommitted blocks are dropped; 201)
- Get Block List: https://learn.microsoft.com/en-us/rest/api/storageservices/get-block-list (blocklisttype=uncommitted)
- Get Blob / Get Blob Properties: https://learn.microsoft.com/en-us/rest/api/storageservices/get-blob and
  .../get-blob-properties (Content-MD5 for a whole-blob read, ETag; x-ms-range or Range answers 206; If-Match
  mismatch answers 412 ConditionNotMet; HEAD errors carry only x-ms-error-code)
- List Blobs: https://learn.microsoft.com/en-us/rest/api/storageservices/list-blobs (restype=container&comp=list,
  prefix, marker -> <NextMarker>)
- Delete Blob: https://learn.microsoft.com/en-us/rest/api/storageservices/delete-blob (202)
- Auth: https://learn.microsoft.com/en-us/rest/api/storageservices/authorize-with-azure-active-directory (Bearer
  token, x-ms-version 2017-11-09 or later, https only) or a service SAS in the query string
  (https://learn.microsoft.com/en-us/rest/api/storageservices/create-service-sas)
- Errors: https://learn.microsoft.com/en-us/rest/api/storageservices/status-and-error-codes2 (XML <Error><Code>
  <Message>, and the x-ms-error-code header)

Objects live in memory, so one server runs the store contract; pages hold `page_size` blobs (Azure: up to
5000) so paging is exercised. A request the documents do not allow is answered 400 and recorded in
`problems`; the test fails on any. `fault()` injects throttling (503 ServerBusy), 5xx and cut downloads.
The certificate is made at test time (the Azure provider fixture's helper); clients trust it by `verify`.
"""
import base64
import hashlib
import ssl
import threading
import uuid
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

from ansible_collections.llmops.platform.tests.unit.plugins.module_utils.fault_injection import FaultInjector
from ansible_collections.llmops.platform.tests.unit.plugins.module_utils.providers.azure_fixture_server import (
    make_certificate)

TOKEN = "azure-blob-fixture-token"
SAS = "sv=2023-11-03&ss=b&srt=co&sp=racwdl&se=2099-01-01T00%3A00%3A00Z&sig=fixtureSignature%3D"


def md5_b64(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


class AzureBlobFixture(FaultInjector):
    def __init__(self, directory, account="llmopsut", container="artifacts", page_size=2):
        self.account, self.container, self.page_size = account, container, page_size
        self.blobs = {}  # name -> {"data", "etag", "md5"}
        self.uncommitted = {}  # name -> {block id: bytes}
        self.problems, self.log, self.faults = [], [], []
        self.corrupt_downloads = 0  # flip a byte in the next N downloads
        self.conditions = []  # (method, path, x-ms-range, If-Match) of every request
        self.lock = threading.Lock()
        self.cert, key = make_certificate(directory)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = "https://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def verify(self):
        assert not self.problems, "requests the Blob service would refuse:\n  " + "\n  ".join(self.problems)

    # -- answers -----------------------------------------------------------------------------------
    @staticmethod
    def error(status, code, message):
        body = ('<?xml version="1.0" encoding="utf-8"?><Error><Code>%s</Code><Message>%s\nRequestId:fixture\nTime:'
                '2025-01-01T00:00:00Z</Message></Error>' % (code, message)).encode()
        return status, {"x-ms-error-code": code, "Content-Type": "application/xml"}, body

    def problem(self, status, code, message):
        self.problems.append(message)
        return self.error(status, code, "fixture: " + message)

    def answer(self, method, raw_path, headers, body):
        parts = urlsplit(raw_path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.log.append((method, parts.path, query))
        self.conditions.append((method, parts.path, headers.get("x-ms-range"), headers.get("If-Match")))
        version = headers.get("x-ms-version") or ""
        if not version or not headers.get("x-ms-date"):
            return self.problem(400, "MissingRequiredHeader", "%s %s without x-ms-version or x-ms-date" % (method, parts.path))
        sas = "sig" in query
        if sas:
            if any(query.get(k) != v for k, v in parse_qsl(SAS)):
                return self.error(403, "AuthenticationFailed", "Server failed to authenticate the request. "
                                  "Signature did not match.")
            if headers.get("Authorization"):
                return self.problem(400, "InvalidAuthenticationInfo", "both a SAS and an Authorization header")
        elif headers.get("Authorization") != "Bearer %s" % TOKEN:
            return self.error(401, "NoAuthenticationInformation",
                              "Server failed to authenticate the request. Please refer to the information in the "
                              "www-authenticate header.")
        elif version < "2017-11-09":
            return self.problem(400, "InvalidHeaderValue", "bearer tokens need x-ms-version 2017-11-09 or later")
        for fault in self.faults:
            if fault.cut is None and fault.matches(method, parts.path, parts.query):
                if fault.skip:
                    fault.skip -= 1
                    continue
                fault.times -= 1
                if fault.after:
                    self.route(method, parts.path, query, headers, body)
                return self.error(fault.status, fault.code or "ServerBusy", "injected fault")
        return self.route(method, parts.path, query, headers, body)

    def route(self, method, path, query, headers, body):
        segments = path.lstrip("/").split("/", 1)
        if unquote(segments[0]) != self.container:
            return self.error(404, "ContainerNotFound", "The specified container does not exist.")
        if len(segments) == 1:
            if method == "GET" and query.get("restype") == "container" and query.get("comp") == "list":
                return self.list(query)
            return self.problem(400, "UnsupportedHttpVerb", "%s on the container %s" % (method, query))
        name = unquote(segments[1])
        comp = query.get("comp")
        if method == "PUT" and comp is None:
            return self.put_blob(name, headers, body)
        if method == "PUT" and comp == "block":
            return self.put_block(name, query, headers, body)
        if method == "PUT" and comp == "blocklist":
            return self.put_block_list(name, headers, body)
        if method == "GET" and comp == "blocklist":
            return self.get_block_list(name, query)
        if method in ("GET", "HEAD") and comp is None:
            return self.get_blob(name, headers)
        if method == "DELETE" and comp is None:
            if self.blobs.pop(name, None) is None:
                return self.error(404, "BlobNotFound", "The specified blob does not exist.")
            return 202, {}, b""
        return self.problem(400, "UnsupportedQueryParameter", "%s %s %s is not an operation the store should use"
                            % (method, path, query))

    def _md5_ok(self, headers, body):
        given = headers.get("Content-MD5")
        return given is None or given == md5_b64(body)

    def _store(self, name, data, md5):
        self.blobs[name] = {"data": bytes(data), "etag": '"0x8D%s"' % uuid.uuid4().hex[:13].upper(), "md5": md5}
        self.uncommitted.pop(name, None)
        return 201, {"ETag": self.blobs[name]["etag"]}, b""

    def put_blob(self, name, headers, body):
        if headers.get("x-ms-blob-type") != "BlockBlob":
            return self.problem(400, "MissingRequiredHeader", "Put Blob without x-ms-blob-type: BlockBlob")
        if headers.get("Content-Length") is None:
            return self.problem(411, "MissingContentLengthHeader", "Put Blob without Content-Length")
        if not self._md5_ok(headers, body):
            return self.error(400, "Md5Mismatch", "The MD5 value specified in the request did not match with the "
                                                  "MD5 value calculated by the server.")
        return self._store(name, body, headers.get("x-ms-blob-content-md5") or md5_b64(body))

    def put_block(self, name, query, headers, body):
        block_id = query.get("blockid") or ""
        try:
            raw = base64.b64decode(block_id, validate=True)
        except ValueError:
            return self.problem(400, "InvalidQueryParameterValue", "block id %r is not base64" % block_id)
        if len(raw) > 64:
            return self.problem(400, "InvalidQueryParameterValue", "block id longer than 64 bytes")
        blocks = self.uncommitted.setdefault(name, {})
        if blocks and any(len(other) != len(block_id) for other in blocks):
            return self.error(400, "InvalidBlobOrBlock", "The specified blob or block content is invalid.")
        if not self._md5_ok(headers, body):
            return self.error(400, "Md5Mismatch", "The MD5 value specified in the request did not match.")
        blocks[block_id] = bytes(body)
        return 201, {}, b""

    def put_block_list(self, name, headers, body):
        if not self._md5_ok(headers, body):
            return self.error(400, "Md5Mismatch", "The MD5 value specified in the request did not match.")
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return self.problem(400, "InvalidXmlDocument", "Put Block List body is not XML")
        if root.tag != "BlockList":
            return self.problem(400, "InvalidXmlDocument", "Put Block List root is %s" % root.tag)
        blocks = self.uncommitted.get(name, {})
        data = bytearray()
        for element in root:
            if element.tag not in ("Latest", "Uncommitted") or element.text not in blocks:
                return self.error(400, "InvalidBlockList", "The specified block list is invalid.")
            data.extend(blocks[element.text])
        md5 = headers.get("x-ms-blob-content-md5")
        if md5 and md5 != md5_b64(bytes(data)):
            # The service does not check this header; a client that sends a wrong one has a bug.
            return self.problem(400, "InvalidHeaderValue", "x-ms-blob-content-md5 does not match the committed blocks")
        return self._store(name, data, md5)

    def get_block_list(self, name, query):
        if query.get("blocklisttype") != "uncommitted":
            return self.problem(400, "InvalidQueryParameterValue", "the store asks for uncommitted blocks only")
        blocks = self.uncommitted.get(name)
        if not blocks and name not in self.blobs:
            return self.error(404, "BlobNotFound", "The specified blob does not exist.")
        xml = "".join("<Block><Name>%s</Name><Size>%d</Size></Block>" % (k, len(v)) for k, v in (blocks or {}).items())
        body = ('<?xml version="1.0" encoding="utf-8"?><BlockList><CommittedBlocks/><UncommittedBlocks>%s'
                '</UncommittedBlocks></BlockList>' % xml).encode()
        return 200, {"Content-Type": "application/xml"}, body

    def get_blob(self, name, headers):
        blob = self.blobs.get(name)
        if blob is None:
            return self.error(404, "BlobNotFound", "The specified blob does not exist.")
        if headers.get("If-Match") and headers["If-Match"] != blob["etag"]:
            return self.error(412, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")
        data, status = blob["data"], 200
        out = {"ETag": blob["etag"], "x-ms-blob-type": "BlockBlob", "Content-Type": "application/octet-stream"}
        ranged = headers.get("x-ms-range") or headers.get("Range")
        if ranged:
            start = int(ranged.split("=", 1)[1].split("-", 1)[0])
            out["Content-Range"] = "bytes %d-%d/%d" % (start, len(data) - 1, len(data))
            data, status = data[start:], 206
        elif blob["md5"]:
            out["Content-MD5"] = blob["md5"]
        return status, out, data

    def list(self, query):
        prefix = query.get("prefix", "")
        names = sorted(n for n in self.blobs if n.startswith(prefix))
        marker = query.get("marker")
        start = names.index(marker) if marker in names else 0
        page, rest = names[start:start + self.page_size], names[start + self.page_size:]
        items = "".join("<Blob><Name>%s</Name><Properties><Content-Length>%d</Content-Length><BlobType>BlockBlob"
                        "</BlobType></Properties></Blob>" % (n, len(self.blobs[n]["data"])) for n in page)
        body = ('<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="%s/" ContainerName="%s">'
                '<Prefix>%s</Prefix><Blobs>%s</Blobs><NextMarker>%s</NextMarker></EnumerationResults>'
                % (self.url, self.container, prefix, items, rest[0] if rest else "")).encode()
        return 200, {"Content-Type": "application/xml"}, body

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
                if (server.corrupt_downloads and status in (200, 206) and self.command == "GET" and data
                        and "comp=" not in self.path):
                    server.corrupt_downloads -= 1
                    data = bytes([data[0] ^ 0xFF]) + data[1:]  # a bit flip on the way, after the checksum
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-ms-request-id", str(uuid.uuid4()))
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

            do_GET = do_HEAD = do_PUT = do_DELETE = _serve

            def log_message(self, *args):
                pass

        return Handler
