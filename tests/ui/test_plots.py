"""Bokeh plots of sets: the data they show, offline rendering, and live refresh of run outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bokeh.embed import file_html
from bokeh.resources import INLINE

from cryolab.core.project import Project
from cryolab.core.runs import OutputRef
from cryolab.core.sets import Set
from cryolab.core.setstore import SetWriter
from cryolab.em.objects import FSC, SetOfCTFs, SetOfParticles
from cryolab.ui import plots


def ctfs(count: int) -> SetOfCTFs:
    rng = np.random.default_rng(1)
    u = rng.uniform(10000, 25000, count)
    return SetOfCTFs(
        {
            "micrograph_uid": np.arange(count, dtype=np.uint64),
            "ctf.defocus_u": u,
            "ctf.defocus_v": u - 500,
            "ctf.defocus_angle": np.zeros(count),
            "ctf.resolution": rng.uniform(3, 8, count),
        }
    )


def test_ctf_plot_shows_mean_defocus_and_resolution_per_micrograph() -> None:
    data = ctfs(5)
    layout = plots.ctf_plot(data)
    source = layout.select_one({"name": "ctf"})
    np.testing.assert_allclose(source.data["defocus"], data["ctf.defocus_u"] - 250)
    np.testing.assert_allclose(source.data["astigmatism"], 500)
    np.testing.assert_allclose(source.data["resolution"], data["ctf.resolution"])
    assert list(source.data["index"]) == [1, 2, 3, 4, 5]
    assert source.data["uid"] == [str(u) for u in data.uids]


def test_plots_render_offline_with_bokehjs_inlined() -> None:
    page = file_html(plots.ctf_plot(ctfs(3)), INLINE, "CTF")
    assert "cdn.bokeh.org" not in page and "Bokeh" in page


def test_fsc_plot_draws_each_curve_and_both_thresholds() -> None:
    frequency = np.linspace(0, 0.25, 9)
    curves = [
        FSC({"fsc.frequency": frequency, "fsc.value": np.linspace(1, 0, 9)}),
        FSC({"fsc.frequency": frequency, "fsc.value": np.linspace(1, 0.2, 9)}),
    ]
    plot = plots.fsc_plot(curves, labels=["half maps", "vs truth"])
    np.testing.assert_allclose(
        plot.select_one({"name": "fsc-1"}).data["fsc"], curves[1]["fsc.value"]
    )
    spans = sorted(r.location for r in plot.center if type(r).__name__ == "Span")
    assert spans == [0.143, 0.5]
    assert [item.label["value"] for item in plot.legend[0].items] == ["half maps", "vs truth"]
    with pytest.raises(ValueError, match="2 curves but 1 labels"):
        plots.fsc_plot(curves, labels=["one"])


def test_angular_histogram_counts_every_particle_in_its_direction() -> None:
    particles = SetOfParticles(
        {
            "transform.rot": [10.0, 10.0, 370.0, 200.0],
            "transform.tilt": [80.0, 81.0, 80.5, 0.0],
            "transform.psi": [0.0] * 4,
        }
    )
    histogram = plots.angular_histogram(particles)
    assert histogram["count"].sum() == 4
    top = histogram["count"].argmax()
    assert histogram["count"][top] == 3  # rot 10 and 370 are one direction
    assert histogram["rot"][top] == pytest.approx(15.0) and histogram["height"][
        top
    ] == pytest.approx(1 / 6)
    looking_down = (histogram["rot"] == 205.0) & (histogram["height"] > 0.9)
    assert histogram["count"][looking_down].sum() == 1


def test_a_plot_names_the_missing_column() -> None:
    with pytest.raises(ValueError, match=r"angular distribution needs the column\(s\) transform"):
        plots.angular_plot(SetOfParticles({"image.index": [1]}))


def growing_output(project: Project, tmp_path: Path) -> tuple[OutputRef, SetWriter]:
    """An open output being appended to, as a streaming run's would be."""
    run = project.add_imported_run(
        "external.job",
        {"program": "test", "job": "stream", "output_names": ["out"], "output_types": ["Set"]},
        {"out": Set({"n": [0, 1]})},
    )
    output = run.out.out
    writer = SetWriter.open(output.path)
    writer.reopen()
    return output, writer


def test_counts_plot_follows_an_open_output_until_it_closes(
    project: Project, tmp_path: Path
) -> None:
    output, writer = growing_output(project, tmp_path)
    follower = plots.LivePlot(plots.counts_plot, output, interval=0.05)
    before = list(follower.layout.select_one({"name": "counts"}).data["count"])
    writer.append({"n": [2, 3, 4]})
    assert follower.refresh() is True
    after = list(follower.layout.select_one({"name": "counts"}).data["count"])
    assert after[-1] == 5 and len(after) == len(before) + 1
    writer.close()
    assert follower.refresh() is False


def test_live_plot_refreshes_from_a_thread_and_stops_when_closed(
    project: Project, tmp_path: Path
) -> None:
    output, writer = growing_output(project, tmp_path)
    follower = plots.live(plots.counts_plot, output, interval=0.02)
    writer.append({"n": [7]})
    writer.close()
    assert follower._thread is not None
    follower._thread.join(timeout=5)
    assert not follower._thread.is_alive()
    assert follower.layout.select_one({"name": "counts"}).data["count"][-1] == 3
    state = follower.widget.get_state()
    assert "render_bundle" in state  # jupyter_bokeh's widget carries the document


def test_fsc_plot_cannot_follow_an_output(project: Project, tmp_path: Path) -> None:
    output, _ = growing_output(project, tmp_path)
    with pytest.raises(ValueError, match="fsc_plot cannot follow"):
        plots.LivePlot(plots.fsc_plot, output)
