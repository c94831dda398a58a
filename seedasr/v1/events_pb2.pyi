from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TurnEvent(_message.Message):
    __slots__ = ("turn_id", "session_id", "tenant", "context", "trace_id", "audio_seconds", "created_unix", "nbest")
    class Hypothesis(_message.Message):
        __slots__ = ("text", "score")
        TEXT_FIELD_NUMBER: _ClassVar[int]
        SCORE_FIELD_NUMBER: _ClassVar[int]
        text: str
        score: float
        def __init__(self, text: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    NBEST_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    session_id: str
    tenant: str
    context: str
    trace_id: str
    audio_seconds: float
    created_unix: float
    nbest: _containers.RepeatedCompositeFieldContainer[TurnEvent.Hypothesis]
    def __init__(self, turn_id: _Optional[str] = ..., session_id: _Optional[str] = ..., tenant: _Optional[str] = ..., context: _Optional[str] = ..., trace_id: _Optional[str] = ..., audio_seconds: _Optional[float] = ..., created_unix: _Optional[float] = ..., nbest: _Optional[_Iterable[_Union[TurnEvent.Hypothesis, _Mapping]]] = ...) -> None: ...

class FeedbackEvent(_message.Message):
    __slots__ = ("turn_id", "corrected_text", "keywords", "tenant", "created_unix")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    CORRECTED_TEXT_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    corrected_text: str
    keywords: _containers.RepeatedScalarFieldContainer[str]
    tenant: str
    created_unix: float
    def __init__(self, turn_id: _Optional[str] = ..., corrected_text: _Optional[str] = ..., keywords: _Optional[_Iterable[str]] = ..., tenant: _Optional[str] = ..., created_unix: _Optional[float] = ...) -> None: ...
