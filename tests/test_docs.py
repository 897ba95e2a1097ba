"""The examples in README.md, README.zh-CN.md and docs/*.md work when pasted.

- every ```ini block loads with graylink's own loader (``read_raw`` then
  ``parse_raw``, as ``load_config`` does), after placeholder folders fill in the
  ``[paths]`` keys a fragment leaves out; other INI files (systemd units,
  rclone.conf) are fenced as ```systemd / ```conf;
- every ``graylink …`` command line (in ```sh / ```console / ```bash blocks, in
  inline code, in a unit's ``ExecStart=``) parses with the real click group;
- cli.md's synopsis names every command and option, and nothing else.

A failure names the file, the line, and what failed.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest

from graylink.cli import cli
from graylink.config import ConfigError, parse_raw, read_raw

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", ROOT / "README.zh-CN.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGS = {"sh", "bash", "shell", "console"}
FENCE = re.compile(r"^(```|~~~)\s*([\w+-]*)")
INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
COMMAND_SUBSTITUTION = re.compile(r"\$\([^()]*\)|`[^`]*`")
OPERATORS = {";", "&&", "||", "|", "&", "(", ")", "|&"}
WRAPPERS = {"sudo", "env", "exec", "nice", "time", "nohup"}


@dataclass(frozen=True)
class Block:
    file: Path
    line: int  # of the block's first content line
    lang: str
    lines: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"


@dataclass(frozen=True)
class Example:
    """One command line of a doc, as the shell would split it into words."""

    where: str
    text: str
    args: tuple[str, ...]


def blocks(path: Path) -> list[Block]:
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, lang = opening.groups()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith(fence)), len(lines))
        found.append(Block(path, i + 2, lang.lower(), tuple(lines[i + 1 : end])))
        i = end + 1
    return found


def prose_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The lines outside fenced blocks, numbered from 1."""
    inside: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        opening = FENCE.match(line)
        if opening and (inside is None or line.startswith(inside)):
            inside = opening.group(1) if inside is None else None
            continue
        if inside is None:
            yield number, line


# ------------------------------------------------------------------ ini blocks


def ini_blocks() -> list[Block]:
    return [block for path in DOC_FILES for block in blocks(path) if block.lang == "ini"]


def block_line_of(block: Block, message: str) -> int:
    """The doc line an error is about: the key it names, or configparser's [line N]."""
    at = re.search(r"\[line\s+(\d+)\]", message)
    if at:
        return block.line + int(at.group(1)) - 1
    section = re.search(r"unknown section \[([^\]]+)\]", message)
    if section:
        return block.line + next((i for i, line in enumerate(block.lines) if line.strip() == f"[{section[1]}]"), 0)
    named = re.match(r"\[(\w+)\] (\w+):", message) or re.search(r"unknown key '(\w+)'", message)
    if named:
        key = named.group(named.lastindex or 1)
        for offset, line in enumerate(block.lines):
            if re.match(rf"\s*{re.escape(key)}\s*[=:]", line):
                return block.line + offset
    return block.line


@pytest.mark.parametrize("block", ini_blocks(), ids=lambda b: b.where)
def test_every_ini_block_loads_with_the_config_loader(block: Block, tmp_path: Path) -> None:
    ini = tmp_path / "example.ini"
    ini.write_text("\n".join(block.lines) + "\n", encoding="utf-8")
    try:
        raw = read_raw(str(ini), {})
        # A fragment shows a few keys; the rest of a working file is filled in.
        paths = raw["paths"]
        paths.setdefault("source", str(tmp_path / "source"))
        paths.setdefault("target", str(tmp_path / "links"))
        paths.setdefault("database", str(tmp_path / "graylink.db"))
        parse_raw(raw, file=str(ini))
    except ConfigError as exc:
        message = str(exc).replace(f"{ini}: ", "")
        where = f"{block.file.relative_to(ROOT)}:{block_line_of(block, message)}"
        pytest.fail(f"{where}: this ```ini block does not load as a graylink config: {message}", pytrace=False)


