from seedasr.v1 import common_pb2 as _common_pb2
from seedasr.v1 import recognizer_pb2 as _recognizer_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EncodeRequest(_message.Message):
    __slots__ = ("pcm16", "window_s")
    PCM16_FIELD_NUMBER: _ClassVar[int]
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    pcm16: bytes
    window_s: float
    def __init__(self, pcm16: _Optional[bytes] = ..., window_s: _Optional[float] = ...) -> None: ...

class EncodeResponse(_message.Message):
    __slots__ = ("speech", "ctc_text", "ctc_words", "engine", "encode_ms")
    SPEECH_FIELD_NUMBER: _ClassVar[int]
    CTC_TEXT_FIELD_NUMBER: _ClassVar[int]
    CTC_WORDS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    ENCODE_MS_FIELD_NUMBER: _ClassVar[int]
    speech: _common_pb2.Tensor
    ctc_text: str
    ctc_words: _containers.RepeatedCompositeFieldContainer[_common_pb2.WordTiming]
    engine: str
    encode_ms: float
    def __init__(self, speech: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., ctc_text: _Optional[str] = ..., ctc_words: _Optional[_Iterable[_Union[_common_pb2.WordTiming, _Mapping]]] = ..., engine: _Optional[str] = ..., encode_ms: _Optional[float] = ...) -> None: ...

class AssembleRequest(_message.Message):
    __slots__ = ("session_id", "context", "previous_text")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_TEXT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    context: _common_pb2.RequestContext
    previous_text: str
    def __init__(self, session_id: _Optional[str] = ..., context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., previous_text: _Optional[str] = ...) -> None: ...

class AssembleResponse(_message.Message):
    __slots__ = ("token_ids", "text", "turns_used", "bias_phrases", "correction_phrases", "written_text", "spellings")
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TURNS_USED_FIELD_NUMBER: _ClassVar[int]
    BIAS_PHRASES_FIELD_NUMBER: _ClassVar[int]
    CORRECTION_PHRASES_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_TEXT_FIELD_NUMBER: _ClassVar[int]
    SPELLINGS_FIELD_NUMBER: _ClassVar[int]
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    text: str
    turns_used: int
    bias_phrases: _containers.RepeatedScalarFieldContainer[str]
    correction_phrases: _containers.RepeatedScalarFieldContainer[str]
    written_text: str
    spellings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, token_ids: _Optional[_Iterable[int]] = ..., text: _Optional[str] = ..., turns_used: _Optional[int] = ..., bias_phrases: _Optional[_Iterable[str]] = ..., correction_phrases: _Optional[_Iterable[str]] = ..., written_text: _Optional[str] = ..., spellings: _Optional[_Iterable[str]] = ...) -> None: ...

class DecodeRequest(_message.Message):
    __slots__ = ("speech", "context_ids", "config", "bias_phrases", "correction_phrases", "context_text", "spellings", "audio_s", "partial", "urgent", "draft_tokens")
    SPEECH_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_IDS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    BIAS_PHRASES_FIELD_NUMBER: _ClassVar[int]
    CORRECTION_PHRASES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_TEXT_FIELD_NUMBER: _ClassVar[int]
    SPELLINGS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_S_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    URGENT_FIELD_NUMBER: _ClassVar[int]
    DRAFT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    speech: _common_pb2.Tensor
    context_ids: _containers.RepeatedScalarFieldContainer[int]
    config: _common_pb2.RecognitionConfig
    bias_phrases: _containers.RepeatedScalarFieldContainer[str]
    correction_phrases: _containers.RepeatedScalarFieldContainer[str]
    context_text: str
    spellings: _containers.RepeatedScalarFieldContainer[str]
    audio_s: float
    partial: bool
    urgent: bool
    draft_tokens: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, speech: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., context_ids: _Optional[_Iterable[int]] = ..., config: _Optional[_Union[_common_pb2.RecognitionConfig, _Mapping]] = ..., bias_phrases: _Optional[_Iterable[str]] = ..., correction_phrases: _Optional[_Iterable[str]] = ..., context_text: _Optional[str] = ..., spellings: _Optional[_Iterable[str]] = ..., audio_s: _Optional[float] = ..., partial: _Optional[bool] = ..., urgent: _Optional[bool] = ..., draft_tokens: _Optional[_Iterable[int]] = ...) -> None: ...

class DecodeResponse(_message.Message):
    __slots__ = ("alternatives", "decode_ms", "language", "language_probability", "tokens")
    ALTERNATIVES_FIELD_NUMBER: _ClassVar[int]
    DECODE_MS_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    alternatives: _containers.RepeatedCompositeFieldContainer[_common_pb2.Alternative]
    decode_ms: float
    language: str
    language_probability: float
    tokens: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, alternatives: _Optional[_Iterable[_Union[_common_pb2.Alternative, _Mapping]]] = ..., decode_ms: _Optional[float] = ..., language: _Optional[str] = ..., language_probability: _Optional[float] = ..., tokens: _Optional[_Iterable[int]] = ...) -> None: ...

class GetSampleRequest(_message.Message):
    __slots__ = ("turn_id",)
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    def __init__(self, turn_id: _Optional[str] = ...) -> None: ...

class ScoredHypothesis(_message.Message):
    __slots__ = ("text", "score", "wer", "weighted_wer")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    WER_FIELD_NUMBER: _ClassVar[int]
    WEIGHTED_WER_FIELD_NUMBER: _ClassVar[int]
    text: str
    score: float
    wer: float
    weighted_wer: float
    def __init__(self, text: _Optional[str] = ..., score: _Optional[float] = ..., wer: _Optional[float] = ..., weighted_wer: _Optional[float] = ...) -> None: ...

class RewardSample(_message.Message):
    __slots__ = ("turn_id", "reference", "hypotheses", "context", "found")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    HYPOTHESES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    reference: str
    hypotheses: _containers.RepeatedCompositeFieldContainer[ScoredHypothesis]
    context: str
    found: bool
    def __init__(self, turn_id: _Optional[str] = ..., reference: _Optional[str] = ..., hypotheses: _Optional[_Iterable[_Union[ScoredHypothesis, _Mapping]]] = ..., context: _Optional[str] = ..., found: _Optional[bool] = ...) -> None: ...
