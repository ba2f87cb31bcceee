"""Readers: every data source ratchet accepts, streamed as Arrow record batches.

Owns `open_source` (CSV, Parquet, pandas, Arrow, a DuckDB query, a SQLAlchemy URL),
`source_files` (the files a path, folder or glob names, for engines that read
them one by one) and the quarantine of malformed rows: a row with the wrong number of fields or a
value that does not convert to its column's type goes to a JSONL errors file
(`{"line", "row", "error"}`, plus `"file"` for file sources) and is counted; the
good rows go on. It does not compute statistics or validate against a schema
(`ratchet.data.stats`, `ratchet.data.schema`) and never touches the metadata store;
the cast of raw chunks lives in `chunks`, the in-memory and SQL readers in `queries`.

Types come from the first block (pyarrow's inference; a column with no values
there is read as string) unless `columns=` fixes them; every later batch is cast
to that schema. CSV line numbers count physical lines (header = line 1); blank
lines inside a file are skipped by the parser and not counted for rows after them.
"""

from __future__ import annotations

import glob
import itertools
import json
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as pads

from ratchet.data.chunks import CSV_NULLS, Chunk, Raw, convert, first_line, rebatch, target_schema
from ratchet.data.queries import arrow_table, duckdb_raw, memory_raw, sql_name, sql_raw
from ratchet.errors import InvalidArgument, NotFound

SourceLike: TypeAlias = str | Path | pd.DataFrame | pa.Table | pa.RecordBatch
_KINDS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSED = {".gz", ".bz2", ".zst", ".lz4"}
_INFER_BYTES = 1 << 20  # pyarrow's default block: types come from this much of the first file


@dataclass(frozen=True)
class Quarantine:
    """Where malformed rows went: `path` is None when there were none."""

    path: Path | None
    count: int


