"""Zen-NAS here: a training-free evolutionary search over ZenNet structure strings, ranked by
the Zen-score (Zen-NAS).

The Zen-score of a structure is read off its *plain* network (no residual links, no Shuffle
Attention) with every conv/linear weight drawn from N(0, 1) and BN at γ=1, β=0, momentum 0.1
and fresh running statistics. Two train-mode forward passes of Gaussian input x and of x + αε
(α = 0.01) give Δ = batch mean of Σ_{c,h,w}|f(x) − f(x+αε)| on the pre-GAP feature map f, and

    Zen = log Δ + Σ_BN log sqrt(mean_c σ²)

where σ² is each BN's running variance after the two passes ("code" variant, as Zen-NAS's code
computes it) or its batch variance in the x pass ("paper" variant). No gradient is needed.

The evolution (Zen-NAS's evolution_search.py): while the population has ≤ 10 members a child
is one mutation of the initial structure, else two mutations of a random member (the csv's
`parent` column says which: "init" or the member's iteration); children over the budget (layers,
params, MACs, latency of the network *as trained*: SA, residual links, classifier, at the
search resolution and channels) are rejected and counted by reason; the others are scored,
inserted, and the worst dropped while the population is over size. The answer is the
best-scoring structure, written as `structure.txt` for `python -m trainer train --model`.

Default budget, for the trainer's 48 px grey faces: ≤ 1e6 params and ≤ 14 layers as the FER
M search; ≤ 50e6 MACs at 48 px (ZenNet-M itself is 17.6e6 there, 394e6 at 224 px), room for
about 3× ZenNet-M's compute; at that size time is not proportional to MACs (depthwise
convolutions, per-operator overhead), so real-time use is set with --max-latency-ms: the
median batch-1 fp32 onnxruntime forward at --threads, as the app runs the exported network.
--model-option builds the candidates with the builder options they will be trained with.

Deviations from the FER repository:
- population and iterations are sized for a CPU (64 and 1000 by default, not 512 and 480,000),
  and the default search runs at the trainer's 48 px grey input, not 224 px RGB;
- the DeepMAD-style "efficient score" filter of the FER repo is not implemented: neither
  paper defines it;
- a child identical to a current member is not inserted again (counted as a "duplicate"
  rejection): with common random numbers it would score the same, and copies of the best
  crowded the population in a trial run;
- with a population of 10 or fewer the switch to mutating members happens once the population
  is full (≤ min(10, P − 1) members), so a small population still evolves;
- the score network has no Shuffle Attention (the budget counts it), and its running stats are
  reset before every repeat;
- every candidate is scored with the same seed (common random numbers: the same weights and
  inputs wherever shapes agree), so a structure always gets the same score and the whole search
  is reproducible from its seed; a resumed run reaches the uninterrupted run's result exactly,
  unless a latency limit is set (timings are measurements, not functions of the seed).
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from fer_core.models.structure import Structure
from trainer.files import progress_bar
from trainer.flags import key_value
from trainer.search.evolution import (
    SPACES,
    Budget,
    BudgetCheck,
    check_budget,
    get_space,
    mutate,
    trained_network,
)

VARIANTS = ("code", "paper")
STATE_FILE = "search_state.json"
STATE_FORMAT = "zen-search-state/1"
CSV_FIELDS = (
    "iteration",
    "best_score",
    "median_score",
    "population",
    "parent",
    "score",
    "rejected",
    "params",
    "macs",
    "layers",
    "latency_ms",
    "structure",
)


# --------------------------------------------------------------------------- Zen-score


@dataclass(frozen=True)
class ZenScore:
    score: float  # mean over repeats
    repeats: tuple[float, ...]
    variant: str
    log_delta: tuple[float, ...]  # log Δ per repeat
    log_bn: tuple[float, ...]  # Σ_BN log σ per repeat


def score_network(structure: Structure | str, in_chans: int = 3):
    """The plain network the Zen-score is computed on: no residual links, no SA."""
    from fer_core.models.zennet import ZenNet

    return ZenNet(structure, num_classes=1, in_chans=in_chans, use_sa=False, shortcut="none")


def _gaussian_init(model, generator) -> None:
    from torch import nn

    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            m.weight.normal_(0.0, 1.0, generator=generator)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.modules.batchnorm._BatchNorm | nn.GroupNorm):
            if m.weight is not None:
                m.weight.fill_(1.0)
                m.bias.zero_()
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = 0.1
                m.reset_running_stats()


def zen_score_details(
    structure: Structure | str,
    resolution: int,
    in_chans: int = 3,
    batch_size: int = 16,
    repeats: int = 1,
    variant: str = "code",
    alpha: float = 0.01,
    seed: int = 0,
) -> ZenScore:
    """The Zen-score with its per-repeat parts (see the module docstring)."""
    import torch
    from torch import nn

    if variant not in VARIANTS:
        raise ValueError(f"unknown Zen-score variant {variant!r}; choose code or paper")
    model = score_network(structure, in_chans).train()
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    generator = torch.Generator().manual_seed(seed)
    batch_var: dict[nn.Module, torch.Tensor] = {}

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        batch_var[module] = inputs[0].var(dim=(0, 2, 3), unbiased=False)

    scores, log_deltas, log_bns = [], [], []
    with torch.no_grad():
        for _ in range(repeats):
            _gaussian_init(model, generator)
            shape = (batch_size, in_chans, resolution, resolution)
            x = torch.randn(shape, generator=generator)
            eps = torch.randn(shape, generator=generator)
            hooks = (
                [m.register_forward_pre_hook(record) for m in norms] if variant == "paper" else []
            )
            try:
                fx = model.features(x)
            finally:
                for h in hooks:
                    h.remove()
            fy = model.features(x + alpha * eps)
            delta = (fx - fy).abs().double().sum(dim=(1, 2, 3)).mean().item()
            if variant == "code":
                variances = [m.running_var.double().mean().item() for m in norms]
            else:
                variances = [batch_var[m].double().mean().item() for m in norms]
            log_delta = math.log(delta) if delta > 0 else -math.inf
            log_bn = sum(0.5 * math.log(v) if v > 0 else -math.inf for v in variances)
            score = log_delta + log_bn
            if math.isnan(score):
                score = -math.inf
            scores.append(score)
            log_deltas.append(log_delta)
            log_bns.append(log_bn)
    return ZenScore(
        score=sum(scores) / len(scores),
        repeats=tuple(scores),
        variant=variant,
        log_delta=tuple(log_deltas),
        log_bn=tuple(log_bns),
    )


def zen_score(structure: Structure | str, resolution: int, *args: Any, **kwargs: Any) -> float:
    """Zen-score of a structure string (mean over `repeats`); deterministic for a seed. The
    arguments are `zen_score_details`'s."""
    return zen_score_details(structure, resolution, *args, **kwargs).score


