"""``reconcile --path`` in another Unicode form than the source's, and rclone's ``／``.

Real folders whose names are NFC (as Google Drive and most Linux tools write
them) or NFD (as macOS writes them to an SMB share, and as a path typed on a
Mac arrives); the path is given in the other form, and must name the same place.
"""

from __future__ import annotations

import json
import subprocess
import unicodedata

from conftest import Library, links_in


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def planned(proc: subprocess.CompletedProcess[str]) -> list[tuple[str, str]]:
    assert proc.returncode == 0, proc.stderr
    return [(a["op"], a["link"]) for a in json.loads(proc.stdout)["actions"]]


def test_a_path_typed_in_nfd_names_the_sources_nfc_folder(lib: Library) -> None:
    folder = nfc("Movies/Amélie (2001)")
    lib.add(f"{folder}/Amélie.mkv")
    lib.add("Movies/Other/Other.mkv")
    assert lib.run("reconcile").returncode == 0
    lib.add(nfc(f"{folder}/Amélie.extended.mkv"))
    lib.add("Movies/Other/Other2.mkv")
    typed = nfd(folder)
    assert typed.encode() != folder.encode()
    assert planned(lib.run("reconcile", "--json", "--path", typed)) == [
        ("create", f"{lib.target}/{folder}/Amélie.extended.mkv")
    ]
    # the same, absolute in the link tree; and a file named in NFD: its folder (a link
    # deleted by hand is one graylink owns: repaired)
    (lib.target / folder / "Amélie.extended.mkv").unlink()
    assert planned(lib.run("reconcile", "--json", "--path", str(lib.target / typed))) == [
        ("repair", f"{lib.target}/{folder}/Amélie.extended.mkv")
    ]
    (lib.target / folder / "Amélie.extended.mkv").unlink()
    assert planned(lib.run("reconcile", "--json", "--path", nfd(f"{folder}/Amélie.extended.mkv"))) == [
        ("repair", f"{lib.target}/{folder}/Amélie.extended.mkv")
    ]
    assert b"Movies/Other/Other2.mkv" not in links_in(lib.target)  # only the folder named


def test_a_path_typed_in_nfc_names_the_sources_nfd_folder_also_once_gone(lib: Library) -> None:
    folder = nfd("TV/Pokémon/Saison 1")  # written by a Mac
    lib.add(f"{folder}/E1.mkv")
    lib.add(f"{folder}/E2.mkv")
    assert lib.run("reconcile").returncode == 0
    typed = nfc(folder)
    (lib.target / folder / "E1.mkv").unlink()
    assert planned(lib.run("reconcile", "--json", "--path", typed)) == [("repair", f"{lib.target}/{folder}/E1.mkv")]
    # gone from the source, still in the index: the index's spelling is found
    (lib.source / folder / "E2.mkv").unlink()
    assert planned(lib.run("reconcile", "--json", "--path", nfc(f"{folder}/E2.mkv"))) == [
        ("prune", f"{lib.target}/{folder}/E2.mkv")
    ]


def test_two_names_that_differ_only_in_form_are_refused_in_one_line(lib: Library) -> None:
    name = "Élégie"
    lib.add(f"Music Videos/{nfc(name)}/a.mkv")
    lib.add(f"Music Videos/{nfd(name)}/b.mkv")
    assert lib.run("reconcile").returncode == 0
    mixed = "E\u0301le\u0301gie"[:2] + "légie"  # É decomposed, é composed: neither folder's bytes
    assert mixed.encode() not in (nfc(name).encode(), nfd(name).encode()) and nfc(mixed) == nfc(name)
    proc = lib.run("reconcile", "--path", f"Music Videos/{mixed}")
    assert proc.returncode == 2
    line = error_line(proc)
    assert "matches 2 names that differ only in their Unicode form (NFC/NFD)" in line, line
    # the exact bytes of either are taken as they are
    (lib.target / "Music Videos" / nfd(name) / "b.mkv").unlink()
    assert planned(lib.run("reconcile", "--json", "--path", f"Music Videos/{nfd(name)}")) == [
        ("repair", f"{lib.target}/Music Videos/{nfd(name)}/b.mkv")
    ]


def test_a_slash_meant_as_rclones_fullwidth_slash_is_hinted(lib: Library) -> None:
    lib.add("Anime/Fate／Zero (2011)/Season 1/E1.mkv")
    assert lib.run("reconcile").returncode == 0
    for typed, shown in (
        ("Anime/Fate/Zero (2011)", "Anime/Fate／Zero (2011)"),
        (str(lib.source / "Anime/Fate/Zero (2011)/Season 1"), str(lib.source / "Anime/Fate／Zero (2011)/Season 1")),
        (nfd("Anime/Fate/Zero (2011)"), "Anime/Fate／Zero (2011)"),
    ):
        proc = lib.run("reconcile", "--path", typed)
        assert proc.returncode == 2
        line = error_line(proc)
        assert "not in the source, and not in the index either" in line
        assert f"did you mean {shown}?" in line, line
    # a path that names nothing either way gets no hint
    line = error_line(lib.run("reconcile", "--path", "Anime/Fate/Stay"))
    assert "did you mean" not in line


def test_an_absolute_path_whose_root_is_typed_in_nfd_is_inside_the_source(lib: Library) -> None:
    source = lib.root / nfc("Médiathèque")
    (source / "Films" / nfc("Été")).mkdir(parents=True)
    (source / "Films" / nfc("Été") / "Été.mkv").write_bytes(b"x")
    lib.write_ini(paths={"source": str(source)})
    assert lib.run("reconcile").returncode == 0
    link = lib.target / "Films" / nfc("Été") / "Été.mkv"
    link.unlink()
    typed = nfd(str(source / "Films" / "Été"))
    assert typed.encode() != str(source / "Films" / "Été").encode()
    assert planned(lib.run("reconcile", "--json", "--path", typed)) == [("repair", str(link))]
    # a root that only looks alike stays outside
    proc = lib.run("reconcile", "--path", nfd(str(lib.root / "Mediatheque" / "Films")))
    assert proc.returncode == 2 and "neither inside the source nor inside the target" in error_line(proc)
