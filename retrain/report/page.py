"""Writes a run report as DIR/report.json and one self-contained DIR/index.html.

The page opens from disk with no server and no network: styles, charts (inline SVG) and image
thumbnails (small JPEGs made with TensorFlow's image ops, inlined as data: URIs) are all in the
one file. Only the images the page shows get a thumbnail, and each list is capped, so the page
stays small (a few MB) whatever the size of the set; report.json holds every entry. The folder is
written beside its destination and renamed into place: a reader never sees half a report.

File names that are not UTF-8 (Python holds their bytes as lone surrogates, which no UTF-8 file
can carry) are shown as the log shows them, `bad\\xff.jpg`, in both files; thumbnails are read
from the real bytes.
"""
import base64
import concurrent.futures
import html
import json
import os
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import tensorflow as tf

from retrain.common import fileio
from retrain.common.errors import ConfigError, ToolError, error_summary
from retrain.common.logs import as_logged, readable
from retrain.data import image_io
from retrain.data.image_lists import path_bytes
from retrain.export.outputs import Trained

HTML = 'index.html'
JSON = 'report.json'
FILES = (HTML, JSON)
FORMAT = 'retrain-report/1'  # report.json's `format`: how a later run knows an old report.
THUMBNAIL_SIZE = 160  # Longest side in pixels; shown at 120.
SHOWN = 120  # At most this many entries of each list on the page.
GROUP_SHOWN = 6  # At most this many images of one duplicate group.
_THREADS = 4


