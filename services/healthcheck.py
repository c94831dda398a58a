"""Container health probe: `python -m services.healthcheck HOST:PORT` exits 0 when SERVING.
Over TLS (and mTLS) when the settings say so: SEEDASR_TLS_CA, SEEDASR_TLS_CLIENT_CERT/KEY."""

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main() -> int:
    target = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
    from services.channels import open_channel
    from shared.settings import load_settings

    try:
        with open_channel(target, load_settings()) as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3).status
    except grpc.RpcError as err:
        print(f"{target}: {err.code().name}", file=sys.stderr)
        return 1
    return 0 if status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
