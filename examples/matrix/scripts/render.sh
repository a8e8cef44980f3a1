#!/bin/sh
# Writes a greeting in one language and one format.
# Usage: render.sh LANG FORMAT OUT
set -eu
lang=$1 format=$2 out=$3
case $lang in
  en) text="Hello, world" ;;
  fr) text="Bonjour, le monde" ;;
  de) text="Hallo, Welt" ;;
  *) echo "unknown language: $lang" >&2; exit 1 ;;
esac
mkdir -p "$(dirname "$out")"
case $format in
  txt) printf '%s\n' "$text" > "$out" ;;
  md) printf '# %s\n\n_%s_\n' "$text" "$lang" > "$out" ;;
  *) echo "unknown format: $format" >&2; exit 1 ;;
esac
echo "wrote $out"
