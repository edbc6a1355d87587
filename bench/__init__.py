"""Benchmarks: matching quality (``python -m bench.accuracy``) and speed (``python -m bench.hashspeed``)."""
