#!/usr/bin/env python3
"""Finds import cycles between the files of the library crate under src/.

Usage: scripts/check-imports.py [--root DIR] [--skip PREFIX ...] [--notes]

The graph: one node per file reachable from src/lib.rs through `mod`
declarations (`#[path]` included). A -> B when code in A uses an item that
B defines:
  - `use` declarations, grouped or not (`self`, `super`, `crate`, renames,
    globs), resolved through `pub use` re-exports to the defining file;
  - paths in code and macro bodies that start with `crate::`, `$crate::`,
    `super::`, `self::` or a name brought in by `use` or `mod`
    (e.g. `crate::store::Db::Postgres`, `wire::from_json`);
  - such paths inside string literals, as serde's `with = "super::json::x"`.
A re-export (`pub use`) counts as a use by the re-exporting file. Edges from a file to the mod.rs/lib.rs of an
ancestor module are ignored (a child using its parent's `Error`/`Result` is
normal), as are edges within one file (inline modules included).

Output: each cycle (a strongly connected set of files, with one edge of
evidence per hop) and each file of src/ over 600 lines; exit status 1 when
there is any, else "no import cycles" and exit status 0. `--skip src/sim`
leaves out files under that prefix. `--notes` also lists parent mod.rs files
and children that use each other's own definitions (informational).
"""

import argparse
import os
import re
import sys

MAX_LINES = 600
ITEM_KEYWORDS = {"fn", "struct", "enum", "trait", "type", "const", "static", "union"}
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PATH_IN_STRING = re.compile(r"^(?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+$")


