import json
import subprocess
import sys

from ringrl.cli import main

ROWS = [
    {"id": "a", "domain": "math", "answer": "1/2", "response": "\\boxed{0.5}", "extra": [1, 2]},
    {"id": "b", "domain": "astrology", "response": "x"},
    {
        "id": "c",
        "domain": "code",
        "tests": [{"input": "1", "output": "2"}],
        "response": "```python\nprint(int(input())+1)\n```",
    },
    {"id": "d", "domain": "math", "response": "\\boxed{3}"},
    {"id": "e", "domain": "logic", "answer": "Yes", "response": "\\boxed{ yes }"},
    {"id": "f", "domain": "science", "answer": "A", "response": "no box"},
]


def write(tmp_path, rows):
    p = tmp_path / "in.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_verify_writes_rows_in_order_and_reports_bad_rows(tmp_path, capsys):
    inp, out = write(tmp_path, ROWS), tmp_path / "out.jsonl"
    assert main(["verify", str(inp), "--output", str(out), "--workers", "2", "--no-progress"]) == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["id"] for g in got] == list("abcdef")
    assert [g["status"] for g in got] == ["correct", "error", "correct", "error", "correct", "no_answer"]
    assert [g["reward"] for g in got] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    assert set(got[0]) == {"id", "reward", "status", "detail"}
    err = capsys.readouterr().err
    assert f"{inp}:2: field 'domain'" in err and f"{inp}:4: field 'answer'" in err
    assert "Traceback" not in err
    assert "rows/s" in err and "correct" in err  # the summary table


def test_verify_strict_stops_with_one_line(tmp_path):
    inp, out = write(tmp_path, ROWS), tmp_path / "out.jsonl"
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from ringrl.cli import main; sys.exit(main(sys.argv[1:]))",
            "verify",
            str(inp),
            "-o",
            str(out),
            "--strict",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"ringrl verify: error: {inp}:2: field 'domain' unknown domain 'astrology' (one of code, logic, math, science)"
    ]
    assert not out.exists()


def test_verify_bad_json_and_missing_file(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "domain": "math", "answer": "1", "response": "x"}\n{not json\n')
    assert main(["verify", str(bad), "-o", str(tmp_path / "o.jsonl")]) == 2
    assert main(["verify", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2" in err and "not found" in err and "Traceback" not in err
