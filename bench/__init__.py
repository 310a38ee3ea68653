"""Benchmarks, one module each, run from the repository root: ``.venv/bin/python -m bench.<name>``.

Each reports a ratio against a baseline measured in the same run on the same machine; none is part of
the product (neither the wheel nor the image ship this package).
"""
