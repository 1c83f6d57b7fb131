#!/usr/bin/python3
# A hostile KBS 0.4.0 service for the client tests (Python http.server + ssl + jwcrypto, no
# bulwark code): it runs the handshake like a real service (any evidence is accepted) and then
# answers the resource with a JWE crafted to the client's tee-pubkey.
#   kbs_hostile.py PORT CERT KEY MODE
#     ok32   a correct JWE of 32 bytes 0x11 (control)      len37  37 bytes 0x22
#     empty  a correct JWE of an empty plaintext           zip    "zip":"DEF" (compressed 32 bytes)
#     crit   "crit":["x-bw-ext"] naming an unknown extension (correctly encrypted otherwise)
#     crit-unprotected   the same crit in the unprotected header
import base64, json, ssl, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from jwcrypto import jwe, jwk

port, cert, key, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
tee = {}


def b64(d):
    return base64.urlsafe_b64encode(d).rstrip(b"=").decode()


def resource(pub):
    k = jwk.JWK(**pub)
    alg = pub.get("alg", "ECDH-ES+A256KW")
    prot = {"alg": alg, "enc": "A256GCM"}
    unprot = None
    pt = {"ok32": b"\x11" * 32, "len37": b"\x22" * 37, "empty": b""}.get(mode, b"\x33" * 32)
    if mode == "zip":
        prot["zip"] = "DEF"
    elif mode == "crit":
        prot["crit"] = ["x-bw-ext"]
        prot["x-bw-ext"] = True
    elif mode == "crit-unprotected":
        unprot = {"crit": ["x-bw-ext"], "x-bw-ext": True}
    e = jwe.JWE(pt, json.dumps(prot), unprotected=json.dumps(unprot) if unprot else None)
    e.add_recipient(k)
    return e.serialize()


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, body, extra=None):
        b = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(b)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        if self.path == "/kbs/v0/auth":
            self.reply(200, json.dumps({"nonce": b64(b"n" * 32), "extra-params": {}}),
                       {"Set-Cookie": "kbs-session-id=" + "a" * 64})
        elif self.path == "/kbs/v0/attest":
            tee["pub"] = body["runtime-data"]["tee-pubkey"]
            claims = {"iss": "hostile", "iat": int(time.time()), "exp": int(time.time()) + 300}
            tok = b64(b'{"alg":"ES256","typ":"JWT"}') + "." + b64(json.dumps(claims).encode()) + "." + b64(b"s" * 64)
            self.reply(200, json.dumps({"token": tok}))
        else:
            self.reply(404, "{}")

    def do_GET(self):
        if self.path.startswith("/kbs/v0/resource/") and "pub" in tee:
            self.reply(200, resource(tee["pub"]))
        else:
            self.reply(404, "{}")


srv = ThreadingHTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
