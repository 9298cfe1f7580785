"""Side-by-side benchmark: llmops-serving vs `transformers serve --continuous-batching`.

Same model (random-weight Llama, hidden 512, 8 layers, vocab 4000, ~28M params,
built locally - nothing is downloaded), same prompts, same load generator
(closed loop: C concurrent clients, each sending its next request when the last
one finished, streaming, greedy, max_tokens fixed). Prints, per server and
concurrency: requests/s, output tokens/s, TTFT and end-to-end latency p50/p95,
plus the in-process ceiling: model.generate() on a static batch of C prompts.

`--long-prompt N` runs a different scenario instead (chunked prefill, issue 16 item 5):
steady short traffic (C closed-loop streaming clients) into which one prompt of N
tokens is sent, against two llmops-serving processes, chunked prefill on and off.
It reports the short requests' inter-token latency (gap between streamed chunks)
and TTFT while the long prompt was being prefilled, and over the whole run.

Only loopback traffic; every loop is bounded by a request count and a timeout.
Usage: .venv/bin/python bench/bench.py [--concurrency 1,4,16,64] [--max-tokens 128]
       .venv/bin/python bench/bench.py --long-prompt 1536 [--model-dir DIR] [--concurrency 4]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values, q):
    v = sorted(x for x in values if x == x)  # NaN (a request that streamed no text) has no rank
    if not v:
        return float("nan")
    return v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))]


def ensure_model(path: Path) -> Path:
    if not (path / "config.json").exists():
        from llmops_serving.tiny_model import build
        build(path, vocab_size=4000, hidden_size=512, num_layers=8, num_heads=8, intermediate_size=1280,
              max_position_embeddings=2048, seed=0, tokenizer="bpe")
    return path


def prompts(n: int) -> list[str]:
    text = (Path(__file__).resolve().parents[1] / "src/llmops_serving/data/corpus.txt").read_text().splitlines()
    return [f"{text[i % len(text)]} {text[(i * 7 + 3) % len(text)]}" for i in range(n)]


class Proc:
    def __init__(self, cmd, env, log):
        self.log = open(log, "wb")
        self.p = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


def wait_http(url: str, proc: Proc, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.p.poll() is not None:
            raise RuntimeError(f"server exited ({proc.p.returncode}), see {proc.log.name}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready after {timeout}s")


async def one_request(client, url, model, prompt, max_tokens, chunk_times=None):
    """Stream one completion; return (TTFT, end-to-end, completion tokens).

    `chunk_times`, when given, receives the arrival time (perf_counter) of every
    chunk that carries text: the inter-token gaps of the long-prompt scenario."""
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    ttft = None
    tokens = 0
    async with client.stream("POST", url + "/v1/completions", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            ev = json.loads(line[6:])
            if ev.get("choices") and ev["choices"][0].get("text"):
                if ttft is None:
                    ttft = time.perf_counter() - t0
                if chunk_times is not None:
                    chunk_times.append(time.perf_counter())
            if ev.get("usage"):
                tokens = ev["usage"]["completion_tokens"]
    return ttft if ttft is not None else float("nan"), time.perf_counter() - t0, tokens


async def run_level(url, model, conc, n_requests, max_tokens, plist, timeout):
    queue = list(range(n_requests))
    results = []

    async def worker(client):
        while queue:
            i = queue.pop()
            results.append(await one_request(client, url, model, plist[i % len(plist)], max_tokens))

    limits = httpx.Limits(max_connections=conc + 4, max_keepalive_connections=conc + 4)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(worker(client) for _ in range(conc))), timeout)
        wall = time.perf_counter() - t0
    ttfts = [r[0] for r in results]
    e2es = [r[1] for r in results]
    toks = sum(r[2] for r in results)
    return {"concurrency": conc, "requests": len(results), "wall_s": wall, "req_per_s": len(results) / wall,
            "out_tok_per_s": toks / wall, "out_tokens": toks, "ttft_p50": pct(ttfts, 50), "ttft_p95": pct(ttfts, 95),
            "e2e_p50": pct(e2es, 50), "e2e_p95": pct(e2es, 95)}


def bench_server(name, url, model, levels, max_tokens, plist, n_for, warm=True):
    out = []
    if warm:
        asyncio.run(run_level(url, model, 2, 2, 16, plist, 600))  # warm-up (model load for lazy servers)
    for c in levels:
        load_before = os.getloadavg()[0]
        r = asyncio.run(run_level(url, model, c, n_for(c), max_tokens, plist, 900))
        r["server"] = name
        # 1-minute load average around the level: other work on the machine skews every number
        r["loadavg_1m"] = round(max(load_before, os.getloadavg()[0]), 2)
        print(f"  {name:<22} c={c:<3} {r['out_tok_per_s']:8.1f} tok/s  {r['req_per_s']:6.2f} req/s  "
              f"ttft p50 {r['ttft_p50']:.3f}s  e2e p95 {r['e2e_p95']:.2f}s  load {r['loadavg_1m']}", flush=True)
        out.append(r)
    return out


def static_ceiling(model_dir, levels, max_tokens, plist, threads):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    if threads:
        torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    out = []
    for c in levels:
        enc = tok(plist[:c], return_tensors="pt", padding=True)
        with torch.inference_mode():
            model.generate(**enc, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)  # warm-up
            t0 = time.perf_counter()
            model.generate(**enc, max_new_tokens=max_tokens, min_new_tokens=max_tokens, do_sample=False,
                           pad_token_id=tok.pad_token_id)
            wall = time.perf_counter() - t0
        r = {"server": "static model.generate", "concurrency": c, "out_tok_per_s": c * max_tokens / wall,
             "wall_s": wall, "loadavg_1m": round(os.getloadavg()[0], 2)}
        print(f"  static generate        c={c:<3} {r['out_tok_per_s']:8.1f} tok/s", flush=True)
        out.append(r)
    return out


def long_prompt_text(model_dir: Path, n_tokens: int) -> str:
    """Corpus text cut to exactly n_tokens tokens of the served model's tokenizer."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir)
    corpus = (HERE.parent / "src/llmops_serving/data/corpus.txt").read_text().split()
    words = []
    while len(tok(" ".join(words))["input_ids"]) < n_tokens:
        words += corpus
    return tok.decode(tok(" ".join(words))["input_ids"][:n_tokens], skip_special_tokens=True)


