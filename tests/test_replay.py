import time
from pathlib import Path

from ima.ingest.normalize import RecordError
from ima.sources import replay


def test_csv_rows_become_records(tmp_path: Path):
    path = tmp_path / "p.csv"
    path.write_text(
        'id,created_at,author,text,likes\n1,2026-11-22T10:00:00Z,bob,"hi, there",7\n2,0,a,x,y,z\n'
    )
    rows = list(replay.read(path))
    assert rows[0] == {
        "id": "1",
        "created_at": "2026-11-22T10:00:00Z",
        "author": "bob",
        "text": "hi, there",
        "metrics": {"likes": "7"},
    }
    assert isinstance(rows[1], RecordError) and rows[1].kind == "bad_csv"


def test_overlong_lines_are_skipped_not_loaded(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(replay, "MAX_LINE_BYTES", 100)
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": 1}\n' + '{"text": "' + "y" * 500 + '"}\n' + '{"id": 2}\n')
    rows = list(replay.read(path))
    assert rows[0].parse() == {"id": 1} and rows[2].parse() == {"id": 2}
    assert isinstance(rows[1], RecordError) and rows[1].kind == "too_long"


def test_pacing_follows_created_at():
    records = [{"created_at": f"2026-11-22T10:00:0{i}Z"} for i in range(4)]  # 3 s of stream
    started = time.perf_counter()
    assert list(replay.paced(iter(records), speed=20)) == records
    assert time.perf_counter() - started >= 0.14  # 3 s / 20, less scheduling slack
    started = time.perf_counter()
    list(replay.paced(iter(records), speed=None))
    assert time.perf_counter() - started < 0.1


def test_json_lines_parse_with_named_errors():
    from ima.ingest.normalize import JsonLine

    assert JsonLine(1, b'{"a": 1}\n').parse() == {"a": 1}
    for data, kind in (
        (b"{oops\n", "invalid_json"),
        (b'"\xff"\n', "invalid_utf8"),
        (b"[1]\n", "bad_type"),
    ):
        try:
            JsonLine(7, data).parse()
        except RecordError as exc:
            assert exc.kind == kind and str(exc).startswith("line 7:")
        else:
            raise AssertionError(f"{data!r} parsed")
