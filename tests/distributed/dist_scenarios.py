"""Tiny runs of each training loop, shared by the 2-process launch (dist_worker.py) and the
1-process reference in tests/test_distributed.py.

Each scenario trains into ``out/run`` and returns ``(model, metrics)``; :func:`record` saves what
this process ended with (parameters, metrics, the files the library wrote) as
``out/rank<r>.safetensors`` and ``out/rank<r>.json``.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch
from safetensors.torch import save_file

from quintet.render.mesh import Mesh


@contextmanager
def written_files(hugging_face: bool = True) -> Iterator[list[str]]:
    """The files the library writes meanwhile: atomic writes and, with ``hugging_face``, Hugging
    Face ``save_pretrained`` folders (that imports transformers, seconds per process)."""
    import quintet.core.io as io

    seen: list[str] = []
    original = io.atomic_write

    @contextmanager
    def counting(path, mode="wb"):
        seen.append(str(path))
        with original(path, mode) as handle:
            yield handle

    patches = [(io, "atomic_write", counting)]
    try:
        classes = ()
        if hugging_face:
            from transformers import PreTrainedModel, PreTrainedTokenizerBase

            classes = (PreTrainedModel, PreTrainedTokenizerBase)
        for cls in classes:
            def saving(self, folder, *args, _save=cls.save_pretrained, **kwargs):
                seen.append(f"{folder}/{type(self).__name__}")
                return _save(self, folder, *args, **kwargs)

            patches.append((cls, "save_pretrained", saving))
    except ImportError:
        pass
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, value in patches:
        setattr(owner, name, value)
    try:
        yield seen
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


@contextmanager
def visible_adam(eps: float = 1e-4) -> Iterator[None]:
    """Adam and AdamW with a larger ``eps``. Some parameters have a true gradient of zero (a rank
    loss does not change when every score shifts, so the output bias and the hidden biases of units
    active on every image get only rounding noise); Adam with eps 1e-8 turns that noise into
    steps of ±lr, which no summation order reproduces. With eps 1e-4 such noise moves nothing,
    while real gradients are followed as before, so parameters can be compared at float tolerance."""
    originals = torch.optim.Adam, torch.optim.AdamW

    def larger_eps(cls):
        class Stable(cls):
            def __init__(self, params, *args, **kwargs):
                kwargs.setdefault("eps", eps)
                super().__init__(params, *args, **kwargs)

        return Stable

    torch.optim.Adam, torch.optim.AdamW = larger_eps(originals[0]), larger_eps(originals[1])
    try:
        yield
    finally:
        torch.optim.Adam, torch.optim.AdamW = originals


def record(out: Path, rank: int, model: torch.nn.Module | dict, metrics: dict, writes: list[str]) -> None:
    tensors = model if isinstance(model, dict) else model.state_dict()
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().clone() for k, v in tensors.items()}, str(out / f"rank{rank}.safetensors"))
    (out / f"rank{rank}.json").write_text(json.dumps({"metrics": metrics, "writes": writes}, default=float))


def sorting(out: Path, steps: int = 4) -> tuple[torch.nn.Module, dict]:
    """Ranking supervision: batch 5 sets (3 + 2 rows on 2 processes), 7 test sets (4 + 3)."""
    from quintet.sorting.ranking import RankingConfig, sklearn_digits_source, train_ranking

    cfg = RankingConfig(n=3, steps=steps, batch_size=5, eval_sets=7, eval_every=2, checkpoint_every=2,
                        width=(4, 8), source="digits")
    result = train_ranking(cfg, sklearn_digits_source(0), out=out / "run", log=lambda s: None)
    model = result.pop("model")
    return model, {k: result[k] for k in ("exact_match", "element_wise", "steps", "curve")}


def fixed_vocabulary(lines: list[str], vocab_size: int, directory: Path):
    """A WordPiece vocabulary that depends on the text alone (the trained one breaks ties
    differently in every process): specials, characters, then the most frequent words."""
    import re
    from collections import Counter

    from transformers import BertTokenizerFast

    words = Counter(w for line in lines for w in re.findall(r"\w+|[^\w\s]", line.lower()))
    chars = sorted({c for w in words for c in w})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    vocab += [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])) if len(w) > 1]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(vocab[:vocab_size]) + "\n", encoding="utf-8")
    return BertTokenizerFast(str(directory / "vocab.txt"), do_lower_case=True)


def factlm(out: Path) -> tuple[torch.nn.Module, dict]:
    """Fact LM: 2 epochs without dropout (dropout masks are drawn per process), 223 prompts in
    batches of 16 (the last one 15: 8 + 7 rows)."""
    import quintet.knowledge.factlm as factlm_module
    from quintet.knowledge.factlm import FactLMConfig, load_model, train_factlm

    cfg = FactLMConfig(facts_per_relation=1, vocab_size=600, hidden_size=16, num_layers=1, num_heads=2,
                       intermediate_size=32, epochs=2, batch_size=16, lr=3e-3, dropout=0.0, target_accuracy=1.1)
    original, factlm_module._wordpiece = factlm_module._wordpiece, fixed_vocabulary
    try:
        metrics = train_factlm(out / "run", cfg, log=lambda s: None)
    finally:
        factlm_module._wordpiece = original
    metrics.pop("train_seconds")
    model, _ = load_model(out / "run")
    return model, metrics


def logic(out: Path) -> tuple[torch.nn.Module, dict]:
    """Logic gate network: batch 7 rows (4 + 3), 51 test rows (26 + 25)."""
    import numpy as np

    from quintet.logic.data import BinaryDataset
    from quintet.logic.train import TrainConfig, train

    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, (251, 12)).astype(np.uint8)
    y = (x[:, 0] ^ x[:, 1]).astype(np.int64)
    data = BinaryDataset("monk1", x[:200], y[:200], x[200:], y[200:], 2)
    cfg = TrainConfig(width=16, depth=2, steps=6, batch_size=7, eval_every=3, lr=0.05)
    result = train(cfg, data, out=out / "run", log=lambda s: None)
    model = result.pop("model")
    return model, {k: result[k] for k in ("steps", "history", "test_acc_discrete", "test_acc_relaxed",
                                          "train_acc_discrete")}


def algovision(out: Path) -> tuple[torch.nn.Module, dict]:
    """Relaxed bubble sort supervision: batch 5 sets (3 + 2), 7 test sets (4 + 3)."""
    from quintet.algovision.sorting_task import SortingConfig, train_sorting
    from quintet.sorting.ranking import sklearn_digits_source

    cfg = SortingConfig(method="bubble", n=3, steps=4, batch_size=5, width=(4, 8), eval_sets=7, eval_every=2)
    result = train_sorting(cfg, sklearn_digits_source(0), out=out / "run", log=lambda s: None)
    model = result.pop("model")
    return model, {k: result[k] for k in ("exact_match", "element_wise", "steps", "curve")}


def algovision_path(out: Path) -> tuple[torch.nn.Module, dict]:
    """Relaxed shortest paths on terrain maps: batch 5 maps (3 + 2)."""
    from quintet.algovision.path_task import PathConfig, train_path

    cfg = PathConfig(size=6, tile=4, train_maps=12, test_maps=5, steps=3, batch_size=5, eval_every=3)
    result = train_path(cfg, out=out / "run", log=lambda s: None)
    model = result.pop("model")
    return model, {k: v for k, v in result.items() if k != "seconds"}


def algovision_edit(out: Path) -> tuple[torch.nn.Module, dict]:
    """Edit-distance supervision; its CNN ends in batch norm, whose batch statistics are per process."""
    from quintet.algovision.edit_task import EditConfig, train_edit
    from quintet.sorting.ranking import sklearn_digits_source

    cfg = EditConfig(length=3, edits=2, steps=3, batch_size=6, width=(4, 8), eval_digits=50, eval_every=3)
    result = train_edit(cfg, sklearn_digits_source(0), out=out / "run", log=lambda s: None)
    model = result.pop("model")
    return model, {k: v for k, v in result.items() if k not in ("seconds",)}


def _cube(scale: float = 0.8) -> Mesh:
    corners = torch.tensor([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)]) * scale
    faces = torch.tensor([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                          [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    return Mesh(corners, faces)


def render_pose(out: Path) -> tuple[dict, dict]:
    """Pose recovery of 5 independent poses (3 + 2 per process)."""
    from quintet.render.experiments import PoseConfig, fit_pose

    cfg = PoseConfig(poses=5, steps=6, image_size=16, lr=0.05)
    result = fit_pose(_cube(), cfg, log=lambda s: None)
    poses = torch.tensor(result["final_error_deg"])
    return {"final_error_deg": poses}, {k: result[k] for k in ("success_rate", "median_error_deg",
                                                               "initial_error_deg", "final_error_deg")}


def render_shape(out: Path) -> tuple[torch.nn.Module | dict, dict]:
    """Shape fit of a cube to a smaller cube's silhouettes from 5 views (3 + 2 per process)."""
    from quintet.render.experiments import ShapeConfig, fit_shape

    cameras = torch.tensor([[2.732, 30.0, azimuth] for azimuth in (0.0, 70.0, 140.0, 210.0, 280.0)])
    cfg = ShapeConfig(steps=5, image_size=16, lr=0.05)
    result = fit_shape(_cube(), _cube(0.5), cameras, cfg, log=lambda s: None)
    return {"vertices": result["vertices"]}, {k: result[k] for k in ("iou", "best_iou")}


