#!/usr/bin/env bash
# House rules the compiler does not check (curl's checksrc idea): banned functions, files
# that don't open with a purpose comment, tabs, trailing whitespace. Exit 1 on findings.
set -u
cd "$(dirname "$0")/.."
status=0
files=$(git ls-files --cached --others --exclude-standard '*.c' '*.h' 2>/dev/null || find common lib server cli include tests bench -name '*.[ch]')
banned='\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|atoll|strtok|tmpnam|mktemp)\s*\('
for f in $files; do
  [ -f "$f" ] || continue
  if grep -nE "$banned" "$f" | grep -v 'checksrc: allow'; then
    echo "$f: banned function (use snprintf, strtol with checks, memcpy with lengths)"
    status=1
  fi
  if grep -nP '\t' "$f" >/dev/null; then echo "$f: tab character"; status=1; fi
  if grep -nE ' +$' "$f" >/dev/null; then echo "$f: trailing whitespace"; status=1; fi
  if ! head -c 4 "$f" | grep -q '^/\*'; then
    echo "$f: must open with a comment stating its purpose"
    status=1
  fi
done
exit $status
