"""csvdata: which columns are read, how labels are checked, and the one-line errors."""

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anne_host.csvdata import CSVError, Samples, load, parse_row
from anne_host.errors import AnneError

IRIS = Path(__file__).resolve().parents[2] / "models" / "iris.csv"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = ["setosa", "versicolor", "virginica"]


@pytest.fixture
def csv_file(tmp_path):
    """Write ``text`` to a CSV file and return its path."""

    def write(text, name="data.csv", encoding="utf-8"):
        path = tmp_path / name
        path.write_bytes(text.encode(encoding))
        return path

    return write


def error(path_or_call, *args, **kw):
    """The message of the CSVError that load raises, checked to be one line."""
    with pytest.raises(CSVError) as info:
        load(path_or_call, *args, **kw)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- reading the real data file ------------------------------------------------

@pytest.mark.skipif(not IRIS.exists(), reason="models/iris.csv is not in this checkout")
def test_iris_features_by_name_and_species_label():
    s = load(IRIS, 4, features=FEATURES, labels=SPECIES, need_labels=True)
    assert isinstance(s, Samples)
    assert s.x.shape == (150, 4) and s.x.dtype == np.float32
    assert s.columns == FEATURES and s.label_column == "species"
    assert s.x[0].tolist() == pytest.approx([5.1, 3.5, 1.4, 0.2])
    assert s.y[0] == "setosa" and s.y[-1] == "virginica"
    assert sorted(set(s.y)) == SPECIES
    assert s.lines[0] == 2 and s.lines[-1] == 151 and len(s) == 150
    assert s.path == str(IRIS)


# --- choosing feature columns ------------------------------------------------------

def test_features_by_name_in_the_models_order(csv_file):
    path = csv_file("id,b,species,a\n7,2.5,x,1.5\n")
    s = load(path, 2, features=["a", "b"])
    assert s.x.tolist() == [[1.5, 2.5]]
    assert s.columns == ["a", "b"]
    assert s.label_column == "species" and s.y == ["x"]


def test_feature_names_match_in_any_case_and_with_spaces(csv_file):
    s = load(csv_file(" A , B \n1,2\n"), 2, features=["a", "b"])
    assert s.columns == ["A", "B"] and s.x.tolist() == [[1, 2]]


def test_a_header_with_some_of_the_feature_names_is_an_error_naming_the_missing(csv_file):
    # Only "a" is a feature name: "x" is not taken in place of "b".
    message = error(csv_file("x,a,label\n1,2,p\n"), 2, features=["a", "b"])
    assert "no column named 'b'" in message and "x, a, label" in message and "--columns" in message


def test_a_header_with_none_of_the_feature_names_is_read_by_position(csv_file):
    s = load(csv_file("p,q,label\n1,2,z\n"), 2, features=["a", "b"])
    assert s.columns == ["p", "q"] and s.chosen == "position" and s.y == ["z"]


def test_by_position_every_column_but_a_named_label_column(csv_file):
    s = load(csv_file("class,f1,f2\nq,1,2\n"), 2)
    assert s.columns == ["f1", "f2"] and s.y == ["q"] and s.x.tolist() == [[1, 2]]
    assert s.chosen == "position"


def test_too_few_columns(csv_file):
    message = error(csv_file("a,b\n1,2\n"), 3)
    assert "data.csv" in message and "3 inputs" in message and "2 columns" in message


def test_a_leading_id_column_is_not_taken_as_a_feature(csv_file):
    # The user's file: an id, the four measurements, the species.
    message = error(csv_file("id,a,b,c,d,species\n1,5.1,3.5,1.4,0.2,setosa\n"), 4)
    assert "5 columns besides the label column 'species'" in message and "4 inputs" in message
    assert "--columns" in message and "id, a, b, c, d, species" in message


def test_more_columns_than_inputs_and_a_label_is_an_error(csv_file):
    message = error(csv_file("a,b,c,d,e,f\n1,2,3,4,5,6\n"), 4)
    assert "6 columns" in message and "4 inputs" in message and "--columns" in message


