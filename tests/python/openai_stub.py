"""A local OpenAI-compatible /v1/chat/completions stub on loopback for the image describer's tests.

It checks the request shape itself (path, bearer key, model, one text part and one PNG data URL) and
answers with a canned completion naming the decoded image's size, so a test can tell which image a
description belongs to. Model "fail-500" answers HTTP 500; model "malformed" answers JSON without
choices. Every well-formed request is recorded (decoded) in .requests, and every request of any kind,
before any check, as it arrived (method, path, headers, body) in .received, so a test can prove that
nothing, or no secret, reached this server. key=None: the stub expects no Authorization header (a
keyless local server). redirect_to: every POST is answered 307 to that URL.
"""

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

KEY = "sk-test-discomfort"


class OpenAIStub:
    def __init__(self, key=KEY, redirect_to=None):
        self.key = key
        self.redirect_to = redirect_to
        self.requests = []
        self.received = []  # (method, path, headers, body bytes) of every request, in arrival order
        self.problems = []  # request-shape violations, reported to the client as HTTP 400 as well
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _record(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stub.received.append((self.command, self.path, dict(self.headers.items()), raw))
                return raw

            def do_GET(self):
                self._record()
                self._send(404, {"error": {"message": "the stub answers POST only"}})

            def do_POST(self):
                raw = self._record()
                if stub.redirect_to:
                    self.send_response(307)
                    self.send_header("Location", stub.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.loads(raw or b"{}")
                problem = stub._check(self.path, self.headers.get("Authorization"), body)
                if problem:
                    stub.problems.append(problem)
                    return self._send(400, {"error": {"message": problem}})
                if body["model"] == "fail-500":
                    return self._send(500, {"error": {"message": "stub failure"}})
                if body["model"] == "malformed":
                    return self._send(200, {"id": "x", "object": "chat.completion"})
                size = stub.requests[-1]["image_size"]
                return self._send(200, {"id": "chatcmpl-stub", "object": "chat.completion", "model": body["model"],
                                        "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                            "role": "assistant",
                                            "content": f"  an image of {size[0]}x{size[1]} ({body['messages'][0]['content'][0]['text']})  "}}]})

            def _send(self, code, payload):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _check(self, path, auth, body):
        if path != "/v1/chat/completions":
            return f"path {path}"
        if auth != (None if self.key is None else f"Bearer {self.key}"):
            return f"authorization {auth!r}"
        try:
            (message,) = body["messages"]
            text, image = message["content"]
            assert message["role"] == "user" and text["type"] == "text" and image["type"] == "image_url"
            prefix = "data:image/png;base64,"
            url = image["image_url"]["url"]
            assert url.startswith(prefix), url[:40]
            png = base64.b64decode(url[len(prefix):], validate=True)
            assert png.startswith(b"\x89PNG\r\n\x1a\n")
            with Image.open(io.BytesIO(png)) as im:
                decoded = im.convert("RGB")
            assert isinstance(body["model"], str) and body["model"] and isinstance(body["max_tokens"], int)
        except Exception as exc:  # any shape problem
            return f"bad request body: {exc!r}"
        self.requests.append({"model": body["model"], "max_tokens": body["max_tokens"], "prompt": text["text"],
                              "image_size": decoded.size, "pixel": decoded.getpixel((0, 0))})
        return None

    def seen(self):
        """Everything this server received, as one text (to search for a secret)."""
        return "\n".join(f"{method} {path} {headers!r} {body.decode('utf-8', 'replace')}"
                         for method, path, headers, body in self.received)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
