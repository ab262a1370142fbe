"""User-supplied IR-50 and MobileFaceNet weights load into POSTER V2 with a report."""

import pytest
import torch

from fer_core.models import create_model
from fer_core.models.poster import IR50, MobileFaceNet, load_backbones


@pytest.fixture(scope="module")
def poster():
    return create_model("poster-v2")


def _full_ir50_state(seed):
    """A state dict in the usual layout of a whole IR-50 checkpoint: the 21 units POSTER V2
    uses, stage 4 (units 21–23) and the 25088→512 output layer."""
    torch.manual_seed(seed)
    state = IR50().state_dict()
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in state.items()}
    for unit in (21, 22, 23):
        state[f"body.{unit}.res_layer.1.weight"] = torch.randn(512, 512, 3, 3)
    state["output_layer.0.weight"] = torch.randn(512)
    state["output_layer.3.weight"] = torch.randn(512, 25088)
    return state


@pytest.mark.slow
def test_ir50_checkpoint_loads_and_reports_unused_parts(poster, tmp_path):
    state = _full_ir50_state(0)
    path = tmp_path / "ir50.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)  # DataParallel prefix

    (report,) = load_backbones(poster, ir50=path)
    assert report.complete and not report.unexpected
    assert report.loaded == len(IR50().state_dict())
    assert len(report.ignored) == 5 and "output_layer.3.weight" in report.ignored
    loaded = poster.ir_back.state_dict()
    assert torch.equal(loaded["body.20.res_layer.3.weight"], state["body.20.res_layer.3.weight"])
    assert "ignored 5 keys" in report.summary()


def test_missing_and_unexpected_keys_are_reported(poster, tmp_path):
    state = _full_ir50_state(1)
    del state["body.5.res_layer.1.weight"]
    state["body.5.res_layer.9.weight"] = torch.randn(3)
    path = tmp_path / "partial.pth"
    torch.save({"state_dict": state}, path)

    (report,) = load_backbones(poster, ir50=path)
    assert report.missing == ("body.5.res_layer.1.weight",)
    assert report.unexpected == ("body.5.res_layer.9.weight",)
    assert "1 missing keys: body.5.res_layer.1.weight" in report.summary()


def test_mobilefacenet_checkpoint_loads(poster, tmp_path):
    torch.manual_seed(2)
    source = MobileFaceNet()
    for p in source.parameters():
        torch.nn.init.normal_(p, std=0.05)
    path = tmp_path / "mobilefacenet_model_best.pth.tar"
    torch.save({"epoch": 10, "state_dict": source.state_dict()}, path)

    (report,) = load_backbones(poster, mobilefacenet=path)
    assert report.complete and not report.unexpected and not report.ignored
    x = torch.rand(1, 3, 112, 112)
    with torch.no_grad():
        want = source.eval().landmarks(x)
        assert torch.allclose(poster.face_landback.landmarks(x), want)
    assert not any(p.requires_grad for p in poster.face_landback.parameters())


def test_shape_mismatch_and_non_weights_name_the_file(poster, tmp_path):
    bad = tmp_path / "wrong.pth"
    torch.save({"input_layer.0.weight": torch.randn(64, 1, 3, 3)}, bad)
    with pytest.raises(ValueError, match=r"wrong\.pth: IR-50 key 'input_layer.0.weight'"):
        load_backbones(poster, ir50=bad)
    junk = tmp_path / "notes.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"notes\.pth: not a readable torch state dict"):
        load_backbones(poster, mobilefacenet=junk)
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pth"):
        load_backbones(poster, ir50=tmp_path / "nowhere.pth")


@pytest.mark.slow
def test_registry_builder_takes_weight_paths(tmp_path):
    path = tmp_path / "ir50.pth"
    torch.save(_full_ir50_state(3), path)
    model = create_model("poster-v2", ir50_weights=path)
    assert [r.component for r in model.load_reports] == ["IR-50"]
