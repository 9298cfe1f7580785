"""Engine internals in-process: continuous batching must give the same tokens as
transformers' own generate(), whatever joins or leaves the batch."""
from __future__ import annotations

import threading
import time

import pytest
import torch

from conftest import SyncLoop
from llmops_serving.engine import Engine, QueueFull, SamplingParams, Sequence
from llmops_serving.sampling import sample


def _run(engine, tok, jobs, stagger=0.0):
    results, done = {}, threading.Semaphore(0)

    def sink_for(i):
        def sink(ev):
            results.setdefault(i, []).append(ev)
            if ev["type"] != "delta":
                done.release()
        return sink

    for i, (prompt, params) in enumerate(jobs):
        engine.submit([Sequence(tok(prompt)["input_ids"], params, SyncLoop(), sink_for(i))])
        if stagger:
            time.sleep(stagger)
    for _ in jobs:
        assert done.acquire(timeout=60)
    return {i: ("".join(e["text"] for e in evs), evs[-1]) for i, evs in results.items()}


def _reference(model, tok, prompt, n):
    ids = tok(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0)
    return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_continuous_batching_matches_generate(bpe_model):
    model, tok = bpe_model
    # batch size 3 < 7 jobs: rows leave and waiting jobs join mid-flight, with different prompt lengths
    eng = Engine(model, tok, max_batch_size=3, max_batch_tokens=64, max_queue=100, max_model_len=2048,
                 device=torch.device("cpu"))
    eng.start()
    try:
        prompts = ["The quick brown fox", "Hi", "A good log line names the request, the caller and the status",
                   "Rivers", "x y z", "Please summarize the following document in three sentences", "42"]
        jobs = [(p, SamplingParams(max_tokens=8 + 5 * i, temperature=0, ignore_eos=True)) for i, p in enumerate(prompts)]
        res = _run(eng, tok, jobs, stagger=0.005)
        for i, p in enumerate(prompts):
            text, last = res[i]
            assert last["completion_tokens"] == 8 + 5 * i
            assert text == _reference(model, tok, p, 8 + 5 * i), f"prompt {i}"
        assert eng.store.n == 0 and not eng.running
    finally:
        eng.stop()


def test_queue_bound_raises(bpe_model):
    model, tok = bpe_model
    eng = Engine(model, tok, max_batch_size=1, max_batch_tokens=64, max_queue=2, max_model_len=2048,
                 device=torch.device("cpu"))  # not started: nothing drains the queue
    p = SamplingParams(max_tokens=1)
    eng.submit([Sequence([1, 2], p, SyncLoop(), lambda e: None)])
    eng.submit([Sequence([1, 2], p, SyncLoop(), lambda e: None)])
    with pytest.raises(QueueFull):
        eng.submit([Sequence([1, 2], p, SyncLoop(), lambda e: None)])


def test_sampling_rules():
    logits = torch.tensor([[0.0, 5.0, 1.0, 2.0], [3.0, 0.0, 0.0, 0.0]])
    assert sample(logits, [0.0, 0.0], [0, 0], [1.0, 1.0], [None, None]) == [1, 0]
    # top_k=1 with any temperature picks the argmax
    g = [torch.Generator().manual_seed(i) for i in range(2)]
    assert sample(logits, [2.0, 2.0], [1, 1], [1.0, 1.0], g) == [1, 0]
    # tiny top_p keeps only the most likely token
    assert sample(logits, [1.0, 1.0], [0, 0], [0.01, 0.01], g) == [1, 0]
    # same seed, same draw; sampling spreads over tokens
    draws = [sample(torch.zeros(1, 50), [1.0], [0], [1.0], [torch.Generator().manual_seed(s)])[0] for s in range(40)]
    assert len(set(draws)) > 10
    again = [sample(torch.zeros(1, 50), [1.0], [0], [1.0], [torch.Generator().manual_seed(s)])[0] for s in range(40)]
    assert draws == again


def test_admission_respects_batch_rows_and_prefill_tokens(bpe_model):
    model, tok = bpe_model
    eng = Engine(model, tok, max_batch_size=3, max_batch_tokens=40, max_queue=100, max_model_len=2048,
                 device=torch.device("cpu"))  # not started: _admit is driven by hand
    p = SamplingParams(max_tokens=1)
    for n in (10, 10, 25, 5, 5):
        eng.submit([Sequence(list(range(1, n + 1)), p, SyncLoop(), lambda e: None)])
    first = eng._admit()
    # padded prefill cost is longest * count: 10,10 fit (20); adding 25 would cost 75 > 40
    assert [len(s.prompt_ids) for s in first] == [10, 10]
    eng.running.extend(first)
    second = eng._admit()
    assert [len(s.prompt_ids) for s in second] == [25]  # one row left; a lone prompt is always admitted
    assert len(eng.waiting) == 2


def test_hash_key_cli():
    import hashlib
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-c", "from llmops_serving.auth import hash_key_main; hash_key_main()",
                        "svc-a"], input="sk-abc\n", capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "svc-a:" + hashlib.sha256(b"sk-abc").hexdigest()
    r = subprocess.run([sys.executable, "-c", "from llmops_serving.auth import hash_key_main; hash_key_main()",
                        "svc-b", "--generate"], capture_output=True, text=True, check=True)
    key = r.stderr.strip()
    assert key.startswith("sk-") and r.stdout.strip() == "svc-b:" + hashlib.sha256(key.encode()).hexdigest()
