#!/usr/bin/env bash
# Run HERE (a Debian machine with apt), before using scripts/gpu-check.sh on a
# GPU machine that has CUDA, CMake and ninja but none of our Debian packages
# and no network. Downloads the .deb files the build needs into .gpu-debs/
# (git-ignored; pass it to the device tool with carry: [".gpu-debs"]).
# gpu-check.sh unpacks them with `dpkg -x` into a private prefix, never into /.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build-time headers and libraries (see CMakeLists.txt and scripts/setup.sh),
# plus the shared libraries they link against at run time. Google Benchmark,
# oneDNN, cpp-httplib and the npm packages are not needed for the GPU tests.
PACKAGES=(
  nlohmann-json3-dev libcli11-dev                            # header-only
  libopenblas-openmp-dev libopenblas0-openmp libgfortran5 libquadmath0
  libsentencepiece-dev libsentencepiece0
  libxxhash-dev libxxhash0
  zlib1g-dev zlib1g
  libgtest-dev libgmock-dev
)

mkdir -p .gpu-debs
rm -f .gpu-debs/*.deb
(cd .gpu-debs && apt-get download "${PACKAGES[@]}")
# cuDNN's headers from the toolkit here, for a GPU machine whose cuDNN (PyTorch's
# wheel) comes without them; its library is opened at run time.
if compgen -G "/usr/local/cuda/include/cudnn*.h" >/dev/null; then
  mkdir -p .gpu-debs/cudnn/include
  cp /usr/local/cuda/include/cudnn*.h .gpu-debs/cudnn/include/
fi
# The Mistral tokenizer rebuilt from its npm package (the device machine has no
# npm): scripts/gpu-commands.sh prepares and decodes with it.
for model in build/data/mistral-tokenizer.model "${HESSGPT_TOKENIZER:-}"; do
  if [ -n "$model" ] && [ -f "$model" ]; then cp "$model" .gpu-debs/mistral-tokenizer.model; break; fi
done
[ -f .gpu-debs/mistral-tokenizer.model ] ||
  echo "gpu-debs: no tokenizer model (build the mistral_tokenizer_model target first)" >&2
echo "gpu-debs: $(ls .gpu-debs/*.deb | wc -l) packages, $(du -sh .gpu-debs | cut -f1) in .gpu-debs/"
