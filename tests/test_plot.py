"""graphnet.plot: the figure holds exactly the logged values, the files are real images, and
every bad input is one GraphnetError.

The PNGs are checked by decoding them with graphnet.images (an independent reader of the bytes
matplotlib wrote): size, and the run colours present in the pixels."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from graphnet.errors import GraphnetError
from graphnet.images import read_image
from graphnet.plot import DPI, PANEL_SIZE, curves_figure, left_out, plot_curves

try:
    import matplotlib  # noqa: F401
except ImportError:
    HAVE_MATPLOTLIB = False
else:
    HAVE_MATPLOTLIB = True
needs_matplotlib = pytest.mark.skipif(not HAVE_MATPLOTLIB,
                                      reason="matplotlib is not installed (pip install 'graphnet[plot]')")


def make_log(epochs: int, *, validation: bool = True, best: int | None = None, start: float = 2.0,
             decay: float = 0.7) -> dict:
    """A log shaped like RunResult.log_dict(): losses decaying from ``start``."""
    records = []
    for e in range(1, epochs + 1):
        loss = start * decay ** (e - 1) + 0.01
        records.append({
            "epoch": e, "lr": 0.1 / e, "train_loss": loss,
            "val_loss": loss * 1.2 if validation else None,
            "val_error": 0.5 * decay ** (e - 1) + 0.02 if validation else None,
            "val_accuracy": 1 - (0.5 * decay ** (e - 1) + 0.02) if validation else None,
            "seconds": 1.5, "samples_per_second": 1000.0,
        })
    return {"epochs": records, "best_epoch": best, "stopped": None, "data": "synthetic", "seconds": 9.0}


def lines_by_gid(figure) -> dict:
    return {line.get_gid(): line for ax in figure.axes for line in ax.get_lines() if line.get_gid()}


def colour_pixels(pixels: np.ndarray, hex_colour: str, tolerance: int = 12) -> int:
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int(np.count_nonzero(np.all(np.abs(pixels[..., :3].astype(int) - rgb) <= tolerance, axis=-1)))


# ----------------------------------------------------------------------------------------------
# What is drawn
# ----------------------------------------------------------------------------------------------


@needs_matplotlib
def test_the_lines_hold_the_logged_values():
    runs = [("a", make_log(6, best=5)), ("b", make_log(4, best=2, start=1.0))]
    figure = curves_figure(runs)
    lines = lines_by_gid(figure)
    assert set(lines) == {"a:train_loss", "a:val_loss", "a:val_error", "a:best:val_error",
                          "b:train_loss", "b:val_loss", "b:val_error", "b:best:val_error"}
    for label, log in runs:
        epochs = [r["epoch"] for r in log["epochs"]]
        for key, factor in (("train_loss", 1), ("val_loss", 1), ("val_error", 100)):
            line = lines[f"{label}:{key}"]
            assert list(line.get_xdata()) == epochs
            assert np.allclose(line.get_ydata(), [r[key] * factor for r in log["epochs"]], rtol=1e-12)
        best = lines[f"{label}:best:val_error"]
        record = log["epochs"][log["best_epoch"] - 1]
        assert list(best.get_xdata()) == [log["best_epoch"]]
        assert np.allclose(best.get_ydata(), [record["val_error"] * 100])
    # one colour per run, shared by its curves; train solid, validation dashed
    assert lines["a:train_loss"].get_color() == lines["a:val_loss"].get_color() == lines["a:val_error"].get_color()
    assert lines["a:train_loss"].get_color() != lines["b:train_loss"].get_color()
    assert lines["a:train_loss"].get_linestyle() == "-" and lines["a:val_loss"].get_linestyle() == "--"
    loss_ax, error_ax = figure.axes
    assert (loss_ax.get_xlabel(), loss_ax.get_ylabel()) == ("epoch", "loss")
    assert error_ax.get_ylabel() == "error (%)"
    legend = [t.get_text() for t in error_ax.get_legend().get_texts()]
    assert legend == [f"a (best {runs[0][1]['epochs'][4]['val_error'] * 100:.2f}%, epoch 5)",
                      f"b (best {runs[1][1]['epochs'][1]['val_error'] * 100:.2f}%, epoch 2)"]
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == ["train", "validation", "a", "b"]
    assert figure.get_suptitle() == "training curves of 2 runs"


@needs_matplotlib
def test_epochs_are_plotted_in_order_whatever_the_log_order():
    log = make_log(5)
    log["epochs"] = log["epochs"][::-1]
    line = lines_by_gid(curves_figure([("r", log)]))["r:train_loss"]
    assert list(line.get_xdata()) == [1, 2, 3, 4, 5]
    assert list(line.get_ydata()) == sorted(line.get_ydata(), reverse=True)


@needs_matplotlib
def test_log_scale_only_when_the_values_span_more_than_ten_times():
    wide = curves_figure([("r", make_log(12, decay=0.5))])  # loss 2.01 -> 0.011
    narrow = curves_figure([("r", make_log(3, decay=0.9))])
    assert wide.axes[0].get_yscale() == "log"
    assert narrow.axes[0].get_yscale() == "linear"
    assert narrow.axes[1].get_yscale() == "linear"
    zero = make_log(4)
    zero["epochs"][3]["val_error"] = 0.0  # a perfect epoch: no log axis
    assert curves_figure([("r", zero)], metrics=["error"]).axes[0].get_yscale() == "linear"


@needs_matplotlib
def test_without_validation_the_loss_is_plotted_and_the_rest_is_named():
    runs = [("no-val", make_log(5, validation=False))]
    figure = curves_figure(runs)
    assert len(figure.axes) == 1 and set(lines_by_gid(figure)) == {"no-val:train_loss"}
    notes = left_out(runs)
    assert notes == ["validation loss, validation error: not recorded by any run "
                     "(trained without a validation split)"]
    assert "not plotted: validation loss, validation error" in figure.get_supxlabel().replace("\n", " ")


@needs_matplotlib
def test_a_run_without_validation_beside_one_with_it():
    runs = [("with", make_log(4, best=4)), ("without", make_log(3, validation=False))]
    figure = curves_figure(runs)
    assert len(figure.axes) == 2
    assert set(lines_by_gid(figure)) == {"with:train_loss", "with:val_loss", "with:val_error",
                                         "with:best:val_error", "without:train_loss"}
    assert left_out(runs) == ["validation loss, validation error of 'without': not recorded "
                              "(trained without a validation split)"]
    error_legend = [t.get_text() for t in figure.axes[1].get_legend().get_texts()]
    assert len(error_legend) == 1 and error_legend[0].startswith("with ")


@needs_matplotlib
def test_best_epoch_missing_or_outside_the_log():
    no_best = curves_figure([("r", make_log(3))])
    assert "r:best:val_error" not in lines_by_gid(no_best)
    runs = [("r", make_log(3, best=9))]
    assert "r:best:val_error" not in lines_by_gid(curves_figure(runs))
    assert left_out(runs) == ["best epoch of 'r': epoch 9 is not in its log"]


@needs_matplotlib
def test_other_metrics_and_a_single_epoch():
    log = make_log(1, best=1)
    figure = curves_figure([("one", log)], metrics=("accuracy", "lr"))
    lines = lines_by_gid(figure)
    assert [ax.get_title() for ax in figure.axes] == ["validation accuracy", "learning rate"]
    assert list(lines["one:val_accuracy"].get_ydata()) == [log["epochs"][0]["val_accuracy"] * 100]
    assert lines["one:val_accuracy"].get_marker() == "o"  # a single point is visible
    assert list(lines["one:lr"].get_ydata()) == [0.1]
    assert figure.get_suptitle() == "training curves: one"


# ----------------------------------------------------------------------------------------------
# The files
# ----------------------------------------------------------------------------------------------


@needs_matplotlib
def test_png_is_a_real_image_with_both_runs_drawn(tmp_path):
    out = plot_curves([("a", make_log(8, best=6)), ("b", make_log(8, best=3, start=1.0))], tmp_path / "c.png")
    assert out == tmp_path / "c.png"
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert 20_000 < len(data) < 1_000_000
    pixels = read_image(out)
    assert pixels.shape[:2] == (round(PANEL_SIZE[1] * DPI), round(2 * PANEL_SIZE[0] * DPI))
    assert colour_pixels(pixels, "#1f77b4") > 500 and colour_pixels(pixels, "#ff7f0e") > 500
    assert [p.name for p in tmp_path.iterdir()] == ["c.png"]  # no temporary file left behind


@needs_matplotlib
def test_svg_and_pdf_by_extension_and_files_are_replaced_whole(tmp_path):
    runs = [("a", make_log(3))]
    svg = plot_curves(runs, tmp_path / "c.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert plot_curves(runs, tmp_path / "c.PDF").read_bytes().startswith(b"%PDF")
    target = tmp_path / "c.png"
    target.write_bytes(b"old")
    plot_curves(runs, target, title="my title")
    assert target.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.PDF", "c.png", "c.svg"]


@needs_matplotlib
def test_curves_of_a_real_training_run(tmp_path):
    """The log `graphnet run` records, from a real (tiny) training run, plots as it is."""
    from graphnet import load_spec
    from graphnet.train.loop import train

    rng = np.random.default_rng(0)
    centers = rng.standard_normal((3, 8)) * 1.5
    y = rng.integers(0, 3, 400)
    x = (centers[y] + rng.standard_normal((400, 8))).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x[:300], y_train=y[:300], x_test=x[300:], y_test=y[300:])
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text(f"""
format: 1
name: tiny
inputs:
  x: {{shape: [8]}}
  y: {{shape: [], dtype: int64}}
