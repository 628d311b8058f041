"""Columnar sets: construction, columns, items, vectorised operations, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryolab.core.errors import ExpressionError, SetError
from cryolab.core.sets import Item, Set, as_table, new_uids, set_type


class SetTestParticles(Set):
    """A registered set type for the tests (unique name, so no plugin type is replaced)."""

    item_label = "particle"


class SetTestParticlesBig(SetTestParticles):
    type_name = "SetTestParticlesBig"


def make(n: int = 6, **properties) -> Set:
    """A set with an index column ``i``, dotted float columns and a string column."""
    i = np.arange(n)
    return Set(
        {
            "i": i,
            "ctf.defocus_u": 1.0e4 + 1.0e3 * i,
            "ctf.defocus_v": 2.0e4 + 1.0e3 * i,
            "score": i / 10,
            "class_id": i % 3,
            "name": [f"m{k}" for k in range(n)],
        },
        properties=properties or {"apix": 1.06},
    )


def assert_uids_follow_rows(derived: Set, original: Set) -> None:
    """Each row of ``derived`` keeps the uid its row (identified by ``i``) had in ``original``."""
    np.testing.assert_array_equal(derived.uids, original.uids[derived.column("i")])


# -- construction -------------------------------------------------------------------------


def test_uid_added_when_missing() -> None:
    s = Set({"x": [1.0, 2.0, 3.0]})
    assert s.columns == ["uid", "x"]
    assert s.uids.dtype == np.uint64
    assert len(np.unique(s.uids)) == 3
    assert (s.uids > 0).all()
    assert (s.uids <= np.iinfo(np.int64).max).all()


def test_uid_kept_when_present() -> None:
    s = Set({"x": [1, 2, 3], "uid": np.array([7, 8, 9], dtype=np.uint64)})
    np.testing.assert_array_equal(s.uids, [7, 8, 9])
    assert s.columns == ["uid", "x"]  # uid first, whatever the input order


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint32, np.int16])
def test_uid_cast_to_uint64(dtype) -> None:
    s = Set({"uid": np.array([3, 1, 2], dtype=dtype)})
    assert s.uids.dtype == np.uint64
    assert s.schema["uid"] == "uint64"
    np.testing.assert_array_equal(s.uids, [3, 1, 2])


def test_uid_cast_from_arrow_table_and_list() -> None:
    table = pa.table({"uid": pa.array([5, 6], pa.int64()), "x": [1, 2]})
    assert Set(table).schema["uid"] == "uint64"
    assert Set({"uid": [10, 11]}).uids.tolist() == [10, 11]


def test_large_uint64_uids_from_numpy_kept() -> None:
    uids = np.array([2**64 - 1, 2**63], dtype=np.uint64)
    np.testing.assert_array_equal(Set({"uid": uids}).uids, uids)


@pytest.mark.parametrize("bad", [[-1, 2], [1.5, 2.0], ["a", "b"]])
def test_uid_must_be_non_negative_integers(bad) -> None:
    with pytest.raises(SetError, match="uid"):
        Set({"uid": bad})


def test_new_uids() -> None:
    a = new_uids(1000, np.random.default_rng(1))
    b = new_uids(1000, np.random.default_rng(1))
    assert a.dtype == np.uint64
    np.testing.assert_array_equal(a, b)  # reproducible with a generator
    assert len(np.unique(a)) == 1000
    assert new_uids(0).shape == (0,)


def test_as_table_kinds() -> None:
    s = make(3)
    assert as_table(s) is s.to_arrow()
    table = as_table({"x": pa.array([1, 2])})
    assert table.column_names == ["x", "uid"]
    with pytest.raises(SetError, match="cannot make a set from int"):
        as_table(3)  # type: ignore[arg-type]


def test_empty_set() -> None:
    s = Set()
    assert len(s) == 0
    assert s.columns == ["uid"]
    assert s.uids.dtype == np.uint64
    assert list(s) == []


def test_from_another_set_merges_properties() -> None:
    s = make(3, apix=1.0, voltage=300)
    copy = Set(s, properties={"apix": 2.0})
    assert copy.properties == {"apix": 2.0, "voltage": 300}
    assert s.properties == {"apix": 1.0, "voltage": 300}  # untouched
    np.testing.assert_array_equal(copy.uids, s.uids)


def test_properties_must_be_json() -> None:
    with pytest.raises(SetError, match="must be JSON data"):
        Set({"x": [1]}, properties={"bad": object()})


def test_state_default_and_given() -> None:
    assert make(2).state == "closed"
    assert Set({"x": [1]}, state="open").state == "open"


def test_subclass_registration_and_type_chain() -> None:
    assert SetTestParticles.type_name == "SetTestParticles"
    assert set_type("SetTestParticles") is SetTestParticles
    assert set_type("SetTestParticlesBig") is SetTestParticlesBig
    assert set_type("NoSuchTypeAnywhere") is Set
    assert SetTestParticlesBig.type_chain() == ["SetTestParticlesBig", "SetTestParticles", "Set"]
    assert Set.type_chain() == ["Set"]


# -- columns ------------------------------------------------------------------------------


def test_columns_and_schema() -> None:
    s = make(4)
    assert s.columns == ["uid", "i", "ctf.defocus_u", "ctf.defocus_v", "score", "class_id", "name"]
    assert s.schema == {
        "i": "int64",
        "ctf.defocus_u": "double",
        "ctf.defocus_v": "double",
        "score": "double",
        "class_id": "int64",
        "name": "string",
        "uid": "uint64",
    }
    assert "score" in s
    assert "nope" not in s
    assert len(s) == 4


def test_numeric_column_is_read_only_zero_copy() -> None:
    s = make(5)
    column = s.column("ctf.defocus_u")
    assert isinstance(column, np.ndarray)
    assert column.dtype == np.float64
    assert not column.flags.writeable
    with pytest.raises(ValueError):
        column[0] = 1.0
    arrow_buffer = s.to_arrow().column("ctf.defocus_u").chunk(0).buffers()[1]
    assert column.ctypes.data == arrow_buffer.address  # no copy
    assert s.column("ctf.defocus_u") is column  # cached
    np.testing.assert_array_equal(s["ctf.defocus_u"], column)


def test_unknown_column_is_a_key_error_listing_columns() -> None:
    s = make(2)
    with pytest.raises(KeyError, match=r"no column 'nope'.*columns"):
        s.column("nope")
    with pytest.raises(KeyError):
        s["nope"]


def test_string_column() -> None:
    s = make(3)
    names = s.column("name")
    assert names.dtype.kind == "U"
    assert names.tolist() == ["m0", "m1", "m2"]
    assert not names.flags.writeable


def test_dictionary_encoded_string_column() -> None:
    encoded = pa.array(["a", "b", "a", "c"]).dictionary_encode()
    s = Set({"label": encoded})
    assert s.schema["label"].startswith("dictionary<values=string")
    labels = s.column("label")
    assert labels.dtype.kind == "U"
    assert labels.tolist() == ["a", "b", "a", "c"]
    assert not labels.flags.writeable
    assert len(s.where("label == 'a'")) == 2
    assert s[1].label == "b"


def test_column_with_nulls_and_multiple_chunks() -> None:
    table = pa.concat_tables([pa.table({"x": [1.0, None]}), pa.table({"x": [3.0, 4.0]})])
    s = Set(table)
    x = s.column("x")
    assert np.isnan(x[1])
    np.testing.assert_array_equal(x[[0, 2, 3]], [1.0, 3.0, 4.0])
    assert not x.flags.writeable


def test_uids_property() -> None:
    s = make(3)
    np.testing.assert_array_equal(s.uids, s.column("uid"))
    assert not s.uids.flags.writeable


# -- items --------------------------------------------------------------------------------


def test_item_views() -> None:
    s = make(4)
    item = s[2]
    assert isinstance(item, Item)
    assert item.ctf.defocus_u == 1.2e4
    assert item.ctf.defocus_v == 2.2e4
    assert item["ctf.defocus_u"] == 1.2e4
    assert item.ctf["defocus_v"] == 2.2e4
    assert item.name == "m2"
    assert item.i == 2
    assert item.uid == int(s.uids[2])
    assert isinstance(item.uid, int)


def test_item_as_dict() -> None:
    s = make(3)
    as_dict = s[1].as_dict()
    assert as_dict == {
        "uid": int(s.uids[1]),
        "i": 1,
        "ctf.defocus_u": 1.1e4,
        "ctf.defocus_v": 2.1e4,
        "score": 0.1,
        "class_id": 1,
        "name": "m1",
    }
    assert s[1].ctf.as_dict() == {"defocus_u": 1.1e4, "defocus_v": 2.1e4}
    assert "m1" in repr(s[1])


def test_item_negative_index_and_out_of_range() -> None:
    s = make(4)
    assert s[-1].i == 3
    assert s[-4].i == 0
    assert s[np.int64(1)].i == 1
    with pytest.raises(IndexError, match="out of range"):
        s[4]
    with pytest.raises(IndexError, match="out of range"):
        s[-5]
    with pytest.raises(IndexError):
        Set()[0]


def test_item_unknown_fields() -> None:
    item = make(2)[0]
    with pytest.raises(AttributeError, match="no field 'nope'"):
        item.nope  # noqa: B018
    with pytest.raises(AttributeError, match=r"no field 'ctf\.nope'"):
        item.ctf.nope  # noqa: B018
    with pytest.raises(KeyError, match="no field 'nope'"):
        item["nope"]
    with pytest.raises(AttributeError):
        item._private  # noqa: B018


def test_iteration_yields_items_in_order() -> None:
    s = make(4)
    assert [item.i for item in s] == [0, 1, 2, 3]
    assert [item.uid for item in s] == s.uids.tolist()


# -- where, take, slices ------------------------------------------------------------------


def test_where_string() -> None:
    s = make(6)
    chosen = s.where("ctf.defocus_u > 1.25e4 and class_id != 2")
    assert chosen.column("i").tolist() == [3, 4]
    assert_uids_follow_rows(chosen, s)
    assert chosen.properties == s.properties
    assert type(chosen) is Set


def test_where_keeps_the_type_and_copies_properties() -> None:
    s = SetTestParticles({"i": np.arange(4)}, properties={"apix": 1.0})
    chosen = s.where("i > 1")
    assert type(chosen) is SetTestParticles
    chosen.properties["apix"] = 5.0
    assert s.properties["apix"] == 1.0


def test_where_mask() -> None:
    s = make(4)
    chosen = s.where(np.array([True, False, True, False]))
    assert chosen.column("i").tolist() == [0, 2]
    assert s.where([False, True, False, True]).column("i").tolist() == [1, 3]
    assert s[np.array([False, False, False, True])].column("i").tolist() == [3]
    assert len(s.where(np.zeros(4, dtype=bool))) == 0


@pytest.mark.parametrize("length", [0, 3, 5])
def test_where_mask_of_wrong_length(length) -> None:
    with pytest.raises(SetError, match="does not fit a set of 4 rows"):
        make(4).where(np.ones(length, dtype=bool))


def test_where_errors() -> None:
    s = make(3)
    with pytest.raises(ExpressionError, match="unknown column 'nope'"):
        s.where("nope > 1")
    with pytest.raises(SetError):
        s.where("1 < 2")  # a single true/false, not one per row


def test_where_on_open_set_gives_closed() -> None:
    s = Set({"x": [1, 2]}, state="open")
    assert s.where("x > 1").state == "closed"


def test_take_and_slices() -> None:
    s = make(6)
    taken = s.take([4, 0, 4])
    assert taken.column("i").tolist() == [4, 0, 4]
    assert_uids_follow_rows(taken, s)
    assert s[1:4].column("i").tolist() == [1, 2, 3]
    assert s[::2].column("i").tolist() == [0, 2, 4]
    assert s[::-1].column("i").tolist() == [5, 4, 3, 2, 1, 0]
    assert s[-2:].column("i").tolist() == [4, 5]
    assert len(s[10:]) == 0
    assert s[np.array([5, 1])].column("i").tolist() == [5, 1]
    assert s[[2, 3]].column("i").tolist() == [2, 3]
    assert_uids_follow_rows(s[::-1], s)
    with pytest.raises(IndexError):
        s.take([6])


# -- subset -------------------------------------------------------------------------------


def test_subset_by_uids_and_exclude() -> None:
    s = make(6)
    wanted = s.uids[[4, 1]]
    kept = s.subset(wanted)
    assert kept.column("i").tolist() == [1, 4]  # the set's own order
    dropped = s.subset(wanted, exclude=True)
    assert dropped.column("i").tolist() == [0, 2, 3, 5]
    assert_uids_follow_rows(kept, s)
    assert_uids_follow_rows(dropped, s)
    assert s.subset(list(map(int, wanted))).column("i").tolist() == [1, 4]


def test_subset_by_another_set() -> None:
    s = make(6)
    other = s.where("i >= 3")
    assert s.subset(other).column("i").tolist() == [3, 4, 5]
    assert s.subset(other, exclude=True).column("i").tolist() == [0, 1, 2]


def test_subset_unknown_and_empty_uids() -> None:
    s = make(3)
    assert len(s.subset([123456789])) == 0
    assert len(s.subset([])) == 0
    assert len(s.subset([], exclude=True)) == 3


# -- union --------------------------------------------------------------------------------


def test_union_concatenates_and_nulls_missing_columns() -> None:
    a = Set({"x": [1.0, 2.0], "label": ["p", "q"]}, properties={"apix": 1.0})
    b = Set({"x": [3.0], "y": [7]}, properties={"apix": 2.0, "voltage": 300})
    merged = a.union(b)
    assert len(merged) == 3
    assert set(merged.columns) == {"uid", "x", "label", "y"}
    np.testing.assert_array_equal(merged.uids, np.concatenate([a.uids, b.uids]))
    assert merged.column("x").tolist() == [1.0, 2.0, 3.0]
    table = merged.to_arrow()
    assert table.column("y").to_pylist() == [None, None, 7]
    assert table.column("label").to_pylist() == ["p", "q", None]
    assert np.isnan(merged.column("y")[:2]).all()
    # this set's properties win; the others only add missing keys
    assert merged.properties == {"apix": 1.0, "voltage": 300}


def test_union_of_many() -> None:
    s = make(9)
    parts = [s[0:3], s[3:6], s[6:9]]
    merged = parts[0].union(*parts[1:])
    np.testing.assert_array_equal(merged.uids, s.uids)
    assert merged.column("name").tolist() == s.column("name").tolist()


def test_union_duplicate_uids() -> None:
    s = make(5)
    with pytest.raises(SetError, match=r"2 uid.*duplicates='first'"):
        s[0:3].union(s[1:3])
    first = s[0:3].union(s[1:5], duplicates="first")
    assert first.column("i").tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(first.uids, s.uids)


def test_union_duplicates_keep_the_first_values() -> None:
    a = Set({"uid": np.array([1, 2], dtype=np.uint64), "v": ["a1", "a2"]})
    b = Set({"uid": np.array([2, 3], dtype=np.uint64), "v": ["b2", "b3"]})
    merged = a.union(b, duplicates="first")
    assert merged.uids.tolist() == [1, 2, 3]
    assert merged.column("v").tolist() == ["a1", "a2", "b3"]


def test_union_incompatible_columns() -> None:
    a = Set({"x": [1.0]})
    b = Set({"x": pa.array([[1, 2]], pa.list_(pa.int64()))})
    with pytest.raises(SetError, match="incompatible"):
        a.union(b)


# -- join ---------------------------------------------------------------------------------


def test_join_inner_keeps_left_order() -> None:
    s = make(6)
    ctf = Set({"uid": s.uids[[5, 3, 1, 0]], "ctf.resolution": [5.0, 3.0, 1.0, 0.0]})
    joined = s.join(ctf)
    assert joined.column("i").tolist() == [0, 1, 3, 5]
    assert joined.column("ctf.resolution").tolist() == [0.0, 1.0, 3.0, 5.0]
    assert_uids_follow_rows(joined, s)
    assert joined.properties == s.properties


def test_join_left_keeps_all_rows() -> None:
    s = make(4)
    extra = Set({"uid": s.uids[[2]], "note": ["x"]})
    joined = s.join(extra, how="left")
    assert joined.column("i").tolist() == [0, 1, 2, 3]
    assert joined.to_arrow().column("note").to_pylist() == [None, None, "x", None]


def test_join_replaces_columns_and_left_keeps_own_values() -> None:
    s = make(4)
    refined = Set({"uid": s.uids[[3, 1]], "score": [0.9, 0.7]})
    inner = s.join(refined)
    assert inner.column("i").tolist() == [1, 3]
    assert inner.column("score").tolist() == [0.7, 0.9]
    left = s.join(refined, how="left")
    assert left.column("score").tolist() == [0.0, 0.7, 0.2, 0.9]  # unmatched keep their own
    assert left.columns.count("score") == 1
    assert_uids_follow_rows(left, s)


def test_join_left_replacing_casts_own_values() -> None:
    s = Set({"uid": np.array([1, 2, 3], dtype=np.uint64), "n": [10, 20, 30]})
    other = Set({"uid": np.array([2], dtype=np.uint64), "n": [2.5]})
    joined = s.join(other, how="left")
    assert joined.column("n").tolist() == [10.0, 2.5, 30.0]


def test_join_prefix_and_columns() -> None:
    s = make(3)
    other = Set(
        {
            "uid": s.uids[::-1],
            "defocus_u": [3.0, 2.0, 1.0],
            "astig": [0.3, 0.2, 0.1],
            "skip": [0, 0, 0],
        }
    )
    joined = s.join(other, columns=["defocus_u", "astig"], prefix="ctf.")
    assert "skip" not in joined
    assert "ctf.astig" in joined
    assert joined.column("ctf.defocus_u").tolist() == [1.0, 2.0, 3.0]  # replaced, by uid
    assert joined.column("ctf.astig").tolist() == [0.1, 0.2, 0.3]
    assert joined.columns.count("ctf.defocus_u") == 1
    assert joined.column("ctf.defocus_v").tolist() == s.column("ctf.defocus_v").tolist()


def test_join_columns_may_name_uid() -> None:
    s = make(2)
    other = Set({"uid": s.uids, "z": [1, 2]})
    assert s.join(other, columns=["uid", "z"]).column("z").tolist() == [1, 2]


def test_join_unknown_column() -> None:
    s = make(2)
    other = Set({"uid": s.uids, "z": [1, 2]})
    with pytest.raises(SetError, match=r"no column\(s\) \['nope'\]"):
        s.join(other, columns=["z", "nope"])


def test_join_with_a_multi_chunk_set(tmp_path: Path) -> None:
    s = make(6)
    other = s[0:3].with_columns(w=[0, 1, 2]).union(s[3:6].with_columns(w=[3, 4, 5]))
    assert other.to_arrow().column("uid").num_chunks == 2
    joined = s.take([5, 0, 3]).join(other, columns=["w"])
    assert joined.column("w").tolist() == [5, 0, 3]


def test_join_without_matches() -> None:
    s = make(3)
    other = Set({"z": [1, 2]})
    assert len(s.join(other)) == 0
    assert s.join(other, how="left").to_arrow().column("z").null_count == 3


# -- split --------------------------------------------------------------------------------


def test_split_in_order() -> None:
    s = make(7)
    parts = s.split(3)
    assert [p.column("i").tolist() for p in parts] == [[0, 1, 2], [3, 4], [5, 6]]
    for part in parts:
        assert_uids_follow_rows(part, s)
        assert part.properties == s.properties


def test_split_randomized_is_reproducible() -> None:
    s = make(40)
    a = s.split(2, randomize=True, seed=7)
    b = s.split(2, randomize=True, seed=7)
    c = s.split(2, randomize=True, seed=8)
    assert [p.uids.tolist() for p in a] == [p.uids.tolist() for p in b]
    assert [p.uids.tolist() for p in a] != [p.uids.tolist() for p in c]
    assert a[0].column("i").tolist() != list(range(20))  # really shuffled
    for part in a:
        indices = part.column("i")
        assert (np.diff(indices) > 0).all()  # each part keeps the set's order
        assert_uids_follow_rows(part, s)
    assert sorted(np.concatenate([p.column("i") for p in a]).tolist()) == list(range(40))
    assert [len(p) for p in a] == [20, 20]


def test_split_by_column() -> None:
    s = make(7)
    parts = s.split(0, by="class_id")
    assert [p.column("class_id")[0] for p in parts] == [0, 1, 2]
    assert [p.column("i").tolist() for p in parts] == [[0, 3, 6], [1, 4], [2, 5]]
    by_name = Set({"k": ["b", "a", "b"]}).split(0, by="k")
    assert [p.column("k").tolist() for p in by_name] == [["a"], ["b", "b"]]


@pytest.mark.parametrize("parts", [1, 0, -2])
def test_split_needs_two_parts(parts) -> None:
    with pytest.raises(SetError, match=f"at least 2 parts, got {parts}"):
        make(4).split(parts)


def test_split_more_parts_than_rows() -> None:
    parts = make(2).split(3)
    assert [len(p) for p in parts] == [1, 1, 0]


# -- with_columns -------------------------------------------------------------------------


def test_with_columns_adds_and_replaces() -> None:
    s = make(3)
    out = s.with_columns(
        **{"ctf.astig": [1.0, 2.0, 3.0], "score": np.array([9.0, 8.0, 7.0]), "tag": ["a", "b", "c"]}
    )
    assert out.column("ctf.astig").tolist() == [1.0, 2.0, 3.0]
    assert out.column("score").tolist() == [9.0, 8.0, 7.0]
    assert out.column("tag").tolist() == ["a", "b", "c"]
    assert out.columns.index("score") == s.columns.index("score")  # replaced in place
    assert s.column("score").tolist() == [0.0, 0.1, 0.2]  # the original is unchanged
    assert "tag" not in s
    np.testing.assert_array_equal(out.uids, s.uids)
    assert out.with_columns(w=pa.array([1, 2, 3], pa.int8())).schema["w"] == "int8"


def test_with_columns_wrong_length() -> None:
    with pytest.raises(SetError, match="'x' has 2 values for 3 rows"):
        make(3).with_columns(x=[1, 2])


# -- conversions and display --------------------------------------------------------------


def test_to_pandas() -> None:
    s = make(3)
    frame = s.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert set(frame.columns) == set(s.columns)
    assert frame["uid"].dtype == np.uint64
    assert frame["uid"].tolist() == s.uids.tolist()
    assert frame["ctf.defocus_u"].tolist() == s.column("ctf.defocus_u").tolist()
    assert frame["name"].tolist() == ["m0", "m1", "m2"]


def test_to_arrow_is_the_table() -> None:
    s = make(3)
    table = s.to_arrow()
    assert isinstance(table, pa.Table)
    assert table is s.to_arrow()
    assert table.num_rows == 3
    assert table.schema.field("uid").type == pa.uint64()


def test_to_dict() -> None:
    s = make(3)
    as_dict = s.to_dict()
    assert list(as_dict) == s.columns
    np.testing.assert_array_equal(as_dict["uid"], s.uids)
    assert as_dict["name"].tolist() == ["m0", "m1", "m2"]


def test_repr() -> None:
    text = repr(SetTestParticles({"x": [1, 2]}))
    assert text.startswith("<SetTestParticles of 2 particles, closed")
    assert "'x'" in text


def test_repr_html() -> None:
    s = SetTestParticles({"x": np.arange(8.0), "tag": ["<b>"] * 8})
    page = s._repr_html_()
    assert "<b>SetTestParticles</b>: 8 particles (closed)" in page
    assert "<th>uid</th>" in page
    assert "<th>tag</th>" in page
    assert page.count("<tr>") == 1 + 5  # the header and the first five rows
    assert "… 3 more" in page
    assert "&lt;b&gt;" in page  # values are escaped
    small = Set({"x": [1.5]})._repr_html_()
    assert "<b>Set</b>: 1 items" in small
    assert "more" not in small


def test_repr_html_shortens_long_values() -> None:
    page = Set({"text": ["x" * 100], "f": [1.23456789]})._repr_html_()
    assert "x" * 37 + "…" in page
    assert "x" * 38 not in page
    assert "1.235" in page


# -- persistence --------------------------------------------------------------------------


def test_save_open_round_trip(tmp_path: Path) -> None:
    s = SetTestParticles(
        {
            "i": np.arange(5, dtype=np.int32),
            "ctf.defocus_u": np.linspace(1e4, 2e4, 5),
            "flag": [True, False, True, False, True],
            "name": ["a", "b", "c", "d", "e"],
            "label": pa.array(["x", "y", "x", "y", "x"]).dictionary_encode(),
            "small": np.arange(5, dtype=np.float32),
        },
        properties={"apix": 1.06, "nested": {"voltage": 300, "tags": ["a"]}},
    )
    path = s.save(tmp_path / "particles")
    assert path == tmp_path / "particles"
    loaded = Set.open(path)
    assert type(loaded) is SetTestParticles
    assert loaded.state == "closed"
    assert loaded.properties == {"apix": 1.06, "nested": {"voltage": 300, "tags": ["a"]}}
    assert loaded.schema == s.schema
    assert loaded.columns == s.columns
    assert loaded.to_arrow().equals(s.to_arrow())
    np.testing.assert_array_equal(loaded.uids, s.uids)
    assert loaded[3].name == "d"
    assert loaded[4].label == "x"


def test_save_open_subtype_falls_back_to_known_base(tmp_path: Path) -> None:
    from cryolab.core.setstore import SetWriter

    writer = SetWriter.create(tmp_path / "s", ["PluginTypeNotInstalled", "SetTestParticles", "Set"])
    writer.append({"x": [1]})
    writer.close()
    assert type(Set.open(tmp_path / "s")) is SetTestParticles


def test_save_empty_set(tmp_path: Path) -> None:
    s = Set({"x": np.array([], dtype=np.float64)})
    loaded = Set.open(s.save(tmp_path / "empty"))
    assert len(loaded) == 0
    assert loaded.schema == {"x": "double", "uid": "uint64"}


def test_save_twice_refused(tmp_path: Path) -> None:
    s = make(2)
    s.save(tmp_path / "s")
    with pytest.raises(SetError, match="already exists"):
        s.save(tmp_path / "s")


def test_open_non_set(tmp_path: Path) -> None:
    with pytest.raises(SetError, match="not a set folder"):
        Set.open(tmp_path)


def test_uids_stable_through_every_operation(tmp_path: Path) -> None:
    s = make(30)
    extra = Set({"uid": s.uids[::-1], "z": np.arange(30)})
    derived = {
        "where": s.where("score > 0.5"),
        "take": s.take([29, 0, 7]),
        "slice": s[5:25:3],
        "subset": s.subset(s.uids[10:20]),
        "exclude": s.subset(s.uids[10:20], exclude=True),
        "union": s[20:].union(s[:5]),
        "join": s.join(extra),
        "left join": s.take([3, 1]).join(extra, how="left"),
        "with_columns": s.with_columns(score=np.zeros(30)),
        "copy": Set(s),
        "saved": Set.open(s.save(tmp_path / "saved")),
    }
    derived.update({f"split {k}": p for k, p in enumerate(s.split(3, randomize=True, seed=1))})
    derived.update({f"by {k}": p for k, p in enumerate(s.split(0, by="class_id"))})
    for name, d in derived.items():
        assert len(d) > 0, name
        np.testing.assert_array_equal(d.uids, s.uids[d.column("i")], err_msg=name)
    # the join matched each row by uid, not by position
    np.testing.assert_array_equal(derived["join"].column("z"), 29 - np.arange(30))


# -- properties of random sets ------------------------------------------------------------

_uid_lists = st.lists(st.integers(min_value=0, max_value=2**64 - 1), unique=True, max_size=60)


def _random_set(uids: list[int]) -> Set:
    return Set({"uid": np.array(uids, dtype=np.uint64), "i": np.arange(len(uids))})


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    uids=_uid_lists,
    parts=st.integers(2, 6),
    randomize=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_union_of_split_parts_is_the_original(uids, parts, randomize, seed) -> None:
    s = _random_set(uids)
    pieces = s.split(parts, randomize=randomize, seed=seed)
    assert len(pieces) == parts
    assert sum(len(p) for p in pieces) == len(s)
    merged = pieces[0].union(*pieces[1:])  # no duplicates: the parts are disjoint
    assert set(merged.uids.tolist()) == set(uids)
    assert len(merged) == len(s)
    for piece in pieces:
        np.testing.assert_array_equal(piece.uids, s.uids[piece.column("i")])
    if not randomize:
        np.testing.assert_array_equal(merged.uids, s.uids)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), uids=_uid_lists)
def test_subset_and_exclude_partition_the_set(data, uids) -> None:
    s = _random_set(uids)
    chosen = data.draw(st.lists(st.sampled_from(uids), unique=True) if uids else st.just([]))
    strangers = data.draw(st.lists(st.integers(0, 2**64 - 1), max_size=5))
    wanted = np.array(chosen + strangers, dtype=np.uint64)
    kept = s.subset(wanted)
    dropped = s.subset(wanted, exclude=True)
    assert set(kept.uids.tolist()).isdisjoint(dropped.uids.tolist())
    assert len(kept) + len(dropped) == len(s)
    assert set(kept.uids.tolist()) | set(dropped.uids.tolist()) == set(uids)
    assert set(kept.uids.tolist()) == set(chosen) | (set(strangers) & set(uids))
    for part in (kept, dropped):
        assert (np.diff(part.column("i")) > 0).all()  # the set's own order


def test_text_columns_with_nulls_keep_none() -> None:
    merged = Set({"name": ["a", "b"]}).union(Set({"other": [1]}))
    assert merged["name"].tolist() == ["a", "b", None]
    assert len(merged.where("name == 'None'")) == 0


def test_join_with_no_columns_adds_none() -> None:
    left = Set({"x": [1, 2, 3]})
    right = left.take([0, 2]).with_columns(y=[5, 6])
    joined = left.join(right, columns=[])
    assert joined.columns == ["uid", "x"] and len(joined) == 2


def test_drop_columns() -> None:
    s = Set({"a": [1, 2], "b": [3, 4]}, properties={"k": 1})
    dropped = s.drop("a")
    assert dropped.columns == ["uid", "b"] and dropped.properties == {"k": 1}
    assert dropped.uids.tolist() == s.uids.tolist()
    with pytest.raises(SetError, match="uid column cannot be dropped"):
        s.drop("uid")
    with pytest.raises(SetError, match=r"missing column\(s\) \['c'\]"):
        s.drop("c")
