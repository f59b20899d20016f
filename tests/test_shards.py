"""tagtune.shards: input files read record by record with bad records counted, atomic shards equal to
single-process ``tagtune predict`` (record for record), resume. No Ray here (see test_ray_predict.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tagtune
from tagtune.errors import ConfigError
from tagtune.shards import (
    ShardConfig,
    Source,
    check_document,
    claim_output_dir,
    list_sources,
    read_records,
    shard_complete,
    shard_paths,
    tag_shard,
)

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

CONLL = (b"-DOCSTART- O\n\nEU B-ORG\nrejects O\n\nPeter B-PER\nBlack\xff O\n\n"
         b"Paris B-LOC\nvisited O\n\n-DOCSTART- O\n\nLondon B-LOC\n")


def _source(path: Path, fmt: str) -> Source:
    return Source(path, fmt, path.name)


def _records(data: bytes, path: Path, fmt: str, **kwargs) -> list[tuple[int, str | None, str | None]]:
    out = []
    for record in read_records(data, _source(path, fmt), **kwargs):
        document = record.document
        text = None if document is None else document.text if document.text is not None else " ".join(document.words)
        out.append((record.where, text, record.error))
    return out


def test_lines_split_as_python_does_and_bad_utf8_is_one_record(tmp_path) -> None:
    data = b"\xef\xbb\xbfone\r\ntwo\rthree\n\xff bad\n\nlast"
    got = _records(data, tmp_path / "a.txt", "lines")
    assert [(w, t) for w, t, _ in got] == [(1, "one"), (2, "two"), (3, "three"), (4, None), (5, ""), (6, "last")]
    assert got[3][2] == "invalid UTF-8 byte 0xff at byte 1 of the record"


def test_json_lines_records_and_their_errors(tmp_path) -> None:
    data = (b'{"id": 7, "text": "Paris"}\n\n{"body": "x"}\nnot json\n\xff\n'
            b'{"tokenized_text": ["New", "York"]}\n[1]\n')
    got = _records(data, tmp_path / "a.jsonl", "text-jsonl")
    assert [(w, t) for w, t, _ in got] == [(1, "Paris"), (3, None), (4, None), (5, None), (6, "New York"), (7, None)]
    assert got[1][2].startswith("expected an object with a string 'text' field")
    assert got[2][2].startswith("not valid JSON")
    assert got[3][2].startswith("invalid UTF-8 byte 0xff")
    first = next(read_records(data, _source(tmp_path / "a.jsonl", "text-jsonl")))
    assert first.document.id == "7"


def test_column_file_drops_the_sentence_of_a_bad_line_and_keeps_line_numbers(tmp_path) -> None:
    got = _records(CONLL, tmp_path / "a.conll", "conll")
    assert got == [(7, None, "invalid UTF-8 byte 0xff at byte 6 of the record"), (3, "EU rejects", None),
                   (9, "Paris visited", None), (14, "London", None)]
    documents = [r.document for r in read_records(CONLL, _source(tmp_path / "a.conll", "conll")) if r.document]
    assert [d.document for d in documents] == ["0", "0", "1"]  # -DOCSTART- documents kept for context
    assert documents[0].tags == ("B-ORG", "O")


def test_a_malformed_column_file_ends_with_one_error(tmp_path) -> None:
    got = _records(b"EU B-ORG\nrejects O\n\nPeter B-PER extra\n", tmp_path / "a.conll", "conll")
    assert got[0] == (1, "EU rejects", None)
    assert got[1][0] == 0 and "expected 2 columns" in got[1][2] and "a.conll:4" in got[1][2]


def test_parquet_text_and_word_columns(tmp_path) -> None:
    buffer = pa.BufferOutputStream()
    pq.write_table(pa.table({"text": ["Paris", None, "x y"], "id": [1, 2, 3]}), buffer)
    got = _records(buffer.getvalue().to_pybytes(), tmp_path / "a.parquet", "parquet")
    assert got == [(1, "Paris", None), (2, None, "column 'text' holds NoneType, not a string"), (3, "x y", None)]
    buffer = pa.BufferOutputStream()
    pq.write_table(pa.table({"tokens": [["EU", "rejects"]]}), buffer)
    assert _records(buffer.getvalue().to_pybytes(), tmp_path / "w.parquet", "parquet") == [(1, "EU rejects", None)]
    buffer = pa.BufferOutputStream()
    pq.write_table(pa.table({"body": ["x"]}), buffer)
    (where, _, error), = _records(buffer.getvalue().to_pybytes(), tmp_path / "b.parquet", "parquet")
    assert where == 0 and error == "no column 'text' (columns: body); pass --text_field NAME"


def test_check_document_limits_and_unicode() -> None:
    from tagtune.predict_io import Document

    assert check_document(Document(text="abc"), 3) is None
    assert check_document(Document(text="abcd"), 3) == "the document has 4 characters; the limit is --max_chars 3"
    assert check_document(Document(words=("ab", "c")), 3) == "the document has 4 characters; the limit is --max_chars 3"
    assert check_document(Document(text="a\ud800"), 10) == "not valid Unicode (a lone surrogate at character 1)"


def test_list_sources_folders_globs_and_names(tmp_path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "a.txt").write_text("x\n")
    (tmp_path / "in" / "sub" / "b.jsonl").write_text('{"text": "y"}\n')
    (tmp_path / "in" / ".hidden").write_text("x\n")
    (tmp_path / "in" / "_SUCCESS").write_text("")
    (tmp_path / "in" / "sub" / "c.conll").write_bytes(CONLL)
    sources = list_sources([tmp_path / "in"])
    assert [(s.name, s.format) for s in sources] == [("a.txt", "lines"), ("sub/b.jsonl", "text-jsonl"),
                                                     ("sub/c.conll", "conll")]
    assert [s.name for s in list_sources([str(tmp_path / "in" / "**" / "*.jsonl")])] == ["b.jsonl"]
    with pytest.raises(ConfigError, match="matches no file"):
        list_sources([tmp_path / "nothing*.txt"])
    (tmp_path / "ls.json").write_text(json.dumps([{"data": {"text": "x"}, "annotations": []}]))
    with pytest.raises(ConfigError, match="does not read labelstudio files"):
        list_sources([tmp_path / "ls.json"])


def _single_process(model: Path, path: Path, tmp_path: Path, *extra: str) -> list[dict]:
    """``tagtune predict`` (one process) on ``path``: its JSON lines."""
    from tagtune.cli import app

    out = tmp_path / f"single-{path.name}.jsonl"
    result = CliRunner().invoke(app, ["predict", str(model), str(path), "-o", str(out), "--precision", "fp32",
                                      "--threads", "1", "--quiet", *extra])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def _shard_rows(path: Path) -> list[dict]:
    """A shard's records as ``tagtune predict`` writes them (Parquet nulls and ``review: false`` dropped)."""
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    rows = []
    for row in pq.read_table(path).to_pylist():
        row = {k: v for k, v in row.items() if v is not None}
        row["entities"] = [{k: v for k, v in e.items() if k != "review" or v} for e in row["entities"]]
        rows.append(row)
    return rows


