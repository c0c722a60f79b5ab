#!/usr/bin/env bash
# Prepare ./.whl for a device call (see device.sh): the wheels, HEAD's tests/bench/recipes, the plain anchor.
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
bash ../shared/gpu/make-wheels.sh >/dev/null
git archive --format=tar HEAD tests bench recipes pyproject.toml > .whl/head.tar
cp ../shared/gpu/plain_hf_baseline.py .whl/
du -sh .whl