@pytest.mark.parametrize("columns", [["b", "d"], ["B", "3"], [1, 3]])
def test_columns_chosen_by_name_or_index(csv_file, columns):
    s = load(csv_file("id,b,c,d,species\n7,1,2,3,x\n"), 2, columns=columns)
    assert s.columns == ["b", "d"] and s.x.tolist() == [[1, 3]] and s.chosen == "columns"
    assert s.label_column == "species" and s.y == ["x"]


def test_columns_override_the_models_feature_names(csv_file):
    s = load(csv_file("a,b,x,y\n1,2,3,4\n"), 2, features=["a", "b"], columns=["x", "y"])
    assert s.x.tolist() == [[3, 4]] and s.label_column is None


def test_a_column_named_like_a_label_chosen_as_a_feature_is_not_the_label(csv_file):
    s = load(csv_file("y,x,out\n1,2,k\n"), 2, columns=["x", "y"])
    assert s.columns == ["x", "y"] and s.label_column == "out"


@pytest.mark.parametrize("columns, message", [
    (["a"], "--columns names 1 column; the model takes 2 inputs"),
    (["a", "nope"], "no column named 'nope'"),
    (["a", "9"], "no column 9"),
    (["a", " "], "an empty column name"),
])
def test_columns_that_do_not_fit(csv_file, columns, message):
    assert message in error(csv_file("a,b,label\n1,2,x\n"), 2, columns=columns)


def test_describe_says_which_columns_were_read_and_how(csv_file):
    s = load(csv_file("sl,sw,species\n1,2,x\n"), 2, features=["sw", "sl"])
    assert s.describe() == ("features from columns sw, sl (matched by the model's feature names); "
                            "labels from column species")


def test_semicolon_file_gets_a_hint(csv_file):
    message = error(csv_file("a;b;c\n1;2;3\n"), 2)
    assert "';'" in message


# --- finding the label column -------------------------------------------------------

@pytest.mark.parametrize("name", ["label", "Class", "SPECIES", "target", "y"])
def test_label_column_found_by_name(csv_file, name):
    s = load(csv_file("%s,a,b\nk,1,2\n" % name), 2)
    assert s.label_column == name and s.y == ["k"]


def test_last_column_is_the_label_when_there_are_more_columns(csv_file):
    s = load(csv_file("a,b,kind\n1,2,k\n"), 2)
    assert s.label_column == "kind" and s.y == ["k"]


def test_no_label_column_without_extra_columns(csv_file):
    s = load(csv_file("a,b\n1,2\n3,4\n"), 2)
    assert s.y is None and s.label_column is None
    assert s.x.tolist() == [[1, 2], [3, 4]] and s.lines == [2, 3]


def test_need_labels_makes_a_missing_label_column_an_error(csv_file):
    message = error(csv_file("a,b\n1,2\n"), 2, need_labels=True)
    assert "data.csv" in message and "label" in message


def test_a_feature_named_like_a_label_is_not_the_label(csv_file):
    s = load(csv_file("y,x,out\n1,2,k\n"), 2, features=["x", "y"])
    assert s.columns == ["x", "y"] and s.label_column == "out"


@pytest.mark.parametrize("choice", ["kind", "KIND", 0, "0", -3])
def test_label_column_chosen_by_name_or_index(csv_file, choice):
    s = load(csv_file("kind,a,b\nk,1,2\n"), 2, label_column=choice)
    assert s.label_column == "kind" and s.y == ["k"]
    assert s.columns == ["a", "b"]


def test_unknown_label_column_name(csv_file):
    message = error(csv_file("a,b,c\n1,2,3\n"), 2, label_column="kind")
    assert "'kind'" in message and "a, b, c" in message


def test_label_column_index_out_of_range(csv_file):
    message = error(csv_file("a,b,c\n1,2,3\n"), 2, label_column=5)
    assert "5" in message and "3 columns" in message


def test_label_column_that_is_a_feature(csv_file):
    message = error(csv_file("a,b,c\n1,2,3\n"), 2, features=["a", "b"], label_column="b")
    assert "'b'" in message and "both" in message


# --- labels ---------------------------------------------------------------------------

def test_labels_are_stripped_strings(csv_file):
    s = load(csv_file("a,label\n1, setosa \n2,virginica\n"), 1, labels=SPECIES)
    assert s.y == ["setosa", "virginica"]