def _strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("file", "record")} for row in rows]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_shard_equals_single_process_predict(tiny_ner_dir, tmp_path, fmt: str) -> None:
    texts = tmp_path / "docs.txt"
    texts.write_bytes(b"Angela Merkel visited Paris.\n\xff\xfe\nnew york city\n\n" + b"paris " * 400 + b"\n")
    clean = tmp_path / "clean.txt"
    clean.write_bytes(b"Angela Merkel visited Paris.\nnew york city\n\n")  # the good records
    conll = tmp_path / "words.conll"
    conll.write_bytes(CONLL)
    clean_conll = tmp_path / "clean.conll"
    clean_conll.write_bytes(CONLL.replace(b"Peter B-PER\nBlack\xff O\n\n", b""))
    tagger = tagtune.load(tiny_ner_dir, precision="fp32", threads=1)
    shards = ShardConfig(tmp_path / "out", fmt)
    for path, reference, bad in ((texts, clean, 1), (conll, clean_conll, 1)):
        source = list_sources([path])[0]
        meta = tag_shard(tagger, path.read_bytes(), source, shards, max_chars=1_000)
        assert len(meta["errors"]) == bad + (path is texts)  # the 400-word line is over 1,000 characters
        data = shard_paths(shards.output_dir, source, fmt)[0]
        assert shard_complete(shards.output_dir, source, fmt)
        expected = _single_process(tiny_ner_dir, reference, tmp_path)
        rows = _shard_rows(data)
        assert _strip(rows) == expected
        assert all(row["file"] == path.name for row in rows)
    assert [r["record"] for r in _shard_rows(shard_paths(shards.output_dir, list_sources([texts])[0], fmt)[0])] == [1, 3, 4]
    assert any(r["entities"] for r in _shard_rows(shard_paths(shards.output_dir, list_sources([conll])[0], fmt)[0]))


