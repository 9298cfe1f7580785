"""A preallocated, right-aligned KV cache for continuous batching.

Layout: per layer one key and one value buffer of shape
[row_capacity, kv_heads, col_capacity, head_dim]. Active sequences occupy rows
0..n-1 (kept contiguous, so a decode step slices [:n]). All rows end at the same
column `length`: a decode step writes every row's new key/value into column
`length` in place, so nothing is concatenated per step (the cost that makes
transformers' DynamicCache slow for serving). A row that holds fewer tokens than
`length` starts at a later column (`start[row]`); the columns before it are
masked out. Joining rows are copied in right-aligned; leaving rows are replaced
by the last row; columns that no row uses any more are compacted away.

Buffers only ever hold finite values (zeros or real keys/values), which matters
because masked positions still take part in `probs @ values` (0 * NaN = NaN).
"""
from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer


class _SlotLayer(DynamicLayer):
    """Cache layer view handed to the model; it writes through to the store."""

    def __init__(self, store: "SlotKVStore", layer_idx: int):
        super().__init__()
        self.store = store
        self.layer_idx = layer_idx
        self.is_initialized = True

    def lazy_initialization(self, key_states, value_states) -> None:  # buffers are owned by the store
        return None

    def update(self, key_states, value_states, *args, **kwargs):
        return self.store.write(self.layer_idx, key_states, value_states)

    def get_seq_length(self) -> int:
        return self.store.length

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.store.length + query_length, 0


class SlotKVStore:
    def __init__(self, num_layers: int, kv_heads: int, head_dim: int, dtype: torch.dtype,
                 device: torch.device, max_rows: int, init_rows: int = 4, init_cols: int = 128):
        self.num_layers, self.kv_heads, self.head_dim = num_layers, kv_heads, head_dim
        self.dtype, self.device, self.max_rows = dtype, device, max_rows
        self.row_cap = min(init_rows, max_rows)
        self.col_cap = init_cols
        self.keys = [self._alloc(self.row_cap, self.col_cap) for _ in range(num_layers)]
        self.values = [self._alloc(self.row_cap, self.col_cap) for _ in range(num_layers)]
        self.n = 0
        self.length = 0
        self.start: list[int] = []
        self.cache = Cache(layers=[_SlotLayer(self, i) for i in range(num_layers)])

    def _alloc(self, rows: int, cols: int) -> torch.Tensor:
        return torch.zeros(rows, self.kv_heads, cols, self.head_dim, dtype=self.dtype, device=self.device)

    # -- capacity -----------------------------------------------------------
    def _grow(self, rows: int, cols: int) -> None:
        if rows <= self.row_cap and cols <= self.col_cap:
            return
        new_rows = self.row_cap
        while new_rows < rows:
            new_rows = min(self.max_rows, new_rows * 2)
        new_cols = self.col_cap
        while new_cols < cols:
            new_cols *= 2
        for bufs in (self.keys, self.values):
            for i, old in enumerate(bufs):
                new = self._alloc(new_rows, new_cols)
                new[: self.n, :, : self.length] = old[: self.n, :, : self.length]
                bufs[i] = new
        self.row_cap, self.col_cap = new_rows, new_cols

    # -- called by the model during forward ---------------------------------
    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        q = k.shape[2]
        end = self.length + q
        kb, vb = self.keys[layer], self.values[layer]
        kb[: self.n, :, self.length:end] = k
        vb[: self.n, :, self.length:end] = v
        return kb[: self.n, :, :end], vb[: self.n, :, :end]

    def prepare_decode(self) -> torch.Tensor:
        """Make room for one more column; return the [n,1,1,length+1] bool mask."""
        self._grow(self.n, self.length + 1)
        cols = torch.arange(self.length + 1, device=self.device)
        starts = torch.tensor(self.start, device=self.device)
        return (cols[None, :] >= starts[:, None])[:, None, None, :]

    def advance(self, q: int = 1) -> None:
        self.length += q

    def positions(self) -> list[int]:
        """Position id of the next token of each row (= tokens the row holds)."""
        return [self.length - s for s in self.start]

    # -- membership ---------------------------------------------------------
    def add_rows(self, layer_keys: list[torch.Tensor], layer_values: list[torch.Tensor],
                 pad: list[int]) -> None:
        """Append rows from a left-padded prefill cache ([k, H, P, D] per layer)."""
        k, _, p, _ = layer_keys[0].shape
        if self.n + k > self.max_rows:
            raise RuntimeError("too many rows for the KV cache")
        if self.n == 0:
            self.length = 0
        shift = max(0, p - self.length)
        new_len = self.length + shift
        self._grow(self.n + k, new_len + 1)
        if shift and self.n:
            # Existing rows move right so that every row still ends at `length`.
            for bufs in (self.keys, self.values):
                for buf in bufs:
                    buf[: self.n, :, shift:new_len] = buf[: self.n, :, : self.length].clone()
            self.start = [s + shift for s in self.start]
        self.length = new_len
        off = new_len - p
        for layer in range(self.num_layers):
            self.keys[layer][self.n: self.n + k, :, off:new_len] = layer_keys[layer]
            self.values[layer][self.n: self.n + k, :, off:new_len] = layer_values[layer]
        self.start.extend(off + pd for pd in pad)
        self.n += k

    def remove_row(self, row: int) -> int | None:
        """Drop a row; the last row moves into its place. Returns the moved row's old index."""
        last = self.n - 1
        moved = None
        if row != last:
            for bufs in (self.keys, self.values):
                for buf in bufs:
                    buf[row, :, : self.length] = buf[last, :, : self.length]
            self.start[row] = self.start[last]
            moved = last
        self.start.pop()
        self.n -= 1
        if self.n == 0:
            self.length = 0
        return moved

    def compact(self, min_waste: int = 32) -> None:
        """Drop leading columns that no row uses, once enough of them pile up."""
        if self.n == 0:
            self.length = 0
            return
        waste = min(self.start)
        if waste < max(min_waste, self.length // 4):
            return
        for bufs in (self.keys, self.values):
            for buf in bufs:
                buf[: self.n, :, : self.length - waste] = buf[: self.n, :, waste:self.length].clone()
        self.start = [s - waste for s in self.start]
        self.length -= waste

    def reset(self) -> None:
        self.n = 0
        self.length = 0
        self.start = []
