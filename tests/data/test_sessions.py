import numpy as np
import polars as pl
import pytest

from sessionrec._errors import DataError
from sessionrec.data.formats import read_sessions_txt, write_sessions_txt
from sessionrec.data.sessions import UNKNOWN, ItemVocab, SessionData, gather_ranges


def test_vocab_int_lookup_accepts_text_forms():
    vocab = ItemVocab([30, 10, 20])
    assert vocab.kind == "int"
    assert vocab.index(10) == 1
    assert vocab.index("20") == 2
    assert vocab.index("x") == UNKNOWN
    assert vocab.index(True) == UNKNOWN
    np.testing.assert_array_equal(vocab.encode(np.array([20, 5, 30])), [2, UNKNOWN, 0])
    np.testing.assert_array_equal(vocab.encode(["10", 99]), [1, UNKNOWN])
    assert vocab.decode([2, 0]) == [20, 30]


def test_vocab_int_lookup_rejects_non_ascii_digits():
    vocab = ItemVocab([2, 12])
    assert vocab.index("²") == UNKNOWN  # isdigit() is true, int() fails
    assert vocab.index("١٢") == UNKNOWN  # Arabic-Indic digits: int() would read 12


@pytest.mark.parametrize("text", ["--5", "-", "5-", "-+5", "+-5", "1-2"])
def test_vocab_int_lookup_treats_malformed_integers_as_unknown(text):
    # Regression: "--5" passed the lstrip("-").isdigit() check and int() raised ValueError.
    vocab = ItemVocab([5, -5, 12])
    assert vocab.index(text) == UNKNOWN
    np.testing.assert_array_equal(vocab.encode([text, "-5", " 12 "]), [UNKNOWN, 1, 2])


def test_recommend_ignores_a_malformed_integer_id():
    # Regression: recommend([["--5"]]) on an integer vocabulary raised ValueError.
    from sessionrec.models.popular import Pop

    train = SessionData.from_sequences([[5, 7], [7, 9], [7]])
    model = Pop().fit(train)
    assert model.recommend([["--5"]], k=2) == model.recommend([[]], k=2)
    assert [r.item_id for r in model.recommend([["--5", "5"]], k=1)[0]] == [7]


def test_vocab_str_lookup_accepts_ints():
    vocab = ItemVocab(["a", "7"])
    assert vocab.kind == "str"
    assert vocab.index(7) == 1
    assert "a" in vocab and "b" not in vocab


def test_vocab_rejects_duplicates():
    with pytest.raises(DataError, match="duplicate"):
        ItemVocab([1, 2, 1])
    with pytest.raises(DataError, match="duplicate"):
        ItemVocab(["a", "a"])


def test_from_sequences_and_accessors():
    data = SessionData.from_sequences([["a", "b", "a"], ["c"]], times=[[1, 2, 3], [9]])
    assert data.n_sessions == 2 and data.n_events == 4 and data.n_items == 3
    np.testing.assert_array_equal(data.lengths, [3, 1])
    assert data.vocab.decode(data.session(0)) == ["a", "b", "a"]
    np.testing.assert_array_equal(data.item_counts(), [2, 1, 1])
    np.testing.assert_array_equal(data.start_times(), [1, 9])
    np.testing.assert_array_equal(data.end_times(), [3, 9])
    np.testing.assert_array_equal(data.session_index(), [0, 0, 0, 1])


def test_arrays_are_read_only_and_caller_arrays_untouched():
    items = np.array([0, 1, 0], dtype=np.int32)
    data = SessionData(offsets=np.array([0, 3]), items=items, vocab=ItemVocab([5, 6]))
    with pytest.raises(ValueError):
        data.items[0] = 1
    items[0] = 1  # the caller's array stays writeable
    assert items.flags.writeable


def test_invalid_arrays_rejected():
    vocab = ItemVocab([1, 2])
    with pytest.raises(DataError, match="offsets"):
        SessionData(offsets=np.array([0, 5]), items=np.array([0, 1]), vocab=vocab)
    with pytest.raises(DataError, match="item indices"):
        SessionData(offsets=np.array([0, 2]), items=np.array([0, 2]), vocab=vocab)
    with pytest.raises(DataError, match="not in the vocabulary"):
        SessionData.from_sequences([[3]], vocab=vocab)


def test_subset_and_with_vocab():
    data = SessionData.from_sequences([[1, 2], [3], [2, 4, 1]], times=[[1, 2], [3], [4, 5, 6]])
    sub = data.subset([2, 0])
    assert [sub.vocab.decode(s) for s in sub] == [[2, 4, 1], [1, 2]]
    np.testing.assert_array_equal(sub.times, [4, 5, 6, 1, 2])
    masked = data.subset(np.array([False, True, False]))
    assert masked.vocab.decode(masked.items) == [3]
    other = data.with_vocab(ItemVocab([2, 1]))
    assert [other.vocab.decode(s) for s in other] == [[1, 2], [], [2, 1]]
    np.testing.assert_array_equal(other.times, [1, 2, 4, 6])


