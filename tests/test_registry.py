import subprocess
import sys

import pytest
import torch

from fer_core.models import create_model, get_spec, list_models

EXPECTED = {"autofernet", "autofernet-l20", "zennet-m-sa", "zennet-r-sa", "poster-v2",
            "poster-v2-8", "vgg-fer"}  # fmt: skip


def test_registry_names_the_families():
    assert set(list_models()) >= EXPECTED
    families = {get_spec(n).family for n in list_models()}
    assert families == {"autofernet", "zennet", "poster", "vgg", "mobilenet"}


def test_unknown_name_lists_the_registered_ones():
    with pytest.raises(KeyError, match="registered models: autofernet"):
        create_model("resnet-9000")


def test_the_end_user_install_does_not_need_torch():
    import importlib.metadata as md

    requires = md.requires("fer-desktop")
    base = {r.split(">")[0].lower() for r in requires if "extra ==" not in r}
    train = {r.split(">")[0].lower() for r in requires if 'extra == "train"' in r}
    assert {"onnxruntime", "mediapipe", "opencv-contrib-python", "numpy"} <= base
    assert not base & {"torch", "torchvision", "onnx", "onnxscript"}
    assert {"torch", "torchvision"} <= train


def test_importing_the_engine_and_registry_does_not_import_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any torch import would now fail
        "import fer_core, fer_core.models\n"
        "from fer_core.models import list_models, get_spec\n"
        "assert 'autofernet' in list_models() and get_spec('autofernet').channels == 1\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("name", "overrides", "shape"),
    [
        ("autofernet", {"num_classes": 8, "in_chans": 3}, (3, 44, 44)),
        ("autofernet", {"layers": 6, "channels": 16}, (1, 48, 48)),
        ("zennet-r-sa", {"num_classes": 8, "in_chans": 1}, (1, 64, 64)),
        ("zennet-m-sa", {"lw_att": True, "num_classes": 5}, (3, 96, 96)),
        ("vgg-fer", {"num_classes": 8, "in_chans": 3}, (3, 40, 40)),
        ("mobilenetv2-050", {"num_classes": 5}, (1, 48, 48)),
        ("mobilenetv2-050", {"in_chans": 3, "width_mult": 1.0}, (3, 64, 64)),
    ],
)
def test_classes_and_channels_can_be_overridden(name, overrides, shape):
    model = create_model(name, **overrides).eval()
    with torch.no_grad():
        out = model(torch.rand(2, *shape))
    assert out.shape == (2, overrides.get("num_classes", 7))


def test_poster_8_classes_and_rgb_only():
    assert get_spec("poster-v2-8").num_classes == 8
    with pytest.raises(ValueError, match="RGB input"):
        create_model("poster-v2", in_chans=1)
