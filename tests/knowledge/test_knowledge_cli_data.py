"""`quintet knowledge attribute` end to end on a saved tiny model, CLI errors, PARAREL bags."""

from __future__ import annotations

import pytest
from knowledge_models import bert_tokenizer, tiny_model

from quintet.cli import main


@pytest.fixture()
def saved_model(tmp_path):
    tok = bert_tokenizer(tmp_path)
    model = tiny_model("bert", dtype=__import__("torch").float32)
    out = tmp_path / "tiny"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_attribute_prints_top_neurons_and_writes_heatmap(saved_model, tmp_path, capsys):
    png = tmp_path / "h.png"
    code = main(["knowledge", "attribute", "--model", str(saved_model), "--prompt", "the capital of france is [MASK] .",
                 "--answer", "paris", "--steps", "4", "--top", "3", "--heatmap", str(png)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "P('paris')" in out and out.count("\n") >= 5
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_attribute_gauss_rule_prints_the_api_top_neurons(saved_model, tmp_path, capsys):
    from quintet.knowledge import integrated_gradients
    from quintet.knowledge.factlm import load_model

    prompt = "the capital of france is [MASK] ."
    code = main(["knowledge", "attribute", "--model", str(saved_model), "--prompt", prompt, "--answer", "paris",
                 "--rule", "gauss", "--steps", "5", "--top", "3", "--heatmap", str(tmp_path / "g.png")])
    out = capsys.readouterr().out
    assert code == 0, out
    net, tok = load_model(saved_model)
    top = integrated_gradients(net, tok, prompt, "paris", steps=5, rule="gauss").top(3)
    rows = [line.split() for line in out.splitlines() if line[:5].strip().isdigit()]
    assert [(int(r[0]), int(r[1])) for r in rows] == [(layer, i) for layer, i, _ in top]
    assert [float(r[2]) for r in rows] == pytest.approx([s for *_, s in top], rel=1e-3)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "/no/such/model"], "'--model': dir '/no/such/model' does not exist"),
        (["--rule", "simpson"], "'simpson' is not one of 'right', 'left', 'gauss'"),
        (["--prompt", "no mask here"], "has 0 [MASK] tokens"),
        (["--answer", "paris rome"], "is 2 tokens"),
    ],
)
def test_attribute_user_errors_are_one_line(saved_model, capsys, args, message):
    base = {"--model": str(saved_model), "--prompt": "the capital of france is [MASK] .", "--answer": "paris"}
    base.update(dict(zip(args[::2], args[1::2])))
    argv = ["knowledge", "attribute", "--steps", "2"] + [x for kv in base.items() for x in kv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("quintet: error:") and message in err and err.count("\n") == 1


def test_pararel_bags_34_relations_single_token_objects(data_dir, tmp_path):
    from quintet.knowledge.pararel import kn_bags, pararel_bags, relation_templates

    templates = relation_templates(data_dir=data_dir)
    assert len(templates) == 34 and "P17" not in templates and "P1001" not in templates
    tok = bert_tokenizer(tmp_path)
    bags = pararel_bags(facts_per_relation=2, heldout_fraction=0.25, data_dir=data_dir)
    assert len({b.relation for b in bags}) == 34
    assert all(b.prompts and all(p.count("[MASK]") == 1 for p in b.prompts + b.heldout) for b in bags)
    assert all(len(b.prompts) >= 3 and len(b.heldout) >= 1 for b in bags)
    # with the tiny vocabulary, only objects that are one token survive
    assert all(b.object.lower() in ("paris", "rome", "italy", "france", "french", "italian", "guitar", "piano", "capital")
               for b in pararel_bags(tok, data_dir=data_dir))
    assert len(kn_bags(data_dir=data_dir)) == 937


def test_factlm_corruption_follows_bert_masking():
    import torch

    from quintet.knowledge.factlm import _corrupt

    gen = torch.Generator().manual_seed(0)
    n, width, mask_id, vocab = 4000, 8, 4, 50
    ids = torch.randint(5, vocab, (n, width), generator=gen)
    ids[:, 0], ids[:, -1] = 2, 3  # [CLS] ... [SEP]
    attention = torch.ones_like(ids)
    positions = torch.randint(1, width - 1, (n,), generator=gen)
    out, labels, is_object = _corrupt(ids, attention, positions, torch.arange(5), 5, mask_id, vocab, 0.15, gen)
    rows = torch.arange(n)
    assert bool(is_object[rows, positions].all()) and int(is_object.sum()) == n
    assert bool((labels[rows, positions] == ids[rows, positions]).all())  # the object is always predicted
    assert bool((labels[:, 0] == -100).all() and (labels[:, -1] == -100).all())  # never the special tokens
    others = (labels >= 0) & ~is_object
    assert 0.12 < float(others.sum()) / float((~is_object[:, 1:-1]).sum()) < 0.18
    chosen = labels >= 0
    masked = float((out[chosen] == mask_id).float().mean())
    kept = float((out[chosen] == ids[chosen]).float().mean())
    assert 0.77 < masked < 0.83 and 0.08 < kept < 0.13  # 80 % [MASK], 10 % kept (+ random hits)
    assert bool((out[~chosen] == ids[~chosen]).all())


def test_factlm_cache_folder_depends_on_the_recipe(tmp_path, monkeypatch):
    from dataclasses import replace

    from quintet.knowledge.factlm import FactLMConfig
    from quintet.knowledge.reproduce import _trained, factlm_dir

    monkeypatch.setenv("QUINTET_CACHE", str(tmp_path))
    quick = FactLMConfig.quick()
    assert factlm_dir(quick).parent == tmp_path / "knowledge"
    assert factlm_dir(quick) == factlm_dir(FactLMConfig.quick())
    assert factlm_dir(quick) != factlm_dir(replace(quick, dropout=0.0))
    assert not _trained(factlm_dir(quick), quick)  # nothing there: reproduce retrains


def test_train_factlm_warns_below_the_accuracy_target(data_dir, tmp_path):
    from quintet.knowledge.factlm import FactLMConfig, train_factlm

    config = FactLMConfig(facts_per_relation=1, vocab_size=600, hidden_size=16, num_heads=2, num_layers=1,
                          intermediate_size=16, epochs=1, batch_size=64)
    lines: list[str] = []
    metrics = train_factlm(tmp_path / "lm", config, data_dir=data_dir, log=lines.append)
    assert metrics["epochs_run"] == 1 and metrics["train_accuracy"] < 0.9
    warning = [line for line in lines if "WARNING" in line]
    assert warning == [f"[factlm] WARNING: train top-1 accuracy {100 * metrics['train_accuracy']:.1f} % is below "
                       "the 90 % target after 1 epochs: the model has not memorised its training prompts, so "
                       "knowledge neurons found in it are unreliable; train longer (--epochs)"]
