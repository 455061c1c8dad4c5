#!/usr/bin/env bash
# Parses scripts/windows-acceptance.ps1 with a real PowerShell grammar
# (tree-sitter-powershell, from PyPI) and fails on any syntax error, naming
# the line. PowerShell itself does not install here; the structural test
# in tests/it/acceptance_script.rs checks what a grammar does not (helpers
# defined, every step tied to a defect).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import tree_sitter, tree_sitter_powershell' 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check tree-sitter tree-sitter-powershell
python3 - scripts/windows-acceptance.ps1 <<'PY'
import sys
import tree_sitter_powershell as tsp
from tree_sitter import Language, Parser

path = sys.argv[1]
src = open(path, "rb").read()
tree = Parser(Language(tsp.language())).parse(src)
bad = []
def walk(n):
    if n.type == "ERROR" or n.is_missing:
        line = n.start_point[0] + 1
        bad.append(f"{path}:{line}:{n.start_point[1] + 1}: syntax error near {src[n.start_byte:n.end_byte][:60]!r}")
    for c in n.children:
        walk(c)
walk(tree.root_node)
if bad:
    print("\n".join(bad))
    sys.exit(1)
lines = src.count(b"\n") + 1
print(f"{path}: parses ({lines} lines, tree-sitter-powershell)")
PY
