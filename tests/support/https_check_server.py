#!/usr/bin/env python3
"""A small HTTPS server for the secrets tests: it checks one credential.

GET (or POST) anything: answers 200 "credential-ok" when the request's Authorization header is
exactly --expect, else 403 "credential-wrong"; a request with a body gets " len=N" (its
length) after the word. Every request is appended to --log as a JSON
line {"path", "authorization"}. Serves TLS with --cert/--key (its own certificate). With
--port 0 the chosen port is printed as stdout's first line.
"""
import argparse
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--expect", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            got = len(self.rfile.read(length)) if length else 0
            auth = self.headers.get("Authorization", "")
            with lock, open(args.log, "a") as f:
                f.write(json.dumps({"path": self.path, "authorization": auth}) + "\n")
            ok = auth == args.expect
            word = "credential-ok" if ok else "credential-wrong"
            body = (word + (" len=%d" % got if got else "") + "\n").encode()
            self.send_response(200 if ok else 403)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = answer
        do_POST = answer

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
