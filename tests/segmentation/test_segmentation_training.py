"""Training loop with checkpoints and resume, bad input, benchmark folder readers, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from quintet.core.errors import QuintetError
from quintet.segmentation.data import Domain, check_images, check_labels
from quintet.segmentation.demo import synthetic_domain
from quintet.segmentation.experiments import TrainConfig, evaluate, load_model, predict, train
from quintet.segmentation.folders import FOLDERS, load_folder, read_image
from quintet.segmentation.models import NetConfig

NET = NetConfig.tiny(num_classes=4, stem=8, widths=(8, 8, 8, 8), aspp_dim=8, decoder_dim=8, low_dim=4).to_dict()


@pytest.fixture(scope="module")
def sources():
    return [synthetic_domain("sunny", 8, 1, (24, 32)), synthetic_domain("overcast", 8, 2, (24, 32))]


def _cfg(**kw):
    base = dict(method="pinmem", steps=4, batch=2, net=NET, checkpoint_every=2, init_frames=4)
    return TrainConfig(**(base | kw))


def test_resume_equals_uninterrupted(tmp_path, sources):
    torch.set_num_threads(1)
    full, _ = train(_cfg(), sources)
    train(_cfg(steps=4), sources, checkpoint_dir=tmp_path / "ck")  # writes checkpoints at 2 and 4
    # simulate a crash after step 2: drop the last checkpoint and resume
    import shutil

    shutil.rmtree(tmp_path / "ck" / "checkpoint-00000004")
    (tmp_path / "ck" / "latest").write_text("checkpoint-00000002\n")
    resumed, _ = train(_cfg(), sources, checkpoint_dir=tmp_path / "ck")
    for (n, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), n
    model, _ = load_model(tmp_path / "ck", num_classes=4)
    assert torch.allclose(model.memory.slots, full.memory.slots, atol=1e-5)
    with pytest.raises(QuintetError, match="4 classes but the data has 11"):
        load_model(tmp_path / "ck", num_classes=11)
    with pytest.raises(QuintetError, match=r"another configuration \(train\.lr: 0\.05 -> 0\.01\)"):
        train(_cfg(lr=0.01), sources, checkpoint_dir=tmp_path / "ck")


def test_all_methods_train_and_evaluate(sources):
    for method in ("erm", "mldg", "memory"):
        model, info = train(_cfg(method=method, steps=2), sources)
        r = evaluate(model, synthetic_domain("dusk", 4, 3, (24, 32)))
        assert 0.0 <= r["miou"] <= 1.0 and len(r["iou"]) == 4
    with pytest.raises(QuintetError, match="2 source domains"):
        train(_cfg(method="mldg"), sources[:1])
    with pytest.raises(QuintetError, match="unknown method"):
        _cfg(method="dann").validate()


def test_bad_images_and_labels(sources):
    with pytest.raises(QuintetError, match="3 \\(RGB\\) channels"):
        check_images(np.zeros((2, 24, 32, 4), np.uint8))
    with pytest.raises(QuintetError, match="4-d batch"):
        check_images(np.zeros((24, 32, 3), np.uint8))
    with pytest.raises(QuintetError, match="expects 120x90"):
        check_images(np.zeros((1, 24, 32, 3), np.uint8), (90, 120))
    with pytest.raises(QuintetError, match=r"\[7, 9\] outside the class range 0..3"):
        check_labels(np.array([[0, 7, 255, 9]]), 4)
    bad = Domain("bad", sources[0].images, np.full_like(sources[0].labels, 5))
    with pytest.raises(QuintetError, match="outside the class range"):
        train(_cfg(steps=1), [bad, sources[1]])
    model, _ = train(_cfg(method="erm", steps=1), sources)
    with pytest.raises(QuintetError, match="channels"):
        predict(model, np.zeros((1, 24, 32, 1), np.uint8))


def test_read_image_refuses_non_rgb(tmp_path):
    Image.fromarray(np.zeros((5, 6), np.uint8)).save(tmp_path / "g.png")
    Image.fromarray(np.zeros((5, 6, 4), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(QuintetError, match="mode 'L'"):
        read_image(tmp_path / "g.png")
    with pytest.raises(QuintetError, match="mode 'RGBA'"):
        read_image(tmp_path / "a.png")
    with pytest.raises(QuintetError, match="not found"):
        read_image(tmp_path / "none.png")
    (tmp_path / "t.png").write_text("not an image")
    with pytest.raises(QuintetError, match="not an image"):
        read_image(tmp_path / "t.png")


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_benchmark_folder_readers(tmp_path):
    rgb = np.full((6, 8, 3), 100, np.uint8)
    raw = np.zeros((6, 8), np.uint8)
    raw[:, :4] = {"gtav": 7, "cityscapes": 7, "synthia": 3, "bdd100k": 0, "mapillary": 13}["gtav"]
    layouts = {
        "gtav": ("images/train/01/00001.png", "labels/train/01/00001.png", 7, 26, 13),
        "cityscapes": ("leftImg8bit/val/aachen/a_000000_leftImg8bit.png",
                       "gtFine/val/aachen/a_000000_gtFine_labelIds.png", 7, 26, 13),
        "synthia": ("RGB/train/0000001.png", "GT/LABELS/train/0000001.png", 3, 8, 13),
        "bdd100k": ("images/val/x.jpg", "labels/val/x_train_id.png", 0, 13, 13),
        "mapillary": ("validation/images/m.jpg", "validation/labels/m.png", 13, 55, 13),
    }
    for name, (img, lab, road_id, car_id, car_train) in layouts.items():
        root = tmp_path / name
        _write(root / img, rgb)
        raw = np.full((6, 8), 250 if name != "synthia" else 0, np.uint8)
        raw[:, :4] = road_id
        raw[0, :] = car_id
        _write(root / lab, raw)
        split = "val" if name in ("cityscapes", "bdd100k", "mapillary") else "train"
        dom = load_folder(name, root, split, size=None)
        assert dom.images.shape == (1, 6, 8, 3)
        assert dom.labels[0, 3, 0] == 0  # road -> train id 0
        assert dom.labels[0, 0, 5] == car_train  # car -> 13
        assert dom.labels[0, 3, 6] == 255  # unmapped -> ignore
        small = load_folder(name, root, split, size=(3, 4))
        assert small.images.shape == (1, 3, 4, 3)
    assert set(FOLDERS) == {"gtav", "synthia", "cityscapes", "bdd100k", "mapillary"}
    with pytest.raises(QuintetError, match="no label file"):
        (tmp_path / "gtav/images/train/01/00002.png").write_bytes((tmp_path / "gtav/images/train/01/00001.png").read_bytes())
        load_folder("gtav", tmp_path / "gtav")
    with pytest.raises(QuintetError, match="folder .* not found"):
        load_folder("cityscapes", tmp_path / "nothing", "val")
    with pytest.raises(QuintetError, match="unknown data set"):
        load_folder("kitti", tmp_path)


def test_synthetic_demo_domains_differ_in_style():
    a, b = synthetic_domain("sunny", 6, 0), synthetic_domain("dusk", 6, 0)
    assert a.images.shape == (6, 48, 64, 3) and a.labels.shape == (6, 48, 64)
    assert np.array_equal(a.labels, b.labels)  # same layouts for the same seed, different paint
    assert set(np.unique(a.labels)) <= {0, 1, 2, 3}
    assert b.images.mean() < 0.7 * a.images.mean()  # dusk is darker


def _png16_rgb(path, red):
    """A 16-bit RGB PNG (Pillow cannot write one), written from its chunks."""
    import struct
    import zlib

    h, w = red.shape
    a = np.zeros((h, w, 3), ">u2")
    a[..., 0] = red
    raw = b"".join(b"\x00" + a[i].tobytes() for i in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_synthia_16bit_rgb_labels_are_refused(tmp_path):
    root = tmp_path / "synthia"
    _write(root / "RGB/train/0000001.png", np.zeros((6, 8, 3), np.uint8))
    _png16_rgb(root / "GT/LABELS/train/0000001.png", np.full((6, 8), 3))
    assert np.asarray(Image.open(root / "GT/LABELS/train/0000001.png"))[..., 0].max() == 0  # Pillow drops the id
    with pytest.raises(QuintetError, match=r"0000001\.png is a 16-bit RGB PNG"):
        load_folder("synthia", root, "train", size=None)


def test_gtav_valid_folder_is_the_val_split(tmp_path):
    root = tmp_path / "gtav"
    _write(root / "images/valid/00001.png", np.zeros((6, 8, 3), np.uint8))
    _write(root / "labels/valid/00001.png", np.full((6, 8), 26, np.uint8))
    dom = load_folder("gtav", root, "val", size=None)
    assert dom.labels.shape == (1, 6, 8) and (dom.labels == 13).all()  # car


def test_predict_uses_the_palette_of_the_checkpoint_classes(tmp_path):
    from quintet.cli import main
    from quintet.core.io import save_checkpoint
    from quintet.segmentation.models import SegmentationNet
    from quintet.segmentation.plots import CAMVID_PALETTE, CITYSCAPES_PALETTE, palette_for

    assert palette_for(19) is CITYSCAPES_PALETTE and np.array_equal(palette_for(4), CAMVID_PALETTE[:4])
    with pytest.raises(QuintetError, match="no colour palette for 15 classes"):
        palette_for(15)
    cfg = NetConfig.tiny(num_classes=19, stem=4, widths=(4, 4, 4, 4), aspp_dim=4, decoder_dim=4, low_dim=4)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ck", SegmentationNet(cfg), step=0, config={"net": cfg.to_dict()})
    img = tmp_path / "f.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(img)
    assert main(["segment", "predict", str(img), "-c", str(tmp_path / "ck")]) == 0
    colours = {tuple(c) for c in np.asarray(Image.open(tmp_path / "f.seg.png")).reshape(-1, 3)}
    assert colours <= {tuple(c) for c in CITYSCAPES_PALETTE}
    assert colours - {tuple(c) for c in CAMVID_PALETTE}  # not the CamVid colours
