"""Read click logs of any common shape into a canonical click frame.

Every later step (sessionizing, cleaning, splitting, :meth:`SessionData.from_frame`) works
on one shape, the *canonical click frame*: a Polars DataFrame with ``session_id`` (or
``user_id`` for a visitor log that still has to be cut into sessions), ``item_id``, and
optionally ``timestamp`` (Float64 Unix seconds), ``event_type`` (String: ``view``, ``cart``
or ``purchase``, see :mod:`~sessionrec.data.events.event_types`) and ``raw_event_type``
(String: the log's own word for it). Ids are
``Int64`` when every id in the file is a plain integer, ``String`` otherwise (without a
preset, a column whose first 10,000 ids are integers is read as integers; a later id that
is not one switches it to text). Rows are in file order; nothing is sorted here.

Reading is built for logs of tens of millions of rows: Polars reads the file once with the
schema the format implies and every check is vectorised. Only when something is wrong does
the reader take a slower path to say *where*: it re-reads the suspect columns as text,
finds the offending rows, and maps the first one back to its physical line (Python's
``csv`` module or a line count, used only on that error path). Errors therefore cost time
only when there is an error to report.

What counts as a bad row
------------------------
* a row with more fields than the header (a trailing empty field is tolerated), or with
  fewer, so that a column that is read is missing (a short row that only lacks an unused
  trailing column is harmless and kept); an empty line in a CSV or sessions-txt file
  (blank lines at the end of a sessions-txt file, and in JSONL anywhere, are skipped);
* a missing or empty session, user or item id; a non-integer id where the preset says ids
  are integers;
* a missing or unparseable timestamp (or Diginetica ``timeframe``), a non-finite number;
* a missing or empty event type (when the column is mapped);
* in JSONL, a line that is not valid JSON or not a JSON object.

With ``on_bad_rows="raise"`` (the default) the first bad row raises one
:class:`~sessionrec._errors.DataError` of the form ``file:line, field 'name': message``. With
``on_bad_rows="skip"`` bad rows are dropped, counted, logged on the ``sessionrec.data``
logger and reported in :class:`ReadReport` (``return_report=True``): nothing disappears
silently. An empty file, a file without events, missing columns and event types that no
map knows always raise.

Line numbers are 1-based physical lines of the file (the header is line 1). For Parquet,
which has no lines, the number is the 1-based row.

Modules, in the order a read goes through them: ``presets`` (public formats as data),
``planning`` (a preset merged with the caller's options; the file's columns found),
``reading`` (:func:`read_events`, which picks one reader per format: ``csv_reader``,
``jsonl_reader``, ``parquet_reader``, ``sessions_txt_reader``), ``canonical`` (source
columns -> canonical columns, every check vectorised), ``event_types`` (raw event types ->
view/cart/purchase), ``bad_rows`` (the checks' results,
where they are in the file, :class:`ReadReport`) and ``files`` (file access for the slow
paths).
"""

from sessionrec.data.events.bad_rows import BadRow, ReadReport
from sessionrec.data.events.event_types import CANONICAL_EVENT_TYPES
from sessionrec.data.events.presets import PRESETS, ROLES, Format, OnBadRows, Preset, TimeUnit
from sessionrec.data.events.reading import read_events

__all__ = [
    "CANONICAL_EVENT_TYPES",
    "PRESETS",
    "ROLES",
    "BadRow",
    "Format",
    "OnBadRows",
    "Preset",
    "ReadReport",
    "TimeUnit",
    "read_events",
]
