"""Readers for the real data sets under the data root (see ``quintet data check``)."""

from quintet.datasets.camvid import CAMVID_CLASSES, CAMVID_VOID, CamVidSplit, load_camvid
from quintet.datasets.mnist import load_mnist, read_idx
from quintet.datasets.pararel import (
    BagPrompt,
    Fact,
    Template,
    load_kn_bags,
    load_lama_relations,
    load_pararel_templates,
    load_trex_facts,
    pararel_relations,
)
from quintet.datasets.registry import data_root, require_file
from quintet.datasets.sketchgraphs import parse_document, sketchgraphs_documents
from quintet.datasets.tabular import TabularData, load_adult, load_breast_cancer, load_monks
from quintet.datasets.text import TextData, load_sst2, load_sst_harvard

__all__ = [
    "BagPrompt",
    "CAMVID_CLASSES",
    "CAMVID_VOID",
    "CamVidSplit",
    "Fact",
    "TabularData",
    "Template",
    "TextData",
    "data_root",
    "load_adult",
    "load_breast_cancer",
    "load_camvid",
    "load_kn_bags",
    "load_lama_relations",
    "load_mnist",
    "load_monks",
    "load_pararel_templates",
    "load_sst2",
    "load_sst_harvard",
    "load_trex_facts",
    "pararel_relations",
    "parse_document",
    "read_idx",
    "require_file",
    "sketchgraphs_documents",
]