def test_from_frame_orders_sessions_and_clicks_by_time():
    frame = pl.DataFrame(
        {
            "session_id": [7, 7, 3, 3, 7],
            "item_id": ["a", "b", "c", "a", "z"],
            "timestamp": [5.0, 1.0, 0.0, 2.0, 3.0],
            "event_type": ["view", "view", "cart", "view", "view"],
        }
    )
    data = SessionData.from_frame(frame)
    assert data.session_ids.tolist() == [3, 7]
    assert [data.vocab.decode(s) for s in data] == [["c", "a"], ["b", "z", "a"]]
    np.testing.assert_array_equal(data.times, [0, 2, 1, 3, 5])
    assert data.event_types == ("cart", "view")
    np.testing.assert_array_equal(data.types, [0, 1, 1, 1, 1])
    back = SessionData.from_frame(data.to_frame())
    assert [back.vocab.decode(s) for s in back] == [["c", "a"], ["b", "z", "a"]]
    assert frame["item_id"].to_list() == ["a", "b", "c", "a", "z"]  # caller frame untouched


def test_from_frame_without_time_keeps_file_order():
    frame = pl.DataFrame({"session_id": [2, 1, 2, 1], "item_id": [10, 11, 12, 13]})
    data = SessionData.from_frame(frame)
    assert [data.vocab.decode(s) for s in data] == [[10, 12], [11, 13]]
    with pytest.raises(DataError, match="no 'item_id' column"):
        SessionData.from_frame(pl.DataFrame({"session_id": [1]}))


def testgather_ranges():
    got = gather_ranges(np.array([5, 0, 2, 9]), np.array([2, 0, 3, 1]))
    np.testing.assert_array_equal(got, [5, 6, 2, 3, 4, 9])
    assert gather_ranges(np.array([3]), np.array([0])).size == 0


def test_sessions_txt_round_trip(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("3 1 2\n2 2\n\n")
    data = read_sessions_txt(path)
    assert data.vocab.kind == "int"
    assert [data.vocab.decode(s) for s in data] == [[3, 1, 2], [2, 2]]
    out = write_sessions_txt(data, tmp_path / "out.txt")
    assert out.read_text() == "3 1 2\n2 2\n"


def test_sessions_txt_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("1 2\n\n3\n")
    with pytest.raises(DataError, match=r"bad.txt:2: empty session"):
        read_sessions_txt(path)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        read_sessions_txt(empty)
    vocab_path = tmp_path / "v.txt"
    vocab_path.write_text("1 2\n2 9\n")
    with pytest.raises(DataError, match=r"v.txt:2: item '9' is not in the vocabulary"):
        read_sessions_txt(vocab_path, vocab=ItemVocab([1, 2]))


# ------------------------------------------- from_frame: fast path == general path
def _same_data(a: SessionData, b: SessionData) -> None:
    assert a.vocab == b.vocab
    for name in ("offsets", "items", "times", "types", "session_ids"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None and y is None) or np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), (
            name
        )
    assert a.event_types == b.event_types


