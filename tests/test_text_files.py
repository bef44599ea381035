"""One reader for users' text files: every bad file is a named error saying what is wrong."""

import pytest

from mobileseg.text_files import TextFileError, read_text


class SiteError(ValueError):
    """A command's own error type."""


def test_text_that_is_not_utf8_names_the_file_the_byte_and_the_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes("a.png a_mask.png\n".encode() + "b\u00e9.png b_mask.png\n".encode("latin-1"))
    with pytest.raises(TextFileError) as error:
        read_text(path)
    assert str(error.value) == f"{path}: not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8"
    assert (error.value.path, error.value.problem) == (path, "not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8")


def test_the_caller_chooses_the_error_type(tmp_path):
    with pytest.raises(SiteError, match=r"nowhere\.yaml: cannot read it: No such file or directory"):
        read_text(tmp_path / "nowhere.yaml", error=SiteError)
    with pytest.raises(SiteError, match=r"a folder\.yaml: cannot read it: Is a directory"):
        (tmp_path / "a folder.yaml").mkdir()
        read_text(tmp_path / "a folder.yaml", error=SiteError)


def test_a_file_over_the_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"x" * 2000)
    with pytest.raises(TextFileError, match=r"huge\.yaml: 2000 bytes, more than the 1000 a file of this kind may have"):
        read_text(path, max_bytes=1000)


def test_utf8_with_a_byte_order_mark_reads_without_it(tmp_path):
    path = tmp_path / "classes.yaml"
    path.write_bytes("\ufeffnames: [fond, f\u00eate]\n".encode())
    assert read_text(path) == "names: [fond, f\u00eate]\n"