class _KilledAfter:
    """A tagger that stops (as if killed) after ``count`` predictions."""

    def __init__(self, tagger, count: int):
        self.tagger, self.count = tagger, count

    def predict(self, texts, progress: bool = False):
        for index, prediction in enumerate(self.tagger.predict(texts)):
            if index == self.count:
                raise KeyboardInterrupt
            yield prediction


def test_a_failed_shard_leaves_nothing_that_looks_complete(tiny_ner_dir, tmp_path) -> None:
    texts = tmp_path / "docs.txt"
    texts.write_text("".join(f"paris {i}\n" for i in range(3000)), encoding="utf-8")
    source = list_sources([texts])[0]
    shards = ShardConfig(tmp_path / "out")
    tagger = tagtune.load(tiny_ner_dir, precision="fp32", chunk_words=200)
    with pytest.raises(KeyboardInterrupt):  # after 2 row groups were written to the temporary file
        tag_shard(_KilledAfter(tagger, 2500), texts.read_bytes(), source, shards, 1_000_000)
    assert not shard_complete(shards.output_dir, source, "parquet")
    assert [p.name for p in shards.output_dir.rglob("*") if p.is_file()] == []
    tag_shard(tagger, texts.read_bytes(), source, shards, 1_000_000)
    assert shard_complete(shards.output_dir, source, "parquet")
    assert len(pq.read_table(shard_paths(shards.output_dir, source, "parquet")[0])) == 3000
    texts.write_text("changed\n", encoding="utf-8")  # an input changed since is redone
    assert not shard_complete(shards.output_dir, source, "parquet")


def test_output_dir_of_another_run_is_refused_and_temporary_files_removed(tmp_path) -> None:
    out = tmp_path / "out"
    claim_output_dir(out, {"model": "a"})
    (out / ".x.parquet.abc.tmp").write_text("partial")
    claim_output_dir(out, {"model": "a"})
    assert not (out / ".x.parquet.abc.tmp").exists()
    with pytest.raises(ConfigError, match=r"holds shards made with other settings \(model\); pass a new --output_dir"):
        claim_output_dir(out, {"model": "b"})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not empty and holds no tagtune run"):
        claim_output_dir(tmp_path / "other", {"model": "a"})




def test_whole_file_text_and_files_whose_head_is_not_utf8(tmp_path) -> None:
    assert _records(b"\xef\xbb\xbfa\r\nb\rc\n", tmp_path / "t.txt", "text") == [(1, "a\nb\nc\n", None)]
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'\xff\n{"text": "ok"}\n')
    (source,) = list_sources([bad])  # not a job-stopping UnicodeDecodeError while detecting the format
    assert source.format == "text-jsonl"
    assert _records(bad.read_bytes(), bad, "text-jsonl") == [
        (1, None, "invalid UTF-8 byte 0xff at byte 1 of the record"), (2, "ok", None)]
