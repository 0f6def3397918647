#!/usr/bin/env python3
"""check_layers.py SOURCE_DIR [--self-test]

Fails when a header or source of a layer includes one from a layer above it (docs/architecture.md, "Layers"):

    kernels/ < drivers/comm/ < drivers/optim/ < drivers/io/ < drivers/problems/ < drivers/run/ < drivers/program/

Every #include "..." or <...> that names a terse file (terse_*.hpp, found in one of those folders, by its path
relative to the includer or by its name) is checked. --self-test plants a violation (comm/ including optim/) in a
copy of the layout and checks that it is reported, so this test can fail.
"""
import os
import re
import shutil
import sys
import tempfile

LAYERS = ["kernels", "drivers/comm", "drivers/optim", "drivers/io", "drivers/problems", "drivers/run",
          "drivers/program"]
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')


def layer_of(root, path):
    rel = os.path.relpath(path, root).replace(os.sep, "/")
    for i, layer in enumerate(LAYERS):
        if rel == layer or rel.startswith(layer + "/"):
            return i
    return None


def check(root):
    files = {}  # basename -> [paths]
    for layer in LAYERS:
        for dirpath, _, names in os.walk(os.path.join(root, layer)):
            for n in names:
                if n.endswith((".hpp", ".cpp", ".hpp.in")):
                    files.setdefault(n, []).append(os.path.join(dirpath, n))
    problems, checked = [], 0
    for paths in files.values():
        for path in paths:
            mine = layer_of(root, path)
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    name = m.group(1)
                    base = os.path.basename(name)
                    if not base.startswith("terse_"):
                        continue
                    near = os.path.normpath(os.path.join(os.path.dirname(path), name))
                    targets = [near] if os.path.exists(near) else files.get(base, [])
                    for t in targets:
                        theirs = layer_of(root, t)
                        checked += 1
                        if theirs is not None and theirs > mine:
                            problems.append("%s:%d includes %s (%s, a layer above %s)" % (
                                os.path.relpath(path, root), lineno, name, LAYERS[theirs], LAYERS[mine]))
    return problems, checked


def self_test():
    tmp = tempfile.mkdtemp(prefix="terse-layers-")
    try:
        for layer in ("drivers/comm", "drivers/optim"):
            os.makedirs(os.path.join(tmp, layer))
        with open(os.path.join(tmp, "drivers/optim/terse_Up.hpp"), "w") as f:
            f.write("#pragma once\n")
        with open(os.path.join(tmp, "drivers/comm/terse_Down.hpp"), "w") as f:
            f.write('#pragma once\n#include "terse_Up.hpp"\n')
        problems, _ = check(tmp)
        if len(problems) != 1:
            print("self-test: the planted violation was not reported: %s" % problems)
            return 1
        print("self-test: reported %s" % problems[0])
        return 0
    finally:
        shutil.rmtree(tmp)


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    if "--self-test" in sys.argv[2:]:
        return self_test()
    problems, checked = check(sys.argv[1])
    for p in problems:
        print(p)
    print("%d includes of terse files checked against the layers %s: %d upward" % (
        checked, " < ".join(LAYERS), len(problems)))
    return 1 if problems or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
