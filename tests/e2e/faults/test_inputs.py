"""Inputs are read as they are: CSVs as RFC 4180, folders that cannot be listed or that are symlinks, and paths.

CSV tables (the G2Net labels and truth CSVs, the TCE table) are parsed as RFC 4180 over the whole file: a quoted
field may hold newlines, quotes and commas; the build, its data tables and the audit's recount read the same
rows. A malformed row is still exactly one rejection naming the row, and a row with an unterminated quote does
not swallow the rows after it.
"""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from beam_pipelines.commands import cli

G2NET = "run_configs/g2net.yaml"
TCE = "run_configs/tce_kepler.yaml"


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _write_rows(path, rows, columns, terminator="\n"):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator=terminator)
        writer.writeheader()
        writer.writerows(rows)


def _build(raw, out, config=G2NET, *extra):
    return cli.main(["build", "--config", config, "--input", str(raw), "--output", str(out), *extra])


def _manifest_build(out):
    return json.loads((out / "manifest.json").read_text())["stages"]["build"]


def _table_rows(out, folder="tfrecords"):
    return [row for path in sorted((out / folder).glob("**/data_tbl_*.csv")) for row in _rows(path)]


def _audit_clean(out):
    from transforms.audit import audit_dataset

    assert audit_dataset(str(out)) == []


@pytest.fixture(scope="module")
def tce_raw(tmp_path_factory):
    from transforms.recipes.tce import sample as tce_sample

    raw = tmp_path_factory.mktemp("faults_tce") / "raw"
    tce_sample.write_tce_sample(str(raw), n_targets=2, seed=3, quarters=1, days_per_quarter=20.0)
    return raw


@pytest.fixture(scope="module")
def tce_plain(tce_raw, tmp_path_factory):
    """The TCE build of the untouched sample, to compare with."""
    out = tmp_path_factory.mktemp("faults_tce_plain") / "ds"
    assert _build(tce_raw, out, TCE) == 0
    return out


# ---- RFC 4180 --------------------------------------------------------------------------------------------------

MULTILINE = 'first line\nsecond, "quoted" line'


