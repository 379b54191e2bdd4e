"""The embedded defaults: the toy base, the family models, the real model, the demo pipeline."""
