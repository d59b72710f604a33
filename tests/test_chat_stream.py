"""Reading providers' streamed chat answers (pure): the event-stream format and each
provider's events."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overlay_sdk.adapters.chat_stream import (
    STREAMERS,
    Piece,
    SSEDecoder,
    Transcript,
    anthropic_piece,
    cohere_piece,
    openai_piece,
    stream_body,
)

STREAM = (b": a comment\r\nevent: first\r\ndata: one\r\n\r\n"
          b"data: two\ndata: lines\n\n"
          b"event: empty\n\n"  # no data: nothing is dispatched
          b"data:no space\r\rdata: {\"x\": 1}\n\n")
EVENTS = [("first", "one"), ("message", "two\nlines"), ("message", "no space"),
          ("message", '{"x": 1}')]


def test_the_event_stream_rules() -> None:
    assert SSEDecoder().feed(STREAM) == EVENTS


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_events_do_not_depend_on_how_bytes_arrive(cuts: list[int]) -> None:
    decoder = SSEDecoder()
    edges = [0, *sorted(cuts), len(STREAM)]
    got = []
    for start, end in itertools.pairwise(edges):
        got.extend(decoder.feed(STREAM[start:end]))
    assert got == EVENTS


def test_utf8_split_across_chunks() -> None:
    data = "data: héllo ✓\n\n".encode()
    decoder = SSEDecoder()
    got = [e for i in range(len(data)) for e in decoder.feed(data[i:i + 1])]
    assert got == [("message", "héllo ✓")]


def test_openai_chunks() -> None:
    text = openai_piece("message", json.dumps({"choices": [{"index": 0, "delta": {
        "content": "Hi"}, "finish_reason": None}]}))
    assert text == Piece(text="Hi")
    end = openai_piece("message", json.dumps({"choices": [{"index": 0, "delta": {},
                                                           "finish_reason": "stop"}]}))
    assert end == Piece(finish_reason="stop")
    usage = openai_piece("message", json.dumps({"choices": [], "usage": {
        "prompt_tokens": 9, "completion_tokens": 4}}))
    assert usage == Piece(tokens_in=9, tokens_out=4)
    assert openai_piece("message", "[DONE]") == Piece(done=True)
    assert openai_piece("message", '{"error": {"message": "overloaded"}}') == Piece(
        error="overloaded")
    with pytest.raises(ValueError, match="not JSON"):
        openai_piece("message", "{broken")


def test_anthropic_events() -> None:
    def piece(body: dict[str, object]) -> Piece | None:
        return anthropic_piece(str(body["type"]), json.dumps(body))

    assert piece({"type": "message_start", "message": {"usage": {"input_tokens": 7,
                                                                 "output_tokens": 1}}}) == (
        Piece(tokens_in=7))
    assert piece({"type": "ping"}) is None
    assert piece({"type": "content_block_delta", "index": 0,
                  "delta": {"type": "text_delta", "text": "Hi"}}) == Piece(text="Hi")
    assert piece({"type": "content_block_delta", "index": 0,
                  "delta": {"type": "input_json_delta", "partial_json": "{"}}) is None
    assert piece({"type": "message_delta", "delta": {"stop_reason": "max_tokens"},
                  "usage": {"output_tokens": 12}}) == Piece(finish_reason="max_tokens",
                                                            tokens_out=12)
    assert piece({"type": "message_stop"}) == Piece(done=True)
    assert piece({"type": "error", "error": {"type": "overloaded_error",
                                             "message": "Overloaded"}}) == Piece(
        error="Overloaded")


def test_cohere_events() -> None:
    delta = {"type": "content-delta", "index": 0,
             "delta": {"message": {"content": {"text": "Hi"}}}}
    assert cohere_piece("content-delta", json.dumps(delta)) == Piece(text="Hi")
    end = {"type": "message-end", "delta": {"finish_reason": "MAX_TOKENS", "usage": {
        "tokens": {"input_tokens": 5.0, "output_tokens": 2.0}}}}
    assert cohere_piece("message-end", json.dumps(end)) == Piece(
        finish_reason="MAX_TOKENS", tokens_in=5, tokens_out=2, done=True)
    assert cohere_piece("message-start", '{"type": "message-start"}') is None


def test_a_transcript_keeps_the_text_the_reason_and_the_last_counts() -> None:
    transcript = Transcript()
    for piece in (Piece(tokens_in=7), Piece(text="Hel"), Piece(text="lo"),
                  Piece(finish_reason="end_turn", tokens_out=1), Piece(tokens_out=2),
                  Piece(done=True)):
        transcript.add(piece)
    result = transcript.result()
    assert (result.content, result.finish_reason, result.tokens_in, result.tokens_out) == (
        "Hello", "end_turn", 7, 2)
    assert transcript.done


def test_stream_bodies_ask_for_usage_where_it_must_be_asked_for() -> None:
    body = {"model": "m", "messages": [], "stream": False}
    assert stream_body(body, STREAMERS["openai"]) == {
        "model": "m", "messages": [], "stream": True,
        "stream_options": {"include_usage": True}}
    assert stream_body(body, STREAMERS["anthropic"]) == {"model": "m", "messages": [],
                                                         "stream": True}
    assert body["stream"] is False  # not changed in place
