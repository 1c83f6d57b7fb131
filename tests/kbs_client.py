#!/usr/bin/python3
# An independent KBS 0.4.0 sample client for the key-service tests: Python's http.client/ssl and
# python3-jwcrypto, no bulwark code. It crafts the protocol messages (also wrong ones).
#   kbs_client.py URL CA fetch PATH      full RCAR, jwcrypto decrypts the JWE; prints the key hex
#   kbs_client.py URL CA fetch-rsa PATH  the same with an RSA-3072 tee key (RSA-OAEP-256)
#   kbs_client.py URL CA replay          attest, then the same attestation again on the session
#   kbs_client.py URL CA other-nonce     evidence bound to another nonce than the challenge
#   kbs_client.py URL CA cross-session   session 1's attestation presented on session 2
#   kbs_client.py URL CA swap-key        evidence bound to key A, tee-pubkey B in the message
#   kbs_client.py URL CA tpm KIND TPMTOOL TCTI [AK_HANDLE]
#                                        tee "tpm": evidence from tpmtool (userspace/tpm) for this
#                                        session; KIND ok | sig | msg | pcr (tampered signature,
#                                        quote message, PCR value) | nonce (quote for another nonce)
#   kbs_client.py URL CA bad-rsa KIND     an RSA-2048 tee-pubkey made unsound (KIND e1 | e3 | e-even |
#                                        n-even), bound in the evidence; prints "STATUS TYPE"
#   kbs_client.py URL CA latency N PATH [KEYHEX]
#                                        N sequential cold fetches (new TLS connection, key,
#                                        session each), timed in-process; prints
#                                        "p50 p99 max failures" in ms (a key != KEYHEX is a failure)
# Rejection modes print "STATUS TYPE" of the last answer.
import base64, hashlib, http.client, json, ssl, subprocess, sys, urllib.parse
from jwcrypto import jwe, jwk

url, ca, mode = sys.argv[1], sys.argv[2], sys.argv[3]
u = urllib.parse.urlparse(url)
ctx = ssl.create_default_context(cafile=ca)


class Conn:
    def __init__(self):
        self.c = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=10)
        self.cookie = None

    def req(self, method, path, body=None, headers=None):
        h = dict(headers or {})
        if body is not None:
            h["Content-Type"] = "application/json"
        if self.cookie:
            h["Cookie"] = self.cookie
        self.c.request(method, path, body=body, headers=h)
        r = self.c.getresponse()
        data = r.read()
        sc = r.getheader("Set-Cookie")
        if sc:
            self.cookie = sc.split(";")[0]
        return r.status, data


def jcs(o):
    return json.dumps(o, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def report_data(pub, nonce):
    rd = {"tee-pubkey": pub, "nonce": nonce, "additional-evidence": ""}
    return hashlib.sha384(jcs(rd)).digest()


def new_key(rsa=False):
    k = jwk.JWK.generate(kty="RSA", size=3072) if rsa else jwk.JWK.generate(kty="EC", crv="P-256")
    pub = json.loads(k.export_public())
    pub.pop("kid", None)
    pub["alg"] = "RSA-OAEP-256" if rsa else "ECDH-ES+A256KW"
    return k, pub


TEE = "tpm" if mode == "tpm" else "sample"


def auth(c):
    st, body = c.req("POST", "/kbs/v0/auth", json.dumps({"version": "0.4.0", "tee": TEE, "extra-params": {}}))
    assert st == 200, (st, body)
    return json.loads(body)["nonce"]


def attestation(nonce, pub, bound_nonce=None, bound_pub=None):
    rd = report_data(bound_pub or pub, bound_nonce or nonce)
    ev = {"svn": "1", "report_data": base64.b64encode(rd).decode()}
    return json.dumps({"runtime-data": {"nonce": nonce, "tee-pubkey": pub},
                       "tee-evidence": {"primary_evidence": ev, "additional_evidence": ""}})


def verdict(st, body):
    try:
        d = json.loads(body)
        t = d.get("type", "").rsplit("/", 1)[-1] or "-"
        print("#", d.get("detail", ""), file=sys.stderr)
    except ValueError:
        t = "-"
    print(st, t)


if mode == "latency":
    import time
    n, path = int(sys.argv[4]), sys.argv[5]
    want = sys.argv[6] if len(sys.argv) > 6 else None
    lat, fails = [], 0
    for i in range(n):
        t0 = time.monotonic()
        c = None
        try:
            c = Conn()
            k, pub = new_key()
            nonce = auth(c)
            st, body = c.req("POST", "/kbs/v0/attest", attestation(nonce, pub))
            assert st == 200, (st, body)
            token = json.loads(body)["token"]
            st, body = c.req("GET", "/kbs/v0/resource/" + path, headers={"Authorization": "Bearer " + token})
            assert st == 200, (st, body)
            e = jwe.JWE()
            e.deserialize(body.decode(), key=k)
            assert want is None or e.payload.hex() == want, "wrong key"
            lat.append((time.monotonic() - t0) * 1000)
        except Exception as ex:
            fails += 1
            print("# fetch %d: %r" % (i, ex), file=sys.stderr)
        finally:
            if c:
                c.c.close()
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(round(p * (len(lat) - 1))))] if lat else 0
    print("%.0f %.0f %.0f %d" % (pct(0.5), pct(0.99), lat[-1] if lat else 0, fails))
    sys.exit(0)

