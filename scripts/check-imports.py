#!/usr/bin/env python3
"""Fails when the crate's modules import each other in a circle (run by scripts/test.sh).

Every file under src/ is a module (src/net/node.rs is net::node, src/net/mod.rs is net). An
edge A -> B is any `crate::`, `super::` or `self::` path in A (use statements and inline paths,
comments and strings left out) that names module B or an item in it. A child's paths to its
own ancestors are left out: a mod.rs or lib.rs holding what its children share is the usual Rust
layout, and the parent's own edges still count. Binaries (src/bin/) are their own crates.

Usage: scripts/check-imports.py [SRC_DIR]   (prints each cycle found; exit status 1 if any)
"""
import pathlib
import re
import sys


def module_of(src: pathlib.Path, path: pathlib.Path) -> tuple:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts.pop()
    return tuple(parts)


def strip(code: str) -> str:
    """Removes comments, string and char literals (keeping line structure irrelevant)."""
    code = re.sub(r"/\*.*?\*/", " ", code, flags=re.S)
    code = re.sub(r'r#*"(?:.|\n)*?"#*', '""', code)
    code = re.sub(r'"(?:\\.|[^"\\])*"', '""', code)
    code = re.sub(r"//[^\n]*", " ", code)
    return re.sub(r"'(?:\\.|[^'\\\n])'", "' '", code)


def expand(tree: str) -> list:
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e] (renames and globs kept as paths)."""
    tree = re.sub(r"\s+", "", tree)
    depth, start, items = 0, 0, []
    brace = tree.find("{")
    if brace < 0:
        return [re.sub(r"as\w+$", "", tree)]
    prefix, inner = tree[:brace], tree[brace + 1 : tree.rindex("}")]
    for i, ch in enumerate(inner + ","):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            if inner[start:i]:
                items.append(inner[start:i])
            start = i + 1
    return [p for item in items for p in expand(prefix + item)]


def paths(code: str, module: tuple) -> list:
    """Absolute module paths referenced in one file's code."""
    found = []
    # Paths may also start at a child module the file declares (`mod phases;` then
    # `use phases::State`).
    children = re.findall(r"\bmod\s+(\w+)\s*;", code)
    roots = "|".join(["crate", "super", "self"] + children)
    # Inline `mod name {` blocks shift what `super` and `self` mean inside them.
    depth, inline = 0, []
    pattern = rf"\bmod\s+(\w+)\s*\{{|[{{}}]|\buse\s+([^;]+);|(?<![\w:])((?:{roots})(?:::\w+)+)"
    for token in re.finditer(pattern, code):
        if token.group(1):
            depth += 1
            inline.append((token.group(1), depth))
        elif token.group(0) == "{":
            depth += 1
        elif token.group(0) == "}":
            if inline and inline[-1][1] == depth:
                inline.pop()
            depth -= 1
        else:
            raw = expand(token.group(2)) if token.group(2) else [token.group(3)]
            here = list(module) + [name for name, _ in inline]
            for path in raw:
                segments = path.split("::")
                if segments[0] == "crate":
                    base, rest = [], segments[1:]
                elif segments[0] in children and not inline:
                    base, rest = list(module), segments
                elif segments[0] in ("super", "self"):
                    base = list(here)
                    while segments and segments[0] in ("super", "self"):
                        if segments[0] == "super":
                            base = base[:-1]
                        segments = segments[1:]
                    rest = segments
                else:
                    continue
                found.append(tuple(base + rest))
    return found


def main() -> int:
    src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    files = [p for p in src.rglob("*.rs") if "bin" not in p.relative_to(src).parts]
    modules = {module_of(src, p): p for p in files}
    edges = {m: set() for m in modules}
    for module, path in modules.items():
        for target in paths(strip(path.read_text()), module):
            # The longest prefix that is a module file.
            while target and target not in modules:
                target = target[:-1]
            if target != module and target != module[: len(target)]:
                edges[module].add(target)
    cycles, state = [], {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(modules):
        if node not in state:
            visit(node, [node])
    for cycle in cycles:
        print("import cycle: " + " -> ".join("::".join(m) or "crate" for m in cycle))
    if not cycles:
        print(f"no import cycle among {len(modules)} modules")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
