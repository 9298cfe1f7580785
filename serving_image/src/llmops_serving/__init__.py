"""llmops-serving: an OpenAI-compatible LLM server on torch + transformers (see README.md)."""

__version__ = "0.1.0"