# ------------------------------------------------------------- command lines


def logical_lines(block: Block) -> Iterator[tuple[int, str]]:
    """Shell lines with their continuations joined; a console block's commands only."""
    pending, start = "", 0
    for offset, line in enumerate(block.lines):
        if block.lang == "console":
            if pending:
                text = line
            elif line.startswith("$ "):
                text = line[2:]
            else:
                continue
        elif block.lang in SHELL_LANGS:
            text = line
        else:  # a systemd unit: its Exec lines are command lines
            exec_line = re.match(r"\s*Exec\w*=[-@:+!]*(.*)", line)
            if not exec_line and not pending:
                continue
            text = exec_line.group(1) if exec_line and not pending else line
        if not pending:
            start = block.line + offset
        if text.rstrip().endswith("\\"):
            pending += text.rstrip()[:-1] + " "
            continue
        yield start, pending + text
        pending = ""
    if pending:
        yield start, pending


def simple_commands(text: str) -> Iterator[list[str]]:
    """The words of each simple command of a shell line (split at ; && || | &)."""
    lexer = shlex.shlex(COMMAND_SUBSTITUTION.sub("SUBSTITUTED", text), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words: list[str] = []
    skip_next = False
    for token in lexer:
        if skip_next:
            skip_next = False
        elif token in OPERATORS:
            yield words
            words = []
        elif token and token[0] in "<>":  # a redirection: drop it and its target
            if words and words[-1].isdigit():
                words.pop()
            skip_next = True
        else:
            words.append(token)
    yield words


def graylink_args(words: list[str]) -> list[str] | None:
    """The arguments after ``graylink`` when these words run it, else None."""
    while words and ASSIGNMENT.match(words[0]):
        if words[0].startswith("_GRAYLINK_COMPLETE="):
            return None  # prints the completion script: checked by its own test
        words = words[1:]
    while words and words[0] in WRAPPERS:
        words = words[1:]
        while words and (words[0].startswith("-") or ASSIGNMENT.match(words[0])):
            takes_value = words[0] in ("-u", "-g")
            words = words[2:] if takes_value else words[1:]
    if words and words[0] in ("docker", "podman"):
        # "docker compose run --rm graylink graylink status": the container or
        # service may be called graylink too; the command is the last such word
        # ("docker logs graylink" then reads as a bare `graylink`, which parses).
        at = [i for i, word in enumerate(words) if os.path.basename(word) == "graylink"]
        return words[at[-1] + 1 :] if at else None
    if words and os.path.basename(words[0]) == "graylink":
        return words[1:]
    if len(words) >= 3 and os.path.basename(words[0]).startswith("python") and words[1:3] == ["-m", "graylink"]:
        return words[3:]
    return None


def examples_in(path: Path) -> Iterator[Example]:
    rel = path.relative_to(ROOT)
    for block in blocks(path):
        if block.lang not in SHELL_LANGS and block.lang != "systemd":
            continue
        for line, text in logical_lines(block):
            yield from _examples(f"{rel}:{line}", text)
    for line, text in prose_lines(path):
        for code in INLINE_CODE.findall(text):
            runs = code.startswith(("graylink ", "python3 -m graylink", "python -m graylink", "docker ", "podman "))
            if runs or code == "graylink":
                yield from _examples(f"{rel}:{line}", code)


def _examples(where: str, text: str) -> Iterator[Example]:
    try:
        commands = list(simple_commands(text))
    except ValueError as exc:  # unbalanced quotes
        if "graylink" in text:
            yield Example(where, text, ("<unparsable shell line>", str(exc)))
        return
    for words in commands:
        args = graylink_args(words)
        if args is not None:
            yield Example(where, text, tuple(args))


def all_examples() -> list[Example]:
    examples = [example for path in DOC_FILES for example in examples_in(path)]
    service = ROOT / "docs" / "graylink.service"
    if service.exists():
        unit = Block(service, 1, "systemd", tuple(service.read_text(encoding="utf-8").splitlines()))
        for line, text in logical_lines(unit):
            examples.extend(_examples(f"docs/graylink.service:{line}", text))
    return examples


def parse_only(group: click.Group) -> click.Group:
    """A copy of the real command group whose commands parse their arguments and do nothing."""
    copied = copy.deepcopy(group)

    def silence(command: click.Command) -> None:
        command.callback = _nothing
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                silence(sub)

    silence(copied)
    return copied


def _nothing(*_args: Any, **_kwargs: Any) -> None:
    return None


EXAMPLES = all_examples()


def test_the_docs_have_command_lines() -> None:
    assert len(EXAMPLES) > 30, [e.where for e in EXAMPLES]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("graylink status 2>&1 | less", [["status"]]),
        ("graylink -v reconcile --dry-run >/tmp/plan 2>/dev/null", [["-v", "reconcile", "--dry-run"]]),
        ("sudo -u media GRAYLINK_CONFIG=/x graylink doctor && graylink status", [["doctor"], ["status"]]),
        ("graylink db backup /b/g-$(date +%F).db   # nightly", [["db", "backup", "/b/g-SUBSTITUTED.db"]]),
        ("docker exec graylink graylink-entrypoint graylink status", [["status"]]),
        ("python3 -m graylink --version", [["--version"]]),
        ("rclone mount gdrive: /mnt/g --daemon", []),
    ],
)
def test_command_lines_are_read_as_the_shell_splits_them(line: str, expected: list[list[str]]) -> None:
    found = [args for words in simple_commands(line) if (args := graylink_args(words)) is not None]
    assert found == expected


