#!/usr/bin/env bash
# Prepare, on a CPU machine with a network, what travels to an offline GPU node for scripts/gpu_node.sh: the wheels
# of the modules the node lacks (fire, termcolor, munch, adamp; av too unless WITH_AV=0: only the action task needs
# it) for Python 3.12 on manylinux x86-64 in .whl/, and MNIST gzipped into .node/mnist/MNIST/raw/ (both git-ignored).
# Prints the size of what travels (tracked and untracked-unignored files plus those two paths) and the paths to
# carry; refuses (exit status 1) when it is over LIMIT_MIB.
#
#   bash scripts/gpu_node_bundle.sh
#
# Environment: MNIST_RAW=../shared/data/MNIST/raw  WITH_AV=1  BUILD_WHEELS=1 (0: keep .whl/ as it is)  LIMIT_MIB=64
set -euo pipefail
cd "$(dirname "$0")/.."
MNIST_RAW=${MNIST_RAW:-../shared/data/MNIST/raw}
LIMIT_MIB=${LIMIT_MIB:-64}
PURE_WHEELS=(fire==0.7.1 termcolor==3.3.0 munch==4.0.0 adamp==0.3.0)
AV_WHEEL=av==18.1.0
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)

if [[ ${BUILD_WHEELS:-1} == 1 ]]; then
  rm -rf .whl && mkdir .whl
  python3 -m pip wheel -q --no-deps -w .whl "${PURE_WHEELS[@]}"
  if [[ ${WITH_AV:-1} == 1 ]]; then
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      "${PLATFORMS[@]}" -d .whl "$AV_WHEEL"
  fi
fi

raw=.node/mnist/MNIST/raw
mkdir -p "$raw"
for name in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  if [[ -f "$MNIST_RAW/$name.gz" ]]; then
    cp "$MNIST_RAW/$name.gz" "$raw/$name.gz"
  elif [[ -f "$MNIST_RAW/$name" ]]; then
    gzip -9 -c "$MNIST_RAW/$name" >"$raw/$name.gz"
  else
    echo "error: $MNIST_RAW holds neither $name nor $name.gz (set MNIST_RAW)" >&2
    exit 1
  fi
done

carry=(.whl .node/mnist)
python3 - "$LIMIT_MIB" "${carry[@]}" <<'PYTHON'
import os
import subprocess
import sys

limit_mib, carried = float(sys.argv[1]), sys.argv[2:]
listed = subprocess.run(["git", "ls-files", "-z", "-c", "-o", "--exclude-standard"], capture_output=True,
                        check=True).stdout.split(b"\0")
tree = sum(os.path.getsize(name) for name in listed if name and os.path.isfile(name))
sizes = {path: sum(os.path.getsize(os.path.join(folder, name)) for folder, _, names in os.walk(path)
                   for name in names) for path in carried}
total = tree + sum(sizes.values())
print(f"working tree (tracked and untracked-unignored files): {tree / 2**20:.1f} MiB")
for path, size in sizes.items():
    print(f"carried {path}: {size / 2**20:.1f} MiB")
print(f"travels: {total / 2**20:.1f} MiB of {limit_mib:g} MiB")
if total > limit_mib * 2**20:
    sys.exit(f"error: {total / 2**20:.1f} MiB would travel, over the {limit_mib:g} MiB limit: leave av out "
             "(WITH_AV=0), or ignore large untracked files")
print("carry: " + " ".join(carried))
print("run:   OUT=$OUT DEADLINE_S=570 bash scripts/gpu_node.sh")
PYTHON
