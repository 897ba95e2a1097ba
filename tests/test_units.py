"""Pure pieces: link rules, the planner, mark collapsing, mountinfo parsing."""

from __future__ import annotations

import gc
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graylink.links.apply import Applier
from graylink.links.planner import Action, Desired, Entry, LinkSpace, Op, Plan, apply_prune_brake, plan_dir
from graylink.reconcile.cycle import no_gc_passes
from graylink.source.index import DirUpdate, FileDiff, Index, compare_files
from graylink.source.rules import VIDEO_EXTENSIONS, Rules
from graylink.store.db import Store, normalize_rel, subtree_bounds
from graylink.store.scopes import Scope, ScopeSet, collapse, covers, touched
from graylink.system.fsinfo import fs_type, mtime_trusted, parse_mountinfo

SPACE = LinkSpace(source=b"/mnt/src", target=b"/links", link_root=b"/mnt/src", relative=False)

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /mnt/gdrive rw,nosuid,nodev,relatime shared:20 - fuse.rclone gdrive: rw,user_id=0
41 22 0:36 / /mnt/with\\040space rw - nfs4 server:/x rw
42 22 0:37 / /dev/shm rw - tmpfs tmpfs rw
"""


def test_extension_list_is_complete() -> None:
    required = ".3g2 .3gp .asf .avi .divx .dv .dvr-ms .f4v .flv .iso .m2t .m2ts .m2v .m4v .mk3d .mkv .mov .mp4 .mpe "
    required += ".mpeg .mpg .mts .mxf .ogm .ogv .qt .rm .rmvb .strm .tp .trp .ts .vob .webm .wmv .wtv .xvid"
    assert set(required.split()) <= VIDEO_EXTENSIONS
    assert not {".001", ".bin", ".img", ".nrg", ".ifo", ".nfo", ".srt", ".jpg"} & VIDEO_EXTENSIONS


def test_rules() -> None:
    rules = Rules.build((".srt",), ("@eaDir",))
    assert rules.wants_file(b"Film.MKV") and rules.wants_file(b"a.srt")
    assert not rules.wants_file(b"a.mkv.part") and not rules.wants_file(b".fuse_hidden0001")
    assert not rules.wants_file(b"a.mkv.partial") and not rules.wants_file(b"a.mkv.!qB")
    assert not rules.wants_file(b".mkv") and not rules.wants_file(b"mkv")
    assert not rules.wants_dir(b"M/X/bDmV/STREAM") and not rules.wants_dir(b"M/@eadir")
    assert rules.wants_dir(b"M/BDMV extras") and rules.wants_dir(b"")


def test_compare_files() -> None:
    diff = compare_files({b"a": (1, 1), b"b": (2, 2), b"c": (3, 3)}, {b"a": (1, 1), b"b": (2, 5), b"d": (4, 4)})
    assert diff.added == {b"d": (4, 4)} and diff.changed == {b"b": (2, 5)} and diff.removed == [b"c"]
    assert not compare_files({b"a": (1, 1)}, {b"a": (1, 1)})


def test_plan_dir_cases() -> None:
    want = {
        b"new.mkv": Desired(b"/mnt/src/D/new.mkv"),
        b"ok.mkv": Desired(b"/mnt/src/D/ok.mkv"),
        b"stale.mkv": Desired(b"/mnt/src/D/stale.mkv"),
        b"wrong.mkv": Desired(b"/mnt/src/D/wrong.mkv"),
        b"file.mkv": Desired(b"/mnt/src/D/file.mkv"),
        b"foreign.mkv": Desired(b"/mnt/src/D/foreign.mkv"),
        b"replaced.mkv": Desired(b"/mnt/src/D/replaced.mkv"),
    }
    have = {
        b"ok.mkv": Entry("link", b"/mnt/src/D/ok.mkv"),
        b"stale.mkv": Entry("link", b"/old/root/D/stale.mkv"),
        b"wrong.mkv": Entry("link", b"/mnt/src/E/other.mkv"),
        b"file.mkv": Entry("file"),
        b"foreign.mkv": Entry("link", b"/elsewhere/x.mkv"),
        b"replaced.mkv": Entry("link", b"/mnt/src/E/mine.mkv"),
        b"gone.mkv": Entry("link", b"/mnt/src/D/gone.mkv"),
        b"theirs": Entry("link", b"/etc/passwd"),
        b"relative.mkv": Entry("link", b"../../mnt/src/D/relative.mkv"),
        b"users.mkv": Entry("link", b"/mnt/src/D/ok.mkv"),  # a user's second name for a film
        b"notes.txt": Entry("file"),
    }
    owned = {
        b"ok.mkv": b"/mnt/src/D/ok.mkv",
        b"stale.mkv": b"/old/root/D/stale.mkv",
        b"replaced.mkv": b"/mnt/src/D/replaced.mkv",
        b"gone.mkv": b"/mnt/src/D/gone.mkv",
        b"relative.mkv": b"../../mnt/src/D/relative.mkv",
        b"vanished.mkv": b"/mnt/src/D/vanished.mkv",
    }
    ops = {(a.op, a.link) for a in plan_dir(SPACE, b"D", want, have, owned)}
    assert ops == {
        (Op.CREATE, b"D/new.mkv"),
        (Op.REPAIR, b"D/stale.mkv"),  # ours as we recorded it, now wanted elsewhere
        (Op.CONFLICT, b"D/wrong.mkv"),  # into the source but not ours: never rewritten
        (Op.CONFLICT, b"D/file.mkv"),
        (Op.CONFLICT, b"D/foreign.mkv"),
        (Op.FORGET, b"D/replaced.mkv"),  # the user's symlink in place of ours: theirs now
        (Op.CONFLICT, b"D/replaced.mkv"),
        (Op.PRUNE, b"D/gone.mkv"),
        (Op.PRUNE, b"D/relative.mkv"),
        (Op.FORGET, b"D/vanished.mkv"),
        # users.mkv: a user's second name for a film, into the source, wanted by nobody: left alone
    }
    # planning again after a perfect apply plans nothing
    after = {name: Entry("link", d.target) for name, d in want.items()}
    mine = {name: d.target for name, d in want.items()}
    assert plan_dir(SPACE, b"D", want, after, mine) == []


def test_plan_dir_of_a_rebuilt_database_takes_back_the_links_into_its_source() -> None:
    """Only a rebuilt database (reclaim) takes unrecorded links into the source as its own."""
    want = {b"wrong.mkv": Desired(b"/mnt/src/D/wrong.mkv"), b"ok.mkv": Desired(b"/mnt/src/D/ok.mkv")}
    have = {
        b"wrong.mkv": Entry("link", b"/mnt/src/E/other.mkv"),
        b"gone.mkv": Entry("link", b"/mnt/src/D/gone.mkv"),
        b"mine-gone.mkv": Entry("link", b"/mnt/src/D/mine-gone.mkv"),
        b"ok.mkv": Entry("link", b"/mnt/src/D/ok.mkv"),
        b"theirs": Entry("link", b"/etc/passwd"),
    }
    owned = {b"mine-gone.mkv": b"/mnt/src/D/mine-gone.mkv"}
    ops = {(a.op, a.link) for a in plan_dir(SPACE, b"D", want, have, owned)}
    assert ops == {
        (Op.CONFLICT, b"D/wrong.mkv"),  # not recorded: never rewritten
        (Op.PRUNE, b"D/mine-gone.mkv"),  # recorded: ours to prune
        (Op.PRUNE, b"D/gone.mkv"),  # exactly what graylink writes there: made by a run killed before recording it
        (Op.ADOPT, b"D/ok.mkv"),  # exactly the link wanted: recorded, untouched
    }
    # On a tree another graylink shares, only what this database recorded.
    shared = {(a.op, a.link) for a in plan_dir(replace(SPACE, shared=True), b"D", want, have, owned)}
    assert shared == ops - {(Op.PRUNE, b"D/gone.mkv")}
    rebuilt = {(a.op, a.link) for a in plan_dir(replace(SPACE, reclaim=True), b"D", want, have, owned)}
    assert rebuilt == {
        (Op.REPAIR, b"D/wrong.mkv"),
        (Op.PRUNE, b"D/gone.mkv"),
        (Op.PRUNE, b"D/mine-gone.mkv"),
        (Op.ADOPT, b"D/ok.mkv"),
    }


def test_relative_link_targets() -> None:
    space = LinkSpace(source=b"/mnt/src", target=b"/data/links", link_root=b"/mnt/src", relative=True)
    assert space.link_target(b"M/A/a.mkv") == b"../../../../mnt/src/M/A/a.mkv"
    assert space.points_into_source(b"M/A", b"../../../../mnt/src/M/A/a.mkv")
    assert not space.points_into_source(b"M/A", b"../../../../mnt/srcx/a.mkv")
    assert not space.points_into_source(b"M/A", b"../../../../mnt/src/../etc/passwd")


def test_prune_brake_thresholds() -> None:
    plan = Plan()
    plan.actions = [Action(Op.PRUNE, f"x{i}".encode(), b"/mnt/src/x") for i in range(21)]
    apply_prune_brake(plan, owned_total=100, max_fraction=0.2)
    assert len(plan.braked) == 21 and not plan.actions and "21 prunes" in plan.brake_reason
    plan = Plan(actions=[Action(Op.PRUNE, f"x{i}".encode(), b"/mnt/src/x") for i in range(20)])
    apply_prune_brake(plan, owned_total=40, max_fraction=0.2)
    assert not plan.braked, "20 or fewer prunes are never braked"
    plan = Plan(actions=[Action(Op.PRUNE, f"x{i}".encode(), b"/mnt/src/x") for i in range(30)])
    apply_prune_brake(plan, owned_total=1000, max_fraction=0.2)
    assert not plan.braked, "3% of the library is a normal prune"
    assert Plan().is_empty()


def test_collapse_marks() -> None:
    scopes = collapse([(b"A/B", False), (b"A", True), (b"C", False), (b"C", False), (b"C/D", True), (b"E", False)])
    assert scopes == [Scope(b"A", True), Scope(b"C", False), Scope(b"E", False), Scope(b"C/D", True)]
    assert collapse([(b"X", True), (b"", True)]) == [Scope(b"", True)]
    assert collapse([(b"AB", False), (b"A", True)]) == [Scope(b"A", True), Scope(b"AB", False)]


_PATHS = st.lists(st.sampled_from([b"A", b"B", b"AB"]), max_size=4).map(b"/".join)
_MARKS = st.lists(st.tuples(_PATHS, st.booleans()), max_size=30)


@settings(max_examples=300, deadline=None)
@given(_MARKS)
def test_collapse_equals_every_pair_compared(items: list[tuple[bytes, bool]]) -> None:
    """The prefix walk gives exactly what comparing each pair with every scope gave."""
    ordered = sorted(set(items), key=lambda i: (i[0].count(b"/") if i[0] else -1, not i[1], i[0]))
    expected: list[Scope] = []
    for path, recursive in ordered:
        if not any(covers(s, path, recursive) for s in expected):
            expected.append(Scope(path, recursive))
    assert collapse(items) == expected
    assert all(ScopeSet(expected).covers(p, r) for p, r in items)


@settings(max_examples=300, deadline=None)
@given(_MARKS, st.lists(_PATHS, max_size=10))
def test_touched_equals_every_pair_compared(marks: list[tuple[bytes, bool]], folders: list[bytes]) -> None:
    above, exact = touched(folders)
    for path, recursive in marks:
        expected = any(covers(Scope(path, recursive), f, False) for f in folders)
        assert (path in (above if recursive else exact)) == expected


def test_paths() -> None:
    assert subtree_bounds(b"A") == (b"A/", b"A0")
    assert normalize_rel(b"/a//b/./c/") == b"a/b/c"


def test_mountinfo() -> None:
    entries = parse_mountinfo(MOUNTINFO)
    assert [e.fs_type for e in entries] == ["ext4", "fuse.rclone", "nfs4", "tmpfs"]
    assert entries[2].mount_point == "/mnt/with space"
    assert fs_type("/mnt/gdrive/Movies", MOUNTINFO) == "fuse.rclone"
    assert not mtime_trusted("/mnt/gdrive/Movies", "auto", MOUNTINFO)
    assert not mtime_trusted("/mnt/with space/x", "auto", MOUNTINFO)
    assert mtime_trusted("/home/x", "auto", MOUNTINFO)
    assert mtime_trusted("/mnt/gdrive", "yes", MOUNTINFO)
    assert not mtime_trusted("/home", "no", MOUNTINFO)


def test_no_gc_passes_brings_the_collector_back_even_on_error() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), no_gc_passes():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()  # a caller that had it off keeps it off
    try:
        with no_gc_passes():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_dirs_to_make_lists_every_missing_folder_of_a_branch(tmp_path: Path) -> None:
    (tmp_path / "TV").mkdir()
    (tmp_path / "Movies").write_text("not a folder")
    actions = [
        Action(Op.CREATE, b"TV/Show/Season 01/a.mkv", b"/src/a"),
        Action(Op.CREATE, b"TV/Show/Season 02/b.mkv", b"/src/b"),
        Action(Op.CREATE, b"Anime/X/Season 01/c.mkv", b"/src/c"),
        # Below a file: cannot exist, so listed (the applier then refuses it and the record is dropped).
        Action(Op.CREATE, b"Movies/M/m.mkv", b"/src/m"),
        Action(Op.PRUNE, b"Gone/Folder/old.mkv", b"/src/old"),  # prunes make nothing
    ]
    missing = Applier(str(tmp_path).encode(), lambda rel: False).dirs_to_make(actions)
    assert missing == [
        b"Anime",
        b"Anime/X",
        b"Anime/X/Season 01",
        b"Movies/M",
        b"TV/Show",
        b"TV/Show/Season 01",
        b"TV/Show/Season 02",
    ]


def test_names_by_dir_round_trips_any_name(tmp_path: Path) -> None:
    names = [b"caf\xe9.mkv", b"new\nline.mkv", "日本語.mkv".encode(), b"\xff\xfe.mkv", b"a,b.mkv", b"-dash.mkv"]
    with Store(str(tmp_path / "t.db")) as store:
        index = Index(store)
        root, show, empty = index.allocate_dir_id(), index.allocate_dir_id(), index.allocate_dir_id()
        with store.atomic():
            index.update_database(
                [
                    DirUpdate(b"", root, None, True, 1, b"", 1, FileDiff()),
                    DirUpdate(b"Show", show, root, True, 1, b"", 1, FileDiff(added={n: (1, 2) for n in names})),
                    DirUpdate(b"Show/Empty", empty, show, True, 1, b"", 1, FileDiff()),
                ]
            )
        assert list(index.names_by_dir(b"", True)) == [(b"Show", sorted(names))]
        assert list(index.names_by_dir(b"Show", False)) == [(b"Show", sorted(names))]
        assert list(index.names_by_dir(b"Show/Empty", True)) == []


def test_a_folder_gone_and_back_between_two_listings_of_one_batch_is_listed_again(tmp_path: Path) -> None:
    """The race of a live Drive: a folder deleted and made again between its
    parent's listing and its own, both in one batch of the walk. The scanner
    is handed the two listings that race yields; its batch must not write the
    folder's files under the row it drops (that was a foreign-key error and a
    traceback on every walk), and the folder is marked to be listed anew."""
    from graylink.source.listing import Listing, list_dir
    from graylink.source.scanner import Scanner

    source = tmp_path / "src"
    (source / "P/C").mkdir(parents=True)
    (source / "P/C/a.mkv").write_bytes(b"a")
    root = bytes(source)
    store = Store(str(tmp_path / "g.db"))
    Scanner(store, root, 1, make_marks=False).refresh_trees([b""])
    (source / "P/C/b.mkv").write_bytes(b"b")
    parent_saw_it_gone = replace(list_dir(root, b"P"), dirs=[])
    back_again = list_dir(root, b"P/C")
    assert isinstance(back_again, Listing) and back_again.files is not None and len(back_again.files) == 2

    scanner = Scanner(store, root, 1, make_marks=False)
    scanner._take((False, [parent_saw_it_gone, back_again], []))
    scanner._flush()

    assert store.execute("SELECT count(*) FROM directory WHERE path = ?", (b"P/C",)).fetchone()[0] == 0
    assert store.execute("SELECT count(*) FROM file").fetchone()[0] == 0
    marks = {(m.path, m.recursive, m.indexed) for m in store.pending_marks()}
    assert (b"P/C", True, False) in marks
    store.close()


@pytest.mark.parametrize("count", [0, 1, 99, 100, 101, 250])
def test_insert_many_writes_every_row_once_whatever_the_count(tmp_path: Path, count: int) -> None:
    store = Store(str(tmp_path / "g.db"))
    rows = [(b"D", f"{i:04d}.mkv".encode(), b"/src/D/" + str(i).encode()) for i in range(count)]
    with store.atomic():
        store.insert_many("INSERT INTO link (dir, name, target)", 3, rows)
        # OR REPLACE keeps its meaning row by row: the later row of a key wins.
        store.insert_many("INSERT OR REPLACE INTO link (dir, name, target)", 3, [(b"D", b"0000.mkv", b"new")] * 2)
    got = store.execute("SELECT dir, name, target FROM link ORDER BY name").fetchall()
    expected = [(b"D", b"0000.mkv", b"new"), *rows[1:]] if rows else [(b"D", b"0000.mkv", b"new")]
    assert [(bytes(d), bytes(n), bytes(t)) for d, n, t in got] == expected
    store.close()
