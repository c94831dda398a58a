"""Languages on the shipped bundle: a request's BCP-47 tag picks the model's language, none identifies it, Chinese
comes out in the script asked for, and the language reaches every output (gRPC, the manifest, OpenAI's verbose_json,
Riva's language_code)."""

from __future__ import annotations

import json
import time

import grpc
import pytest

from seedasr.v1 import common_pb2, recognizer_pb2, recognizer_pb2_grpc
from shared.bundle import DEFAULT_BUNDLE
from tests.conftest import ROOT

pytestmark = pytest.mark.weights  # the shipped bundle's weights (fetched by make setup)

ZH = ROOT / "samples" / "zh" / "call-wang.wav"  # 请帮我给王小明打个电话。 (Kokoro, samples/README.md)
EN = ROOT / "samples" / "dialogue" / "user-2.wav"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from services.app import serve_embedded
    from shared.settings import load_settings

    store = tmp_path_factory.mktemp("lang") / "rl.jsonl"
    running = serve_embedded(load_settings(model=str(DEFAULT_BUNDLE), rl_store=str(store), api_keys_file=""), port=0,
                             http_port=0)
    yield running
    running.stop(0.5)


def recognize(server, path, language: str = "") -> recognizer_pb2.RecognizeResponse:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        req = recognizer_pb2.RecognizeRequest(audio=common_pb2.Audio(content=path.read_bytes()),
                                              config=common_pb2.RecognitionConfig(language=language))
        return recognizer_pb2_grpc.RecognizerStub(ch).Recognize(req, timeout=120)


def test_mandarin_is_identified_and_written_in_simplified_characters(server) -> None:
    resp = recognize(server, ZH)
    assert resp.language == "zh" and resp.language_probability > 0.9
    text = resp.alternatives[0].text
    assert "王小明" in text and "电话" in text and "。" in text  # simplified, Chinese punctuation
    assert resp.alternatives[0].normalized_text.startswith("请 帮 我")  # one token per character: WER is CER


def test_a_traditional_tag_gives_traditional_characters(server) -> None:
    for tag in ("zh-TW", "zh-Hant", "zh-HK"):
        text = recognize(server, ZH, tag).alternatives[0].text
        assert "電話" in text, (tag, text)


def test_english_is_identified_as_english_and_reads_as_before(server) -> None:
    auto, given = recognize(server, EN), recognize(server, EN, "en-US")
    assert auto.language == given.language == "en" and given.language_probability == 1.0
    assert auto.alternatives[0].text == given.alternatives[0].text


def test_an_unknown_language_is_refused_with_the_list(server) -> None:
    with pytest.raises(grpc.RpcError) as err:
        recognize(server, ZH, "xx")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "zh" in err.value.details()


def test_the_language_reaches_the_http_and_manifest_outputs(server, tmp_path) -> None:
    import httpx

    from services.cli import main

    resp = httpx.post(f"http://127.0.0.1:{server.http_port}/v1/audio/transcriptions",
                      files={"file": ("a.wav", ZH.read_bytes())}, data={"response_format": "verbose_json"}, timeout=120)
    body = resp.json()
    assert body["language"] == "chinese" and body["segments"][0]["text"] == body["text"]  # no spaces between characters
    manifest, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    manifest.write_text(json.dumps({"id": "zh", "audio": str(ZH)}) + "\n")
    assert main(["transcribe", "--manifest", str(manifest), "--output", str(out), "--model", str(DEFAULT_BUNDLE)]) == 0
    line = json.loads(out.read_text())
    assert line["language"] == "zh" and "王小明" in line["text"]


def test_a_chinese_hotword_is_written_as_given_over_its_homophone(server) -> None:
    """王筱明 sounds as the sample's 王小明 does; its rare 筱 is two byte tokens that BPE merges differently inside a
    sentence, so the phrase is biased by the bytes spelled (shared/model/byte_biasing.py), not by its own tokens."""
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        stub = recognizer_pb2_grpc.RecognizerStub(ch)
        for hotword in ("王筱明", "王晓明"):
            req = recognizer_pb2.RecognizeRequest(audio=common_pb2.Audio(content=ZH.read_bytes()),
                                                  config=common_pb2.RecognitionConfig(language="zh"),
                                                  context=common_pb2.RequestContext(hotwords=[hotword]))
            assert hotword in stub.Recognize(req, timeout=120).alternatives[0].text


def test_a_streamed_mandarin_turn_says_its_language_in_interims_and_final(server) -> None:
    import soundfile as sf

    samples, rate = sf.read(ZH, dtype="int16")
    pcm = samples.tobytes()
    step = rate // 10 * 2  # 100 ms chunks

    def requests():
        yield recognizer_pb2.StreamingRecognizeRequest(streaming_config=recognizer_pb2.StreamingConfig(
            sample_rate=rate, interim_results=True, silence_ms=-1))
        for i in range(0, len(pcm), step):
            yield recognizer_pb2.StreamingRecognizeRequest(audio_chunk=pcm[i:i + step])
            time.sleep(0.1)

    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        responses = list(recognizer_pb2_grpc.RecognizerStub(ch).StreamingRecognize(requests(), timeout=120))
    interims, finals = [r for r in responses if not r.is_final], [r for r in responses if r.is_final]
    assert len(finals) == 1 and finals[0].result.language == "zh" and "王小明" in finals[0].result.alternatives[0].text
    assert interims and all(r.result.language == "zh" for r in interims)


def test_chinese_context_reaches_the_decoder() -> None:
    """The context service keeps text in other scripts as written (the English normaliser would drop it)."""
    from shared.context import ContextInput, assemble_context
    from shared.tokenizer import Tokenizer

    tok = Tokenizer(DEFAULT_BUNDLE / "tokenizer.model")
    assembled = assemble_context(tok, ContextInput(hotwords=["王小明"], prompt="请给王小明打电话",
                                                   turns=["我想找王小明"]), 200)
    assert "王小明" in assembled.bias_phrases
    assert "请给王小明打电话" in assembled.written_text and "我想找王小明" in assembled.written_text


def test_chinese_words_are_characters_and_punctuation_stays_with_them() -> None:
    from shared.model.whisper_align import word_spans
    from shared.model.whisper_decoder import WhisperTokens
    from shared.model.whisper_weights import ct2_model_dir

    tokens = WhisperTokens(ct2_model_dir() / "tokenizer.json")
    ids = tokens.encode("请帮我，给王小明打电话。", lead_space=False)
    words = [tokens.decode(ids[a:b]) for a, b in word_spans(tokens.pieces(), ids, tokens.decode)]
    assert "".join(words) == "请帮我，给王小明打电话。"
    assert "帮" in words and "我，" in words and "话。" in words  # 帮 is two byte tokens: still its own word