async def long_prompt_scenario(url, model, conc, short_tokens, plist, long_prompt, delay=2.0, timeout=600):
    """C short clients stream back to back; after `delay` s one long prompt joins; the
    clients stop starting requests once the long one has finished."""
    shorts = []   # (start, ttft, chunk arrival times)
    long_done = asyncio.Event()
    long_res = {}

    async def short_client(client, k):
        i = k
        while not long_done.is_set():
            times: list[float] = []
            start = time.perf_counter()
            ttft, _, _ = await one_request(client, url, model, plist[i % len(plist)], short_tokens, times)
            shorts.append((start, ttft, times))
            i += conc

    async def long_client(client):
        await asyncio.sleep(delay)
        long_res["sent"] = time.perf_counter()
        ttft, e2e, _ = await one_request(client, url, model, long_prompt, 16)
        long_res.update(ttft=ttft, first=long_res["sent"] + ttft, e2e=e2e)
        long_done.set()

    limits = httpx.Limits(max_connections=conc + 4, max_keepalive_connections=conc + 4)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        await asyncio.wait_for(asyncio.gather(long_client(client), *(short_client(client, k)
                                                                      for k in range(conc))), timeout)
    lo, hi = long_res["sent"], long_res["first"]
    gaps_all, gaps_win, ttft_all, ttft_win = [], [], [], []
    for start, ttft, times in shorts:
        ttft_all.append(ttft)
        if start <= hi and start + ttft >= lo:  # waited for its first token while the long prompt prefilled
            ttft_win.append(ttft)
        for a, b in zip(times, times[1:]):
            gaps_all.append(b - a)
            if b >= lo and a <= hi:  # the gap overlaps the long prompt's prefill
                gaps_win.append(b - a)
    return {"short_requests": len(shorts), "long_ttft": long_res["ttft"], "long_e2e": long_res["e2e"],
            "itl_p50": pct(gaps_all, 50), "itl_p95": pct(gaps_all, 95), "itl_max": max(gaps_all),
            "itl_win_p95": pct(gaps_win, 95), "itl_win_max": max(gaps_win, default=float("nan")),
            "ttft_p95": pct(ttft_all, 95), "ttft_win_p95": pct(ttft_win, 95), "ttft_win_n": len(ttft_win)}