def thumbnail(path: str) -> Optional[str]:
    """A data: URI of a small JPEG of the image at `path`; None if it cannot be read."""
    try:
        with tf.io.gfile.GFile(path_bytes(path), 'rb') as f:
            image = image_io.decode(tf.constant(f.read()))
    except (tf.errors.OpError, OSError):
        return None
    height, width = int(image.shape[0]), int(image.shape[1])
    scale = THUMBNAIL_SIZE / max(height, width)
    if scale < 1:
        resized = tf.image.resize(image, (max(1, round(height * scale)),
                                          max(1, round(width * scale))), antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
    jpeg = tf.io.encode_jpeg(image, quality=80).numpy()
    return 'data:image/jpeg;base64,' + base64.b64encode(jpeg).decode('ascii')


def _thumbnails(paths: Iterable[str]) -> Dict[str, Optional[str]]:
    unique = sorted(set(paths))
    with concurrent.futures.ThreadPoolExecutor(_THREADS) as pool:
        return dict(zip(unique, pool.map(thumbnail, unique)))


def _shown_paths(report: Dict) -> List[str]:
    return ([m['path'] for m in report['misclassified'][:SHOWN]]
            + [i['path'] for i in report['label_issues'][:SHOWN]]
            + [image['path'] for group in report['duplicate_details'][:SHOWN]
               for image in group['images'][:GROUP_SHOWN]])


def write(report_dir: str, report: Dict) -> None:
    """Writes report.json and index.html into the new folder `report_dir` (the run stages it
    beside the target and moves it into place with the other outputs). Any failure is one line
    naming the folder: the report must not end a finished run in a traceback."""
    try:
        page = render(report, _thumbnails(_shown_paths(report)))
        tf.io.gfile.makedirs(report_dir)
        with tf.io.gfile.GFile(os.path.join(report_dir, JSON), 'w') as f:
            f.write(json.dumps(as_logged(report), indent=1, ensure_ascii=False))
        with tf.io.gfile.GFile(os.path.join(report_dir, HTML), 'w') as f:
            f.write(page)
    except Exception as e:  # noqa: BLE001  A failing report must not cost the run a traceback.
        reason = (fileio.failure_reason(e) if isinstance(e, (tf.errors.OpError, OSError))
                  else f'{type(e).__name__}: {error_summary(e)}')
        raise ToolError(readable(f'cannot write the report {report_dir}: {reason}')) from None


def write_output(path: str, trained: Trained) -> None:
    write(path, trained.report)


def wrote_line(path: str, trained: Trained) -> str:
    return f'Wrote report to {os.path.join(path, HTML)}'


def check_output(report_dir: str) -> None:
    """Refuses, before any work, a --report_dir that this tool must not replace: a file, or a
    folder holding anything but an earlier report. The flag names the wrong place, whatever the
    run: a usage error (exit code 2), like other settings no run can use."""
    if not tf.io.gfile.exists(report_dir):
        return
    if not tf.io.gfile.isdir(report_dir):
        raise ConfigError(f'--report_dir {report_dir} is a file, not a folder')
    entries = set(tf.io.gfile.listdir(report_dir))
    if entries and not (entries <= set(FILES) and _is_report(report_dir)):
        raise ConfigError(f'--report_dir {report_dir} holds other files than a report; '
                          'choose a new or empty folder')


def _is_report(report_dir: str) -> bool:
    try:
        with tf.io.gfile.GFile(os.path.join(report_dir, JSON), 'r') as f:
            return json.load(f).get('format') == FORMAT
    except (tf.errors.OpError, ValueError, AttributeError):
        return False


def _E(text: str) -> str:
    """`text` for the page: escaped, and readable where it names a file that is not UTF-8."""
    return html.escape(readable(text))


_STYLE = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --accent:#2563eb;
        --bad:#c2410c; --good:#15803d; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:#102a43; color:#fff; padding:20px 32px; }
header h1 { margin:0 0 4px; font-size:22px; font-weight:600; }
header p { margin:0; color:#bcccdc; word-break:break-all; }
main { max-width:1200px; margin:0 auto; padding:20px 32px 48px; }
nav { display:flex; flex-wrap:wrap; gap:8px 18px; margin:0 0 18px; }
nav a { color:var(--accent); text-decoration:none; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 20px;
          margin:0 0 18px; }
h2 { margin:0 0 12px; font-size:17px; }
h2 small { color:var(--muted); font-weight:normal; font-size:13px; }
.cards { display:grid; grid-template-columns:repeat(auto-fill,minmax(125px,1fr)); gap:12px;
         margin:0 0 18px; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
.card b { display:block; font-size:22px; }
.card span { color:var(--muted); font-size:12px; }
.card.warn b { color:var(--bad); }
table { border-collapse:collapse; }
th, td { padding:4px 10px; border-bottom:1px solid var(--line); text-align:right; }
th:first-child, td:first-child { text-align:left; }
th { color:var(--muted); font-weight:600; font-size:12px; }
.confusion td { text-align:center; min-width:44px; border:1px solid #fff; }
.confusion td.diag { outline:2px solid var(--good); outline-offset:-2px; }
.grid { display:flex; flex-wrap:wrap; gap:10px; }
figure { margin:0; width:150px; background:var(--bg); border:1px solid var(--line);
         border-radius:6px; padding:6px; }
figure img { display:block; width:136px; height:110px; object-fit:contain; background:#fff;
             border-radius:4px; }
figure img[data-loaded=no] { outline:2px dashed var(--bad); }
figcaption { font-size:12px; margin-top:4px; overflow-wrap:anywhere; }
figcaption .path { color:var(--muted); font-size:11px; }
.groups { display:flex; flex-wrap:wrap; gap:12px; }
.group { border:1px solid var(--line); border-radius:8px; padding:8px; }
.group > div:first-child { margin-bottom:6px; }
.badge { display:inline-block; border-radius:10px; padding:0 8px; font-size:12px; margin-right:6px;
         background:#e0e7ff; color:#3730a3; }
.badge.bad { background:#ffedd5; color:var(--bad); }
.bad { color:var(--bad); }
.good { color:var(--good); }
.muted { color:var(--muted); }
.charts { display:flex; flex-wrap:wrap; gap:24px; }
svg text { font-size:11px; fill:var(--muted); }
details pre { background:var(--bg); padding:10px; border-radius:6px; overflow:auto; }
"""

# Marks each image as loaded or not once the page has loaded (broken ones get a dashed outline).
_SCRIPT = ("window.addEventListener('load',function(){for(const i of document.images)"
           "{i.dataset.loaded=(i.complete&&i.naturalWidth>0)?'yes':'no';}});")


def _percent(value: Optional[float]) -> str:
    return '–' if value is None else f'{value * 100:.1f}%'


def _number(value: Optional[float]) -> str:
    return '–' if value is None else f'{value:.3f}'


def _mean(values: Iterable[Optional[float]]) -> Optional[float]:
    """The mean of the known values (None without any). A table's row of all test images
    averages its rows: `metrics` may measure a --test_batch_size draw (run_report.Tested)."""
    known = [value for value in values if value is not None]
    return sum(known) / len(known) if known else None


def _figure(thumbs: Dict[str, Optional[str]], path: str, caption: str) -> str:
    uri = thumbs.get(path)
    image = (f'<img src="{uri}" alt="{_E(os.path.basename(path))}">' if uri
             else '<div class="muted">(unreadable)</div>')
    return (f'<figure title="{_E(path)}">{image}<figcaption>{caption}'
            f'<div class="path">{_E(os.path.basename(path))}</div></figcaption></figure>')


def _more(total: int) -> str:
    return (f'<p class="muted">The first {SHOWN} of {total} are shown; report.json lists all.</p>'
            if total > SHOWN else '')


def _cards(report: Dict) -> str:
    details = report['duplicate_details']
    leaks = sum(d['spans_splits'] for d in details)
    conflicts = sum(d['spans_classes'] for d in details)
    metrics = report['metrics']
    if report.get('kind') == 'multi_label':
        tested = f"(N={metrics['test_images']})"
        first = [(_number(metrics.get('test_map')), f'test mAP {tested}', False),
                 (_number(metrics.get('test_macro_f1')), f'test macro F1 {tested}', False),
                 (_percent(metrics.get('test_exact_match')), f'test exact match {tested}', False),
                 (_percent(metrics['test_accuracy']), 'test (image, label) pairs right', False)]
        kind = 'labels', 'groups across label sets'
    else:
        first = [(_percent(metrics['test_accuracy']),
                  f"final test accuracy (N={metrics['test_images']})", False)]
        kind = 'classes', 'groups across classes'
    cards = first + [
        (sum(report['splits'].values()), 'images used', False),
        (len(report['labels']), kind[0], False),
        (len(details), 'duplicate groups', False),
        (leaks, 'groups across splits', leaks > 0),
        (conflicts, kind[1], conflicts > 0),
        (len(report['label_issues']), 'suspected label errors', bool(report['label_issues'])),
        (len(report['skipped']), 'unreadable files skipped', bool(report['skipped']))]
    return '<div class="cards">' + ''.join(
        f'<div class="card{" warn" if warn else ""}"><b>{_E(str(value))}</b>'
        f'<span>{label}</span></div>'
        for value, label, warn in cards) + '</div>'


def _classes(report: Dict) -> str:
    rows = ''.join(
        f"<tr><td>{_E(c['label'])}</td><td>{c['training']}</td><td>{c['validation']}</td>"
        f"<td>{c['testing']}</td><td>{_percent(c['test_accuracy'])}</td></tr>"
        for c in report['per_class'])
    split = report['splits']
    return ('<section id="classes"><h2>Classes</h2><table><tr><th>class</th><th>training</th>'
            '<th>validation</th><th>testing</th><th>test accuracy</th></tr>' + rows
            + f"<tr><th>all</th><th>{split['training']}</th><th>{split['validation']}</th>"
            f"<th>{split['testing']}</th><th>{_percent(_test_accuracy(report))}</th>"
            '</tr></table></section>')


def _test_accuracy(report: Dict) -> Optional[float]:
    """The accuracy on all test images (the confusion matrix's), None without any; `metrics`
    may measure a --test_batch_size draw (run_report.Tested)."""
    matrix = report['confusion_matrix']
    total = sum(map(sum, matrix))
    return sum(row[i] for i, row in enumerate(matrix)) / total if total else None


def _confusion(report: Dict) -> str:
    labels, matrix = report['labels'], report['confusion_matrix']
    head = ''.join(f'<th>{_E(label)}</th>' for label in labels)
    rows = []
    for i, (label, row) in enumerate(zip(labels, matrix)):
        total = sum(row) or 1
        cells = ''.join(
            f'<td class="{"diag" if i == j else ""}" style="background:rgba(37,99,235,'
            f'{0.08 + 0.8 * n / total if n else 0:.2f});'
            f'color:{"#fff" if n / total > 0.5 else "inherit"}">'
            f'{n}</td>' for j, n in enumerate(row))
        rows.append(f'<tr><th>{_E(label)}</th>{cells}</tr>')
    return ('<section id="confusion"><h2>Confusion matrix <small>test images: rows are the '
            'given class, columns the predicted one</small></h2><table class="confusion">'
            f'<tr><th></th>{head}</tr>{"".join(rows)}</table></section>')


def _axes(left: float, right: float, bottom: float, top: float, y_ends: Tuple[str, str],
          x_ends: Tuple[str, str], label_y: float) -> str:
    """The L of a chart's axes from (left, bottom) to `right` and `top`: the y axis' bottom and
    top values beside its ends, the x axis' first and last under its ends at `label_y`."""
    return (f'<line x1="{left:.1f}" y1="{bottom:.1f}" x2="{right:.1f}" y2="{bottom:.1f}" '
            'stroke="#cbd2d9"/>'
            f'<line x1="{left:.1f}" y1="{bottom:.1f}" x2="{left:.1f}" y2="{top:.1f}" '
            'stroke="#cbd2d9"/>'
            f'<text x="{left - 4:.1f}" y="{top + 4:.1f}" text-anchor="end">{y_ends[1]}</text>'
            f'<text x="{left - 4:.1f}" y="{bottom + 4:.1f}" text-anchor="end">{y_ends[0]}</text>'
            f'<text x="{left:.1f}" y="{label_y}">{x_ends[0]}</text>'
            f'<text x="{right:.1f}" y="{label_y}" text-anchor="end">{x_ends[1]}</text>')


def _chart(title: str, series: Sequence[Tuple[str, str, List[Tuple[int, float]]]]) -> str:
    """An SVG line chart of (name, colour, [(step, value)]) series."""
    width, height, pad = 460, 220, 40
    points = [p for _, _, values in series for p in values]
    if not points:
        return ''
    steps = [s for s, _ in points]
    values = [v for _, v in points]
    x0, x1 = min(steps), max(steps) or 1
    y0, y1 = min(0.0, min(values)), max(values) or 1.0
    def x(step): return pad + (step - x0) / ((x1 - x0) or 1) * (width - pad - 10)
    def y(value): return height - pad + 10 - (value - y0) / ((y1 - y0) or 1) * (height - pad - 10)
    lines = ''.join(
        f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="'
        + ' '.join(f'{x(s):.1f},{y(v):.1f}' for s, v in values) + '"/>'
        for _, colour, values in series)
    legend = ''.join(f'<text x="{pad + 110 * k}" y="14" style="fill:{colour}">&#9632; {name}</text>'
                     for k, (name, colour, _) in enumerate(series))
    axes = _axes(pad, width - 10, y(y0), y(y1), (f'{y0:.2g}', f'{y1:.2g}'),
                 (f'step {x0}', str(x1)), height - 8)
    return (f'<div><div><b>{_E(title)}</b></div><svg width="{width}" height="{height}" '
            f'role="img" aria-label="{_E(title)}">{axes}{lines}{legend}</svg></div>')


def _curves(report: Dict) -> str:
    curves = report['curves']
    charts = ''.join(
        _chart(title, [(run, colour, curves.get(run, {}).get(tag, []))
                       for run, colour in (('train', '#2563eb'), ('validation', '#ea580c'))])
        for tag, title in (('accuracy', 'Accuracy'), ('cross_entropy', 'Cross entropy')))
    body = (f'<div class="charts">{charts}</div>' if charts else
            '<p class="muted">No curves: this run wrote no summaries (--summaries_dir).</p>')
    return f'<section id="curves"><h2>Training curves</h2>{body}</section>'


def _reliability(bins: List[Dict]) -> str:
    """An SVG reliability diagram: each confidence bin's accuracy as a bar, the diagonal where
    confidence and accuracy agree."""
    size, pad = 220, 36
    def at(value): return pad + value * (size - pad - 10)
    def up(value): return size - pad + 10 - value * (size - pad - 10)
    bars = ''.join(
        f'<rect x="{at(b["low"]):.1f}" y="{up(b["accuracy"]):.1f}" '
        f'width="{at(b["high"]) - at(b["low"]) - 1:.1f}" height="{up(0) - up(b["accuracy"]):.1f}" '
        f'fill="#2563eb"><title>{b["images"]} images scored {b["low"]:.2f}-{b["high"]:.2f}: '
        f'{b["accuracy"]:.0%} right, mean score {b["confidence"]:.2f}</title></rect>'
        for b in bins)
    axes = (f'<line x1="{at(0)}" y1="{up(0)}" x2="{at(1)}" y2="{up(1)}" stroke="#ea580c" '
            'stroke-dasharray="4 3"/>'
            + _axes(at(0), at(1), up(0), up(1), ('0', '1'), ('score 0', '1'), size - 8))
    return (f'<svg width="{size}" height="{size}" role="img" aria-label="Reliability diagram">'
            f'{axes}{bars}</svg>')


def _confidence(report: Dict) -> str:
    """Whether the top score means what it says, and how often the model says unknown."""
    found = report['confidence']
    split = 'test' if found['split'] == 'testing' else 'validation'
    if not found['images']:
        body = '<p class="muted">No test or validation images to measure on.</p>'
    else:
        body = (f'<p>Reliability of the top score on the {found["images"]} {split} images: a '
                'bar per score range, as high as the share of its images the model got right; '
                'on the dashed line the score means what it says. Expected calibration error '
                f'{_number(found["expected_calibration_error"])} (--calibrate fits a '
                'temperature to lower it).</p>'
                + _reliability(found['bins']))
    judged = found['unknown']
    if judged is None:
        body += ('<p class="muted">This model carries no unknown judgement (fine-tuned runs do '
                 'not: their cached bottlenecks no longer match the module).</p>')
    else:
        body += ('<p>At the default operating point (unknown score above 0), the model calls '
                 f'{_percent(judged["validation_share"])} of the validation images and '
                 f'{_percent(judged["testing_share"])} of the test images unknown; '
                 'label_image --unknown_threshold moves it.</p>')
    return f'<section id="confidence"><h2>Confidence</h2>{body}</section>'


def _relabelled_images(section_id: str, title: str, items: List[Dict], to_key: str,
                       to_class: str, empty: str, thumbs: Dict[str, Optional[str]]) -> str:
    """Thumbnails captioned `given -> items[to_key]` and a score (misclassified, label issues)."""
    figures = ''.join(_figure(thumbs, i['path'],
                              f"{_E(i['given'])} → <span class=\"{to_class}\">{_E(i[to_key])}"
                              f"</span> {i['confidence']:.2f}")
                      for i in items[:SHOWN])
    body = f'<div class="grid">{figures}</div>{_more(len(items))}' if items else empty
    return f'<section id="{section_id}"><h2>{title}</h2>{body}</section>'


def _misclassified(report: Dict, thumbs: Dict[str, Optional[str]]) -> str:
    items = report['misclassified']
    return _relabelled_images(
        'misclassified', f'Misclassified test images <small>{len(items)}: given → predicted, '
        'score; most confident first</small>', items, 'predicted', 'bad',
        '<p class="good">None: every test image was classified correctly.</p>', thumbs)


def _duplicates(report: Dict, thumbs: Dict[str, Optional[str]]) -> str:
    groups = report['duplicate_details']
    blocks = []
    for group in groups[:SHOWN]:
        badges = ('<span class="badge">same bytes</span>' if group['exact']
                  else f'<span class="badge">near, cosine ≥ {group["similarity"]:.3f}</span>'
                  + (f'<span class="badge">{group["same_bytes"]} with the same bytes</span>'
                     if group.get('same_bytes') else ''))
        if group['spans_splits']:
            badges += '<span class="badge bad">training and validation/testing</span>'
        if group['spans_classes']:
            badges += '<span class="badge bad">different classes</span>'
        figures = ''.join(_figure(thumbs, i['path'],
                                  f"{_E(i['label'] if 'label' in i else _set(i['labels']))} · "
                                  f"{i['split']}")
                          for i in group['images'][:GROUP_SHOWN])
        blocks.append(f'<div class="group"><div>{badges}</div><div class="grid">{figures}</div>'
                      '</div>')
    body = (f'<div class="groups">{"".join(blocks)}</div>{_more(len(groups))}' if groups
            else '<p class="good">None found.</p>')
    return (f'<section id="duplicates"><h2>Duplicates <small>{len(groups)} group(s) of the same '
            'photo</small></h2>' + body + '</section>')


def _label_issues(report: Dict, thumbs: Dict[str, Optional[str]]) -> str:
    return _relabelled_images(
        'label-issues', 'Suspected label errors <small>given → suggested, cross-validated '
        'confidence; most suspicious first</small>', report['label_issues'], 'suggested', 'good',
        '<p class="good">None suspected.</p>', thumbs)


def _skipped(report: Dict) -> str:
    rows = ''.join(f"<tr><td>{_E(s['path'])}</td><td style=\"text-align:left\">{_E(s['reason'])}"
                   '</td></tr>' for s in report['skipped'])
    body = (f'<table><tr><th>file</th><th style="text-align:left">reason</th></tr>{rows}</table>'
            if rows else '<p class="good">None.</p>')
    return f'<section id="skipped"><h2>Unreadable files skipped</h2>{body}</section>'


def render(report: Dict, thumbs: Dict[str, Optional[str]]) -> str:
    """The page of `report`, with the thumbnails (data: URIs by path) it shows."""
    settings = report['settings']
    model = settings['architecture'] if settings['use_legacy_model'] else settings['tfhub_module']
    multi_label = report.get('kind') == 'multi_label'
    first = ((('labels', 'Labels'), ('co-occurrence', 'Labels together')) if multi_label
             else (('classes', 'Classes'), ('confusion', 'Confusion matrix')))
    nav = ''.join(f'<a href="#{anchor}">{name}</a>' for anchor, name in first + (
        *((('confidence', 'Confidence'),) if 'confidence' in report else ()),
        ('curves', 'Training curves'),
        ('misclassified', 'Misclassified'), ('duplicates', 'Duplicates'),
        ('label-issues', 'Suspected label errors'), ('skipped', 'Skipped files'),
        ('settings', 'Settings')))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>retrain report: {_E(settings["image_dir"])}</title><style>{_STYLE}</style></head>'
        f'<body><header><h1>Retrain report</h1><p>{_E(settings["image_dir"])} · '
        f'{_E(model)}</p></header><main><nav>{nav}</nav>'
        + _cards(report)
        + (_labels(report) + _co_occurrence(report) if multi_label
           else _classes(report) + _confusion(report) + _confidence(report))
        + _curves(report)
        + (_mispredicted(report, thumbs) if multi_label else _misclassified(report, thumbs))
        + _duplicates(report, thumbs)
        + (_missing_or_wrong(report, thumbs) if multi_label else _label_issues(report, thumbs))
        + _skipped(report)
        + '<section id="settings"><details><summary><b>Settings of this run</b></summary><pre>'
        + _E(json.dumps(as_logged(settings), indent=1, ensure_ascii=False))
        + '</pre></details></section>'
        + f'</main><script>{_SCRIPT}</script></body></html>')


# --multi_label runs: labels in place of classes, label sets in place of one class per image.

def _set(labels: List[str]) -> str:
    return ', '.join(labels) or '(none)'


def _labels(report: Dict) -> str:
    rows = ''.join(
        f"<tr><td>{_E(c['label'])}</td><td>{c['training']}</td><td>{c['validation']}</td>"
        f"<td>{c['testing']}</td><td>{_number(c['test_ap'])}</td><td>{_number(c['test_f1'])}"
        '</td></tr>' for c in report['per_label'])
    split, per_label = report['splits'], report['per_label']
    return ('<section id="labels"><h2>Labels <small>images having each label; AP and F1 (at a '
            'score of 0.5) on the test images</small></h2><table><tr><th>label</th>'
            '<th>training</th><th>validation</th><th>testing</th><th>test AP</th><th>test F1</th>'
            f"</tr>{rows}<tr><th>images</th><th>{split['training']}</th>"
            f"<th>{split['validation']}</th><th>{split['testing']}</th>"
            f"<th>{_number(_mean(c['test_ap'] for c in per_label))}</th>"
            f"<th>{_number(_mean(c['test_f1'] for c in per_label))}</th></tr></table></section>")


def _co_occurrence(report: Dict) -> str:
    labels, matrix = report['labels'], report['co_occurrence']
    head = ''.join(f'<th>{_E(label)}</th>' for label in labels)
    rows = []
    for i, (label, row) in enumerate(zip(labels, matrix)):
        total = row[i] or 1
        cells = ''.join(
            f'<td class="{"diag" if i == j else ""}" style="background:rgba(37,99,235,'
            f'{0.08 + 0.8 * n / total if n else 0:.2f});'
            f'color:{"#fff" if n / total > 0.5 else "inherit"}">{n}</td>'
            for j, n in enumerate(row))
        rows.append(f'<tr><th>{_E(label)}</th>{cells}</tr>')
    return ('<section id="co-occurrence"><h2>Labels together <small>images (all splits) having '
            'the row\'s label and the column\'s; the diagonal counts each label</small></h2>'
            f'<table class="confusion"><tr><th></th>{head}</tr>{"".join(rows)}</table></section>')


def _mispredicted(report: Dict, thumbs: Dict[str, Optional[str]]) -> str:
    items = report['misclassified']
    figures = ''.join(_figure(
        thumbs, i['path'],
        f"{_E(_set(i['given']))} → <span class=\"bad\">{_E(_set(i['predicted']))}</span>"
        '<div class="muted">' + _E(', '.join(f'{label} {score:.2f}'
                                             for label, score in i['scores'].items())) + '</div>')
        for i in items[:SHOWN])
    body = (f'<div class="grid">{figures}</div>{_more(len(items))}' if items
            else '<p class="good">None: every test image got exactly its labels.</p>')
    return ('<section id="misclassified"><h2>Test images with another label set <small>'
            f'{len(items)}: given → predicted, with their scores; most wrong labels first</small>'
            f'</h2>{body}</section>')


def _missing_or_wrong(report: Dict, thumbs: Dict[str, Optional[str]]) -> str:
    items = report['label_issues']
    figures = ''.join(_figure(
        thumbs, i['path'],
        (f"<span class=\"bad\">{_E(i['label'])}</span> given, but "
         if i['given'] else f"<span class=\"good\">{_E(i['label'])}</span> missing? ")
        + f"cross-validated score {i['probability']:.2f} · {i['split']}")
        for i in items[:SHOWN])
    body = (f'<div class="grid">{figures}</div>{_more(len(items))}' if items
            else '<p class="good">None suspected.</p>')
    return ('<section id="label-issues"><h2>Suspected label errors <small>an (image, label) '
            'whose cross-validated score contradicts what was given; strongest first</small>'
            f'</h2>{body}</section>')
