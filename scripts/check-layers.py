#!/usr/bin/env python3
"""No import loop inside broker/src: every file may refer (by `use` or by
path) only to modules below it. Prints the loops it finds and exits 1.

A file's references are its `crate::a::b` and `super::x` paths outside
its unit-test module (`#[cfg(test)] mod tests`, where `super` is the file
itself). A reference names the file of the longest module path
that exists; a file's `mod child;` declarations are not references.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "broker/src")


def module_of(path: pathlib.Path) -> tuple:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


files = {module_of(p): p for p in ROOT.rglob("*.rs")}
PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
GROUP = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^}]*)\}", re.S)


def resolve(base: tuple, names: list) -> tuple:
    best = None
    for i in range(len(names) + 1):
        cand = base + tuple(names[:i])
        if cand in files:
            best = cand
    return best


def targets(mod: tuple, text: str):
    test = re.search(r"#\[cfg\(test\)\]\s*mod tests\s*\{", text)
    if test:
        text = text[: test.start()]
    text = re.sub(r"//[^\n]*", "", text)
    found = []
    for m in GROUP.finditer(text):
        kind, prefix, inner = m.group(1), m.group(2), m.group(3)
        for item in inner.split(","):
            item = item.strip().split(" as ")[0].split("::")
            item = [x for x in item if x and x not in ("self", "{", "}")]
            found.append((kind, [x for x in prefix.split("::") if x] + item))
    for m in PATH.finditer(GROUP.sub("", text)):
        found.append((m.group(1), [x for x in m.group(2).split("::") if x]))
    # `use child::x;` from a module to one of its own submodules.
    for m in re.finditer(r"\buse\s+([a-z_][a-z0-9_]*)::", text):
        if m.group(1) not in ("crate", "super", "self", "std") and mod + (m.group(1),) in files:
            found.append(("self", [m.group(1)]))
    out = set()
    for kind, names in found:
        if kind == "self":
            out.add(mod + tuple(names))
            continue
        if kind == "crate":
            base = ()
        else:
            # `super` of a file `a/b.rs` (module a::b) is `a`.
            base = mod[:-1]
            while names and names[0] == "super":
                base, names = base[:-1], names[1:]
        t = resolve(base, names)
        if t is not None and t != mod:
            out.add(t)
    return out


graph = {m: targets(m, p.read_text()) for m, p in files.items()}
# The crate root declares and re-exports everything: it is the top.
root = ()
loops = []
state = {}


def visit(m, stack):
    state[m] = 1
    stack.append(m)
    for t in sorted(graph[m]):
        if t == root:
            loops.append([m, t])
            continue
        if state.get(t) == 1:
            loops.append(stack[stack.index(t):] + [t])
        elif t not in state:
            visit(t, stack)
    stack.pop()
    state[m] = 2


for m in sorted(graph):
    if m not in state:
        visit(m, [])

name = lambda m: "::".join(m) or "crate"
if loops:
    for loop in loops:
        print("import loop: " + " -> ".join(name(m) for m in loop))
    sys.exit(1)
print(f"broker/src: {len(files)} files, no import loop")
