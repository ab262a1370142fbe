"""Parameter and MAC counts against the papers' figures
(Auto-FERNet, ZenNet-SA, POSTER V2, Khaireddin & Chen)."""

import pytest

from fer_core.models import create_model, get_spec
from fer_core.models.complexity import measure
from fer_core.models.structure import ZENNET_M, Structure
from fer_core.models.zennet import ShuffleAttention, ZenNet, round8

# name → (exact executed-path parameters, the paper's figure in millions, its decimals,
#         the paper's MAC figure in G)
SIZES = {
    "autofernet": (2_164_831, 2.16, 2, 0.84),  # Auto-FERNet: 2.16M, ≈0.84 GMAC at 48×48
    "autofernet-l20": (4_119_703, 4.12, 2, None),  # Auto-FERNet: 4.12M at L=20
    "zennet-m-sa": (1_007_511, 1.01, 2, 0.394),  # ZenNet-SA: 1.01M (README, with SA), ≈394M
    "zennet-r-sa": (327_339, 0.327, 3, 0.436),  # ZenNet-SA: 0.327M, ≈436M MACs
    "poster-v2": (43_753_941, 43.75, 2, 8.4),  # POSTER V2: 43.75M executed, 8.4 G (thop)
    "vgg-fer": (29_890_759, 29.9, 1, 0.35),  # Khaireddin & Chen: 29.9M, ≈0.35 GMAC per 40 px crop
}


@pytest.fixture(scope="module")
def measured():
    cache = {}

    def get(name):
        if name not in cache:
            spec = get_spec(name)
            cache[name] = measure(create_model(name), (spec.channels, *spec.input_size))
        return cache[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", SIZES)
def test_parameters_match_reference(name, measured):
    exact, reference, decimals, _ = SIZES[name]
    params = measured(name).params
    assert params == exact
    assert round(params / 1e6, decimals) == pytest.approx(reference)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n, s in SIZES.items() if s[3]])
def test_macs_at_native_input_match_reference(name, measured):
    c = measured(name)
    macs = c.macs
    if name.startswith("zennet"):
        macs += c.norm_macs  # Zen-NAS's count, which ZenNet-SA repeats, includes BN
    if name == "poster-v2":
        # thop (the paper's counter) skips the attention matmuls; we count them too.
        macs -= (784**2 * 64 + 196**2 * 128 + 49**2 * 256) * 2 + 148**2 * 768 * 2 * 2
    assert macs / 1e9 == pytest.approx(SIZES[name][3], rel=0.01)


def test_zennet_m_backbone_and_shuffle_attention():
    # ZenNet-SA counts the ZenNet-M backbone at 1.004M; SA adds 6·C/8 parameters in every
    # residual unit (C = that unit's expansion width), giving the paper's 1.01M for M-SA.
    plain = sum(p.numel() for p in ZenNet(ZENNET_M, use_sa=False).parameters())
    assert round(plain / 1e6, 3) == 1.004
    sa_params = 0
    for block in Structure.parse(ZENNET_M).blocks:
        if block.kind == "idw":
            widths = (
                round8(block.bottleneck * block.expansion),
                round8(block.c_out * block.expansion),
            )
            sa_params += block.layers * sum(6 * w // 8 for w in widths)
    model = create_model("zennet-m-sa")
    total = sum(p.numel() for p in model.parameters())
    assert total == plain + sa_params
    units = 2 * sum(b.layers for b in Structure.parse(ZENNET_M).blocks if b.kind == "idw")
    assert sum(isinstance(m, ShuffleAttention) for m in model.modules()) == units == 24


@pytest.mark.slow
def test_poster_state_holds_the_unrun_landmark_head_only():
    # The MobileFaceNet regressor is loaded with its checkpoint but not run (its output is
    # discarded), so it is in the state but not on the executed path.
    model = create_model("poster-v2")
    head = sum(
        p.numel() for n, p in model.named_parameters()
        if n.startswith(("face_landback.conv_6_dw", "face_landback.linear", "face_landback.bn"))
    )  # fmt: skip
    spec = get_spec("poster-v2")
    c = measure(model, (3, *spec.input_size))
    assert c.total_params - c.params == head == 512 * 49 + 2 * 512 + 512 * 136 + 2 * 136