def test_unknown_label_names_file_line_label_and_known_labels(csv_file):
    path = csv_file("a,label\n1,setosa\n2,rose\n")
    message = error(path, 1, labels=SPECIES)
    assert message.startswith("%s:3:" % path)
    assert "'rose'" in message and "setosa, versicolor, virginica" in message


def test_integer_labels_are_class_indices(csv_file):
    s = load(csv_file("a,label\n1,0\n2,2\n3,1\n"), 1, labels=SPECIES)
    assert s.y == ["setosa", "virginica", "versicolor"]


def test_class_index_out_of_range(csv_file):
    path = csv_file("a,label\n1,0\n2,3\n")
    message = error(path, 1, labels=SPECIES)
    assert message.startswith("%s:3:" % path) and "'3'" in message and "0 to 2" in message


def test_integer_labels_of_the_model_are_names_not_indices(csv_file):
    # The model's labels are "1" and "2": a "0" in the file is unknown, never an index.
    path = csv_file("a,label\n1,1\n2,0\n")
    assert "'0'" in error(path, 1, labels=["1", "2"])
    assert load(csv_file("a,label\n1,2\n2,1\n", "ok.csv"), 1, labels=["1", "2"]).y == ["2", "1"]


def test_mixed_label_names_and_indices(csv_file):
    path = csv_file("a,label\n1,setosa\n2,1\n")
    message = error(path, 1, labels=SPECIES)
    assert message.startswith("%s:3:" % path) and "mixes" in message


@pytest.mark.parametrize("none", [None, []])
def test_labels_unchecked_without_model_labels(csv_file, none):
    # A model without names has [] for features and labels, which means "not given".
    s = load(csv_file("a,label\n1,anything\n"), 1, features=none, labels=none)
    assert s.y == ["anything"] and s.columns == ["a"]


def test_empty_label(csv_file):
    path = csv_file("a,label\n1,x\n2,\n")
    message = error(path, 1)
    assert message.startswith("%s:3:" % path) and "empty" in message


# --- numbers -----------------------------------------------------------------------------

def test_number_spellings(csv_file):
    s = load(csv_file("a,b,c,d,e\n-1,+2.5,.5,1e-3,3.\n"), 5)
    assert s.x[0].tolist() == pytest.approx([-1, 2.5, 0.5, 1e-3, 3])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(width=32), min_size=3, max_size=3))
def test_float32_values_written_by_python_read_back_exactly(tmp_path_factory, values):
    # Python writes nan and inf as "nan", "inf", "-inf": the spellings accepted.
    path = tmp_path_factory.mktemp("rt") / "values.csv"
    path.write_text("a,b,c\n" + ",".join(repr(v) for v in values) + "\n")
    got = load(path, 3).x[0]
    assert np.array_equal(got, np.array(values, dtype=np.float32), equal_nan=True)


def test_a_model_whose_feature_names_do_not_match_its_inputs_is_one_line(csv_file):
    # A model stored before upload checked the counts: the model is named, not the file.
    with pytest.raises(AnneError, match="the model names 1 features for its 2 inputs; export it again"):
        load(csv_file("a,b\n1,2\n"), 2, features=["a"])


def test_nan_and_inf_are_numbers(csv_file):
    s = load(csv_file("a,b,c,d\nnan,inf,-inf,NaN\n"), 4)
    a, b, c, d = s.x[0].tolist()
    assert math.isnan(a) and b == math.inf and c == -math.inf and math.isnan(d)


@pytest.mark.parametrize("cell", ["abc", "infinity", "1_000", "0x10", "1,5", "5 1", "--1"])
def test_not_a_number_is_quoted(csv_file, cell):
    path = csv_file('a,b\n1,2\n3,"%s"\n' % cell)
    message = error(path, 2)
    assert message.startswith("%s:3:" % path)
    assert repr(cell) in message and "'b'" in message and "not a number" in message


def test_beyond_float32(csv_file):
    message = error(csv_file("a\n1e39\n"), 1)
    assert "1e39" in message and "float32" in message


def test_empty_feature_cell(csv_file):
    path = csv_file("a,b\n1,2\n3,\n")
    message = error(path, 2)
    assert message.startswith("%s:3:" % path) and "'b'" in message and "empty" in message