# --------------------------------------------------------------------------- search


@dataclass
class ZenSearchConfig:
    out: str | Path
    space: str = "idw"
    init: str | None = None  # structure text; default: the space's published init (M / R)
    population: int = 64
    iterations: int = 1000
    resolution: int = 48
    in_chans: int = 1
    num_classes: int = 7
    max_params: float | None = 1e6
    max_macs: float | None = 50e6
    max_layers: int | None = 14
    max_latency_ms: float | None = None
    min_width: int | None = None
    score_batch: int = 16
    score_repeats: int = 1
    variant: str = "code"
    seed: int = 0
    threads: int = 1
    checkpoint_every: int = 50
    # builder options of the network as trained (`--model-option`, passed on to `train`)
    model_options: dict[str, Any] = field(default_factory=dict)

    def budget(self) -> Budget:
        return Budget(
            max_params=self.max_params,
            max_macs=self.max_macs,
            max_layers=self.max_layers,
            max_latency_ms=self.max_latency_ms,
            min_width=self.min_width,
            resolution=self.resolution,
            in_chans=self.in_chans,
            num_classes=self.num_classes,
            threads=self.threads,
            options=tuple(sorted(self.model_options.items())),
        )

    def initial_structure(self) -> Structure:
        space = get_space(self.space)
        text = self.init if self.init else space.init
        return space.conform(Structure.parse(text.strip()).with_in_chans(self.in_chans))

    def validate(self) -> None:
        get_space(self.space)
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown Zen-score variant {self.variant!r}; choose code or paper")
        for name in (
            "population",
            "resolution",
            "in_chans",
            "num_classes",
            "score_batch",
            "score_repeats",
            "threads",
            "checkpoint_every",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"Zen search: {name} must be at least 1")
        if self.iterations < 0:
            raise ValueError("Zen search: iterations must be at least 0")
        structure = self.initial_structure()  # a malformed --init fails here, naming the token
        try:  # an unknown or malformed builder option fails here, before any scoring
            trained_network(structure, self.budget())
        except (TypeError, ValueError) as err:
            raise ValueError(f"--model-option: {err}") from None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["out"] = str(self.out)
        return data


