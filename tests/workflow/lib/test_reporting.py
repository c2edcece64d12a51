"""Figures and report pages that explain themselves, checked on synthetic inputs with known answers: every text
inside the figure, no two panel titles overlapping, no empty panel, colour bars labelled with their unit, WAM's
variant named on its panels, class names in titles, audio axes in seconds and hertz, legends outside the data, the
offline note beside published values; tables and audio examples as HTML pages."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tests.workflow.helpers import ROOT
from wam import WAM
from workflow.lib.config import Config
from workflow.lib.experiments import audio_separation, perturbation
from workflow.lib.reporting import figures, pages, tables


@pytest.fixture(scope="module")
def config() -> Config:
    return Config.from_dict(yaml.safe_load((ROOT / "workflow" / "config" / "ci.yaml").read_text()))


def _drawn(fig: Figure):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def clipped_texts(fig: Figure) -> list[str]:
    """What ``fig`` draws outside itself: each panel's drawn extent (title, labels, tick labels), the legends and
    the figure's own texts, by name."""
    renderer = _drawn(fig)
    parts = [(ax.get_title() or ax.get_ylabel() or "panel", ax.get_tightbbox(renderer)) for ax in fig.axes]
    parts += [("legend", legend.get_window_extent(renderer)) for legend in fig.legends]
    parts += [(t.get_text(), t.get_window_extent(renderer)) for t in fig.texts if t.get_text().strip()]
    parts += [(t.get_text(), t.get_window_extent(renderer)) for t in (fig._suptitle, fig._supxlabel)
              if t is not None and t.get_text().strip()]
    return [name for name, box in parts
            if box.x0 < -1 or box.y0 < -1 or box.x1 > fig.bbox.width + 1 or box.y1 > fig.bbox.height + 1]


def overlapping_titles(fig: Figure) -> list[tuple[str, str]]:
    renderer = _drawn(fig)
    boxes = [(ax.get_title(), ax.title.get_window_extent(renderer)) for ax in fig.axes if ax.get_title()]
    return [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:] if box_a.overlaps(box_b)]


def empty_axes(fig: Figure) -> list:
    return [ax for ax in fig.axes if not ax.axison or not (ax.images or ax.lines or ax.patches or ax.collections)]


def colorbar_labels(fig: Figure) -> list[str]:
    """The labels of ``fig``'s colour bars (an axes drawing a colour bar has ``_colorbar``)."""
    return [ax.get_ylabel() for ax in fig.axes if hasattr(ax, "_colorbar")]


def panels(fig: Figure) -> list:
    return [ax for ax in fig.axes if not hasattr(ax, "_colorbar")]


def _check_layout(fig: Figure) -> None:
    assert clipped_texts(fig) == []
    assert overlapping_titles(fig) == []
    assert empty_axes(fig) == []


def _explanation(ndim: int, size: tuple[int, ...], n: int = 2):
    torch.manual_seed(0)
    channels = 3 if ndim == 2 else 1
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(channels * math.prod(size), 4))
    x = torch.rand(n, *size) if ndim == 1 else torch.rand(n, channels, *size)
    return WAM(model, ndim=ndim, levels=3, method="gradient")(x, [1] * n), x