@pytest.mark.parametrize("terminator", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_labels_csv_with_quoted_newlines_is_read_whole(terminator, g2net_raw, tmp_path):
    """Every sample written (a quoted newline used to cut its row in two: two spurious rejections), the value
    kept exactly in the data table (through split and the audit), the audit's recount reading the same rows."""
    raw = tmp_path / "raw"
    shutil.copytree(g2net_raw, raw)
    rows = _rows(raw / "training_labels.csv")
    rows[0]["source_id"] = MULTILINE
    rows[1]["source_id"] = 'a,"b",c'
    _write_rows(raw / "training_labels.csv", rows, ["id", "target", "source_id"], terminator)
    out = tmp_path / "ds"
    assert _build(raw, out) == 0
    build = _manifest_build(out)
    assert (build["written"], build["rejected"]) == (48, 0)
    table = {row["uid"]: row for row in _table_rows(out)}
    assert table[rows[0]["id"]]["source_id"] == MULTILINE and table[rows[1]["id"]]["source_id"] == 'a,"b",c'
    _audit_clean(out)


def test_truth_csv_with_quoted_newlines_is_joined(g2net_raw, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(g2net_raw, raw)
    truth = _rows(raw / "injections.csv")
    columns = list(truth[0])
    truth[2]["approximant"] = "IMRPhenom\nXPHM, with a note"
    _write_rows(raw / "injections.csv", truth, columns)
    out = tmp_path / "ds"
    assert _build(raw, out, G2NET, "--set", "g2net.truth_csv=injections.csv") == 0
    build = _manifest_build(out)
    assert (build["written"], build["rejected"]) == (48, 0)
    table = {row["uid"]: row for row in _table_rows(out)}
    assert table[truth[2]["id"]]["approximant"] == "IMRPhenom\nXPHM, with a note"
    _audit_clean(out)


def test_tce_table_with_quoted_newlines_is_read_whole(tce_raw, tce_plain, tmp_path):
    """The TCE table with a quoted newline in a column: the same examples as the plain table, no rejection of a
    table row, and a clean audit (whose recount names bad rows the same way)."""
    raw = tmp_path / "raw"
    shutil.copytree(tce_raw, raw)
    rows = _rows(raw / "tces.csv")
    columns = list(rows[0])
    rows[0]["kind"] = rows[0]["kind"] + "\nnote, with a comma"
    _write_rows(raw / "tces.csv", rows, columns)
    out = tmp_path / "ds"
    assert _build(raw, out, TCE) == 0
    assert not [r for r in _rows(out / "rejected" / "build.csv") if r["uid_or_path"].startswith("tce_csv:")]
    plain, quoted = _manifest_build(tce_plain), _manifest_build(out)
    assert (quoted["written"], quoted["rejected"]) == (plain["written"], plain["rejected"])
    kinds = {row["csv_kind"] for row in _table_rows(out)}
    assert rows[0]["kind"] in kinds
    assert cli.main(["audit", str(out)]) == 0


def _labels_with(raw, extra_lines: bytes) -> None:
    path = raw / "training_labels.csv"
    data = path.read_bytes()
    header, rest = data.split(b"\n", 1)
    path.write_bytes(header + b"\n" + extra_lines + rest)


def test_unterminated_quote_is_one_malformed_row_and_swallows_nothing(g2net_raw, tmp_path):
    """``x,0,"oops`` opens a quote that never closes: one malformed_csv_row naming that row; the 48 rows after
    it are read as rows (an RFC 4180 reader alone would read them all into one field)."""
    raw = tmp_path / "raw"
    shutil.copytree(g2net_raw, raw)
    _labels_with(raw, b'x,0,"oops\n')
    out = tmp_path / "ds"
    assert _build(raw, out) == 0
    build = _manifest_build(out)
    assert (build["written"], build["rejected_by_reason"]) == (48, {"malformed_csv_row": 1})
    (row,) = _rows(out / "rejected" / "build.csv")
    assert row["uid_or_path"] == 'labels:x,0,"oops'
    _audit_clean(out)


def test_malformed_rows_are_one_rejection_each_named_by_their_text(g2net_raw, tmp_path):
    """A row with too many fields, one with a stray character after a closing quote, one with a lone carriage
    return inside: one rejection each, keyed by its text. A quoted field spanning lines in a row of the wrong
    field count is read line by line (it may be an unterminated quote): one rejection per line, none lost."""
    raw = tmp_path / "raw"
    shutil.copytree(g2net_raw, raw)
    bad = [b"a,0,b,c", b'b,0,"s"x', b"c,0\rd,0", b'e,0,"multi\nline",extra']
    _labels_with(raw, b"\n".join(bad) + b"\n")
    out = tmp_path / "ds"
    assert _build(raw, out) == 0
    build = _manifest_build(out)
    assert (build["written"], build["rejected_by_reason"]) == (48, {"malformed_csv_row": 5})
    named = sorted(r["uid_or_path"] for r in _rows(out / "rejected" / "build.csv"))
    lines = [*bad[:3], *bad[3].split(b"\n")]
    assert named == sorted("labels:" + line.decode() for line in lines)
    _audit_clean(out)


def test_undecodable_bytes_in_a_quoted_multiline_field_are_one_rejection(g2net_raw, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(g2net_raw, raw)
    _labels_with(raw, b'z,0,"bad \xff\nstill the same field"\n')
    out = tmp_path / "ds"
    assert _build(raw, out) == 0
    build = _manifest_build(out)
    assert (build["written"], build["rejected_by_reason"]) == (48, {"undecodable_csv_row": 1})
    _audit_clean(out)


def test_records_split_like_rfc_4180():
    from transforms.csv_rows import data_lines

    data = b'h1,h2\r\na,"x\r\ny"\r\nb,"q ""w"", e"\n\nc,"open\nd,1\n'
    assert data_lines(data) == [b'a,"x\r\ny"', b'b,"q ""w"", e"', b"", b'c,"open', b"d,1"]
    header_with_newline = b'"h\n1",h2\na,b\n'
    assert data_lines(header_with_newline) == [b"a,b"]


def test_data_table_cells_with_newlines_read_back_by_the_filter_reader(tmp_path):
    """A data table written with a multi-line cell (a labels column carried over) reads back row by row the way
    the filter stage reads tables (``read_table_lines`` + ``parse_table_line``)."""
    from beam_pipelines.io.readers import read_table_lines
    from beam_pipelines.io.tables import format_table, parse_table_line

    columns = ["uid", "target_id", "label", "shard", "note"]
    rows = [{"uid": "a", "target_id": "t", "label": 1, "note": MULTILINE}, {"uid": "b", "target_id": "u", "label": 0}]
    path = tmp_path / "data_tbl_0001-0001.csv"
    path.write_text(format_table(rows, columns, shard="s"))
    parsed = [parse_table_line(columns, line) for line in read_table_lines(str(path))]
    assert [row["uid"] for row in parsed] == ["a", "b"] and parsed[0]["note"] == MULTILINE


# ---- folders: unreadable, symlinked ------------------------------------------------------------------------------
#
# Unreadable folders: as root (these tests' usual user here) chmod 000 does not stop a read, so in-process tests
# make the folder unlistable by patching ``os.scandir`` (which ``os.walk``, Beam's local matcher and sigforge's
# listing all use) to raise PermissionError for it, as the OS does for a folder without read permission; as any
# other user they chmod it 000. One test runs the real thing: a build as the user nobody (``setpriv``) over a
# folder chmod 000.


@pytest.fixture
def unreadable(monkeypatch):
    """``unreadable(folder)``: listing ``folder`` fails with PermissionError (chmod 000, or a patch as root)."""
    import os

    locked: list = []
    real_scandir = os.scandir

    def scandir(path="."):
        if not isinstance(path, int) and any(os.path.realpath(os.fspath(path)) == str(f) for f in locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    def lock(folder):
        folder = folder.resolve()
        if os.geteuid() == 0:
            locked.append(folder)
            monkeypatch.setattr(os, "scandir", scandir)
        else:
            folder.chmod(0)
            locked.append(folder)

    yield lock
    if os.geteuid() != 0:
        for folder in locked:
            folder.chmod(0o755)


def _first_folder_with_samples(raw):
    folder = sorted(p for p in (raw / "train").iterdir() if p.is_dir())[0]
    return folder, sorted(p.stem for p in folder.rglob("*.npy"))


def test_g2net_unreadable_folder_is_a_rejection_that_names_it(g2net_raw, tmp_path, unreadable):
    raw = tmp_path / "raw"
    shutil.copytree(g2net_raw, raw)
    folder, ids = _first_folder_with_samples(raw)
    unreadable(folder)
    out = tmp_path / "ds"
    assert _build(raw, out) == 0
    build = _manifest_build(out)
    assert build["rejected_by_reason"] == {"unreadable_folder": 1, "label_without_file": len(ids)}
    assert build["seen"] == build["written"] + build["rejected"] and build["written"] == 48 - len(ids)
    rejected = _rows(out / "rejected" / "build.csv")
    assert [r["uid_or_path"] for r in rejected if r["reason"] == "unreadable_folder"] == [str(folder)]
    for row in rejected:  # each label row without a file says that a folder could not be read, and which
        if row["reason"] == "label_without_file":
            assert str(folder) in row["detail"] and "no .npy exists" not in row["detail"]
    _audit_clean(out)


def test_tce_unreadable_folder_is_a_rejection_that_names_it(tce_raw, tmp_path, unreadable):
    raw = tmp_path / "raw"
    shutil.copytree(tce_raw, raw)
    folder = sorted(p.parent for p in raw.rglob("*.fits"))[0]
    unreadable(folder)
    out = tmp_path / "ds"
    _build(raw, out, TCE)
    build = _manifest_build(out)
    assert build["rejected_by_reason"].get("unreadable_folder") == 1
    rejected = _rows(out / "rejected" / "build.csv")
    assert [r["uid_or_path"] for r in rejected if r["reason"] == "unreadable_folder"] == [str(folder)]
    missing = [r for r in rejected if r["reason"] == "tce_without_light_curve"]
    assert missing and all("could not be listed" in r["detail"] for r in missing)
    assert cli.main(["audit", str(out)]) == 0


def test_unreadable_folder_as_the_user_nobody(g2net_raw):
    """The real OS fault: a build run as nobody (``setpriv``) over a raw folder where one folder is chmod 000."""
    import os
    import subprocess
    import sys
    import tempfile

    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run a build as another user")
    base = tempfile.mkdtemp(prefix="sigforge_nobody_", dir="/tmp")
    try:
        os.chmod(base, 0o777)
        raw = os.path.join(base, "raw")
        shutil.copytree(g2net_raw, raw)
        os.chmod(raw, 0o755)
        for folder, dirs, files in os.walk(raw):
            for name in dirs:
                os.chmod(os.path.join(folder, name), 0o755)
            for name in files:
                os.chmod(os.path.join(folder, name), 0o644)
        folder, ids = _first_folder_with_samples(__import__("pathlib").Path(raw))
        os.chmod(folder, 0)
        out = os.path.join(base, "ds")
        command = [
            "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
            sys.executable, "-m", "beam_pipelines.commands.cli",
            "build", "--config", G2NET, "--input", raw, "--output", out,
        ]  # fmt: skip
        env = {**os.environ, "HOME": base, "TF_CPP_MIN_LOG_LEVEL": "2"}
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, check=False)
        assert result.returncode == 0, result.stderr[-2000:]
        build = json.loads(open(os.path.join(out, "manifest.json")).read())["stages"]["build"]
        assert build["rejected_by_reason"] == {"unreadable_folder": 1, "label_without_file": len(ids)}
    finally:
        for path, dirs, _ in os.walk(base):
            for name in dirs:
                os.chmod(os.path.join(path, name), 0o755)
        shutil.rmtree(base, ignore_errors=True)


def _move_folder_behind_a_link(raw, tmp_path):
    """Moves the first folder of samples out of ``raw`` and puts a symlink to it in its place."""
    folder, ids = _first_folder_with_samples(raw)
    elsewhere = tmp_path / "elsewhere" / folder.name
    elsewhere.parent.mkdir()
    shutil.move(str(folder), str(elsewhere))
    folder.symlink_to(elsewhere, target_is_directory=True)
    return folder, ids


def test_g2net_symlinked_folder_is_followed(g2net_raw, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(g2net_raw, raw)
    _, ids = _move_folder_behind_a_link(raw, tmp_path)
    out = tmp_path / "ds"
    assert _build(raw, out) == 0
    build = _manifest_build(out)
    assert (build["written"], build["rejected"]) == (48, 0)
    assert set(ids) <= {row["uid"] for row in _table_rows(out)}
    _audit_clean(out)


def test_tce_symlinked_folder_is_followed(tce_raw, tce_plain, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(tce_raw, raw)
    folder = sorted(p.parent for p in raw.rglob("*.fits"))[0]
    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(folder), str(elsewhere))
    folder.symlink_to(elsewhere, target_is_directory=True)
    out = tmp_path / "ds"
    assert _build(raw, out, TCE) == 0
    plain, linked = _manifest_build(tce_plain), _manifest_build(out)
    assert (linked["written"], linked["rejected_by_reason"]) == (plain["written"], plain["rejected_by_reason"])
    assert cli.main(["audit", str(out)]) == 0


@pytest.mark.parametrize("target", ["ancestor", "sibling", "root"])
def test_symlink_loop_or_repeat_is_rejected_by_name(target, g2net_raw, tmp_path):
    """A symlinked folder that leads back into what is listed (a loop to an ancestor, a second path to a folder
    already listed, ``/``) is not followed: one rejection naming it; every sample is written once."""
    raw = tmp_path / "raw"
    shutil.copytree(g2net_raw, raw)
    folder, _ = _first_folder_with_samples(raw)
    link = folder / "link"
    other = sorted(p for p in (raw / "train").iterdir() if p.is_dir() and p != folder)[0]
    link.symlink_to({"ancestor": raw / "train", "sibling": other, "root": "/"}[target], target_is_directory=True)
    out = tmp_path / "ds"
    assert _build(raw, out) == 0
    build = _manifest_build(out)
    assert (build["written"], build["rejected_by_reason"]) == (48, {"symlink_loop": 1})
    (row,) = _rows(out / "rejected" / "build.csv")
    assert row["uid_or_path"] == str(link)
    _audit_clean(out)


# ---- paths: ~ and $VARS expanded in one place; globs stay inside --input -------------------------------------------

REPO = __import__("pathlib").Path(__file__).resolve().parents[3]


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh $HOME and working folder, so that a literal ``~`` folder would show up in the working folder."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    return home, work


def test_output_tilde_and_input_variable_are_expanded(g2net_raw, home, monkeypatch):
    home_dir, work = home
    monkeypatch.setenv("SIGFORGE_FAULTS_RAW", str(g2net_raw))
    config = str(REPO / G2NET)
    assert cli.main(["build", "--config", config, "--input", "$SIGFORGE_FAULTS_RAW", "--output", "~/ds"]) == 0
    assert (home_dir / "ds" / "manifest.json").exists()
    assert list(work.iterdir()) == []  # no folder named '~' (or '$SIGFORGE_FAULTS_RAW') in the working folder
    assert cli.main(["audit", "~/ds"]) == 0


def test_unset_variable_in_output_is_refused(g2net_raw, home):
    """A usage error (argparse's exit 2, one error line), not a folder named ``$SIGFORGE_UNSET_VAR``."""
    _, work = home
    args = ["build", "--config", str(REPO / G2NET), "--input", str(g2net_raw), "--output", "$SIGFORGE_UNSET_VAR/ds"]
    try:
        code = cli.main(args)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    assert list(work.iterdir()) == []


def test_config_path_with_tilde_and_extends_with_tilde(home):
    from transforms.config import DatasetConfig, load_config

    home_dir, _ = home
    shutil.copy(REPO / G2NET, home_dir / "base.yaml")
    (home_dir / "derived.yaml").write_text("extends: ~/base.yaml\nname: derived\n")
    config = load_config(DatasetConfig, "~/derived.yaml")
    assert config.name == "derived" and config.g2net.npy_glob == "train/**/*.npy"


def test_unset_variable_in_config_path_is_refused():
    from transforms.config import ConfigError, DatasetConfig, load_config

    with pytest.raises(ConfigError) as info:
        load_config(DatasetConfig, "$SIGFORGE_UNSET_VAR/c.yaml")
    assert info.value.code == "path_expansion"


def test_csv_paths_in_the_config_are_expanded_for_build_and_audit(g2net_raw, tmp_path, monkeypatch):
    """``g2net.labels_csv: $LABELS/training_labels.csv`` (the labels kept outside --input): the build and the
    audit's recount read the same file."""
    raw = tmp_path / "raw"
    shutil.copytree(g2net_raw, raw)
    labels_dir = tmp_path / "labels"
    labels_dir.mkdir()
    shutil.move(str(raw / "training_labels.csv"), str(labels_dir / "training_labels.csv"))
    monkeypatch.setenv("SIGFORGE_FAULTS_LABELS", str(labels_dir))
    out = tmp_path / "ds"
    assert _build(raw, out, G2NET, "--set", "g2net.labels_csv=${SIGFORGE_FAULTS_LABELS}/training_labels.csv") == 0
    assert _manifest_build(out)["written"] == 48
    _audit_clean(out)


def test_tce_table_path_with_tilde(tce_raw, tce_plain, home, tmp_path):
    home_dir, _ = home
    raw = tmp_path / "raw"
    shutil.copytree(tce_raw, raw)
    shutil.move(str(raw / "tces.csv"), str(home_dir / "tces.csv"))
    out = tmp_path / "ds"
    assert _build(raw, out, str(REPO / TCE), "--set", "tce.tce_csv=~/tces.csv") == 0
    assert _manifest_build(out)["written"] == _manifest_build(tce_plain)["written"]
    assert cli.main(["audit", str(out)]) == 0


OUTSIDE_GLOBS = {
    "parent": ("tce", "tce.fits_glob=../outside/**.fits"),
    "parent_in_the_middle": ("tce", "tce.fits_glob=sub/../../outside/**.fits"),
    "absolute": ("tce", "tce.fits_glob={outside}/**.fits"),
    "etc": ("tce", "tce.fits_glob=../../../../../../../etc/**"),
    "g2net_absolute": ("g2net", "g2net.npy_glob={outside}/**/*.npy"),
    "g2net_tilde": ("g2net", "g2net.npy_glob=~/train/**/*.npy"),
    "g2net_url": ("g2net", "g2net.npy_glob=gs://bucket/train/**/*.npy"),
}


@pytest.mark.parametrize("case", sorted(OUTSIDE_GLOBS))
def test_glob_outside_input_is_refused(case, tce_raw, g2net_raw, tmp_path, caplog):
    """A glob that would read outside --input is refused before any work (code glob_outside_input), even where
    files it would match exist there (a copy of the inputs beside --input)."""
    import logging

    from beam_pipelines.stages.build import plan_build
    from transforms.config import ConfigError, DatasetConfig, load_config

    recipe, override = OUTSIDE_GLOBS[case]
    source = tce_raw if recipe == "tce" else g2net_raw
    raw = tmp_path / "raw"
    shutil.copytree(source, raw)
    shutil.copytree(source, tmp_path / "outside")
    override = override.format(outside=tmp_path / "outside")
    config_path = TCE if recipe == "tce" else G2NET
    out = tmp_path / "ds"
    with caplog.at_level(logging.ERROR):
        assert _build(raw, out, config_path, "--set", override) == 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0].getMessage()
    assert not out.exists()
    config = load_config(DatasetConfig, config_path, [override])
    with pytest.raises(ConfigError) as info:
        plan_build(config, str(raw))
    assert info.value.code == "glob_outside_input"
