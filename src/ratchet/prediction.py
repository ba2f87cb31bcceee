"""Batch prediction: a file of raw records in, a file of predictions out, malformed rows set aside.

Owns `predict_file` (JSONL, Parquet or CSV in; Parquet, CSV or JSONL out, chosen by
the output's suffix) and the row checks against a bundle's signature. Each output
row carries the input row's line number (`line`: the physical line for JSONL and
CSV, header = line 1; the 1-based row number for Parquet) beside its predictions:
`probability_<class>` per class and the predicted class, or the value. A row with
a field absent, a value of the wrong type, or a NaN or infinite number goes to a
JSONL errors file as `{"line", "row", "error"}` (the shape of the data quarantine),
so every row read is either predicted or listed there. Rows stream in batches and
each batch is predicted whole (`Bundle.predict_table`): memory stays bounded and no
Python runs per good row, except for JSONL (lines in a batch Arrow's parser refuses,
and JSONL output).

Missing values are not errors: a null (empty CSV cell or a CSV null marker such as
`NA`, a JSON null, a Parquet null) is imputed the way training imputed it. Resolving
a model reference is `ratchet.serving.load_model`; the progress bar is the CLI's.
The readers are here rather than `ratchet.data.io.open_source` because that hands
out good rows without their line numbers; the CSV line accounting is the same.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from ratchet.data.chunks import Chunk, convert, first_line
from ratchet.errors import InvalidArgument, NotFound
from ratchet.training.bundle import Bundle
from ratchet.training.task import Task

FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
}
BATCH_ROWS = 65_536
_CSV_BLOCK = 1 << 20  # pyarrow reads up to 32 blocks ahead: this bounds a CSV's memory
Lines = npt.NDArray[np.int64]


@dataclass(frozen=True)
class PredictionSummary:
    rows: int  # data rows read: predicted + malformed
    predicted: int
    malformed: int
    output: Path
    errors: Path | None  # the errors file; None when no row was malformed
    seconds: float


@dataclass
class _Block:
    batch: pa.RecordBatch  # the rows that parsed, typed to the signature
    lines: Lines  # their line numbers
    errors: list[dict[str, Any]]  # rows set aside, with line number and reason


def input_schema(bundle: Bundle) -> pa.Schema:
    """The raw columns a bundle reads: float64 numbers and strings."""
    return pa.schema(
        (f["name"], pa.float64() if f["type"] == "number" else pa.string()) for f in bundle.inputs
    )


def output_schema(task: Task) -> pa.Schema:
    fields = [pa.field("line", pa.int64())]
    if task.classification:
        fields += [pa.field(f"probability_{name}", pa.float64()) for name in task.classes]
        fields.append(pa.field("prediction", pa.string()))
    else:
        fields.append(pa.field("prediction", pa.float64()))
    return pa.schema(fields)


def default_errors_path(output: Path) -> Path:
    """`out.parquet` -> `out.errors.jsonl`, beside the output."""
    return output.with_suffix(".errors.jsonl")


def input_rows(path: Path) -> int | None:
    """The number of rows when the file says so without being read (Parquet), else None."""
    if FORMATS.get(path.suffix.lower()) != "parquet":
        return None
    try:
        return int(pq.read_metadata(path).num_rows)
    except (pa.ArrowInvalid, OSError):
        return None


def predict_file(
    bundle: Bundle,
    input_path: Path,
    output_path: Path,
    *,
    errors_path: Path | None = None,
    batch_rows: int = BATCH_ROWS,
    on_rows: Callable[[int], None] | None = None,
) -> PredictionSummary:
    """Predict every row of `input_path` into `output_path`; malformed rows go to `errors_path`.

    Both files appear only when the run succeeds (written aside, then renamed); an
    errors file left by an earlier run is removed when no row is malformed.
    `on_rows(n)` is called as each batch of `n` input rows is done.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    kind_in, kind_out = _format(input_path, "input"), _format(output_path, "output")
    if not input_path.is_file():
        raise NotFound(f"{input_path} does not exist or is not a file")
    errors_path = Path(errors_path) if errors_path is not None else default_errors_path(output_path)
    if len({p.resolve() for p in (input_path, output_path, errors_path)}) < 3:
        raise InvalidArgument("the input, output and errors files must be three different files")
    if batch_rows < 1:
        raise InvalidArgument(f"batch_rows must be at least 1, not {batch_rows}")
    schema, out_schema = input_schema(bundle), output_schema(bundle.task)
    started = time.perf_counter()
    partial_out, partial_errors = _partial(output_path), _partial(errors_path)
    predicted = malformed = 0
    try:
        with ExitStack() as stack:
            write = _writer(stack, partial_out, kind_out, out_schema)
            errors = stack.enter_context(partial_errors.open("w", encoding="utf-8"))
            for block in _read(input_path, kind_in, schema, batch_rows):
                errors.writelines(json.dumps(_plain(e), default=str) + "\n" for e in block.errors)
                if block.batch.num_rows:
                    values = bundle.predict_table(pa.Table.from_batches([block.batch]))
                    write(_output_batch(out_schema, bundle.task, block.lines, values))
                predicted += block.batch.num_rows
                malformed += len(block.errors)
                if on_rows is not None:
                    on_rows(block.batch.num_rows + len(block.errors))
    except BaseException:
        partial_out.unlink(missing_ok=True)
        partial_errors.unlink(missing_ok=True)
        raise
    os.replace(partial_out, output_path)
    if malformed:
        os.replace(partial_errors, errors_path)
    else:
        partial_errors.unlink()
        errors_path.unlink(missing_ok=True)
    return PredictionSummary(
        rows=predicted + malformed,
        predicted=predicted,
        malformed=malformed,
        output=output_path,
        errors=errors_path if malformed else None,
        seconds=time.perf_counter() - started,
    )