layers: {{input: x, sizes: [8, 16, 3], labels: y}}
train:
  data: {{dataset: npz, path: {tmp_path / 'd.npz'}, validation: 60, preprocess: {{scale: false, flatten: false}}}}
  batch_size: 16
  epochs: 4
  seed: 1
  optimizer: {{type: sgd, lr: 0.05, momentum: 0.9}}
""")
    log = train(load_spec(spec_file)).log_dict()
    figure = curves_figure([("tiny", log)])
    lines = lines_by_gid(figure)
    assert list(lines["tiny:val_loss"].get_ydata()) == [e["val_loss"] for e in log["epochs"]]
    assert list(lines["tiny:best:val_error"].get_xdata()) == [log["best_epoch"]]
    assert plot_curves([("tiny", log)], tmp_path / "tiny.png").stat().st_size > 10_000


# ----------------------------------------------------------------------------------------------
# Errors (these need no matplotlib: the input is checked first)
# ----------------------------------------------------------------------------------------------


BAD_LOGS = {
    "no epochs": ({"epochs": [], "best_epoch": None}, "log.epochs: the training log has no epochs"),
    "epochs missing": ({"best_epoch": 1}, "log.epochs: the training log has no epochs; received epochs=None"),
    "not a mapping": ([1, 2], "log: the training log is not a mapping"),
    "epoch not a mapping": ({"epochs": [3]}, r"log.epochs.0: an epoch's record is not a mapping"),
    "epoch not an integer": ({"epochs": [{"epoch": "1"}]}, r"log.epochs.0.epoch: epoch is not an integer"),
    "epoch 0": ({"epochs": [{"epoch": 0}]}, r"log.epochs.0.epoch: epoch is not an integer >= 1; received 0"),
    "value a string": ({"epochs": [{"epoch": 1, "train_loss": "low"}]},
                       r"log.epochs.0.train_loss: not a number; received 'low'"),
    "value a bool": ({"epochs": [{"epoch": 1, "train_loss": True}]}, "train_loss: not a number; received True"),
    "best epoch a float": ({"epochs": [{"epoch": 1, "train_loss": 1.0}], "best_epoch": 1.5},
                           "log.best_epoch: best_epoch is not an integer"),
}


@pytest.mark.parametrize("case", list(BAD_LOGS))
def test_a_bad_log_is_one_error_naming_the_run(case, tmp_path):
    log, message = BAD_LOGS[case]
    with pytest.raises(GraphnetError, match=message) as caught:
        plot_curves([("good", make_log(2)), ("runs/bad.gnm", log)], tmp_path / "c.png")
    assert str(caught.value).startswith("runs/bad.gnm: ")
    assert not (tmp_path / "c.png").exists()


def test_other_bad_requests(tmp_path):
    runs = [("r", make_log(2))]
    with pytest.raises(GraphnetError, match=r"unknown metric 'erorr' \(did you mean 'error'\?"):
        plot_curves(runs, tmp_path / "c.png", metrics=("loss", "erorr"))
    with pytest.raises(GraphnetError, match="no metric to plot"):
        plot_curves(runs, tmp_path / "c.png", metrics=())
    with pytest.raises(GraphnetError, match=r"c.jpg: cannot write this kind of figure; received '.jpg' "
                                            r"\(name the output .png, .svg or .pdf\)"):
        plot_curves(runs, tmp_path / "c.jpg")
    with pytest.raises(GraphnetError, match="received no extension"):
        plot_curves(runs, tmp_path / "curves")
    with pytest.raises(GraphnetError, match="nothing to plot: no run given"):
        plot_curves([], tmp_path / "c.png")
    no_val = [("r", make_log(2, validation=False))]
    with pytest.raises(GraphnetError, match=r"r: nothing to plot: no run recorded val_error \(validation "
                                            r"curves need a validation split"):
        plot_curves(no_val, tmp_path / "c.png", metrics=["error"])


@needs_matplotlib
def test_an_unwritable_place_is_an_error(tmp_path):
    with pytest.raises(GraphnetError, match="cannot write the figure: folder .* does not exist") as caught:
        plot_curves([("r", make_log(2))], tmp_path / "missing" / "c.png")
    assert str(tmp_path / "missing" / "c.png") in str(caught.value)
    (tmp_path / "taken.png").mkdir()  # the rename over a folder fails: nothing is left behind
    with pytest.raises(GraphnetError, match="taken.png: cannot write the figure: Is a directory"):
        plot_curves([("r", make_log(2))], tmp_path / "taken.png")
    assert [p.name for p in tmp_path.iterdir()] == ["taken.png"]


def test_without_matplotlib_the_error_says_what_to_install(tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.ticker"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it now raises ImportError
    with pytest.raises(GraphnetError, match=r"plotting needs matplotlib.*pip install 'graphnet\[plot\]'"):
        plot_curves([("r", make_log(2))], tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()