# Fields a resumed run may change: how long it runs, how often it saves, where it is.
RESUMABLE_CHANGES = ("out", "iterations", "checkpoint_every")


@dataclass
class ZenSearchResult:
    structure: str | None  # best structure string (None when no candidate met the budget)
    score: float | None
    figures: dict[str, Any]  # params, macs, layers, latency_ms of the best
    iterations: int
    scored: int
    rejections: dict[str, int]
    population: list[dict[str, Any]]
    out: Path
    wall_s: float
    files: dict[str, Path] = field(default_factory=dict)


def _median(population: list[dict[str, Any]]) -> float | None:
    return statistics.median(m["score"] for m in population) if population else None


def _finite(value: float | None) -> float | str | None:
    """JSON has no infinities: write them as strings."""
    if value is None or math.isfinite(value):
        return value
    return str(value)


def _unfinite(value: Any) -> Any:
    return float(value) if isinstance(value, str) else value


class _Search:
    def __init__(self, config: ZenSearchConfig, resume: bool):
        config.validate()
        self.config = config
        self.space = get_space(config.space)
        self.budget = config.budget()
        self.init = config.initial_structure()
        self.out = Path(config.out)
        self.state_path = self.out / STATE_FILE
        self.score_cache: dict[str, float] = {}
        self.budget_cache: dict[str, BudgetCheck] = {}
        if resume:
            self._load()
        else:
            if self.state_path.exists() or (self.out / "search.json").exists():
                raise FileExistsError(
                    f"{self.out} already holds a Zen search; pass --resume to continue it "
                    "(resume=True), or choose another --out"
                )
            self.rng = np.random.default_rng(config.seed)
            self.iteration = 0
            self.population: list[dict[str, Any]] = []
            self.best: dict[str, Any] | None = None
            self.rejections: dict[str, int] = {}
            self.scored = 0
            self.history: list[dict[str, Any]] = []
            self.wall_s = 0.0

    # ---------------------------------------------------------------- state

    def _load(self) -> None:
        if not self.state_path.is_file():
            raise FileNotFoundError(f"{self.state_path}: no Zen search state to resume")
        state = json.loads(self.state_path.read_text())
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"{self.state_path}: not a Zen search state ({STATE_FORMAT})")
        stored = state["config"]
        mine = self.config.to_json()
        changed = [k for k in mine if k not in RESUMABLE_CHANGES and stored.get(k) != mine[k]]
        if changed:
            diffs = ", ".join(f"{k}: {stored.get(k)!r} → {mine[k]!r}" for k in changed)
            raise ValueError(
                f"{self.state_path}: cannot resume with a different configuration ({diffs}); "
                f"only {', '.join(RESUMABLE_CHANGES)} may change"
            )
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
        self.iteration = state["iteration"]
        self.population = [self._read_member(m) for m in state["population"]]
        self.best = self._read_member(state["best"]) if state["best"] else None
        self.rejections = dict(state["rejections"])
        self.scored = state["scored"]
        self.history = [
            {**row, **{k: _unfinite(row.get(k)) for k in ("best_score", "median_score", "score")}}
            for row in state["history"]
        ]
        self.wall_s = state["wall_s"]

    @staticmethod
    def _read_member(m: dict[str, Any]) -> dict[str, Any]:
        return {**m, "score": _unfinite(m["score"])}

    @staticmethod
    def _write_member(m: dict[str, Any]) -> dict[str, Any]:
        return {**m, "score": _finite(m["score"])}

    def _state(self, rng_state: dict[str, Any]) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "config": self.config.to_json(),
            "iteration": self.iteration,
            "rng": rng_state,
            "population": [self._write_member(m) for m in self.population],
            "best": self._write_member(self.best) if self.best else None,
            "rejections": self.rejections,
            "scored": self.scored,
            "history": [
                {
                    **row,
                    **{k: _finite(row.get(k)) for k in ("best_score", "median_score", "score")},
                }
                for row in self.history
            ],
            "wall_s": self.wall_s,
        }

    def save(self, rng_state: dict[str, Any] | None = None, outputs: bool = True) -> None:
        from trainer.files import atomic_write

        state = self._state(rng_state or self.rng.bit_generator.state)
        text = json.dumps(state, indent=1)
        atomic_write(self.state_path, lambda tmp: Path(tmp).write_text(text))
        if outputs:
            self.write_outputs()

    # ---------------------------------------------------------------- outputs

    def summary(self) -> dict[str, Any]:
        best = self._write_member(self.best) if self.best else None
        return {
            "method": "zen",
            "best": best,
            "structure": self.best["structure"] if self.best else None,
            "score": _finite(self.best["score"]) if self.best else None,
            "params": self.best["params"] if self.best else None,
            "macs": self.best["macs"] if self.best else None,
            "layers": self.best["layers"] if self.best else None,
            "latency_ms": self.best["latency_ms"] if self.best else None,
            "budget": asdict(self.budget),
            "config": self.config.to_json(),
            "iterations": self.iteration,
            "scored": self.scored,
            "rejections": self.rejections,
            "wall_s": round(self.wall_s, 3),
            "population": [
                self._write_member(m)
                for m in sorted(self.population, key=lambda m: m["score"], reverse=True)
            ],
        }

    def write_outputs(self) -> dict[str, Path]:
        from trainer.files import atomic_write

        files = {}
        summary = json.dumps(self.summary(), indent=1)
        files["json"] = atomic_write(
            self.out / "search.json", lambda tmp: Path(tmp).write_text(summary)
        )
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.history)
        files["csv"] = atomic_write(
            self.out / "search.csv", lambda tmp: Path(tmp).write_text(buffer.getvalue())
        )
        if self.best:
            text = self.best["structure"] + "\n"
            files["structure"] = atomic_write(
                self.out / "structure.txt", lambda tmp: Path(tmp).write_text(text)
            )
        if self.history:
            files["plot"] = self._plot()
        files["state"] = self.state_path
        return files

    def _plot(self) -> Path:
        from trainer.evaluation.plots import _figure, _save

        rows = [r for r in self.history if r["best_score"] is not None]
        plt, fig, ax = _figure(figsize=(7, 4))
        its = [r["iteration"] for r in rows]
        ax.plot(its, [r["best_score"] for r in rows], label="best")
        ax.plot(its, [r["median_score"] for r in rows], label="population median")
        ax.set(
            xlabel="iteration",
            ylabel="Zen-score",
            title=f"Zen-NAS ({self.config.space}, {self.config.resolution} px)",
        )
        ax.grid(alpha=0.3)
        ax.legend()
        return _save(plt, fig, self.out / "progress.png")

    # ---------------------------------------------------------------- evolution

    def _check(self, text: str) -> BudgetCheck:
        if text not in self.budget_cache:
            if len(self.budget_cache) > 50_000:
                self.budget_cache.clear()
            self.budget_cache[text] = check_budget(text, self.budget)
        return self.budget_cache[text]

    def _score(self, text: str) -> float:
        if text not in self.score_cache:
            if len(self.score_cache) > 50_000:
                self.score_cache.clear()
            c = self.config
            self.score_cache[text] = zen_score(
                text,
                c.resolution,
                c.in_chans,
                c.score_batch,
                c.score_repeats,
                c.variant,
                seed=c.seed,
            )
        return self.score_cache[text]

    def step(self) -> None:
        """One iteration; the state changes only at its end."""
        if len(self.population) <= min(10, self.config.population - 1):
            parent, mutations, origin = self.init, 1, "init"
        else:
            member = self.population[int(self.rng.integers(len(self.population)))]
            parent, mutations = Structure.parse(member["structure"]), 2
            origin = str(member["iteration"])
        child = parent
        for _ in range(mutations):
            child = mutate(child, self.rng, self.space)
        text = child.to_text()
        twin = next((m for m in self.population if m["structure"] == text), None)
        if twin is not None:
            # already a member, with the same score (common random numbers): a copy would
            # only crowd the population
            figures = {k: twin[k] for k in ("layers", "params", "macs", "latency_ms")}
            ok, reason = False, "duplicate"
        else:
            ok, reason, figures = self._check(text)
        row: dict[str, Any] = {
            "iteration": self.iteration + 1,
            "parent": origin,
            "structure": text,
            **figures,
        }
        rejections, population = self.rejections, self.population
        scored, best = self.scored, self.best
        if not ok:
            rejections = {**rejections, reason: rejections.get(reason, 0) + 1}
            row.update(score=None, rejected=reason)
        else:
            score = self._score(text)
            member = {"structure": text, "score": score, **figures, "iteration": row["iteration"]}
            population = [*population, member]
            while len(population) > self.config.population:
                # the lowest score leaves; among equals, the oldest
                worst = min(range(len(population)), key=lambda j: population[j]["score"])
                population.pop(worst)
            scored += 1
            if best is None or score > best["score"]:
                best = member
            row.update(score=score, rejected="")
        row.update(
            best_score=best["score"] if best else None,
            median_score=_median(population),
            population=len(population),
        )
        # commit the iteration in one go
        self.rejections, self.population, self.scored, self.best = (
            rejections,
            population,
            scored,
            best,
        )
        self.history.append(row)
        self.iteration += 1

    def run(self) -> ZenSearchResult:
        import torch

        c = self.config
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(c.threads)
        self.out.mkdir(parents=True, exist_ok=True)
        bar = progress_bar(total=c.iterations, initial=self.iteration, desc="zen", unit="it")
        start = time.perf_counter()
        base_wall = self.wall_s
        snapshot = (self.iteration, self.rng.bit_generator.state)
        try:
            while self.iteration < c.iterations:
                snapshot = (self.iteration, self.rng.bit_generator.state)
                self.step()
                self.wall_s = base_wall + time.perf_counter() - start
                bar.update(1)
                if self.best:
                    bar.set_postfix(
                        best=f"{self.best['score']:.2f}",
                        pop=len(self.population),
                        rej=sum(self.rejections.values()),
                        refresh=False,
                    )
                if self.iteration % c.checkpoint_every == 0:
                    self.save()
            self.save(outputs=False)
            files = self.write_outputs()
        except KeyboardInterrupt:
            # An iteration cut short leaves nothing behind but RNG draws: save the state as of
            # the last complete iteration (RNG rewound), so --resume continues exactly.
            self.wall_s = base_wall + time.perf_counter() - start
            iteration, rng_state = snapshot
            self.save(rng_state=rng_state if self.iteration == iteration else None)
            raise
        finally:
            bar.close()
            torch.set_num_threads(previous_threads)
        return self.result(files)

    def result(self, files: dict[str, Path]) -> ZenSearchResult:
        best = self.best
        return ZenSearchResult(
            structure=best["structure"] if best else None,
            score=best["score"] if best else None,
            figures={k: best[k] for k in ("params", "macs", "layers", "latency_ms")}
            if best
            else {},
            iterations=self.iteration,
            scored=self.scored,
            rejections=dict(self.rejections),
            population=sorted(self.population, key=lambda m: m["score"], reverse=True),
            out=self.out,
            wall_s=self.wall_s,
            files=files,
        )


