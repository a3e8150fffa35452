#!/usr/bin/env bash
# `make gpu-check` for BASE and LARGE on a lent GPU, in one command (about 7 minutes on an H100),
# its output under $OUT (docs/speed.md, "To run when a GPU is lent").
#
# Usage, from the repository's root:
#   bash bench/gpu_check_device.sh wheels   # here, with PyPI: the Python 3.12 wheels the device
#                                           # image lacks, into .whl/ (40 MB; ignored by git)
#   bash bench/gpu_check_device.sh          # there: run with .whl carried, e.g. the device tool's
#                                           # run(command="bash bench/gpu_check_device.sh",
#                                           #     carry=[".whl"], timeout_s=560)
# The device image's python3 (3.12, with a CUDA torch) gets the pinned fairseq (ve-fairseq
# 0.12.3), hydra-core, omegaconf, numpy 1.26.4, soundfile and the rest of what `make finetune`
# imports, from .whl; `make gpu-check` then runs with VENV= that python's environment (its
# .installed stamp touched, so `make setup` installs nothing). Each model has LIMIT seconds
# (default 220; CHECK_UPDATES=3: 3 frozen and 4 trained updates per path); the text of each
# check, its JSON and nvidia-smi's view go to $OUT (default .bench/gpu-check-device).
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS=(ve-fairseq==0.12.3 numpy==1.26.4 hydra-core==1.3.8 omegaconf==2.3.1 bitarray==3.12.3
        soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 editdistance==0.8.1)
PLATFORMS=(manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_28_x86_64)

if [ "${1:-}" = wheels ]; then
    exclude=$(git rev-parse --git-path info/exclude)
    grep -qx '/.whl/' "$exclude" 2>/dev/null || echo /.whl/ >> "$exclude"
    mkdir -p .whl
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp "${PLATFORMS[@]/#/--platform=}" -d .whl "${WHEELS[@]}" || exit 1
    # antlr4-python3-runtime 4.9.3 (what omegaconf 2.3 needs) is published as source only
    python3 -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3 || exit 1
    ls -l .whl
    exit 0
fi

OUT=${OUT:-.bench/gpu-check-device}
LIMIT=${LIMIT:-220}
PY=${PY:-python3}
mkdir -p "$OUT"
{
    date -u
    nvidia-smi || echo "nvidia-smi: not found"
    # only where they are missing (the device image): an environment that has them is left as is
    if ! "$PY" -c 'import fairseq, hydra, soundfile' 2>/dev/null && [ -d .whl ]; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir .whl/*.whl \
            || echo "pip install of .whl failed"
    fi
    "$PY" -c 'import sys, torch, numpy, fairseq, hydra, omegaconf, soundfile
print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available(),
      "numpy", numpy.__version__, "fairseq", fairseq.__version__)'
} 2>&1 | tee "$OUT/environment.txt"
"$PY" -c 'import fairseq, hydra, soundfile, torch; assert torch.cuda.is_available()' 2>/dev/null || {
    echo "error: $PY lacks fairseq, hydra or soundfile, or sees no GPU; make the wheels here" \
         "(bash bench/gpu_check_device.sh wheels) and carry .whl" | tee -a "$OUT/environment.txt"
    exit 2
}
command -v make >/dev/null || { echo "error: no make on this machine" | tee -a "$OUT/environment.txt"; exit 2; }
VENV=$("$PY" -c 'import sys; print(sys.prefix)')
test -x "$VENV/bin/python" || { echo "error: no $VENV/bin/python" | tee -a "$OUT/environment.txt"; exit 2; }
touch "$VENV/.installed"  # `make setup`: already done, by the image and the wheels above
status=0
for model in base large; do
    echo "== make gpu-check MODEL=$model (limit ${LIMIT}s)"
    start=$SECONDS
    PYTHONUNBUFFERED=1 timeout "$LIMIT" make --no-print-directory gpu-check MODEL="$model" \
        CHECK_UPDATES="${CHECK_UPDATES:-3}" PRICE="${PRICE:-2.00}" VENV="$VENV" \
        GPU_CHECK_ROOT=/tmp/gpu-check 2>&1 | tee "$OUT/gpu-check-$model.txt"
    code=${PIPESTATUS[0]}
    echo "== MODEL=$model: exit $code after $((SECONDS - start)) s" | tee -a "$OUT/gpu-check-$model.txt"
    cp /tmp/gpu-check/gpu-check-"$model"-cuda.json "$OUT/" 2>/dev/null
    [ "$code" = 0 ] || status=1
done
exit $status
