#!/usr/bin/python3
"""A CSI client on python3-grpcio, the way a CO calls a node plugin: stubs generated with
grpc_tools from userspace/csi/csi.proto at start (into a temporary directory).

  csi_client.py SOCKET Service/Method [REQUEST_JSON]
  csi_client.py --serve SOCKET REQ_FIFO RESP_FIFO

--serve keeps one client (one channel) for many calls, to spare the interpreter start per call
(slow under TCG): each write of "Service/Method<TAB>REQUEST_JSON" to REQ_FIFO is answered on
RESP_FIFO with one line "CODE<TAB>RESPONSE_JSON or message".

REQUEST_JSON is the request message in protobuf's JSON mapping (field names as in the .proto).
Prints the response as JSON on stdout; on an error prints "CODE_NAME: message" on stderr.
The exit status is the gRPC status code (0 = OK), so tests can check codes directly.
"""
import os
import sys
import tempfile

from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.join(HERE, "..", "userspace", "csi")


def stubs():
    keep = os.environ.get("CSI_PY_STUBS")  # a directory to generate into once and reuse
    if keep and os.path.exists(os.path.join(keep, "csi_pb2_grpc.py")):
        sys.path.insert(0, keep)
        import csi_pb2
        import csi_pb2_grpc
        return csi_pb2, csi_pb2_grpc, None
    out = keep or tempfile.mkdtemp(prefix="bw-csi-py.")
    os.makedirs(out, exist_ok=True)
    rc = protoc.main(["protoc", "-I" + PROTO_DIR, "-I/usr/include", "--python_out=" + out,
                      "--grpc_python_out=" + out, os.path.join(PROTO_DIR, "csi.proto")])
    if rc != 0:
        sys.exit("csi_client: protoc failed")
    sys.path.insert(0, out)
    import csi_pb2
    import csi_pb2_grpc
    if keep:
        return csi_pb2, csi_pb2_grpc, None
    for f in os.listdir(out):
        if f.endswith(".py"):
            os.unlink(os.path.join(out, f))
    return csi_pb2, csi_pb2_grpc, out


def call(grpc, json_format, pb, pbg, channel, method, body):
    """(code, text): the response as JSON, or the error as 'NAME: message'."""
    service, rpc = method.split("/")
    stub = getattr(pbg, service + "Stub")(channel)
    req = getattr(pb, rpc + "Request")()
    if body:
        json_format.Parse(body, req)
    try:
        resp = getattr(stub, rpc)(req, timeout=float(os.environ.get("CSI_TIMEOUT", "600")), wait_for_ready=True)
    except grpc.RpcError as e:
        return e.code().value[0], "%s: %s" % (e.code().name, e.details())
    return 0, json_format.MessageToJson(resp, preserving_proto_field_name=True, indent=None)


def serve(grpc, json_format, pb, pbg, sock, req_fifo, resp_fifo):
    channel = grpc.insecure_channel("unix://" + sock)
    while True:
        with open(req_fifo) as f:
            line = f.read().rstrip("\n")
        if not line:
            continue
        method, _, body = line.partition("\t")
        if method == "quit":
            return
        try:
            code, text = call(grpc, json_format, pb, pbg, channel, method, body)
        except Exception as e:  # a malformed request in a test: report, keep serving
            code, text = 2, "client: %s" % e
        with open(resp_fifo, "w") as f:
            f.write("%d\t%s\n" % (code, text.replace("\n", " ")))


def main():
    if len(sys.argv) not in (3, 4) and not (len(sys.argv) == 5 and sys.argv[1] == "--serve"):
        sys.exit(__doc__)
    import grpc
    from google.protobuf import json_format
    pb, pbg, tmp = stubs()
    if sys.argv[1] == "--serve":
        serve(grpc, json_format, pb, pbg, *sys.argv[2:])
        return
    sock, method = sys.argv[1], sys.argv[2]
    try:
        code, text = call(grpc, json_format, pb, pbg, grpc.insecure_channel("unix://" + sock), method,
                          sys.argv[3] if len(sys.argv) == 4 else None)
        if code:
            print(text, file=sys.stderr)
            sys.exit(code)
    finally:
        if tmp:
            try:
                os.rmdir(tmp)
            except OSError:
                pass
    print(text)


if __name__ == "__main__":
    main()
