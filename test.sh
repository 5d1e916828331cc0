#!/bin/sh
# test.sh -- build and run the whole suite twice: normally and under
# AddressSanitizer + UndefinedBehaviorSanitizer (leaks included, and casts
# of out-of-range doubles to integers).
# The last line is "tests: N passed, N failed".
cd "$(dirname "$0")"
./setup.sh --console-tests || exit 1
set -e
meson setup build -Dwerror=true >/dev/null 2>&1 || meson setup --reconfigure build -Dwerror=true >/dev/null
ninja -C build
# float-cast-overflow: GCC's "undefined" leaves out casts of doubles outside an integer's range
SAN="-Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false"
SAN="$SAN -Dc_args=-fsanitize=float-cast-overflow -Dc_link_args=-fsanitize=float-cast-overflow"
meson setup build-asan $SAN >/dev/null 2>&1 || meson setup --reconfigure build-asan $SAN >/dev/null
ninja -C build-asan
set +e
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
meson test -C build --no-suite console --print-errorlogs --num-processes 2 > build/test-summary.txt 2>&1
cat build/test-summary.txt | tail -n 40
meson test -C build-asan --no-suite console --print-errorlogs --num-processes 2 --timeout-multiplier 3 > build-asan/test-summary.txt 2>&1
cat build-asan/test-summary.txt | tail -n 40
# the web console (docs/console.md), once: built with npm (console/build.sh
# never fails the run: without npm or the registry the console tests skip),
# then tested in headless Chromium against the normal build
ninja -C build console-dist > build/console-build.txt 2>&1 || cat build/console-build.txt
grep -h "NOT BUILT" build/console-build.txt
meson test -C build --suite console --print-errorlogs > build/console-summary.txt 2>&1
cat build/console-summary.txt | tail -n 15
count() { sed -n "s/^$1: *\([0-9]*\).*/\1/p" "$2" | head -n1; }
ok1=$(count Ok build/test-summary.txt); f1=$(count Fail build/test-summary.txt)
t1=$(count Timeout build/test-summary.txt)
ok2=$(count Ok build-asan/test-summary.txt); f2=$(count Fail build-asan/test-summary.txt)
t2=$(count Timeout build-asan/test-summary.txt)
ok3=$(count Ok build/console-summary.txt); f3=$(count Fail build/console-summary.txt)
t3=$(count Timeout build/console-summary.txt)
passed=$(( ${ok1:-0} + ${ok2:-0} + ${ok3:-0} ))
failed=$(( ${f1:-0} + ${f2:-0} + ${t1:-0} + ${t2:-0} + ${f3:-0} + ${t3:-0} ))
if [ -z "$ok1" ] || [ -z "$ok2" ]; then failed=$((failed + 1)); fi
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