def _format(path: Path, what: str) -> str:
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(sorted(FORMATS))
        raise InvalidArgument(f"{what} {path}: unsupported file type (use {known})")
    return kind


def _partial(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.partial")


# ---- checks and output ---------------------------------------------------------------


def _output_batch(schema: pa.Schema, task: Task, lines: Lines, values: Any) -> pa.RecordBatch:
    columns = [pa.array(lines, pa.int64())]
    values = np.asarray(values, dtype=np.float64)
    if task.classification:
        probabilities = values.reshape(len(lines), -1)
        columns += [pa.array(probabilities[:, j]) for j in range(probabilities.shape[1])]
        best = pa.array(probabilities.argmax(axis=1))
        columns.append(pc.take(pa.array(task.classes, pa.string()), best))
    else:
        columns.append(pa.array(values.reshape(-1)))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _writer(
    stack: ExitStack, path: Path, kind: str, schema: pa.Schema
) -> Callable[[pa.RecordBatch], None]:
    if kind == "parquet":
        # Dictionary pages only for the class names: on probabilities, which rarely
        # repeat, pyarrow tries and gives up per page, which doubled the writing time.
        classes = schema.field("prediction").type == pa.string()
        writer = pq.ParquetWriter(path, schema, use_dictionary=["prediction"] if classes else False)
        return stack.enter_context(writer).write_batch  # type: ignore[no-any-return]
    if kind == "csv":
        return stack.enter_context(pacsv.CSVWriter(path, schema)).write_batch  # type: ignore[no-any-return]
    file = stack.enter_context(path.open("w", encoding="utf-8"))

    def write_lines(batch: pa.RecordBatch) -> None:
        file.writelines(json.dumps(row) + "\n" for row in batch.to_pylist())

    return write_lines


def _plain(error: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinities as text, so the errors file stays strict JSON."""
    row = error["row"]
    if isinstance(row, dict):
        finite = {
            k: str(v) if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in row.items()
        }
        return {**error, "row": finite}
    return error


# ---- readers: each yields typed batches with their line numbers, and the rows set aside


def _read(path: Path, kind: str, schema: pa.Schema, batch_rows: int) -> Iterator[_Block]:
    if kind == "parquet":
        return _parquet_blocks(path, schema, batch_rows)
    if kind == "csv":
        return _csv_blocks(path, schema)
    return _jsonl_blocks(path, schema, batch_rows)


def _check_columns(path: Path, names: list[str], schema: pa.Schema) -> None:
    if missing := [name for name in schema.names if name not in names]:
        raise InvalidArgument(
            f"{path} has no column {missing[0]!r}; the model reads {', '.join(schema.names)}"
        )


def _checked(chunk: Chunk, schema: pa.Schema, *, csv_text: bool = False) -> _Block:
    """Cast raw columns to the signature's types; set aside rows that do not cast or hold
    NaN or an infinity (a model would turn those into garbage)."""
    good, failed = convert(chunk, schema, csv_text)
    keep = np.ones(chunk.batch.num_rows, dtype=bool)
    keep[list(failed)] = False
    kept = np.flatnonzero(keep)
    nonfinite = np.zeros(len(kept), dtype=bool)
    for f in schema:
        if f.type != pa.float64() or not len(kept):
            continue
        column = good.column(f.name)
        bad = pc.fill_null(pc.invert(pc.is_finite(column)), False).to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(bad & ~nonfinite):
            what = "NaN" if math.isnan(column[int(i)].as_py()) else "infinite"
            failed[int(kept[i])] = f"field {f.name!r} is {what}"
        nonfinite |= bad
    if nonfinite.any():
        good, kept = good.filter(pa.array(~nonfinite)), kept[~nonfinite]
    errors = [
        {"line": int(chunk.lines[i]), "row": chunk.batch.slice(i, 1).to_pylist()[0], "error": why}
        for i, why in sorted(failed.items())
    ]
    return _Block(good, chunk.lines[kept], errors)


def _parquet_blocks(path: Path, schema: pa.Schema, batch_rows: int) -> Iterator[_Block]:
    try:
        file = pq.ParquetFile(path)
        _check_columns(path, file.schema_arrow.names, schema)
        start = 1
        for raw in file.iter_batches(batch_size=batch_rows, columns=schema.names):
            lines = np.arange(start, start + raw.num_rows, dtype=np.int64)
            start += raw.num_rows
            yield _checked(Chunk(raw.select(schema.names), lines, None, {}), schema)
    except (pa.ArrowInvalid, OSError) as e:
        raise InvalidArgument(f"cannot read {path}: {first_line(e)}") from e


def _csv_blocks(path: Path, schema: pa.Schema) -> Iterator[_Block]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(newline="", encoding="utf-8", errors="replace") as file:
        header = next(csv.reader(file, delimiter=delimiter), None)
    if not header:
        raise InvalidArgument(f"{path} has no header line")
    _check_columns(path, header, schema)
    invalid: list[dict[str, Any]] = []  # rows with the wrong number of fields, to report
    skipped: list[int] = []  # their line numbers, still to account for in the numbering

    def handler(row: Any) -> str:
        error = f"expected {row.expected_columns} fields, got {row.actual_columns}"
        invalid.append({"line": row.number, "row": row.text, "error": error})
        skipped.append(row.number)
        return "skip"

    # One thread: pyarrow reports the line numbers of invalid rows only then.
    read = pacsv.ReadOptions(use_threads=False, block_size=_CSV_BLOCK)
    # Blank lines come through as empty rows, so every later row keeps its true line number.
    parse = pacsv.ParseOptions(
        delimiter=delimiter, invalid_row_handler=handler, ignore_empty_lines=False
    )
    text = pacsv.ConvertOptions(
        column_types=dict.fromkeys(schema.names, pa.string()), include_columns=schema.names
    )
    try:
        with pacsv.open_csv(
            path, read_options=read, parse_options=parse, convert_options=text
        ) as r:
            start = 2
            for raw in r:
                lines = np.arange(start, start + raw.num_rows, dtype=np.int64)
                # A skipped row still took a line: the good rows after it move down one.
                for number in sorted(skipped):
                    if not raw.num_rows or number > lines[-1]:
                        break
                    lines[lines >= number] += 1
                if raw.num_rows:
                    start = int(lines[-1]) + 1
                    skipped[:] = [n for n in skipped if n >= start]
                raw = raw.select(schema.names)
                chunk = Chunk(raw, lines, None, dict.fromkeys(_all_empty(raw), _NO_VALUES))
                before = [e for e in invalid if e["line"] < start]
                invalid[:] = [e for e in invalid if e["line"] >= start]
                yield _merged(_checked(chunk, schema, csv_text=True), before)
    except pa.ArrowInvalid as e:
        raise InvalidArgument(f"cannot read {path}: {first_line(e)}") from e
    if invalid:
        yield _Block(_empty(schema), np.zeros(0, np.int64), invalid)


_NO_VALUES = "no value for any of the model's fields (a blank line?)"


def _all_empty(raw: pa.RecordBatch) -> list[int]:
    empty = pc.equal(raw.column(0), "")
    for column in raw.columns[1:]:
        empty = pc.and_(empty, pc.equal(column, ""))
    return [int(i) for i in np.flatnonzero(empty.to_numpy(zero_copy_only=False))]


def _empty(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)


def _jsonl_blocks(path: Path, schema: pa.Schema, batch_rows: int) -> Iterator[_Block]:
    with path.open("rb") as file:
        first = 1
        while lines := list(itertools.islice(file, batch_rows)):
            numbers = np.arange(first, first + len(lines), dtype=np.int64)
            first += len(lines)
            filled = [i for i, line in enumerate(lines) if line.strip()]  # blank lines hold no row
            yield _jsonl_block([lines[i] for i in filled], numbers[filled], schema)


def _jsonl_block(lines: list[bytes], numbers: Lines, schema: pa.Schema) -> _Block:
    """Parse with Arrow's JSON reader, line by line only when it refuses the batch."""
    if not lines:
        return _Block(_empty(schema), numbers, [])
    # Arrow parses the batch at once; it refuses the whole batch for one bad line.
    text = b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines)
    options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    block = pajson.ReadOptions(block_size=max(1 << 20, 2 * max(map(len, lines))))
    try:
        table = pajson.read_json(pa.BufferReader(text), read_options=block, parse_options=options)
    except pa.ArrowInvalid:  # a bad line somewhere: a wrong type, not JSON, not an object
        return _jsonl_line_by_line(lines, numbers, schema)
    if table.num_rows != len(lines):
        return _jsonl_line_by_line(lines, numbers, schema)
    batch = pa.RecordBatch.from_arrays(
        [table.column(name).combine_chunks() for name in schema.names], schema=schema
    )
    # Arrow reads an absent field as null, which is a missing value, not a missing field:
    # only the lines holding a null are parsed again to tell the two apart.
    nulls = np.zeros(len(lines), dtype=bool)
    for column in batch.columns:
        if column.null_count:
            nulls |= column.is_null().to_numpy(zero_copy_only=False)
    errors, keep = [], np.ones(len(lines), dtype=bool)
    for i in np.flatnonzero(nulls):
        _, error = _check_record(lines[i], schema)
        if error is not None:
            errors.append({"line": int(numbers[i]), "row": _text(lines[i]), "error": error})
            keep[i] = False
    block = _checked(Chunk(batch.filter(pa.array(keep)), numbers[keep], None, {}), schema)
    return _merged(block, errors)


def _merged(block: _Block, errors: list[dict[str, Any]]) -> _Block:
    if errors:
        block.errors = sorted(errors + block.errors, key=lambda e: int(e["line"]))
    return block


def _jsonl_line_by_line(lines: list[bytes], numbers: Lines, schema: pa.Schema) -> _Block:
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    good: list[int] = []
    errors = []
    for line, number in zip(lines, numbers, strict=True):
        record, error = _check_record(line, schema)
        if record is None:
            errors.append({"line": int(number), "row": _text(line), "error": error})
            continue
        for name, values in columns.items():
            values.append(record[name])
        good.append(int(number))
    batch = pa.RecordBatch.from_arrays(
        [pa.array(columns[f.name], f.type) for f in schema], schema=schema
    )
    return _merged(
        _checked(Chunk(batch, np.asarray(good, dtype=np.int64), None, {}), schema), errors
    )


_JSON_TYPES = {bool: "a boolean", str: "a string", list: "an array", dict: "an object"}


def _check_record(line: bytes, schema: pa.Schema) -> tuple[dict[str, Any] | None, str | None]:
    """The record on one JSONL line, or why it is malformed."""
    try:
        record = json.loads(line)
    except ValueError as e:  # UnicodeDecodeError included
        return None, f"not valid JSON: {e}"
    if not isinstance(record, dict):
        return None, f"expected a JSON object, got {_json_type(record)}"
    for f in schema:
        if f.name not in record:
            return None, f"field {f.name!r} is missing"
        value = record[f.name]
        if value is None:
            continue
        if f.type == pa.string():
            if not isinstance(value, str):
                return None, f"field {f.name!r} must be a string, got {_json_type(value)}"
        elif isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"field {f.name!r} must be a number, got {_json_type(value)}"
        elif isinstance(value, int) and not -(2**1023) < value < 2**1023:
            return None, f"field {f.name!r} is out of range"
    return record, None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r\n")
