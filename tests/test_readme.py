"""The README's Python examples run, in order, as one script (a changed API breaks this test)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    # no float32 comparisons here, so it runs at the default precision a user gets (TF32 on
    # a GPU); whatever a block writes lands in tmp_path, also under pytest-xdist
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 4, "README lost its examples"
    # the training example checkpoints to /tmp/ckpt; here it must start from nothing
    script = "\n".join(blocks).replace('"/tmp/ckpt"', repr(str(tmp_path / "ckpt")))
    namespace: dict = {}
    exec(compile(script, str(README), "exec"), namespace)
    assert namespace["logits"].shape == (4, 10, 5)
    assert namespace["output"].shape == (4, 10, 64)
    assert (tmp_path / "ckpt").exists()
