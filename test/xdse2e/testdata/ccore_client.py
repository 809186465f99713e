"""A gRPC C-core xDS client for the xDS end-to-end tests, through Python's grpcio.

Why Python: it is how gRPC C-core reaches our machines (Debian's python3-grpcio), and C-core is
the xDS implementation of Python, Ruby, PHP, C++ and Objective-C services. The test (ccore_test.go)
starts it with GRPC_XDS_BOOTSTRAP set and the xds:/// target as its last argument, and drives it
over stdin/stdout, one JSON object a line, so that one channel (and its xDS client, with its
accepted and refused resources) lives through the whole test:

  in:  {"calls": 50, "metadata": {"x-canary": "yes"}}
  out: {"replies": ["<base64 of a grpc.testing.SimpleResponse>", ...],
        "errors": ["PERMISSION_DENIED: <details>", ...]}

An error is its status code's name (as in grpc.StatusCode), ": ", and its details. With
--xds-credentials before the target, the channel has xDS channel credentials (insecure as their
fallback): the Cluster's UpstreamTlsContext decides its TLS, certificates from the bootstrap's
certificate providers. Without it, the channel is insecure and ignores the Clusters' TLS.

It calls grpc.testing.TestService/UnaryCall with an empty SimpleRequest and hands the raw replies
back: the Go side decodes them, so no generated Python code or protobuf runtime is needed here.
"""

import base64
import json
import sys

import grpc
import grpc.experimental

METHOD = "/grpc.testing.TestService/UnaryCall"


def main():
    target = sys.argv[-1]
    if "--xds-credentials" in sys.argv[1:-1]:
        creds = grpc.xds_channel_credentials(grpc.experimental.insecure_channel_credentials())
        channel = grpc.secure_channel(target, creds)
    else:
        channel = grpc.insecure_channel(target)
    call = channel.unary_unary(METHOD)  # no serializers: bytes in, bytes out
    print(json.dumps({"version": grpc.__version__}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        metadata = tuple(sorted((req.get("metadata") or {}).items()))
        replies, errors = [], []
        for _ in range(req["calls"]):
            try:
                replies.append(base64.b64encode(call(b"", timeout=5, metadata=metadata)).decode())
            except grpc.RpcError as e:
                errors.append("%s: %s" % (e.code().name, e.details()))
        print(json.dumps({"replies": replies, "errors": errors}), flush=True)


if __name__ == "__main__":
    main()
