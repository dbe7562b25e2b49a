"""The run's settings: paths that would overwrite or remove one another are refused up front."""
import os

import pytest

from retrain.common.errors import ConfigError
from retrain.config import RetrainConfig

_OUT = {'image_dir': 'images', 'output_graph': os.path.join('out', 'graph.pb'),
        'output_labels': os.path.join('out', 'labels.txt'),
        'summaries_dir': os.path.join('out', 'summaries'),
        'bottleneck_dir': os.path.join('out', 'bn'), 'tfhub_module': 'module'}


def _config(**changes) -> RetrainConfig:
    return RetrainConfig(**{**_OUT, **changes})


@pytest.mark.parametrize('changes, message', [
    ({'output_labels': os.path.join('out', '.', 'graph.pb')},
     '--output_graph and --output_labels are the same path'),
    ({'tflite_output_file': os.path.join('out', 'labels.txt')},
     '--output_labels and --tflite_output_file are the same path'),
    ({'saved_model_dir': 'out'}, '--output_graph (out' + os.sep + 'graph.pb) is inside '
                                 '--saved_model_dir (out), a folder the run replaces whole'),
    ({'report_dir': os.path.join('out', 'summaries')}, '--report_dir and --summaries_dir are'),
    ({'report_dir': 'out'}, 'is inside --report_dir (out)'),
    ({'saved_model_dir': 'module' + os.sep}, '--saved_model_dir and --tfhub_module are'),
    ({'multi_label': True, 'image_labels_file': os.path.join('out', 'labels.txt')},
     '--output_labels and --image_labels_file are the same path'),
    ({'output_graph': 'out'}, '--output_labels (out' + os.sep + 'labels.txt) is inside '
                              '--output_graph (out), a file'),
    ({'use_legacy_model': True, 'model_dir': 'm', 'output_labels': 'm'},
     '--output_labels and --model_dir are the same path'),
    ({'intermediate_store_frequency': 5, 'intermediate_output_graphs_dir': 'd',
      'saved_model_dir': 'd'}, '--saved_model_dir and --intermediate_output_graphs_dir are'),
    ({'intermediate_store_frequency': 5, 'intermediate_output_graphs_dir': 'out',
      'output_labels': os.path.join('out', 'intermediate_10.pb')},
     '--output_labels (out' + os.sep + 'intermediate_10.pb) is named as an intermediate graph'),
])
def test_paths_that_would_overwrite_one_another_are_refused(changes, message):
    with pytest.raises(ConfigError) as error:
        _config(**changes)
    assert message in str(error.value)


def test_a_symbolic_link_to_an_output_is_that_output(tmp_path):
    os.symlink(tmp_path / 'graph.pb', tmp_path / 'link.pb')
    with pytest.raises(ConfigError, match='are the same path'):
        _config(output_graph=str(tmp_path / 'graph.pb'), output_labels=str(tmp_path / 'link.pb'))


@pytest.mark.parametrize('changes', [
    {},  # Outputs side by side in one folder, as the tutorials put them.
    {'summaries_dir': 'out', 'bottleneck_dir': 'out'},  # Folders written into may be shared...
    {'summaries_dir': 'out', 'intermediate_store_frequency': 5,
     'intermediate_output_graphs_dir': os.path.join('out', 'graphs')},  # ...and hold others,
    {'bottleneck_dir': 'images'},  # or be among the images: only new files go there.
    {'saved_model_dir': 'saved', 'report_dir': 'saved_report',
     'output_graph': 'saved.pb'},  # Names that merely begin alike.
    {'intermediate_output_graphs_dir': 'out'},  # Not written without a store frequency.
    {'intermediate_store_frequency': 5, 'intermediate_output_graphs_dir': 'out',
     'output_graph': os.path.join('out', 'intermediate.pb')},  # Not a step's name.
    {'saved_model_dir': 'module_out', 'tfhub_module': 'https://tfhub.dev/google/x/1'},
])
def test_paths_that_go_together_are_accepted(changes):
    _config(**changes)


_PHOTO = os.path.join('images', 'daisy', 'photo.jpg')


@pytest.mark.parametrize('changes, flag, inside', [
    ({'output_labels': _PHOTO}, 'output_labels', 'image_dir'),  # Would replace a photo.
    ({'output_graph': os.path.join('images', 'daisy', 'new.pb')}, 'output_graph', 'image_dir'),
    ({'tflite_output_file': os.path.join('images', 'top.png')}, 'tflite_output_file',
     'image_dir'),  # Read as an image by the table and label-file layouts.
    ({'saved_model_dir': os.path.join('images', 'daisy', 'sm')}, 'saved_model_dir', 'image_dir'),
    ({'report_dir': os.path.join('images', 'report')}, 'report_dir', 'image_dir'),  # A "class".
    ({'multi_label': True, 'image_labels_dir': 'lab',
      'output_labels': os.path.join('lab', 'photo.jpg.txt')}, 'output_labels', 'image_labels_dir'),
    ({'output_graph': os.path.join('module', 'graph.pb')}, 'output_graph', 'tfhub_module'),
])
def test_an_output_inside_what_the_run_reads_is_refused(changes, flag, inside):
    with pytest.raises(ConfigError) as error:
        _config(**changes)
    assert str(error.value).startswith(f'--{flag} (')
    assert f'is inside --{inside} (' in str(error.value)
    assert 'which the run reads' in str(error.value)