class Source:
    """An input opened by `open_source`: its schema, its batches and their accounting.

    `rows_read` and `quarantine` describe the last iteration of `batches()`;
    calling `batches()` again reads the input again (the first call reuses the
    stream opened to find the schema).
    """

    def __init__(
        self,
        name: str,
        opener: Callable[[], Raw],
        *,
        columns: dict[str, Any],
        batch_rows: int,
        errors_file: Path,
        error_budget: float | int | None,
        empty_ok: bool = False,
    ) -> None:
        self.name = name
        self._opener, self._batch_rows = opener, batch_rows
        self._errors_file, self._budget, self._empty_ok = errors_file, error_budget, empty_ok
        raw = opener()
        self._pending: Raw | None = raw
        first = next(raw.chunks, None)
        if first is None and not raw.invalid and not empty_ok:
            what = "has a header but no rows" if raw.csv_text else "has no rows"
            raise InvalidArgument(f"{name} {what}")
        inferred = raw.schema
        if inferred is None and first is not None:
            inferred = first.batch.schema
        if inferred is None:
            raise InvalidArgument(f"{name} has no rows")
        self.schema: pa.Schema = target_schema(inferred.remove_metadata(), columns, name)
        raw.chunks = itertools.chain([] if first is None else [first], raw.chunks)
        self.rows_read = 0
        self.quarantine = Quarantine(None, 0)

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return self.batches()

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Stream the input in batches of at most `batch_rows` rows, quarantining bad rows."""
        raw, self._pending = self._pending or self._opener(), None
        self.rows_read, self.quarantine = 0, Quarantine(None, 0)
        self._errors_file.unlink(missing_ok=True)
        writer = _Writer(self._errors_file)
        try:
            for batch in rebatch(self._convert(raw, writer), self._batch_rows):
                self.rows_read += batch.num_rows
                yield batch
        finally:
            self.quarantine = writer.close()
        self._check_budget(final=True)
        if self.rows_read == 0 and not self._empty_ok:
            raise InvalidArgument(
                f"{self.name} has no valid rows: all {writer.count} are in {self._errors_file}"
            )

    def _convert(self, raw: Raw, writer: _Writer) -> Iterator[pa.RecordBatch]:
        for chunk in raw.chunks:
            writer.extend(raw.invalid)
            good, errors = convert(chunk, self.schema, raw.csv_text)
            for i, error in sorted(errors.items()):
                row = chunk.batch.slice(i, 1).to_pylist()[0]
                line = int(chunk.lines[i])
                writer.write({"file": chunk.file, "line": line, "row": row, "error": error})
            self.quarantine = writer.state()
            self._check_budget(final=False)
            yield good
        writer.extend(raw.invalid)
        self.quarantine = writer.state()

    def _check_budget(self, *, final: bool) -> None:
        check_error_budget(
            self.name,
            self._budget,
            bad=self.quarantine.count,
            good=self.rows_read,
            where=self._errors_file,
            final=final,
        )


def check_error_budget(
    name: str,
    budget: float | int | None,
    *,
    bad: int,
    good: int,
    where: Path,
    final: bool = True,
) -> None:
    """Raise `InvalidArgument` when `bad` rows (quarantined to `where`) exceed the budget.

    A count is checked at any time; a fraction of all rows only when `final`, once
    every row is read. Engines that read a source in parts check the whole here.
    """
    if budget is None or bad == 0:
        return
    if isinstance(budget, int) and bad > budget:
        raise InvalidArgument(
            f"{name}: {bad} malformed rows exceed the error budget of {budget}; they are in {where}"
        )
    total = good + bad
    if final and isinstance(budget, float) and bad / total > budget:
        raise InvalidArgument(
            f"{name}: {bad} of {total} rows malformed ({bad / total:.2%}), over the "
            f"error budget of {budget:.2%}; they are in {where}"
        )


class _Writer:
    """Appends quarantined rows to a JSONL file, created on the first one."""

    def __init__(self, path: Path) -> None:
        self.path, self.count = path, 0
        self._file: Any = None

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("w", encoding="utf-8")
        if record.get("file") is None:
            record.pop("file", None)
        self._file.write(json.dumps(record, default=str) + "\n")
        self.count += 1

    def extend(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            self.write(record)
        records.clear()

    def state(self) -> Quarantine:
        return Quarantine(self.path if self.count else None, self.count)

    def close(self) -> Quarantine:
        if self._file is not None:
            self._file.close()
        return self.state()


def open_source(
    source: SourceLike,
    *,
    query: str | None = None,
    columns: dict[str, pa.DataType] | None = None,
    batch_rows: int = 65_536,
    errors_path: Path | None = None,
    error_budget: float | int | None = None,
    empty_ok: bool = False,
) -> Source:
    """Open a file, glob, folder, DataFrame, Arrow table, DuckDB query or SQL URL for streaming.

    `query` runs with DuckDB over a file source (exposed as the view `source`, files
    can also be named in the query), over an in-memory source, or over nothing when
    `source` is `"duckdb:"`; with a SQLAlchemy URL it runs on that database.
    `errors_path` is the errors file, or a folder to hold `<stem>.errors.jsonl`;
    by default that file goes to a fresh folder under the system temp directory.
    `error_budget` is a fraction (0 < x < 1) of all rows read, bad ones included,
    checked at the end, or a count of rows, checked as rows arrive; exceeding it
    raises `InvalidArgument` once the errors file is written.
    A source with no rows, or no valid ones, is `InvalidArgument` unless `empty_ok`
    (one file of many, where only the whole source can be judged empty).
    """
    if batch_rows < 1:
        raise InvalidArgument(f"batch_rows must be at least 1, not {batch_rows}")
    _validate_budget(error_budget)
    columns = dict(columns or {})
    if bad := [name for name, t in columns.items() if not isinstance(t, pa.DataType)]:
        raise InvalidArgument(f"columns= must map names to pyarrow types; {bad[0]!r} does not")
    name, stem, opener = _opener(source, query, batch_rows)
    if errors_path is None:
        folder = Path(tempfile.gettempdir()) / "ratchet-quarantine" / uuid.uuid4().hex[:12]
        errors_file = folder / f"{stem}.errors.jsonl"
    elif errors_path.is_dir() or errors_path.suffix != ".jsonl":
        errors_file = errors_path / f"{stem}.errors.jsonl"
    else:
        errors_file = errors_path
    return Source(
        name,
        opener,
        columns=columns,
        batch_rows=batch_rows,
        errors_file=errors_file,
        error_budget=error_budget,
        empty_ok=empty_ok,
    )


def source_files(source: SourceLike) -> list[Path] | None:
    """The files a path, folder or glob names, in the order `open_source` reads them.

    None for a source that is not files (a table in memory, a database URL, a
    DuckDB query). Raises as `open_source` does for a missing path or mixed kinds.
    """
    if not isinstance(source, str | Path):
        return None
    text = str(source)
    if isinstance(source, str) and (text.startswith("duckdb:") or "://" in text):
        return None
    return _resolve(text)[0]


def _validate_budget(budget: object) -> None:
    if budget is None:
        return
    if isinstance(budget, bool) or not isinstance(budget, int | float):
        raise InvalidArgument(f"error_budget must be a fraction or a row count, not {budget!r}")
    if isinstance(budget, float) and not 0 < budget < 1:
        raise InvalidArgument(f"error_budget as a fraction must be in (0, 1), not {budget}")
    if isinstance(budget, int) and budget < 0:
        raise InvalidArgument(f"error_budget as a row count must be >= 0, not {budget}")


def _opener(
    source: SourceLike, query: str | None, batch_rows: int
) -> tuple[str, str, Callable[[], Raw]]:
    """Name, errors-file stem and a function opening the raw stream of a source."""
    if isinstance(source, pd.DataFrame | pa.Table | pa.RecordBatch):
        kind = "DataFrame" if isinstance(source, pd.DataFrame) else "Arrow table"
        if query is not None:
            table = arrow_table(source)
            return "query", "query", lambda: duckdb_raw(query, batch_rows, table=table)
        return kind, kind.split()[-1].lower(), lambda: memory_raw(source, batch_rows)
    if not isinstance(source, str | Path):
        raise InvalidArgument(f"cannot read a {type(source).__name__}; give a path, URL or table")
    text = str(source)
    if isinstance(source, str) and text.startswith("duckdb:"):
        if query is None:
            raise InvalidArgument("a duckdb: source needs query=")
        return "query", "query", lambda: duckdb_raw(query, batch_rows)
    if isinstance(source, str) and "://" in text:
        if query is None:
            raise InvalidArgument("a database URL needs query=, e.g. query='SELECT * FROM t'")
        return sql_name(text), "query", lambda: sql_raw(text, query, batch_rows)
    files, kind = _resolve(text)
    stem = re.sub(r"[^\w.-]+", "_", Path(text).name.split(".")[0]).strip("_") or "source"
    if query is not None:
        return "query", stem, lambda: duckdb_raw(query, batch_rows, files=(files, kind))
    if kind == "parquet":
        return text, stem, lambda: _parquet_raw(files, batch_rows)
    return text, stem, lambda: _csv_raw(files)


def _resolve(text: str) -> tuple[list[Path], str]:
    """The files a path, folder or glob names, and their one kind."""
    path = Path(text)
    if any(ch in text for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True))
        files = [f for f in files if f.is_file()]
        if not files:
            raise NotFound(f"no files match {text}")
    elif path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.is_file() and _kind(f) is not None)
        if not files:
            raise NotFound(f"{text} holds no CSV or Parquet files")
    elif path.is_file():
        files = [path]
    else:
        raise NotFound(f"{text} does not exist")
    kinds = {_kind(f) for f in files}
    if None in kinds:
        odd = next(f for f in files if _kind(f) is None)
        raise InvalidArgument(f"{odd} is not a supported file type (CSV, TSV or Parquet)")
    if len(kinds) > 1:
        raise InvalidArgument(f"{text} mixes CSV and Parquet files; read them separately")
    return files, str(kinds.pop())


def _kind(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes.pop()
    return _KINDS.get(suffixes[-1]) if suffixes else None


def _csv_raw(files: list[Path]) -> Raw:
    """Infer types from the first block of the first file, then read every file as text."""
    if files[0].stat().st_size == 0:
        raise InvalidArgument(f"{files[0]} has no rows (the file is empty)")
    parse = _csv_parse(files[0], lambda row: "skip")
    try:
        # Infer from the first MiB only: a reader on the file would read ahead 32 blocks.
        with pa.input_stream(str(files[0])) as stream:  # decompresses by extension
            head = stream.read(_INFER_BYTES)
        if len(head) == _INFER_BYTES:
            head = head[: head.rfind(b"\n") + 1] or head
        with pacsv.open_csv(pa.BufferReader(head), parse_options=parse) as reader:
            schema = reader.schema
        text = pacsv.read_csv(
            pa.BufferReader(head),
            parse_options=parse,
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(schema.names, pa.string())
            ),
        )
    except (pa.ArrowInvalid, OSError) as e:
        raise InvalidArgument(f"cannot read {files[0]}: {first_line(e)}") from e
    schema = pa.schema(
        (f.name, _mostly_numeric(text.column(f.name)) or f.type)
        if pa.types.is_string(f.type)
        else f
        for f in schema
    )
    raw = Raw(schema=schema, chunks=iter(()), csv_text=True)
    raw.chunks = _csv_chunks(files, schema.names, raw.invalid)
    return raw


_INT = r"^\s*[-+]?\d+\s*$"
_FLOAT = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$|^\s*[-+]?(nan|inf|NaN|Inf)\s*$"
#: A text column is numeric when this share of its first block's values are numbers:
#: then a stray bad value is quarantined rather than turning the whole column to text.
MOSTLY = 0.99


def _mostly_numeric(column: pa.ChunkedArray) -> pa.DataType | None:
    values = column.combine_chunks()
    values = values.filter(pc.invert(pc.is_in(values, value_set=CSV_NULLS)))
    values = values.drop_null()
    if len(values) == 0:
        return None
    for pattern, kind in ((_INT, pa.int64()), (_FLOAT, pa.float64())):
        matches = pc.sum(pc.match_substring_regex(values, pattern)).as_py() or 0
        if matches / len(values) >= MOSTLY:
            return kind
    return None


def _csv_parse(path: Path, handler: Callable[[Any], str]) -> Any:
    tab = ".tsv" in [s.lower() for s in path.suffixes]
    return pacsv.ParseOptions(delimiter="\t" if tab else ",", invalid_row_handler=handler)


def _csv_chunks(
    files: list[Path], names: list[str], invalid: list[dict[str, Any]]
) -> Iterator[Chunk]:
    text = pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()))
    for path in files:
        skipped: list[int] = []

        def handler(row: Any, path: Path = path, skipped: list[int] = skipped) -> str:
            error = f"expected {row.expected_columns} fields, got {row.actual_columns}"
            invalid.append({"file": str(path), "line": row.number, "row": row.text, "error": error})
            skipped.append(row.number)
            return "skip"

        # One thread: pyarrow reports the line numbers of invalid rows only then. Small
        # blocks: the reader reads up to 32 blocks ahead, so this bounds its memory.
        options = pacsv.ReadOptions(use_threads=False, block_size=128 * 1024)
        try:
            with pacsv.open_csv(
                path,
                read_options=options,
                parse_options=_csv_parse(path, handler),
                convert_options=text,
            ) as reader:
                if reader.schema.names != names:
                    raise InvalidArgument(f"{path} has columns {reader.schema.names}, not {names}")
                start = 2
                for batch in reader:
                    lines = np.arange(start, start + batch.num_rows, dtype=np.int64)
                    for number in sorted(skipped):
                        if not batch.num_rows or number > lines[-1]:
                            break
                        lines[lines >= number] += 1
                    if batch.num_rows:
                        start = int(lines[-1]) + 1
                        skipped[:] = [n for n in skipped if n >= start]
                        yield Chunk(batch, lines, str(path), {})
        except pa.ArrowInvalid as e:
            raise InvalidArgument(f"cannot read {path}: {first_line(e)}") from e


def _parquet_raw(files: list[Path], batch_rows: int) -> Raw:
    try:
        dataset = pads.dataset([str(f) for f in files], format="parquet")
    except (pa.ArrowInvalid, OSError) as e:
        raise InvalidArgument(f"cannot read Parquet: {first_line(e)}") from e

    def chunks() -> Iterator[Chunk]:
        for fragment in dataset.get_fragments():
            start = 1
            try:
                for batch in fragment.to_batches(schema=dataset.schema, batch_size=batch_rows):
                    lines = np.arange(start, start + batch.num_rows, dtype=np.int64)
                    start += batch.num_rows
                    if batch.num_rows:
                        yield Chunk(batch, lines, fragment.path, {})
            except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as e:
                raise InvalidArgument(f"cannot read {fragment.path}: {first_line(e)}") from e

    return Raw(schema=dataset.schema, chunks=chunks())
