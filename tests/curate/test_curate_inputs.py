"""What curate reads: rows over the byte limit are skipped without being read whole, a file of
which no line is a JSON object (Parquet, another encoding) is one line and exit 2 instead of
empty output, Parquet is read as sft and rl read it, and the question-sentence split is linear."""

from __future__ import annotations

import json

import pytest

from ringrl.cli import main
from ringrl.curate.cleansing import question_sentences
from ringrl.curate.core import read_entries
from ringrl.errors import UserError

ROW = {"prompt": "What is two plus two, written as a number", "answer": "4"}


def test_question_sentences_are_linear():
    """The regex curate used took minutes on a long text without a question mark (it rescanned
    from every position); the oracle test is in test_curate_mutants.py."""
    assert question_sentences("What is x? Then what is y?") == ["What is x?", " Then what is y?"]
    assert question_sentences("a" * 2_000_000) == []


@pytest.mark.parametrize(("size", "kept"), [(100, True), (101, False)])
def test_a_row_over_the_byte_limit_is_skipped_at_the_limit(tmp_path, monkeypatch, size, kept):
    monkeypatch.setenv("RINGRL_MAX_ROW_BYTES", "100")
    row = json.dumps({"prompt": "", "answer": "1"})
    row = json.dumps({"prompt": "x" * (size - len(row)), "answer": "1"})
    assert len(row.encode()) == size  # the newline is not counted
    path = tmp_path / "in.jsonl"
    path.write_text(row + "\n" + json.dumps(ROW) + "\n" + row)  # the last line has no newline
    entries, errors = read_entries(path)
    assert [e.line for e in entries] == ([1, 2, 3] if kept else [2])
    assert [(e.line, e.error) for e in errors] == (
        [] if kept else [(n, "row longer than 100 bytes (raise RINGRL_MAX_ROW_BYTES)") for n in (1, 3)]
    )


def test_a_huge_row_is_skipped_and_counted(tmp_path, capsys):
    path, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    huge = json.dumps({"prompt": "no question mark " * 3_000_000, "answer": "1"})  # 51 MB
    path.write_text(json.dumps(ROW) + "\n" + huge + "\n" + json.dumps(ROW | {"answer": "5"}) + "\n")
    assert main(["curate", str(path), "--output", str(out), "--no-decontam"]) == 0
    assert "in.jsonl:2: skipped: row longer than" in capsys.readouterr().err
    report = json.loads((tmp_path / "curation_report.json").read_text())
    assert report["rows_read"] == 2 and report["unparseable"] == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("fake.parquet", b'{"prompt": "p"}\n', "not a Parquet file (no PAR1 magic bytes)"),
        ("latin1.jsonl", '{"prompt": "caf\u00e9", "answer": "1"}\n'.encode("latin-1"), "no line is a JSON object"),
        ("table.jsonl", b"PAR1\x00\xffbinary\x00PAR1", "no line is a JSON object (1 bad, line 1: not UTF-8"),
    ],
)
def test_a_file_that_is_not_jsonl_is_one_line(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    code = main(["curate", str(path), "--output", str(tmp_path / "out.jsonl"), "--no-decontam"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out.jsonl").exists()


def test_parquet_is_read_like_sft_and_rl_read_it(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="the [parquet] extra (pyarrow) is not installed")
    import pyarrow as pa

    rows = [ROW, ROW | {"prompt": "Name the capital of France", "answer": "Paris"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    entries, errors = read_entries(tmp_path / "in.parquet")
    assert [(e.line, e.row) for e in entries] == [(1, rows[0]), (2, rows[1])] and errors == []
    with pytest.raises(UserError, match="file not found"):
        read_entries(tmp_path / "missing.jsonl")