@pytest.mark.parametrize('changes', [
    {'output_graph': os.path.join('images', 'graph.pb')},  # `--image_dir .`: outputs at its top.
    {'use_legacy_model': True, 'model_dir': 'm', 'output_graph': os.path.join('m', 'graph.pb')},
])
def test_outputs_beside_the_images_or_in_the_model_folder_are_accepted(changes):
    _config(**changes)


def test_an_existing_file_of_the_legacy_model_folder_is_not_an_output(tmp_path):
    archive = tmp_path / 'm' / 'frozen_graph.pb'
    archive.parent.mkdir()
    archive.write_bytes(b'graph')
    with pytest.raises(ConfigError, match='which the run reads'):
        _config(use_legacy_model=True, model_dir=str(archive.parent), output_graph=str(archive))


@pytest.mark.parametrize('name, problem', [
    ('', 'not a TensorFlow node name'),
    ('has space', 'not a TensorFlow node name'),
    ('scores:0', 'not a TensorFlow node name'),
    ('_private', 'not a TensorFlow node name'),
    ('scores/', 'not a TensorFlow node name'),
    ('input', 'has a node or scope of that name'),
    ('INPUT', 'has a node or scope of that name'),  # TensorFlow compares names without case.
    ('DecodeJpeg/contents', 'has a node or scope of that name'),
    ('module_input', 'has a node or scope of that name'),
    ('module/anything', 'has a node or scope of that name'),
    ('final_training_ops', 'has a node or scope of that name'),
])
def test_a_final_tensor_name_the_graph_cannot_carry_is_refused(name, problem):
    with pytest.raises(ConfigError) as error:
        _config(final_tensor_name=name)
    assert str(error.value).startswith(f'--final_tensor_name {name!r} cannot name the output: ')
    assert problem in str(error.value)


@pytest.mark.parametrize('name', ['final_result', 'flower_scores', 'final/result', 'Softmax',
                                  'input_2', 'module.v2', 'modules'])
def test_final_tensor_names_the_graph_can_carry_are_accepted(name):
    _config(final_tensor_name=name)


def test_every_node_of_the_exported_graph_is_a_name_refused_for_the_output(tiny_module):
    """The names graph_names reserves cover the graph export builds: an output name that passes
    the check can never be renamed by TensorFlow on a clash (`input` -> `input_1`)."""
    import numpy as np

    from retrain.common import graph_names
    from retrain.export import frozen_graph
    from retrain.features import hub_module
    from retrain.train.heads import Head
    extractor = hub_module.load_hub_module(tiny_module)
    head = Head(np.zeros((extractor.bottleneck_size, 3), np.float32), np.zeros(3, np.float32))
    graph_def = frozen_graph.build_graph(extractor, head, 'flower_scores')
    names = [node.name for node in graph_def.node]
    assert names[-1] == 'flower_scores' and len(names) > 20
    assert [name for name in names[:-1] if not graph_names.final_name_problem(name)] == []


@pytest.mark.parametrize('changes, message', [
    ({'split_folders': True, 'testing_percentage': 20}, '--split_folders takes the split'),
    ({'split_folders': True, 'percentages_given': True}, '--split_folders takes the split'),
    ({'split_folders': True, 'multi_label': True, 'image_labels_dir': 'lab'},
     '--split_folders reads class folders only, not --image_labels_dir'),
    ({'image_labels_dir': 'lab'}, '--image_labels_dir needs --multi_label'),
    # Without --image_dir a run downloads the flower photos: not the images a table names.
    ({'image_dir': '', 'image_labels_file': 'labels.csv'}, '--image_labels_file needs --image_dir'),
    ({'image_dir': '', 'split_folders': True}, '--split_folders needs --image_dir'),
    ({'image_dir': '', 'multi_label': True, 'image_labels_dir': 'lab'},
     '--image_labels_dir needs --image_dir'),
])
def test_label_layouts_that_do_not_go_together_are_refused(changes, message):
    """Library use is refused as the command line is: percentages other than the defaults
    contradict split folders even where no CLI said they were given."""
    with pytest.raises(ConfigError, match=message):
        _config(**changes)


@pytest.mark.parametrize('changes', [
    {'image_labels_file': 'labels.csv'},  # A single-label table.
    {'split_folders': True}, {'split_folders': True, 'multi_label': True},
])
def test_label_layouts_beyond_class_folders_are_accepted(changes):
    _config(**changes)


@pytest.mark.parametrize('changes, message', [
    ({'bottleneck_dir': ''}, '--bottleneck_dir must be a folder, not $'),
    ({'tfhub_module': ''}, r'--tfhub_module must be a module \(a URL, a local folder or a '),
])
def test_an_empty_cache_folder_or_module_is_a_usage_error(changes, message):
    """Empty, the cache was written into the current folder; the module failed to load, exit 1."""
    with pytest.raises(ConfigError, match=message):
        _config(**changes)


def test_legacy_mode_needs_no_module():
    _config(tfhub_module='', use_legacy_model=True, model_dir='m')
