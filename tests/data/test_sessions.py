import numpy as np
import polars as pl
import pytest

from sessionrec._errors import DataError
from sessionrec.data.formats import read_sessions_txt, write_sessions_txt
from sessionrec.data.sessions import UNKNOWN, ItemVocab, SessionData, _gather_ranges


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


def test_gather_ranges():
    got = _gather_ranges(np.array([5, 0, 2, 9]), np.array([2, 0, 3, 1]))
    np.testing.assert_array_equal(got, [5, 6, 2, 3, 4, 9])
    assert _gather_ranges(np.array([3]), np.array([0])).size == 0


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
