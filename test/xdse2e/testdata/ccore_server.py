"""A gRPC C-core xDS-enabled server for the xDS end-to-end tests, through Python's grpcio.

The test (access_test.go) starts it with GRPC_XDS_BOOTSTRAP set (a bootstrap with
server_listener_resource_name_template and a file_watcher certificate provider) and two
arguments, the name it answers as and the address it listens on ("ip:port"). It serves with xDS
server credentials (insecure as their fallback), so that the operator's Listener decides its TLS
and its RBAC. It prints {"version": "<grpcio version>"} once it has bound its port, and serves
until its standard input ends.

It answers grpc.testing.TestService/UnaryCall as test/grpcxds's backends do: a
grpc.testing.SimpleResponse with its name in server_id, its address in hostname and the caller's
SPIFFE ID (the URI SAN of the client certificate C-core verified) in username, encoded here by
hand (three string fields), so that no generated code or protobuf runtime is needed.
"""

import json
import sys
from concurrent import futures

import grpc

METHOD = "/grpc.testing.TestService/UnaryCall"


def string_field(number, value):
    """A protobuf length-delimited field (wire type 2) holding value, UTF-8."""
    data = value.encode()
    out = bytearray([number << 3 | 2])
    n = len(data)
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + data


def peer_identity(context):
    """The caller's SPIFFE ID as C-core's TLS handshaker recorded it, "" without one."""
    auth = context.auth_context() or {}
    for value in auth.get("peer_spiffe_id", []):
        return value.decode()
    for value in auth.get("x509_subject_alternative_name", []):
        if value.startswith(b"spiffe://"):
            return value.decode()
    return ""


def main():
    name, address = sys.argv[1], sys.argv[2]

    def unary_call(_request, context):
        # SimpleResponse: username = 2, server_id = 4, hostname = 6.
        return string_field(2, peer_identity(context)) + string_field(4, name) + string_field(6, address)

    handler = grpc.method_handlers_generic_handler(
        "grpc.testing.TestService", {"UnaryCall": grpc.unary_unary_rpc_method_handler(unary_call)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=(handler,), xds=True)
    server.add_secure_port(address, grpc.xds_server_credentials(grpc.insecure_server_credentials()))
    server.start()
    print(json.dumps({"version": grpc.__version__}), flush=True)
    for _ in sys.stdin:
        pass
    server.stop(0)


if __name__ == "__main__":
    main()
