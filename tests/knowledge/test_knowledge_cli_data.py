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


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "/no/such/model"], "model path '/no/such/model' does not exist"),
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
