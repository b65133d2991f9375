"""Bad input on every command of ``quintet --help``: one line ``quintet: error: ...`` and exit 2.

The cases are generated from the command line's own declarations, so a new command or option is
covered without a new test:

* every ``int``/``float`` option declares its range (typer ``min=``/``max=``); the values just
  outside it, a wrong type and (floats) ``nan`` must be refused;
* every ``Literal`` choice refuses an unknown name; free text refuses an empty or meaningless value;
* every path declares whether it is read (``exists=True``) or written (``file_okay=False`` for a
  folder, ``dir_okay=False`` for a file); a missing, empty, garbage or wrong-kind input is refused,
  as is an output under a file or in a folder that does not exist (which must not be created);
* every file of a valid artifact (model folder, checkpoint, corpus) truncated or replaced by
  garbage is refused by each command that reads it.

A case passes only when the one line names the bad option or value, so a refusal for an
unrelated reason (say, a missing data set) does not count. Each case runs in-process under a
time and an address-space limit: a bad value that is accepted and starts real work fails fast
instead of training or allocating.
"""

from __future__ import annotations

import os
import resource
import signal
import typing
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest
import torch
import typer

from quintet.cli import app, main

SECONDS_PER_CASE = 20
EXTRA_ADDRESS_SPACE = 6 << 30  # a case may map this much beyond what the test process holds

# Valid values for required parameters (``{name}`` is an artifact built on demand). A command
# missing here gets a generic filler, so new commands still run.
BASE: dict[str, list[str]] = {
    "reproduce": ["sorting"],
    "knowledge attribute": ["--model", "{bert}", "--prompt", "the capital of france is [MASK] .", "--answer", "paris"],
    "sketch show": ["{sketch}"],
    "sketch solve": ["{sketch}"],
    "sketch export": ["{sketch}", "--dxf", "{tmp}/s.dxf"],
    "sketch corpus": ["--out", "{tmp}/corpus", "--n", "10", "--workers", "1"],
    "sketch stats": ["{corpus}"],
    "sketch generate": ["--out", "{tmp}/gen", "--models", "{sketch_models}"],
    "segment evaluate": ["{segment_run}/checkpoints"],
    "segment predict": ["{image}", "-c", "{segment_run}/checkpoints"],
    "dro summarize": ["{dro_run}", "--out", "{tmp}/summary"],
}

# the options of `segment train` that the segment_run artifact was trained with
SEGMENT_RUN = "--steps 1 --checkpoint-every 1 --batch 2 --width 2"

# Commands whose artifacts a fuzzed file of the artifact must break: (artifact, argv template).
READERS: list[tuple[str, list[str]]] = [
    ("bert", ["knowledge", "attribute", *BASE["knowledge attribute"]]),
    ("corpus", ["sketch", "stats", "{corpus}", "--no-compare"]),
    ("sketch_models", ["sketch", "generate", "--out", "{tmp}/gen", "--models", "{sketch_models}", "--n", "1"]),
    ("segment_run", ["segment", "evaluate", "{segment_run}/checkpoints"]),
    ("segment_run", ["segment", "predict", "{image}", "-c", "{segment_run}/checkpoints"]),
    ("segment_run", ["segment", "train", "--out", "{segment_run}", *SEGMENT_RUN.split()]),
    ("dro_run", ["dro", "train", "--out", "{dro_run}", *"--task synthetic --method erm --epochs 1 --n-train 200".split()]),
]