def test_image_examples_name_the_wam_variant_and_the_class_with_colour_bars_and_unclipped_titles():
    expl, x = _explanation(2, (32, 32))
    maps = {"Saliency": torch.rand(2, 32, 32), "WAM-IG": torch.rand(2, 32, 32)}
    titles = ["n02123159/a_very_long_file_name_of_a_photograph.JPEG".rsplit("/", 1)[1] + "\nclass: tabby, tabby cat",
              "coffee.JPEG\nclass: espresso"]
    fig = figures.examples_figure("images", list(x), titles, maps, expl, "WAM-IG", heading="images / net")
    _check_layout(fig)
    shown = [ax.get_title().replace("\n", " ") for ax in panels(fig)]
    assert "tabby, tabby cat" in shown[0] and "espresso" in shown[len(shown) // 2]
    assert "WAM-IG: dyadic map" in shown and any(t.startswith("WAM-IG: level 1 (finest), share") for t in shown)
    assert colorbar_labels(fig) == [figures.MAP_LABEL] * 2  # one per input, shared by its maps


def test_an_input_with_many_panels_wraps_them_onto_lines_and_leaves_no_empty_cell():
    expl, x = _explanation(2, (16, 16), n=1)
    maps = {f"method {k}": torch.rand(1, 16, 16) for k in range(9)}  # 1 + 1 + 3 + 9 = 14 panels: 2 lines of 7
    fig = figures.examples_figure("images", list(x), ["x.JPEG\nclass: a"], maps, expl, "WAM-SG")
    _check_layout(fig)
    assert len(panels(fig)) == 14 and len({round(ax.get_position().x0, 3) for ax in panels(fig)}) == 7


def test_audio_examples_have_time_in_seconds_frequency_in_hertz_and_a_db_scale():
    expl, wave = _explanation(1, (44100,), n=1)
    logmel = torch.randn(1, 1, 128, 87) * 10 - 40
    maps = {"Saliency": torch.rand(1, 128, 87)}
    fig = figures.examples_figure("audio", [logmel[0]], ["bell.wav\nclass: bell"], maps, expl, "WAM-SG")
    _check_layout(fig)
    spectrogram = panels(fig)[0]
    assert spectrogram.get_xlabel() == "time (s)" and spectrogram.get_ylabel() == "frequency (Hz)"
    assert spectrogram.get_xlim() == pytest.approx((0, 87 * 512 / 44100))
    assert {"1k", "4k", "16k"} <= {t.get_text() for t in spectrogram.get_yticklabels()}
    assert "log-mel power (dB)" in colorbar_labels(fig)
    levels = [ax for ax in panels(fig) if ax.get_title().startswith("WAM-SG: level")]
    assert levels and all(ax.get_xlabel() == "time (s)" for ax in levels)
    assert levels[0].get_xlim()[1] == pytest.approx(44099 / 44100)


def test_mel_ticks_sit_on_the_bins_of_their_frequency():
    settings = dict(figures.MEL_DEFAULTS)
    # the HTK mel centres of torchaudio's filter bank: bin k's centre frequency maps back to k
    mel = np.linspace(0, 2595 * np.log10(1 + 22050 / 700), 130)[1:-1]
    centres = 700 * (10 ** (mel / 2595) - 1)
    assert [figures.mel_bin(f, settings) for f in centres[[0, 63, 127]]] == pytest.approx([0, 63, 127])


def _curves(config: Config) -> pd.DataFrame:
    rows = []
    for method in config.methods:
        for domain in ("pixel", "wavelet"):
            for metric in ("insertion", "deletion"):
                for sample in range(3):
                    for fraction in np.linspace(0, 1, 5):
                        value = fraction if metric == "insertion" else 1 - fraction
                        rows.append({"method": method, "metric": metric, "domain": domain, "protocol": "reference",
                                     "ranking": "-" if domain == "pixel" else "per_band", "sample_id": sample,
                                     "fraction": fraction, "value": value + 0.01 * sample})
    return pd.DataFrame(rows)


def test_curves_are_split_by_domain_with_the_legend_outside_and_the_bands_explained(config):
    fig = figures.curves_figure(config, _curves(config), "images", "images / net")
    _check_layout(fig)
    axes = panels(fig)
    assert [ax.get_title().replace("\n", " ") for ax in axes] == [
        "Insertion in the pixel domain (pixels)", "Deletion in the pixel domain (pixels)",
        "Insertion in the wavelet domain (wavelet coefficients)", "Deletion in the wavelet domain (wavelet "
        "coefficients)"]
    assert all(len(ax.get_lines()) == len(config.methods) for ax in axes)
    renderer = _drawn(fig)
    legend = fig.legends[0].get_window_extent(renderer)
    assert not any(legend.overlaps(ax.get_window_extent(renderer)) for ax in axes)
    assert "one standard error" in fig._supxlabel.get_text()


def _scores(with_truth: bool) -> pd.DataFrame:
    rows = [{"dataset": "d", "model": "m", "method": method, "metric": f"{prefix}@{level}", "sample_id": i,
             "value": 0.2 + 0.1 * i}
            for method in ("wam_sg", "wam_ig") for prefix in ("scale_share", "localisation")[:1 + with_truth]
            for level in ("level1", "level2", "level3", "approx") for i in range(2)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("with_truth", [False, True])
def test_scales_draw_only_panels_that_have_values(config, with_truth):
    fig = figures.scales_figure(config, _scores(with_truth), "d / m")
    _check_layout(fig)
    assert len(panels(fig)) == 1 + with_truth
    ticks = [t.get_text() for t in panels(fig)[0].get_xticklabels()]
    assert ticks == ["level 1\n(finest)", "level 2", "level 3", "approx."]


def test_audio_separation_keeps_its_legend_off_the_lines(tmp_path):
    table = pd.DataFrame([{"condition": c, "method": m, "keep": k, "si_sdr": s, "si_sdr_low": s - 1,
                           "si_sdr_high": s + 1, "input_si_sdr": 0.0}
                          for c in ("noise", "overlap") for m, s0 in (("wam_sg", 1.0), ("mel_mask_gl", -20.0))
                          for k, s in ((0.01, s0), (0.5, s0 + 5))])
    path = tmp_path / "f.png"
    captured = {}
    original = audio_separation.save
    audio_separation.save = lambda fig, p: captured.setdefault("fig", fig)
    try:
        audio_separation.figure(table, {"wam_sg": "WAM-SG", "mel_mask_gl": "mel mask, Griffin-Lim"}, path)
    finally:
        audio_separation.save = original
    fig = captured["fig"]
    _check_layout(fig)
    renderer = _drawn(fig)
    legend = fig.legends[0].get_window_extent(renderer)
    assert not any(legend.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes)


def _example_item() -> dict:
    torch.manual_seed(0)
    keys = [("clean", "clean"), ("distractor", "distractor")] + [
        (c, m) for m in ("corrupted", "wam_sg") for c in ("noise", "overlap")]
    wave = 0.1 * torch.randn(5 * 44100)  # a 5 s clip, as ESC-50's
    return {"index": 0, "id": "1-100-A-0.wav", "class": "bell", "distractor_id": "1-200-A-1.wav",
            "distractor_class": "trash-empty", "distractor": wave, "keep": 0.1, "clean": wave,
            "signals": {k: wave for k in keys[2:]}, "si_sdr": {k: 1.5 for k in keys[2:]},
            "logmel": {k: torch.randn(128, 87) for k in keys}}


def test_audio_separation_clips_have_labelled_spectrograms_and_a_page_with_players(tmp_path):
    item, labels = _example_item(), {"wam_sg": "WAM-SG"}
    paths = audio_separation.example_paths(tmp_path, 0, ["wam_sg"])
    captured = {}
    original = audio_separation.save
    audio_separation.save = lambda fig, p: captured.setdefault("fig", fig)
    try:
        audio_separation.example_figure(item, labels, ["wam_sg"], paths, tmp_path / "clip.png")
    finally:
        audio_separation.save = original
    fig = captured["fig"]
    _check_layout(fig)
    assert all(ax.get_xlabel() in ("time (s)", "") and ax.get_ylabel() in ("frequency (Hz)", "")
               for ax in panels(fig))
    assert any(ax.get_xlabel() == "time (s)" for ax in panels(fig))
    assert colorbar_labels(fig) == ["log-mel power (dB)"]
    html = audio_separation.example_page(item, labels, paths)
    assert html.count("<audio controls") == html.count("<img ") == 6
    assert len(html) < 1_500_000  # the report shows it from a data URI, which Chromium caps at 2 MB
    assert "overlap distractor: 1-200-A-1.wav (trash-empty)" in html and "SI-SDR against the clean clip" in html


def test_perturbation_masks_have_a_colour_bar_and_class_names_in_titles(tmp_path):
    examples = {"original": torch.rand(1, 3, 32, 32), "minimal": torch.rand(1, 2, 3, 32, 32),
                "mask": torch.rand(1, 2, 32, 32), "probability": torch.rand(1, 2), "sparsity": torch.rand(1, 2),
                "ids": ["n01/chelsea.JPEG"], "classes": ["tabby, tabby cat"], "alphas": [0.0, 20.0],
                "game": "preserve", "shapes": [(4, 4), (4, 4), (4, 4), (4, 4), (8, 8), (8, 8), (8, 8), (16, 16),
                                               (16, 16), (16, 16)]}
    captured = {}
    original = perturbation.save
    perturbation.save = lambda fig, p: captured.setdefault("fig", fig)
    try:
        perturbation.examples_figure(examples, tmp_path / "x.png")
    finally:
        perturbation.save = original
    fig = captured["fig"]
    _check_layout(fig)
    assert colorbar_labels(fig) == ["mask m (1: coefficient kept, 0: removed)"]
    assert panels(fig)[0].get_title() == "chelsea.JPEG\nclass: tabby, tabby cat"


def test_table_pages_render_the_markdown_with_its_caption(tmp_path):
    md = tmp_path / "t.md"
    md.write_text("**note**\n\n| label | images / insertion |\n|---|---|\n| WAM-IG | 0.5 [0.4, 0.6] |\n\n"
                  "Table 1 under the `reference` protocol: a < b.\n")
    csv = tmp_path / "t.csv"
    csv.write_text("label,mean\nWAM-IG,0.5\n")
    html = pages.table_page("t", [md, csv])
    assert "<strong>note</strong>" in html and "<th>WAM-IG</th><td>0.5 [0.4, 0.6]</td>" in html
    assert "<code>reference</code> protocol: a &lt; b." in html
    assert 'download="t.csv" href="data:text/csv;base64,' in html
    assert "<td>0.5</td>" in pages.table_page("t", [csv])  # no Markdown: the CSV as a table


def test_the_offline_note_stands_beside_published_values_only_for_offline_data(config):
    note = tables.offline_note(config)
    assert note.startswith("**Offline stand-ins: not comparable with the published values.**")
    t1 = pd.DataFrame([{"label": "WAM-IG", "modality": "images", "metric": "insertion", "mean": 0.5, "ci_low": 0.4,
                        "ci_high": 0.6, "published": 0.7, "difference": -0.2, "dataset": "images", "model": "m",
                        "n": 2, "degenerate": 0}])
    md = tables.table1_markdown(t1, "Table 1 under the `reference` protocol.", note)
    assert md.startswith("| label |") and md.rstrip().endswith(note)  # the table, then its caption
    online = Config.from_dict({**config.raw, "datasets": {"images": {**config.raw["datasets"]["images"],
                                                                     "source": "imagenet", "path": "x"}}})
    assert tables.offline_note(online) == ""
