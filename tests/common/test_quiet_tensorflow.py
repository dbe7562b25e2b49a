"""retrain.common.quiet_tensorflow: TensorFlow loads for the CLIs without chatter, Keras or
matplotlib."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

_PROBE = '''
import json, sys
from retrain.common.quiet_tensorflow import import_tensorflow
import_tensorflow()
loaded = [name for name in ('keras', 'matplotlib') if name in sys.modules]
import matplotlib.pyplot
import tensorflow as tf
import tensorflow.keras.layers as layers  # Through the folders TensorFlow adds to its path.
print(json.dumps({'loaded_with_tensorflow': loaded, 'keras_layer': tf.keras.layers.Dense.__name__,
                  'keras_path': layers.Dense is tf.keras.layers.Dense,
                  'importable_after': matplotlib.pyplot.__name__}))
'''


@pytest.mark.parametrize('level', [None, '0', '1', '2', '3'])
def test_tensorflow_loads_without_keras_or_matplotlib_which_stay_importable(level):
    """Quiet whatever TF_CPP_MIN_LOG_LEVEL the user set: 2, the usual advice, once brought
    TensorFlow's start-up lines back ('All log messages before absl::InitializeLog()')."""
    if importlib.util.find_spec('matplotlib') is None:
        pytest.skip('matplotlib is not installed: nothing to hide')
    env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
    if level is not None:
        env['TF_CPP_MIN_LOG_LEVEL'] = level
    env['PYTHONPATH'] = REPO_ROOT
    result = subprocess.run([sys.executable, '-c', _PROBE], capture_output=True, text=True,
                            env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == ''  # TensorFlow's C++ start-up notices are dropped.
    assert json.loads(result.stdout) == {'loaded_with_tensorflow': [], 'keras_layer': 'Dense',
                                         'keras_path': True,
                                         'importable_after': 'matplotlib.pyplot'}