# Cases that a declaration alone cannot generate: a value valid on its own, wrong in combination.
SEMANTIC: list[tuple[str, list[str], str]] = [
    ("segment targets-equal-a-source", ["segment", "train", "--targets", "0006R0"], "0006R0"),
    ("segment size-without-folders", ["segment", "train", "--size", "abc"], "--size"),
    ("dro ratio-with-batch-of-one", ["dro", "train", "--task", "synthetic", "--batch-size", "1"], "batch"),
    ("dro synthetic-too-large", ["dro", "train", "--task", "synthetic", "--n-train", "99999999"], "n-train"),
    ("sketch heads-do-not-divide", ["sketch", "train", "--out", "{tmp}/m", "--d-model", "30"], "d-model"),
    ("sketch show-jpg", ["sketch", "show", "{sketch}", "--out", "{tmp}/x.jpg"], "x.jpg"),
    ("segment predict-jpg", ["segment", "predict", "{image}", "-c", "{segment_run}/checkpoints",
                             "--out", "{tmp}/x.jpg"], "x.jpg"),
    ("knowledge pickle-weights", ["knowledge", "attribute", "--model", "{bert_pickle}",
                                  "--prompt", "a [MASK] .", "--answer", "paris"], "safetensors"),
    ("knowledge tokenizer-missing", ["knowledge", "attribute", "--model", "{bert}", "--tokenizer", "{tmp}/none",
                                     "--prompt", "a [MASK] .", "--answer", "paris"], "none"),
    ("sketch resume-other-d-model", ["sketch", "train", "--model", "primitive", "--out", "{sketch_models}/primitive",
                                     *"--steps 2 --n-train 16 --batch-size 4 --layers 1 --d-model 32".split()],
     "d_model"),
    ("segment resume-other-method", ["segment", "train", "--out", "{segment_run}", "--method", "erm",
                                     *SEGMENT_RUN.split()], "method"),
    ("dro resume-other-method", ["dro", "train", "--out", "{dro_run}", *"--task synthetic --method cvar --epochs 1 "
                                 "--n-train 200".split()], "method"),
    ("data check-empty-root", ["--data-dir", "{tmp}", "data", "check", "--no-verify"], "no data set"),
]

# Cases known to fail, keyed by case id with the reason; each still runs (strict=False), so a fix
# shows up as XPASS and its line can go. Empty: every case passes.
KNOWN_FAILURES: dict[str, str] = {
}


# ---- the command tree --------------------------------------------------------------------------


def _leaves(group, path=()) -> Iterator[tuple[str, object]]:
    if hasattr(group, "commands"):
        for name, sub in sorted(group.commands.items()):
            if not sub.hidden:  # a hidden alias (``sorting`` for ``sort``) holds the same commands
                yield from _leaves(sub, (*path, name))
    else:
        yield " ".join(path), group


COMMANDS = dict(_leaves(typer.main.get_command(app)))


def _annotation(param) -> object:
    """The parameter's type with ``Optional`` removed."""
    ann = param.type_descriptor.annotation
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    return args[0] if typing.get_origin(ann) is typing.Union and len(args) == 1 else ann


def _info(param):
    return param.type_descriptor.parameter_info


def _is_flag(param) -> bool:
    return _annotation(param) is bool


# ---- cases --------------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    command: str
    param: object | None  # None for whole-argv cases
    value: str  # literal, or a {placeholder}
    names: tuple[str, ...]  # one of these must appear in the error line
    argv: list[str] = field(default_factory=list)  # whole-argv cases
    static: Callable[[], None] | None = None  # a check of the declaration only
    not_created: str | None = None


def _names(param) -> tuple[str, ...]:
    names = [param.name, param.name.replace("_", "-"), param.name.replace("_", " ")]
    names += list(getattr(param, "opts", []))
    return tuple(names)


def _static_range(command: str, param) -> Callable[[], None]:
    def check() -> None:
        assert param.min is not None and param.max is not None, (
            f"`quintet {command}` {param.opts[0]}: declare its range with typer min=/max=")
    return check


def _static_path(command: str, param) -> Callable[[], None]:
    def check() -> None:
        info = _info(param)
        assert info.exists or not info.file_okay or not info.dir_okay, (
            f"`quintet {command}` {param.opts[0]}: declare exists=True (read) or file_okay/dir_okay=False (written)")
    return check