def search(config: ZenSearchConfig, resume: bool = False) -> ZenSearchResult:
    """Run (or, with `resume`, continue) a Zen-NAS evolution; see the module docstring."""
    return _Search(config, resume).run()


# --------------------------------------------------------------------------- CLI hooks


def add_arguments(group) -> None:
    """The Zen-specific flags of `python -m trainer search --method zen` (all default None;
    `run` fills in ZenSearchConfig's defaults, or the stored run's values with --resume)."""
    group.add_argument("--space", choices=sorted(SPACES), default=None, help="search space")
    group.add_argument(
        "--init", default=None, help="initial structure: a structure string or a file holding one"
    )
    group.add_argument("--population", type=int, default=None, help="population size (64)")
    group.add_argument("--iterations", type=int, default=None, help="iterations (1000)")
    group.add_argument("--resolution", type=int, default=None, help="search input size in px (48)")
    group.add_argument("--in-chans", type=int, default=None, help="input channels (1)")
    group.add_argument(
        "--max-params", type=float, default=None, help="parameter budget (1e6; 0 = none)"
    )
    group.add_argument(
        "--max-macs", type=float, default=None, help="MAC budget at the resolution (50e6; 0 = none)"
    )
    group.add_argument("--max-layers", type=int, default=None, help="Σ sub-layers (14; 0 = none)")
    group.add_argument(
        "--max-latency-ms",
        type=float,
        default=None,
        help="median batch-1 fp32 onnxruntime forward in ms with --threads (none; 0 = none)",
    )
    group.add_argument(
        "--min-width",
        type=int,
        default=None,
        help="fewest channels of any block's output or bottleneck (none; 0 = none)",
    )
    group.add_argument("--score-batch", type=int, default=None, help="Zen-score batch (16)")
    group.add_argument(
        "--score-repeats", type=int, default=None, help="Zen-score repeats, averaged (1)"
    )
    group.add_argument(
        "--score-variant",
        choices=VARIANTS,
        default=None,
        help="σ from BN running_var (code) or the batch std (paper)",
    )
    group.add_argument(
        "--checkpoint-every", type=int, default=None, help="save the state every N iterations (50)"
    )
    group.add_argument(
        "--model-option",
        action="append",
        type=key_value,
        default=None,
        metavar="KEY=VALUE",
        help="a builder option of the network as it will be trained (repeatable; it counts in "
        "params, MACs and latency): shortcut=identity, sum_relu=False, ...; the printed train "
        "command passes it on",
    )


