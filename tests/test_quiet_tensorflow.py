"""retrain.common.quiet_tensorflow: TensorFlow loads for the CLIs without chatter or matplotlib."""
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
loaded = 'matplotlib' in sys.modules
import keras.src.visualization.plot_image_gallery as gallery
import matplotlib.pyplot
print(json.dumps({'loaded_with_tensorflow': loaded, 'keras_plt': gallery.plt is not None,
                  'importable_after': matplotlib.pyplot.__name__}))
'''


@pytest.mark.parametrize('level', [None, '0', '1', '2', '3'])
def test_tensorflow_loads_without_matplotlib_which_stays_importable(level):
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
    assert json.loads(result.stdout) == {'loaded_with_tensorflow': False, 'keras_plt': False,
                                         'importable_after': 'matplotlib.pyplot'}