def _param_cases(command: str, param) -> Iterator[Case]:
    ann, info = _annotation(param), _info(param)
    label = f"{command} {param.opts[0]}"
    names = _names(param)
    if ann in (int, float):
        yield Case(f"{label} declares-range", command, param, "", names, static=_static_range(command, param))
        yield Case(f"{label} wrong-type", command, param, "abc", names)
        if param.min is not None:
            yield Case(f"{label} below-min", command, param, str(param.min - 1), names)
        if param.max is not None:
            yield Case(f"{label} above-max", command, param, str(param.max * 10 + 1), names)
        if ann is float:
            yield Case(f"{label} nan", command, param, "nan", names)
    elif typing.get_origin(ann) is typing.Literal:
        yield Case(f"{label} unknown-choice", command, param, "no-such-choice", names + ("no-such-choice",))
    elif ann is str:
        yield Case(f"{label} empty", command, param, "", names)
        yield Case(f"{label} meaningless", command, param, "no-such-value", names + ("no-such-value",))
    elif ann is Path:
        yield Case(f"{label} declares-kind", command, param, "", names, static=_static_path(command, param))
        if info.exists:
            yield Case(f"{label} missing", command, param, "{tmp}/missing", names + ("missing",))
            if info.file_okay and not info.dir_okay:
                yield Case(f"{label} a-folder", command, param, "{tmp}", names + ("tmp",))
                yield Case(f"{label} empty-file", command, param, "{empty}", names + ("empty",))
                yield Case(f"{label} garbage-file", command, param, "{garbage}", names + ("garbage",))
            if info.dir_okay and not info.file_okay:
                yield Case(f"{label} a-file", command, param, "{garbage}", names + ("garbage",))
        elif not info.file_okay:  # a folder that is written
            yield Case(f"{label} under-a-file", command, param, "{garbage}/sub", names + ("garbage",))
        elif not info.dir_okay:  # a file that is written
            yield Case(f"{label} under-a-file", command, param, "{garbage}/sub/x.png", names + ("garbage",))
            yield Case(f"{label} missing-folder", command, param, "{tmp}/no-such-folder/x.png",
                       names + ("no-such-folder",), not_created="{tmp}/no-such-folder")


def _cases() -> list[Case]:
    cases = []
    for command, cmd in COMMANDS.items():
        for param in cmd.params:
            if not _is_flag(param) and param.name not in ("help",):
                cases.extend(_param_cases(command, param))
    for artifact, argv in READERS:
        for fname, how in _ARTIFACT_FILES.get(artifact, []):
            cases.append(Case(f"{' '.join(argv[:2])} {artifact}/{fname} {how}", " ".join(argv[:2]), None, "",
                              (fname.split("/")[-1],), argv=[a.replace("{" + artifact + "}", "{broken}") for a in argv]))
            cases[-1].broken = (artifact, fname, how)
    for name, argv, needle in SEMANTIC:
        cases.append(Case(name, "", None, "", (needle,), argv=argv))
    return cases


# files of each artifact that a reader must check: (path inside the artifact, how it is broken)
_ARTIFACT_FILES: dict[str, list[tuple[str, str]]] = {
    "bert": [(f, how) for f in ("config.json", "model.safetensors", "tokenizer.json") for how in ("truncated", "garbage")],
    "corpus": [("corpus.npz", "truncated"), ("corpus.npz", "garbage")],
    "sketch_models": [(f"primitive/latest/{f}", how) for f in ("config.json", "model.safetensors", "trainer_state.json")
                      for how in ("truncated", "garbage")],
    "segment_run": [(f"checkpoints/latest/{f}", how) for f in ("config.json", "model.safetensors", "trainer_state.json")
                    for how in ("truncated", "garbage")],
    "dro_run": [(f"checkpoints/latest/{f}", how) for f in ("config.json", "model.safetensors", "trainer_state.json")
                for how in ("truncated", "garbage")],
}

CASES = _cases()


# ---- artifacts ----------------------------------------------------------------------------------