# argparse dest → ZenSearchConfig field
_ARG_FIELDS = {
    "space": "space",
    "init": "init",
    "population": "population",
    "iterations": "iterations",
    "resolution": "resolution",
    "in_chans": "in_chans",
    "max_params": "max_params",
    "max_macs": "max_macs",
    "max_layers": "max_layers",
    "max_latency_ms": "max_latency_ms",
    "min_width": "min_width",
    "score_batch": "score_batch",
    "score_repeats": "score_repeats",
    "score_variant": "variant",
    "checkpoint_every": "checkpoint_every",
    "seed": "seed",
    "threads": "threads",
    "model_option": "model_options",
}
_LIMITS = ("max_params", "max_macs", "max_layers", "max_latency_ms", "min_width")


def _read_init(value: str) -> str:
    path = Path(value)
    if "(" not in value and path.is_file():
        return Structure.from_file(path).to_text()
    if "(" not in value:
        raise FileNotFoundError(f"--init {value!r}: neither a structure string nor a file")
    return Structure.parse(value.strip()).to_text()


def config_from_args(args) -> tuple[ZenSearchConfig, bool]:
    """(config, resume) from parsed CLI flags; unset flags keep the defaults, or the stored
    run's values when resuming."""
    resume = bool(getattr(args, "resume", False))
    space = getattr(args, "space", None) or "idw"
    out = getattr(args, "out", None) or f"runs/zen-{space}"
    base: dict[str, Any] = {}
    if resume:
        state_path = Path(out) / STATE_FILE
        if not state_path.is_file():
            raise FileNotFoundError(f"{state_path}: no Zen search state to resume")
        base = json.loads(state_path.read_text())["config"]
    known = {f.name for f in fields(ZenSearchConfig)}
    values = {k: v for k, v in base.items() if k in known}
    values["out"] = out
    for dest, name in _ARG_FIELDS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if name == "init":
            value = _read_init(value)
        if name == "model_options":
            value = dict(value)
        if name in _LIMITS and value <= 0:
            value = None
        values[name] = value
    return ZenSearchConfig(**values), resume


