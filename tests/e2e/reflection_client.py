"""A client that knows no project code: it discovers Recognizer through server reflection.

    python reflection_client.py HOST:PORT WAV_FILE
Prints one JSON line: health status, services found, the recognised text, garbage-audio status.
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


def main() -> None:
    target, wav = sys.argv[1], sys.argv[2]
    channel = grpc.insecure_channel(target)
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    db = ProtoReflectionDescriptorDatabase(channel)
    services = db.get_services()
    name = next(s for s in services if s.endswith(".Recognizer"))
    pool = descriptor_pool.DescriptorPool(db)
    method = pool.FindServiceByName(name).methods_by_name["Recognize"]
    req_cls = message_factory.GetMessageClass(method.input_type)
    resp_cls = message_factory.GetMessageClass(method.output_type)
    call = channel.unary_unary(f"/{name}/Recognize", request_serializer=req_cls.SerializeToString,
                               response_deserializer=resp_cls.FromString)
    req = req_cls()
    req.audio.content = open(wav, "rb").read()
    resp = call(req, timeout=60)
    bad = req_cls()
    bad.audio.content = b"definitely not audio" * 20
    try:
        call(bad, timeout=10)
        bad_status = "OK"
    except grpc.RpcError as err:
        bad_status = err.code().name
    print(json.dumps({"health": health_pb2.HealthCheckResponse.ServingStatus.Name(health.status), "services": services,
                      "text": resp.alternatives[0].text if resp.alternatives else None, "has_turn_id": bool(resp.turn_id),
                      "garbage_status": bad_status}))


if __name__ == "__main__":
    main()
