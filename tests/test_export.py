from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import tagtune
from tagtune.errors import ConfigError
from tagtune.export import FP32_FILE, INT8_FILE, REPORT_FILE, ExportConfig, export_onnx
from test_predict import TRICKY_TEXTS


@pytest.fixture(scope="module")
def onnx_dir(tiny_ner_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    export_onnx(tiny_ner_dir, out, ExportConfig(quantize="int8"))
    return out


def test_export_writes_a_self_contained_folder(onnx_dir) -> None:
    names = {p.name for p in onnx_dir.iterdir()}
    assert {FP32_FILE, INT8_FILE, REPORT_FILE, "config.json", "tokenizer.json"} <= names
    report = json.loads((onnx_dir / REPORT_FILE).read_text())
    assert report["parity"]["fp32"]["max_abs_logit_diff"] < 1e-3
    assert report["parity"]["fp32"]["tag_agreement"] == 1.0
    assert report["size_mb"]["int8"] < report["size_mb"]["fp32"]


@pytest.mark.parametrize("aggregation", ["first", "simple"])
def test_onnx_fp32_gives_the_same_tags_and_entities_as_torch(tiny_ner_dir, onnx_dir, aggregation: str) -> None:
    torch_tagger = tagtune.load(tiny_ner_dir, precision="fp32", aggregation=aggregation)
    from tagtune.checkpoint import load_checkpoint
    from tagtune.predict import PredictConfig, Tagger

    checkpoint = load_checkpoint(onnx_dir, backend="onnx", file=FP32_FILE)
    onnx_tagger = Tagger(checkpoint, checkpoint.model, PredictConfig(aggregation=aggregation), backend="onnx")
    expected = list(torch_tagger.predict(TRICKY_TEXTS))
    got = list(onnx_tagger.predict(TRICKY_TEXTS))
    assert [p.tags for p in got] == [p.tags for p in expected]
    assert [[(e.start, e.end, e.label) for e in p.entities] for p in got] == \
        [[(e.start, e.end, e.label) for e in p.entities] for p in expected]


def test_onnx_int8_is_the_default_and_close_to_torch(tiny_ner_dir, onnx_dir) -> None:
    int8 = tagtune.load(onnx_dir)
    assert (int8.backend, int8.precision) == ("onnx", "int8")
    reference = [p.tags for p in tagtune.load(tiny_ner_dir, precision="fp32").predict(TRICKY_TEXTS)]
    tags = [p.tags for p in int8.predict(TRICKY_TEXTS)]
    same = sum(a == b for s, t in zip(reference, tags) for a, b in zip(s, t))
    assert same / sum(len(s) for s in reference) > 0.9  # a random tiny model has thin margins


def test_export_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="--quantize 'int4'"):
        ExportConfig(quantize="int4")


def test_cli_export_and_predict_with_onnx_backend(tiny_ner_dir, tmp_path) -> None:
    from tagtune.cli import app

    runner = CliRunner()
    out = tmp_path / "exported"
    result = runner.invoke(app, ["export", str(tiny_ner_dir), "--format", "onnx", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files"] == {"fp32": FP32_FILE}
    result = runner.invoke(app, ["predict", str(out), "--text", "Angela Merkel visited Paris.", "--quiet"])
    assert result.exit_code == 0, result.output
    expected = [e.as_dict() for e in tagtune.load(tiny_ner_dir, precision="fp32")("Angela Merkel visited Paris.")]
    got = json.loads(result.stdout)["entities"]
    assert [(e["start"], e["end"], e["label"]) for e in got] == [(e["start"], e["end"], e["label"]) for e in expected]
    result = runner.invoke(app, ["export", str(tiny_ner_dir), "--format", "tflite"])
    assert result.exit_code == 2 and "only export format is onnx" in result.output