def _format_figures(figures: dict[str, Any]) -> str:
    parts = [f"{figures['params'] / 1e6:.3f}M params", f"{figures['macs'] / 1e6:.1f}M MACs"]
    parts.append(f"{figures['layers']} layers")
    if figures.get("latency_ms") is not None:
        parts.append(f"{figures['latency_ms']:.2f} ms")
    return ", ".join(parts)


def shortcut_note(config: ZenSearchConfig) -> str | None:
    """A warning for identity shortcuts in a space whose bottlenecks are free."""
    tied = get_space(config.space).tied_bottleneck
    if config.model_options.get("shortcut") != "identity" or tied:
        return None
    return (
        f"note: with shortcut=identity only units of equal input and output shape keep a "
        f"shortcut, and in the {config.space} space most have none (deep candidates are plain "
        f"networks that do not train); --space idw-mb ties bottlenecks so that they keep one"
    )


def run(args) -> int:
    """`python -m trainer search --method zen`: search, then print the structure and figures."""
    config, resume = config_from_args(args)
    note = shortcut_note(config)
    if note:
        print(note, file=sys.stderr)
    try:
        result = search(config, resume=resume)
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rejected = ", ".join(f"{k} {v}" for k, v in sorted(result.rejections.items())) or "none"
    print(
        f"Zen-NAS {config.space}: {result.iterations} iterations in {result.wall_s:.0f} s, "
        f"{result.scored} scored, rejected: {rejected}"
    )
    if result.structure is None:
        print("error: no candidate met the budget; loosen it or give another --init")
        return 1
    print(result.structure)
    print(f"Zen-score {result.score:.3f} ({config.variant}); {_format_figures(result.figures)}")
    options = "".join(f" --model-option {k}={v}" for k, v in config.model_options.items())
    print(
        f"wrote {result.out}; train it with: python -m trainer train --model {result.out}/"
        f"structure.txt{options}"
    )
    return 0
