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


def fer2013_rows(per_class: dict[str, int], seed: int = 0):
    """(emotion, pixels text, Usage) rows of a learnable FER2013-like set: each class is noise
    plus a bright band at a row of its own, so a network can tell them apart in a few epochs."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for usage, n in per_class.items():
        for i in range(n):
            label = i % 7
            image = rng.integers(0, 120, (48, 48))
            image[6 + 5 * label : 10 + 5 * label, 8:40] = 230
            rows.append((label, " ".join(map(str, image.ravel())), usage))
    return rows


def write_fer2013_csv(path, rows):
    """Write rows in the real `emotion,pixels,Usage` layout (gzip when the name ends in .gz)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", newline="") as f:
        f.write("emotion,pixels,Usage\n")
        for emotion, pixels, usage in rows:
            f.write(f"{emotion},{pixels},{usage}\n")
    return path


@pytest.fixture(scope="session")
def tiny_fer2013(tmp_path_factory):
    """A learnable FER2013-format file: 336 training, 70 validation and 70 test faces."""
    path = tmp_path_factory.mktemp("fer2013") / "fer2013.csv.gz"
    rows = fer2013_rows({"Training": 336, "PublicTest": 70, "PrivateTest": 70})
    return write_fer2013_csv(path, rows)


def tiny_recipe(**overrides):
    """The CPU recipe shrunk for tests: a few epochs of small batches."""
    from trainer.engine.recipes import get_recipe

    return get_recipe("cpu-fast").override(
        **{"epochs": 3, "batch_size": 32, "lr": 0.02, "warmup_epochs": 0, **overrides}
    )


@pytest.fixture(scope="session")
def tiny_run(tiny_fer2013, tmp_path_factory):
    """vgg-fer-s trained for 3 epochs on the tiny set: (run folder, TrainResult)."""
    import torch

    from trainer.engine.loop import TrainConfig, train
    from trainer.methods import standard_callbacks

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run") / "vgg"
    config = TrainConfig("vgg-fer-s", "fer2013", str(tiny_fer2013), str(out), tiny_recipe())
    return out, train(config, standard_callbacks())


def permuted_clone(path, out, order):
    """The same network with its labels (and output rows) listed in another order."""
    import torch

    from trainer.engine import checkpoint

    state = checkpoint.load(path)
    labels = state.labels
    state.labels = [labels[i] for i in order]
    for key, value in state.model.items():
        if value.ndim in (1, 2) and value.shape[0] == len(labels) and "classifier" in key:
            state.model[key] = value[torch.tensor(order)]
    checkpoint.save(out, state)
    return out


@pytest.fixture
def null_device(tmp_path):
    """A character device that reads as /dev/null, inside the test's folder (so that nothing
    can harm the real one), or None where only root may make one."""
    import stat

    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        return None
    return node
