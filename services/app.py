"""Wiring: which servicers a process runs and how they reach their peers.

`serve_service(name)` runs one mesh service (peers over NATS, or direct gRPC when
SEEDASR_TRANSPORT=grpc); `build_embedded()` puts every servicer in one process with in-process
stubs, an in-memory history store, an in-process event bus and eager reward scoring.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from seedasr.v1 import internal_pb2, internal_pb2_grpc, recognizer_pb2
from services.channels import open_channel
from services.context.server import ContextService
from services.gateway.pipeline import Peers, TurnPipeline
from services.gateway.server import RecognizerService
from services.reward.bridge import RewardBridge, handle_event
from services.reward.scoring import score_feedback
from services.reward.server import RewardService
from services.runtime import Registration, RunningServer, expose_over_nats, start_server, wait_for_signal
from shared.bundle_store import default_bundle_dir
from shared.bus import GrpcStub, LocalStub, NatsConnection, NatsStub, connect_nats
from shared.decoding import decoding_for
from shared.events import FEEDBACK_SUBJECT, TURNS_SUBJECT, JetStreamBus, LocalBus
from shared.history import MemoryHistoryStore, RedisHistoryStore, check_durability
from shared.metrics import serve_metrics
from shared.reward_store import LocalRewardStore
from shared.settings import Settings
from shared.telemetry import setup_telemetry
from shared.tokenizer import Tokenizer

if TYPE_CHECKING:
    from shared.recognition import AsrCore

# The model's modules (torch) are imported only where a process runs the model (encoder, decoder, embedded):
# the gateway, context and reward images do not install torch (deploy/docker/Dockerfile, tests/unit/test_imports.py).
log = logging.getLogger(__name__)
SERVICES = ("encoder", "context", "decoder", "gateway", "reward")
DEFAULT_PORTS = {"encoder": 50061, "context": 50062, "decoder": 50063, "gateway": 50051, "reward": 50064}
INTERNAL = internal_pb2.DESCRIPTOR.services_by_name
RECOGNIZER = recognizer_pb2.DESCRIPTOR.services_by_name["Recognizer"]


def core_for(settings: Settings, half: str = "all") -> AsrCore:
    """The model as a process runs it: the encoder and decoder services each load only their half."""
    from shared.recognition import AsrCore

    return AsrCore.from_settings(settings, half)


def _reg_encoder(core: AsrCore) -> Registration:
    from services.encoder.server import EncoderService

    return Registration(EncoderService(core), INTERNAL["Encoder"])


def _reg_decoder(core: AsrCore, settings: Settings) -> Registration:
    from services.decoder.server import DecoderService

    return Registration(DecoderService(core, settings), INTERNAL["Decoder"])


def _reg_context(store: object, tok: Tokenizer, settings: Settings) -> Registration:
    return Registration(ContextService(store, tok, decoding_for(settings).context_budget),  # type: ignore[arg-type]
                        INTERNAL["Context"])


def _reg_gateway(pipeline: TurnPipeline, settings: Settings) -> Registration:
    return Registration(RecognizerService(pipeline, settings), RECOGNIZER, public=True)


def _public(gateway: Registration, settings: Settings) -> list[Registration]:
    """What clients call on the gRPC port: our Recognizer and Riva's API over the same servicer."""
    from services.gateway.riva import riva_registration
    from services.http.app import served_model_id

    return [gateway, riva_registration(gateway.servicer, served_model_id(settings))]


def attach_http(running: RunningServer, service: RecognizerService, settings: Settings,
                port: Optional[int] = None) -> None:
    """The HTTP front beside the gRPC server, sharing its guard; stops with it. Off when the port is -1."""
    from services.http.app import served_model_id
    from services.http.front import Front
    from services.http.server import HttpServer

    port = settings.http_port if port is None else port
    if port < 0:
        return
    http = HttpServer(Front(service, running.guard, settings, served_model_id(settings)), settings, port)
    try:
        running.http_port = http.start()
    except SystemExit:  # the gRPC server is up already: it goes down with the failure
        running.stop(0)
        raise
    running.before_stop.insert(0, http.begin_stop)
    running.on_stop.insert(0, lambda: http.join(1.5))


# ---- embedded ------------------------------------------------------------------------------------
def default_rl_store() -> Path:
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "seedasr" / "rl_samples.jsonl"


def build_embedded(settings: Settings, core: Optional[AsrCore] = None) -> tuple[list[Registration], TurnPipeline]:
    core = core or core_for(settings)
    store = MemoryHistoryStore(settings.history_max_turns, settings.history_ttl_s)
    reward_store = LocalRewardStore(Path(settings.rl_store) if settings.rl_store else default_rl_store())
    encoder, decoder = _reg_encoder(core), _reg_decoder(core, settings)
    context = _reg_context(store, core.tok, settings)
    bus = LocalBus()

    def eager_reward(turn_id: str, corrected: str, keywords: list[str]) -> None:
        score_feedback(reward_store, turn_id, corrected, keywords)

    def deliver(subject: str) -> Callable[[str, bytes], None]:
        def handler(_msg_id: str, payload: bytes) -> None:
            handle_event(subject, payload, reward_store, eager_reward)  # scored at once: nothing to wait for

        return handler

    for subject in (TURNS_SUBJECT, FEEDBACK_SUBJECT):
        bus.subscribe(subject, deliver(subject))
    t = settings.deadline_s
    peers = Peers(LocalStub(encoder.servicer, encoder.descriptor, t), LocalStub(context.servicer, context.descriptor, t),
                  LocalStub(decoder.servicer, decoder.descriptor, t))
    pipeline = TurnPipeline(peers, bus, settings)
    reward = Registration(RewardService(reward_store), INTERNAL["Reward"])
    return [_reg_gateway(pipeline, settings), encoder, context, decoder, reward], pipeline


