"""Export a finished run: merge the adapter, convert to GGUF, quantize, verify each file."""