def _blocked_frame(seed: int, *, text_ids: bool, sorted_ids: bool) -> pl.DataFrame:
    """Sessions as contiguous, time-ordered blocks, with many equal times across sessions."""
    rng = np.random.default_rng(seed)
    n_sessions = int(rng.integers(1, 60))
    lengths = rng.integers(1, 6, n_sessions)
    ids = rng.permutation(1000)[:n_sessions]
    session = np.repeat(np.sort(ids) if sorted_ids else ids, lengths)
    start = rng.integers(0, 20, n_sessions).astype(float)
    times = np.repeat(start, lengths) + np.concatenate(
        [np.sort(rng.integers(0, 3, k)).astype(float) for k in lengths]
    )
    items = rng.integers(0, 15, session.size) * 7919  # sparse integer ids
    return pl.DataFrame(
        {
            "session_id": session,
            "item_id": [f"i{x}" for x in items] if text_ids else items,
            "timestamp": times,
            "event_type": rng.choice(["view", "cart", "buy"], session.size),
        }
    )


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("text_ids", [True, False])
@pytest.mark.parametrize("sorted_ids", [True, False])
def test_from_frame_fast_path_equals_general_path(seed, text_ids, sorted_ids):
    frame = _blocked_frame(seed, text_ids=text_ids, sorted_ids=sorted_ids)
    enum = pl.Enum(["view", "cart", "buy", "gone"])
    variants = [
        frame,
        frame.drop("timestamp"),
        frame.drop("event_type"),
        frame.with_columns(pl.col("event_type").cast(enum)),
        frame.with_columns(pl.col("timestamp").cast(pl.Int64)),
        # a missing event type: code 0 on both paths, whatever the column's dtype
        frame.with_columns(pl.when(pl.int_range(pl.len()) == 1).then(None).otherwise("event_type")),
        frame.with_columns(
            pl.when(pl.int_range(pl.len()) == 0).then(None).otherwise("event_type").cast(enum)
        ),
    ]
    for variant in variants:
        fast = SessionData._from_blocks(variant, None)
        assert fast is not None
        general = SessionData._from_any_order(variant, None)
        _same_data(fast, general)
        _same_data(SessionData.from_frame(variant), general)
        half = variant.head(variant.height // 2 + 1)
        fast = SessionData._from_blocks(half, general.vocab)
        assert fast is not None
        _same_data(fast, SessionData._from_any_order(half, general.vocab))


def test_from_frame_takes_the_general_path_when_not_in_blocks():
    scattered = pl.DataFrame(
        {"session_id": [1, 2, 1], "item_id": [5, 6, 7], "timestamp": [0.0, 1.0, 2.0]}
    )
    backwards = pl.DataFrame({"session_id": [1, 1], "item_id": [5, 6], "timestamp": [2.0, 1.0]})
    nan_time = backwards.with_columns(timestamp=pl.Series([np.nan, 1.0]))
    null_session = scattered.with_columns(session_id=pl.Series([None, 2, 2], dtype=pl.Int64))
    for other in (scattered, backwards, nan_time, null_session, scattered.head(0)):
        assert SessionData._from_blocks(other, None) is None
        _same_data(SessionData.from_frame(other), SessionData._from_any_order(other, None))
    data = SessionData.from_frame(nan_time)
    assert data.vocab.decode(data.items) == [6, 5]  # NaN sorts last


def test_from_frame_fast_path_reports_unknown_items():
    vocab = ItemVocab([1, 2])
    frame = pl.DataFrame(
        {"session_id": [5, 5, 4], "item_id": [1, 3, 2], "timestamp": [3.0, 4.0, 0.0]}
    )
    assert SessionData._from_blocks(frame.head(1), vocab) is not None
    with pytest.raises(DataError, match="item id 3 is not in the vocabulary"):
        SessionData.from_frame(frame, vocab)
    with pytest.raises(DataError, match="item id 3 is not in the vocabulary"):
        SessionData._from_any_order(frame, vocab)


def test_to_frame_and_compact_vocab():
    frame = _blocked_frame(3, text_ids=True, sorted_ids=False)
    data = SessionData.from_frame(frame)
    back = data.to_frame()
    assert back.columns == ["session_id", "item_id", "timestamp", "event_type"]
    assert back.schema["event_type"] == pl.String
    _same_data(SessionData.from_frame(back), data)
    part = data.subset(np.arange(1, data.n_sessions, 2))
    _same_data(part.compact_vocab(), SessionData.from_frame(part.to_frame()))
    assert SessionData.from_sequences([[1, 2]]).to_frame()["session_id"].to_list() == [0, 0]


# ---------------------------------------------------------- write_sessions_txt
def _sessions_txt_reference(data: SessionData) -> str:
    """The per-session loop write_sessions_txt replaced: the expected text."""
    ids = data.vocab.ids[data.items].astype(str)
    return "".join(
        " ".join(ids[data.offsets[s] : data.offsets[s + 1]]) + "\n" for s in range(len(data))
    )


@pytest.mark.parametrize("seed", range(20))
def test_write_sessions_txt_text_is_unchanged(seed, tmp_path):
    rng = np.random.default_rng(seed)
    n_sessions = int(rng.integers(0, 12))
    empty_share = [0.0, 0.3, 1.0][seed % 3]  # empty sessions are empty lines
    lengths = np.where(rng.random(n_sessions) < empty_share, 0, rng.integers(1, 5, n_sessions))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = np.arange(10) * -13 if seed % 2 else np.array([f"é{i}" for i in range(10)])
    data = SessionData(
        offsets=offsets, items=rng.integers(0, 10, offsets[-1]), vocab=ItemVocab(ids)
    )
    path = tmp_path / "sub" / "s.txt"
    path.parent.mkdir()
    path.write_text("old content\n")
    assert write_sessions_txt(data, path) == path
    assert path.read_bytes() == _sessions_txt_reference(data).encode()
    assert [p.name for p in path.parent.iterdir()] == ["s.txt"]  # no temporary file left
