#!/usr/bin/env bash
# Every GPU row of the README in one run, for a machine lent with a CUDA GPU (about 10 minutes):
#   bash benchmarks/gpu_checks.sh
# The GPU machine has no internet: download OpenMM's CUDA plugin here first, matching its openmm
# version, into wheels/ (ignored by git) and carry that folder:
#   pip download --no-deps -d wheels "openmm-cuda-12==$(python -c 'import openmm; print(openmm.__version__)')"
# Results go to benchmarks/results/ (forcefield_speed_cuda*, gpu_parity, gpu_cli, bg_step_speed) and,
# when $OUT is set (the device tool), packed into $OUT/gpu_results.tar.gz too.
set -uo pipefail  # a failing step is reported and the others still run
failed=()
cd "$(dirname "$0")"
if ls ../wheels/openmm_cuda*.whl >/dev/null 2>&1; then python -m pip install --no-deps ../wheels/openmm_cuda*.whl; fi
python gpu_parity.py || failed+=("gpu_parity.py")
python forcefield_speed.py --device cuda --batches 1 256 4096 65536 --rounds 2 --seconds 0.3 --threads 16 || failed+=("forcefield_speed.py")
python gpu_cli.py || failed+=("gpu_cli.py")
python bg_step_speed.py --devices cpu cuda || failed+=("bg_step_speed.py")
(cd .. && python -m pytest -m gpu -q) | tee results/gpu_tests.txt || failed+=("pytest -m gpu")
if [ -n "${OUT:-}" ]; then tar czf "$OUT/gpu_results.tar.gz" results/forcefield_speed_cuda* results/gpu_* results/bg_step_speed*; fi
if [ ${#failed[@]} -gt 0 ]; then echo "failed: ${failed[*]}"; exit 1; fi
