"""Typed settings from environment variables, validated at start-up (fail fast, clear message)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional

from pydantic import Field, ValidationError, create_model, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.decoding import KNOBS, Knob


def _knob_field(knob: Knob) -> tuple[Any, Any]:
    """A decoding knob as an optional setting (None: the bundle's value) with the knob's range."""
    kind: Any = Literal[knob.choices] if knob.choices else knob.kind
    limits: dict[str, Any] = {"pattern": knob.pattern} if knob.pattern else {}
    if knob.low is not None:
        limits["gt" if knob.low_open else "ge"] = knob.low
    if knob.high is not None:
        limits["le"] = knob.high
    return Optional[kind], Field(None, description=knob.help, **limits)


# decoding: SEEDASR_<KNOB> for every knob of shared/decoding.py's table; unset (None) = the bundle's config.json
# "decoding" section; a value set here overrides the bundle for every request, a request's RecognitionConfig both
if TYPE_CHECKING:
    DecodingSettings = BaseSettings
else:
    DecodingSettings = create_model("DecodingSettings", __base__=BaseSettings, **{k.name: _knob_field(k) for k in KNOBS})


class Settings(DecodingSettings):
    model_config = SettingsConfigDict(env_prefix="SEEDASR_", extra="ignore")

    # model
    model: str = Field("", description="bundle directory; empty = bundles/default")
    engine: Literal["auto", "torch", "onnx", "tensorrt"] = "auto"
    # one intra-op thread per process: at this model size more threads cost CPU and add no speed (2-core
    # CPU, 30 reserved-voice utterances: 1 thread 0.08 CPU-s / 0.055 wall-s per audio s, 2 threads 0.14 / 0.073)
    threads: int = Field(1, ge=0, description="intra-op threads for torch/ONNX Runtime; 0 = library default")
    # a stream's final is awaited by a speaker who stopped talking: its decode may use more cores than a throughput
    # call (2 threads: 0.17 -> 0.12 s for a 3-5 s turn's search on the 2-core CPU)
    urgent_threads: int = Field(2, ge=0, description="intra-op threads for the decode of a stream's final; 0 = threads")
    # the ONNX encoder's pool sleeps when idle (shared/engines.py): 2 threads encode a 10 s window in 96 instead of
    # 168 ms for 8% more CPU, which every final and Recognize call waits for
    encoder_threads: int = Field(2, ge=0, description="intra-op threads of the ONNX Runtime encoder; 0 = threads")
    # serving
    host: str = "127.0.0.1"
    port: int = Field(50051, ge=0, le=65535)
    # threads for calls that are not admitted by the limits below (health, reflection, sessions, feedback,
    # internal services); the gRPC pool holds these plus max_calls plus max_streams, so health always answers
    workers: int = Field(8, ge=1)
    grace_s: float = Field(5.0, ge=0)
    deadline_s: float = Field(30.0, gt=0, description="deadline of every outgoing call")
    deadline_per_audio_s: float = Field(0.5, ge=0, description="seconds a Recognize call's deadline grows by per "
                                        "second of audio (long audio takes longer; a caller's shorter deadline still rules)")
    max_message_mb: int = Field(32, ge=1)
    # the embedded server also serves the internal Encoder/Context/Decoder/Reward services on its port
    expose_internal: bool = False
    # the HTTP front of the gateway and the embedded server (services/http: OpenAI's audio API, WebSocket
    # streaming, the live page, /metrics), with the gRPC port's keys, TLS and limits
    http_port: int = Field(8080, ge=-1, le=65535, description="-1 = no HTTP front; 0 = any free port")
    metrics_port: int = Field(-1, ge=-1, le=65535,
                              description="/metrics of a service without an HTTP front (encoder, context, decoder, "
                                          "reward); -1 = off")
    max_upload_mb: int = Field(25, ge=1, description="largest HTTP upload (OpenAI's limit); larger gets 413")

    # admission and request limits (services/guard.py, services/gateway/limits.py): checked before any work
    max_calls: int = Field(8, ge=1, description="concurrent Recognize calls; more get RESOURCE_EXHAUSTED")
    max_streams: int = Field(64, ge=1, description="concurrent StreamingRecognize calls")
    max_streams_per_client: int = Field(8, ge=1, description="per tenant, or per client address without auth")
    stream_idle_s: float = Field(30.0, gt=0, description="a stream with no message for this long is closed")
    max_stream_s: float = Field(3600.0, gt=0, description="audio seconds one stream may carry")
    stream_rate: float = Field(4.0, gt=0, description="audio may arrive this many times faster than real time")
    stream_burst_s: float = Field(20.0, ge=0, description="audio seconds a stream may send ahead of the rate")
    max_hotwords: int = Field(256, ge=0)
    max_hotword_chars: int = Field(100, ge=1)
    max_prompt_chars: int = Field(4000, ge=0)
    max_history_turns: int = Field(64, ge=0, description="history turns per request")
    max_history_chars: int = Field(16000, ge=0, description="characters of all history turns of a request")

    # security: TLS on every gRPC server (cert + key), mTLS when a client CA is given; clients verify servers
    # with tls_ca and present tls_client_cert/key. API keys: a file of "tenant sha256(key)" lines; when set,
    # every public call needs "authorization: Bearer KEY" and sessions are scoped to the key's tenant
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = Field("", description="CA of client certificates; set = mTLS required")
    tls_ca: str = Field("", description="CA that signed the servers' certificates (clients)")
    tls_client_cert: str = ""
    tls_client_key: str = ""
    tls_server_name: str = Field("", description="name to verify in server certificates (default: the host)")
    api_keys_file: str = ""
    # NATS: credentials file (NKEY/JWT) and TLS (CA, client cert/key); user:password can go in NATS_URL
    nats_creds: str = ""
    nats_tls_ca: str = ""
    nats_tls_cert: str = ""
    nats_tls_key: str = ""
    # "require": context/reward refuse to start on a Redis without appendonly (acknowledged writes could be
    # lost on a crash); "warn": log it; REDIS_URL carries credentials and TLS (rediss://user:pass@host)
    redis_durability: Literal["require", "warn"] = "warn"

    # mesh wiring
    transport: Literal["nats", "grpc"] = "nats"
    encoder_addr: str = "127.0.0.1:50061"
    context_addr: str = "127.0.0.1:50062"
    decoder_addr: str = "127.0.0.1:50063"
    nats_url: str = Field("nats://127.0.0.1:4222", validation_alias="NATS_URL")
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias="REDIS_URL")
    nats_chunk_kb: int = Field(512, ge=16, description="window size for payloads above NATS max_payload")

    # recognition
    max_audio_s: float = Field(600.0, gt=0)
    # a request without a language (or "auto") is identified among these (those the bundle knows): over all of
    # Whisper's 99, synthetic English voices read as Thai or Japanese now and then
    languages: str = Field("en,zh,es,fr,de", pattern=r"^\s*[a-z]{2,3}(\s*,\s*[a-z]{2,3})*\s*$",
                           description="comma-separated language codes that identification chooses among")
    language_min_probability: float = Field(0.5, ge=0, le=1, description="an identification less sure than this "
                                            "takes the first of SEEDASR_LANGUAGES (short turns are the unsure ones)")

    # sessions
    history_max_turns: int = Field(20, ge=1)
    history_ttl_s: int = Field(24 * 3600, ge=1)

    # reward side
    rl_store: str = Field("", description="redis (mesh) or a JSONL path (embedded); empty = by mode")
    celery_broker: str = ""
    # a task a killed worker had taken goes back to the queue after this long (kombu's Redis visibility
    # timeout); tasks take well under a second, and a redelivered one adds nothing (idempotent store)
    celery_visibility_s: float = Field(60.0, gt=0)
    bridge_durable: str = "reward-bridge"
    bridge_deliver: Literal["all", "new"] = Field("all", description="where a new bridge consumer starts in the stream")
    trace_file: str = Field("", description="also write spans as JSON lines here (tests, debugging)")
    # glibc malloc (shared/malloc.py): freed pages of many threads' arenas read as growth over an hour's soak
    malloc_arenas: int = Field(2, ge=0, description="glibc malloc arenas per server process; 0 = glibc's default")
    malloc_trim_s: float = Field(60.0, ge=0,
                                 description="seconds between a server's garbage collections and heap trims; 0 = never")
    log_level: str = "INFO"

    @field_validator("encoder_warps", check_fields=False)  # a field of DecodingSettings
    @classmethod
    def _warps_in_range(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and any(not 0.5 <= float(w) <= 2.0 for w in value.split(",")):
            raise ValueError("every warp must lie in [0.5, 2]")
        return value

    @field_validator("tls_cert", "tls_key", "tls_client_ca", "tls_ca", "tls_client_cert", "tls_client_key",
                     "api_keys_file", "nats_creds", "nats_tls_ca", "nats_tls_cert", "nats_tls_key")
    @classmethod
    def _file_exists(cls, value: str) -> str:
        if value and not Path(value).is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _pairs(self) -> Settings:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("SEEDASR_TLS_CERT and SEEDASR_TLS_KEY go together")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("SEEDASR_TLS_CLIENT_CA (mTLS) needs SEEDASR_TLS_CERT and SEEDASR_TLS_KEY")
        if bool(self.tls_client_cert) != bool(self.tls_client_key):
            raise ValueError("SEEDASR_TLS_CLIENT_CERT and SEEDASR_TLS_CLIENT_KEY go together")
        return self

    @property
    def language_candidates(self) -> tuple[str, ...]:
        return tuple(code.strip() for code in self.languages.split(","))

    @property
    def pool_threads(self) -> int:
        """gRPC server threads: the admitted heavy calls never take the last `workers` of them."""
        return self.workers + self.max_calls + self.max_streams

    @property
    def celery_broker_url(self) -> str:
        return self.celery_broker or self.redis_url


def load_settings(**overrides: object) -> Settings:
    """Read settings; on a bad value print which variable is wrong and exit with status 2."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            if not err["loc"]:  # a rule across settings: its message names the variables
                lines.append(f"  {err['msg'].removeprefix('Value error, ')}")
                continue
            name = str(err["loc"][0])
            env = name if name.isupper() else f"SEEDASR_{name.upper()}"
            lines.append(f"  {env}: {err['msg']} (got {err.get('input')!r})")
        print("invalid configuration:\n" + "\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
