"""Chunked prefill: a long prompt joining a running batch is prefilled one chunk per
engine step, so running requests keep getting tokens, and greedy outputs do not change.

The engine is driven step by step in this thread (not started), so every number here
is deterministic: "work between two tokens" is counted in prompt tokens the model
forwarded (`Engine.prefill_tokens`), not in wall-clock time.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import SyncLoop
from llmops_serving.engine import Engine, SamplingParams, Sequence

CHUNK = 16


@pytest.fixture(scope="module")
def long_ids(bpe_model):
    _, tok = bpe_model
    corpus = (Path(__file__).resolve().parents[1] / "src/llmops_serving/data/corpus.txt").read_text()
    ids = tok(" ".join(corpus.split()[:200]))["input_ids"][:150]
    # not a multiple of CHUNK: the last chunk is a short one
    assert len(ids) == 150 and len(ids) % CHUNK
    return ids


def _drive(engine, tok, short_prompts, long_ids, join_after=4, short_tokens=30, long_tokens=12):
    """Start the short requests, step `join_after` times, submit the long prompt, step to the end.

    Returns per request the generated token ids and, for each token, the engine's
    `prefill_tokens` counter when the token was delivered.
    """
    done: dict[int, dict] = {}

    def sink_for(i):
        def sink(ev):
            if ev["type"] == "done":
                done[i] = ev
        return sink

    params = SamplingParams(max_tokens=short_tokens, temperature=0, ignore_eos=True)
    seqs = [Sequence(tok(p)["input_ids"], params, SyncLoop(), sink_for(i)) for i, p in enumerate(short_prompts)]
    engine.submit(seqs)
    long_seq = Sequence(list(long_ids), SamplingParams(max_tokens=long_tokens, temperature=0, ignore_eos=True),
                        SyncLoop(), sink_for(len(short_prompts)))
    seqs.append(long_seq)
    # one mark per generated token (not per event: a token whose text is held back sends none)
    marks: dict[int, list[int]] = {i: [] for i in range(len(seqs))}
    with torch.inference_mode():
        for step in range(500):
            if step == join_after:
                engine.submit([long_seq])
            if not (engine.waiting or engine.prefilling or engine.running) and step > join_after:
                break
            events: list = []
            engine._step(events)
            engine._dispatch(events)
            for i, s in enumerate(seqs):
                marks[i] += [engine.prefill_tokens] * (len(s.output_ids) - len(marks[i]))
    assert len(done) == len(seqs), "the engine did not finish every request"
    return {i: {"ids": s.output_ids, "marks": marks[i]} for i, s in enumerate(seqs)}


def _engine(model, tok, chunk):
    return Engine(model, tok, max_batch_size=4, max_batch_tokens=512, max_queue=16, max_model_len=2048,
                  device=torch.device("cpu"), prefill_chunk_tokens=chunk)


def _max_prefill_between_tokens(marks):
    return max(b - a for a, b in zip(marks, marks[1:]))


SHORT = ["The quick brown fox", "A good log line names the request", "Rivers"]


def test_greedy_tokens_identical_with_and_without_chunking(bpe_model, long_ids):
    model, tok = bpe_model
    plain = _drive(_engine(model, tok, 0), tok, SHORT, long_ids)
    for chunk in (CHUNK, 7):
        chunked = _drive(_engine(model, tok, chunk), tok, SHORT, long_ids)
        for i in plain:
            assert chunked[i]["ids"] == plain[i]["ids"], f"chunk {chunk}, request {i}"
    # and both agree with transformers' own generate() on the long prompt alone
    with torch.inference_mode():
        ref = model.generate(torch.tensor([long_ids]), max_new_tokens=12, do_sample=False, eos_token_id=None,
                             pad_token_id=0)[0, len(long_ids):].tolist()
    assert plain[len(SHORT)]["ids"] == ref


def test_long_prompt_does_not_stall_running_requests(bpe_model, long_ids):
    model, tok = bpe_model
    eng = _engine(model, tok, CHUNK)
    res = _drive(eng, tok, SHORT, long_ids)
    for i in range(len(SHORT)):
        # the whole long prompt was forwarded while this request was running ...
        assert res[i]["marks"][-1] - res[i]["marks"][0] == len(long_ids)
        # ... yet never more than one chunk of it between two of its tokens
        assert _max_prefill_between_tokens(res[i]["marks"]) <= CHUNK, f"request {i} waited for more than a chunk"
    # chunk by chunk: ceil(150 / 16) = 10 steps of prefill, a token for every running row each step
    assert eng.prefill_tokens == sum(len(tok(p)["input_ids"]) for p in SHORT) + len(long_ids)
    assert not eng.prefilling and not eng.running and eng.store.n == 0


def test_without_chunking_the_whole_prompt_lands_between_two_tokens(bpe_model, long_ids):
    # the measure above is sensitive: with chunking off one gap holds the whole prefill
    model, tok = bpe_model
    res = _drive(_engine(model, tok, 0), tok, SHORT, long_ids)
    for i in range(len(SHORT)):
        assert _max_prefill_between_tokens(res[i]["marks"]) == len(long_ids)


def test_cancelled_while_prefilling_frees_its_row(bpe_model, long_ids):
    model, tok = bpe_model
    eng = _engine(model, tok, CHUNK)
    seen = []
    seq = Sequence(list(long_ids), SamplingParams(max_tokens=4, temperature=0), SyncLoop(), seen.append)
    eng.submit([seq])
    with torch.inference_mode():
        events: list = []
        eng._step(events)
        assert list(eng.prefilling) == [seq] and seq.prefilled == CHUNK and eng.in_flight == 1
        seq.cancelled = True
        eng._step(events)
    assert not eng.prefilling and eng.in_flight == 0 and eng.store.n == 0 and not seen


def test_prompt_at_chunk_size_is_not_chunked(bpe_model, long_ids):
    model, tok = bpe_model
    eng = _engine(model, tok, CHUNK)
    eng.submit([Sequence(list(long_ids[:CHUNK]), SamplingParams(max_tokens=2), SyncLoop(), lambda e: None),
                Sequence(list(long_ids[:CHUNK + 1]), SamplingParams(max_tokens=2), SyncLoop(), lambda e: None)])
    admitted = eng._admit()
    assert [len(s.prompt_ids) for s in admitted] == [CHUNK]
    assert [len(s.prompt_ids) for s in eng.prefilling] == [CHUNK + 1]
