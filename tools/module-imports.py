#!/usr/bin/env python3
"""Lists which top-level modules of a crate import which (`use crate::x`, `crate::x::` in code,
not in comments or tests), and any two modules that import each other.

    python3 tools/module-imports.py functions/pipeline/src
"""
import collections
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "functions/pipeline/src"
edges = collections.defaultdict(set)
for directory, _, files in os.walk(root):
    for name in files:
        if not name.endswith(".rs"):
            continue
        path = os.path.join(directory, name)
        parts = os.path.relpath(path, root)[:-3].split(os.sep)
        if parts[-1] in ("mod", "lib", "main"):
            parts = parts[:-1]
        module = parts[0] if parts else "(root)"
        code = open(path, encoding="utf-8").read().split("#[cfg(test)]")[0]
        code = "\n".join(line.split("//")[0] for line in code.splitlines())
        for used in re.findall(r"\bcrate::(\w+)", code):
            if used != module:
                edges[module].add(used)
for module in sorted(edges):
    print(f"{module} -> {', '.join(sorted(edges[module]))}")
circles = sorted((a, b) for a in edges for b in edges[a] if a < b and a in edges.get(b, ()))
print("circles:", ", ".join(f"{a} <-> {b}" for a, b in circles) or "none")
sys.exit(1 if circles else 0)
