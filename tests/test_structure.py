import pytest
import torch
from conftest import assert_points_at

from fer_core.models import create_model
from fer_core.models.structure import INIT_M, INIT_R, ZENNET_M, ZENNET_R, Structure
from fer_core.models.syntax import ArchitectureSyntaxError
from fer_core.models.zennet import ZenNet


@pytest.mark.parametrize("text", [ZENNET_M, ZENNET_R, INIT_M, INIT_R])
def test_parse_print_round_trip(text):
    assert Structure.parse(text).to_text() == text


def test_parsed_fields():
    blocks = Structure.parse(ZENNET_M).blocks
    assert [b.kind for b in blocks] == ["conv", "idw", "idw", "idw", "idw", "idw", "conv"]
    last_idw = blocks[5]
    assert (
        last_idw.expansion,
        last_idw.kernel,
        last_idw.c_in,
        last_idw.c_out,
        last_idw.stride,
        last_idw.bottleneck,
        last_idw.layers,
    ) == (6, 7, 96, 32, 2, 40, 4)
    r = Structure.parse(ZENNET_R).blocks
    assert r[4].kind == "k1kxk1" and r[4].kernel == 7 and r[4].layers == 5


@pytest.mark.parametrize(
    "text", [INIT_M, INIT_R, INIT_R.replace("SuperResK3K3(16", "SuperResK5K3(16")]
)
def test_any_search_space_string_builds_and_runs(text):
    model = ZenNet(text, num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 7)


def test_structure_from_file_through_the_registry(tmp_path):
    path = tmp_path / "searched.txt"
    path.write_text(INIT_R + "\n")
    model = create_model("zennet-r-sa", structure=path)
    assert model.structure.to_text() == INIT_R


@pytest.mark.parametrize(
    ("text", "token", "message"),
    [
        (ZENNET_M.replace("SuperResIDWE2K7(48", "SuperResIDWE2K7X(48"), "SuperResIDWE2K7X",
         "unknown block 'SuperResIDWE2K7X'"),
        (ZENNET_M.replace("(64,48,2,48,1)", "(64,48,2,1)"), "64,48,2,1",
         "takes 5 integers (in,out,stride,bottleneck,layers), got 4"),
        (ZENNET_M.replace("(48,80,2,80,1)", "(40,80,2,80,1)"), "SuperResIDWE2K7(40",
         "input channels 40 do not match the previous block's output 48"),
        (ZENNET_R.replace("(8,32,2,8,1)", "(8,32,two,8,1)"), "two", "expected a non-negative"),
        (ZENNET_R.replace("SuperResK1K5K1", "SuperResK1K4K1"), "SuperResK1K4K1", "must be odd"),
        (ZENNET_R + "garbage", "garbage", "expected a block"),
        ("", None, "empty"),
        # issue 31: absurd sizes built (or hung building) a network of gigabytes
        (ZENNET_R.replace("(8,32,2,8,1)SuperResK1K7K1(32,",
                          "(8,999999,2,8,1)SuperResK1K7K1(999999,"), "999999",
         "SuperResK1K5K1: out 999999 is too large (at most 16384)"),
        (ZENNET_R.replace("SuperResK1K5K1", "SuperResK1K501K1"), "SuperResK1K501K1",
         "k 501 is too large (at most 31)"),
    ],
)  # fmt: skip
def test_malformed_structure_points_at_the_token(text, token, message):
    with pytest.raises(ArchitectureSyntaxError, match="structure string") as info:
        Structure.parse(text)
    err = info.value
    assert message in str(err)
    if token is not None:
        assert_points_at(err, text, token)


def test_residual_units_start_as_their_shortcut_unless_asked_otherwise():
    """Zen-NAS zeroes the last BN of every residual unit; `zero_init_residual=False`
    starts it at 1 (on 40-px FER2013 faces the zero start leaves the unit bodies still)."""
    from fer_core.models.zennet import ResidualUnit

    def last_gammas(net):
        return [m.body[-1][1].weight for m in net.modules() if isinstance(m, ResidualUnit)]

    spec = ZenNet(ZENNET_M, num_classes=7)
    assert all(torch.count_nonzero(g) == 0 for g in last_gammas(spec))
    ones = create_model("zennet-m-sa", zero_init_residual=False)
    assert all(torch.all(g == 1) for g in last_gammas(ones))
    assert sum(p.numel() for p in ones.parameters()) == sum(p.numel() for p in spec.parameters())


def test_unit_options_span_zen_nas_to_mobilenet_v2():
    """The builder's options, each Zen-NAS's by default: `shortcut="identity"` keeps only
    identity shortcuts (MobileNetV2's rule), `sum_relu=False` leaves the sum linear,
    `bn_momentum` and `init="torch"` (Kaiming fan-out) replace the spec's."""
    from torch import nn

    from fer_core.models.zennet import ResidualUnit

    def units(net):
        return [m for m in net.modules() if isinstance(m, ResidualUnit)]

    # the first unit changes stride and width, the next three keep the shape
    text = "SuperConvK3BNRELU(1,8,2,1)SuperResIDWE2K3(8,16,2,16,2)SuperConvK1BNRELU(16,32,1,1)"
    zen = ZenNet(text)
    assert all(u.shortcut is not None and isinstance(u.act, nn.ReLU) for u in units(zen))
    mb = ZenNet(text, shortcut="identity", sum_relu=False, bn_momentum=0.1, init="torch")
    kept = [u for u in units(mb) if u.shortcut is not None]
    assert kept and all(isinstance(u.shortcut, nn.Identity) for u in kept)
    assert len(kept) == 3 and units(mb)[0].shortcut is None
    # a unit without a shortcut does not start at γ = 0: it would output a constant zero
    gammas = [u.body[-1][1].weight.mean().item() for u in units(ZenNet(text, shortcut="identity"))]
    assert gammas == [1.0, 0.0, 0.0, 0.0]
    assert all(isinstance(u.act, nn.Identity) for u in units(mb))
    assert all(m.momentum == 0.1 for m in mb.modules() if isinstance(m, nn.BatchNorm2d))
    stem = mb.features[0][0][0]
    fan_out = stem.out_channels * stem.kernel_size[0] * stem.kernel_size[1]
    assert stem.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.35)
    assert mb(torch.rand(2, 1, 48, 48)).shape == (2, 7)
    plain = ZenNet(text, shortcut="none", sum_relu=False)
    assert all(u.shortcut is None and isinstance(u.act, nn.ReLU) for u in units(plain))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"shortcut": "skip"}, "shortcut 'skip': expected one of project, identity, none"),
        ({"bn_momentum": 0.0}, r"bn_momentum 0.0: expected a number in \(0, 1\]"),
        ({"init": "xavier"}, "init 'xavier': expected one of zen, torch"),
    ],
)
def test_bad_builder_options_say_what_is_expected(options, message):
    with pytest.raises(ValueError, match=message):
        ZenNet(INIT_M, **options)
