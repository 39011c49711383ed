#!/usr/bin/env bash
# Builds every example module into examples/build/*.wasm (what `make examples`
# runs). Go modules need only the Go toolchain; the C module needs clang and
# wasm-ld, which this script installs with apt-get when they are missing and
# it runs as root. A module is rebuilt only when a source it depends on, this
# script or the Go version changed; FORCE=1 rebuilds everything.
#
#   bash examples/build.sh            # from anywhere in the repository
#   FORCE=1 bash examples/build.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
out=examples/build
mkdir -p "$out"

GO=${GO:-go}
FORCE=${FORCE:-0}

# A changed Go toolchain rebuilds every Go module.
go_version=$("$GO" env GOVERSION)
if [[ ! -f $out/.go-version || $(cat "$out/.go-version") != "$go_version" ]]; then
  FORCE=1
fi

# stale OUTPUT SOURCE... succeeds when OUTPUT is missing or older than any file
# under the SOURCE paths.
stale() {
  local target=$1
  shift
  [[ $FORCE == 1 || ! -f $target ]] && return 0
  [[ -n $(find "$@" -type f -newer "$target" -print -quit) ]]
}

# Go reactors: wasip1, c-shared, //go:wasmexport.
build_go() {
  local name=$1 pkg=$2
  local target=$out/$name.wasm
  if stale "$target" "$pkg" examples/internal go.mod go.sum examples/build.sh; then
    echo "go build  $target"
    GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 "$GO" build -buildmode=c-shared -trimpath -o "$target.tmp" "./$pkg"
    mv "$target.tmp" "$target"
  else
    echo "ok        $target"
  fi
}

build_go logreg_go examples/models/logreg_go
build_go gbdt_go examples/models/gbdt_go
build_go features_go examples/transforms/features_go
echo "$go_version" >"$out/.go-version"

# find_tool NAME prints the path of NAME, or of the newest NAME-<version>, or
# of /usr/lib/llvm-<version>/bin/NAME, and fails if there is none.
find_tool() {
  local name=$1 path
  if path=$(command -v "$name"); then
    echo "$path"
    return 0
  fi
  path=$(compgen -c "$name-" | grep -E "^$name-[0-9]+$" | sort -t- -k2 -n | tail -n1 || true)
  if [[ -n $path ]]; then
    command -v "$path"
    return 0
  fi
  path=$(ls -d /usr/lib/llvm-*/bin/"$name" 2>/dev/null | sort -V | tail -n1 || true)
  [[ -n $path ]] && echo "$path"
}

# C: clang --target=wasm32 with wasm-ld, no libc.
c_target=$out/logreg_c.wasm
if stale "$c_target" examples/models/logreg_c examples/build.sh; then
  clang=$(find_tool clang || true)
  wasm_ld=$(find_tool wasm-ld || true)
  if [[ -z $clang || -z $wasm_ld ]]; then
    if [[ $(id -u) -ne 0 ]]; then
      echo "examples/build.sh: the C example needs clang and wasm-ld (Debian packages clang and lld)." >&2
      echo "  Install them as root:  apt-get install -y clang lld   then run this script again." >&2
      exit 1
    fi
    echo "installing clang and lld with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends clang lld >/dev/null
    clang=$(find_tool clang)
    wasm_ld=$(find_tool wasm-ld)
  fi
  # clang looks for the linker as plain "wasm-ld": when it is only installed
  # under a versioned name, put a link to it first on PATH.
  if [[ $(basename "$wasm_ld") != wasm-ld ]] || ! command -v wasm-ld >/dev/null; then
    mkdir -p "$out/.bin"
    ln -sf "$wasm_ld" "$out/.bin/wasm-ld"
    export PATH="$root/$out/.bin:$PATH"
  fi
  echo "clang     $c_target"
  "$clang" --target=wasm32 -nostdlib -O2 -Wall -Wextra -Werror \
    -Wl,--no-entry \
    -Wl,--export=mlnode_alloc \
    -Wl,--export=mlnode_predict \
    -Wl,--export=mlnode_predict_batch \
    -o "$c_target.tmp" examples/models/logreg_c/model.c
  mv "$c_target.tmp" "$c_target"
else
  echo "ok        $c_target"
fi

ls -l "$out"/*.wasm
