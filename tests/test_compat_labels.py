"""Labels files as retrain and the classic scripts wrote them, and those that cannot be read."""
import os

import pytest

from compat.labels import read_labels
from retrain.common.errors import ToolError


def test_labels_are_read_one_a_line_blank_ones_kept(tmp_path):
    path = tmp_path / 'labels.txt'
    path.write_bytes('daisy\r\n\nrosé\n'.encode('utf-8-sig'))
    assert read_labels(str(path)) == ['daisy', '', 'rosé']


def test_a_folder_given_as_labels_file_is_one_line_naming_it(tmp_path):
    with pytest.raises(ToolError) as error:
        read_labels(str(tmp_path))
    assert str(error.value) == f'cannot read labels file {tmp_path}: Is a directory'


@pytest.mark.skipif(os.name == 'nt' or os.geteuid() == 0, reason='needs POSIX permissions '
                    'that the user does not override')
def test_an_unreadable_labels_file_is_one_line_naming_it(tmp_path):
    path = tmp_path / 'labels.txt'
    path.write_text('daisy\n', encoding='utf-8')
    path.chmod(0)
    with pytest.raises(ToolError) as error:
        read_labels(str(path))
    assert str(error.value) == f'cannot read labels file {path}: Permission denied'


@pytest.mark.parametrize('lines', [['a', 'b', ''], ['a', '', 'b'], ['a', 'b', '', ''], ['a', 'b']])
def test_crlf_files_give_the_labels_lf_files_give(tmp_path, lines):
    """A blank line is a label (classic names of non-ASCII folders, which sort last), at the end
    too, whatever the line ends; only the final line end ends no label."""
    for end in ('\n', '\r\n'):
        path = tmp_path / 'labels.txt'
        path.write_bytes(''.join(line + end for line in lines).encode('utf-8'))
        assert read_labels(str(path)) == lines, repr(end)