def test_a_drifted_ini_block_names_its_file_line_and_key(tmp_path: Path) -> None:
    doc = ROOT / "docs" / "example.md"
    block = Block(doc, 10, "ini", ("[paths]", "source = /s", "", "[scan]", "intervall = 5m"))
    with pytest.raises(pytest.fail.Exception, match=r"docs/example.md:14: .*unknown key 'intervall' in \[scan\]"):
        test_every_ini_block_loads_with_the_config_loader(block, tmp_path)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"{e.where} {' '.join(e.args)}")
def test_every_graylink_command_line_parses(example: Example) -> None:
    group = parse_only(cli)
    try:
        code = group.main(list(example.args), prog_name="graylink", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError:
        return  # a plain `graylink` prints the help
    except click.ClickException as exc:
        pytest.fail(f"{example.where}: `{example.text.strip()}` does not parse: {exc.format_message()}", pytrace=False)
    assert code in (None, 0), f"{example.where}: `{example.text.strip()}` exits {code}"


def test_the_documented_shell_completion_completes(tmp_path: Path) -> None:
    """cli.md's bash line, run by a real bash: `graylink rec<Tab>` and `graylink reconcile --d<Tab>`."""
    bash = shutil.which("bash")
    script = Path(sys.executable).parent / "graylink"
    if bash is None or not script.exists():
        pytest.skip("needs bash and graylink's console script beside this Python")
    lines = [line for block in blocks(ROOT / "docs" / "cli.md") if block.lang == "sh" for line in block.lines]
    documented = next(line for line in lines if "bash_source" in line).split("#")[0].strip()
    probe = (
        f"{documented}\n"
        'COMP_WORDS=(graylink rec); COMP_CWORD=1; _graylink_completion graylink; echo "1:${COMPREPLY[*]}"\n'
        "COMPREPLY=(); COMP_WORDS=(graylink reconcile --d); COMP_CWORD=2; _graylink_completion graylink;"
        ' echo "2:${COMPREPLY[*]}"\n'
    )
    env = {**os.environ, "PATH": f"{script.parent}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(tmp_path)}
    run = subprocess.run([bash, "--norc", "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert "1:reconcile" in run.stdout.splitlines(), (documented, run.stdout, run.stderr)
    assert "2:--dry-run" in run.stdout.splitlines(), (documented, run.stdout, run.stderr)


# ------------------------------------------------------------- cli.md synopsis


def synopsis() -> list[tuple[str, str]]:
    cli_md = ROOT / "docs" / "cli.md"
    block = next(b for b in blocks(cli_md) if b.lang == "" and b.lines[0].startswith("graylink"))
    return [(f"docs/cli.md:{block.line + i}", line) for i, line in enumerate(block.lines) if line.strip()]


def command_path(line: str) -> tuple[str, ...]:
    words = re.sub(r"\[[^\]]*\]", " ", line).split()[1:]
    return tuple(w for w in words if re.fullmatch(r"[a-z][a-z-]*", w))


def leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from leaf_commands(command, (*prefix, name))
        elif not command.hidden:
            yield (*prefix, name), command


def option_names(command: click.Command) -> set[str]:
    names: set[str] = set()
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            names.update(param.opts + param.secondary_opts)
    return names - {"-h", "--help"}


OPTION_WORD = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")


def test_cli_md_synopsis_names_every_command_and_option() -> None:
    """Each command has its synopsis line(s); together they name each of its options, and no other."""
    lines = synopsis()
    commands = dict(leaf_commands(cli))
    global_options = option_names(cli)
    problems: list[str] = []
    mentioned_for: dict[tuple[str, ...], set[str]] = {}
    first_line: dict[tuple[str, ...], str] = {}
    for where, line in lines:
        path = command_path(line)
        mentioned = set(OPTION_WORD.findall(line))
        command = commands.get(path) if path else None
        if path and command is None:
            problems.append(f"{where}: 'graylink {' '.join(path)}' is not a command")
            continue
        known = global_options | (option_names(command) if command else set())
        name = " ".join(path) or "graylink"
        problems += [f"{where}: {opt} is not an option of '{name}'" for opt in sorted(mentioned - known)]
        mentioned_for.setdefault(path, set()).update(mentioned)
        first_line.setdefault(path, where)
    for path, command in sorted(commands.items()):
        if path not in mentioned_for:
            problems.append(f"docs/cli.md: the synopsis lacks 'graylink {' '.join(path)}'")
            continue
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden and not set(param.opts) & mentioned_for[path]:
                if "--help" not in param.opts:
                    where = first_line[path]
                    problems.append(f"{where}: '{' '.join(path)}' has option {param.opts[-1]}, not in the synopsis")
    everywhere = set().union(*mentioned_for.values())
    for param in cli.params:
        if isinstance(param, click.Option) and "--help" not in param.opts and not set(param.opts) & everywhere:
            problems.append(f"docs/cli.md: the synopsis lacks the global option {param.opts[-1]}")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------- rclone mount flags

# docs/rclone.md's recommended mount: every `rclone mount` of the docs uses exactly these
# (issue 27: quickstart, deployment and rclone.md had drifted apart on --allow-other and rc auth).
MOUNT_FLAGS: dict[str, str | None] = {
    "--read-only": None,
    "--allow-other": None,
    "--dir-cache-time": "1000h",
    "--poll-interval": "1m",
}
# The remote control, when a mount has one: on loopback, with a user (never --rc-no-auth,
# which opens every rc command to every local program).
RC_FLAGS: dict[str, str | None] = {
    "--rc": None,
    "--rc-addr": "127.0.0.1:5572",
    "--rc-user": "graylink",
    "--rc-pass": "choose-a-password",
}
# Not about graylink: where rclone.conf is; a remount_command without a supervisor.
OTHER_MOUNT_FLAGS = {"--config", "--daemon"}
MOUNT_VALUE_FLAGS = {"--dir-cache-time", "--poll-interval", "--rc-addr", "--rc-user", "--rc-pass", "--config"}


def mount_flags(words: list[str]) -> dict[str, str | None]:
    """The flags of an ``rclone mount`` command's words (after ``mount``)."""
    flags: dict[str, str | None] = {}
    rest = iter(words)
    for word in rest:
        if not word.startswith("--"):
            continue  # the remote and the mount point
        name, eq, value = word.partition("=")
        flags[name] = value if eq else next(rest, "") if name in MOUNT_VALUE_FLAGS else None
    return flags


def rclone_mount_commands() -> list[tuple[str, dict[str, str | None]]]:
    """Every ``rclone mount`` of the docs' shell blocks, systemd units and ini remount_command lines."""
    found: list[tuple[str, dict[str, str | None]]] = []
    for path in DOC_FILES:
        for block in blocks(path):
            if block.lang in SHELL_LANGS or block.lang == "systemd":
                lines = list(logical_lines(block))
            elif block.lang == "ini":
                lines = [
                    (block.line + i, m.group(1))
                    for i, line in enumerate(block.lines)
                    if (m := re.match(r"\s*remount_command\s*=\s*(.*)", line))
                ]
            else:
                continue
            for line, text in lines:
                for words in simple_commands(text):
                    if len(words) > 1 and os.path.basename(words[0]) == "rclone" and words[1] == "mount":
                        found.append((f"{path.relative_to(ROOT)}:{line}", mount_flags(words[2:])))
    return found


def test_every_rclone_mount_in_the_docs_uses_the_recommended_flags() -> None:
    commands = rclone_mount_commands()
    where = {w.split(":")[0] for w, _ in commands}
    assert {"docs/rclone.md", "docs/quickstart.md", "docs/deployment.md", "docs/google-drive.md"} <= where, where
    for at, flags in commands:
        shown = {k: v for k, v in flags.items() if k not in OTHER_MOUNT_FLAGS}
        wanted = MOUNT_FLAGS | RC_FLAGS if "--rc" in flags else MOUNT_FLAGS
        assert shown == wanted, f"{at}: the mount's flags differ from docs/rclone.md's: {shown} != {wanted}"


def test_every_graylink_config_with_the_local_rc_has_its_user() -> None:
    """An ini block that points graylink at the recommended rc gives it the rc's user, as rclone.md does."""
    for block in ini_blocks():
        text = "\n".join(block.lines)
        if re.search(r"^rclone_rc\s*=\s*http://127\.0\.0\.1:5572\s*$", text, re.M):
            assert re.search(r"^rclone_rc_user\s*=\s*graylink\b", text, re.M), f"{block.where}: rclone_rc_user missing"


def test_the_mount_flag_check_tells_a_drifted_doc_apart() -> None:
    drifted = "rclone mount gdrive: /mnt/gdrive --read-only --dir-cache-time 1000h --poll-interval 1m --rc --rc-no-auth"
    flags = mount_flags(next(simple_commands(drifted))[2:])
    assert flags != MOUNT_FLAGS | RC_FLAGS and "--rc-no-auth" in flags and "--allow-other" not in flags


def test_every_graylink_unit_reloads_with_sighup() -> None:
    """`systemctl reload graylink` re-reads the config (service.md): each unit that runs the loop says how."""
    units = [b for path in DOC_FILES for b in blocks(path) if b.lang == "systemd"]
    shipped = (ROOT / "docs" / "graylink.service").read_text(encoding="utf-8").splitlines()
    units.append(Block(ROOT / "docs" / "graylink.service", 1, "systemd", tuple(shipped)))
    loops = [u for u in units if any("reconcile --loop" in line for line in u.lines if line.startswith("ExecStart="))]
    assert len(loops) >= 2
    for unit in loops:
        assert "ExecReload=/bin/kill -HUP $MAINPID" in unit.lines, f"{unit.where}: no ExecReload="