c = Conn()
k, pub = new_key(rsa=mode in ("fetch-rsa", "bad-rsa"))  # before /auth: RSA keygen may be slow
nonce = auth(c)
if mode in ("fetch", "fetch-rsa"):
    st, body = c.req("POST", "/kbs/v0/attest", attestation(nonce, pub))
    assert st == 200, (st, body)
    token = json.loads(body)["token"]
    st, body = c.req("GET", "/kbs/v0/resource/" + sys.argv[4], headers={"Authorization": "Bearer " + token})
    assert st == 200, (st, body)
    e = jwe.JWE()
    e.deserialize(body.decode(), key=k)
    print(e.payload.hex())
elif mode == "replay":
    att = attestation(nonce, pub)
    st, body = c.req("POST", "/kbs/v0/attest", att)
    assert st == 200, (st, body)
    verdict(*c.req("POST", "/kbs/v0/attest", att))
elif mode == "bad-rsa":
    rpub = dict(pub)
    b64u = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
    kind = sys.argv[4]
    if kind.startswith("e"):
        rpub["e"] = b64u({"e1": b"\x01", "e3": b"\x03", "e-even": b"\x01\x00\x00"}[kind])
    else:
        n = bytearray(base64.urlsafe_b64decode(rpub["n"] + "=="))
        n[-1] &= 0xfe
        rpub["n"] = b64u(bytes(n))
    verdict(*c.req("POST", "/kbs/v0/attest", attestation(nonce, rpub)))
elif mode == "other-nonce":
    verdict(*c.req("POST", "/kbs/v0/attest", attestation(nonce, pub, bound_nonce=base64.b64encode(b"x" * 32).decode())))
elif mode == "cross-session":
    att = attestation(nonce, pub)
    c2 = Conn()
    auth(c2)
    verdict(*c2.req("POST", "/kbs/v0/attest", att))
elif mode == "swap-key":
    _, other = new_key()
    verdict(*c.req("POST", "/kbs/v0/attest", attestation(nonce, other, bound_pub=pub)))
elif mode == "tpm":
    kind, tool, tcti = sys.argv[4], sys.argv[5], sys.argv[6]
    handle = sys.argv[7] if len(sys.argv) > 7 else "0x81010002"
    rd = report_data(pub, nonce if kind != "nonce" else base64.b64encode(b"y" * 32).decode())
    ev = json.loads(subprocess.run([tool, "evidence", "--tcti", tcti, "--ak-handle", handle, "--report-data", rd.hex()],
                                   check=True, capture_output=True).stdout)
    q = ev["tpm_quote"]
    flip = lambda b64: base64.b64encode(bytes([b ^ (i == len(base64.b64decode(b64)) - 5) for i, b in enumerate(base64.b64decode(b64))])).decode()
    if kind == "sig":
        q["signature"] = flip(q["signature"])
    elif kind == "msg":
        q["message"] = flip(q["message"])
    elif kind == "pcr":
        q["pcrs"][4] = ("%064x" % (int(q["pcrs"][4], 16) ^ 1))
    att = json.dumps({"runtime-data": {"nonce": nonce, "tee-pubkey": pub},
                      "tee-evidence": {"primary_evidence": ev, "additional_evidence": ""}})
    verdict(*c.req("POST", "/kbs/v0/attest", att))
else:
    sys.exit("unknown mode " + mode)
