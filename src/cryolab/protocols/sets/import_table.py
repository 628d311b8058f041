"""``sets.import_table``: import rows from CSV, Parquet, Arrow/Feather or STAR-free tables."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv
import pyarrow.feather
import pyarrow.parquet

from cryolab.core.params import Issue, PathParam
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set, new_uids

READERS = {
    ".csv": lambda p: pyarrow.csv.read_csv(p),
    ".tsv": lambda p: pyarrow.csv.read_csv(
        p, parse_options=pyarrow.csv.ParseOptions(delimiter="\t")
    ),
    ".parquet": pyarrow.parquet.read_table,
    ".feather": pyarrow.feather.read_table,
    ".arrow": pyarrow.feather.read_table,
}


class ImportTable(Protocol):
    """Import tabular files (one batch per file) as a set; a ``uid`` column is kept if present."""

    name = "sets.import_table"
    deterministic = True
    label = "Import table"
    files = PathParam(pattern=True, help="A file or a glob pattern (CSV, TSV, Parquet, Arrow).")
    outputs = {"rows": Output(Set, help="The imported rows")}

    def matched(self) -> list[str]:
        """The files the pattern matches, sorted."""
        return sorted(glob.glob(str(Path(self.values["files"]).expanduser())))

    def check(self) -> list[Issue]:
        unknown = [f for f in self.matched() if Path(f).suffix.lower() not in READERS]
        if unknown:
            return [
                Issue(
                    "files", f"unsupported file type(s) {unknown[:3]}; use one of {sorted(READERS)}"
                )
            ]
        return []

    def plan(self) -> Iterator[Step]:
        matched = self.matched()
        if not matched:
            raise FileNotFoundError(f"no file matches {self.values['files']!r} any more")
        for index, path in enumerate(matched):
            yield Step(f"read-{index:05d}", "read", {"path": str(Path(path).resolve())})

    def read(self, ctx: StepContext, path: str) -> None:
        """Read one file and append its rows."""
        try:
            table = READERS[Path(path).suffix.lower()](path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise ValueError(f"cannot read {path}: {exc}") from None
        if "uid" not in table.column_names:
            table = table.append_column("uid", pa.array(new_uids(table.num_rows, ctx.rng)))
        ctx.append("rows", table)
        ctx.log.info("imported %d rows from %s", table.num_rows, path)

    def methods(self) -> str:
        return f"Rows were imported from {len(self.matched())} table file(s)."
