#!/bin/sh
# check_lib.sh LIB OBJDIR [HOOKS_DEF]: build checks for libspillover.so (run by `make -C native`).
#  1. exported symbols are exactly cu[A-Z]*, nvml[A-Z]*, spillover_*, and dlsym under both
#     GLIBC_2.2.5 and GLIBC_2.34; the exported cu*/nvml* names are exactly the hook table
#     (src/hooks.def, which includes fenced.def), so no hook goes unexported and no export
#     bypasses the route table;
#  2. none of our objects has a constructor (.init_array/.ctors): all work is lazy;
#  3. no object references the public dlsym (ours would recurse; use the real one via dlvsym).
set -eu
lib=$1
objdir=$2
hooks_def=${3:-$(dirname "$0")/../src/hooks.def}
fail=0

bad=$(nm -D --defined-only "$lib" | awk '$2 != "A" {print $3}' |
  grep -Ev '^(cu[A-Z][A-Za-z0-9_]*|nvml[A-Z][A-Za-z0-9_]*|spillover_[A-Za-z0-9_]*|dlsym@GLIBC_2\.2\.5|dlsym@@GLIBC_2\.34)(@@SPILLOVER_1)?$' || true)
if [ -n "$bad" ]; then
  echo "check: unexpected exported symbols:" $bad >&2
  fail=1
fi
for v in 'dlsym@GLIBC_2.2.5' 'dlsym@@GLIBC_2.34'; do
  if ! nm -D --defined-only "$lib" | awk '{print $3}' | grep -qx "$v"; then
    echo "check: $v is not exported" >&2
    fail=1
  fi
done
if ! nm -D --defined-only "$lib" | awk '{print $3}' | grep -q '^cuMemAlloc_v2'; then
  echo "check: hooks are not exported" >&2
  fail=1
fi

# The hook table as the compiler sees it: one "HOOK name" line per SP_HOOK_CU/SP_HOOK_NVML.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! ${CC:-cc} -E -P -x c -I"$(dirname "$hooks_def")" -D'SP_HOOK_CU(n)=HOOK n' -D'SP_HOOK_NVML(n)=HOOK n' \
    "$hooks_def" >"$tmp/cpp" 2>"$tmp/err"; then
  echo "check: cannot preprocess $hooks_def: $(head -n 1 "$tmp/err")" >&2
  fail=1
fi
awk '$1 == "HOOK" {print $2}' "$tmp/cpp" | sort -u >"$tmp/hooks"
nm -D --defined-only "$lib" | awk '$2 != "A" {print $3}' | sed 's/@.*//' | grep -E '^(cu|nvml)[A-Z]' | sort -u >"$tmp/exports"
missing=$(comm -23 "$tmp/hooks" "$tmp/exports" | tr '\n' ' ')
extra=$(comm -13 "$tmp/hooks" "$tmp/exports" | tr '\n' ' ')
if [ -n "$missing" ]; then
  echo "check: in $hooks_def but not exported: $missing" >&2
  fail=1
fi
if [ -n "$extra" ]; then
  echo "check: exported but not in $hooks_def: $extra" >&2
  fail=1
fi

for o in "$objdir"/*.o; do
  if readelf -SW "$o" | grep -Eq '\.(init_array|ctors|preinit_array)'; then
    echo "check: $o has a constructor section" >&2
    fail=1
  fi
  if nm -u "$o" | awk '{print $2}' | grep -qx 'dlsym'; then
    echo "check: $o calls the public dlsym (use sp_real_dlsym_get)" >&2
    fail=1
  fi
done
# The library's own constructor table holds at most the toolchain's frame_dummy entry.
hex=$(readelf -SW "$lib" | awk '$2 == ".init_array" {print $6}')
n=""
[ -n "$hex" ] && n=$((0x$hex))
if [ -n "$n" ] && [ "$n" -gt 8 ]; then
  echo "check: $lib has $((n / 8)) .init_array entries (only the toolchain's one is allowed)" >&2
  fail=1
fi
if nm -D --undefined-only "$lib" | awk '{print $2}' | grep -Eq '^dlsym(@|$)'; then
  echo "check: $lib imports the public dlsym" >&2
  fail=1
fi
[ $fail -eq 0 ] && echo "check: $lib exports and init OK"
exit $fail