class Artifacts:
    """Valid inputs built once per session, on first use."""

    def __init__(self, root: Path):
        self.root = root
        self.built: dict[str, Path] = {}

    def get(self, name: str) -> Path:
        if name not in self.built:
            self.built[name] = getattr(self, f"_{name}")(self.root / name)
        return self.built[name]

    def _bert(self, out: Path) -> Path:
        import sys

        sys.path.insert(0, str(Path(__file__).parent / "knowledge"))
        from knowledge_models import bert_tokenizer, tiny_model

        tiny_model("bert", dtype=torch.float32).save_pretrained(out)
        bert_tokenizer(out.parent).save_pretrained(out)
        return out

    def _bert_pickle(self, out: Path) -> Path:
        import shutil

        shutil.copytree(self.get("bert"), out)
        state = {k: v for k, v in __import__("safetensors.torch").torch.load_file(str(out / "model.safetensors")).items()}
        torch.save(state, out / "pytorch_model.bin")
        (out / "model.safetensors").unlink()
        return out

    def _sketch(self, out: Path) -> Path:
        from quintet.sketch.constraints import save_sketch
        from quintet.sketch.synth import generate_sketches

        out.mkdir(parents=True)
        return save_sketch(generate_sketches(1, seed=0)[0], out / "sketch.json")

    def _corpus(self, out: Path) -> Path:
        from quintet.sketch.corpus import write_corpus

        write_corpus(out, 10, seed=0, workers=1)
        return out

    def _sketch_models(self, out: Path) -> Path:
        from quintet.sketch.models.cli import train_model

        for which in ("primitive", "constraint"):
            train_model(which, out / which, steps=2, n_train=16, batch_size=4, d_model=16, n_layers=1, n_heads=2,
                        progress=False)
        return out

    def _image(self, out: Path) -> Path:
        import numpy as np
        from PIL import Image

        out.mkdir(parents=True)
        Image.fromarray(np.full((90, 120, 3), 128, np.uint8)).save(out / "image.png")
        return out / "image.png"

    def _segment_run(self, out: Path) -> Path:
        from quintet.segmentation.demo import synthetic_domain
        from quintet.segmentation.experiments import TrainConfig, train
        from quintet.segmentation.models import NetConfig

        net = NetConfig.tiny(num_classes=11, stem=2, widths=(2, 4, 6, 8), aspp_dim=8, decoder_dim=8)
        cfg = TrainConfig(method="pinmem", steps=1, batch=2, net=net.to_dict(), checkpoint_every=1).validate()
        train(cfg, [synthetic_domain("sunny", 4, 0, (90, 120)), synthetic_domain("overcast", 4, 1, (90, 120))],
              checkpoint_dir=out / "checkpoints")
        return out

    def _dro_run(self, out: Path) -> Path:
        assert main(["dro", "train", "--out", str(out), *"--task synthetic --method erm --epochs 1 --n-train 200"
                     .split()]) == 0
        return out


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Artifacts:
    return Artifacts(tmp_path_factory.mktemp("artifacts"))


