"""The generation engine: one thread owns the model and runs continuous batching.

The HTTP side never touches torch. It builds `Sequence` objects and calls
`Engine.submit`, which only appends to a bounded deque under a lock. The engine
thread loops:

  1. drop sequences whose client went away (`cancelled`),
  2. admit waiting sequences up to `max_batch_size` rows and `max_batch_tokens`
     prompt tokens, prefill them together (left-padded) and copy their KV into
     the shared slot cache (kvcache.SlotKVStore); a prompt longer than
     `prefill_chunk_tokens` is instead prefilled one chunk per step (chunked
     prefill, below) and joins the slot cache after its last chunk,
  3. run one decode step for every running row, sample, detokenize, check stop
     conditions, and remove finished rows,
  4. hand all events of the step to the asyncio loop in one call_soon_threadsafe.

So requests join and leave the running batch between decode steps, and the KV
cache of a running sequence is reused for its whole life.

Chunked prefill: prefilling a long prompt in one forward pass would make that
step, and so the next token of every running request, wait for the whole
prompt. A long prompt is therefore prefilled into its own DynamicCache, at most
`prefill_chunk_tokens` tokens per step (positions continue from the previous
chunk; each chunk attends causally to everything before it), while the decode
step of the running rows still runs every step. After the last chunk its KV is
copied into the slot cache exactly as a one-pass prefill's would be.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .kvcache import SlotKVStore
from .sampling import sample

log = logging.getLogger("llmops_serving.engine")


@dataclass
class SamplingParams:
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    ignore_eos: bool = False
    watermark: bool = False


@dataclass(eq=False)
class Sequence:
    """One generated choice. `sink(event)` is called on `loop` for every event."""
    prompt_ids: list[int]
    params: SamplingParams
    loop: Any
    sink: Callable[[dict], None]
    index: int = 0
    cancelled: bool = False
    arrival: float = field(default_factory=time.monotonic)
    # engine-side state
    output_ids: list[int] = field(default_factory=list)
    text: str = ""
    emitted: int = 0
    prefix_offset: int = 0
    read_offset: int = 0
    first_token_at: float | None = None
    generator: torch.Generator | None = None
    pending: int = -1  # sampled token not yet fed to the model
    # chunked prefill: prompt tokens already in `prefill_cache` (a DynamicCache)
    prefilled: int = 0
    prefill_cache: Any = None


class QueueFull(Exception):
    pass


class Engine:
    def __init__(self, model, tokenizer, *, max_batch_size: int, max_batch_tokens: int, max_queue: int,
                 max_model_len: int, device: torch.device, metrics=None, watermark=None,
                 prefill_chunk_tokens: int = 0):
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_queue = max_queue
        self.max_model_len = max_model_len
        self.prefill_chunk_tokens = prefill_chunk_tokens  # 0 = off: every prompt in one pass
        self.device = device
        self.metrics = metrics
        self.watermark = watermark
        eos = getattr(model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else ([eos] if eos is not None else []))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        heads = cfg.num_attention_heads
        kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        self.store = SlotKVStore(cfg.num_hidden_layers, kv_heads, head_dim, model.dtype, device,
                                 max_rows=max_batch_size)
        self.waiting: collections.deque[Sequence] = collections.deque()
        self.running: list[Sequence] = []  # row i of the store belongs to running[i]
        # admitted long prompts (each holds a row), prefilled one chunk per step, oldest first
        self.prefilling: collections.deque[Sequence] = collections.deque()
        # prompt tokens forwarded so far (one-pass and chunked); tests and benchmarks read it to
        # see how much prefill work ran between two tokens of a running request
        self.prefill_tokens = 0
        self._cv = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.healthy = True
        self.last_error: str | None = None
        self.steps = 0

    # -- API used from the HTTP side (any thread) ----------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="llmops-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread:
            self._thread.join(timeout)

    def submit(self, seqs: list[Sequence]) -> None:
        """Queue all choices of one request atomically, or raise QueueFull."""
        with self._cv:
            if len(self.waiting) + len(seqs) > self.max_queue:
                raise QueueFull()
            self.waiting.extend(seqs)
            self._cv.notify()
        self._gauge()

    def wake(self) -> None:
        with self._cv:
            self._cv.notify()

    @property
    def queue_length(self) -> int:
        return len(self.waiting)

    @property
    def in_flight(self) -> int:
        return len(self.waiting) + len(self.prefilling) + len(self.running)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self.healthy

    # -- engine thread --------------------------------------------------------
    def _gauge(self) -> None:
        if self.metrics:
            self.metrics.queue_length.set(len(self.waiting))
            self.metrics.running_batch.set(len(self.running))

    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            with self._cv:
                while not self._stop and not self.waiting and not self.running and not self.prefilling:
                    self._cv.wait()
                if self._stop:
                    break
            events: list[tuple[Sequence, dict]] = []
            try:
                with torch.inference_mode():
                    self._step(events)
            except Exception as exc:  # keep serving: fail the batch, reset the cache
                log.exception("engine step failed")
                self.last_error = repr(exc)
                for seq in self.running + list(self.prefilling):
                    events.append((seq, {"type": "error", "message": "generation failed"}))
                self.running = []
                self.prefilling.clear()
                self.store.reset()
            self._dispatch(events)
            self._gauge()
        # stopping: tell everyone still waiting or running
        events = [(s, {"type": "error", "message": "server shutting down"})
                  for s in list(self.waiting) + list(self.prefilling) + self.running]
        self.waiting.clear()
        self.prefilling.clear()
        self.running = []
        self._dispatch(events)

    def _dispatch(self, events: list[tuple[Sequence, dict]]) -> None:
        by_loop: dict[Any, list] = {}
        for seq, ev in events:
            by_loop.setdefault(seq.loop, []).append((seq.sink, ev))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # loop closed: the client is gone
                pass

    def _step(self, events: list) -> None:
        # 1. drop cancelled sequences (client disconnected) before spending compute on them
        for row in range(len(self.running) - 1, -1, -1):
            if self.running[row].cancelled:
                self._remove(row)
                self._count_cancel()
        with self._cv:
            while self.waiting and self.waiting[0].cancelled:
                self.waiting.popleft()
                self._count_cancel()
        for seq in [s for s in self.prefilling if s.cancelled]:
            self.prefilling.remove(seq)  # its partial cache goes with it
            self._count_cancel()
        # 2. admission + prefill (short prompts in one pass, one chunk of the oldest long prompt)
        admitted = self._admit()
        if admitted:
            self._prefill(admitted, events)
        if self.prefilling:
            self._prefill_chunk(events)
        # 3. one decode step for all running rows
        if self.running:
            self._decode(events)
        self.steps += 1

    def _admit(self) -> list[Sequence]:
        admitted: list[Sequence] = []
        longest = 0
        with self._cv:
            while self.waiting and len(self.running) + len(self.prefilling) + len(admitted) < self.max_batch_size:
                seq = self.waiting[0]
                if seq.cancelled:
                    self.waiting.popleft()
                    self._count_cancel()
                    continue
                if self.prefill_chunk_tokens and len(seq.prompt_ids) > self.prefill_chunk_tokens:
                    # holds a row from now on, but its prefill is spread over the next steps
                    self.prefilling.append(self.waiting.popleft())
                    continue
                new_longest = max(longest, len(seq.prompt_ids))
                if admitted and new_longest * (len(admitted) + 1) > self.max_batch_tokens:
                    break
                self.waiting.popleft()
                admitted.append(seq)
                longest = new_longest
        return admitted

    def _prefill(self, seqs: list[Sequence], events: list) -> None:
        from transformers import DynamicCache

        lens = [len(s.prompt_ids) for s in seqs]
        p = max(lens)
        pads = [p - n for n in lens]
        ids = torch.full((len(seqs), p), self.pad_id, dtype=torch.long)
        pos = torch.zeros((len(seqs), p), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, pads[i]:] = torch.tensor(s.prompt_ids)
            pos[i, pads[i]:] = torch.arange(lens[i])
        col = torch.arange(p)
        causal = col[None, :] <= col[:, None]                      # [q, k]
        valid = col[None, :] >= torch.tensor(pads)[:, None]        # [b, k]
        mask = causal[None] & valid[:, None, :]
        # padded query rows attend to themselves so their (ignored) outputs stay finite
        mask |= torch.eye(p, dtype=torch.bool)[None]
        cache = DynamicCache()
        out = self.model(input_ids=ids.to(self.device), position_ids=pos.to(self.device),
                         attention_mask=mask[:, None].to(self.device), past_key_values=cache,
                         use_cache=True, logits_to_keep=1)
        self.prefill_tokens += sum(lens)
        self._join(seqs, cache, pads, out.logits[:, -1, :], events)

    def _prefill_chunk(self, events: list) -> None:
        """Forward the next chunk of the oldest long prompt; join the batch after the last one."""
        from transformers import DynamicCache

        seq = self.prefilling[0]
        if seq.prefill_cache is None:
            seq.prefill_cache = DynamicCache()
        done = seq.prefilled
        chunk = seq.prompt_ids[done:done + self.prefill_chunk_tokens]
        q = len(chunk)
        # query i sits at position done + i and may see every key up to and including itself
        keys = torch.arange(done + q)
        mask = keys[None, :] <= (done + torch.arange(q))[:, None]
        out = self.model(input_ids=torch.tensor([chunk], device=self.device),
                         position_ids=torch.arange(done, done + q, device=self.device)[None],
                         attention_mask=mask[None, None].to(self.device), past_key_values=seq.prefill_cache,
                         use_cache=True, logits_to_keep=1)
        seq.prefilled = done + q
        self.prefill_tokens += q
        if seq.prefilled < len(seq.prompt_ids):
            return
        self.prefilling.popleft()
        cache, seq.prefill_cache = seq.prefill_cache, None
        self._join([seq], cache, [0], out.logits[:, -1, :], events)

    def _join(self, seqs: list[Sequence], cache, pads: list[int], logits: torch.Tensor, events: list) -> None:
        """Move freshly prefilled sequences into the slot cache and sample their first token."""
        keys = [layer.keys for layer in cache.layers]
        values = [layer.values for layer in cache.layers]
        self.store.add_rows(keys, values, pads)
        self.running.extend(seqs)
        now = time.monotonic()
        for s in seqs:
            if s.params.seed is not None:
                s.generator = torch.Generator().manual_seed(int(s.params.seed))
            if self.metrics:
                self.metrics.prompt_tokens.inc(len(s.prompt_ids))
        self._sample_and_advance(logits, list(range(len(self.running) - len(seqs), len(self.running))),
                                 [s.prompt_ids[-1] for s in seqs], events, now)

    def _decode(self, events: list) -> None:
        store = self.store
        mask = store.prepare_decode()
        positions = store.positions()
        ids = torch.tensor([[s.pending] for s in self.running], device=self.device)
        pos = torch.tensor(positions, device=self.device)[:, None]
        out = self.model(input_ids=ids, position_ids=pos, attention_mask=mask,
                         past_key_values=store.cache, use_cache=True)
        store.advance(1)
        logits = out.logits[:, -1, :]
        self._sample_and_advance(logits, list(range(len(self.running))),
                                 [s.pending for s in self.running], events, time.monotonic())
        store.compact()

    def _sample_and_advance(self, logits: torch.Tensor, rows: list[int], prev: list[int],
                            events: list, now: float) -> None:
        seqs = [self.running[r] for r in rows]
        wm_rows = [j for j, s in enumerate(seqs) if s.params.watermark]
        if wm_rows and self.watermark is not None:
            logits = logits.float()
            self.watermark.bias_logits(logits, wm_rows, [prev[j] for j in wm_rows])
        tokens = sample(logits, [s.params.temperature for s in seqs], [s.params.top_k for s in seqs],
                        [s.params.top_p for s in seqs], [s.generator for s in seqs])
        finished_rows: list[int] = []
        for j, (seq, tok) in enumerate(zip(seqs, tokens)):
            reason = self._append_token(seq, tok, now)
            if reason is not None and reason != "stop_string":
                self._detokenize(seq, final=True)
            elif reason == "stop_string":
                reason = "stop"
            delta = self._take_text(seq, final=reason is not None)
            if seq.first_token_at is None:
                seq.first_token_at = now
                if self.metrics:
                    self.metrics.ttft.observe(now - seq.arrival)
            if reason is None:
                if delta:
                    events.append((seq, {"type": "delta", "index": seq.index, "text": delta}))
                seq.pending = tok
            else:
                events.append((seq, {"type": "done", "index": seq.index, "text": delta, "finish_reason": reason,
                                     "prompt_tokens": len(seq.prompt_ids),
                                     "completion_tokens": len(seq.output_ids)}))
                if self.metrics:
                    n = len(seq.output_ids)
                    self.metrics.generation_tokens.inc(n)
                    if n > 1:
                        self.metrics.tpot.observe((now - seq.first_token_at) / (n - 1))
                finished_rows.append(rows[j])
        for row in sorted(finished_rows, reverse=True):
            self._remove(row)

    def _append_token(self, seq: Sequence, tok: int, now: float) -> str | None:
        """Record a sampled token; return a finish reason or None."""
        if tok in self.eos_ids and not seq.params.ignore_eos:
            return "stop"
        seq.output_ids.append(tok)
        self._detokenize(seq)
        if seq.params.stop:
            window = max(len(s) for s in seq.params.stop) + 8
            tail_from = max(0, seq.emitted - window)
            hits = [i for i in (seq.text.find(s, tail_from) for s in seq.params.stop) if i >= 0]
            if hits:
                seq.text = seq.text[: min(hits)]
                return "stop_string"
        if len(seq.output_ids) >= seq.params.max_tokens:
            return "length"
        if len(seq.prompt_ids) + len(seq.output_ids) >= self.max_model_len:
            return "length"
        return None

    def _detokenize(self, seq: Sequence, final: bool = False) -> None:
        # Incremental decoding: decode a short window and keep only the new suffix,
        # holding back text while it ends in an incomplete UTF-8 sequence.
        ids = seq.output_ids
        prefix = self.tokenizer.decode(ids[seq.prefix_offset:seq.read_offset], skip_special_tokens=True)
        full = self.tokenizer.decode(ids[seq.prefix_offset:], skip_special_tokens=True)
        if len(full) > len(prefix) and (final or not full.endswith("\ufffd")):
            seq.text += full[len(prefix):]
            seq.prefix_offset = seq.read_offset
            seq.read_offset = len(ids)

    def _take_text(self, seq: Sequence, final: bool) -> str:
        """Text that may be sent now; while running, hold back a possible stop-string prefix."""
        end = len(seq.text)
        if not final and seq.params.stop:
            end = max(seq.emitted, end - (max(len(s) for s in seq.params.stop) - 1))
        delta = seq.text[seq.emitted:end]
        seq.emitted = end
        return delta

    def _count_cancel(self) -> None:
        if self.metrics:
            self.metrics.cancelled.inc()

    def _remove(self, row: int) -> None:
        moved = self.store.remove_row(row)
        if moved is not None:
            self.running[row] = self.running[moved]
        self.running.pop()


def _deliver(items) -> None:
    for sink, ev in items:
        try:
            sink(ev)
        except Exception:  # a broken consumer must not break the others
            log.exception("event sink failed")
