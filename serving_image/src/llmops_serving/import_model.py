"""`llmops-import-model`: turn a model a user brings into a directory the server loads.

Two kinds of source:

* a Hugging Face model directory (config.json, tokenizer files, *.safetensors): checked and copied;
  pickle weights (*.bin, *.pt, ...) are refused, because unpickling runs code;
* a GGUF file (llama.cpp's format, often quantized): dequantized by transformers and saved as
  safetensors, once, here, so that serving never converts at start-up.

Both refuse an architecture the engine cannot serve, naming it. The result carries
`llmops-provenance.json` (source, checksum, license, architecture, converter versions); model
artifacts hash and encrypt it with the weights, so where a served model came from travels with it.
The output appears only once complete (written beside DEST, then renamed).

Runs inside the serving image (network-less, read-only, non-root); see serving_image/README.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

PROVENANCE_FILE = "llmops-provenance.json"
PROVENANCE_FORMAT = 1
# Decoder-only, full-attention architectures: what the engine's right-aligned KV cache serves (see
# README, Engine). Names as GGUF's general.architecture and config.json's model_type spell them.
SERVABLE_ARCHITECTURES = ("llama", "qwen2", "qwen3")
# Weight files in Python's pickle format: loading them can run arbitrary code.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
GGUF_MAGIC = b"GGUF"
DTYPES = ("float32", "bfloat16", "float16")


class ImportRefused(Exception):
    """The source cannot become a served model; the message says why and what to do."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_architecture(arch: str, where: str) -> None:
    if arch not in SERVABLE_ARCHITECTURES:
        raise ImportRefused(
            f"{where}: architecture {arch!r} cannot be served; llmops-serving serves "
            f"{', '.join(SERVABLE_ARCHITECTURES)} (decoder-only, full attention). Convert or pick a model "
            f"of one of these architectures.")