def _break(src: Path, dst: Path, fname: str, how: str) -> Path:
    """A copy of artifact ``src`` at ``dst`` with ``fname`` truncated or replaced by garbage."""
    import shutil

    shutil.copytree(src, dst, symlinks=False)
    target = dst / fname
    if "latest/" in fname:  # the file inside the checkpoint the ``latest`` pointer names
        folder, rest = fname.split("latest/")
        target = dst / folder / (dst / folder / "latest").read_text().strip() / rest
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2] if how == "truncated" else os.urandom(max(64, len(data) // 8)))
    return dst


# ---- running ------------------------------------------------------------------------------------


class RanOn(BaseException):
    """The command was still running when the time limit struck: the bad value was accepted."""


@contextmanager
def _limits() -> Iterator[None]:
    def stop(signum, frame):
        raise RanOn(f"still running after {SECONDS_PER_CASE} s: the bad value was accepted")

    old_handler = signal.signal(signal.SIGALRM, stop)
    old_as = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as fh:
        held = int(fh.read().split()[0]) * resource.getpagesize()
    limit = held + EXTRA_ADDRESS_SPACE
    # (not on a GPU machine: the CUDA runtime reserves far more address space than it uses)
    if not torch.cuda.is_available() and (old_as[1] == resource.RLIM_INFINITY or limit < old_as[1]):
        resource.setrlimit(resource.RLIMIT_AS, (limit, old_as[1]))
    threads = torch.get_num_threads()
    signal.alarm(SECONDS_PER_CASE)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old_handler)
        resource.setrlimit(resource.RLIMIT_AS, old_as)
        torch.set_num_threads(threads)


def _fill(token: str, values: dict[str, Callable[[], str]]) -> str:
    for key, make in values.items():
        if "{" + key + "}" in token:
            token = token.replace("{" + key + "}", make())
    return token


def _filler(param) -> list[str]:
    """A generic valid-looking value for a required parameter of a command not in BASE."""
    ann = _annotation(param)
    value = {int: str(param.min if param.min is not None else 1), float: str(param.min or 0.5)}.get(ann, "x")
    if typing.get_origin(ann) is typing.Literal:
        value = str(typing.get_args(ann)[0])
    if ann is Path:
        value = "{tmp}/x"
    return [value] if param.param_type_name == "argument" else [param.opts[0], value]


def _argv(case: Case) -> list[str]:
    if case.argv:
        return list(case.argv)
    cmd = COMMANDS[case.command]
    bad = [case.value] if case.param.param_type_name == "argument" else [case.param.opts[0], case.value]
    if case.command in BASE:
        base = list(BASE[case.command])
    else:
        base = [tok for p in cmd.params if p.required and p is not case.param for tok in _filler(p)]
    if case.param.param_type_name == "argument":  # replace the positional of the base by the bad value
        positional = [i for i, tok in enumerate(base) if not tok.startswith("-") and (i == 0 or not base[i - 1]
                      .startswith("-"))]
        index = [p for p in cmd.params if p.param_type_name == "argument"].index(case.param)
        if index < len(positional):
            base[positional[index]] = case.value
            return [*case.command.split(), *base]
        return [*case.command.split(), case.value, *base]
    for opt in case.param.opts:  # the bad option replaces the base's value
        if opt in base:
            i = base.index(opt)
            del base[i: i + 2]
    return [*case.command.split(), *bad, *base]


def _marks(case: Case) -> list:
    reason = KNOWN_FAILURES.get(case.id)
    return [pytest.mark.xfail(reason=reason, strict=False)] if reason else []


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=_marks(c)) for c in CASES])
def test_bad_input_is_one_line_and_exit_2(case: Case, artifacts, tmp_path, monkeypatch, capsys):
    if case.static is not None:
        case.static()
        return
    empty_root = tmp_path / "data-root"
    empty_root.mkdir()
    monkeypatch.setenv("QUINTET_DATA", str(empty_root))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "garbage").write_bytes(os.urandom(256))
    values: dict[str, Callable[[], str]] = {
        "tmp": lambda: str(tmp_path), "empty": lambda: str(tmp_path / "empty"),
        "garbage": lambda: str(tmp_path / "garbage"),
    }
    if getattr(case, "broken", None):
        artifact, fname, how = case.broken
        values["broken"] = lambda: str(_break(artifacts.get(artifact), tmp_path / "broken", fname, how))
    for name in ("bert", "bert_pickle", "sketch", "corpus", "sketch_models", "image", "segment_run", "dro_run"):
        values[name] = (lambda n: lambda: str(artifacts.get(n)))(name)
    if any("{segment_run}" in a or "{dro_run}" in a or "{sketch_models}" in a for a in _argv(case)) and (
            case.argv and "resume" in case.id):  # a resume case must not alter the shared artifact
        import shutil

        for name in ("segment_run", "dro_run", "sketch_models"):
            values[name] = (lambda n: lambda: str(shutil.copytree(artifacts.get(n), tmp_path / n)))(name)
    argv = [_fill(tok, values) for tok in _argv(case)]
    capsys.readouterr()
    with _limits():
        code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, f"exit {code} for {argv}; stderr: {err[-500:]!r}"
    assert len(lines) == 1 and lines[0].startswith("quintet: error:"), f"{len(lines)} lines on stderr: {err[-800:]!r}"
    needles = [_fill(n, values).lower() for n in case.names]
    assert any(n in lines[0].lower() for n in needles), f"the error line names none of {needles}: {lines[0]!r}"
    if case.not_created:
        assert not Path(_fill(case.not_created, values)).exists(), f"{case.not_created} was created"


def test_cases_cover_every_command():
    covered = {c.command for c in CASES if c.param is not None}
    with_params = {name for name, cmd in COMMANDS.items() if any(not _is_flag(p) for p in cmd.params)}
    assert with_params <= covered
    assert {"sort train-ranking", "knowledge attribute", "sketch train", "segment train", "dro train"} <= set(COMMANDS)
