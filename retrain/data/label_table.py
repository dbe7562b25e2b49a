"""Labels given in a table: a UTF-8 CSV of `path/relative/to/image_dir.jpg,labels` rows, read the
same way for --multi_label (`label1;label2`) and single-label runs (one label a row). Cells
separated by tabs (or, single-label, semicolons) are read too, where the first line shows it.

A header row is recognized by its first cell not being an image file name. Table paths are
normalized (`./a/b.jpg`, `a/../b.jpg`, Windows backslashes, accents composed or decomposed as
macOS writes them, an absolute path inside image_dir); a path that leaves image_dir names no
image of it and is skipped with a warning. An image that no row names, and a row that names no
image, are each named in a warning; a table none of whose rows names an image is refused (it
was written for other paths). Labels are compared composed (NFC) too; labels that differ only
in case are two labels, with a warning. How several rows for one image combine is the caller's
rule (`Combine`): merged for multi-label runs, refused where they disagree for single-label
ones.

An image's key (the split hashes it) is its path relative to image_dir, written with `/`: the
split does not depend on where the folder lies, and adding images never moves another.
"""
import csv
import io
import itertools
import os
import posixpath
import re
import unicodedata
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from absl import logging

from retrain.common import fileio
from retrain.common.errors import ConfigError, ToolError
from retrain.common.places import is_local
from retrain.data import image_files

# Cell separators, in the order preferred on a tie (_delimiter); multi-label tables take no
# ';', which separates their labels.
DELIMITERS = (',', '\t', ';')
MULTI_LABEL_DELIMITERS = (',', '\t')
_SNIFFED_LINES = 100  # Lines that choose the delimiter.
# A Windows absolute path, once its backslashes are slashes: `C:/photos/a.jpg`.
_DRIVE = re.compile(r'^[A-Za-z]:/')
# (line, labels) of each row that names one image.
Rows = List[Tuple[int, Set[str]]]
# The labels of an image from (table path, image key, its rows); raises ConfigError to refuse.
Combine = Callable[[str, str, Rows], Set[str]]


def merged(table: str, key: str, rows: Rows) -> Set[str]:
    """Every label any row gives the image, with a warning where rows disagree (multi-label)."""
    if len({frozenset(labels) for _, labels in rows}) > 1:
        logging.warning('%s gives %s different labels on lines %s: it gets all of them', table,
                        key, ', '.join(str(line) for line, _ in rows))
    return set().union(*(labels for _, labels in rows))


def labelled_images(image_dir: str, table: str, row_form: str, combine: Combine,
                    delimiters: Sequence[str] = DELIMITERS) -> List[Tuple[str, str, Set[str]]]:
    """(location relative to image_dir, key, labels) of each image below image_dir that a row of
    `table` labels, in sorted folder order. `row_form` is what a row looks like, for errors;
    `delimiters`, the cell separators to try (_delimiter)."""
    rows = {key: combine(table, key, given)
            for key, given in _read(table, row_form, image_dir, delimiters).items()}
    # (location, key, the key as rows give it: composed) of each image.
    images = [(location, key, unicodedata.normalize('NFC', key))
              for location, key in ((path, split_key(path))
                                    for path in all_images(image_dir))]
    if not rows.keys() & {row for _, _, row in images}:
        raise ConfigError(f'no row of {table} names an image below {image_dir}: rows give each '
                          'image\'s path relative to that folder, extension included '
                          f'({row_form}; {len(rows)} row(s), {len(images)} image(s))')
    warn_of_case(table, set().union(*rows.values()))
    found = []
    used = set()
    for location, key, row in images:
        if row not in rows:
            logging.warning('No labels for %s: it is not in %s',
                            os.path.join(image_dir, location), table)
            continue
        used.add(row)
        if has_labels(rows[row], os.path.join(image_dir, location), table):
            found.append((location, key, rows[row]))
    for row in sorted(set(rows) - used):
        logging.warning('%s labels %s, which is not an image in %s', table, row, image_dir)
    return found


def warn_of_case(source: str, labels: Set[str]) -> None:
    """A warning naming the labels of `source` (a table, a folder of label files) that differ only
    in case: each is an output of its own, which the user likely meant as one."""
    by_case: Dict[str, List[str]] = {}
    for label in sorted(labels):
        by_case.setdefault(label.casefold(), []).append(label)
    for alike in by_case.values():
        if len(alike) > 1:
            logging.warning('%s: the labels %s differ only in case: they are %d labels',
                            source, ', '.join(map(repr, alike)), len(alike))


def _read(path: str, row_form: str, image_dir: str,
          delimiters: Sequence[str]) -> Dict[str, Rows]:
    """{image key: its rows} from the CSV (module doc)."""
    given: Dict[str, Rows] = {}
    for line, row in _rows(path, delimiters):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise ConfigError(f'{path} line {line}: expected {row_form} but got {len(row)} fields')
        image = _path_cell(row[0], image_dir)
        if not image:
            logging.warning('%s line %d names no image (its path is empty): skipped', path, line)
            continue
        if line == 1 and not image_files.has_image_extension(image):
            continue
        labels, key = _row_labels(row[1], path, line), _table_key(_inside(image, image_dir))
        if key is None:
            logging.warning('%s line %d names %s, which lies outside the image directory: rows '
                            'name images by their path relative to it', path, line, image)
            continue
        given.setdefault(key, []).append((line, labels))
    return given