def _source_files(src: Path) -> list[Path]:
    """Files of a model directory, relative, sorted; hidden entries (.git, .cache) are not the model."""
    found = []
    for root, dirs, names in os.walk(src, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(Path(root, n).relative_to(src) for n in names if not n.startswith("."))
    # Sorted by the relative path, codepoint order (Python and Jinja sort alike): the listing's checksum
    # is the model's version, computed by the model_import role before this runs.
    return sorted(found, key=lambda p: p.as_posix())


def inspect_hf_dir(src: Path) -> dict:
    """Check a Hugging Face directory; returns what provenance records about it."""
    if not (src / "config.json").is_file():
        raise ImportRefused(f"{src}: no config.json; a Hugging Face model directory has config.json, "
                            f"tokenizer files and *.safetensors weights")
    files = _source_files(src)
    pickles = [str(f) for f in files if f.suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        raise ImportRefused(
            f"{src}: pickle weight files {', '.join(pickles)} are refused (loading pickle runs code). Use the "
            f"model's *.safetensors weights: delete the pickle files, or convert them once in a sandbox "
            f"with safetensors' convert script")
    if not any(f.suffix == ".safetensors" for f in files):
        raise ImportRefused(f"{src}: no *.safetensors weights found; export the model with "
                            f"save_pretrained(..., safe_serialization=True)")
    if any(f.name == PROVENANCE_FILE for f in files):
        raise ImportRefused(f"{src}: already holds {PROVENANCE_FILE} (an imported model); deploy it as it is")
    config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    _check_architecture(str(config.get("model_type")), f"{src}/config.json model_type")
    # The checksum of a directory: SHA-256 of its `sha256sum` listing, so anyone can recompute it
    # with sha256sum (paths relative, without ./, sorted bytewise).
    listing = "".join(f"{sha256_file(src / f)}  {f.as_posix()}\n" for f in files)
    return {"source_kind": "huggingface-directory", "sha256": hashlib.sha256(listing.encode()).hexdigest(),
            "sha256_of": "sha256sum listing of the directory's files", "architecture": config["model_type"],
            "files": [f.as_posix() for f in files]}


def read_gguf(path: Path) -> dict:
    """Architecture and license of a GGUF file, from its header."""
    with open(path, "rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise ImportRefused(f"{path}: not a GGUF file (no GGUF magic at its start)")
    from gguf import GGUFReader

    fields = GGUFReader(str(path)).fields

    def value(key):
        return fields[key].contents() if key in fields else None

    arch = value("general.architecture")
    if not arch:
        raise ImportRefused(f"{path}: the GGUF header has no general.architecture")
    return {"architecture": str(arch), "license": value("general.license"), "gguf_name": value("general.name"),
            "gguf_file_type": value("general.file_type")}


def convert_gguf(src: Path, out: Path, dtype: str) -> int:
    """Dequantize a GGUF file into a safetensors directory at `out`; returns the parameter count."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": src.name}
    tokenizer = AutoTokenizer.from_pretrained(str(src.parent), **kwargs)
    model = AutoModelForCausalLM.from_pretrained(str(src.parent), dtype=getattr(torch, dtype), **kwargs)
    # transformers marks a GGUF-loaded model as quantized and then refuses save_pretrained; the weights
    # are plain dequantized tensors by now, so the marker is dropped.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return sum(p.numel() for p in model.parameters())


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("llmops-serving", "transformers", "torch", "gguf", "safetensors"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def import_model(src: str | Path, dest: str | Path, *, source: str | None = None, sha256: str | None = None,
                 license_id: str | None = None, dtype: str = "float32") -> dict:
    """Import `src` (GGUF file or HF directory) into the new directory `dest`; returns the provenance."""
    src, dest = Path(src), Path(dest)
    if dtype not in DTYPES:
        raise ImportRefused(f"--dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    if (dest.is_dir() and any(dest.iterdir())) or (dest.exists() and not dest.is_dir()):
        raise ImportRefused(f"{dest} already exists and is not empty; import into a new directory")
    if src.is_dir():
        facts = inspect_hf_dir(src)
    elif src.is_file():
        if src.suffix.lower() != ".gguf":
            raise ImportRefused(f"{src}: a model file must be GGUF (*.gguf); for Hugging Face weights give the "
                                f"directory that holds config.json")
        facts = {"source_kind": "gguf", "sha256": sha256_file(src), "sha256_of": "the GGUF file"}
        facts.update(read_gguf(src))
        _check_architecture(facts["architecture"], f"{src} (GGUF general.architecture)")
    else:
        raise ImportRefused(f"{src}: no such file or directory")
    if sha256 and sha256.lower() != facts["sha256"]:
        raise ImportRefused(f"{src}: SHA-256 is {facts['sha256']}, expected {sha256.lower()} (--sha256); the source "
                            f"is not the one that was pinned")
    license_id = license_id or facts.pop("license", None) or "unknown"
    facts.pop("license", None)

    partial = dest.parent / f".{dest.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        if facts["source_kind"] == "gguf":
            facts["parameters"] = convert_gguf(src, partial, dtype)
            facts["dtype"] = dtype
        else:
            for rel in facts.pop("files"):
                (partial / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src / rel, partial / rel)
        provenance = {"format": PROVENANCE_FORMAT, "source": source or src.name, "source_file": src.name,
                      "license": license_id, "converted_with": _versions(), **facts}
        (partial / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=1, sort_keys=True) + "\n",
                                               encoding="utf-8")
        if dest.is_dir():
            dest.rmdir()  # empty (checked above): a mount point or a directory made for us
        partial.rename(dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return provenance


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="llmops-import-model",
        description="Import a GGUF file or a Hugging Face safetensors directory as a model directory "
                    "llmops-serve loads, with llmops-provenance.json (source, checksum, license).")
    parser.add_argument("src", help="a *.gguf file, or a directory with config.json and *.safetensors")
    parser.add_argument("dest", help="the new model directory (must not exist, or be empty)")
    parser.add_argument("--source", help="where the model came from (URL, package==version), for provenance")
    parser.add_argument("--sha256", help="expected SHA-256 of the GGUF file (of the listing, for a directory)")
    parser.add_argument("--license", help="license id (default: the GGUF's general.license, else unknown)")
    parser.add_argument("--dtype", default="float32", choices=DTYPES,
                        help="dtype of the saved weights when converting GGUF (default float32)")
    args = parser.parse_args(argv)
    # No progress bars in logs; the result is the one JSON line on stdout.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        provenance = import_model(args.src, args.dest, source=args.source, sha256=args.sha256,
                                  license_id=args.license, dtype=args.dtype)
    except ImportRefused as exc:
        print(f"llmops-import-model: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(provenance, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
