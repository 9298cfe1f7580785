"""llmops-import-model: Hugging Face directories and GGUF files become model directories the server loads.

Real parts only: tiny random-weight models written by tiny_model.build, GGUF files written with
gguf.GGUFWriter from those weights (laid out as llama.cpp's converter lays them out), the real
transformers GGUF loader, and the console script run as a process.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from llmops_serving import tiny_model
from llmops_serving.import_model import PROVENANCE_FILE, ImportRefused, import_model, sha256_file


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory) -> Path:
    return tiny_model.build(tmp_path_factory.mktemp("hf") / "tiny", vocab_size=300, hidden_size=64, num_layers=2,
                            num_heads=4, max_position_embeddings=128)


def _permute(weight: np.ndarray, heads: int) -> np.ndarray:
    # llama.cpp stores the rotary halves of Q and K interleaved; transformers undoes this on load.
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def write_gguf(hf: Path, path: Path, arch: str = "llama") -> Path:
    """A float32 GGUF file of the tiny model in `hf`, as llama.cpp's convert_hf_to_gguf.py would write it."""
    import gguf
    from safetensors.numpy import load_file

    config = json.loads((hf / "config.json").read_text())
    tok = json.loads((hf / "tokenizer.json").read_text())
    weights = load_file(str(hf / "model.safetensors"))
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("tiny-test")
    writer.add_license("apache-2.0")
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(config.get("rope_parameters", {}).get("rope_theta", 10000.0))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])
    writer.add_rope_dimension_count(config["hidden_size"] // heads)
    vocab = sorted(tok["model"]["vocab"].items(), key=lambda item: item[1])
    vocab_ids = [i for _, i in vocab]
    assert vocab_ids == list(range(len(vocab))), "vocabulary ids must be dense"
    special = {t["content"] for t in tok["added_tokens"]}
    tokens = [t for t, _ in vocab] + ["<|pad%d|>" % i for i in range(config["vocab_size"] - len(vocab))]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens])
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]])
    writer.add_bos_token_id(config["bos_token_id"])
    writer.add_eos_token_id(config["eos_token_id"])
    writer.add_pad_token_id(config["pad_token_id"])
    writer.add_chat_template(tiny_model.CHAT_TEMPLATE)
    names = {"embed_tokens": "token_embd", "norm": "output_norm", "input_layernorm": "attn_norm",
             "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate",
             "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for key, value in sorted(weights.items()):
        value = value.astype(np.float32)
        if key == "lm_head.weight":
            writer.add_tensor("output.weight", value)
            continue
        part = key[len("model."):-len(".weight")]
        if part.startswith("layers."):
            _, layer, rest = part.split(".", 2)
            if rest == "self_attn.q_proj":
                value = _permute(value, heads)
            elif rest == "self_attn.k_proj":
                value = _permute(value, kv_heads)
            writer.add_tensor("blk.%s.%s.weight" % (layer, names[rest]), value)
        else:
            writer.add_tensor(names[part] + ".weight", value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _logits(model_dir: Path, text: str) -> torch.Tensor:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    ids = tok(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return ids, model(ids).logits


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmops_serving.import_model", *map(str, args)],
                          capture_output=True, text=True, check=False, timeout=240)


def test_gguf_is_converted_to_safetensors_with_the_same_weights_and_tokenizer(hf_dir, tmp_path):
    gguf_file = write_gguf(hf_dir, tmp_path / "tiny.gguf")
    out = tmp_path / "imported"
    run = run_cli(gguf_file, out, "--source", "test:tiny", "--sha256", sha256_file(gguf_file))
    assert run.returncode == 0, run.stderr
    assert sorted(p.suffix for p in out.glob("*.safetensors")) == [".safetensors"]
    assert not list(out.glob("*.gguf")) and not list(tmp_path.glob(".imported.partial"))
    provenance = json.loads((out / PROVENANCE_FILE).read_text())
    assert provenance == json.loads(run.stdout.strip().splitlines()[-1])
    assert provenance["source"] == "test:tiny" and provenance["source_kind"] == "gguf"
    assert provenance["sha256"] == hashlib.sha256(gguf_file.read_bytes()).hexdigest()
    assert provenance["license"] == "apache-2.0" and provenance["architecture"] == "llama"
    # Same token ids and the same logits as the model the GGUF was written from: the Q/K layout was
    # undone and nothing was lost (float32 all the way).
    ids_hf, want = _logits(hf_dir, "the quick brown fox")
    ids_gguf, got = _logits(out, "the quick brown fox")
    assert ids_gguf.tolist() == ids_hf.tolist()
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


def test_gguf_of_an_architecture_we_cannot_serve_is_refused_naming_it(tmp_path):
    import gguf

    path = tmp_path / "rwkv.gguf"
    writer = gguf.GGUFWriter(str(path), "rwkv6")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    run = run_cli(path, tmp_path / "out")
    assert run.returncode == 2
    assert "architecture 'rwkv6' cannot be served" in run.stderr and "llama" in run.stderr
    assert not (tmp_path / "out").exists()


def test_a_pinned_checksum_that_does_not_match_is_refused(hf_dir, tmp_path):
    gguf_file = write_gguf(hf_dir, tmp_path / "tiny.gguf")
    with pytest.raises(ImportRefused, match="expected 0000"):
        import_model(gguf_file, tmp_path / "out", sha256="0000" * 16)
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 not gguf")
    with pytest.raises(ImportRefused, match="not a GGUF file"):
        import_model(fake, tmp_path / "out")
    other = tmp_path / "model.bin"
    other.write_bytes(b"x")
    with pytest.raises(ImportRefused, match=r"must be GGUF"):
        import_model(other, tmp_path / "out")


def test_hugging_face_directory_is_copied_with_provenance_and_loads(hf_dir, tmp_path):
    out = tmp_path / "imported"
    provenance = import_model(hf_dir, out, source="https://example.com/tiny", license_id="mit")
    copied = sorted(p.name for p in out.iterdir())
    assert copied == sorted([p.name for p in hf_dir.iterdir()] + [PROVENANCE_FILE])
    for name in copied:
        if name != PROVENANCE_FILE:
            assert (out / name).read_bytes() == (hf_dir / name).read_bytes()
    listing = "".join("%s  %s\n" % (sha256_file(hf_dir / n), n) for n in sorted(p.name for p in hf_dir.iterdir()))
    assert provenance["sha256"] == hashlib.sha256(listing.encode()).hexdigest()
    assert provenance["license"] == "mit" and provenance["source_kind"] == "huggingface-directory"
    _, want = _logits(hf_dir, "hello world")
    _, got = _logits(out, "hello world")
    assert torch.equal(got, want)


def test_pickle_weights_are_refused(hf_dir, tmp_path):
    import shutil

    src = tmp_path / "with-pickle"
    shutil.copytree(hf_dir, src)
    (src / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    run = run_cli(src, tmp_path / "out")
    assert run.returncode == 2
    assert "pickle weight files pytorch_model.bin are refused" in run.stderr
    assert not (tmp_path / "out").exists()


def test_directory_without_safetensors_or_config_is_refused(hf_dir, tmp_path):
    import shutil

    src = tmp_path / "no-weights"
    shutil.copytree(hf_dir, src)
    (src / "model.safetensors").unlink()
    with pytest.raises(ImportRefused, match=r"no \*\.safetensors"):
        import_model(src, tmp_path / "out")
    (src / "config.json").unlink()
    with pytest.raises(ImportRefused, match="no config.json"):
        import_model(src, tmp_path / "out")


def test_hf_directory_of_an_unservable_architecture_is_refused(hf_dir, tmp_path):
    import shutil

    src = tmp_path / "mamba"
    shutil.copytree(hf_dir, src)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps(dict(config, model_type="mamba")))
    with pytest.raises(ImportRefused, match="architecture 'mamba' cannot be served"):
        import_model(src, tmp_path / "out")


def test_existing_destination_is_never_overwritten(hf_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ImportRefused, match="already exists"):
        import_model(hf_dir, out)
    assert (out / "keep.txt").read_text() == "mine"
