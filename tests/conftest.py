import gzip
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
FER2013_CSV = SHARED_DATA / "fer2013" / "fer2013.csv.gz"


def assert_points_at(err, text, token):
    """A syntax error's position is `token` in `text`, and its message marks it with carets."""
    assert text[err.position : err.position + len(token)] == token
    excerpt, marker = str(err).splitlines()[1:3]
    assert excerpt[marker.index("^") :].startswith(token)


def calibrate_bn(model, input_shape, batches=2, batch_size=8):
    """Give BN layers the running statistics of real use (as after training), so that eval-mode
    activations have realistic magnitudes instead of the blow-up of a fresh init."""
    import torch
    from torch import nn

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.momentum) for m in norms]
    was_training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(batches):
            model(torch.rand(batch_size, *input_shape, generator=gen))
    for m, momentum in saved:
        m.momentum = momentum
    model.train(was_training)
    return model


@pytest.fixture(scope="session")
def fer2013_faces():
    """The first 32 PrivateTest faces of the real FER2013 (N×1×48×48 float32 in [0, 1])."""
    import numpy as np

    if not FER2013_CSV.is_file():
        pytest.skip(f"real FER2013 not found at {FER2013_CSV}")
    faces = []
    with gzip.open(FER2013_CSV, "rt") as f:
        next(f)
        for line in f:
            _, pixels, usage = line.rstrip("\n").split(",")
            if usage == "PrivateTest":
                faces.append(np.array(pixels.split(), dtype=np.float32).reshape(1, 48, 48))
                if len(faces) == 32:
                    break
    return np.stack(faces) / 255.0
