from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Audio(_message.Message):
    __slots__ = ("content", "encoding", "sample_rate", "channels")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    encoding: str
    sample_rate: int
    channels: int
    def __init__(self, content: _Optional[bytes] = ..., encoding: _Optional[str] = ..., sample_rate: _Optional[int] = ..., channels: _Optional[int] = ...) -> None: ...

class RecognitionConfig(_message.Message):
    __slots__ = ("language", "beam_size", "nbest", "context_weight", "word_timestamps", "disable_context", "bias_bonus", "correction_margin", "oov_penalty", "verbatim")
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    BEAM_SIZE_FIELD_NUMBER: _ClassVar[int]
    NBEST_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    WORD_TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    DISABLE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    BIAS_BONUS_FIELD_NUMBER: _ClassVar[int]
    CORRECTION_MARGIN_FIELD_NUMBER: _ClassVar[int]
    OOV_PENALTY_FIELD_NUMBER: _ClassVar[int]
    VERBATIM_FIELD_NUMBER: _ClassVar[int]
    language: str
    beam_size: int
    nbest: int
    context_weight: float
    word_timestamps: bool
    disable_context: bool
    bias_bonus: float
    correction_margin: float
    oov_penalty: float
    verbatim: bool
    def __init__(self, language: _Optional[str] = ..., beam_size: _Optional[int] = ..., nbest: _Optional[int] = ..., context_weight: _Optional[float] = ..., word_timestamps: _Optional[bool] = ..., disable_context: _Optional[bool] = ..., bias_bonus: _Optional[float] = ..., correction_margin: _Optional[float] = ..., oov_penalty: _Optional[float] = ..., verbatim: _Optional[bool] = ...) -> None: ...

class Turn(_message.Message):
    __slots__ = ("role", "text", "turn_id", "created_unix")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    role: str
    text: str
    turn_id: str
    created_unix: float
    def __init__(self, role: _Optional[str] = ..., text: _Optional[str] = ..., turn_id: _Optional[str] = ..., created_unix: _Optional[float] = ...) -> None: ...

class RequestContext(_message.Message):
    __slots__ = ("history", "hotwords", "prompt")
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    HOTWORDS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    history: _containers.RepeatedScalarFieldContainer[str]
    hotwords: _containers.RepeatedScalarFieldContainer[str]
    prompt: str
    def __init__(self, history: _Optional[_Iterable[str]] = ..., hotwords: _Optional[_Iterable[str]] = ..., prompt: _Optional[str] = ...) -> None: ...

class WordTiming(_message.Message):
    __slots__ = ("word", "start_s", "end_s", "confidence")
    WORD_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    word: str
    start_s: float
    end_s: float
    confidence: float
    def __init__(self, word: _Optional[str] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., confidence: _Optional[float] = ...) -> None: ...

class Alternative(_message.Message):
    __slots__ = ("text", "score", "words", "normalized_text", "confidence")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    NORMALIZED_TEXT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    text: str
    score: float
    words: _containers.RepeatedCompositeFieldContainer[WordTiming]
    normalized_text: str
    confidence: float
    def __init__(self, text: _Optional[str] = ..., score: _Optional[float] = ..., words: _Optional[_Iterable[_Union[WordTiming, _Mapping]]] = ..., normalized_text: _Optional[str] = ..., confidence: _Optional[float] = ...) -> None: ...

class StageTimings(_message.Message):
    __slots__ = ("decode_audio_ms", "encode_ms", "context_ms", "decode_ms", "total_ms")
    DECODE_AUDIO_MS_FIELD_NUMBER: _ClassVar[int]
    ENCODE_MS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_MS_FIELD_NUMBER: _ClassVar[int]
    DECODE_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    decode_audio_ms: float
    encode_ms: float
    context_ms: float
    decode_ms: float
    total_ms: float
    def __init__(self, decode_audio_ms: _Optional[float] = ..., encode_ms: _Optional[float] = ..., context_ms: _Optional[float] = ..., decode_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...

class Tensor(_message.Message):
    __slots__ = ("shape", "data")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...
