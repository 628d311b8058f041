"""Thumbnail pages of image sets (cryolab.em.gallery): order, filter, paging, lazy reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from cryolab.core.errors import ExpressionError, SetError
from cryolab.em import imageio
from cryolab.em.gallery import ImagePages, Query
from cryolab.em.objects import SetOfParticles, SetOfVolumes

COUNT = 40
BOX = 16


@pytest.fixture
def particles(tmp_path: Path) -> SetOfParticles:
    """40 distinct noise images in a stack, rows in shuffled stack order, with metadata."""
    rng = np.random.default_rng(3)
    images = rng.normal(size=(COUNT, BOX, BOX)).astype(np.float32)
    imageio.write_stack(tmp_path / "particles.mrcs", images)
    return SetOfParticles(
        {
            "image.path": ["particles.mrcs"] * COUNT,
            "image.index": rng.permutation(COUNT) + 1,
            "ctf.defocus_u": rng.uniform(5000, 30000, COUNT).round(-3),  # ties on purpose
            "class_id": rng.integers(1, 4, COUNT),
        },
        properties={"root": str(tmp_path)},
    )


def expected_tiles(source: SetOfParticles, rows: NDArray[Any]) -> NDArray[np.uint8]:
    stack = Path(source.properties["root"]) / "particles.mrcs"
    return np.stack(
        [
            imageio.thumbnail(imageio.read_image(stack, int(source["image.index"][r])), BOX)
            for r in rows
        ]
    )


def test_a_sorted_filtered_page_holds_the_right_images_in_order(
    particles: SetOfParticles,
) -> None:
    pages = ImagePages(particles)
    query = Query(sort="ctf.defocus_u", descending=True, where="class_id >= 2")
    page = pages.page(3, 10, query=query, size=BOX, labels=["ctf.defocus_u", "class_id"])

    kept = np.flatnonzero(particles["class_id"] >= 2)
    defocus = particles["ctf.defocus_u"][kept]
    # stable descending: larger first, ties in the set's order
    order = kept[sorted(range(kept.size), key=lambda i: (-defocus[i], i))]
    rows = order[3:13]
    assert page.total == kept.size
    assert page.start == 3
    assert page.rows.tolist() == rows.tolist()
    assert page.uids.tolist() == particles.uids[rows].tolist()
    assert page.labels["ctf.defocus_u"] == particles["ctf.defocus_u"][rows].tolist()
    assert page.labels["class_id"] == particles["class_id"][rows].tolist()
    assert page.thumbnails.dtype == np.uint8
    assert page.thumbnails.shape == (10, BOX, BOX)
    np.testing.assert_array_equal(page.thumbnails, expected_tiles(particles, rows))
    assert pages.uids(query).tolist() == particles.uids[order].tolist()


def test_only_the_images_of_the_page_are_read(
    particles: SetOfParticles, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[int]] = []
    real = imageio.read_images

    def counting(path: Path, indices: NDArray[Any], permissive: bool = False) -> NDArray[Any]:
        calls.append([int(i) for i in indices])
        return real(path, indices, permissive=permissive)

    monkeypatch.setattr(imageio, "read_images", counting)
    pages = ImagePages(particles)
    page = pages.page(20, 7, query=Query(sort="class_id"), size=BOX)
    assert len(calls) == 1  # one call for the one stack file
    assert calls[0] == particles["image.index"][page.rows].tolist()
    assert len(calls[0]) == 7


def test_the_order_is_computed_once_per_query(particles: SetOfParticles) -> None:
    pages = ImagePages(particles)
    query = Query(sort="ctf.defocus_u", where="class_id == 1")
    first = pages.order(query)
    assert pages.order(Query(" ctf.defocus_u ", False, "class_id == 1 ")) is first
    assert pages.order(Query(sort="ctf.defocus_u")) is not first
    assert not first.flags.writeable


def test_a_page_beyond_the_end_is_empty(particles: SetOfParticles) -> None:
    page = ImagePages(particles).page(COUNT, 10, size=BOX)
    assert len(page) == 0
    assert page.total == COUNT
    assert page.thumbnails.shape == (0, BOX, BOX)
    assert len(ImagePages(particles).page(COUNT - 2, 10, size=BOX)) == 2


def test_unknown_columns_are_named(particles: SetOfParticles) -> None:
    pages = ImagePages(particles)
    with pytest.raises(SetError, match=r"cannot sort by 'ctf.defocus': .*did you mean"):
        pages.page(0, 5, query=Query(sort="ctf.defocus"))
    with pytest.raises(ExpressionError, match=r"unknown column 'clas_id'; did you mean"):
        pages.page(0, 5, query=Query(where="clas_id == 1"))
    with pytest.raises(SetError, match="cannot label with 'score'"):
        pages.page(0, 5, labels=["score"])
    with pytest.raises(SetError, match="cannot start at -1"):
        pages.page(-1, 5)
    with pytest.raises(SetError, match="needs images located"):
        ImagePages(SetOfParticles({"class_id": [1]}))


def test_small_images_are_enlarged_and_centred(particles: SetOfParticles) -> None:
    page = ImagePages(particles).page(0, 1, size=2 * BOX + 3)
    small = expected_tiles(particles, [0])[0]
    big = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(page.thumbnails[0, 1 : 1 + 2 * BOX, 1 : 1 + 2 * BOX], big)
    assert page.thumbnails[0, 0].max() == 0  # the border stays black


def test_a_volume_is_shown_by_its_central_slice(tmp_path: Path) -> None:
    volume = np.random.default_rng(0).normal(size=(9, BOX, BOX)).astype(np.float32)
    imageio.write_mrc(tmp_path / "map.mrc", volume)
    volumes = SetOfVolumes({"image.path": [str(tmp_path / "map.mrc")]})
    page = ImagePages(volumes).page(0, 5, size=BOX)
    np.testing.assert_array_equal(page.thumbnails[0], imageio.thumbnail(volume[4], BOX))


def test_an_unreadable_file_leaves_its_tile_black(particles: SetOfParticles) -> None:
    broken = particles.with_columns(**{"image.path": ["missing.mrcs"] * COUNT})
    page = ImagePages(broken).page(0, 3, size=BOX)
    assert page.thumbnails.max() == 0
    assert len(page.errors) == 1 and "missing.mrcs" in page.errors[0]
