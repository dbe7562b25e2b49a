"""Loading, inspecting and converting retrained graphs of every generation on TensorFlow 2."""
