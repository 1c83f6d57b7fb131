#!/usr/bin/python3
# Abuse load for the key-service tests (asyncio + ssl, no bulwark code). Runs for SECONDS from
# source address SRC and prints one JSON line of what it saw.
#   ks_flood.py conns HOST PORT CA SRC SECONDS IDLE HALF [TRICKLE]
#       IDLE TLS connections that never send a request, HALF TCP connections that never start
#       TLS, TRICKLE TLS connections that send a request one byte every 0.5 s; each reopened as
#       soon as the service closes it (a persistent attacker). Reports peaks, closes and, for
#       trickled connections, how long the service let each live.
#   ks_flood.py sessions HOST PORT CA SRC SECONDS CONNS
#       POST /auth as fast as CONNS keep-alive connections allow (never attesting).
import asyncio, json, resource, socket, ssl, sys, time

mode, host, port, ca, src, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], float(sys.argv[6])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
ctx = ssl.create_default_context(cafile=ca)
st = {"opened": 0, "open_peak": 0, "closed_by_service": 0, "connect_errors": 0, "trickle_lifetimes": [],
      "auth_ok": 0, "auth_other": {}}
open_now = 0
end = time.monotonic() + secs


def opened():
    global open_now
    open_now += 1
    st["opened"] += 1
    st["open_peak"] = max(st["open_peak"], open_now)


async def connect(tls):
    """(reader, writer) from SRC, TLS or plain TCP; None (counted, after a pause) on failure."""
    try:
        return await asyncio.wait_for(asyncio.open_connection(
            host, port, ssl=ctx if tls else None, local_addr=(src, 0), server_hostname=host if tls else None), 5)
    except Exception:
        st["connect_errors"] += 1
        await asyncio.sleep(0.2)
        return None


async def hold(kind):
    global open_now
    while time.monotonic() < end:
        c = await connect(kind != "half")
        if not c:
            continue
        r, w = c
        opened()
        t0 = time.monotonic()
        req = b"POST /kbs/v0/auth HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n"
        i = 0
        try:
            while time.monotonic() < end:
                if kind == "trickle" and i < len(req):
                    w.write(req[i:i + 1])
                    i += 1
                try:
                    d = await asyncio.wait_for(r.read(1), 0.5)
                except asyncio.TimeoutError:
                    continue
                if not d:
                    break
        except Exception:
            pass
        open_now -= 1
        if time.monotonic() < end:
            st["closed_by_service"] += 1
            if kind == "trickle":
                st["trickle_lifetimes"].append(round(time.monotonic() - t0, 2))
        try:
            w.close()
        except Exception:
            pass


async def auths():
    body = b'{"version":"0.4.0","tee":"sample","extra-params":{}}'
    while time.monotonic() < end:
        c = await connect(True)
        if not c:
            continue
        r, w = c
        try:
            while time.monotonic() < end:
                w.write(b"POST /kbs/v0/auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                line = await asyncio.wait_for(r.readline(), 5)
                code = line.split()[1].decode() if len(line.split()) > 1 else "?"
                n = 0
                while True:
                    h = await r.readline()
                    if h in (b"\r\n", b""):
                        break
                    if h.lower().startswith(b"content-length:"):
                        n = int(h.split(b":")[1])
                await r.readexactly(n)
                if code == "200":
                    st["auth_ok"] += 1
                else:
                    st["auth_other"][code] = st["auth_other"].get(code, 0) + 1
        except Exception:
            pass
        w.close()


async def main():
    tasks = []
    if mode == "conns":
        idle, half = int(sys.argv[7]), int(sys.argv[8])
        trickle = int(sys.argv[9]) if len(sys.argv) > 9 else 0
        tasks += [hold("idle") for _ in range(idle)] + [hold("half") for _ in range(half)]
        tasks += [hold("trickle") for _ in range(trickle)]
    else:
        tasks += [auths() for _ in range(int(sys.argv[7]))]
    await asyncio.gather(*tasks)


asyncio.run(main())
print(json.dumps(st))
