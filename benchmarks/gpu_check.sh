#!/usr/bin/env bash
# The GPU check: on a CUDA machine, in under 8 minutes, from a copy of the repository:
#   1. the machine: nvidia-smi, python, torch and CUDA versions;
#   2. installs what is missing (torch==2.13.0 only if `import torch` fails; then `pip install -e ".[test]"`);
#   3. the CUDA-parametrised tests: every registry block on CUDA in float32, bfloat16 and float16 autocast,
#      graphs, memory saving and Flow.sample on CUDA;
#   4. no host-device synchronisation in GraphINN calls (torch.cuda.set_sync_debug_mode("error"));
#   5. torch.compile with CUDA graphs (mode="reduce-overhead"): compile time and speed-up;
#   6. benchmarks on CUDA: bench_memory.py, and bench_peers.py --quick where it exists;
#   7. the whole test suite (CUDA available: the cuda parameters run), in parallel, in the time left.
# Each stage has its own time limit, cut to what is left of the total; a failing stage does not stop the
# next. Everything is written to $OUT (else ./gpu_check_out): one log per stage and summary.txt.
#
#   bash benchmarks/gpu_check.sh            # from the repository root
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT_DIR"
PYTHON="${PYTHON:-python}"
TOTAL_S="${GPU_CHECK_TOTAL_S:-470}"  # under 8 minutes, with room to copy the results back
START=$(date +%s)
SUMMARY="$OUT_DIR/summary.txt"
: > "$SUMMARY"

# stage NAME LIMIT_S COMMAND...: run COMMAND under `timeout`, log to $OUT_DIR/NAME.log, note the result.
stage() {
    local name="$1" limit="$2"
    shift 2
    local left=$((TOTAL_S - ($(date +%s) - START)))
    if ((left < 10)); then
        echo "$name: skipped (no time left)" | tee -a "$SUMMARY"
        return
    fi
    ((limit > left)) && limit=$left
    echo "== $name (limit ${limit} s)"
    local begin=$(date +%s)
    # through bash, so that COMMAND may be one of the functions below (exported)
    timeout --kill-after=5 "$limit" bash -c '"$@"' "$name" "$@" > "$OUT_DIR/$name.log" 2>&1
    local rc=$?
    local verdict="ok"
    ((rc == 124 || rc == 137)) && verdict="TIMED OUT"
    ((rc != 0 && rc != 124 && rc != 137)) && verdict="FAILED (rc $rc)"
    echo "$name: $verdict in $(($(date +%s) - begin)) s" | tee -a "$SUMMARY"
    tail -n 5 "$OUT_DIR/$name.log"
}

machine() {
    nvidia-smi || echo "nvidia-smi not found"
    "$PYTHON" --version
    "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available',
torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" ||
        echo "torch is not installed yet"
}

install_project() {
    if ! "$PYTHON" -c "import torch"; then
        "$PYTHON" -m pip install --quiet torch==2.13.0 || return 1
    fi
    if ! "$PYTHON" -c "import freia_graph, networkx, hypothesis, pytest, xdist, nbclient"; then
        "$PYTHON" -m pip install --quiet -e ".[test]" || return 1
    fi
    # the notebook tests need a registered kernel
    "$PYTHON" -m ipykernel install --user --name python3 > /dev/null 2>&1 || true
    "$PYTHON" -c "import freia_graph, torch; print(freia_graph.__file__, torch.__version__, torch.cuda.is_available())"
}

cuda_tests() {
    "$PYTHON" -m pytest -q -n 4 -p no:cacheprovider -rs -k "cuda" \
        tests/modules/test_autocast.py tests/framework/test_devices.py
}

sync_check() {
    "$PYTHON" -m pytest -q -n 0 -p no:cacheprovider -rs tests/framework/test_devices.py -k "synchronise"
}

bench_peers() {
    if [ -f benchmarks/bench_peers.py ]; then
        "$PYTHON" benchmarks/bench_peers.py --device cuda --quick
    else
        echo "benchmarks/bench_peers.py does not exist in this copy: skipped"
    fi
}

export CI=true PYTHON  # CI: the derandomised hypothesis profile
export -f machine install_project cuda_tests sync_check bench_peers
stage machine 30 machine
stage install 150 install_project
stage cuda_tests 120 cuda_tests
stage sync_check 60 sync_check
stage compile_cuda_graphs 120 "$PYTHON" benchmarks/gpu_compile_check.py --device cuda --repeats 20
stage bench_memory 90 "$PYTHON" benchmarks/bench_memory.py --device cuda --skip-freia
stage bench_peers 90 bench_peers
stage test_suite 300 "$PYTHON" -m pytest -q -n 8 -p no:cacheprovider -rs --maxfail=50
echo "total $(($(date +%s) - START)) s; logs in $OUT_DIR" | tee -a "$SUMMARY"