def tokenize(text):
    """Tokens as (kind, value, line): kinds id, str, punct. Comments dropped."""
    tokens, i, line, n = [], 0, 1, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    line += text[i] == "\n"
                    i += 1
        elif re.match(r'b?r#*"', text[i:i + 260]):
            m = re.match(r'b?r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j
            value = text[i + m.end():j]
            tokens.append(("str", value, line))
            line += value.count("\n")
            i = j + len(end)
        elif c == '"' or (c == "b" and text.startswith('b"', i)):
            j = i + (2 if c == "b" else 1)
            start = j
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            value = text[start:j]
            tokens.append(("str", value, line))
            line += value.count("\n")
            i = j + 1
        elif c == "'":
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\x..|\\.|[^\\'])'", text[i:i + 12])
            if m:
                i += m.end()
            else:
                m = IDENT.match(text, i + 1)
                i = m.end() if m else i + 1
        elif c == "$" and text.startswith("$crate", i):
            tokens.append(("id", "crate", line))
            i += 6
        elif c.isalpha() or c == "_":
            m = IDENT.match(text, i)
            word = m.group(0)
            if word.startswith("r#"):
                word = word[2:]
            tokens.append(("id", word, line))
            i = m.end()
        elif c.isdigit():
            m = re.match(r"[0-9][0-9A-Za-z_.]*", text[i:])
            i += m.end()
        elif text.startswith("::", i):
            tokens.append(("punct", "::", line))
            i += 2
        else:
            tokens.append(("punct", c, line))
            i += 1
    return tokens


class Module:
    """A module: the file holding it, its path, names defined and bound."""

    def __init__(self, path, file, parent):
        self.path = path
        self.file = file
        self.parent = parent
        self.children = {}
        self.items = {}
        self.uses = []
        self.globs = []


class Crate:
    def __init__(self, root):
        self.root = root
        self.modules = {}
        self.files = {}
        self.refs = []
        lib = os.path.join(root, "lib.rs")
        self.crate = self.load(lib, (), None, is_mod_rs=True)

    def load(self, file, path, parent, is_mod_rs):
        module = Module(path, file, parent)
        self.modules[path] = module
        with open(file, encoding="utf-8") as f:
            tokens = tokenize(f.read())
        self.files[file] = tokens
        base = os.path.dirname(file) if is_mod_rs else file[:-3]
        self.parse(tokens, module, base, os.path.dirname(file))
        return module

    def parse(self, tokens, root, base, file_dir):
        frames = [("mod", root, base)]
        pending_path = None
        i = 0
        while i < len(tokens):
            kind, value, line = tokens[i]
            module, mbase = frames[-1][1], frames[-1][2]
            at_top = frames[-1][0] == "mod"
            if kind == "punct" and value == "{":
                frames.append(("block", module, mbase))
            elif kind == "punct" and value == "}":
                if len(frames) > 1:
                    frames.pop()
            elif kind == "punct" and value == "#" and at_top:
                j = i + 1 + (i + 1 < len(tokens) and tokens[i + 1][1] == "!")
                if tokens[j:j + 4] and [t[1] for t in tokens[j:j + 3]] == ["[", "path", "="]:
                    pending_path = tokens[j + 3][1]
            elif kind == "id" and value == "use":
                i = self.parse_use(tokens, i, module, frames)
                continue
            elif kind == "id" and value == "mod" and at_top and tokens[i + 1][0] == "id":
                name = tokens[i + 1][1]
                follow = tokens[i + 2][1]
                if follow == ";":
                    child = self.child_file(mbase, file_dir, name, pending_path, module is frames[0][1])
                    if child:
                        module.children[name] = self.load(
                            child, module.path + (name,), module,
                            is_mod_rs=os.path.basename(child) == "mod.rs" or bool(pending_path),
                        )
                    pending_path = None
                    i += 3
                    continue
                if follow == "{":
                    inline = Module(module.path + (name,), module.file, module)
                    self.modules[inline.path] = inline
                    module.children[name] = inline
                    frames.append(("mod", inline, os.path.join(mbase, name)))
                    i += 3
                    continue
            elif kind == "id" and value == "macro_rules" and tokens[i + 1][1] == "!":
                module.items.setdefault(tokens[i + 2][1], line)
                i += 3
                continue
            elif kind == "id" and value in ITEM_KEYWORDS and at_top:
                nxt = tokens[i + 1] if i + 1 < len(tokens) else ("", "", 0)
                if nxt[0] == "id" and nxt[1] not in ITEM_KEYWORDS | {"unsafe", "async", "extern", "mut"}:
                    module.items.setdefault(nxt[1], line)
                elif nxt[1] == "mut" and tokens[i + 2][0] == "id":
                    module.items.setdefault(tokens[i + 2][1], line)
            elif kind == "id" and value in ("crate", "super", "self") or kind == "str":
                i = self.scan_path(tokens, i, module)
                continue
            elif kind == "id" and (i == 0 or tokens[i - 1][1] != "::") and \
                    i + 1 < len(tokens) and tokens[i + 1][1] == "::":
                i = self.scan_path(tokens, i, module)
                continue
            i += 1

    def child_file(self, base, file_dir, name, path_attr, in_file_root):
        if path_attr:
            candidate = os.path.join(file_dir if in_file_root else base, path_attr)
            return candidate if os.path.exists(candidate) else None
        for candidate in (os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")):
            if os.path.exists(candidate):
                return candidate
        return None

    def scan_path(self, tokens, i, module):
        kind, value, line = tokens[i]
        if kind == "str":
            if PATH_IN_STRING.match(value):
                self.refs.append((module, value.split("::"), line, "code", None))
            return i + 1
        segments, j = [value], i + 1
        while j + 1 < len(tokens) and tokens[j][1] == "::" and tokens[j + 1][0] == "id":
            segments.append(tokens[j + 1][1])
            j += 2
        self.refs.append((module, segments, line, "code", None))
        return j

    def parse_use(self, tokens, i, module, frames):
        k, vis = i - 1, False
        if k >= 0 and tokens[k][1] == ")":
            while k >= 0 and tokens[k][1] != "(":
                k -= 1
            k -= 1
        if k >= 0 and tokens[k][1] == "pub":
            vis = True
        j = i + 1
        if tokens[j][1] == "::":
            j += 1
        end = j
        while tokens[end][1] != ";":
            end += 1
        self.use_tree(tokens[j:end], [], module, vis, tokens[i][2])
        return end + 1

    def use_tree(self, toks, prefix, module, vis, line):
        segs, k = list(prefix), 0
        while k < len(toks):
            kind, value, _ = toks[k]
            if value == "{":
                depth, start, parts = 1, k + 1, []
                m = start
                while m < len(toks) and depth:
                    if toks[m][1] == "{":
                        depth += 1
                    elif toks[m][1] == "}":
                        depth -= 1
                    if (toks[m][1] == "," and depth == 1) or depth == 0:
                        parts.append(toks[start:m])
                        start = m + 1
                    m += 1
                for part in parts:
                    if part:
                        self.use_tree(part, segs, module, vis, line)
                return
            if value == "*":
                module.globs.append((segs, vis, line))
                return
            if value == "as":
                alias = toks[k + 1][1]
                self.bind(module, segs, alias, vis, line)
                return
            if kind == "id":
                segs.append(value)
            k += 1
        if segs:
            name = segs[-1] if segs[-1] != "self" else segs[-2]
            self.bind(module, segs, name, vis, line)

    def bind(self, module, segs, name, vis, line):
        if segs and segs[-1] == "self":
            segs = segs[:-1]
        module.uses.append((name, segs, vis, line))
        self.refs.append((module, segs, line, "use", (name, vis)))

    # Resolution -------------------------------------------------------

    def start(self, module, first):
        if first == "crate":
            return self.crate
        if first == "self":
            return module
        if first == "super":
            return module.parent
        return None

    def lookup(self, module, name, seen):
        """What `name` means in `module`: ("mod", Module) or ("item", file) or None."""
        key = (module.path, name)
        if key in seen:
            return None
        seen = seen | {key}
        if name in module.children:
            return ("mod", module.children[name])
        if name in module.items:
            return ("item", module.file, module)
        for alias, segs, _vis, _line in module.uses:
            if alias == name:
                return self.resolve(module, segs, seen)
        for segs, _vis, _line in module.globs:
            target = self.resolve(module, segs, seen)
            if target and target[0] == "mod":
                found = self.lookup(target[1], name, seen)
                if found:
                    return found
        return None

    def resolve(self, module, segs, seen=frozenset()):
        if not segs:
            return None
        current = self.start(module, segs[0])
        rest = segs[1:]
        if current is None:
            found = self.lookup(module, segs[0], seen)
            if found is None:
                return None
            if found[0] == "item":
                return found
            current = found[1]
        for seg in rest:
            if seg == "super":
                current = current.parent
                continue
            if seg == "self":
                continue
            found = self.lookup(current, seg, seen)
            if found is None:
                return ("mod", current)
            if found[0] == "item":
                return found
            current = found[1]
        return ("mod", current)

    def edges(self):
        """Yields (from file, to file, line, what)."""
        for module, segs, line, _how, _binding in self.refs:
            target = self.resolve(module, segs)
            if target is None:
                continue
            to_file = target[1].file if target[0] == "mod" else target[1]
            if to_file == module.file or self.is_ancestor(module, to_file):
                continue
            yield module.file, to_file, line, "::".join(segs)

    def is_ancestor(self, module, to_file):
        m = module.parent
        while m is not None:
            if m.file == to_file:
                return True
            m = m.parent
        return False


def strongly_connected(nodes, graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def cycle_in(comp, graph):
    """One cycle through the first file of a strongly connected set."""
    members = set(comp)
    start = min(comp)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph.get(v, ())):
            if w == start:
                return paths[v] + [start]
            if w in members and w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    return [start]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.join(os.path.dirname(__file__), "..", "src"))
    parser.add_argument("--skip", action="append", default=[])
    parser.add_argument("--notes", action="store_true")
    args = parser.parse_args()
    root = os.path.normpath(args.root)
    top = os.path.dirname(root)

    def rel(f):
        return os.path.relpath(f, top)

    def skipped(f):
        return any(rel(f).startswith(p.rstrip("/") + "/") or rel(f) == p for p in args.skip)

    crate = Crate(root)
    graph, evidence = {}, {}
    for a, b, line, what in crate.edges():
        if skipped(a) or skipped(b):
            continue
        graph.setdefault(a, set()).add(b)
        evidence.setdefault((a, b), (line, what))
    problems = 0
    for comp in strongly_connected(crate.files.keys(), graph):
        problems += 1
        cycle = cycle_in(comp, graph)
        print("cycle: " + " -> ".join(rel(f) for f in cycle))
        for a, b in zip(cycle, cycle[1:]):
            line, what = evidence[(a, b)]
            print(f"    {rel(a)}:{line} uses {what} ({rel(b)})")
        others = sorted(set(comp) - set(cycle))
        if others:
            print("    also in this cycle: " + ", ".join(rel(f) for f in others))
    for dirpath, _dirs, names in os.walk(root):
        for name in sorted(names):
            path = os.path.join(dirpath, name)
            if not name.endswith(".rs") or skipped(path):
                continue
            with open(path, encoding="utf-8") as f:
                count = sum(1 for _ in f)
            if count > MAX_LINES:
                problems += 1
                print(f"too long: {rel(path)} has {count} lines (at most {MAX_LINES})")
    if args.notes:
        print_notes(crate, rel)
    if problems:
        return 1
    print("no import cycles")
    return 0


def print_notes(crate, rel):
    """Parent mod.rs and child files that use each other's own definitions."""
    uses = {}
    for module, segs, _line, how, binding in crate.refs:
        if how == "use" and binding[1]:
            continue
        target = crate.resolve(module, segs)
        if target and target[0] == "item" and target[1] != module.file:
            uses.setdefault((module.file, target[1]), set()).add(segs[-1])
    for (a, b), names in sorted(uses.items()):
        if (b, a) in uses and os.path.basename(b) in ("mod.rs", "lib.rs") \
                and os.path.dirname(b) in os.path.dirname(a) + "/" + os.path.dirname(a):
            print(f"note: {rel(a)} uses {', '.join(sorted(names))} of its parent {rel(b)}, "
                  f"which uses {', '.join(sorted(uses[(b, a)]))} of it")


if __name__ == "__main__":
    sys.exit(main())
