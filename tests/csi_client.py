#!/usr/bin/python3
"""A CSI client on python3-grpcio, the way a CO calls a node plugin: stubs generated with
grpc_tools from userspace/csi/csi.proto at start (into a temporary directory).

  csi_client.py SOCKET Service/Method [REQUEST_JSON]

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


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    import grpc
    from google.protobuf import json_format
    pb, pbg, tmp = stubs()
    sock, method = sys.argv[1], sys.argv[2]
    service, rpc = method.split("/")
    stub = getattr(pbg, service + "Stub")(grpc.insecure_channel("unix://" + sock))
    req = getattr(pb, rpc + "Request")()
    if len(sys.argv) == 4:
        json_format.Parse(sys.argv[3], req)
    try:
        resp = getattr(stub, rpc)(req, timeout=float(os.environ.get("CSI_TIMEOUT", "600")))
    except grpc.RpcError as e:
        print("%s: %s" % (e.code().name, e.details()), file=sys.stderr)
        sys.exit(e.code().value[0])
    finally:
        if tmp:
            try:
                os.rmdir(tmp)
            except OSError:
                pass
    print(json_format.MessageToJson(resp, preserving_proto_field_name=True, indent=None))


if __name__ == "__main__":
    main()
