#!/usr/bin/env python3
"""Copies deploy/tern.toml into deploy/kubernetes/configmap.yaml (the
`tern.toml: |` block), which broker/tests/deploy.rs requires to be verbatim."""
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent
toml = (root / "deploy/tern.toml").read_text().rstrip("\n").split("\n")
cm_path = root / "deploy/kubernetes/configmap.yaml"
lines = cm_path.read_text().split("\n")
start = next(i for i, l in enumerate(lines) if l.strip() == "tern.toml: |")
indent = " " * (len(lines[start]) - len(lines[start].lstrip()) + 2)
end = start + 1
while end < len(lines) and (lines[end].startswith(indent) or lines[end] == ""):
    end += 1
# Keep a trailing blank line out of the block.
while end > start + 1 and lines[end - 1] == "":
    end -= 1
block = [indent + l if l else "" for l in toml]
new = lines[: start + 1] + block + lines[end:]
text = "\n".join(new)
if "--check" in sys.argv:
    sys.exit(0 if text == cm_path.read_text() else 1)
cm_path.write_text(text)
