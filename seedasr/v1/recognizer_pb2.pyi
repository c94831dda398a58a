from seedasr.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecognizeRequest(_message.Message):
    __slots__ = ("session_id", "audio", "config", "context")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    audio: _common_pb2.Audio
    config: _common_pb2.RecognitionConfig
    context: _common_pb2.RequestContext
    def __init__(self, session_id: _Optional[str] = ..., audio: _Optional[_Union[_common_pb2.Audio, _Mapping]] = ..., config: _Optional[_Union[_common_pb2.RecognitionConfig, _Mapping]] = ..., context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ...) -> None: ...

class RecognizeResponse(_message.Message):
    __slots__ = ("turn_id", "alternatives", "timings", "audio_seconds", "trace_id", "language", "language_probability")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    ALTERNATIVES_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    alternatives: _containers.RepeatedCompositeFieldContainer[_common_pb2.Alternative]
    timings: _common_pb2.StageTimings
    audio_seconds: float
    trace_id: str
    language: str
    language_probability: float
    def __init__(self, turn_id: _Optional[str] = ..., alternatives: _Optional[_Iterable[_Union[_common_pb2.Alternative, _Mapping]]] = ..., timings: _Optional[_Union[_common_pb2.StageTimings, _Mapping]] = ..., audio_seconds: _Optional[float] = ..., trace_id: _Optional[str] = ..., language: _Optional[str] = ..., language_probability: _Optional[float] = ...) -> None: ...

class StreamingConfig(_message.Message):
    __slots__ = ("session_id", "config", "context", "encoding", "sample_rate", "interim_results", "silence_ms")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    INTERIM_RESULTS_FIELD_NUMBER: _ClassVar[int]
    SILENCE_MS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    config: _common_pb2.RecognitionConfig
    context: _common_pb2.RequestContext
    encoding: str
    sample_rate: int
    interim_results: bool
    silence_ms: float
    def __init__(self, session_id: _Optional[str] = ..., config: _Optional[_Union[_common_pb2.RecognitionConfig, _Mapping]] = ..., context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., encoding: _Optional[str] = ..., sample_rate: _Optional[int] = ..., interim_results: _Optional[bool] = ..., silence_ms: _Optional[float] = ...) -> None: ...

class StreamingRecognizeRequest(_message.Message):
    __slots__ = ("streaming_config", "audio_chunk", "end_of_turn")
    STREAMING_CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CHUNK_FIELD_NUMBER: _ClassVar[int]
    END_OF_TURN_FIELD_NUMBER: _ClassVar[int]
    streaming_config: StreamingConfig
    audio_chunk: bytes
    end_of_turn: bool
    def __init__(self, streaming_config: _Optional[_Union[StreamingConfig, _Mapping]] = ..., audio_chunk: _Optional[bytes] = ..., end_of_turn: _Optional[bool] = ...) -> None: ...

class StreamingRecognizeResponse(_message.Message):
    __slots__ = ("is_final", "turn_index", "result", "turn_start_s", "turn_end_s", "stability")
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    TURN_INDEX_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    TURN_START_S_FIELD_NUMBER: _ClassVar[int]
    TURN_END_S_FIELD_NUMBER: _ClassVar[int]
    STABILITY_FIELD_NUMBER: _ClassVar[int]
    is_final: bool
    turn_index: int
    result: RecognizeResponse
    turn_start_s: float
    turn_end_s: float
    stability: float
    def __init__(self, is_final: _Optional[bool] = ..., turn_index: _Optional[int] = ..., result: _Optional[_Union[RecognizeResponse, _Mapping]] = ..., turn_start_s: _Optional[float] = ..., turn_end_s: _Optional[float] = ..., stability: _Optional[float] = ...) -> None: ...

class AppendTurnRequest(_message.Message):
    __slots__ = ("session_id", "turn")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    turn: _common_pb2.Turn
    def __init__(self, session_id: _Optional[str] = ..., turn: _Optional[_Union[_common_pb2.Turn, _Mapping]] = ...) -> None: ...

class AppendTurnResponse(_message.Message):
    __slots__ = ("turn_id", "turns")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    turns: int
    def __init__(self, turn_id: _Optional[str] = ..., turns: _Optional[int] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class GetSessionResponse(_message.Message):
    __slots__ = ("session_id", "turns")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    turns: _containers.RepeatedCompositeFieldContainer[_common_pb2.Turn]
    def __init__(self, session_id: _Optional[str] = ..., turns: _Optional[_Iterable[_Union[_common_pb2.Turn, _Mapping]]] = ...) -> None: ...

class DeleteSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class DeleteSessionResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class SubmitFeedbackRequest(_message.Message):
    __slots__ = ("turn_id", "corrected_text", "keywords")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    CORRECTED_TEXT_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    corrected_text: str
    keywords: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, turn_id: _Optional[str] = ..., corrected_text: _Optional[str] = ..., keywords: _Optional[_Iterable[str]] = ...) -> None: ...

class SubmitFeedbackResponse(_message.Message):
    __slots__ = ("accepted",)
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    def __init__(self, accepted: _Optional[bool] = ...) -> None: ...