def serve_embedded(settings: Settings, port: Optional[int] = None, http_port: Optional[int] = None) -> RunningServer:
    """gRPC on `port` (settings.port when None), the HTTP front on `http_port` (settings.http_port when None)."""
    setup_telemetry("seedasr-embedded", settings.trace_file, settings.log_level)
    regs, _ = build_embedded(settings)
    # the internal services answer anyone who can reach them (Reward.GetSample reads every tenant's
    # corrections): only the public Recognizer (and Riva's API) is served unless SEEDASR_EXPOSE_INTERNAL asks
    public = _public(regs[0], settings)
    running = start_server(settings, public + regs[1:] if settings.expose_internal else public, port)
    attach_http(running, regs[0].servicer, settings, http_port)
    return running


# ---- mesh ----------------------------------------------------------------------------------------
def _peers(settings: Settings, conn: Optional[NatsConnection]) -> Peers:
    t = settings.deadline_s
    if settings.transport == "nats":
        assert conn is not None
        return Peers(NatsStub(conn, INTERNAL["Encoder"], t), NatsStub(conn, INTERNAL["Context"], t),
                     NatsStub(conn, INTERNAL["Decoder"], t))
    opts = [("grpc.max_send_message_length", settings.max_message_mb << 20),
            ("grpc.max_receive_message_length", settings.max_message_mb << 20)]

    def stub(addr: str, cls: type) -> GrpcStub:
        channel = open_channel(addr, settings, opts)
        return GrpcStub(channel, cls(channel), t)

    return Peers(stub(settings.encoder_addr, internal_pb2_grpc.EncoderStub),
                 stub(settings.context_addr, internal_pb2_grpc.ContextStub),
                 stub(settings.decoder_addr, internal_pb2_grpc.DecoderStub))


def start_service(name: str, settings: Settings, port: Optional[int] = None) -> RunningServer:
    """Start one mesh service and return it running (tests call this; `seedasr serve NAME` waits)."""
    if name not in SERVICES:
        raise SystemExit(f"unknown service {name!r}; choose one of {', '.join(SERVICES)}")
    setup_telemetry(f"seedasr-{name}", settings.trace_file, settings.log_level)
    conn: Optional[NatsConnection] = None
    needs_nats = settings.transport == "nats" or name in ("gateway", "reward")
    if needs_nats:
        conn = connect_nats(settings, f"seedasr-{name}")
    if name in ("encoder", "decoder"):
        core = core_for(settings, name)
        regs = [_reg_encoder(core) if name == "encoder" else _reg_decoder(core, settings)]
    elif name == "context":
        store = RedisHistoryStore(settings.redis_url, settings.history_max_turns, settings.history_ttl_s)
        store.ping()
        check_durability(store.r, settings.redis_durability, settings.redis_url)
        bundle = Path(settings.model) if settings.model else default_bundle_dir()
        regs = [_reg_context(store, Tokenizer(bundle / "tokenizer.model"), settings)]
    elif name == "gateway":
        assert conn is not None
        regs = _public(_reg_gateway(TurnPipeline(_peers(settings, conn), JetStreamBus(conn), settings), settings),
                       settings)
    else:
        assert conn is not None
        regs, bridge = _reward(settings, conn)
    running = start_server(settings, regs, DEFAULT_PORTS[name] if port is None else port)
    metrics_port = serve_metrics(settings.metrics_port, settings.host)  # the gateway's too: plain HTTP for scrapes
    if name == "gateway":
        attach_http(running, regs[0].servicer, settings)
    else:
        running.http_port = metrics_port
    if name == "reward":
        running.before_stop.append(bridge.stop)
    if conn is not None:
        if settings.transport == "nats" and name in ("encoder", "context", "decoder"):
            expose_over_nats(running, conn, regs, settings.workers)
        running.on_stop.append(conn.close)
    return running


def _reward(settings: Settings, conn: NatsConnection) -> tuple[list[Registration], RewardBridge]:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    from services.reward.tasks import score_feedback_task
    from shared.reward_store import RedisRewardStore

    CeleryInstrumentor().instrument()
    store = RedisRewardStore(settings.redis_url)
    check_durability(store.r, settings.redis_durability, settings.redis_url)

    def enqueue(turn_id: str, corrected: str, keywords: list[str]) -> None:
        score_feedback_task.apply_async(args=(turn_id, corrected, keywords))

    bridge = RewardBridge(conn, store, enqueue, settings.bridge_durable, settings.bridge_deliver)
    bridge.start()
    reg = Registration(RewardService(store), INTERNAL["Reward"])
    return [reg], bridge


def serve_service(name: str, settings: Settings, port: Optional[int] = None) -> int:
    running = start_service(name, settings, port)
    return wait_for_signal(running, settings.grace_s)