def _path_cell(cell: str, image_dir: str) -> str:
    """The image path a cell gives: without the spaces around it (`a.jpg, daisy`), unless the
    name itself has them (a quoted `" a.jpg"` naming a file that begins with a space)."""
    stripped = cell.strip()
    if stripped != cell and os.path.lexists(os.path.join(image_dir, cell)):
        return cell
    return stripped


def _delimiter(text: str, path: str, delimiters: Sequence[str]) -> str:
    """Of `delimiters`, the one that splits the most of the first lines (up to _SNIFFED_LINES)
    into two cells, the earlier on a tie (the first if none does): spreadsheets save CSV with ';'
    where the comma is the decimal sign, and tables come as TSV, whose labels may hold commas
    (`a.jpg<TAB>Sun, flowers`: one line alone would call that CSV). A file another one reads was
    refused before (one cell a row): none is read otherwise."""
    lines = list(itertools.islice(io.StringIO(text, newline=''), _SNIFFED_LINES))
    splits = {}
    for delimiter in delimiters:
        try:
            splits[delimiter] = sum(len(row) == 2 for row in csv.reader(lines, delimiter=delimiter))
        except csv.Error:
            splits[delimiter] = 0
    delimiter = max(delimiters, key=lambda d: (splits[d], -delimiters.index(d)))
    if not splits[delimiter]:
        return delimiters[0]
    if delimiter != delimiters[0]:
        logging.info('Reading %s as a table of cells separated by %r', path, delimiter)
    return delimiter


def _rows(path: str, delimiters: Sequence[str]) -> Iterable[Tuple[int, List[str]]]:
    """(number of the line it starts on, cells) for each row of the CSV file at `path`.

    Lines end as the csv module reads them (newline=''): CR LF, LF or CR (old Macs), and a
    quoted cell may run over several lines, so rows and lines are counted apart."""
    text = fileio.read_text(path, 'labels file', not_text=ConfigError)  # Exit code 2.
    reader = csv.reader(io.StringIO(text, newline=''), delimiter=_delimiter(text, path, delimiters))
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise ConfigError(f'{path} line {line}: not CSV ({e})') from None
        yield line, row
        line = reader.line_num + 1


def _row_labels(cell: str, path: str, line: int) -> Set[str]:
    """The labels of a `label1;label2` cell. The labels file holds one label a line, so a label
    with a line break in it (a quoted cell spanning lines) is refused."""
    labels = {label_of(label) for label in cell.split(';') if label.strip()}
    for label in sorted(labels):
        if label.splitlines() != [label]:
            long = len(label) > 40  # Most likely a quote left open, taking in the lines after.
            shown = label[:40] + '...' if long else label
            raise ConfigError(f'{path} line {line}: the label {shown!r} holds a line break'
                              f'{" (a quote left open?)" if long else ""}; a label must be one '
                              'line of the labels file')
    return labels


def label_of(text: str) -> str:
    """A label as a table cell or a label file's line writes it: without the spaces around it,
    accents composed (NFC), so that a label typed on macOS (decomposed) and elsewhere is one."""
    return unicodedata.normalize('NFC', text.strip())


def _inside(image: str, image_dir: str) -> str:
    """A row's path relative to image_dir where it is an absolute path inside it; else as it
    is."""
    if not os.path.isabs(image) or not is_local(image_dir):
        return image
    try:
        relative = os.path.relpath(os.path.abspath(image), os.path.abspath(image_dir))
    except ValueError:  # Windows: another drive.
        return image
    return image if relative.split(os.sep)[0] == os.pardir else relative


def _table_key(path: str) -> Optional[str]:
    """The key of the image a table row names (`./a/b.jpg`, `a\\b.jpg` and `a/x/../b.jpg` are
    `a/b.jpg`), or None when the path leaves image_dir (`../b.jpg`, `/photos/b.jpg`, `C:\\b.jpg`).

    Accents are compared composed (NFC): macOS writes names decomposed, tables and other systems
    mostly composed. The image keeps its own name as its split key."""
    normal = posixpath.normpath(path.replace('\\', '/'))
    if normal in ('.', '..') or normal.startswith(('../', '/')) or _DRIVE.match(normal):
        return None
    return unicodedata.normalize('NFC', normal)


def has_labels(labels: Set[str], image: str, source: str) -> bool:
    """Whether `labels` holds any; a warning names the image that has none."""
    if not labels:
        logging.warning('No labels for %s in %s', image, source)
    return bool(labels)


def all_images(image_dir: str) -> Iterable[str]:
    """The image files below image_dir, relative to it, in sorted folder order."""
    if not image_dir or not image_files.isdir(image_dir):
        raise ToolError(f'image directory not found: {image_dir!r}')
    return image_files.find(image_dir)


def split_key(relative: str) -> str:
    """An image's identity as the split hashes it: its relative path, always with `/`."""
    return '/'.join(part for part in relative.replace('\\', '/').split('/') if part)
