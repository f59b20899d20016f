"""One loader for a model directory, two backends: torch and ONNX read the same labels, scheme and
settings; no module imports a module that imports it back; long texts raise no false tokenizer warning."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import tagtune
from tagtune.checkpoint import load_checkpoint
from test_modeling import records_of

SRC = Path(tagtune.__file__).resolve().parent


def _imports() -> dict[str, set[str]]:
    """The tagtune modules each module imports, at module level or inside functions."""
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        name = ".".join(("tagtune", *path.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__")
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("tagtune"):
                found.add(node.module)  # type: ignore[arg-type]
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names if alias.name.startswith("tagtune")}
        graph[name] = found
    return graph


def test_no_module_imports_a_module_that_imports_it_back() -> None:
    graph = _imports()
    assert {"tagtune.predict", "tagtune.export", "tagtune.checkpoint"} <= set(graph)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph[module] & set(graph)):
            if state.get(imported) == 1:
                cycles.append(path[path.index(imported):] + [module, imported])
            elif imported not in state:
                visit(imported, path + [module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert cycles == []


@pytest.fixture(scope="module")
def onnx_fp32_dir(tiny_ner_dir, tmp_path_factory) -> Path:
    from tagtune.export import export_onnx

    out = tmp_path_factory.mktemp("onnx-fp32")
    export_onnx(tiny_ner_dir, out, check_texts=["Angela Merkel visited Paris."])
    return out


def test_torch_and_onnx_read_the_same_companions(tiny_ner_dir, onnx_fp32_dir) -> None:
    import torch

    eager = load_checkpoint(tiny_ner_dir)
    exported = load_checkpoint(onnx_fp32_dir, backend="onnx")
    assert (eager.backend, exported.backend) == ("torch", "onnx")
    assert exported.model.precision == "fp32"  # type: ignore[attr-defined]
    for field in ("labels", "scheme", "align", "eval", "transitions"):
        assert getattr(exported, field) == getattr(eager, field), field
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        expected = eager.forward()(ids, mask).numpy()
    np.testing.assert_allclose(exported.forward()(ids, mask).numpy(), expected, atol=1e-3)


def test_a_text_longer_than_the_model_maximum_raises_no_tokenizer_warning(tiny_ner_dir) -> None:
    with records_of("transformers.tokenization_utils_base") as records:
        prediction = next(tagtune.load(tiny_ner_dir, precision="fp32").predict(["Paris and London . " * 200]))
    assert len(prediction.tags) == 800  # windowed: every word tagged
    assert [r.getMessage() for r in records if "sequence length" in r.getMessage()] == []
