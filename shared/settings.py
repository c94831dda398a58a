"""Typed settings from environment variables, validated at start-up (fail fast, clear message)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEEDASR_", extra="ignore")

    # model
    model: str = Field("", description="bundle directory; empty = bundles/default")
    engine: Literal["auto", "torch", "onnx", "tensorrt"] = "auto"
    # one intra-op thread per process: at this model size more threads cost CPU and add no speed (2-core
    # CPU, 30 reserved-voice utterances: 1 thread 0.08 CPU-s / 0.055 wall-s per audio s, 2 threads 0.14 / 0.073)
    threads: int = Field(1, ge=0, description="intra-op threads for torch/ONNX Runtime; 0 = library default")
    # filterbank frequency warps each audio is encoded under, the most confident encoding kept (test-time
    # vocal tract length normalisation, shared/recognition.py AsrCore.encode); "1" = off. Off by default: on the
    # first 60 utterances of each dev set, 0.88,0.94,1,1.06,1.12 took the eleventh run's bundle from 54.0 /
    # 30.5 / 43.9 / 28.5% to 53.5 / 28.5 / 43.0 / 26.8% (ked / festival slt / flite slt / espeak; data/tune
    # 22.7 -> 22.1%), but on all 200 the averaged bundle went from 47.0 / 29.8 / 40.2 / 27.7% to 46.9 / 30.7 /
    # 40.3 / 27.7% (pink10 68.8 -> 66.8%, data/tune 21.4 -> 21.6%), for about 30% more CPU (one encoder run per warp)
    encoder_warps: str = Field("1", pattern=r"^\s*[0-9.]+(\s*,\s*[0-9.]+)*\s*$",
                               description="comma-separated warps in [0.5, 2]")

    # serving
    host: str = "127.0.0.1"
    port: int = Field(50051, ge=0, le=65535)
    # threads for calls that are not admitted by the limits below (health, reflection, sessions, feedback,
    # internal services); the gRPC pool holds these plus max_calls plus max_streams, so health always answers
    workers: int = Field(8, ge=1)
    grace_s: float = Field(5.0, ge=0)
    deadline_s: float = Field(30.0, gt=0, description="deadline of every outgoing call")
    max_message_mb: int = Field(32, ge=1)
    # the embedded server also serves the internal Encoder/Context/Decoder/Reward services on its port
    expose_internal: bool = False

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

    # recognition defaults
    max_audio_s: float = Field(600.0, gt=0)
    # 8 beams and CTC weight 0.4 (from 4 and 0.5), before the word LM, on data/tune / data/tune_far:
    # 21.1 / 33.3% WER -> 19.4 / 33.3%; with the word LM (below) 18.4 / 29.3%. 12 beams since the LM runs
    # in int8 (stop 25, all 240 tuning utterances, tune / tune_far / tune_fortunes): fp32 8 beams 18.4 /
    # 25.9 / 24.3% (99 CPU-s), int8 8 beams 18.1 / 26.1 / 24.0% (85 s), int8 12 beams 17.3 / 27.2 / 23.3%
    # (103 s), int8 16 beams 17.7 / 27.2 / 23.0%, fp32 16 beams 17.9 / 26.2 / 23.4% (119 s)
    beam_size: int = Field(12, ge=1, le=32)
    # decoder LM linears in int8 (shared/model/quantize.py); 0 decodes in fp32
    lm_int8: bool = True
    nbest: int = Field(4, ge=1, le=32)
    # alpha of the joint beam search. With phrase bias and correction on (below), context rows 30-150
    # (80 keywords, 40 distractor rows): alpha 0.5 / 0.7 / 0.9 -> recall 87.5% each, WER 3.1 / 3.1 / 2.8%,
    # 0 insertions each; the highest alpha that inserts nothing there
    context_weight: float = Field(0.9, ge=0, le=1)
    # weight of the CTC head's prefix scores against the LM's in beam search (0 = LM only)
    ctc_weight: float = Field(0.4, ge=0, le=1)
    context_budget: int = Field(96, ge=0)
    # the context pass may only choose among the context-free pass's top k tokens (guards against
    # inserting context words nobody said). It also bounds the CTC-scored candidates. The shipped model
    # ranks rare names low: on context_eval rows 30-120 keyword recall was 5% at k=8, 32% at 32, 38% at 64, 45% at 128
    context_prune_k: int = Field(128, ge=1, le=1024)
    # score per token of a hotword or rare context word spelled out whole (shared/model/biasing.py);
    # 0 turns biasing off. Tuned on context_eval rows 30-120 (disjoint from EVAL.md's first 30), bundle
    # of the 6th run, k=128, alpha 0.5: recall / distractor rows with an insertion: bonus 3 57% / 0 of 30,
    # 4 58% / 0, 5 60% / 0, 6 62% / 0, 8 55% / 1, 10 53% / 3; on EVAL.md's 30 rows 3 gave 40%, 4 50%
    bias_bonus: float = Field(4.0, ge=0, le=50)
    # context phrase correction after the search (shared/model/phrase_correction.py): nats of CTC
    # log-likelihood a context phrase in place of a look-alike span may cost (0 = off), and how alike
    # the span must be spelled. Tuned on context_eval rows 30-150 (disjoint from EVAL.md's first 30) with
    # the 8th run's bundle, alpha 0.5, k 128, bonus 4, similarity 0.6, candidates from every turn with a
    # word below Zipf 5; keyword recall (80 keywords, 0 insertions in 40 distractor rows everywhere) /
    # context-set WER: margin 0 70% / 5.3%, 8 84% / 3.2%, 12 87.5% / 3.1%, 16 87.5% / 3.2% (before spelled
    # phrases were kept in place: 8 85% / 2.9%, 12 86% / 3.3%, 16 86% / 4.3%, 24 88% / 7.1%; 7th run's
    # bundle: 12 81% / 3.5%, 16 84% / 3.9%; similarity 0.7 gave 1-2 points less)
    correction_margin: float = Field(12.0, ge=0, le=100)
    correction_min_similarity: float = Field(0.6, gt=0, le=1)
    # score a finished word outside the bundle's lexicon.txt and the request's context words costs in
    # beam search (shared/model/lexicon.py); 0 = off. Tuned on data/tune (60 held-out sentences in
    # training voices, never the dev sets), 8th run's bundle, 100k-word lexicon: WER 23.7% at 0, 21.2 at 3,
    # 21.1 at 4, 22.1 at 5 (50k words: 20.9 at 4; 200k: 21.4; a penalty per piece or per character of the
    # word was worse, 23.4-26.9%). Context rows 30-150, alpha 0.9, bias 4, correction 12: recall 70/80 and
    # WER 2.77% at 0, 71/80 and 2.79% at 4 (68/80, 3.31% before words spelled like a context word were free)
    oov_penalty: float = Field(4.0, ge=0, le=50)
    # shallow fusion of the bundle's word n-gram LM (word_lm.arpa.gz, shared/model/word_lm.py): each finished
    # word adds word_lm_weight * ln P(word | two before) + word_bonus; 0 = off. Tuned on data/tune and
    # data/tune_far (held-out sentences in training voices and in unseen Kokoro blends + espeak Storm), 8 beams:
    # off 19.4 / 33.3% WER; weight 0.3 bonus 1: 18.4 / 29.3%; 0.4 / 1: 17.6 / 30.4%; 0.3 / 2: 18.4 / 29.7%;
    # 0.4 / 2: 18.4 / 30.2%; 0.5 / 2: 17.9 / 30.2%
    word_lm_weight: float = Field(0.3, ge=0, le=5)
    word_bonus: float = Field(1.0, ge=-20, le=20)
    # long audio is decoded in windows of at most this length, one per pause-separated sentence
    # (shared/recognition.py segment_audio); the shipped model trained on utterances of 1-16 s
    # (95% under 6 s). Long-form set (4.5 min): 53.2% WER with windows filled up to 8 s, 47.6% cut
    # at every pause, 42.8% when each window also sheds all but 0.2 s of the pauses it was cut in (and the
    # audio all but 0.5 s of its leading and trailing silence), 43.6% with the sentences recognised one by one
    segment_s: float = Field(8.0, gt=1)

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
    log_level: str = "INFO"

    @field_validator("encoder_warps")
    @classmethod
    def _warps_in_range(cls, value: str) -> str:
        if any(not 0.5 <= float(w) <= 2.0 for w in value.split(",")):
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
    def pool_threads(self) -> int:
        """gRPC server threads: the admitted heavy calls never take the last `workers` of them."""
        return self.workers + self.max_calls + self.max_streams

    @property
    def warps(self) -> tuple[float, ...]:
        return tuple(float(w) for w in self.encoder_warps.split(","))

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
