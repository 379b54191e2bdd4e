"""Export a finished run: merge the adapter, convert to GGUF, quantize, and prove each file's fidelity."""
