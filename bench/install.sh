#!/bin/sh
# Installs the benchmark requirement files (default bench/requirements.txt) into the
# project's .venv: install.sh PYTHON [FILE...]. The benchmark packages are
# optional extras: one that will not install is retried once with its build dependencies,
# then left out, and the benchmark reports that method or class as unavailable.
set -u
PY=${1:-.venv/bin/python}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- bench/requirements.txt
cat "$@" | grep -v '^[[:space:]]*#' | grep -v '^[[:space:]]*$' | while read -r req; do
    "$PY" -m pip install --quiet "$req" && continue
    echo "bench: '$req' did not install; retrying once with build dependencies" >&2
    "$PY" -m pip install --quiet cython setuptools wheel numpy &&
        "$PY" -m pip install --quiet --no-build-isolation "$req" && continue
    echo "bench: '$req' unavailable; the report says so" >&2
done
exit 0