def _dro_data(text: bool = False):
    """61 training rows (batches of 9: 5 + 4, the last one 7: 4 + 3), 301 validation and 403 test
    rows (151 + 150 and 202 + 201). ``text``: random sentences of token ids with padding, for the
    BiLSTM (the batch is trimmed to its longest sentence before it is split)."""
    from dataclasses import replace

    from quintet.dro.models import ModelSpec
    from quintet.dro.tasks import Split, load_task

    data = load_task("synthetic", n_train=61)
    data = replace(data, valid=data.valid.subset(torch.arange(301)), test=data.test.subset(torch.arange(403)))
    if not text:
        return data
    generator = torch.Generator().manual_seed(0)

    def sentences(split: Split) -> Split:
        n = len(split)
        tokens = torch.randint(1, 30, (n, 12), generator=generator)
        lengths = torch.randint(2, 13, (n,), generator=generator)
        tokens[torch.arange(12) >= lengths[:, None]] = 0
        tokens[:, 0] = 1 + split.y * 2 + (split.g >= 2)  # label and spurious attribute in the first word
        return Split(tokens, split.y, split.g)

    spec = ModelSpec(kind="bilstm", n_out=2, vocab_size=30, embed_dim=8, hidden=8, learned_init=True)
    return replace(data, train=sentences(data.train), valid=sentences(data.valid), test=sentences(data.test),
                   model=spec)


