"""Expression probabilities for faces, from a model package: the face framed as the card says,
one batch for all faces of a frame, on a backend: onnxruntime (CPU), or torch (CPU or CUDA)
where the package holds `model.pt`.

The card's view is applied in one affine warp per face: frame → the dataset's face square
(eyes level, `fer_core.faces.FRAMINGS`) → its centre `crop.fraction` → `input_size`, with the
border replicated (`fer_core.geometry.warp`). A face larger than the input is area-averaged, as
the training data's faces were shrunk; a stored face at the network's own scale is sampled
bilinearly at pixel centres, exactly as the trainer's evaluation view samples it (so a stored
FER2013 face gives the trainer's logits).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_core.faces import FRAMINGS, Framing, alignment, warp
from fer_core.view import InputView
from fer_core.zoo import (
    CARD,
    FILES,
    ONNX_PRECISIONS,
    ModelCard,
    ModelPackage,
    PackageError,
    check_threads,
    load_package,
    open_session,
)

LIVE_TTA = ("none", "flip")  # ten crops per face cost ten forwards: not for live video
# cards whose dataset has no measured framing use FER2013's (tight, forehead to chin)
DEFAULT_FRAMING = "fer2013"


@dataclass(frozen=True)
class Preprocess:
    """A model card's input view applied to faces in frames or to stored face squares."""

    view: InputView
    framing: Framing

    @classmethod
    def from_card(cls, card: ModelCard) -> Preprocess:
        framing = card.crop.get("framing") or DEFAULT_FRAMING
        return cls(InputView.from_card(card), FRAMINGS.get(framing, FRAMINGS[DEFAULT_FRAMING]))

    @property
    def size(self) -> tuple[int, int]:
        return self.view.size, self.view.size

    @property
    def crop(self) -> float:
        return self.view.crop

    @property
    def tta(self) -> str:
        return self.view.tta

    def _sample(self, image: np.ndarray, to_unit: np.ndarray) -> np.ndarray:
        """The network-sized face, given the (continuous) map of `image` onto the unit face
        square: its centre `crop` scaled to `size`."""
        h, w = self.size
        lo = (1 - self.crop) / 2  # the centre crop starts here in the unit square
        kx, ky = w / self.crop, h / self.crop
        m = np.diag([kx, ky]) @ to_unit
        m[:, 2] -= (lo * kx, lo * ky)
        return warp(image, m, (w, h))

    def from_frame(self, frame: np.ndarray, eyes: list[np.ndarray]) -> np.ndarray:
        """uint8 N×H×W×3 (BGR) network-sized faces, one per eye pair (image-left eye first)."""
        h, w = self.size
        out = np.empty((len(eyes), h, w, 3), np.uint8)
        for i, pair in enumerate(eyes):
            out[i] = self._sample(frame, alignment(pair, self.framing, 1.0))
        return out

    def from_stored(self, squares: np.ndarray) -> np.ndarray:
        """Stored face squares (uint8 N×S×S grey or N×S×S×3 BGR) → network-sized faces."""
        side = squares.shape[2]
        to_unit = np.array([[1.0 / side, 0, 0], [0, 1.0 / squares.shape[1], 0]])
        return np.stack([self._sample(s, to_unit) for s in squares])

    def tensor(self, faces: np.ndarray) -> np.ndarray:
        """uint8 N×H×W[×3] faces → the float32 N×C×H×W network input."""
        return self.view.tensor(faces)


def onnx_backend(package: ModelPackage, precision: str, threads: int, device: str) -> Callable:
    if device != "cpu":
        raise ValueError(
            f"device {device!r}: onnxruntime runs on the CPU here; use the torch backend for CUDA"
        )
    if precision not in ONNX_PRECISIONS:
        raise ValueError(
            f"precision {precision!r}: onnxruntime runs {' or '.join(ONNX_PRECISIONS)}"
        )
    session = open_session(package.model_file(precision), threads)
    return lambda x: session.run(["logits"], {"image": x})[0]


