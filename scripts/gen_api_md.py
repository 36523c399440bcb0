"""Writes docs/api.md, the API reference, from the docstrings of every name in
``lowbit.__all__`` (one copy of the text: the docstrings users also see in ``help()``), after
the conventions all functions share (docs/api_conventions.md)::

    python scripts/gen_api_md.py          # rewrite docs/api.md
    python scripts/gen_api_md.py --check  # exit 1 if docs/api.md is out of date

tests/test_docs.py runs the check, so a changed docstring cannot leave the page behind.
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import sys
import types

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "docs", "api.md")
CONVENTIONS = os.path.join(ROOT, "docs", "api_conventions.md")

# numpydoc section headings -> bold lines; the underline goes
_SECTION = re.compile(r"^(\w[\w ]*)\n-{3,}$", re.M)


_LISTS = {"Parameters", "Returns", "Raises", "Attributes", "Yields", "Warns",
          "Other Parameters", "See Also"}


def _markdown(doc: str) -> str:
    """A numpydoc docstring as Markdown: headings bold, parameter-style sections as lists
    (``name : type`` items, their indented text under them), examples in a code block, the
    rest (code in double backticks, which Markdown renders as code too) as it is."""
    doc = _SECTION.sub(lambda m: f"**{m.group(1)}**\n", doc)
    out, in_code, listing = [], False, False
    for line in doc.splitlines():
        if line.startswith("**") and line.endswith("**"):
            listing = line.strip("*") in _LISTS
        if line.startswith(">>>") and not in_code:
            out.append("```python")
            in_code = True
        elif in_code and not line.strip():
            out.append("```")
            in_code = False
        if listing and not in_code and line.strip() and not line.startswith("**"):
            line = "  " + line.strip() if line.startswith(" ") else "- " + line
        out.append(line)
    if in_code:
        out.append("```")
    # reST roles: :func:`x` -> `x`
    return re.sub(r":(?:func|class|meth|mod|data|attr):`~?([^`]+)`", r"`\1`", "\n".join(out))


def _signature(name: str, obj) -> str:
    try:
        return f"{name}{inspect.signature(obj)}"
    except (TypeError, ValueError):
        return name


def _entry(qual: str, obj, level: int = 3, prop: bool = False) -> list:
    lines = ["#" * level + f" `{qual}`" + (" (property)" if prop else ""), ""]
    if callable(obj) and not isinstance(obj, types.ModuleType) and not prop:
        lines += ["```python", _signature(qual, obj), "```", ""]
    lines += [_markdown(inspect.getdoc(obj) or "(no docstring)"), ""]
    if inspect.isclass(obj):
        for attr, member in vars(obj).items():
            if attr.startswith("_"):
                continue
            prop = isinstance(member, property)
            target = member.fget if prop else member
            target = getattr(target, "__func__", target)
            if not callable(target) or not inspect.getdoc(target):
                continue
            lines += _entry(f"{qual}.{attr}", target, level + 1, prop)
    return lines


def render() -> str:
    import lowbit as lb  # the installed package: its compiled part is needed

    with open(CONVENTIONS) as f:
        text = [f.read().rstrip(), ""]
    text += ["## Reference", "",
             "Every name of `lowbit.__all__`, from its docstring (`help(lowbit.NAME)` shows "
             "the same text).", ""]
    for name in lb.__all__:
        obj = getattr(lb, name)
        if isinstance(obj, types.ModuleType):
            text += [f"### `lowbit.{name}`", "", _markdown(inspect.getdoc(obj) or ""), ""]
            for sub in getattr(obj, "__all__", []):
                member = getattr(obj, sub)
                if callable(member) and inspect.getdoc(member):
                    text += _entry(f"lowbit.{name}.{sub}", member, 4)
            continue
        text += _entry(f"lowbit.{name}", obj)
    return "\n".join(text).rstrip() + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args(argv)
    page = render()
    if args.check:
        with open(OUT) as f:
            if f.read() != page:
                print("docs/api.md is out of date: python scripts/gen_api_md.py", file=sys.stderr)
                return 1
        return 0
    with open(OUT, "w") as f:
        f.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
