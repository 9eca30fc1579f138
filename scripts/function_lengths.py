#!/usr/bin/env python3
"""Lists the functions of C++ files longer than a limit (issue 20: none in src/train or
src/methods above about 80 lines), by brace matching after comments, strings and character
literals are blanked. A function is a brace block at namespace or class scope whose header ends
with a parameter list (constructors with an initialiser list included); lambdas and blocks
inside a function count towards it.

  scripts/function_lengths.py [--limit N] FILE...

Exit 0: none longer; 1: the long ones listed (lines, file:line, name)."""
import re
import sys


def blank(src):
    s = re.sub(r'//[^\n]*', '', src)
    s = re.sub(r'/\*.*?\*/', lambda m: '\n' * m.group(0).count('\n'), s, flags=re.S)
    s = re.sub(r'"(\\.|[^"\\\n])*"', '""', s)
    s = re.sub(r"(?<![0-9A-Za-z_])'(\\.|[^'\\\n])'", "' '", s)
    return s


def functions(path):
    s = blank(open(path, encoding='utf-8').read())
    out, stack, line = [], [], 1
    for i, ch in enumerate(s):
        if ch == '\n':
            line += 1
        elif ch == '{':
            hdr = s[max(0, i - 400):i]
            if (re.search(r'\bnamespace\b[^;{}]*$', hdr) or re.search(r'\b(struct|class|enum|union)\b[^;{}()]*$', hdr)
                    or re.search(r'extern\s+""\s*$', hdr)):
                kind = 'scope'
            elif (re.search(r'\)\s*(const)?\s*(noexcept)?\s*(override)?\s*(->[^{;]*)?$', hdr)
                  or re.search(r'\)\s*:[^;{}]*$', hdr)):
                kind = 'func'
            else:
                kind = 'other'
            stack.append((kind, line, hdr))
        elif ch == '}':
            if not stack:
                sys.exit(f"function_lengths: unbalanced braces in {path}:{line}")
            kind, start, hdr = stack.pop()
            if kind == 'func' and all(k == 'scope' for k, _, _ in stack):
                m = re.search(r'([~\w:]+(?:<[^<>()]*>)?(?:::[~\w]+)?)\s*\([^;{}]*$', hdr)
                out.append((line - start + 1, start, m.group(1) if m else '?'))
    return out


def main(argv):
    limit, files = 80, []
    it = iter(argv[1:])
    for a in it:
        if a == '--limit':
            limit = int(next(it))
        else:
            files.append(a)
    long_ones = [(n, f, l0, name) for f in files for n, l0, name in functions(f) if n > limit]
    for n, f, l0, name in sorted(long_ones, reverse=True):
        print(f"{n:5d} {f}:{l0} {name}")
    if long_ones:
        print(f"function_lengths: {len(long_ones)} function(s) longer than {limit} lines")
        return 1
    print(f"function_lengths: every function of {len(files)} files is at most {limit} lines")
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
