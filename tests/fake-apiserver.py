#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""
FAKE Kubernetes apiserver for bulwark's tests. NOT a kube-apiserver: it serves only what
bulwarkd's Kubernetes peer source uses, shaped like the real responses
(docs: ../shared/reference/kubernetes-csi-image.md section 1):

  GET   /api/v1/nodes                       NodeList, metadata.resourceVersion of the list
  GET   /api/v1/nodes?watch=1&resourceVersion=N[&allowWatchBookmarks=true][&timeoutSeconds=S]
                                            200, Transfer-Encoding: chunked, one JSON watch event
                                            per line (ADDED/MODIFIED/DELETED/BOOKMARK); an ERROR
                                            event carrying a 410 Status when N is older than the
                                            kept history (or unknown)
  GET   /api/v1/nodes/<name>                Node
  PATCH /api/v1/nodes/<name>                application/merge-patch+json (RFC 7386) only

Every request needs `Authorization: Bearer <token>` with the token in --token-file (re-read on
every request, so a test can rotate it), or (with --client-ca) a client certificate that CA signed
and no Authorization header; otherwise 401 with a Status. TLS with --cert/--key.

Control (the test's side): a directory (--control DIR) polled every 20 ms. A file
DIR/<anything>.json holding {"op": "put"|"delete"|"expire"|"bookmark", "node": {...}|"name": ...}
is applied and removed. "put" creates or replaces a node (ADDED/MODIFIED), keeping the
annotations the server already has unless the node gives its own; "expire" drops all history
(every watch gets 410 on its next resume, open watches are ended with a 410 ERROR event);
"bookmark" sends a BOOKMARK to every open watch. The current state is written to DIR/state.json
after every change (for assertions).
"""
import argparse
import copy
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 64 * 1024
MAX_CONNS = 64


class Store:
    def __init__(self, control):
        self.lock = threading.Condition()
        self.rv = 100
        self.nodes = {}
        self.history = []  # (rv, type, node)
        self.oldest = self.rv  # history holds every event after this rv
        self.bm_seq = 0
        self.epoch = 0  # bumped by "expire": open watches end with 410
        self.control = control

    def _event(self, typ, node):
        self.rv += 1
        node["metadata"]["resourceVersion"] = str(self.rv)
        self.history.append((self.rv, typ, copy.deepcopy(node)))
        # When each change became visible to watchers (tests time the agents against it).
        print("fake-apiserver: event %s %s rv=%d at %.6f" % (typ, node["metadata"]["name"], self.rv, time.time()),
              flush=True)
        self.history = self.history[-1000:]
        self.oldest = self.history[0][0] - 1
        self.lock.notify_all()
        self._dump()

    def _dump(self):
        if not self.control:
            return
        tmp = os.path.join(self.control, ".state.tmp")
        with open(tmp, "w") as f:
            json.dump({"resourceVersion": str(self.rv), "nodes": self.nodes}, f)
        os.rename(tmp, os.path.join(self.control, "state.json"))

    def put(self, node):
        with self.lock:
            name = node["metadata"]["name"]
            node.setdefault("apiVersion", "v1")
            node.setdefault("kind", "Node")
            old = self.nodes.get(name)
            node["metadata"].setdefault("uid", old["metadata"]["uid"] if old else "uid-%s-%d" % (name, self.rv))
            if old and "annotations" not in node["metadata"]:
                node["metadata"]["annotations"] = old["metadata"].get("annotations", {})
            self.nodes[name] = node
            self._event("MODIFIED" if old else "ADDED", node)

    def delete(self, name):
        with self.lock:
            node = self.nodes.pop(name, None)
            if node:
                self._event("DELETED", node)

    def expire(self):
        with self.lock:
            self.history = []
            self.oldest = self.rv
            self.epoch += 1
            self.lock.notify_all()

    def bookmark(self):
        with self.lock:
            self.bm_seq += 1
            self.lock.notify_all()


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = merge_patch(target.get(k), v)
    return target


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-apiserver"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fake-apiserver: " + (fmt % args) + "\n")

    def send_json(self, code, obj):
        body = (json.dumps(obj) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def authorized(self):
        # x509 client certificate (as kube-apiserver's --client-ca-file): a certificate the
        # client CA signed authenticates by itself, user = its CN.
        if self.server.client_ca and not self.headers.get("Authorization"):
            cert = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
            if cert:
                cn = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
                if cn:
                    if cn[0] not in self.server.client_users:
                        self.server.client_users.add(cn[0])
                        print("fake-apiserver: authenticated by client certificate CN=%s" % cn[0], flush=True)
                    return True
        try:
            with open(self.server.token_file) as f:
                token = f.read().strip()
        except OSError:
            token = None
        got = self.headers.get("Authorization", "")
        if not token or got != "Bearer " + token:
            self.send_json(401, status(401, "Unauthorized", "Unauthorized"))
            return False
        return True

    def route(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        parts = u.path.strip("/").split("/")
        if parts[:3] != ["api", "v1", "nodes"] or len(parts) > 4:
            self.send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
            return None
        return parts[3] if len(parts) == 4 else None, q

    def do_GET(self):
        if not self.authorized():
            return
        r = self.route()
        if r is None:
            return
        name, q = r
        st = self.server.store
        if name:
            with st.lock:
                node = copy.deepcopy(st.nodes.get(name))
            if not node:
                return self.send_json(404, status(404, "NotFound", 'nodes "%s" not found' % name))
            return self.send_json(200, node)
        if q.get("watch", [""])[0] in ("1", "true"):
            return self.watch(q)
        with st.lock:
            items = [copy.deepcopy(n) for _, n in sorted(st.nodes.items())]
            rv = str(st.rv)
        self.send_json(200, {"kind": "NodeList", "apiVersion": "v1",
                             "metadata": {"resourceVersion": rv}, "items": items})

    def chunk(self, obj):
        data = (json.dumps(obj) + "\n").encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, q):
        st = self.server.store
        bookmarks = q.get("allowWatchBookmarks", [""])[0] == "true"
        timeout = float(q.get("timeoutSeconds", ["1800"])[0])
        try:
            since = int(q.get("resourceVersion", [""])[0] or "0")
        except ValueError:
            return self.send_json(400, status(400, "BadRequest", "invalid resourceVersion"))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        deadline = time.monotonic() + timeout
        with st.lock:
            epoch = st.epoch
            too_old = since < st.oldest or since > st.rv
        if too_old:
            self.chunk({"type": "ERROR", "object": status(410, "Expired",
                        "too old resource version: %d (%d)" % (since, st.oldest + 1))})
            self.wfile.write(b"0\r\n\r\n")
            return
        last = since
        with st.lock:
            seen_bm = st.bm_seq
        while time.monotonic() < deadline:
            with st.lock:
                if st.epoch == epoch and st.bm_seq == seen_bm and not any(rv > last for rv, _, _ in st.history):
                    st.lock.wait(0.5)
                    continue
                expired = st.epoch != epoch
                ev = [(rv, t, n) for rv, t, n in st.history if rv > last]
                bm = st.bm_seq != seen_bm
                seen_bm, cur = st.bm_seq, st.rv
            if expired:
                self.chunk({"type": "ERROR", "object": status(410, "Expired", "too old resource version")})
                break
            for rv, t, n in ev:
                self.chunk({"type": t, "object": n})
                last = rv
            if bm and bookmarks:
                self.chunk({"type": "BOOKMARK", "object": {"kind": "Node", "apiVersion": "v1",
                            "metadata": {"resourceVersion": str(cur)}}})
                last = max(last, cur)
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def do_PATCH(self):
        if not self.authorized():
            return
        r = self.route()
        if r is None:
            return
        name, _ = r
        if not name:
            return self.send_json(405, status(405, "MethodNotAllowed", "the server does not allow this method"))
        ct = self.headers.get("Content-Type", "").split(";")[0].strip()
        if ct != "application/merge-patch+json":
            return self.send_json(415, status(415, "UnsupportedMediaType",
                                              "the body of the request was in an unknown format"))
        n = int(self.headers.get("Content-Length", "0") or 0)
        if n > MAX_BODY:
            return self.send_json(413, status(413, "RequestEntityTooLarge", "request is too large"))
        try:
            patch = json.loads(self.rfile.read(n))
        except ValueError as e:
            return self.send_json(400, status(400, "BadRequest", str(e)))
        st = self.server.store
        with st.lock:
            node = st.nodes.get(name)
            if not node:
                return self.send_json(404, status(404, "NotFound", 'nodes "%s" not found' % name))
            new = merge_patch(copy.deepcopy(node), patch)
            if new.get("metadata", {}).get("name") != name:
                return self.send_json(422, status(422, "Invalid", "metadata.name is immutable"))
            st.nodes[name] = new
            st._event("MODIFIED", new)
            out = copy.deepcopy(new)
        self.send_json(200, out)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = MAX_CONNS

    def process_request(self, request, client_address):
        if threading.active_count() > MAX_CONNS + 4:
            request.close()
            return
        request.settimeout(60)
        super().process_request(request, client_address)


def control_loop(store, d):
    while True:
        for f in sorted(os.listdir(d)):
            if not f.endswith(".json") or f == "state.json":
                continue
            p = os.path.join(d, f)
            try:
                with open(p) as fh:
                    cmd = json.load(fh)
            except (OSError, ValueError):
                continue
            os.unlink(p)
            op = cmd.get("op")
            if op == "put":
                store.put(cmd["node"])
            elif op == "delete":
                store.delete(cmd["name"])
            elif op == "expire":
                store.expire()
            elif op == "bookmark":
                store.bookmark()
        time.sleep(0.02)


def main():
    ap = argparse.ArgumentParser(description="FAKE Kubernetes apiserver (nodes only) for tests")
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6443)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--client-ca", help="CA whose client certificates authenticate (CN = user)")
    ap.add_argument("--control", required=True)
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    store = Store(a.control)
    if os.path.exists(os.path.join(a.control, "state.json")):
        with open(os.path.join(a.control, "state.json")) as f:
            s = json.load(f)
        store.rv = int(s["resourceVersion"])
        store.oldest = store.rv
        store.nodes = s["nodes"]
    store._dump()
    srv = Server((a.listen, a.port), Handler)
    srv.store, srv.token_file, srv.verbose = store, a.token_file, a.verbose
    srv.client_ca, srv.client_users = a.client_ca, set()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    if a.client_ca:
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(a.client_ca)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=control_loop, args=(store, a.control), daemon=True).start()
    print("fake-apiserver: listening on %s:%d" % (a.listen, a.port), flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
