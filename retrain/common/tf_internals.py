"""The parts of TensorFlow outside its public API that the tools rely on, in one place.

Each is here because no public API does the job; when TensorFlow moves one, this file is the one
to change (the suite fails at import if a name is gone).
  convert_to_constants   freezing a tf.function's variables into a GraphDef: the exported graph
                         embeds the model frozen, as the classic graphs did
  framework_config       op determinism can be switched on publicly, but not off, nor asked
  module_util            where the folders of Keras's API are, which TensorFlow puts on its
                         package path (quiet_tensorflow puts them back after hiding Keras)
  tflite_schema          reading and rewriting .tflite flatbuffers (metadata, checks before any
                         interpreter sees a file)
  variable_pb2, meta_graph_pb2, saved_model_pb2
                         the protocol buffers of graphs and SavedModels, read before loading one
"""
from tensorflow.core.framework import variable_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow.lite.python import schema_py_generated as tflite_schema
from tensorflow.python.framework import config as framework_config
from tensorflow.python.framework import convert_to_constants
from tensorflow.python.tools import module_util

__all__ = ['convert_to_constants', 'framework_config', 'meta_graph_pb2', 'module_util',
           'saved_model_pb2', 'tflite_schema', 'variable_pb2']