def test_empty_cell_in_an_unused_column_is_fine(csv_file):
    s = load(csv_file("a,b,label,note\n1,2,x,\n"), 2, label_column="label", columns=["a", "b"])
    assert s.x.tolist() == [[1, 2]] and s.y == ["x"]


# --- file shape -----------------------------------------------------------------------

def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    message = error(path, 4)
    assert str(path) in message and "no such file" in message


def test_directory_is_not_readable(tmp_path):
    assert str(tmp_path) in error(tmp_path, 4)


@pytest.mark.parametrize("text", ["", "\n\n", " , \n"])
def test_empty_file(csv_file, text):
    message = error(csv_file(text), 2)
    assert "data.csv" in message and "empty" in message


def test_header_without_samples(csv_file):
    assert "no samples" in error(csv_file("a,b\n"), 2)


def test_numbers_in_the_first_row_mean_no_header(csv_file):
    s = load(csv_file("1,2\n3,4\n"), 2)
    assert s.x.tolist() == [[1, 2], [3, 4]] and s.lines == [1, 2]  # the first row is not lost
    assert not s.header and s.columns == ["0", "1"] and s.y is None


def test_a_file_without_header_and_with_text_labels(csv_file):
    s = load(csv_file("5.1,3.5,setosa\n4.9,3.0,setosa\n6.3,2.5,virginica\n"), 2, need_labels=True)
    assert s.lines == [1, 2, 3] and s.x.shape == (3, 2) and s.y == ["setosa", "setosa", "virginica"]
    assert s.label_column == "2" and "the file has no header row" in s.describe()


def test_a_header_over_numbers_is_a_header(csv_file):
    s = load(csv_file("id,a,b,label\n1,2,3,x\n4,5,6,y\n"), 2, columns=["a", "b"])
    assert s.header and s.lines == [2, 3]


def test_a_file_without_header_names_columns_by_index_in_errors(csv_file):
    path = csv_file("1,2,x\n3,oops,y\n")
    message = error(path, 2)
    assert message.startswith("%s:2: column 1 holds 'oops'" % path)
    assert "no header row" in error(csv_file("1,2,3,x\n4,5,6,y\n"), 2)


def test_label_column_by_name_needs_a_header(csv_file):
    assert "no column named 'species'" in error(csv_file("1,2,x\n3,4,y\n"), 2, label_column="species")


def test_row_with_the_wrong_number_of_cells(csv_file):
    path = csv_file("a,b,label\n1,2,x\n1,2\n")
    message = error(path, 2)
    assert message.startswith("%s:3:" % path) and "2 cells" in message and "3 columns" in message


def test_blank_lines_are_skipped_and_line_numbers_kept(csv_file):
    s = load(csv_file("a,b\n\n1,2\n,\n\n3,4\n\n"), 2)
    assert s.x.tolist() == [[1, 2], [3, 4]] and s.lines == [3, 6]


def test_byte_order_mark_and_crlf(csv_file):
    s = load(csv_file("sepal_length,label\r\n1,x\r\n", encoding="utf-8-sig"), 1,
             features=["sepal_length"])
    assert s.columns == ["sepal_length"] and s.y == ["x"]


def test_not_utf8(csv_file):
    path = csv_file("a,label\n1,\xe9t\xe9\n", encoding="latin-1")
    assert "UTF-8" in error(path, 1)


# --- numbers from the command line ---------------------------------------------------

def test_parse_row_words():
    row = parse_row(["5.9", "3.0", "5.1", "1.8"], 4)
    assert row.dtype == np.float32 and row.tolist() == pytest.approx([5.9, 3.0, 5.1, 1.8])


def test_parse_row_comma_separated():
    assert parse_row(["5.9,3.0,", "5.1", "1.8"], 4).tolist() == pytest.approx([5.9, 3.0, 5.1, 1.8])


@pytest.mark.parametrize("words, expected", [
    (["1", "2", "3"], "4 inputs, but 3 numbers"),
    (["1"], "4 inputs, but 1 number was"),
    (["1", "2", "x", "4"], "'x' is not a number"),
])
def test_parse_row_errors(words, expected):
    with pytest.raises(CSVError) as info:
        parse_row(words, 4)
    assert expected in str(info.value)
    assert info.value.exit_code == 3
