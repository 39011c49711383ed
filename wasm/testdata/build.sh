#!/bin/sh
# Rebuilds every .wasm fixture from its .wat source. Needs wat2wasm from wabt
# (Debian: apt-get install -y wabt; built with wabt 1.0.32). The .wasm files
# are committed so that tests need no wabt. notwasm.wasm is not WebAssembly
# on purpose and has no source.
set -eu
cd "$(dirname "$0")"
for f in *.wat; do
	wat2wasm "$f" -o "${f%.wat}.wasm"
done