def dro(out: Path, method: str = "erm", recipe: str = "ours", text: bool = False, epochs: int = 2
        ) -> tuple[torch.nn.Module, dict]:
    """One DRO run of ``method`` on a small synthetic task; the model (and adversary) it ends with."""
    import quintet.dro.experiments as experiments

    made = []

    class Recorded(experiments.Players):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    config = experiments.TrainConfig(task="synthetic", method=method, recipe=recipe, epochs=epochs, batch_size=9,
                                     lr=3e-3, adv_lr=3e-3, alpha=0.3, eta_q=0.1, n_train=61)
    original, experiments.Players = experiments.Players, Recorded
    try:
        result = experiments.train_on(_dro_data(text), config, checkpoint_dir=out / "run")
    finally:
        experiments.Players = original
    metrics = {k: result[k] for k in ("history", "selection", "weights")}
    for key in ("valid_errors", "valid_ratios"):
        metrics[key] = None if result[key] is None else result[key].double().tolist()
    # the weights themselves: the log of a near-zero chi-square weight amplifies rounding of the losses
    own = result["valid_log_weights"]
    metrics["valid_weights"] = None if own is None else own.double().exp().tolist()
    return made[-1], metrics


DRO = {"dro_erm": {"method": "erm"}, "dro_group": {"method": "group-dro"}, "dro_ratio": {"method": "ratio"},
       "dro_cvar": {"method": "cvar"}, "dro_chi2": {"method": "chi2"}, "dro_kl": {"method": "kl"},
       "dro_selfnorm": {"method": "ratio-selfnorm"}, "dro_uniform": {"method": "group-uniform"},
       "dro_ratio_authors": {"method": "ratio", "recipe": "authors"},
       "dro_group_authors": {"method": "group-dro", "recipe": "authors"},
       "dro_ratio_text": {"method": "ratio", "text": True}, "dro_pdro": {"method": "pdro", "text": True}}


def _dro_scenario(settings: dict) -> Callable[..., tuple[torch.nn.Module, dict]]:
    return lambda out, **kwargs: dro(out, **{**settings, **kwargs})


SCENARIOS: dict[str, Callable[..., tuple[torch.nn.Module | dict, dict]]] = {
    "sorting": sorting, "factlm": factlm, "logic": logic, "algovision": algovision,
    "algovision_path": algovision_path, "algovision_edit": algovision_edit, "render_pose": render_pose, "render_shape": render_shape,
    **{name: _dro_scenario(settings) for name, settings in DRO.items()},
}


def run(name: str, out: Path, **kwargs) -> None:
    from quintet.core.distributed import current

    rank = current().rank
    with written_files() as writes, visible_adam():
        model, metrics = SCENARIOS[name](out, **kwargs)
    record(out, rank, model, metrics, writes)