def bench_long_prompt(a, model_dir: Path, venv_bin: Path, logs: Path, env: dict) -> None:
    conc = int(a.concurrency.split(",")[0])
    plist = prompts(128)
    long_prompt = long_prompt_text(model_dir, a.long_prompt)
    results = []
    chunks = [int(x) for x in a.prefill_chunk.split(",")] + [0]
    for chunk in chunks:
        name = f"chunk {chunk}" if chunk else "chunked prefill off"
        port = free_port()
        p = Proc([str(venv_bin / "llmops-serve")], {**env, "LLMOPS_MODEL_PATH": str(model_dir),
                 "LLMOPS_AUTH_ENABLED": "false", "LLMOPS_HOST": "127.0.0.1", "LLMOPS_PORT": str(port),
                 "LLMOPS_MAX_BATCH_SIZE": str(conc + 1), "LLMOPS_PREFILL_CHUNK_TOKENS": str(chunk),
                 "LLMOPS_LOG_LEVEL": "warning", "LLMOPS_SERVED_MODEL_NAME": "bench"},
                 logs / f"long-prompt-chunk{chunk}.log")
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(url + "/readyz", p)
            asyncio.run(run_level(url, "bench", 2, 2, 16, plist, 600))  # warm-up
            load_before = os.getloadavg()[0]
            r = asyncio.run(long_prompt_scenario(url, "bench", conc, a.max_tokens, plist, long_prompt))
        finally:
            p.stop()
        r.update(server=f"llmops-serving, {name}", chunk=chunk, concurrency=conc, long_tokens=a.long_prompt,
                 loadavg_1m=round(max(load_before, os.getloadavg()[0]), 2))
        print(f"  {r['server']:<36} short ITL p95 {r['itl_win_p95']:.3f}s during prefill, "
              f"max {r['itl_max']:.3f}s; long TTFT {r['long_ttft']:.2f}s", flush=True)
        results.append(r)
    Path(a.out).write_text(json.dumps(results, indent=2))
    print()
    print(f"{os.cpu_count()} CPUs; model {model_dir.name}; {conc} short clients (max_tokens {a.max_tokens}) "
          f"+ one {a.long_prompt}-token prompt (max_tokens 16)")
    print("| server | short ITL p95 during long prefill (s) | short ITL max (s) | short ITL p50 / p95 whole run (s) "
          "| short TTFT p95 during long prefill (s) | short TTFT p95 whole run (s) | long prompt TTFT (s) | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['server']} | {r['itl_win_p95']:.3f} | {r['itl_max']:.3f} | {r['itl_p50']:.3f} / "
              f"{r['itl_p95']:.3f} | {r['ttft_win_p95']:.3f} (n={r['ttft_win_n']}) | {r['ttft_p95']:.3f} | "
              f"{r['long_ttft']:.2f} | {r['loadavg_1m']} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default=str(HERE / ".models" / "llama-28m"))
    ap.add_argument("--concurrency", default="1,4,16,64")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--requests", type=int, default=0, help="requests per level (default: max(4, 2*C), 64 at C=64)")
    ap.add_argument("--servers", default="llmops,transformers")
    ap.add_argument("--llmops-bf16", action="store_true",
                    help="also run llmops-serving with LLMOPS_DTYPE=bfloat16 (extra rows; comparisons use float32)")
    ap.add_argument("--long-prompt", type=int, default=0, metavar="N",
                    help="run the chunked-prefill scenario instead: short traffic + one N-token prompt")
    ap.add_argument("--prefill-chunk", default="512",
                    help="--long-prompt: LLMOPS_PREFILL_CHUNK_TOKENS values to run (comma list); 0 (off) is always run")
    ap.add_argument("--out", default="", help="results JSON (default: results/latest.json, "
                    "results/long-prompt.json with --long-prompt)")
    a = ap.parse_args()
    a.out = a.out or str(HERE / "results" / ("long-prompt.json" if a.long_prompt else "latest.json"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    levels = [int(x) for x in a.concurrency.split(",")]
    model_dir = ensure_model(Path(a.model_dir))
    plist = prompts(128)
    n_for = (lambda c: a.requests) if a.requests else (lambda c: max(4, min(2 * c, 64)))
    venv_bin = Path(sys.executable).parent
    results = []
    logs = HERE / "results"
    logs.mkdir(parents=True, exist_ok=True)
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if a.long_prompt:
        bench_long_prompt(a, model_dir, venv_bin, logs, env)
        return
    # All servers run at once and the levels are interleaved (for each concurrency, every
    # server in turn), so load from other work on the machine hits them alike. An idle
    # server of either kind uses no measurable CPU.
    servers = []  # (name, url, model id, Proc)
    procs = []
    try:
        runs = [("llmops-serving", "float32")] + ([("llmops-serving-bf16", "bfloat16")] if a.llmops_bf16 else [])
        for name, dtype in (runs if "llmops" in a.servers else []):
            port = free_port()
            p = Proc([str(venv_bin / "llmops-serve")], {**env, "LLMOPS_MODEL_PATH": str(model_dir),
                     "LLMOPS_AUTH_ENABLED": "false", "LLMOPS_HOST": "127.0.0.1", "LLMOPS_PORT": str(port),
                     "LLMOPS_MAX_BATCH_SIZE": str(max(levels)), "LLMOPS_MAX_QUEUE": "1024", "LLMOPS_DTYPE": dtype,
                     "LLMOPS_LOG_LEVEL": "warning", "LLMOPS_SERVED_MODEL_NAME": "bench"}, logs / f"{name}.log")
            procs.append(p)
            wait_http(f"http://127.0.0.1:{port}/readyz", p)
            servers.append((name, f"http://127.0.0.1:{port}", "bench"))
        if "transformers" in a.servers:
            port = free_port()
            p = Proc([str(venv_bin / "transformers"), "serve", "--continuous-batching", "--device", "cpu",
                      "--host", "127.0.0.1", "--port", str(port), str(model_dir)], env, logs / "transformers.log")
            procs.append(p)
            wait_http(f"http://127.0.0.1:{port}/health", p)
            servers.append(("transformers-serve-cb", f"http://127.0.0.1:{port}", str(model_dir)))
        for name, url, model in servers:  # warm-up (transformers serve loads the model on first use)
            asyncio.run(run_level(url, model, 2, 2, 16, plist, 600))
        for c in levels:
            for name, url, model in servers:
                results += bench_server(name, url, model, [c], a.max_tokens, plist, n_for, warm=False)
    finally:
        for p in procs:
            p.stop()
    print("in-process ceiling:", flush=True)
    results += static_ceiling(model_dir, levels, a.max_tokens, plist, 0)
    Path(a.out).write_text(json.dumps(results, indent=2))

    print()
    print(f"{os.cpu_count()} CPUs; torch threads default; load average now {os.getloadavg()[0]:.2f}")
    print("| server | conc | req/s | output tok/s | TTFT p50 (s) | TTFT p95 (s) | e2e p50 (s) | e2e p95 (s) | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        if "req_per_s" in r:
            print(f"| {r['server']} | {r['concurrency']} | {r['req_per_s']:.2f} | {r['out_tok_per_s']:.1f} | "
                  f"{r['ttft_p50']:.3f} | {r['ttft_p95']:.3f} | {r['e2e_p50']:.2f} | {r['e2e_p95']:.2f} | "
                  f"{r['loadavg_1m']} |")
        else:
            print(f"| {r['server']} (ceiling) | {r['concurrency']} | - | {r['out_tok_per_s']:.1f} | - | - | "
                  f"{r['wall_s']:.2f} | - | {r['loadavg_1m']} |")
    by = {(r["server"], r["concurrency"]): r for r in results}
    for c in levels:
        ours, hf = by.get(("llmops-serving", c)), by.get(("transformers-serve-cb", c))
        ceil = by.get(("static model.generate", c))
        parts = []
        if ours and hf:
            parts.append(f"{ours['out_tok_per_s'] / hf['out_tok_per_s']:.2f}x transformers-serve tok/s, "
                         f"p95 e2e {ours['e2e_p95']:.2f}s vs {hf['e2e_p95']:.2f}s")
        if ours and ceil:
            parts.append(f"{100 * ours['out_tok_per_s'] / ceil['out_tok_per_s']:.0f}% of static ceiling")
        if parts:
            print(f"c={c}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
