#!/bin/bash
# `stash.sh stash`: move every tracked or untracked (not ignored) file of 200 KB or more out of
# the tree, so that what travels to the device stays under 64 MiB; `stash.sh restore`: move them
# back (a file that exists again in the tree, written meanwhile, is kept and named).
set -e
cd "$(git rev-parse --show-toplevel)"; S=${STASH:-/tmp/stash2}
if [ "$1" = stash ]; then
  { git ls-files -z; git ls-files -z --others --exclude-standard; } | while IFS= read -r -d '' f; do
    [ -f "$f" ] || continue
    s=$(stat -c %s "$f"); if [ "$s" -ge 200000 ]; then mkdir -p "$S/$(dirname "$f")"; mv "$f" "$S/$f"; fi
  done
  { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 du -cb 2>/dev/null | tail -1
else
  (cd $S && find . -type f) | while read -r f; do
    if [ -e "$f" ]; then echo "kept newer $f"; else mkdir -p "$(dirname "$f")"; mv "$S/$f" "$f"; fi
  done
  find $S -type f | wc -l
fi
