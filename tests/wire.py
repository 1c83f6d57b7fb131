#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""The cloud host's view of the wire, for the netns tests. Standard library only.

  wire.py scan PCAP --pods CIDR... [--nodes CIDR...] [--from-mac MAC...] [--overlay-ports P...]
                    [--marker TEXT...]
      Parse every frame of a pcap (tcpdump -w) down through VLAN tags, IPv4/IPv6 (extension
      headers, routing headers' addresses), IPIP/SIT/4in6/6in6, GRE (IP, Ethernet, ERSPAN, MPLS),
      EtherIP, MPLS, VXLAN/Geneve/overlay UDP, the packets quoted in ICMP/ICMPv6 errors and
      redirects, and ARP; IP fragments are reassembled and the datagram parsed. Prints JSON:
        frames, per source MAC counts, "leaks" (frames from --from-mac, or every frame without it,
        holding a pod address at any depth; and fragments of an encapsulating protocol between
        cluster addresses whose first fragment never came, i.e. overlay payload in clear),
        "markers" (for each --marker text: frames holding it, and the deepest layer at which a pod
        address was found in them).
      Exits 2 when the file is missing, empty, not a pcap, or cut short: a dead capture fails.

  wire.py send IFACE KIND [KIND...] --src-mac MAC --dst-mac MAC --tag TEXT
      Send hand-made frames out of IFACE through an AF_PACKET socket (so they cross the tc egress
      hook like any packet the node sends): node A -> node B (198.19.0.1 -> .2, fd00:20::1 -> ::2)
      carrying pod A -> pod B (198.18.1.2 -> 198.18.2.2, fd00:10:1::2 -> fd00:10:2::2), UDP with
      the payload "TEXT-KIND". KINDs: see CRAFT below.
"""
import ipaddress
import json
import socket
import struct
import sys

# ---------------------------------------------------------------- scanning

ETH_IP, ETH_IP6, ETH_ARP, ETH_TEB = 0x0800, 0x86DD, 0x0806, 0x6558
VLAN_TYPES = (0x8100, 0x88A8, 0x9100)
MPLS_TYPES = (0x8847, 0x8848)
DEFAULT_OVERLAY = (4789, 8472, 6081)
ENCAP_PROTOS = (4, 41, 47, 97, 115, 137, 143)
MAX_DEPTH = 24


class Scan:
    def __init__(self, pods, nodes, overlay_ports):
        self.pods = [ipaddress.ip_network(p) for p in pods]
        self.cluster = self.pods + [ipaddress.ip_network(n) for n in nodes]
        self.overlay = set(DEFAULT_OVERLAY) | set(overlay_ports)
        self.frags = {}  # (family, src, dst, id, proto) -> {"first": bool, "parts": {off: bytes}, "last": end}

    def is_pod(self, raw):
        a = ipaddress.ip_address(raw)
        return any(a in n for n in self.pods)

    def in_cluster(self, raw):
        a = ipaddress.ip_address(raw)
        return any(a in n for n in self.cluster)

    # Every function returns a list of (depth, where, address) for pod addresses found.
    def eth(self, b, depth, path):
        if depth > MAX_DEPTH or len(b) < 14:
            return []
        t, off = struct.unpack_from("!H", b, 12)[0], 14
        while t in VLAN_TYPES and len(b) >= off + 4:
            t = struct.unpack_from("!H", b, off + 2)[0]
            off += 4
            path = path + ["vlan"]
        return self.ethertype(t, b[off:], depth, path)

    def ethertype(self, t, b, depth, path):
        if t == ETH_IP:
            return self.ip4(b, depth, path)
        if t == ETH_IP6:
            return self.ip6(b, depth, path)
        if t == ETH_ARP:
            return self.arp(b, depth, path)
        if t == ETH_TEB:
            return self.eth(b, depth + 1, path + ["teb"])
        if t in MPLS_TYPES:
            return self.mpls(b, depth, path)
        return []

    def by_version(self, b, depth, path):
        if not b:
            return []
        v = b[0] >> 4
        if v == 4:
            return self.ip4(b, depth, path)
        if v == 6:
            return self.ip6(b, depth, path)
        return []

    def mpls(self, b, depth, path):
        off = 0
        while len(b) >= off + 4:
            s = b[off + 2] & 1
            off += 4
            if s:
                return self.by_version(b[off:], depth + 1, path + ["mpls"])
        return []

    def arp(self, b, depth, path):
        hits = []
        if len(b) >= 28 and struct.unpack_from("!HHBB", b, 0) == (1, 0x0800, 6, 4):
            for a in (b[14:18], b[24:28]):
                if self.is_pod(a):
                    hits.append((depth, "/".join(path + ["arp"]), str(ipaddress.ip_address(a))))
        return hits

    def addrs(self, fam, s, d, depth, path):
        return [(depth, "/".join(path + ["ip%d" % fam]), str(ipaddress.ip_address(a)))
                for a in (s, d) if self.is_pod(a)]

    def ip4(self, b, depth, path):
        if depth > MAX_DEPTH or len(b) < 20 or b[0] >> 4 != 4:
            return []
        ihl = (b[0] & 15) * 4
        tot, ident, frag, proto = struct.unpack_from("!HHH", b, 2) + (b[9],)
        s, d = b[12:16], b[16:20]
        hits = self.addrs(4, s, d, depth, path)
        payload = b[ihl:tot] if ihl <= tot <= len(b) else b[ihl:]
        off, mf = (frag & 0x1FFF) * 8, frag & 0x2000
        if off or mf:
            whole = self.fragment((4, s, d, ident, proto), off, mf, payload)
            if whole is None:
                return hits
            payload = whole
        return hits + self.l4(4, proto, s, d, payload, depth, path + ["ip4"])

    def ip6(self, b, depth, path):
        if depth > MAX_DEPTH or len(b) < 40 or b[0] >> 4 != 6:
            return []
        plen, nh = struct.unpack_from("!HB", b, 4)
        s, d = b[8:24], b[24:40]
        hits = self.addrs(6, s, d, depth, path)
        end = min(len(b), 40 + plen) if plen else len(b)
        off = 40
        for _ in range(16):
            if nh in (0, 43, 60, 51) and end >= off + 8:
                hlen = (b[off + 1] + 2) * 4 if nh == 51 else (b[off + 1] + 1) * 8
                if nh == 43:  # routing header: every address in it (SRv6 segments, type 0/2)
                    for a in range(off + 8, min(off + hlen, end) - 15, 16):
                        if self.is_pod(b[a:a + 16]):
                            hits.append((depth, "/".join(path + ["ip6", "rthdr"]),
                                         str(ipaddress.ip_address(b[a:a + 16]))))
                nh = b[off]
                off += hlen
                continue
            if nh == 44 and end >= off + 8:
                fo, ident = struct.unpack_from("!HI", b, off + 2)
                whole = self.fragment((6, s, d, ident, b[off]), fo & 0xFFF8, fo & 1, b[off + 8:end])
                if whole is None:
                    return hits
                nh, b, off, end = b[off], whole, 0, len(whole)
                continue
            break
        return hits + self.l4(6, nh, s, d, b[off:end], depth, path + ["ip6"])

    def fragment(self, key, off, mf, data):
        f = self.frags.setdefault(key, {"parts": {}, "last": None})
        f["parts"][off] = data
        if not mf:
            f["last"] = off + len(data)
        if f["last"] is None or 0 not in f["parts"]:
            return None
        whole, pos = b"", 0
        for o in sorted(f["parts"]):
            if o > pos:
                return None
            whole = whole[:o] + f["parts"][o]
            pos = len(whole)
        if pos < f["last"]:
            return None
        del self.frags[key]
        return whole

    def l4(self, fam, proto, s, d, p, depth, path):
        nxt = depth + 1
        if proto == 4:
            return self.ip4(p, nxt, path + ["ipip"])
        if proto == 41:
            return self.ip6(p, nxt, path + ["ip6ip"])
        if proto == 143:
            return self.eth(p, nxt, path + ["eth-in-ip"])
        if proto == 97 and len(p) > 2:
            return self.eth(p[2:], nxt, path + ["etherip"])
        if proto == 137:
            return self.mpls(p, depth, path + ["mpls-in-ip"])
        if proto == 47:
            return self.gre(p, nxt, path + ["gre"])
        if proto == 17 and len(p) >= 8:
            sp, dp = struct.unpack_from("!HH", p, 0)
            body = p[8:]
            if dp == 6081 or (sp == 6081 and dp not in self.overlay):
                return self.geneve(body, nxt, path + ["geneve"])
            if dp in self.overlay or sp in self.overlay:
                # VXLAN (8-byte header, then a frame), or anything else on an overlay port:
                # try a frame after 8 bytes, then IP right away (FOU).
                return (self.eth(body[8:], nxt, path + ["vxlan"]) or
                        self.by_version(body, nxt, path + ["udp-overlay"]))
            return []
        if (proto == 1 and fam == 4) or (proto == 58 and fam == 6):
            if len(p) < 8:
                return []
            t = p[0]
            if fam == 4 and t in (3, 4, 5, 11, 12):
                return self.ip4(p[8:], nxt, path + ["icmp-quote"])
            if fam == 6 and t < 128:
                return self.ip6(p[8:], nxt, path + ["icmp6-quote"])
            if fam == 6 and t == 137:  # redirect: options after target + destination
                hits, off = [], 40
                while len(p) >= off + 8 and p[off + 1]:
                    if p[off] == 4:
                        hits += self.ip6(p[off + 8:off + p[off + 1] * 8], nxt, path + ["redirect-quote"])
                    off += p[off + 1] * 8
                return hits
        return []

    def gre(self, p, depth, path):
        if len(p) < 4:
            return []
        flags, proto = struct.unpack_from("!HH", p, 0)
        off = 4 + 4 * bool(flags & 0x8000) + 4 * bool(flags & 0x2000) + 4 * bool(flags & 0x1000)
        if flags & 7 == 1:  # enhanced GRE (PPTP): ack, then PPP
            off = 8 + 4 * bool(flags & 0x1000) + 4 * bool(flags & 0x0080)
            body = p[off:]
            if len(body) >= 4 and body[:2] == b"\xff\x03":
                body = body[2:]
            return self.by_version(body[2:], depth, path + ["ppp"]) if len(body) > 2 else []
        body = p[off:]
        if proto == 0x88BE:  # ERSPAN II
            return self.eth(body[8:], depth, path + ["erspan"])
        if proto == 0x22EB:  # ERSPAN III (+ optional platform subheader)
            extra = 8 if len(body) > 11 and body[11] & 1 else 0
            return self.eth(body[12 + extra:], depth, path + ["erspan3"])
        return self.ethertype(proto, body, depth, path)

    def geneve(self, p, depth, path):
        if len(p) < 8:
            return []
        optlen = (p[0] & 0x3F) * 4
        proto = struct.unpack_from("!H", p, 2)[0]
        return self.ethertype(proto, p[8 + optlen:], depth, path)

    def leftovers(self):
        """Fragments of encapsulations between cluster addresses whose datagram never completed."""
        out = []
        for (fam, s, d, _ident, proto), f in self.frags.items():
            if proto in ENCAP_PROTOS or proto == 17:
                if self.in_cluster(s) and self.in_cluster(d) and 0 not in f["parts"]:
                    out.append({"path": "ip%d-fragment(proto %d, no first fragment)" % (fam, proto),
                                "src": str(ipaddress.ip_address(s)), "dst": str(ipaddress.ip_address(d))})
        return out


def read_pcap(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        print("wire.py: %s: %s" % (path, e.strerror), file=sys.stderr)
        sys.exit(2)
    if len(data) < 24:
        print("wire.py: %s: %d bytes, not a pcap (dead capture?)" % (path, len(data)), file=sys.stderr)
        sys.exit(2)
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        print("wire.py: %s: not a pcap file (magic %s)" % (path, magic.hex()), file=sys.stderr)
        sys.exit(2)
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    if linktype != 1:
        print("wire.py: %s: link type %d, expected Ethernet (1)" % (path, linktype), file=sys.stderr)
        sys.exit(2)
    off, frames = 24, []
    while off < len(data):
        if off + 16 > len(data):
            print("wire.py: %s: cut short in a record header" % path, file=sys.stderr)
            sys.exit(2)
        incl, orig = struct.unpack_from(endian + "II", data, off + 8)
        if off + 16 + incl > len(data):
            print("wire.py: %s: cut short in a frame" % path, file=sys.stderr)
            sys.exit(2)
        frames.append((data[off + 16:off + 16 + incl], orig))
        off += 16 + incl
    return frames


def mac(b):
    return ":".join("%02x" % x for x in b)


def scan(args):
    opts = {"--pods": [], "--nodes": [], "--from-mac": [], "--overlay-ports": [], "--marker": []}
    path, cur = None, None
    for a in args:
        if a in opts:
            cur = a
        elif cur:
            opts[cur].append(a)
        elif path is None:
            path = a
        else:
            sys.exit("wire.py scan: unexpected %s" % a)
    if not path or not opts["--pods"]:
        sys.exit("usage: wire.py scan PCAP --pods CIDR... [--nodes ...] [--from-mac ...] [--marker ...]")
    sc = Scan(opts["--pods"], opts["--nodes"], [int(p) for p in opts["--overlay-ports"]])
    watched = {m.lower() for m in opts["--from-mac"]}
    out = {"frames": 0, "truncated": 0, "by_mac": {}, "leaks": [], "markers": {}}
    for m in opts["--marker"]:
        out["markers"][m] = {"frames": 0, "pod_depth": -1}
    for i, (b, orig) in enumerate(read_pcap(path)):
        out["frames"] += 1
        if orig > len(b):
            out["truncated"] += 1
        src = mac(b[6:12]) if len(b) >= 12 else "?"
        out["by_mac"][src] = out["by_mac"].get(src, 0) + 1
        hits = sc.eth(b, 0, ["eth"])
        for m, rec in out["markers"].items():
            if m.encode() in b:
                rec["frames"] += 1
                rec["pod_depth"] = max([rec["pod_depth"]] + [h[0] for h in hits])
        if hits and (not watched or src in watched):
            for depth, where, addr in hits:
                out["leaks"].append({"frame": i + 1, "mac": src, "depth": depth, "path": where, "addr": addr})
    out["leaks"] += sc.leftovers()
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


# ---------------------------------------------------------------- crafting

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip4(src, dst, proto, payload, frag=0, ident=0x4242):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64, proto, 0,
                    socket.inet_pton(socket.AF_INET, src), socket.inet_pton(socket.AF_INET, dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload


def ip6(src, dst, proto, payload, frag=None, ident=0x4242):
    if frag is not None:  # (offset in 8-byte units, more fragments)
        payload = struct.pack("!BBHI", proto, 0, frag[0] << 3 | frag[1], ident) + payload
        proto = 44
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), proto, 64,
                       socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)) + payload


def udp(sp, dp, payload):
    return struct.pack("!HHHH", sp, dp, 8 + len(payload), 0) + payload


NODE = {4: ("198.19.0.1", "198.19.0.2"), 6: ("fd00:20::1", "fd00:20::2")}
POD = {4: ("198.18.1.2", "198.18.2.2"), 6: ("fd00:10:1::2", "fd00:10:2::2")}


def inner(fam, text, reverse=False):
    s, d = POD[fam][::-1] if reverse else POD[fam]
    data = udp(40000, 9, text.encode())
    return ip4(s, d, 17, data) if fam == 4 else ip6(s, d, 17, data)


def outer(fam, proto, payload, frag=None):
    s, d = NODE[fam]
    if fam == 4:
        return ETH_IP, ip4(s, d, proto, payload, frag=(frag[0] | (0x2000 if frag[1] else 0)) if frag else 0)
    return ETH_IP6, ip6(s, d, proto, payload, frag=frag)


def eth_payload(fam, text):
    return b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + struct.pack("!H", ETH_IP if fam == 4 else ETH_IP6) + inner(fam, text)


def craft(kind, text):
    """(ethertype, L3 bytes) or (ethertype, L3 bytes, tags) for one KIND."""
    t = "%s-%s" % (text, kind)
    fam = 6 if kind.endswith("6") else 4
    if kind in ("ipip4", "4in6"):
        return outer(6 if kind == "4in6" else 4, 4, inner(4, t))
    if kind in ("sit4", "6in6"):
        return outer(6 if kind == "6in6" else 4, 41, inner(6, t))
    if kind in ("gre4", "gre6"):
        return outer(fam, 47, struct.pack("!HH", 0, ETH_IP) + inner(4, t))
    if kind in ("gretap4", "gretap6"):
        return outer(fam, 47, struct.pack("!HH", 0x2000, ETH_TEB) + b"\0\0\0\x07" + eth_payload(4, t))
    if kind in ("vxlan4", "vxlan6"):
        return outer(fam, 17, udp(55555, 4789, b"\x08\0\0\0\0\0\x05\0" + eth_payload(fam, t)))
    if kind in ("vxlan8472_4", "vxlan8472_6"):
        return outer(fam, 17, udp(55555, 8472, b"\x08\0\0\0\0\0\x05\0" + eth_payload(fam, t)))
    if kind in ("geneve4", "geneve6"):
        return outer(fam, 17, udp(55555, 6081, struct.pack("!BBH", 0, 0, ETH_TEB) + b"\0\0\x05\0" + eth_payload(fam, t)))
    if kind == "srv6":
        seg = socket.inet_pton(socket.AF_INET6, POD[6][1])
        return outer(6, 43, struct.pack("!BBBBBBH", 41, 2, 4, 0, 0, 0, 0) + seg + inner(6, t))
    if kind in ("etherip4", "etherip6"):
        return outer(fam, 97, b"\x30\0" + eth_payload(4, t))
    if kind in ("vxlanfrag4", "vxlanfrag6"):
        # The inner headers only in the second fragment: the first carries the UDP header alone.
        body = udp(55555, 4789, b"\x08\0\0\0\0\0\x05\0" + eth_payload(fam, t))
        return [outer(fam, 17, body[:8], frag=(0, 1)), outer(fam, 17, body[8:], frag=(1, 0))]
    if kind in ("vxlanfrag_tail4", "vxlanfrag_tail6"):
        body = udp(55555, 4789, b"\x08\0\0\0\0\0\x05\0" + eth_payload(fam, t))
        return outer(fam, 17, body[8:], frag=(1, 0))
    if kind in ("vlan1_4", "vlan1_6", "vlan2_4", "vlan2_6"):
        ethertype = ETH_IP if fam == 4 else ETH_IP6
        return ethertype, inner(fam, t), [0x8100] if kind.startswith("vlan1") else [0x88A8, 0x8100]
    if kind in ("icmperr4", "icmperr6"):
        # node A answers remote pod B about pod B's packet (time exceeded): node -> remote pod
        q = inner(fam, t, reverse=True)
        s, d = NODE[fam][0], POD[fam][1]
        if fam == 4:
            msg = struct.pack("!BBHI", 11, 0, 0, 0) + q
            return ETH_IP, ip4(s, d, 1, msg)
        msg = struct.pack("!BBHI", 3, 0, 0, 0) + q
        return ETH_IP6, ip6(s, d, 58, msg)
    if kind in ("deep4",):
        # VLAN / IPv4 node->node / GRE / IPv4 / ICMP time exceeded quoting pod->pod: a marker
        q = inner(4, t)
        icmp = ip4("198.19.0.1", "198.19.1.9", 1, struct.pack("!BBHI", 11, 0, 0, 0) + q)
        return ETH_IP, ip4("198.19.0.1", "198.19.0.2", 47, struct.pack("!HH", 0, ETH_IP) + icmp), [0x8100]
    sys.exit("wire.py send: unknown kind %s" % kind)


def send(args):
    opts = {"--src-mac": None, "--dst-mac": None, "--tag": "BW"}
    rest, it = [], iter(args)
    for a in it:
        if a in opts:
            opts[a] = next(it)
        else:
            rest.append(a)
    if len(rest) < 2 or not opts["--src-mac"] or not opts["--dst-mac"]:
        sys.exit("usage: wire.py send IFACE KIND... --src-mac MAC --dst-mac MAC [--tag TEXT]")
    ifname, kinds = rest[0], rest[1:]
    dst, src = bytes.fromhex(opts["--dst-mac"].replace(":", "")), bytes.fromhex(opts["--src-mac"].replace(":", ""))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sent = 0
    for k in kinds:
        c = craft(k, opts["--tag"])
        for one in (c if isinstance(c, list) else [c]):
            ethertype, l3 = one[0], one[1]
            tags = one[2] if len(one) > 2 else []
            first = tags[0] if tags else ethertype
            frame = dst + src
            for i, tpid in enumerate(tags):  # each tag: its TPID, then its TCI (VLAN id)
                frame += struct.pack("!HH", tpid, 100 + i)
            frame += struct.pack("!H", ethertype) + l3
            try:
                s.sendto(frame, (ifname, first))
            except OSError as e:
                # ENOBUFS is how a packet socket hears that the tc egress hook dropped the frame
                if e.errno != 105:
                    raise
            sent += 1
    print(sent)
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("scan", "send"):
        sys.exit(__doc__)
    sys.exit(scan(sys.argv[2:]) if sys.argv[1] == "scan" else send(sys.argv[2:]))
