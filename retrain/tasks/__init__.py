"""The kinds of run (retrain.tasks.base says what a task decides), chosen by the config."""
from retrain.config import RetrainConfig
from retrain.tasks.base import Task
from retrain.tasks.multi_label import MultiLabel
from retrain.tasks.single_label import SingleLabel

# A new kind of run: its module here and its entry below, chosen by a flag of RetrainConfig.
TASKS = {'single_label': SingleLabel, 'multi_label': MultiLabel}


def task_for(config: RetrainConfig) -> Task:
    return TASKS['multi_label' if config.multi_label else 'single_label'](config)
