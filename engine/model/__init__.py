"""The model: loading (models and tokenizers, GGUF in), adapters, the estimate, the memory probe."""
