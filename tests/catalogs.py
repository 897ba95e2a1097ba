"""What ``pybabel extract`` finds and what a gettext catalog lacks: the checks that every message of
the pages (tests/test_web_manage.py) and of ``graylink init`` (tests/test_init_zh.py) is translated."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def messages(*faces: str) -> set[str]:
    """The msgids that ``pybabel extract -F babel.cfg`` finds in ``faces`` (folders or files of the package)."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg

    with (ROOT / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    return {
        message if isinstance(message, str) else message[0]
        for filename, _line, message, _comments, _context in extract_from_dir(str(ROOT), method_map, options_map)
        if any(filename == face or filename.startswith(face + "/") for face in faces)
    }


def untranslated(found: set[str], po: Path) -> list[str]:
    """What ``found`` lacks in the catalog ``po`` (no msgstr, fuzzy, other placeholders), and what the catalog
    holds that no code uses any more."""
    from babel.messages.pofile import read_po

    with po.open("rb") as handle:
        catalog = read_po(handle)
    problems = []
    placeholder = re.compile(r"%\((\w+)\)s")
    for msgid in sorted(found):
        entry = catalog.get(msgid)
        if entry is None or not entry.string or entry.fuzzy:
            problems.append(f"not translated: {msgid!r}")
            continue
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        for text in strings:
            if not text or set(placeholder.findall(text)) != set(placeholder.findall(msgid)):
                problems.append(f"placeholders differ: {msgid!r} -> {text!r}")
    ids = (m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id)
    problems.extend(f"no code uses: {msgid!r}" for msgid in ids if msgid not in found)
    return problems