def package_network(package: ModelPackage):
    """The package's `model.pt` in the network its card names (torch, CPU, eval mode): the
    unfolded twin of `model.onnx`, which the torch backend runs and ensembles are built from."""
    if not package.has("torch"):
        raise ValueError(
            f"{package.path}: no {FILES['torch']} in the package; re-export it with "
            "`python -m trainer export ... --torch-weights`, or use the onnxruntime backend"
        )
    arch = package.card.architecture
    if "model" not in arch:
        raise ValueError(
            f"{package.path / CARD}: no architecture (a registered model) to build in torch; "
            "use the onnxruntime backend"
        )
    try:
        import torch
    except ImportError:
        raise ValueError("the torch backend needs torch: pip install -e '.[train]'") from None
    from fer_core.models import create_model

    try:
        net = create_model(arch["model"], **arch.get("overrides", {}))
    except (KeyError, TypeError, ValueError) as error:
        raise PackageError(
            f"{package.path / CARD}: architecture {arch} cannot be built ({_first_line(error)}); "
            "re-export the package"
        ) from None
    path = package.model_file("torch")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        # copied into the fresh fp32 parameters: float16 weights (card extra `torch_dtype`) widen
        net.load_state_dict(state, strict=True)
    except Exception as error:  # torch raises its own kinds (unpickling, zip, shapes, keys)
        raise PackageError(
            f"{path}: not the weights of the {arch['model']} the card describes "
            f"({_first_line(error)}); re-export the package with --torch-weights"
        ) from None
    return net.eval()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def torch_backend(package: ModelPackage, precision: str, threads: int, device: str) -> Callable:
    """`package_network` on the CPU or a CUDA GPU."""
    if precision != "fp32":
        raise ValueError(f"precision {precision!r}: the torch backend runs fp32 only")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: the torch backend runs on cpu or cuda")
    net = package_network(package)
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda': torch sees no CUDA GPU here; use device 'cpu'")
    net = net.to(device)
    if device == "cpu" and threads > 0:
        torch.set_num_threads(threads)  # process-wide: torch has no per-model thread pool

    def forward(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(x).to(device)).float().cpu().numpy()

    return forward


# name → (package, precision, threads, device) → forward(float32 N×C×H×W) → logits
BACKENDS: dict[str, Callable[[ModelPackage, str, int, str], Callable]] = {
    "onnxruntime": onnx_backend,
    "torch": torch_backend,
}


def backend_devices(package: ModelPackage) -> dict[str, list[str]]:
    """The backends that can run `package` here, each with its devices (for menus)."""
    devices = {"onnxruntime": ["cpu"]}
    if package.has("torch") and "model" in package.card.architecture:
        try:
            import torch
        except ImportError:  # the end-user install: onnxruntime only
            return devices
        devices["torch"] = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    return devices


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Classifier:
    """A model package on a backend: `classify(frame, eyes)` → probabilities (N × classes)."""

    def __init__(
        self,
        package: str | Path | ModelPackage,
        backend: str = "onnxruntime",
        precision: str = "fp32",
        threads: int = 1,
        device: str = "cpu",
    ):
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
        check_threads(threads, "classifier threads")
        self.package = package if isinstance(package, ModelPackage) else load_package(package)
        self.labels = list(self.package.card.labels)
        self.preprocess = Preprocess.from_card(self.package.card)
        if self.preprocess.tta not in LIVE_TTA:
            raise ValueError(
                f"{self.package.path}: test-time views {self.preprocess.tta!r} are not run live "
                f"(expected one of {', '.join(LIVE_TTA)}); export the package with --tta none"
            )
        self.backend, self.precision, self.device = backend, precision, device
        self._forward = BACKENDS[backend](self.package, precision, threads, device)

    def logits(self, faces: np.ndarray) -> np.ndarray:
        """Network-sized uint8 faces → logits, averaged over the card's test-time views."""
        if not len(faces):
            return np.zeros((0, len(self.labels)), np.float32)
        views = self.preprocess.view.live_views(self.preprocess.tensor(faces))
        return sum(self._forward(x) for x in views) / len(views)

    def classify(
        self, frame: np.ndarray, eyes: list[np.ndarray]
    ) -> tuple[np.ndarray, dict[str, float]]:
        """Probabilities for each face (given by its eye pair) and the ms of each stage."""
        t0 = time.perf_counter()
        faces = self.preprocess.from_frame(frame, eyes)
        t1 = time.perf_counter()
        probs = softmax(self.logits(faces))
        t2 = time.perf_counter()
        return probs, {"align": (t1 - t0) * 1e3, "classify": (t2 - t1) * 1e3}
